package lb

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/app/nat"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// The floating IP scenario adds to the routed one (r1 on sub-a and sub-b,
// cb1 on hv1) an external flat network net-x (extnet, 198.51.100.0/24,
// gateway 198.51.100.1) that every chassis maps (uplink: br-int port
// 30), r1's gateway on it, and a floating IP 198.51.100.50 associated
// with the VIP's port (unbound). Its home chassis is
// binding.FloatingIPHome's choice among the three.
const (
	uplinkPort = 30
	idFIP      = "f1000000-0000-4000-8000-000000000001"
	idFIPPort  = "f2000000-0000-4000-8000-000000000001"
	inetSport  = 50000
)

var (
	fipIP  = flow.MustIPv4("198.51.100.50")
	fipMAC = flow.MustMAC("fa:16:3e:ff:00:50")
	inetIP = flow.MustIPv4("203.0.113.80")
	gwMAC  = flow.MustMAC("02:00:00:00:99:01")
)

func newFIPScenario() *scenario {
	s := newRoutedScenario("ROUND_ROBIN")
	for i, c := range []string{"hv1", "hv2", "hv3"} {
		s.put(&model.Chassis{Name: c, TunnelIP: fmt.Sprintf("172.16.0.%d", i+1), DPID: fmt.Sprintf("%016x", dpids[c]),
			Mappings: map[string]string{"extnet": "br-ex"}})
		s.sw[c][uplinkPort] = topology.Port{No: uplinkPort, Name: names.PhysPortName("extnet"), Up: true}
	}
	s.put(&model.Network{Base: model.Base{ID: "net-x", ProjectID: "admin"}, AdminStateUp: true, External: true,
		NetworkType: model.NetFlat, PhysicalNetwork: "extnet", MTU: 1500})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-x"}, NetworkID: "net-x", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: "198.51.100.1"})
	gp := &model.Port{Base: model.Base{ID: "9a000000-0000-4000-8000-000000000001"}, NetworkID: "net-x", MACAddress: "fa:16:3e:99:00:01",
		DeviceOwner: "network:router_gateway", DeviceID: idRouter, AdminStateUp: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-x", IPAddress: "198.51.100.10"}}}
	s.put(gp)
	rt := *s.recs[model.KindRouter][idRouter].(*model.Router)
	rt.Gateway = &model.ExternalGateway{NetworkID: "net-x", EnableSNAT: true, ExternalFixedIPs: gp.FixedIPs}
	s.put(&rt)
	s.put(&model.Port{Base: model.Base{ID: idFIPPort}, NetworkID: "net-x", MACAddress: fipMAC.String(), DeviceOwner: "network:floatingip",
		DeviceID: idFIP, AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-x", IPAddress: fipIP.String()}}})
	s.put(&model.FloatingIP{Base: model.Base{ID: idFIP, ProjectID: "t"}, FloatingNetworkID: "net-x", FloatingIPAddress: fipIP.String(),
		FloatingPortID: idFIPPort, PortID: idVIPPort, FixedIPAddress: vipIP.String(), RouterID: idRouter})
	return s
}

// home is the floating IP's home chassis in s.
func (s *scenario) home(t *testing.T) string {
	t.Helper()
	in := s.input("hv1")
	r, _ := in.Model.Get(model.KindFloatingIP, idFIP)
	h := binding.Compute(in.Model, in.Topology).FloatingIPHome(in.Topology, r.(*model.FloatingIP))
	if h == "" {
		t.Fatal("the floating IP has no home")
	}
	return h
}

// tunTo is chassis c's tunnel port toward peer (newScenario's numbering).
func tunTo(c, peer string) uint32 {
	n := uint32(tunA)
	for _, p := range []string{"hv1", "hv2", "hv3"} {
		if p == c {
			continue
		}
		if p == peer {
			return n
		}
		n++
	}
	panic("no tunnel from " + c + " to " + peer)
}

// fipSwitch is chassis c's whole pipeline (miss flows, isolation,
// l3router, nat, lb; every flow checked against its table's contract)
// with the external gateway's MAC already learned by nat's handler.
func fipSwitch(t *testing.T, s *scenario, c string, ct *fakeswitch.ConnTable, pick *int) *fakeswitch.Switch {
	t.Helper()
	in := s.input(c)
	st := lbState(t, in)
	for _, f := range st.Flows {
		if _, err := ofproto.AppendFlowMod(nil, 1, f, ofproto.FlowModOpts{}); err != nil {
			t.Errorf("OpenFlow cannot carry %s: %v", f.KeyText(), err)
		}
	}
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	var ext []*nat.Ext
	iso, err := isolation.New(isolation.Config{}).Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	l3, err := l3router.New().Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := nat.New().Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		flows  []*flow.Flow
		groups []*flow.Group
		meters []*flow.Meter
	}{{iso.Flows, iso.Groups, iso.Meters}, {l3.Flows, l3.Groups, l3.Meters}, {nd.Flows, nd.Groups, nd.Meters}} {
		for _, f := range d.flows {
			if err := pipeline.Check(f); err != nil {
				t.Errorf("contract: %v", err)
			}
			if _, err := ofproto.AppendFlowMod(nil, 1, f, ofproto.FlowModOpts{}); err != nil {
				t.Errorf("OpenFlow cannot carry %s: %v", f.KeyText(), err)
			}
			if st.AddFlow(f) {
				t.Errorf("two apps share a key: %s", f.KeyText())
			}
		}
		for _, g := range d.groups {
			st.Groups[g.ID] = g
		}
		for _, m := range d.meters {
			st.Meters[m.ID] = m
		}
	}
	if hs, ok := nd.Handler.(nat.State); ok {
		for _, e := range hs {
			ext = append(ext, e)
		}
	}
	var ports []uint32
	for n := range s.sw[c] {
		ports = append(ports, n)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	sw := fakeswitch.FromState(st, ports...)
	for _, e := range ext {
		f := nat.GatewayFlow(e, gwMAC)
		if err := pipeline.Check(&f); err != nil {
			t.Fatal(err)
		}
		sw.Install(&f)
	}
	sw.Conntrack = ct
	if pick != nil {
		sw.SelectBucket = func(*flow.Group, fakeswitch.Packet) int { return *pick }
	}
	return sw
}

// leavesHome walks a member's reply to the outside client in on the
// home's port in and checks that it leaves the external uplink, untagged,
// from FIP:80 to the client, from the floating IP port's MAC to the
// gateway's (and with TTL ttl unless 0).
func leavesHome(t *testing.T, sw *fakeswitch.Switch, in uint32, reply fakeswitch.Packet, ttl uint8) {
	t.Helper()
	r, err := sw.Walk(in, reply)
	e := one(t, r, err)
	p := e.Packet
	if e.Port != uplinkPort || p.IPv4Src != fipIP || p.TPSrc != 80 || p.IPv4Dst != inetIP || p.TPDst != inetSport ||
		p.EthSrc != fipMAC || p.EthDst != gwMAC || len(p.VLANs) != 0 || (ttl != 0 && p.TTL != ttl) {
		t.Fatalf("reply on the home: got port %d %s, want the external uplink %d from %s:80 (%s -> %s, TTL %d)\n%s",
			e.Port, p, uplinkPort, fipIP, fipMAC, gwMAC, ttl, r.TraceText())
	}
}

// arrive walks, on the member's chassis switch msw, the packet out as
// the home sent it (e: its emit toward the member; in: the port it comes
// in on there, the tunnel from the home or the VLAN uplink) and checks
// that it reaches the member's port. With a ConnTable on msw, a NAT
// floating IP connection is then tracked there (trackFromHome), as F1
// needs for the reply.
func arrive(t *testing.T, msw *fakeswitch.Switch, e fakeswitch.Emit, in uint32) {
	t.Helper()
	p := tcpPkt(e.Packet.EthSrc, e.Packet.EthDst, e.Packet.IPv4Src, e.Packet.IPv4Dst, e.Packet.TPSrc, e.Packet.TPDst)
	p.TTL, p.TunnelID, p.VLANs = e.Packet.TTL, e.Packet.TunnelID, e.Packet.VLANs
	r, err := msw.Walk(in, p)
	if got := one(t, r, err); got.Port != portMember || got.Packet.IPv4Dst != p.IPv4Dst {
		t.Fatalf("the home's packet on the member's chassis: out %d %s, want the member's port\n%s", got.Port, got.Packet, r.TraceText())
	}
}

func arpFor(ip flow.IPv4) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: gwMAC, EthDst: flow.MustMAC("ff:ff:ff:ff:ff:ff"), EthType: flow.EthTypeARP, ARPOp: 1,
		ARPSha: gwMAC, ARPSpa: flow.MustIPv4("198.51.100.1"), ARPTpa: ip}
}

// From the internet to the VIP's floating IP: only the home chassis
// answers ARP for it; its SYN, coming in on the home's uplink, is
// rewritten to the VIP, balanced by the VIP's select group there and
// DNATed to each member in turn (on the home itself or through a
// tunnel); the member's reply (steered unchanged from a remote member's
// chassis to the home, where conntrack un-NATs it) leaves the home's
// uplink from FIP:80 with the floating IP port's MAC; the connection's
// next packet skips the group. A routed client's reply is not steered.
func TestWalkFloatingIP(t *testing.T) {
	s := newFIPScenario()
	home := s.home(t)
	t.Logf("home chassis: %s", home)
	t.Run("only the home answers ARP", func(t *testing.T) {
		for _, c := range []string{"hv1", "hv2", "hv3"} {
			sw := fipSwitch(t, s, c, fakeswitch.NewConnTable(), nil)
			r, err := sw.Walk(uplinkPort, arpFor(fipIP))
			if err != nil {
				t.Fatal(err)
			}
			if c != home {
				if len(r.Emits) != 0 {
					t.Errorf("%s (not the home) answered ARP for the floating IP: %s\n%s", c, r, r.TraceText())
				}
				continue
			}
			e := one(t, r, err)
			if e.Packet.ARPOp != 2 || e.Packet.ARPSha != fipMAC || e.Packet.ARPSpa != fipIP {
				t.Errorf("home's ARP answer: %s", e.Packet)
			}
		}
	})
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d_%s", b, mHost[b]), func(t *testing.T) {
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := fipSwitch(t, s, home, ct, &pick)
			syn := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80)
			r, err := sw.Walk(uplinkPort, syn)
			e := one(t, r, err)
			if !usesGroup(r) {
				t.Fatalf("the SYN to the floating IP did not go through the select group:\n%s", r.TraceText())
			}
			local := mHost[b] == home
			wantPort := uint32(portMember)
			if !local {
				wantPort = tunTo(home, mHost[b])
			}
			p := e.Packet
			if e.Port != wantPort || p.IPv4Dst != mIP[b] || p.TPDst != memberTP || p.IPv4Src != inetIP || p.TPSrc != inetSport ||
				p.EthDst != mMAC[b] || p.EthSrc != rA || p.TTL != 63 || (!local && p.TunnelID != seg) {
				t.Fatalf("SYN: got port %d %s, want port %d to %s:8080 from %s, dl_src %s, TTL 63\n%s",
					e.Port, p, wantPort, mIP[b], inetIP, rA, r.TraceText())
			}
			// The reply.
			reply := tcpPkt(mMAC[b], rA, mIP[b], inetIP, memberTP, inetSport)
			in := uint32(portMember)
			if !local {
				msw := fipSwitch(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
				arrive(t, msw, e, tunTo(mHost[b], home))
				r, err := msw.Walk(portMember, reply)
				e := one(t, r, err)
				if e.Port != tunTo(mHost[b], home) || e.Packet.TunnelID != seg || e.Packet.IPv4Src != mIP[b] ||
					e.Packet.TPSrc != memberTP || e.Packet.TTL != 64 || e.Packet.EthDst != rA {
					t.Fatalf("reply on the member's chassis %s: got port %d %s, want it unchanged to the home %s (port %d, tun_id %d)\n%s",
						mHost[b], e.Port, e.Packet, home, tunTo(mHost[b], home), seg, r.TraceText())
				}
				// What the tunnel carries: headers and tun_id, no
				// registers or conntrack state.
				reply = tcpPkt(e.Packet.EthSrc, e.Packet.EthDst, e.Packet.IPv4Src, e.Packet.IPv4Dst, e.Packet.TPSrc, e.Packet.TPDst)
				reply.TTL, reply.TunnelID, in = e.Packet.TTL, e.Packet.TunnelID, tunTo(home, mHost[b])
			}
			leavesHome(t, sw, in, reply, 63)
			// Established: no group, same member, even if the group
			// would now choose another.
			pick = (b + 1) % len(mIP)
			r, err = sw.Walk(uplinkPort, syn)
			e = one(t, r, err)
			if usesGroup(r) || e.Port != wantPort || e.Packet.IPv4Dst != mIP[b] {
				t.Fatalf("established packet: got port %d %s (group used: %v)\n%s", e.Port, e.Packet, usesGroup(r), r.TraceText())
			}
		})
	}
	t.Run("a routed client's reply is not steered", func(t *testing.T) {
		for b, c := range mHost {
			if c == home || c == "hv1" {
				continue
			}
			msw := fipSwitch(t, s, c, fakeswitch.NewConnTable(), nil)
			r, err := msw.Walk(portMember, tcpPkt(mMAC[b], rA, mIP[b], cb1IP, memberTP, cb1Sport))
			e := one(t, r, err)
			if e.Port != tunTo(c, "hv1") || e.Packet.TunnelID != segB || e.Packet.EthDst != macCB1 {
				t.Errorf("%s's reply to the routed client cb1: got port %d %s, want routed to hv1 with net-b's key\n%s",
					c, e.Port, e.Packet, r.TraceText())
			}
		}
	})
	t.Run("the other chassis do not take the floating IP", func(t *testing.T) {
		for _, c := range []string{"hv1", "hv2", "hv3"} {
			if c == home {
				continue
			}
			sw := fipSwitch(t, s, c, fakeswitch.NewConnTable(), nil)
			r, err := sw.Walk(uplinkPort, tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Emits {
				if e.Packet.IPv4Dst != fipIP {
					t.Errorf("%s (not the home) rewrote the floating IP: %s\n%s", c, e, r.TraceText())
				}
			}
		}
	})
}

// The home chassis balances the floating IP's clients even with no port
// of the VIP's network on it; when it loses its uplink the floating IP
// moves to another chassis, which then answers and balances.
func TestFloatingIPHomeWithoutPorts(t *testing.T) {
	s := newFIPScenario()
	home := s.home(t)
	for n := range s.sw[home] {
		if n == portClient || n == portMember || n == portCB1 {
			delete(s.sw[home], n)
		}
	}
	pick := 0
	sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), &pick)
	for i := range 20 {
		pick = i % 2 // the home's own member is gone: two buckets (and the pad) left
		r, err := sw.Walk(uplinkPort, tcpPkt(gwMAC, fipMAC, inetIP, fipIP, uint16(inetSport+i), 80))
		e := one(t, r, err)
		if e.Packet.TPDst != memberTP || e.Packet.TunnelID != seg || e.Port == uplinkPort {
			t.Fatalf("home with no port of the VIP's network: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
		}
		// The member's reply, steered from its chassis, leaves the
		// home's uplink from the floating IP.
		b := map[flow.IPv4]int{mIP[0]: 0, mIP[1]: 1, mIP[2]: 2}[e.Packet.IPv4Dst]
		if mHost[b] == home || e.Port != tunTo(home, mHost[b]) {
			t.Fatalf("SYN to %s out of port %d, want the tunnel to %s", e.Packet.IPv4Dst, e.Port, mHost[b])
		}
		msw := fipSwitch(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
		arrive(t, msw, e, tunTo(mHost[b], home))
		r, err = msw.Walk(portMember, tcpPkt(mMAC[b], rA, mIP[b], inetIP, memberTP, uint16(inetSport+i)))
		if e := one(t, r, err); e.Port != tunTo(mHost[b], home) || e.Packet.TunnelID != seg {
			t.Fatalf("reply on %s: got port %d %s, want the tunnel to the home\n%s", mHost[b], e.Port, e.Packet, r.TraceText())
		}
		reply := tcpPkt(mMAC[b], rA, mIP[b], inetIP, memberTP, uint16(inetSport+i))
		reply.TunnelID = seg
		r, err = sw.Walk(tunTo(home, mHost[b]), reply)
		if e := one(t, r, err); e.Port != uplinkPort || e.Packet.IPv4Src != fipIP || e.Packet.TPSrc != 80 {
			t.Fatalf("reply on the home: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
		}
	}
	// The home loses its uplink: another chassis takes the floating IP.
	delete(s.sw[home], uplinkPort)
	next := s.home(t)
	if next == home {
		t.Fatalf("the home %s lost its uplink and stayed the home", home)
	}
	sw = fipSwitch(t, s, next, fakeswitch.NewConnTable(), nil)
	r, err := sw.Walk(uplinkPort, arpFor(fipIP))
	if e := one(t, r, err); e.Packet.ARPSha != fipMAC {
		t.Fatalf("the new home %s: ARP answer %s", next, e.Packet)
	}
	r, err = sw.Walk(uplinkPort, tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80))
	if e := one(t, r, err); e.Packet.TPDst != memberTP || !usesGroup(r) {
		t.Fatalf("the new home %s: SYN %s\n%s", next, e.Packet, r.TraceText())
	}
	d, err := nat.New().Desired(s.input(next))
	if err != nil {
		t.Fatal(err)
	}
	garp := false
	for _, a := range d.Announce {
		garp = garp || (a.Port == uplinkPort && len(a.Data) >= 42 && string(a.Data[28:32]) == string(a.Data[38:42]))
	}
	if !garp {
		t.Errorf("the new home %s announces no gratuitous ARP for the floating IP", next)
	}
}

// Every member down: the home drops an outside client's SYN instead of
// punting it for a RST, which would leave the uplink from the VIP's
// address; a client of the VIP's network still gets its RST punt.
func TestFloatingIPAllDown(t *testing.T) {
	for _, vlan := range []uint16{0, 300} {
		t.Run(fmt.Sprintf("external_vlan_%d", vlan), func(t *testing.T) {
			s := newFIPScenario()
			if vlan != 0 {
				x := *s.recs[model.KindNetwork]["net-x"].(*model.Network)
				x.NetworkType, x.SegmentationID = model.NetVLAN, int(vlan)
				s.put(&x)
			}
			for i := range mIP {
				s.member(i, "INACTIVE", 1)
			}
			home := s.home(t)
			sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), nil)
			outsideRST(t, s, home, sw, vlan)
			if home == "hv1" {
				r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80))
				if e := one(t, r, err); !e.Punt() {
					t.Fatalf("c1's SYN with every member down: %s, want the RST punt", e)
				}
			}
		})
	}
}

// outsideRST walks an outside client's SYN to the floating IP in on the
// home's uplink (tagged vlan unless 0) with no healthy member: it must be
// punted (F3 or F3d) from the floating IP, never from the VIP, and the
// handler's RST, sent as the handler asks (a packet-out through snat),
// must leave the uplink (tagged vlan) from FIP:80 with the floating IP
// port's MAC to the external gateway, answering the SYN. Without a
// handler state it falls back to the ingress port.
func outsideRST(t *testing.T, s *scenario, home string, sw *fakeswitch.Switch, vlan uint16) {
	t.Helper()
	syn := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80)
	if vlan != 0 {
		syn.VLANs = []fakeswitch.VLAN{{TPID: flow.EthTypeVLAN, VID: vlan}}
	}
	r, err := sw.Walk(uplinkPort, syn)
	e := one(t, r, err)
	if !e.Punt() || e.Packet.IPv4Dst != fipIP || e.Packet.EthDst != fipMAC || e.Packet.IPv4Src != inetIP ||
		e.Cookie != pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(idFIP)) {
		t.Fatalf("outside SYN with every member down: %s, want punted to %s (%s) under the floating IP's cookie\n%s",
			e, fipIP, fipMAC, r.TraceText())
	}
	d, err := New(Config{}).Desired(s.input(home))
	if err != nil {
		t.Fatal(err)
	}
	var out app.Out
	New(Config{}).NewSwitchHandler(1).PacketIn(&app.PacketIn{InPort: uplinkPort, Table: e.Table, Cookie: e.Cookie,
		Data: synFrameOf(t, e.Packet, 1000), BufferID: app.NoBuffer, State: d.Handler}, &out)
	if len(out.PacketOuts) != 1 {
		t.Fatalf("handler: want one packet-out, got %+v", out.PacketOuts)
	}
	po := out.PacketOuts[0]
	var tcp layers.TCP
	pkt := gopacket.NewPacket(po.Data, layers.LayerTypeEthernet, gopacket.Default)
	if l, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		tcp = *l
	}
	if !tcp.RST || !tcp.ACK || tcp.Ack != 1001 {
		t.Fatalf("handler's packet is not the SYN's RST: %s", pkt)
	}
	rp, err := fakeswitch.Parse(po.Data)
	if err != nil {
		t.Fatal(err)
	}
	r, err = sw.PacketOut(po.InPort, rp, po.Actions)
	o := one(t, r, err)
	p := o.Packet
	if o.Port != uplinkPort || p.IPv4Src != fipIP || p.TPSrc != 80 || p.IPv4Dst != inetIP || p.TPDst != inetSport ||
		p.EthSrc != fipMAC || p.EthDst != gwMAC || (vlan == 0) != (len(p.VLANs) == 0) || (vlan != 0 && p.VLANs[0].VID != vlan) {
		t.Fatalf("RST: got port %d %s, want the uplink (vlan %d) from %s:80 %s to %s:%d %s\n%s",
			o.Port, p, vlan, fipIP, fipMAC, inetIP, inetSport, gwMAC, r.TraceText())
	}
	// Before the handler has its state the RST goes back out of the
	// ingress port, still from the floating IP (never the VIP).
	out = app.Out{}
	New(Config{}).NewSwitchHandler(1).PacketIn(&app.PacketIn{InPort: uplinkPort, Cookie: e.Cookie,
		Data: synFrameOf(t, e.Packet, 1000), BufferID: app.NoBuffer}, &out)
	if len(out.PacketOuts) != 1 {
		t.Fatalf("handler without state: %+v", out.PacketOuts)
	}
	if rp, err := fakeswitch.Parse(out.PacketOuts[0].Data); err != nil || rp.IPv4Src != fipIP {
		t.Fatalf("handler without state: RST from %s, want %s (%v)", rp.IPv4Src, fipIP, err)
	}
}

// synFrameOf is p as a wire frame, a TCP SYN with sequence number seq.
func synFrameOf(t *testing.T, p fakeswitch.Packet, seq uint32) []byte {
	t.Helper()
	src, _ := net.ParseMAC(p.EthSrc.String())
	dst, _ := net.ParseMAC(p.EthDst.String())
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: p.TTL, Protocol: layers.IPProtocolTCP,
		SrcIP: net.ParseIP(p.IPv4Src.String()).To4(), DstIP: net.ParseIP(p.IPv4Dst.String()).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.TPSrc), DstPort: layers.TCPPort(p.TPDst), SYN: true, Seq: seq, Window: 64240}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A DSR pool's VIP through its floating IP: the home rewrites the
// floating IP to the VIP and balances the SYN in DSR mode (only the MACs
// and the TTL change: still addressed to VIP:80, pinned in conntrack);
// the member's reply, from VIP:80, is steered unchanged from its chassis
// to the home (above D5b), where the lookup in the zone (D6, D5) marks
// it a reply and app/nat turns VIP:80 into FIP:80 out of the uplink; the
// connection's next packet stays on its member.
func TestWalkFloatingIPDSR(t *testing.T) {
	s := makeDSR(newFIPScenario())
	if DSRTag != binding.LBDSRTag {
		t.Fatalf("lb.DSRTag %q and binding.LBDSRTag %q differ", DSRTag, binding.LBDSRTag)
	}
	home := s.home(t)
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d_%s", b, mHost[b]), func(t *testing.T) {
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := fipSwitch(t, s, home, ct, &pick)
			syn := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80)
			r, err := sw.Walk(uplinkPort, syn)
			e := one(t, r, err)
			local := mHost[b] == home
			wantPort := uint32(portMember)
			if !local {
				wantPort = tunTo(home, mHost[b])
			}
			p := e.Packet
			if !usesGroup(r) || e.Port != wantPort || p.IPv4Dst != vipIP || p.TPDst != 80 || p.IPv4Src != inetIP ||
				p.EthDst != mMAC[b] || p.EthSrc != rA || p.TTL != 63 || (!local && p.TunnelID != seg) {
				t.Fatalf("SYN: got port %d %s, want port %d to %s:80 via %s, dl_src %s, TTL 63\n%s",
					e.Port, p, wantPort, vipIP, mMAC[b], rA, r.TraceText())
			}
			reply := tcpPkt(mMAC[b], rA, vipIP, inetIP, 80, inetSport)
			in := uint32(portMember)
			if !local {
				msw := fipSwitch(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
				r, err := msw.Walk(portMember, reply)
				e := one(t, r, err)
				if e.Port != tunTo(mHost[b], home) || e.Packet.TunnelID != seg || e.Packet.IPv4Src != vipIP ||
					e.Packet.TPSrc != 80 || e.Packet.TTL != 64 || e.Packet.EthDst != rA {
					t.Fatalf("reply on the member's chassis %s: got port %d %s, want it unchanged to the home %s\n%s",
						mHost[b], e.Port, e.Packet, home, r.TraceText())
				}
				reply = tcpPkt(e.Packet.EthSrc, e.Packet.EthDst, e.Packet.IPv4Src, e.Packet.IPv4Dst, e.Packet.TPSrc, e.Packet.TPDst)
				reply.TTL, reply.TunnelID, in = e.Packet.TTL, e.Packet.TunnelID, tunTo(home, mHost[b])
			}
			leavesHome(t, sw, in, reply, 63)
			pick = (b + 1) % len(mIP)
			r, err = sw.Walk(uplinkPort, syn)
			e = one(t, r, err)
			if usesGroup(r) || e.Port != wantPort || e.Packet.EthDst != mMAC[b] {
				t.Fatalf("established packet: got port %d %s (group used: %v)\n%s", e.Port, e.Packet, usesGroup(r), r.TraceText())
			}
		})
	}
	t.Run("every member down: outside SYNs get a RST from the floating IP", func(t *testing.T) {
		s := makeDSR(newFIPScenario())
		for i := range mIP {
			s.member(i, "INACTIVE", 1)
		}
		sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), nil)
		outsideRST(t, s, home, sw, 0)
	})
}

// Golden: the home chassis's lb flows and a member chassis's (the
// steering flows F1 and F2).
func TestGoldenFloatingIP(t *testing.T) {
	s := newFIPScenario()
	home := s.home(t)
	var b strings.Builder
	for _, c := range []string{"hv1", "hv2", "hv3"} {
		role := "member chassis"
		if c == home {
			role = "home"
		}
		fmt.Fprintf(&b, "## %s (%s): lb\n%s\n", c, role, lbState(t, s.input(c)).Text())
	}
	d, err := nat.New().Desired(s.input(home))
	if err != nil {
		t.Fatal(err)
	}
	st := flow.NewState()
	for _, f := range d.Flows {
		st.AddFlow(f)
	}
	fmt.Fprintf(&b, "## %s (home): nat\n%s", home, st.Text())
	checkGolden(t, "fip.golden", b.String())
}

// A VLAN external network (tag 300 on the uplink) and SOURCE_IP
// persistence: the tagged SYNs of one outside client all reach one
// member, untagged; that member's replies leave the home's uplink tagged
// 300 from the floating IP.
func TestWalkFloatingIPVLANSourceIP(t *testing.T) {
	s := newFIPScenario()
	x := *s.recs[model.KindNetwork]["net-x"].(*model.Network)
	x.NetworkType, x.SegmentationID = model.NetVLAN, 300
	s.put(&x)
	v := *s.recs[model.KindVIP]["vip-1"].(*model.LBVIP)
	v.SessionPersistence = &model.SessionPersistence{Type: "SOURCE_IP"}
	s.put(&v)
	home := s.home(t)
	sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), nil)
	chosen := map[flow.IPv4]bool{}
	for i := range 10 {
		sport := uint16(inetSport + i)
		syn := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, sport, 80)
		syn.VLANs = []fakeswitch.VLAN{{TPID: flow.EthTypeVLAN, VID: 300}}
		untagged := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, sport, 80)
		if r, err := sw.Walk(uplinkPort, untagged); err != nil || len(r.Emits) != 0 {
			t.Fatalf("untagged SYN on a VLAN external network: %s", r)
		}
		r, err := sw.Walk(uplinkPort, syn)
		e := one(t, r, err)
		if usesGroup(r) || e.Packet.TPDst != memberTP || len(e.Packet.VLANs) != 0 {
			t.Fatalf("tagged SYN: got port %d %s (group used: %v)\n%s", e.Port, e.Packet, usesGroup(r), r.TraceText())
		}
		chosen[e.Packet.IPv4Dst] = true
		b := map[flow.IPv4]int{mIP[0]: 0, mIP[1]: 1, mIP[2]: 2}[e.Packet.IPv4Dst]
		reply, in := tcpPkt(mMAC[b], rA, mIP[b], inetIP, memberTP, sport), uint32(portMember)
		if mHost[b] != home {
			reply.TunnelID, in = seg, tunTo(home, mHost[b])
		}
		r, err = sw.Walk(in, reply)
		e = one(t, r, err)
		if e.Port != uplinkPort || e.Packet.IPv4Src != fipIP || len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != 300 {
			t.Fatalf("reply: got port %d %s, want the uplink tagged 300 from %s\n%s", e.Port, e.Packet, fipIP, r.TraceText())
		}
	}
	if len(chosen) != 1 {
		t.Fatalf("one outside client's connections went to %v, want one member", chosen)
	}
}

// A member with a floating IP of its own (m2, on hv2; the VIP's home is
// elsewhere): an outside client's connection to that floating IP is
// served on hv2 by app/nat, and m2's replies leave hv2's uplink from
// m2's floating IP; F1 does not steer them to the VIP's home (only the
// replies of connections the home sent, tracked by trackFromHome, are).
func TestFloatingIPOfAMember(t *testing.T) {
	s := newFIPScenario()
	home := s.home(t)
	b := 1
	if mHost[b] == home {
		b = 2
	}
	fip2, mac2 := flow.MustIPv4("198.51.100.60"), flow.MustMAC("fa:16:3e:ff:00:60")
	s.put(&model.Port{Base: model.Base{ID: "f2000000-0000-4000-8000-000000000002"}, NetworkID: "net-x", MACAddress: mac2.String(),
		DeviceOwner: "network:floatingip", DeviceID: "f1000000-0000-4000-8000-000000000002", AdminStateUp: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-x", IPAddress: fip2.String()}}})
	s.put(&model.FloatingIP{Base: model.Base{ID: "f1000000-0000-4000-8000-000000000002", ProjectID: "t"}, FloatingNetworkID: "net-x",
		FloatingIPAddress: fip2.String(), FloatingPortID: "f2000000-0000-4000-8000-000000000002",
		PortID: fmt.Sprintf("d%07d-0000-4000-8000-000000000000", b), FixedIPAddress: mIP[b].String(), RouterID: idRouter})
	msw := fipSwitch(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
	r, err := msw.Walk(uplinkPort, tcpPkt(gwMAC, mac2, inetIP, fip2, inetSport, memberTP))
	if e := one(t, r, err); e.Port != portMember || e.Packet.IPv4Dst != mIP[b] {
		t.Fatalf("outside SYN to m%d's own floating IP: out %d %s\n%s", b+1, e.Port, e.Packet, r.TraceText())
	}
	r, err = msw.Walk(portMember, tcpPkt(mMAC[b], rA, mIP[b], inetIP, memberTP, inetSport))
	e := one(t, r, err)
	if e.Port != uplinkPort || e.Packet.IPv4Src != fip2 || e.Packet.TPSrc != memberTP {
		t.Fatalf("m%d's reply on its own floating IP's connection: out %d %s, want %s's uplink from %s:%d (not steered to the VIP's home %s)\n%s",
			b+1, e.Port, e.Packet, mHost[b], fip2, memberTP, home, r.TraceText())
	}
}

// A ping from the internet to a VIP's floating IP is answered by the
// floating IP's home (app/nat's classifier flow), flat and VLAN external
// networks, healthy members or none: from the floating IP and its port's
// MAC back out of the uplink to the sender (the tag kept); no other
// chassis answers (they do not take the floating IP's traffic).
func TestWalkFloatingIPEcho(t *testing.T) {
	for _, vlan := range []uint16{0, 300} {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("external_vlan_%d_down_%v", vlan, down), func(t *testing.T) {
				s := newFIPScenario()
				if vlan != 0 {
					x := *s.recs[model.KindNetwork]["net-x"].(*model.Network)
					x.NetworkType, x.SegmentationID = model.NetVLAN, int(vlan)
					s.put(&x)
				}
				if down {
					for i := range mIP {
						s.member(i, "INACTIVE", 1)
					}
				}
				home := s.home(t)
				sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), nil)
				ping := fakeswitch.Packet{EthSrc: gwMAC, EthDst: fipMAC, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP,
					IPv4Src: inetIP, IPv4Dst: fipIP, TTL: 64, ICMPType: 8}
				if vlan != 0 {
					ping.VLANs = []fakeswitch.VLAN{{TPID: flow.EthTypeVLAN, VID: vlan}}
				}
				r, err := sw.Walk(uplinkPort, ping)
				e := one(t, r, err)
				p := e.Packet
				if e.Port != uplinkPort || p.IPv4Src != fipIP || p.IPv4Dst != inetIP || p.ICMPType != 0 || p.EthSrc != fipMAC || p.EthDst != gwMAC ||
					(vlan == 0) != (len(p.VLANs) == 0) || (vlan != 0 && p.VLANs[0].VID != vlan) {
					t.Fatalf("the internet's ping to the floating IP: out %d %s, want the echo reply from %s (%s) back out of the uplink (vlan %d)\n%s",
						e.Port, p, fipIP, fipMAC, vlan, r.TraceText())
				}
			})
		}
	}
}
