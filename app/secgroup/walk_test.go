package secgroup

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
)

// The walk tests run packets through hv1's whole pipeline (the pipeline's
// miss flows, the isolation app and this app) in the fake switch, with a
// small connection tracker (tracker) standing in for conntrack.

type connKey struct {
	zone       uint16
	proto      uint8
	src, dst   flow.IPv4
	sport, dpt uint16
}

type conn struct {
	replied bool
	mark    uint32
}

// tracker is a minimal conntrack: a packet of a committed connection is
// +est once the connection has seen a reply (+est+rpl for the reply
// direction), +new before; anything else is +new. commit creates the
// entry. force, if set, answers instead (for +inv and +rel).
type tracker struct {
	conns map[connKey]*conn
	force uint32
}

func newTracker() *tracker { return &tracker{conns: map[connKey]*conn{}} }

func key(p fakeswitch.Packet, zone uint16) connKey {
	return connKey{zone, p.IPProto, p.IPv4Src, p.IPv4Dst, p.TPSrc, p.TPDst}
}

func (k connKey) reverse() connKey {
	return connKey{k.zone, k.proto, k.dst, k.src, k.dpt, k.sport}
}

func (t *tracker) Track(p fakeswitch.Packet, zone uint16, commit bool) (uint32, uint32) {
	if t.force != 0 {
		return t.force, 0
	}
	k := key(p, zone)
	if c := t.conns[k]; c != nil {
		if c.replied {
			return flow.CTEstablished, c.mark
		}
		return flow.CTNew, c.mark
	}
	if c := t.conns[k.reverse()]; c != nil {
		c.replied = true
		return flow.CTEstablished | flow.CTReply, c.mark
	}
	if commit {
		t.conns[k] = &conn{}
	}
	return flow.CTNew, 0
}

var (
	macA1 = flow.MustMAC("fa:16:3e:0a:00:01")
	macA2 = flow.MustMAC("fa:16:3e:0a:00:02")
	macA3 = flow.MustMAC("fa:16:3e:0a:00:03")
	macA4 = flow.MustMAC("fa:16:3e:0a:00:04")
	macA5 = flow.MustMAC("fa:16:3e:0a:00:05")
	macA6 = flow.MustMAC("fa:16:3e:0a:00:06")
	bcast = flow.MustMAC("ff:ff:ff:ff:ff:ff")
)

const tunnel = 10

var hv1Ports = []uint32{1, 2, 3, 4, 5, 6, tunnel, 20}

func ipPkt(src, dst flow.MAC, nwSrc, nwDst string, proto uint8, sport, dport uint16) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: src, EthDst: dst, EthType: flow.EthTypeIPv4, IPProto: proto,
		IPv4Src: flow.MustIPv4(nwSrc), IPv4Dst: flow.MustIPv4(nwDst), TTL: 64, TPSrc: sport, TPDst: dport}
}

func tcp(src, dst flow.MAC, nwSrc, nwDst string, sport, dport uint16) fakeswitch.Packet {
	return ipPkt(src, dst, nwSrc, nwDst, flow.ProtoTCP, sport, dport)
}

func icmp(src, dst flow.MAC, nwSrc, nwDst string, typ uint8) fakeswitch.Packet {
	p := ipPkt(src, dst, nwSrc, nwDst, flow.ProtoICMP, 0, 0)
	p.ICMPType = typ
	return p
}

// viaTunnel is p arriving at hv1 from hv2 on net-a (GRE key 100).
func viaTunnel(p fakeswitch.Packet) fakeswitch.Packet {
	p.TunnelID = 100
	return p
}

type hv struct {
	t  *testing.T
	s  *scenario
	sw *fakeswitch.Switch
	ct *tracker
}

func newHV1(t *testing.T) *hv {
	h := &hv{t: t, s: newScenario(), ct: newTracker()}
	h.load()
	return h
}

// load installs hv1's state for the scenario as it is now (the tracker
// keeps its connections, as a switch keeps conntrack across flow changes).
func (h *hv) load() {
	h.sw = fakeswitch.FromState(state(h.t, h.s.input("hv1"), true), hv1Ports...)
	h.sw.Conntrack = h.ct
}

func (h *hv) walk(in uint32, p fakeswitch.Packet) *fakeswitch.Result {
	h.t.Helper()
	r, err := h.sw.Walk(in, p)
	if err != nil {
		h.t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	return r
}

// expect walks p and checks the output ports (none: a drop).
func (h *hv) expect(what string, in uint32, p fakeswitch.Packet, want ...uint32) *fakeswitch.Result {
	h.t.Helper()
	r := h.walk(in, p)
	if fmt.Sprint(r.Ports()) != fmt.Sprint(want) || len(r.Punts()) != 0 {
		h.t.Fatalf("%s: verdict %s, want ports %v\n%s", what, r, want, r.TraceText())
	}
	return r
}

func TestWalkIngressRules(t *testing.T) {
	for _, bits := range []int{maxGroupBits, 1, 0} {
		t.Run(fmt.Sprintf("%d group bits", bits), func(t *testing.T) {
			defer func(old int) { groupBits = old }(groupBits)
			groupBits = bits
			walkIngressRules(t)
		})
	}
}

func walkIngressRules(t *testing.T) {
	h := newHV1(t)
	// TCP port range 8000-8010 from anywhere, to a1 (web).
	for port, ok := range map[uint16]bool{7999: false, 8000: true, 8005: true, 8010: true, 8011: false, 22: false} {
		p := viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000+port, port))
		if ok {
			h.expect(fmt.Sprintf("tcp %d allowed", port), tunnel, p, 1)
		} else {
			h.expect(fmt.Sprintf("tcp %d denied", port), tunnel, p)
		}
	}
	// UDP 53 only from 192.168.0.0/16.
	h.expect("udp 53 from the prefix", tunnel, viaTunnel(ipPkt(macA2, macA1, "192.168.3.4", "10.0.0.11", flow.ProtoUDP, 999, 53)), 1)
	h.expect("udp 53 from outside the prefix", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", flow.ProtoUDP, 999, 53)))
	h.expect("udp 54 from the prefix", tunnel, viaTunnel(ipPkt(macA2, macA1, "192.168.3.4", "10.0.0.11", flow.ProtoUDP, 999, 54)))
	// ICMP echo request (type 8 code 0) from the default group's members.
	h.expect("ping from a6 (default)", tunnel, viaTunnel(icmp(macA6, macA1, "10.0.0.16", "10.0.0.11", 8)), 1)
	h.expect("ping from a2 (web, not default)", tunnel, viaTunnel(icmp(macA2, macA1, "10.0.0.12", "10.0.0.11", 8)))
	h.expect("echo reply from a6 with no request", tunnel, viaTunnel(icmp(macA6, macA1, "10.0.0.16", "10.0.0.11", 0)))
	// A protocol by number (GRE, 47).
	h.expect("proto 47", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", 47, 0, 0)), 1)
	h.expect("proto 50", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", 50, 0, 0)))
	// remote_group_id: a5 (default) takes anything from default members,
	// allowed address pairs included (a5's own 10.0.5.0/24), and from
	// nothing else.
	h.expect("a6 to a5", tunnel, viaTunnel(tcp(macA6, macA5, "10.0.0.16", "10.0.0.15", 1, 2)), 4)
	h.expect("a pair address to a5", tunnel, viaTunnel(tcp(macA6, macA5, "10.0.5.7", "10.0.0.15", 1, 2)), 4)
	h.expect("a2 (web) to a5", tunnel, viaTunnel(tcp(macA2, macA5, "10.0.0.12", "10.0.0.15", 1, 2)))

	// Overlapping remote addresses: a7 (web, hv2) holds 10.0.5.7, inside
	// a5's pair 10.0.5.0/24 (default). With web a remote group too, the
	// /32 classification carries default's bit as well.
	h.s.port(&model.Port{Base: model.Base{ID: "a7000000-0000-4000-8000-000000000007"}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:07",
		PortSecurity: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.5.7"}}, SecurityGroups: []string{sgWeb}}, "hv2", 7)
	h.s.rule("e0000000-0000-4000-8000-000000000007", sgWeb, "ingress", "IPv4", "tcp", intp(9000), intp(9000), "", sgWeb)
	h.load()
	macA7 := flow.MustMAC("fa:16:3e:0a:00:07")
	h.expect("ping from 10.0.5.7 (web, and default's pair)", tunnel, viaTunnel(icmp(macA7, macA1, "10.0.5.7", "10.0.0.11", 8)), 1)
	h.expect("tcp 9000 from 10.0.5.7 (web)", tunnel, viaTunnel(tcp(macA7, macA1, "10.0.5.7", "10.0.0.11", 1, 9000)), 1)
	h.expect("tcp 9000 from a6 (default only)", tunnel, viaTunnel(tcp(macA6, macA1, "10.0.0.16", "10.0.0.11", 1, 9000)))
	h.expect("tcp 9000 from a2 (web)", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 1, 9000)), 1)
	h.expect("10.0.5.7 to a5 (default's pair)", tunnel, viaTunnel(tcp(macA7, macA5, "10.0.5.7", "10.0.0.15", 1, 2)), 4)
}

func TestWalkLocal(t *testing.T) {
	h := newHV1(t)
	// a5 (default, egress any) to a1 (web) on the same chassis: a1's
	// ingress rules decide.
	h.expect("a5 to a1 tcp 8001", 4, tcp(macA5, macA1, "10.0.0.15", "10.0.0.11", 5555, 8001), 1)
	h.expect("a5 to a1 tcp 22", 4, tcp(macA5, macA1, "10.0.0.15", "10.0.0.11", 5555, 22))
	h.expect("a1 reply to a5", 1, tcp(macA1, macA5, "10.0.0.11", "10.0.0.15", 8001, 5555), 4)
	// a1 (web) to a5 (default): a5 allows only default members.
	h.expect("a1 to a5", 1, tcp(macA1, macA5, "10.0.0.11", "10.0.0.15", 1000, 2000))
}

func TestWalkStateful(t *testing.T) {
	h := newHV1(t)
	out := tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 33000, 5000)
	back := viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 5000, 33000))
	h.expect("reply before any connection", tunnel, back)
	h.expect("a1 opens a connection out (egress any)", 1, out, tunnel)
	h.expect("its reply, with no ingress rule", tunnel, back, 1)
	h.expect("its next packet out", 1, out, tunnel)
	h.ct.force = flow.CTInvalid
	h.expect("invalid", tunnel, back)
	h.ct.force = flow.CTRelated
	h.expect("related (an ICMP error)", tunnel, viaTunnel(icmp(macA2, macA1, "10.0.0.12", "10.0.0.11", 3)), 1)
}

func TestWalkRevoke(t *testing.T) {
	h := newHV1(t)
	in := viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 8000))
	reply := tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 8000, 40000)
	h.expect("connection in", tunnel, in, 1)
	h.expect("reply", 1, reply, tunnel)
	h.expect("established", tunnel, in, 1)
	// An unrelated established connection (a1 outbound).
	other := tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 33000, 5000)
	h.expect("unrelated out", 1, other, tunnel)
	h.expect("unrelated reply", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 5000, 33000)), 1)

	h.s.del(model.KindSGRule, "e0000000-0000-4000-8000-000000000002")
	h.load()
	r := h.expect("established, rule removed", tunnel, in)
	if !strings.Contains(r.TraceText(), "exec(set_field:0x1->ct_mark)") {
		t.Fatalf("the revoked connection is not marked:\n%s", r.TraceText())
	}
	// The tracker does not see exec(); mark the connection as OVS would.
	h.ct.conns[key(in, Zone(100))].mark = MarkRevoked
	h.expect("reply of the revoked connection", 1, reply)
	h.expect("unrelated connection still passes", 1, other, tunnel)
	h.expect("unrelated reply still passes", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 5000, 33000)), 1)
	h.expect("a new connection to 8000", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40001, 8000)))
}

func TestWalkNoGroupAndPortSecurityOff(t *testing.T) {
	h := newHV1(t)
	// a3 has no group: nothing in, nothing out...
	h.expect("to a3", tunnel, viaTunnel(tcp(macA2, macA3, "10.0.0.12", "10.0.0.13", 1, 80)))
	h.expect("from a3", 2, tcp(macA3, macA2, "10.0.0.13", "10.0.0.12", 1, 80))
	h.expect("ping to a3", tunnel, viaTunnel(icmp(macA2, macA3, "10.0.0.12", "10.0.0.13", 8)))
	// ...but ARP and DHCP.
	arp := fakeswitch.Packet{EthSrc: macA3, EthDst: bcast, EthType: flow.EthTypeARP, ARPOp: 1, ARPSha: macA3,
		ARPSpa: flow.MustIPv4("10.0.0.13"), ARPTpa: flow.MustIPv4("10.0.0.99")}
	r := h.walk(2, arp)
	if len(r.Ports()) == 0 {
		t.Fatalf("ARP from a3 dropped\n%s", r.TraceText())
	}
	arpIn := viaTunnel(fakeswitch.Packet{EthSrc: macA2, EthDst: bcast, EthType: flow.EthTypeARP, ARPOp: 1, ARPSha: macA2,
		ARPSpa: flow.MustIPv4("10.0.0.12"), ARPTpa: flow.MustIPv4("10.0.0.13")})
	if r := h.walk(tunnel, arpIn); !contains(r.Ports(), 2) {
		t.Fatalf("ARP to a3 dropped: %s\n%s", r, r.TraceText())
	}
	dhcp := ipPkt(macA3, bcast, "0.0.0.0", "255.255.255.255", flow.ProtoUDP, 68, 67)
	if r := h.walk(2, dhcp); len(r.Punts()) != 1 {
		t.Fatalf("DHCP from a3 not punted: %s\n%s", r, r.TraceText())
	}
	h.expect("a VM answering DHCP", 2, ipPkt(macA3, macA2, "10.0.0.13", "10.0.0.12", flow.ProtoUDP, 67, 68))
	// a4 has port security off: unfiltered both ways.
	h.expect("to a4", tunnel, viaTunnel(tcp(macA2, macA4, "10.0.0.12", "10.0.0.14", 1, 9999)), 3)
	h.expect("from a4", 3, tcp(macA4, macA2, "10.0.0.14", "10.0.0.12", 1, 9999), tunnel)
}

func contains(ps []uint32, p uint32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// The data plane carries no IPv6 for filtered ports (isolation's port
// security lets only the port's MAC with IPv4 and ARP out; see README.md,
// "IPv6"), so IPv6 rules are stored, not enforced, and IPv6 never reaches
// a filtered port unfiltered: not from it, not to it (unicast or
// multicast, ND and RA included), even with an IPv6 rule that would allow
// it. Ports with port security off carry IPv6 unfiltered, as in Neutron.
func TestWalkIPv6Dropped(t *testing.T) {
	h := newHV1(t)
	v6 := func(src, dst flow.MAC) fakeswitch.Packet {
		return fakeswitch.Packet{EthSrc: src, EthDst: dst, EthType: 0x86dd}
	}
	allNodes := flow.MustMAC("33:33:00:00:00:01")  // RA, ND to all nodes
	solicited := flow.MustMAC("33:33:ff:00:00:01") // NS to a solicited-node group
	// From a filtered VM: dropped at port security, whatever the rules.
	h.expect("IPv6 from a1 (web, IPv6 ingress rule)", 1, v6(macA1, macA2))
	h.expect("IPv6 from a5 (default: IPv6 egress any)", 4, v6(macA5, macA6))
	h.expect("IPv6 multicast from a5", 4, v6(macA5, allNodes))
	h.expect("IPv6 from a3 (no group)", 2, v6(macA3, allNodes))
	// To a filtered VM, from a port with port security off (a4) or from
	// the tunnel: dropped in to_vm_acl, although a1's group has an IPv6
	// rule (tcp 22 from ::/0) and a5's allows IPv6 from default members
	// (a4 is one).
	h.expect("IPv6 a4 -> a1", 3, v6(macA4, macA1))
	h.expect("IPv6 a4 -> a5", 3, v6(macA4, macA5))
	h.expect("IPv6 tunnel -> a1", tunnel, viaTunnel(v6(macA2, macA1)))
	// Multicast (RA, NS) floods to unfiltered ports only.
	for _, dst := range []flow.MAC{allNodes, solicited, bcast} {
		r := h.walk(tunnel, viaTunnel(v6(macA2, dst)))
		for _, p := range r.Ports() {
			if p == 1 || p == 2 || p == 4 {
				t.Fatalf("IPv6 to %s reached filtered port %d: %s\n%s", dst, p, r, r.TraceText())
			}
		}
		if !contains(r.Ports(), 3) {
			t.Fatalf("IPv6 to %s did not reach a4 (port security off): %s\n%s", dst, r, r.TraceText())
		}
	}
	// a4 (port security off) sends and receives IPv6 unfiltered.
	h.expect("IPv6 from a4 to a2 (remote)", 3, v6(macA4, macA2), tunnel)
	h.expect("IPv6 to a4", tunnel, viaTunnel(v6(macA2, macA4)), 3)
}

// egressScenario is the scenario with web's "egress anywhere" rule
// replaced by narrower egress rules: TCP 443-444 to 10.0.0.0/28, UDP 53
// to the default group, ICMP anywhere.
func egressScenario() *scenario {
	s := newScenario()
	s.del(model.KindSGRule, "e0000000-0000-4000-8000-000000000001")
	s.rule("e0000000-0000-4000-8000-000000000011", sgWeb, "egress", "IPv4", "tcp", intp(443), intp(444), "10.0.0.0/28", "")
	s.rule("e0000000-0000-4000-8000-000000000012", sgWeb, "egress", "IPv4", "udp", intp(53), intp(53), "", sgDefault)
	s.rule("e0000000-0000-4000-8000-000000000013", sgWeb, "egress", "IPv4", "icmp", nil, nil, "", "")
	return s
}

// TestWalkEgressRules: egress rules by port range and prefix, remote
// group and protocol, from a1 (web) on hv1, checked in from_vm_acl (the
// packet leaves by the tunnel; hv2's ingress rules are hv2's business).
func TestWalkEgressRules(t *testing.T) {
	for _, bits := range []int{maxGroupBits, 1, 0} {
		t.Run(fmt.Sprintf("%d group bits", bits), func(t *testing.T) {
			defer func(old int) { groupBits = old }(groupBits)
			groupBits = bits
			h := &hv{t: t, s: egressScenario(), ct: newTracker()}
			h.load()
			h.expect("tcp 443 to a2 (in 10.0.0.0/28)", 1, tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 40000, 443), tunnel)
			h.expect("tcp 444 to a2", 1, tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 40000, 444), tunnel)
			h.expect("tcp 445 to a2 (denied)", 1, tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 40000, 445))
			h.expect("tcp 442 to a2 (denied)", 1, tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 40000, 442))
			h.expect("tcp 443 to a6 (10.0.0.16, outside the /28: denied)", 1, tcp(macA1, macA6, "10.0.0.11", "10.0.0.16", 40000, 443))
			h.expect("udp 53 to a6 (default)", 1, ipPkt(macA1, macA6, "10.0.0.11", "10.0.0.16", flow.ProtoUDP, 999, 53), tunnel)
			h.expect("udp 53 to a2 (web: denied)", 1, ipPkt(macA1, macA2, "10.0.0.11", "10.0.0.12", flow.ProtoUDP, 999, 53))
			h.expect("udp 54 to a6 (denied)", 1, ipPkt(macA1, macA6, "10.0.0.11", "10.0.0.16", flow.ProtoUDP, 999, 54))
			h.expect("ping to a2 (icmp anywhere)", 1, icmp(macA1, macA2, "10.0.0.11", "10.0.0.12", 8), tunnel)
			h.expect("gre to a2 (denied)", 1, ipPkt(macA1, macA2, "10.0.0.11", "10.0.0.12", 47, 0, 0))
			// The reply of a connection a1 opened passes whatever the rules.
			h.expect("reply to a1's tcp 443", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 443, 40000)), 1)
		})
	}
}
