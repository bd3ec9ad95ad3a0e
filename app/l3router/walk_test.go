package l3router

import (
	"fmt"
	"net"
	"reflect"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// hv1 of the scenario with both apps: 1 a1 (net-a1), 2 b1 (net-b1), 5 a3
// (net-a2), 10 tunnel to hv2, 20 physnet1 uplink.
func hv1(t *testing.T) (*fakeswitch.Switch, Gateways) {
	t.Helper()
	st, hs := state(t, newScenario().input("hv1"), isolation.New(isolation.Config{}), New())
	gws, _ := hs[pipeline.AppL3Router].(Gateways)
	return fakeswitch.FromState(st, 1, 2, 5, 10, 20, flow.PortLocal), gws
}

func walk(t *testing.T, sw *fakeswitch.Switch, in uint32, p fakeswitch.Packet) *fakeswitch.Result {
	t.Helper()
	r, err := sw.Walk(in, p)
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	return r
}

// only returns the single emit of r, failing otherwise.
func only(t *testing.T, r *fakeswitch.Result) fakeswitch.Emit {
	t.Helper()
	if len(r.Emits) != 1 {
		t.Fatalf("verdict %s, want exactly one emit\n%s", r, r.TraceText())
	}
	return r.Emits[0]
}

func checkRouted(t *testing.T, e fakeswitch.Emit, port uint32, src, dst flow.MAC, ttl uint8) {
	t.Helper()
	if e.Port != port || e.Packet.EthSrc != src || e.Packet.EthDst != dst || e.Packet.TTL != ttl {
		t.Fatalf("routed packet %s out %d, want out %d from %s to %s TTL %d", e.Packet, e.Port, port, src, dst, ttl)
	}
}

func TestWalkRoutedUnicast(t *testing.T) {
	sw, _ := hv1(t)
	t.Run("a1 to a2 on hv2 leaves on the tunnel with net-a2's key", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.12", 64, false)))
		checkRouted(t, e, 10, rA2, macA2, 63)
		if e.Packet.TunnelID != 101 {
			t.Fatalf("tun_id %d, want 101", e.Packet.TunnelID)
		}
	})
	t.Run("a1 to a3 on hv1 is delivered locally", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.13", 64, false)))
		checkRouted(t, e, 5, rA2, macA3, 63)
		if e.Packet.TunnelID != 0 || len(e.Packet.VLANs) != 0 {
			t.Fatalf("local copy carries tun_id/VLAN: %s", e.Packet)
		}
	})
	t.Run("a1 to av on the VLAN network leaves tagged 200 on the uplink", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.3.14", 64, false)))
		checkRouted(t, e, 20, rAV, macAV, 63)
		if len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != 200 {
			t.Fatalf("uplink tags %+v", e.Packet.VLANs)
		}
	})
	t.Run("a3 to a1 back across the router (the other ingress interface)", func(t *testing.T) {
		e := only(t, walk(t, sw, 5, pkt(t, macA3, rA2, "10.0.2.13", "10.0.1.11", 5, false)))
		checkRouted(t, e, 1, rA1, macA1, 4)
	})
}

// Tenant B's identical subnets go through rB only, with B's keys, and a
// B packet sent to A's router MAC is not routed.
func TestWalkOverlappingTenants(t *testing.T) {
	sw, _ := hv1(t)
	e := only(t, walk(t, sw, 2, pkt(t, macB1, rB1, "10.0.1.11", "10.0.2.12", 64, false)))
	checkRouted(t, e, 10, rB2, macB2, 63)
	if e.Packet.TunnelID != 111 {
		t.Fatalf("tenant B routed with tun_id %d, want 111", e.Packet.TunnelID)
	}
	r := walk(t, sw, 2, pkt(t, macB1, rA1, "10.0.1.11", "10.0.2.12", 64, false))
	for _, e := range r.Emits {
		if e.Punt() || e.Port == 1 || e.Port == 5 || e.Packet.TunnelID != 0 && e.Packet.TunnelID != 110 || e.Packet.EthDst != rA1 {
			t.Fatalf("tenant B frame to A's router MAC leaked: %s\n%s", e, r.TraceText())
		}
	}
}

func TestWalkTTLExpired(t *testing.T) {
	sw, gws := hv1(t)
	for _, ttl := range []uint8{0, 1} {
		for _, dst := range []string{"10.0.2.12", "10.0.2.13", "8.8.8.8"} { // remote, local, no route
			in := pkt(t, macA1, rA1, "10.0.1.11", dst, ttl, false)
			e := only(t, walk(t, sw, 1, in))
			if !e.Punt() || e.Reason != fakeswitch.ReasonAction || e.Table != pipeline.L3Routing.ID() || pipeline.CookieApp(e.Cookie) != pipeline.AppL3Router {
				t.Fatalf("TTL %d to %s: %s, want a punt from l3_routing", ttl, dst, e)
			}
			if !metered(sw, e, "ta") {
				t.Fatalf("TTL %d: the punt is not metered by l3_punt", ttl)
			}
			if e.Packet.WireString() != in.WireString() {
				t.Fatalf("punted packet rewritten: %s", e.Packet.WireString())
			}
			checkICMP(t, gws, frame(t, macA1, rA1, "10.0.1.11", dst, ttl, false), "10.0.1.1", layers.ICMPv4TypeTimeExceeded, layers.ICMPv4CodeTTLExceeded)
		}
	}
	// TTL 2 is routed and arrives with TTL 1.
	checkRouted(t, only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.12", 2, false))), 10, rA2, macA2, 1)
	// A ping to the gateway with TTL 1 is the router's own: answered.
	if e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.1.1", 1, true))); e.Port != 1 || e.Packet.ICMPType != 0 {
		t.Fatalf("TTL-1 ping to the gateway: %s out %d", e.Packet, e.Port)
	}
}

func TestWalkNoRoute(t *testing.T) {
	sw, gws := hv1(t)
	for _, dst := range []string{"8.8.8.8", "10.0.4.15"} { // the internet; a subnet not on the router
		t.Run(dst, func(t *testing.T) {
			e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", dst, 64, false)))
			if !e.Punt() || e.Reason != fakeswitch.ReasonAction || e.Table != pipeline.L3Routing.ID() || pipeline.CookieApp(e.Cookie) != pipeline.AppL3Router {
				t.Fatalf("no route: %s, want a punt from l3_routing", e)
			}
			if !metered(sw, e, "ta") {
				t.Fatal("the no-route punt is not metered by l3_punt")
			}
			checkICMP(t, gws, frame(t, macA1, rA1, "10.0.1.11", dst, 64, false), "10.0.1.1", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet)
		})
	}
	// An address of a connected subnet that no port holds is dropped.
	if r := walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.99", 64, false)); !r.Dropped() {
		t.Fatalf("unknown host on a connected subnet: %s", r)
	}
}

func TestWalkGateway(t *testing.T) {
	sw, _ := hv1(t)
	t.Run("ARP for the gateway is answered with the interface MAC", func(t *testing.T) {
		req := fakeswitch.Packet{EthSrc: macA1, EthDst: flow.MustMAC("ff:ff:ff:ff:ff:ff"), EthType: flow.EthTypeARP, ARPOp: 1,
			ARPSha: macA1, ARPSpa: flow.MustIPv4("10.0.1.11"), ARPTpa: flow.MustIPv4("10.0.1.1")}
		e := only(t, walk(t, sw, 1, req))
		if e.Port != flow.PortInPort && e.Port != 1 || e.Packet.ARPOp != 2 || e.Packet.ARPSha != rA1 || e.Packet.EthSrc != rA1 ||
			e.Packet.ARPSpa != flow.MustIPv4("10.0.1.1") || e.Packet.EthDst != macA1 {
			t.Fatalf("ARP reply %s out %d", e.Packet, e.Port)
		}
	})
	for _, gw := range []string{"10.0.1.1", "10.0.2.1"} {
		t.Run("ping "+gw, func(t *testing.T) {
			e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", gw, 64, true)))
			p := e.Packet
			if e.Port != 1 || p.EthSrc != rA1 || p.EthDst != macA1 || p.IPv4Src != flow.MustIPv4(gw) || p.IPv4Dst != flow.MustIPv4("10.0.1.11") ||
				p.ICMPType != 0 {
				t.Fatalf("echo reply %s out %d", p, e.Port)
			}
		})
	}
	t.Run("tenant B pings its own gateway", func(t *testing.T) {
		e := only(t, walk(t, sw, 2, pkt(t, macB1, rB1, "10.0.1.11", "10.0.1.1", 64, true)))
		if e.Port != 2 || e.Packet.EthSrc != rB1 || e.Packet.ICMPType != 0 {
			t.Fatalf("echo reply %s out %d", e.Packet, e.Port)
		}
	})
}

// metered reports whether the flow that punted e uses project's l3_punt
// meter (the trace names the flow; its table and cookie find it).
func metered(sw *fakeswitch.Switch, e fakeswitch.Emit, project string) bool {
	n := 0
	for _, x := range sw.Entries() {
		if x.Flow.Cookie == e.Cookie && x.Flow.Table == e.Table && len(x.Flow.Actions) == 1 && x.Flow.Actions[0] == (flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}) {
			if x.Flow.Meter != pipeline.MeterL3.ID(project) {
				return false
			}
			n++
		}
	}
	return n > 0
}

// checkICMP runs the handler on a punted frame and checks its reply.
func checkICMP(t *testing.T, gws Gateways, in []byte, from string, typ, code uint8) {
	t.Helper()
	h := New().NewSwitchHandler(1)
	var out app.Out
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Data: in, State: gws}, &out)
	if len(out.PacketOuts) != 1 {
		t.Fatalf("handler sent %d packet-outs, want 1", len(out.PacketOuts))
	}
	po := out.PacketOuts[0]
	if len(po.Actions) != 1 || po.Actions[0] != (flow.Output{Port: 1}) {
		t.Fatalf("packet-out actions %v, want output:1", po.Actions)
	}
	p := gopacket.NewPacket(po.Data, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if eth == nil || ip == nil || ic == nil || p.ErrorLayer() != nil {
		t.Fatalf("reply does not decode: %v", p)
	}
	if eth.SrcMAC.String() != rA1.String() || eth.DstMAC.String() != macA1.String() || !ip.SrcIP.Equal(net.ParseIP(from)) ||
		!ip.DstIP.Equal(net.ParseIP("10.0.1.11")) || ic.TypeCode.Type() != typ || ic.TypeCode.Code() != code {
		t.Fatalf("reply %s > %s, %s > %s, %s", eth.SrcMAC, eth.DstMAC, ip.SrcIP, ip.DstIP, ic.TypeCode)
	}
	if want := in[14 : 14+28]; string(ic.Payload) != string(want) {
		t.Fatalf("quoted %x, want the original header and 8 bytes %x", ic.Payload, want)
	}
	// Never an ICMP error about an ICMP error.
	var again app.Out
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Data: rewriteDst(po.Data, in[0:6]), State: gws}, &again)
	if len(again.PacketOuts) != 0 {
		t.Fatal("handler answered an ICMP error")
	}
}

// rewriteDst returns a copy of frame sent to mac (so an ICMP error looks
// like it was sent to the router).
func rewriteDst(frame, mac []byte) []byte {
	out := append([]byte(nil), frame...)
	copy(out[0:6], mac)
	return out
}

// Extra routes of rA, longest prefix first: 10.9.1.0/24 via a3 (on hv1)
// beats 10.9.0.0/16 via a2 (hv2); a route whose nexthop no port holds
// and a route overlapping a connected subnet are not used.
func TestWalkExtraRoutes(t *testing.T) {
	sw, gws := hv1(t)
	t.Run("10.9.2.5 via a2 on hv2: the tunnel, net-a2's key, a2's MAC", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.9.2.5", 64, false)))
		checkRouted(t, e, 10, rA2, macA2, 63)
		if e.Packet.TunnelID != 101 || e.Packet.IPv4Dst != flow.MustIPv4("10.9.2.5") {
			t.Fatalf("routed via a2: %s", e.Packet)
		}
	})
	t.Run("10.9.1.5 via a3 on hv1 (longest prefix)", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.9.1.5", 64, false)))
		checkRouted(t, e, 5, rA2, macA3, 63)
	})
	t.Run("from the nexthop's own subnet (hairpin on net-a2)", func(t *testing.T) {
		e := only(t, walk(t, sw, 5, pkt(t, macA3, rA2, "10.0.2.13", "10.9.2.5", 64, false)))
		checkRouted(t, e, 10, rA2, macA2, 63)
	})
	t.Run("TTL 1 to a routed destination: time exceeded", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.9.2.5", 1, false)))
		if !e.Punt() || !metered(sw, e, "ta") {
			t.Fatalf("TTL 1 via an extra route: %s", e)
		}
	})
	t.Run("nexthop with no port: net unreachable", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.7.0.5", 64, false)))
		if !e.Punt() || !metered(sw, e, "ta") {
			t.Fatalf("unresolved nexthop: %s, want the no-route punt", e)
		}
		checkICMP(t, gws, frame(t, macA1, rA1, "10.0.1.11", "10.7.0.5", 64, false), "10.0.1.1", layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet)
	})
	t.Run("a route overlapping a connected subnet: the subnet wins", func(t *testing.T) {
		if r := walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.99", 64, false)); !r.Dropped() {
			t.Fatalf("10.0.2.99 (connected, no port) took the overlapping route: %s", r)
		}
		e := only(t, walk(t, sw, 1, pkt(t, macA1, rA1, "10.0.1.11", "10.0.2.12", 64, false)))
		checkRouted(t, e, 10, rA2, macA2, 63)
	})
	t.Run("tenant B's router has no such route", func(t *testing.T) {
		e := only(t, walk(t, sw, 2, pkt(t, macB1, rB1, "10.0.1.11", "10.9.2.5", 64, false)))
		if !e.Punt() {
			t.Fatalf("tenant B to 10.9.2.5: %s, want no route", e)
		}
	})
}

// One tenant's punts (TTL expired, no route) go through its own
// router's project's meter, so a non-admin tenant flooding its router
// with TTL-1 packets (or scans to nowhere) cannot use up another
// tenant's ICMP errors on the same chassis: tenant B's punts through
// tb's meter, A's through ta's, two meters on hv1, each installed.
func TestPuntMeterPerProject(t *testing.T) {
	st, _ := state(t, newScenario().input("hv1"), isolation.New(isolation.Config{}), New())
	sw := fakeswitch.FromState(st, 1, 2, 5, 10, 20, flow.PortLocal)
	if pipeline.MeterL3.ID("ta") == pipeline.MeterL3.ID("tb") {
		t.Fatal("the two projects' meters collide; pick other project ids")
	}
	for _, c := range []struct {
		proj    string
		in      uint32
		src, gw flow.MAC
	}{{"ta", 1, macA1, rA1}, {"tb", 2, macB1, rB1}} {
		for _, p := range []fakeswitch.Packet{
			pkt(t, c.src, c.gw, "10.0.1.11", "10.0.2.12", 1, false), // TTL expired
			pkt(t, c.src, c.gw, "10.0.1.11", "8.8.8.8", 64, false),  // no route
		} {
			e := only(t, walk(t, sw, c.in, p))
			if !e.Punt() || !metered(sw, e, c.proj) {
				t.Fatalf("%s: %s, want a punt through %s's meter", c.proj, e, c.proj)
			}
		}
		if st.Meters[pipeline.MeterL3.ID(c.proj)] == nil {
			t.Fatalf("%s's l3_punt meter is not in the desired state", c.proj)
		}
	}
	n := 0
	for id := range st.Meters {
		if id > pipeline.MeterBase(pipeline.AppL3Router) && id < pipeline.MeterBase(pipeline.AppL3Router)+pipeline.MetersPerApp {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d l3_punt meters on hv1, want 2 (one per project)", n)
	}
}

// Each local VM port gets a gratuitous ARP of its network's gateway
// from the router's MAC on that network (a VM that asked before this
// chassis could answer would otherwise retry only after a second); a
// tenant's VM only its own router's, and no port of a network without
// a router, nor a router's own interface ports.
func TestGatewayARPs(t *testing.T) {
	d, err := New().Desired(newScenario().input("hv1"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, a := range d.Announce {
		got[fmt.Sprintf("%d %x", a.Port, a.Data)] = true
	}
	want := map[string]bool{}
	for _, w := range []struct {
		port uint32
		mac  flow.MAC
		gw   string
	}{{1, rA1, "10.0.1.1"}, {5, rA2, "10.0.2.1"}, {2, rB1, "10.0.1.1"}} {
		gw := flow.MustIPv4(w.gw)
		want[fmt.Sprintf("%d %x", w.port, flow.ARPRequest(w.mac, gw, gw))] = true
	}
	if !reflect.DeepEqual(got, want) || len(d.Announce) != len(want) {
		t.Fatalf("announcements on hv1:\n%v\nwant\n%v", got, want)
	}
	p := gopacket.NewPacket(d.Announce[0].Data, layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil || arp.Operation != layers.ARPRequest || !net.IP(arp.SourceProtAddress).Equal(net.IP(arp.DstProtAddress)) {
		t.Fatalf("not a gratuitous ARP request: %v", p)
	}
}
