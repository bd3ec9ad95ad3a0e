package lb

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// The routed scenario (routed_test.go: cb1 10.0.1.11 on net-b, hv1,
// behind router r1) with pool-1 in DSR mode.
func dsrRoutedScenario() *scenario { return makeDSR(newRoutedScenario("ROUND_ROBIN")) }

// noNAT fails t when a walk NATed (a DSR packet never is, either way:
// conntrack only pins the member).
func noNAT(t *testing.T, what string, r *fakeswitch.Result) {
	t.Helper()
	if tr := r.TraceText(); strings.Contains(tr, "nat") {
		t.Errorf("%s went through NAT:\n%s", what, tr)
	}
}

// A routed client of a DSR VIP: cb1's SYN, sent to the router's MAC on
// net-b, is routed and balanced on cb1's own chassis by lb (dec_ttl, the
// router's MAC on net-a as source, the member's MAC as destination) and
// reaches each bucket's member, local or through the tunnel with net-a's
// key, still addressed to the VIP: only the MACs and the TTL changed,
// the connection committed with its member's mark. A client on the
// VIP's own network (c1) goes through the same group to the same member
// with only dl_dst changed. The member's reply from the VIP is routed by
// l3router (on hv1 for m1; on m2's and m3's own chassis, then through
// the tunnel with net-b's key) and reaches cb1 from the VIP, looked up
// in the VIP network's zone on hv1, never NATed. Then the group prefers
// another bucket: cb1's connection stays on its member.
func TestWalkDSRRouted(t *testing.T) {
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d", b), func(t *testing.T) {
			s := dsrRoutedScenario()
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := routedSwitch(t, s, ct, &pick)
			syn := tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80)
			r, err := sw.Walk(portCB1, syn)
			e := one(t, r, err)
			wantPort := map[int]uint32{0: portMember, 1: tunA, 2: tunB}[b]
			want := syn
			want.EthSrc, want.EthDst, want.TTL = rA, mMAC[b], 63
			if !usesGroup(r) || e.Port != wantPort || e.Packet.WireString() != want.WireString() {
				t.Fatalf("routed DSR SYN: got port %d %s (group used: %v),\nwant port %d %s\n%s",
					e.Port, e.Packet.WireString(), usesGroup(r), wantPort, want.WireString(), r.TraceText())
			}
			if b > 0 && e.Packet.TunnelID != seg {
				t.Fatalf("routed DSR SYN left with tun_id %d, want net-a's %d", e.Packet.TunnelID, seg)
			}
			noNAT(t, "the routed DSR SYN", r)
			if ct.Len() != 1 {
				t.Fatalf("DSR committed %d connections, want 1", ct.Len())
			}
			// The same group for a client on the VIP's own network.
			c1syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
			r, err = sw.Walk(portClient, c1syn)
			e = one(t, r, err)
			want = c1syn
			want.EthDst = mMAC[b]
			if !usesGroup(r) || e.Port != wantPort || e.Packet.WireString() != want.WireString() {
				t.Fatalf("c1's DSR SYN: got port %d %s, want port %d %s\n%s", e.Port, e.Packet.WireString(), wantPort, want.WireString(), r.TraceText())
			}

			// The reply, from the VIP to the router's MAC on net-a.
			reply := tcpPkt(mMAC[b], rA, vipIP, cb1IP, 80, cb1Sport)
			routedReply := tcpPkt(rB, macCB1, vipIP, cb1IP, 80, cb1Sport)
			routedReply.TTL = 63
			in := uint32(portMember)
			if b > 0 {
				// Routed on the member's chassis, out on the tunnel to hv1
				// (port 10 on hv2 and hv3) with net-b's key.
				msw := routedSwitchOn(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
				r, err = msw.Walk(portMember, reply)
				e = one(t, r, err)
				if e.Port != tunA || e.Packet.TunnelID != segB || e.Packet.WireString() != routedReply.WireString() {
					t.Fatalf("m%d's reply on %s: got port %d tun_id %d %s, want port %d tun_id %d %s\n%s", b+1, mHost[b],
						e.Port, e.Packet.TunnelID, e.Packet.WireString(), tunA, segB, routedReply.WireString(), r.TraceText())
				}
				noNAT(t, "the member's reply on its chassis", r)
				reply, in = e.Packet, wantPort
				reply.Regs = [8]uint32{}
			}
			r, err = sw.Walk(in, reply)
			e = one(t, r, err)
			if e.Port != portCB1 || e.Packet.WireString() != routedReply.WireString() {
				t.Fatalf("reply on hv1: got port %d %s, want port %d %s\n%s", e.Port, e.Packet.WireString(), portCB1, routedReply.WireString(), r.TraceText())
			}
			noNAT(t, "the reply on hv1", r)
			if !strings.Contains(r.TraceText(), "ct(zone=") {
				t.Errorf("the reply on hv1 was not looked up in the zone (conntrack must see both ways):\n%s", r.TraceText())
			}
			if ct.Len() != 2 {
				t.Fatalf("DSR: %d connections, want 2 (cb1's and c1's)", ct.Len())
			}
			// The group now prefers another member: cb1's connection
			// follows its mark.
			pick = (b + 1) % len(mIP)
			r, err = sw.Walk(portCB1, syn)
			e = one(t, r, err)
			want = syn
			want.EthSrc, want.EthDst, want.TTL = rA, mMAC[b], 63
			if usesGroup(r) || e.Port != wantPort || e.Packet.WireString() != want.WireString() {
				t.Fatalf("cb1's established packet moved or used the group: port %d %s\n%s", e.Port, e.Packet.WireString(), r.TraceText())
			}
		})
	}
}

// One group serves the VIP's own network and the routed one: hv1 has
// one select group, used by D2 on net-a's key only: D1r gives a routed
// client's packet net-a's key before the lookup.
func TestDSRRoutedOneGroup(t *testing.T) {
	st := lbState(t, dsrRoutedScenario().input("hv1"))
	if len(st.Groups) != 1 {
		t.Fatalf("want one group, got %d:\n%s", len(st.Groups), st.Text())
	}
	var gid uint32
	for id := range st.Groups {
		gid = id
	}
	users := map[uint64]bool{}
	for _, f := range st.Flows {
		for _, a := range f.Actions {
			if g, ok := a.(flow.GroupAction); ok {
				if g.ID != gid {
					t.Errorf("flow %s uses group 0x%x, want 0x%x", f.KeyText(), g.ID, gid)
				}
				m, _ := f.Match.Get(pipeline.RegNetwork.Field)
				users[m.Value&0xffffff] = true
			}
		}
	}
	if !users[seg] || len(users) != 1 {
		t.Fatalf("the group's users, by network key: %v, want net-a (%d) only", users, seg)
	}
	d1r := 0
	for _, f := range st.Flows {
		m, ok := f.Match.Get(pipeline.RegNetwork.Field)
		if !ok || m.Value&0xffffff != segB || !strings.Contains(flow.ActionsString(f.Actions), "ct(") {
			continue
		}
		if _, dst := f.Match.Get(flow.IPv4Dst); dst && strings.Contains(flow.ActionsString(f.Actions), fmt.Sprintf("0x%x/0xffffff->reg1", seg)) {
			d1r++
		}
	}
	if d1r != 1 {
		t.Fatalf("want one D1r flow (net-b, to the VIP, setting net-a's key, then the lookup), got %d:\n%s", d1r, st.Text())
	}
}

// A chassis whose only client is routed (cb1 on hv3, which then has no
// port of net-a and so no l2_forward flows for it): the buckets reach
// the remote members m1 and m2 straight through their tunnels.
func TestWalkDSRRoutedNoVIPNetworkPort(t *testing.T) {
	s := dsrRoutedScenario()
	delete(s.sw["hv3"], portMember)
	s.sw["hv3"][portCB1] = s.sw["hv1"][portCB1]
	delete(s.sw["hv1"], portCB1)
	for b, port := range map[int]uint32{0: tunA, 1: tunB} { // on hv3: 10 -> hv1 (m1), 11 -> hv2 (m2)
		pick := b
		sw := routedSwitchOn(t, s, "hv3", fakeswitch.NewConnTable(), &pick)
		syn := tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80)
		r, err := sw.Walk(portCB1, syn)
		e := one(t, r, err)
		want := syn
		want.EthSrc, want.EthDst, want.TTL = rA, mMAC[b], 63
		if !usesGroup(r) || e.Port != port || e.Packet.TunnelID != seg || e.Packet.WireString() != want.WireString() {
			t.Fatalf("bucket %d: got port %d tun_id %d %s, want port %d tun_id %d %s\n%s",
				b, e.Port, e.Packet.TunnelID, e.Packet.WireString(), port, seg, want.WireString(), r.TraceText())
		}
	}
}

// TTL: a routed client's SYN with TTL 1 is not routed by lb (dec_ttl
// would drop it silently) but punted by l3_routing, as any routed packet
// with TTL 1 (ICMP time exceeded); with TTL 2 it leaves with TTL 1.
func TestWalkDSRRoutedTTL(t *testing.T) {
	s := dsrRoutedScenario()
	pick := 1
	sw := routedSwitch(t, s, fakeswitch.NewConnTable(), &pick)
	for _, ttl := range []uint8{0, 1} {
		syn := tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80)
		syn.TTL = ttl
		r, err := sw.Walk(portCB1, syn)
		e := one(t, r, err)
		if usesGroup(r) || !e.Punt() || e.Table != pipeline.L3Routing.ID() {
			t.Fatalf("TTL %d: got %s from table %d, want l3_routing's punt\n%s", ttl, e, e.Table, r.TraceText())
		}
	}
	syn := tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80)
	syn.TTL = 2
	r, err := sw.Walk(portCB1, syn)
	if e := one(t, r, err); e.Port != tunA || e.Packet.TTL != 1 {
		t.Fatalf("TTL 2: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
	}
}

// Every member down: a routed client's SYN is punted (lb's RST punt,
// with the router's MAC still its destination), and the handler's RST
// leaves from the router's MAC on net-b, as a routed answer would, from
// VIP:80 to cb1.
func TestWalkDSRRoutedAllDown(t *testing.T) {
	s := dsrRoutedScenario()
	for i := range mIP {
		s.member(i, "INACTIVE", i+1)
	}
	sw := routedSwitch(t, s, fakeswitch.NewConnTable(), nil)
	r, err := sw.Walk(portCB1, tcpPkt(macCB1, rB, cb1IP, vipIP, cb1Sport, 80))
	e := one(t, r, err)
	if !e.Punt() || e.Table != pipeline.LB.ID() || e.Packet.EthDst != rB {
		t.Fatalf("all down: got %s from table %d (%s), want lb's punt\n%s", e, e.Table, e.Packet, r.TraceText())
	}
	hw := func(m flow.MAC) net.HardwareAddr { a, _ := net.ParseMAC(m.String()); return a }
	p := e.Packet
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: p.TTL, Protocol: layers.IPProtocolTCP,
		SrcIP: net.ParseIP(p.IPv4Src.String()).To4(), DstIP: net.ParseIP(p.IPv4Dst.String()).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.TPSrc), DstPort: layers.TCPPort(p.TPDst), SYN: true, Seq: 7}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: hw(p.EthSrc), DstMAC: hw(p.EthDst), EthernetType: layers.EthernetTypeIPv4}, ip, tcp); err != nil {
		t.Fatal(err)
	}
	eth, rip, rtcp := decodeRST(t, RST(buf.Bytes()))
	if eth.SrcMAC.String() != rB.String() || eth.DstMAC.String() != macCB1.String() || rip.SrcIP.String() != vipIP.String() ||
		rip.DstIP.String() != cb1IP.String() || rtcp.SrcPort != 80 || rtcp.DstPort != cb1Sport || !rtcp.RST || rtcp.Ack != 8 {
		t.Fatalf("RST to the routed client: %v %v %v", eth, rip, rtcp)
	}
}

// TestOVSAcceptsDSRRouted: OVS 3.1 takes hv1's whole pipeline with the
// routed DSR flows (D1r's dec_ttl and register writes before the group,
// the TTL guards on nw_ttl, buckets that set tun_id and output to a
// tunnel) and l3router's; the trace of cb1's SYN goes through dec_ttl
// and the lookup (--ct-next trk,new) to the select group, no NAT, and
// with TTL 1 it is punted by l3_routing instead. No packet is sent.
func TestOVSAcceptsDSRRouted(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	for _, p := range append(hv1Port, portCB1) {
		br.AddPort("", int(p))
	}
	st := routedState(t, dsrRoutedScenario(), "hv1")
	for _, g := range st.Groups {
		br.Ofctl("add-group", br.Name, g.String())
	}
	for _, m := range st.Meters {
		br.Ofctl("-O", "OpenFlow13", "add-meter", br.Name, m.String())
	}
	var specs []string
	for _, f := range st.SortedFlows() {
		specs = append(specs, f.String())
	}
	br.AddFlows(specs...)
	trace := func(ttl int) string {
		t.Helper()
		syn := fmt.Sprintf("in_port=%d,tcp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=%d,tp_src=%d,tp_dst=80", portCB1, macCB1, rB, cb1IP, vipIP, ttl, cb1Sport)
		out, err := exec.Command("ovs-appctl", "ofproto/trace", br.Name, syn, "--ct-next", "trk,new").CombinedOutput()
		if err != nil {
			t.Fatalf("trace: %v\n%s", err, out)
		}
		return string(out)
	}
	if s := trace(64); !strings.Contains(s, "dec_ttl") || !strings.Contains(s, "group:") || !strings.Contains(s, "ct(zone=") || strings.Contains(s, "nat") {
		t.Fatalf("routed DSR new connection: want dec_ttl, the lookup and the select group, no NAT:\n%s", s)
	}
	if s := trace(1); strings.Contains(s, "group:") || !strings.Contains(s, "CONTROLLER") {
		t.Fatalf("routed DSR SYN with TTL 1: want l3_routing's punt, not the group:\n%s", s)
	}
}

func TestGoldenDSRRouted(t *testing.T) {
	got := lbState(t, dsrRoutedScenario().input("hv1")).Text()
	checkGolden(t, "hv1_dsr_routed.golden", got)
}
