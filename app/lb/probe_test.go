package lb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

const portProbe = 20

// withProbe gives chassis c the VIP's probe port (as the node agent's
// prober makes it: named names.LBProbePortName, its iface-id published).
func (s *scenario) withProbe(c string) {
	name := names.LBProbePortName("vip-1")
	s.sw[c][portProbe] = topology.Port{No: portProbe, Name: name, Up: true}
	ch := s.recs[model.KindChassis][c].(*model.Chassis)
	cp := *ch
	cp.Interfaces = map[string]string{name: names.LBProbeIfaceID("vip-1")}
	s.put(&cp)
}

// A health probe from hv1's probe port reaches the local member m1 (and
// only it: m2 is on hv2) without any other table; m1's answers (TCP from
// its server port, ICMP echo reply, ARP for the VIP) go back to the
// probe port alone, while m1's own connection to the VIP as a client
// still goes through the load balancer. An INACTIVE member is still
// probed. Without the probe port there are no probe flows.
func walk(t *testing.T, sw *fakeswitch.Switch, in uint32, p fakeswitch.Packet) fakeswitch.Emit {
	t.Helper()
	r, err := sw.Walk(in, p)
	return one(t, r, err)
}

func TestWalkProbe(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	s.member(0, "INACTIVE", 1)
	if st := lbState(t, s.input("hv1")); st.Text() != lbState(t, func() *scenario { s.withProbe("hv2"); return s }().input("hv1")).Text() {
		t.Fatal("a probe port on hv2 changed hv1's flows")
	}
	s.withProbe("hv1")
	sw := fakeswitch.FromState(fullState(t, s.input("hv1")), append(hv1Port, portProbe)...)
	sw.Conntrack = fakeswitch.NewConnTable()

	syn := tcpPkt(macVIP, mMAC[0], vipIP, mIP[0], 33000, 8080)
	e := walk(t, sw, portProbe, syn)
	if e.Port != portMember || e.Packet.IPv4Dst != mIP[0] || e.Packet.IPv4Src != vipIP {
		t.Errorf("probe SYN: out %d %v", e.Port, e.Packet)
	}
	r, err := sw.Walk(portProbe, tcpPkt(macVIP, mMAC[1], vipIP, mIP[1], 33000, 8080))
	if err != nil || len(r.Emits) != 0 {
		// m2 is remote: the probe port only reaches local members.
		for _, e := range r.Emits {
			if e.Port == tunA || e.Port == tunB {
				t.Errorf("a probe left hv1 for m2: %s", r)
			}
		}
	}
	synack := tcpPkt(mMAC[0], macVIP, mIP[0], vipIP, 8080, 33000)
	if e := walk(t, sw, portMember, synack); e.Port != portProbe || e.Packet.IPv4Src != mIP[0] {
		t.Errorf("m1's answer to the probe: out %d %v", e.Port, e.Packet)
	}
	echo := fakeswitch.Packet{EthSrc: mMAC[0], EthDst: macVIP, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP,
		IPv4Src: mIP[0], IPv4Dst: vipIP, TTL: 64, ICMPType: 0}
	if e := walk(t, sw, portMember, echo); e.Port != portProbe {
		t.Errorf("m1's echo reply: out %d", e.Port)
	}
	arp := fakeswitch.Packet{EthSrc: mMAC[0], EthDst: flow.MAC(0xffffffffffff), EthType: flow.EthTypeARP, ARPOp: 1,
		ARPSpa: mIP[0], ARPTpa: vipIP, ARPSha: mMAC[0]}
	if e := walk(t, sw, portMember, arp); e.Port != portProbe {
		t.Errorf("m1's ARP for the VIP: out %d", e.Port)
	}
	// m1 as a client of the VIP: balanced (m1 itself is INACTIVE, so m2 or m3 through a tunnel), not sent to the probe port.
	r, err = sw.Walk(portMember, tcpPkt(mMAC[0], macVIP, mIP[0], vipIP, 41000, 80))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Emits {
		if e.Port == portProbe {
			t.Errorf("m1's own connection to the VIP went to the probe port:\n%s", r.TraceText())
		}
	}
}

// A member whose hypervisor's switch is connected to no replica (the
// hypervisor, and so its prober, is down) leaves the other chassis'
// select groups, though its status still says ACTIVE.
func TestMemberOnDeadHypervisor(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	// hv2's agent published its interfaces (so m2's port stays bound to
	// hv2 while its switch is away), as node agents do.
	for _, c := range []string{"hv2"} {
		cp := *s.recs[model.KindChassis][c].(*model.Chassis)
		cp.Ports, cp.Interfaces = map[string]uint32{}, map[string]string{}
		for no, p := range s.sw[c] {
			cp.Ports[p.Name] = no
		}
		s.put(&cp)
	}
	if st := lbState(t, s.input("hv1")); len(st.Groups) != 1 || len(groupMembers(st.Groups[firstGroup(st)])) != 3 {
		t.Fatalf("all switches up: want one group of 3 members")
	}
	in := s.input("hv1")
	delete(in.Topology.Switches, dpids["hv2"])
	if p := in.Binding().Switch(in.Switch).Ports["d0000001-0000-4000-8000-000000000000"]; p == nil || p.Chassis != "hv2" {
		t.Fatalf("m2's port should stay bound to hv2 from the chassis record: %+v", p)
	}
	st := lbState(t, in)
	for _, g := range st.Groups {
		if len(groupMembers(g)) != 2 {
			t.Errorf("group %x: %v, want 2 members (m2's hypervisor is down)", g.ID, groupMembers(g))
		}
		for _, b := range g.Buckets {
			if strings.Contains(fmt.Sprint(b.Actions), mIP[1].String()) {
				t.Errorf("m2 still in the group: %v", b.Actions)
			}
		}
	}
	if len(st.Groups) != 1 {
		t.Errorf("%d groups", len(st.Groups))
	}
}

func firstGroup(st *flow.State) uint32 {
	for id := range st.Groups {
		return id
	}
	return 0
}

// A DSR pool's probes: from the subnet's gateway (10.0.0.1) at the VIP's
// port on the member's own address. The probe SYN reaches m1 alone; m1's
// answer to the gateway's address goes to the probe port with the probe's
// MAC (the VIP port's) whatever MAC m1 sent it to; m1's ARP for its
// gateway goes to the probe only when no router holds the gateway (with
// r1 on sub-a, l3router answers it); m1's DSR replies to clients (from
// VIP:80) and the NAT-mode probe answers (to the VIP) are not taken.
func TestWalkProbeDSR(t *testing.T) {
	gw := flow.MustIPv4("10.0.0.1")
	for _, routed := range []bool{false, true} {
		t.Run(fmt.Sprintf("router_%v", routed), func(t *testing.T) {
			s := newScenario("ROUND_ROBIN")
			var sw *fakeswitch.Switch
			if routed {
				s = newRoutedScenario("ROUND_ROBIN")
			}
			s = makeDSR(s)
			s.member(0, "INACTIVE", 1)
			s.withProbe("hv1")
			if routed {
				sw = routedSwitchOn(t, s, "hv1", fakeswitch.NewConnTable(), nil)
			} else {
				sw = fakeswitch.FromState(fullState(t, s.input("hv1")), append(hv1Port, portProbe)...)
				sw.Conntrack = fakeswitch.NewConnTable()
			}
			gwMACSeen := macVIP
			if routed {
				gwMACSeen = rA
			}
			if e := walk(t, sw, portProbe, tcpPkt(macVIP, mMAC[0], gw, mIP[0], 33000, 80)); e.Port != portMember ||
				e.Packet.IPv4Dst != mIP[0] || e.Packet.IPv4Src != gw {
				t.Errorf("probe SYN: out %d %v", e.Port, e.Packet)
			}
			e := walk(t, sw, portMember, tcpPkt(mMAC[0], gwMACSeen, mIP[0], gw, 80, 33000))
			if e.Port != portProbe || e.Packet.EthDst != macVIP {
				t.Errorf("m1's answer to the probe (to %s): out %d %v, want the probe port, dl_dst %s", gwMACSeen, e.Port, e.Packet, macVIP)
			}
			echo := fakeswitch.Packet{EthSrc: mMAC[0], EthDst: gwMACSeen, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP,
				IPv4Src: mIP[0], IPv4Dst: gw, TTL: 64, ICMPType: 0}
			if e := walk(t, sw, portMember, echo); e.Port != portProbe || e.Packet.EthDst != macVIP {
				t.Errorf("m1's echo reply to the gateway: out %d %v", e.Port, e.Packet)
			}
			arp := fakeswitch.Packet{EthSrc: mMAC[0], EthDst: flow.MAC(0xffffffffffff), EthType: flow.EthTypeARP, ARPOp: 1,
				ARPSpa: mIP[0], ARPTpa: gw, ARPSha: mMAC[0]}
			r, err := sw.Walk(portMember, arp)
			if err != nil {
				t.Fatal(err)
			}
			toProbe := false
			for _, e := range r.Emits {
				toProbe = toProbe || e.Port == portProbe
			}
			if toProbe == routed || (!routed && len(r.Emits) != 1) {
				t.Errorf("m1's ARP for its gateway (router %v): %s, want it at the probe alone only without a router\n%s", routed, r, r.TraceText())
			}
			// m1's DSR reply to c1, and an answer to the VIP: not the probe's.
			for _, p := range []fakeswitch.Packet{tcpPkt(mMAC[0], macC1, vipIP, c1IP, 80, 40000), tcpPkt(mMAC[0], macVIP, mIP[0], vipIP, 80, 33000)} {
				r, err := sw.Walk(portMember, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range r.Emits {
					if e.Port == portProbe {
						t.Errorf("%s went to the probe port", p)
					}
				}
			}
		})
	}
}

// Another project's port on a shared network is no probe target, and
// app/lb steers none of its packets to the probe namespace: a pool of
// project "attacker" (DSR, no router on the subnet: P4 would answer the
// member's ARP for its gateway) naming the victim's m1 as a member gets
// no probe flows for it; m1's ARP for its gateway and its answer to the
// gateway's address go on as without the pool's monitor.
func TestProbeOtherProjectsPort(t *testing.T) {
	s := makeDSR(newScenario("ROUND_ROBIN"))
	pool := *s.recs[model.KindPool]["pool-1"].(*model.LBPool)
	pool.ProjectID = "attacker"
	s.put(&pool)
	mp := *s.recs[model.KindPort]["d0000000-0000-4000-8000-000000000000"].(*model.Port)
	mp.ProjectID = "victim"
	s.put(&mp)
	s.withProbe("hv1")
	sw := fakeswitch.FromState(fullState(t, s.input("hv1")), append(hv1Port, portProbe)...)
	sw.Conntrack = fakeswitch.NewConnTable()
	gw := flow.MustIPv4("10.0.0.1")
	for _, p := range []fakeswitch.Packet{
		{EthSrc: mMAC[0], EthDst: flow.MAC(0xffffffffffff), EthType: flow.EthTypeARP, ARPOp: 1, ARPSpa: mIP[0], ARPTpa: gw, ARPSha: mMAC[0]},
		tcpPkt(mMAC[0], macVIP, mIP[0], gw, 80, 33000),
	} {
		r, err := sw.Walk(portMember, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Emits {
			if e.Port == portProbe {
				t.Errorf("the victim's %s went to the attacker's probe port\n%s", p, r.TraceText())
			}
		}
	}
	if r, err := sw.Walk(portProbe, tcpPkt(macVIP, mMAC[0], gw, mIP[0], 33000, 80)); err != nil || len(r.Emits) != 0 {
		t.Errorf("a probe reached the victim's port: %v %v", r, err)
	}
}
