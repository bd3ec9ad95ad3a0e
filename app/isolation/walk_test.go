package isolation

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// The walk tests run packets through hv1's isolation flows in the fake
// switch (internal/fakeswitch) and check where they go and how they are
// rewritten. walk_ovs_test.go runs the same packets through real OVS
// (ofproto/trace) and checks that both agree.
//
// hv1 of the golden scenario, plus a3 (net-a, port 5) so that net-a has
// two local ports:
//
//	1 a1 net-a GRE 100   2 b1 net-b GRE 101   3 v1 net-v VLAN 200
//	5 a3 net-a GRE 100   10 GRE tunnel to hv2  20 physnet1 uplink
const portA3 = 5

var hv1Ports = []uint32{1, 2, 3, portA3, 10, 20, flow.PortLocal}

var (
	macA1, macA2, macA3 = flow.MustMAC("fa:16:3e:0a:00:01"), flow.MustMAC("fa:16:3e:0a:00:02"), flow.MustMAC("fa:16:3e:0a:00:03")
	macB1, macB2        = flow.MustMAC("fa:16:3e:0b:00:01"), flow.MustMAC("fa:16:3e:0b:00:02")
	macV1, macV2        = flow.MustMAC("fa:16:3e:0f:00:01"), flow.MustMAC("fa:16:3e:0f:00:02")
	macBcast            = flow.MustMAC("ff:ff:ff:ff:ff:ff")
)

// walkState is hv1's full state (pipeline miss flows and the app's
// flows, groups and meters) with a3 added.
func walkState(t *testing.T) *flow.State {
	t.Helper()
	s := newScenario()
	s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", portA3, "")
	return state(t, New(Config{}), s.input("hv1"))
}

func udpPkt(src, dst flow.MAC, nwSrc, nwDst string, sport, dport uint16) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: src, EthDst: dst, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP,
		IPv4Src: flow.MustIPv4(nwSrc), IPv4Dst: flow.MustIPv4(nwDst), TTL: 64, TPSrc: sport, TPDst: dport}
}

func arpRequest(src flow.MAC, spa, tpa string) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: src, EthDst: macBcast, EthType: flow.EthTypeARP, ARPOp: 1,
		ARPSha: src, ARPSpa: flow.MustIPv4(spa), ARPTpa: flow.MustIPv4(tpa)}
}

func tagged(p fakeswitch.Packet, vid uint16) fakeswitch.Packet {
	p.VLANs = []fakeswitch.VLAN{{TPID: flow.EthTypeVLAN, VID: vid}}
	return p
}

func fromTunnel(p fakeswitch.Packet, key uint64) fakeswitch.Packet {
	p.TunnelID = key
	return p
}

// walkCase is one packet and what the fake switch must do with it.
type walkCase struct {
	name  string
	in    uint32
	pkt   fakeswitch.Packet
	check func(t *testing.T, r *fakeswitch.Result)
}

// ports checks the output ports (in any order) and that nothing is punted.
func ports(want ...uint32) func(t *testing.T, r *fakeswitch.Result) {
	return func(t *testing.T, r *fakeswitch.Result) {
		t.Helper()
		got := r.Ports()
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		if len(r.Punts()) != 0 || len(got) != len(want) {
			t.Fatalf("verdict %s, want ports %v\n%s", r, want, r.TraceText())
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("verdict %s, want ports %v\n%s", r, want, r.TraceText())
			}
		}
	}
}

// emitTo returns the emit on port, failing if there is not exactly one.
func emitTo(t *testing.T, r *fakeswitch.Result, port uint32) fakeswitch.Packet {
	t.Helper()
	var got []fakeswitch.Packet
	for _, e := range r.Emits {
		if !e.Punt() && e.Port == port {
			got = append(got, e.Packet)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d emits on port %d, want 1: %s\n%s", len(got), port, r, r.TraceText())
	}
	return got[0]
}

func dropped(t *testing.T, r *fakeswitch.Result) {
	t.Helper()
	if !r.Dropped() {
		t.Fatalf("verdict %s, want drop\n%s", r, r.TraceText())
	}
}

// arpReply checks the reply the ARP responder builds in flows: sent back
// out of the ingress port, op 2, the answer's MAC as source and sha, the
// asker as destination and tha, the addresses swapped.
func arpReply(in uint32, asker, answer flow.MAC, askerIP, answerIP string) func(t *testing.T, r *fakeswitch.Result) {
	return func(t *testing.T, r *fakeswitch.Result) {
		t.Helper()
		ports(in)(t, r)
		p := emitTo(t, r, in)
		want := fakeswitch.Packet{EthSrc: answer, EthDst: asker, EthType: flow.EthTypeARP, ARPOp: 2,
			ARPSha: answer, ARPSpa: flow.MustIPv4(answerIP), ARPTha: asker, ARPTpa: flow.MustIPv4(askerIP)}
		if p.WireString() != want.WireString() {
			t.Fatalf("ARP reply\n got %s\nwant %s", p.WireString(), want.WireString())
		}
	}
}

func walkCases() []walkCase {
	a1ToA2 := udpPkt(macA1, macA2, "10.0.0.11", "10.0.0.12", 4000, 5000)
	dhcp := udpPkt(macA1, macBcast, "0.0.0.0", "255.255.255.255", 68, 67)
	return []walkCase{
		{"unicast local a1 to a3", 1, udpPkt(macA1, macA3, "10.0.0.11", "10.0.0.13", 4000, 5000), func(t *testing.T, r *fakeswitch.Result) {
			ports(portA3)(t, r)
			if p := emitTo(t, r, portA3); p.WireString() != udpPkt(macA1, macA3, "10.0.0.11", "10.0.0.13", 4000, 5000).WireString() {
				t.Fatalf("local unicast rewritten: %s", p.WireString())
			}
		}},
		{"unicast a1 to a2 on hv2 goes to the tunnel with key 100", 1, a1ToA2, func(t *testing.T, r *fakeswitch.Result) {
			ports(10)(t, r)
			if p := emitTo(t, r, 10); p.TunnelID != 100 || p.WireString() != a1ToA2.WireString() {
				t.Fatalf("tunnel copy: tun_id %d, %s", p.TunnelID, p.WireString())
			}
		}},
		{"unicast from the tunnel (key 101) reaches b1", 10, fromTunnel(udpPkt(macB2, macB1, "10.0.0.12", "10.0.0.11", 1, 2), 101), ports(2)},
		{"unicast from the tunnel with an unknown key is dropped", 10, fromTunnel(udpPkt(macB2, macB1, "10.0.0.12", "10.0.0.11", 1, 2), 0x99), dropped},
		{"broadcast from a1 floods a3 and the tunnel, not back to a1", 1, udpPkt(macA1, macBcast, "10.0.0.11", "10.0.0.255", 1, 2), func(t *testing.T, r *fakeswitch.Result) {
			ports(portA3, 10)(t, r)
			if p := emitTo(t, r, 10); p.TunnelID != 100 {
				t.Fatalf("flood to the tunnel with tun_id %d", p.TunnelID)
			}
			if p := emitTo(t, r, portA3); p.TunnelID != 0 {
				t.Fatalf("a bucket's tun_id leaked into the local copy: %s", p)
			}
		}},
		{"broadcast from the tunnel floods local ports only (split horizon)", 10, fromTunnel(udpPkt(macA2, macBcast, "10.0.0.12", "10.0.0.255", 1, 2), 100), ports(1, portA3)},
		{"ARP request for an unknown address floods net-a", 1, arpRequest(macA1, "10.0.0.11", "10.0.0.99"), ports(portA3, 10)},
		{"v1 to v2 leaves tagged 200 on the uplink", 3, udpPkt(macV1, macV2, "10.0.0.21", "10.0.0.22", 1, 2), func(t *testing.T, r *fakeswitch.Result) {
			ports(20)(t, r)
			if v := emitTo(t, r, 20).VLANs; len(v) != 1 || v[0].VID != 200 || v[0].TPID != flow.EthTypeVLAN {
				t.Fatalf("uplink tags %+v", v)
			}
		}},
		{"VLAN 200 from the uplink reaches v1 untagged", 20, tagged(udpPkt(macV2, macV1, "10.0.0.22", "10.0.0.21", 1, 2), 200), func(t *testing.T, r *fakeswitch.Result) {
			ports(3)(t, r)
			if v := emitTo(t, r, 3).VLANs; len(v) != 0 {
				t.Fatalf("v1 gets tags %+v", v)
			}
		}},
		{"unknown VLAN 300 on the uplink is dropped", 20, tagged(udpPkt(macV2, macV1, "10.0.0.22", "10.0.0.21", 1, 2), 300), dropped},
		{"a1 spoofing b1's MAC is dropped", 1, udpPkt(macB1, macA2, "10.0.0.11", "10.0.0.12", 1, 2), dropped},
		{"a1 spoofing an IP is dropped", 1, udpPkt(macA1, macA2, "10.0.0.99", "10.0.0.12", 1, 2), dropped},
		{"a1 ARP with a spoofed sender address is dropped", 1, arpRequest(macA1, "10.0.0.12", "10.0.0.13"), dropped},
		{"a1 allowed address pair (10.0.1.0/24 with its own MAC) passes", 1,
			udpPkt(flow.MustMAC("fa:16:3e:0a:ff:ff"), macA2, "10.0.1.7", "10.0.0.12", 1, 2), ports(10)},
		{"ARP request from a1 for a2 is answered in flows", 1, arpRequest(macA1, "10.0.0.11", "10.0.0.12"),
			arpReply(1, macA1, macA2, "10.0.0.11", "10.0.0.12")},
		{"tenant B's 10.0.0.12 answers b1 with b2's MAC", 2, arpRequest(macB1, "10.0.0.11", "10.0.0.12"),
			arpReply(2, macB1, macB2, "10.0.0.11", "10.0.0.12")},
		{"DHCP discover from a1 is punted to the controller", 1, dhcp, func(t *testing.T, r *fakeswitch.Result) {
			ps := r.Punts()
			if len(ps) != 1 || len(r.Emits) != 1 {
				t.Fatalf("verdict %s, want one punt only\n%s", r, r.TraceText())
			}
			p := ps[0]
			if pipeline.CookieApp(p.Cookie) != pipeline.AppIsolation || p.Cookie != pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID(idA1)) ||
				p.Reason != fakeswitch.ReasonAction || p.MaxLen != flow.MaxLenNoBuffer || p.Table != pipeline.DHCP.ID() {
				t.Fatalf("punt %+v, want isolation's cookie of a1's port (its own punt flow) from the DHCP table, reason action, whole packet", p)
			}
			if p.Packet.WireString() != dhcp.WireString() {
				t.Fatalf("punted packet rewritten: %s", p.Packet.WireString())
			}
		}},
		// A chassis has no learning fallback (finding 11 of the hardening
		// issue): a port no network covers, LOCAL included, is dropped
		// in l2_learning instead of being punted and flooded.
		{"a frame from LOCAL reaches l2_learning and is dropped (no fallback on a chassis)", flow.PortLocal, udpPkt(macA1, macA2, "10.0.0.11", "10.0.0.12", 1, 2), func(t *testing.T, r *fakeswitch.Result) {
			if len(r.Emits) != 0 || !strings.Contains(r.TraceText(), fmt.Sprintf("table %d:", pipeline.L2Learning.ID())) {
				t.Fatalf("verdict %s\n%s", r, r.TraceText())
			}
		}},
	}
}

func TestWalkIsolation(t *testing.T) {
	sw := fakeswitch.FromState(walkState(t), hv1Ports...)
	for _, c := range walkCases() {
		t.Run(c.name, func(t *testing.T) {
			r, err := sw.Walk(c.in, c.pkt)
			if err != nil {
				t.Fatalf("walk: %v\n%s", err, r.TraceText())
			}
			c.check(t, r)
		})
	}
}

// A raw frame goes the same way as its parsed fields.
func TestWalkIsolationRawARP(t *testing.T) {
	frame := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x16, 0x3e, 0x0a, 0x00, 0x01, 0x08, 0x06,
		0, 1, 8, 0, 6, 4, 0, 1, 0xfa, 0x16, 0x3e, 0x0a, 0x00, 0x01, 10, 0, 0, 11, 0, 0, 0, 0, 0, 0, 10, 0, 0, 12}
	p, err := fakeswitch.Parse(frame)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fakeswitch.FromState(walkState(t), hv1Ports...).Walk(1, p)
	if err != nil {
		t.Fatal(err)
	}
	arpReply(1, macA1, macA2, "10.0.0.11", "10.0.0.12")(t, r)
}
