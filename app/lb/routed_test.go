package lb

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// The routed scenario adds to the base one a second GRE network net-b
// (key 200, 10.0.1.0/24) and a router r1 with an interface on sub-a
// (10.0.0.1, MAC rA) and on sub-b (10.0.1.1, MAC rB); a client cb1
// 10.0.1.11 on hv1 (port 3) reaches the VIP 10.0.0.100:80 through r1.
const (
	segB     = 200
	portCB1  = 3
	idCB1    = "cb000000-0000-4000-8000-000000000001"
	idRouter = "r1000000-0000-4000-8000-000000000001"
	idIfaceA = "ea000000-0000-4000-8000-000000000001"
	idIfaceB = "eb000000-0000-4000-8000-000000000001"
	cb1Sport = 41000
	memberTP = 8080
)

var (
	rA     = flow.MustMAC("fa:16:3e:aa:00:01")
	rB     = flow.MustMAC("fa:16:3e:bb:00:01")
	macCB1 = flow.MustMAC("fa:16:3e:cb:00:01")
	cb1IP  = flow.MustIPv4("10.0.1.11")
)

func newRoutedScenario(method string) *scenario {
	s := newScenario(method)
	s.put(&model.Network{Base: model.Base{ID: "net-b", ProjectID: "t"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: segB, MTU: 1458})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-b"}, NetworkID: "net-b", IPVersion: 4, CIDR: "10.0.1.0/24", GatewayIP: "10.0.1.1"})
	s.put(&model.Port{Base: model.Base{ID: idCB1}, NetworkID: "net-b", MACAddress: macCB1.String(), AdminStateUp: true,
		DeviceOwner: "compute:nova", FixedIPs: []model.FixedIP{{SubnetID: "sub-b", IPAddress: cb1IP.String()}}})
	s.sw["hv1"][portCB1] = topology.Port{No: portCB1, Name: names.VMPortName(idCB1), Up: true}
	rt := &model.Router{Base: model.Base{ID: idRouter, ProjectID: "t"}, AdminStateUp: true}
	for _, i := range []struct{ id, net, sub, ip string }{{idIfaceA, "net-a", "sub-a", "10.0.0.1"}, {idIfaceB, "net-b", "sub-b", "10.0.1.1"}} {
		mac := rA
		if i.net == "net-b" {
			mac = rB
		}
		s.put(&model.Port{Base: model.Base{ID: i.id, ProjectID: "t"}, NetworkID: i.net, MACAddress: mac.String(), AdminStateUp: true,
			DeviceOwner: "network:router_interface_distributed", DeviceID: idRouter,
			FixedIPs: []model.FixedIP{{SubnetID: i.sub, IPAddress: i.ip}}})
		rt.Interfaces = append(rt.Interfaces, i.id)
	}
	s.put(rt)
	return s
}

// routedSwitch is hv1's whole pipeline with l3router's flows too.
func routedSwitch(t *testing.T, s *scenario, ct *fakeswitch.ConnTable, pick *int) *fakeswitch.Switch {
	t.Helper()
	return routedSwitchOn(t, s, "hv1", ct, pick)
}

// routedSwitchOn is a chassis's whole pipeline (miss flows, isolation,
// lb, l3router) on its ports.
func routedSwitchOn(t *testing.T, s *scenario, chassis string, ct *fakeswitch.ConnTable, pick *int) *fakeswitch.Switch {
	t.Helper()
	var ports []uint32
	for n := range s.sw[chassis] {
		ports = append(ports, n)
	}
	sw := fakeswitch.FromState(routedState(t, s, chassis), ports...)
	sw.Conntrack = ct
	if pick != nil {
		sw.SelectBucket = func(*flow.Group, fakeswitch.Packet) int { return *pick }
	}
	return sw
}

// routedState is a chassis's whole pipeline: miss flows, isolation, lb,
// l3router.
func routedState(t *testing.T, s *scenario, chassis string) *flow.State {
	t.Helper()
	in := s.input(chassis)
	st := fullState(t, in)
	d, err := l3router.New().Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Flows {
		if st.AddFlow(f) {
			t.Errorf("l3router shares a key: %s", f.KeyText())
		}
	}
	for _, m := range d.Meters {
		st.Meters[m.ID] = m
	}
	return st
}

// A client on another subnet of the VIP subnet's router: its SYN, sent
// to the router's MAC, is balanced on its own chassis (the select group,
// DNAT to the member) and then routed by l3_routing to the member (TTL
// 63, the router's MAC on net-a as source); the member's reply, from its
// local port or routed on its own chassis and coming in from the tunnel
// with net-b's key, is un-NATed back to the VIP here; later packets skip
// the group and keep their member.
func TestWalkRoutedClient(t *testing.T) {
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d", b), func(t *testing.T) {
			s := newRoutedScenario("ROUND_ROBIN")
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := routedSwitch(t, s, ct, &pick)
			syn := tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80)
			r, err := sw.Walk(portCB1, syn)
			e := one(t, r, err)
			if !usesGroup(r) {
				t.Fatalf("routed client's new connection did not go through the select group:\n%s", r.TraceText())
			}
			wantPort := map[int]uint32{0: portMember, 1: tunA, 2: tunB}[b]
			p := e.Packet
			if e.Port != wantPort || p.IPv4Dst != mIP[b] || p.TPDst != memberTP || p.IPv4Src != cb1IP || p.EthDst != mMAC[b] || p.EthSrc != rA || p.TTL != 63 {
				t.Fatalf("routed SYN to the VIP: got port %d %s, want port %d to %s:8080 from %s, routed (dl_src %s, TTL 63)\n%s",
					e.Port, p, wantPort, mIP[b], cb1IP, rA, r.TraceText())
			}
			if b > 0 && p.TunnelID != seg {
				t.Fatalf("routed SYN left with tun_id %d, want net-a's %d", p.TunnelID, seg)
			}
			if ct.Len() != 1 {
				t.Fatalf("want 1 committed connection, got %d", ct.Len())
			}
			// The reply: a local member's goes through lb (net-a) and
			// l3_routing here; a remote member's was routed on its
			// chassis and comes from the tunnel with net-b's key.
			var reply fakeswitch.Packet
			in := uint32(portMember)
			if b == 0 {
				reply = tcpPkt(mMAC[0], rA, mIP[0], cb1IP, memberTP, cb1Sport)
			} else {
				reply = tcpPkt(rB, macCB1, mIP[b], cb1IP, memberTP, cb1Sport)
				reply.TTL, reply.TunnelID, in = 63, segB, wantPort
			}
			r, err = sw.Walk(in, reply)
			e = one(t, r, err)
			p = e.Packet
			if e.Port != portCB1 || p.IPv4Src != vipIP || p.TPSrc != 80 || p.IPv4Dst != cb1IP || p.EthDst != macCB1 || p.EthSrc != rB {
				t.Fatalf("reply: got port %d %s, want port %d from %s:80 (%s -> %s)\n%s", e.Port, p, portCB1, vipIP, rB, macCB1, r.TraceText())
			}
			// The group now prefers another member: the established
			// connection neither uses it nor moves.
			pick = (b + 1) % len(mIP)
			r, err = sw.Walk(portCB1, syn)
			e = one(t, r, err)
			if usesGroup(r) || e.Port != wantPort || e.Packet.IPv4Dst != mIP[b] {
				t.Fatalf("established packet: got port %d %s (group used: %v)\n%s", e.Port, e.Packet, usesGroup(r), r.TraceText())
			}
		})
	}
}

// A member removed from the pool: the routed client's connection to it
// ends (dropped on the client's chassis, not routed to it), the other
// member's connection continues, new connections avoid it.
func TestWalkRoutedMemberRemoved(t *testing.T) {
	s := newRoutedScenario("ROUND_ROBIN")
	ct := fakeswitch.NewConnTable()
	pick := 1
	sw := routedSwitch(t, s, ct, &pick)
	toM := func(sport uint16, want int) {
		t.Helper()
		r, err := sw.Walk(portCB1, tcpPkt(macCB1, rB, cb1IP, vipIP, sport, 80))
		if e := one(t, r, err); e.Packet.IPv4Dst != mIP[want] {
			t.Fatalf("sport %d: got %s, want member %s\n%s", sport, e.Packet, mIP[want], r.TraceText())
		}
	}
	toM(40000, 1)
	pick = 2
	toM(40001, 2)
	delete(s.recs[model.KindMember], memberID(1))
	sw = routedSwitch(t, s, ct, &pick)
	r, err := sw.Walk(portCB1, tcpPkt(macCB1, rB, cb1IP, vipIP, 40000, 80))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Dropped() {
		t.Fatalf("connection to the removed member: want drop, got %s\n%s", r, r.TraceText())
	}
	toM(40001, 2)
	for range 20 {
		pick = (pick + 1) % 3
		toM(uint16(40100+pick), map[int]int{0: 0, 1: 2, 2: 0}[pick]) // buckets: m1, m3, pad (m1)
	}
}

// Who gets routed-client flows: a chassis with a port of a network
// behind the router (hv2 gets none for net-b: no port of it there);
// nobody once the router is gone. A DSR pool gets its own: D1r and its
// two TTL guards, and the reply lookups D5r, D5br, D6r.
func TestRoutedClientsWhere(t *testing.T) {
	s := newRoutedScenario("ROUND_ROBIN")
	count := func(chassis string) int {
		n := 0
		for _, f := range lbState(t, s.input(chassis)).Flows {
			if m, ok := f.Match.Get(pipeline.RegNetwork.Field); ok && m.Value&0xffffff == segB {
				n++
			}
			if v, ok := f.Match.Get(flow.TunnelID); ok && v.Value == segB {
				n++
			}
		}
		return n
	}
	if count("hv1") == 0 {
		t.Fatalf("hv1 (client cb1 on net-b): no routed-client flows")
	}
	if n := count("hv2"); n != 0 {
		t.Fatalf("hv2 (no port of net-b): %d routed-client flows", n)
	}
	// Only the client on net-b on hv3: it still gets the VIP.
	delete(s.sw["hv3"], portMember)
	s.sw["hv3"][portCB1] = s.sw["hv1"][portCB1]
	delete(s.sw["hv1"], portCB1)
	if count("hv3") == 0 || len(lbState(t, s.input("hv3")).Groups) != 1 {
		t.Fatalf("hv3 with only a routed client: want routed flows and the group:\n%s", lbState(t, s.input("hv3")).Text())
	}
	pool := s.recs[model.KindPool]["pool-1"].(*model.LBPool)
	dsr := *pool
	dsr.Description = DSRTag
	s.put(&dsr)
	if n := count("hv3"); n != 7 {
		t.Fatalf("DSR pool: %d routed-client flows, want 7 (D1r, D0r for TTL 0 and 1, D5r, D5br, D6r, E1):\n%s", n, lbState(t, s.input("hv3")).Text())
	}
	s.put(pool)
	delete(s.recs[model.KindRouter], idRouter)
	if n := count("hv3"); n != 0 {
		t.Fatalf("no router: %d routed-client flows", n)
	}
}

func TestGoldenRouted(t *testing.T) {
	got := lbState(t, newRoutedScenario("ROUND_ROBIN").input("hv1")).Text()
	checkGolden(t, "hv1_routed.golden", got)
}

// SOURCE_IP persistence for a routed client: every connection of cb1
// reaches one member through the multipath flow (kB's copy), routed to
// it, and its reply is un-NATed.
func TestWalkRoutedSourceIP(t *testing.T) {
	s := newRoutedScenario("ROUND_ROBIN")
	v := *s.recs[model.KindVIP]["vip-1"].(*model.LBVIP)
	v.SessionPersistence = &model.SessionPersistence{Type: "SOURCE_IP"}
	s.put(&v)
	sw := routedSwitch(t, s, fakeswitch.NewConnTable(), nil)
	chosen := map[flow.IPv4]uint32{}
	for i := range 20 {
		sport := uint16(42000 + i)
		r, err := sw.Walk(portCB1, tcpPkt(macCB1, rB, cb1IP, vipIP, sport, 80))
		e := one(t, r, err)
		if usesGroup(r) || e.Packet.TPDst != memberTP || e.Packet.EthSrc != rA || e.Packet.TTL != 63 {
			t.Fatalf("SOURCE_IP routed connection: got port %d %s (group used: %v)\n%s", e.Port, e.Packet, usesGroup(r), r.TraceText())
		}
		chosen[e.Packet.IPv4Dst] = e.Port
		b := map[flow.IPv4]int{mIP[0]: 0, mIP[1]: 1, mIP[2]: 2}[e.Packet.IPv4Dst]
		reply, in := tcpPkt(mMAC[0], rA, mIP[0], cb1IP, memberTP, sport), uint32(portMember)
		if b > 0 {
			reply = tcpPkt(rB, macCB1, mIP[b], cb1IP, memberTP, sport)
			reply.TTL, reply.TunnelID, in = 63, segB, e.Port
		}
		r, err = sw.Walk(in, reply)
		if e := one(t, r, err); e.Port != portCB1 || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 {
			t.Fatalf("SOURCE_IP routed reply: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
		}
	}
	if len(chosen) != 1 {
		t.Fatalf("cb1's 20 connections went to %v, want one member", chosen)
	}
}
