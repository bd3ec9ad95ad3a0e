package nat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// chassis loads a chassis of the scenario with isolation, l3router and
// nat into a fake switch; it returns nat's Desired too.
func chassis(t *testing.T, s *scenario, c string) (*fakeswitch.Switch, app.Desired) {
	t.Helper()
	st, ds := state(t, s.input(c), isolation.New(isolation.Config{}), l3router.New(), New())
	return fakeswitch.FromState(st, 1, 2, tunnel, uplink, flow.PortLocal), ds[pipeline.AppNAT]
}

func walk(t *testing.T, sw *fakeswitch.Switch, in uint32, p fakeswitch.Packet) *fakeswitch.Result {
	t.Helper()
	r, err := sw.Walk(in, p)
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	return r
}

func only(t *testing.T, r *fakeswitch.Result) fakeswitch.Emit {
	t.Helper()
	if len(r.Emits) != 1 {
		t.Fatalf("verdict %s, want exactly one emit\n%s", r, r.TraceText())
	}
	return r.Emits[0]
}

// learn feeds the handler the external gateway's ARP reply as the switch
// would punt it, and installs the flows it answers with.
func learn(t *testing.T, sw *fakeswitch.Switch, h app.SwitchHandler, st State) app.Out {
	t.Helper()
	frame := arpFrame(2, gwMAC, "198.51.100.1", "198.51.100.50", fipMAC1)
	e := only(t, walk(t, sw, uplink, parse(t, frame)))
	if !e.Punt() || e.Cookie != cookie("net-x") {
		t.Fatalf("the gateway's ARP reply: %s, want a punt with net-x's cookie", e)
	}
	var out app.Out
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: uplink, Cookie: e.Cookie, Table: e.Table, Data: frame, State: st}, &out)
	if len(out.Flows) != 1 {
		t.Fatalf("handler answered %+v, want one flow", out)
	}
	if err := pipeline.Check(&out.Flows[0].Flow); err != nil {
		t.Fatal(err)
	}
	sw.Install(&out.Flows[0].Flow)
	return out
}

func TestWalkFloatingIPIn(t *testing.T) {
	s := newScenario()
	sw, _ := chassis(t, s, "hv1")
	t.Run("ARP for the floating IP is answered with its port's MAC", func(t *testing.T) {
		e := only(t, walk(t, sw, uplink, parse(t, arpFrame(1, inetMAC, "198.51.100.1", "198.51.100.50", 0))))
		p := e.Packet
		if e.Port != flow.PortInPort && e.Port != uplink {
			t.Fatalf("ARP answer out %d", e.Port)
		}
		if p.ARPOp != 2 || p.ARPSha != fipMAC1 || p.EthSrc != fipMAC1 || p.EthDst != inetMAC || p.ARPSpa != mustIP("198.51.100.50") || p.ARPTpa != mustIP("198.51.100.1") {
			t.Fatalf("ARP answer %s", p)
		}
	})
	t.Run("ARP for an unassociated floating IP or one behind a router with no gateway is not answered", func(t *testing.T) {
		for _, ip := range []string{"198.51.100.51", "198.51.100.52", "198.51.100.10"} {
			if r := walk(t, sw, uplink, parse(t, arpFrame(1, inetMAC, "198.51.100.1", ip, 0))); len(r.Ports()) != 0 {
				t.Errorf("ARP for %s: %s", ip, r)
			}
		}
	})
	t.Run("to the floating IP: DNAT to a1, routed", func(t *testing.T) {
		e := only(t, walk(t, sw, uplink, ping(t, inetMAC, fipMAC1, "203.0.113.80", "198.51.100.50", 64)))
		p := e.Packet
		if e.Port != 1 || p.IPv4Dst != mustIP("10.0.1.11") || p.IPv4Src != mustIP("203.0.113.80") || p.EthDst != macA1 || p.EthSrc != rA1 || p.TTL != 63 {
			t.Fatalf("DNAT: %s out %d, want 10.0.1.11 via rA1 to a1 out 1 TTL 63", p, e.Port)
		}
	})
	t.Run("to another floating IP: dropped", func(t *testing.T) {
		for _, ip := range []string{"198.51.100.51", "198.51.100.52"} {
			if r := walk(t, sw, uplink, ping(t, inetMAC, fipMAC3, "203.0.113.80", ip, 64)); len(r.Ports()) != 0 {
				t.Errorf("%s: %s", ip, r)
			}
		}
	})
	t.Run("hv2 does not answer for a1's floating IP", func(t *testing.T) {
		sw2, _ := chassis(t, s, "hv2")
		if r := walk(t, sw2, uplink, parse(t, arpFrame(1, inetMAC, "198.51.100.1", "198.51.100.50", 0))); len(r.Emits) != 0 {
			t.Errorf("hv2 ARP: %s", r)
		}
		if r := walk(t, sw2, uplink, ping(t, inetMAC, fipMAC1, "203.0.113.80", "198.51.100.50", 64)); len(r.Emits) != 0 {
			t.Errorf("hv2 IP: %s", r)
		}
	})
}

func mustIP(s string) flow.IPv4 {
	v, err := flow.ParseIPv4(s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestWalkFloatingIPOut(t *testing.T) {
	s := newScenario()
	sw, d := chassis(t, s, "hv1")
	st := d.Handler.(State)
	h := New().NewSwitchHandler(1)
	out := ping(t, macA1, rA1, "10.0.1.11", "203.0.113.80", 64)
	held := []byte("the punted egress frame (rewritten by dnat)")
	t.Run("before the gateway's MAC is known: punted, the handler ARPs for it and holds the packet", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, out))
		if !e.Punt() || e.Cookie != cookie("net-x") || e.Table != pipeline.SNAT.ID() || e.Packet.IPv4Src != mustIP("198.51.100.50") {
			t.Fatalf("egress before learning: %s (%s)", e, e.Packet)
		}
		var o app.Out
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Cookie: e.Cookie, Table: e.Table, Data: append(make([]byte, 12), append([]byte{8, 0}, held...)...), State: st}, &o)
		if len(o.Flows) != 0 || len(o.PacketOuts) != 1 {
			t.Fatalf("handler: %+v", o)
		}
		po := o.PacketOuts[0]
		arp := parse(t, po.Data)
		if arp.ARPOp != 1 || arp.ARPTpa != mustIP("198.51.100.1") || arp.ARPSpa != mustIP("198.51.100.50") || arp.ARPSha != fipMAC1 ||
			len(po.Actions) != 1 || po.Actions[0] != (flow.Output{Port: uplink}) {
			t.Fatalf("handler's ARP request %s, actions %v", arp, po.Actions)
		}
	})
	o := learn(t, sw, h, st)
	if len(o.PacketOuts) != 1 || string(o.PacketOuts[0].Data[14:]) != string(held) ||
		len(o.PacketOuts[0].Actions) != 2 || o.PacketOuts[0].Actions[0] != (flow.SetField{F: flow.EthDst, Value: uint64(gwMAC)}) ||
		o.PacketOuts[0].Actions[1] != (flow.Output{Port: uplink}) {
		t.Fatalf("the held packet is not sent on to the gateway once learned: %+v", o.PacketOuts)
	}
	t.Run("handler: a punt after learning (the flow idled out) reinstalls the flow and sends the packet on; other ARP is ignored", func(t *testing.T) {
		var o app.Out
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Cookie: cookie("net-x"), Table: pipeline.SNAT.ID(), Data: append(make([]byte, 12), 8, 0, 1), State: st}, &o)
		if len(o.Flows) != 1 || len(o.PacketOuts) != 2 || o.PacketOuts[0].Actions[0] != (flow.SetField{F: flow.EthDst, Value: uint64(gwMAC)}) ||
			parse(t, o.PacketOuts[1].Data).ARPTpa != mustIP("198.51.100.1") {
			t.Fatalf("%+v", o)
		}
		o = app.Out{}
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: uplink, Cookie: cookie("net-x"), Data: arpFrame(2, inetMAC, "198.51.100.7", "198.51.100.50", fipMAC1), State: st}, &o)
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Cookie: cookie("net-x"), Data: arpFrame(2, inetMAC, "198.51.100.1", "198.51.100.50", fipMAC1), State: st}, &o)
		if len(o.Flows)+len(o.PacketOuts) != 0 {
			t.Fatalf("ARP from another sender or port: %+v", o)
		}
	})
	t.Run("SNAT to the floating IP, out of this chassis's uplink to the gateway", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, out))
		p := e.Packet
		if e.Port != uplink || p.IPv4Src != mustIP("198.51.100.50") || p.IPv4Dst != mustIP("203.0.113.80") || p.EthSrc != fipMAC1 || p.EthDst != gwMAC || p.TTL != 63 || len(p.VLANs) != 0 {
			t.Fatalf("SNAT: %s out %d", p, e.Port)
		}
	})
	t.Run("to the external subnet itself too (the gateway's MAC)", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, ping(t, macA1, rA1, "10.0.1.11", "198.51.100.1", 64)))
		if e.Port != uplink || e.Packet.IPv4Src != mustIP("198.51.100.50") {
			t.Fatalf("%s out %d", e.Packet, e.Port)
		}
	})
	t.Run("east-west stays east-west: a1 to a2 routed by l3router, untranslated", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, ping(t, macA1, rA1, "10.0.1.11", "10.0.2.12", 64)))
		if e.Port != tunnel || e.Packet.IPv4Src != mustIP("10.0.1.11") || e.Packet.TunnelID != 101 || e.Packet.EthDst != macA2 {
			t.Fatalf("east-west: %s out %d", e.Packet, e.Port)
		}
	})
	t.Run("b1 (same fixed IP, router with no gateway) is not translated", func(t *testing.T) {
		r := walk(t, sw, 2, ping(t, macB1, flow.MustMAC("fa:16:3e:bb:01:01"), "10.0.1.11", "203.0.113.80", 64))
		for _, e := range r.Emits {
			if !e.Punt() || e.Table != pipeline.L3Routing.ID() {
				t.Fatalf("b1 to the internet: %s, want only l3router's no-route punt", r)
			}
		}
	})
	t.Run("a spoofed source from a1 is not translated", func(t *testing.T) {
		if r := walk(t, sw, 1, ping(t, macA1, rA1, "10.0.1.99", "203.0.113.80", 64)); len(r.Ports()) != 0 {
			t.Fatalf("spoofed: %s", r)
		}
	})
	t.Run("a1's fixed IP from another port of its network (no port security) does not get the floating IP", func(t *testing.T) {
		s2 := newScenario()
		s2.vm("a9", "net-a1", flow.MustMAC("fa:16:3e:0a:00:09"), "10.0.1.19", "hv1", 7)
		s2.recs[model.KindPort][portID("a9")].(*model.Port).PortSecurity = false
		sw2, d2 := chassis(t, s2, "hv1")
		sw2.SetPorts(1, 2, 7, tunnel, uplink, flow.PortLocal)
		learn(t, sw2, New().NewSwitchHandler(1), d2.Handler.(State))
		r := walk(t, sw2, 7, ping(t, flow.MustMAC("fa:16:3e:0a:00:09"), rA1, "10.0.1.11", "203.0.113.80", 64))
		for _, e := range r.Emits {
			if e.Port == uplink {
				t.Fatalf("port 7 borrowed a1's floating IP: %s\n%s", r, r.TraceText())
			}
		}
		// a1 itself still gets it on that switch.
		if e := only(t, walk(t, sw2, 1, out)); e.Port != uplink {
			t.Fatalf("a1: %s", e)
		}
	})
	t.Run("the round trip: the reply comes back to a1", func(t *testing.T) {
		e := only(t, walk(t, sw, uplink, ping(t, gwMAC, fipMAC1, "203.0.113.80", "198.51.100.50", 64)))
		if e.Port != 1 || e.Packet.IPv4Dst != mustIP("10.0.1.11") {
			t.Fatalf("%s out %d", e.Packet, e.Port)
		}
	})
}

// TestAnnounce: the chassis hosting a floating IP's VM announces it (a
// gratuitous ARP) and asks for the gateway, out of its uplink; another
// chassis does not; after a move, the new chassis does.
func TestAnnounce(t *testing.T) {
	s := newScenario()
	check := func(c string, want []string) {
		t.Helper()
		_, d := chassis(t, s, c)
		var got []string
		for _, a := range d.Announce {
			p := parse(t, a.Data)
			if a.Port != uplink || p.ARPOp != 1 || p.EthDst != flow.MAC(0xffffffffffff) {
				t.Errorf("%s: announcement %s out %d", c, p, a.Port)
			}
			got = append(got, p.ARPSha.String()+" "+p.ARPSpa.String()+">"+p.ARPTpa.String())
		}
		if len(got) != len(want) {
			t.Fatalf("%s announces %v, want %v", c, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s announces %v, want %v", c, got, want)
			}
		}
	}
	check("hv1", []string{"fa:16:3e:ff:00:50 198.51.100.50>198.51.100.50", "fa:16:3e:ff:00:50 198.51.100.50>198.51.100.1"})
	check("hv2", nil)
	// Move f1 to a2 (on hv2, net-a2).
	f := s.recs["floatingips"][portID("f1")].(*model.FloatingIP)
	f.PortID, f.FixedIPAddress = portID("a2"), "10.0.2.12"
	check("hv1", nil)
	check("hv2", []string{"fa:16:3e:ff:00:50 198.51.100.50>198.51.100.50", "fa:16:3e:ff:00:50 198.51.100.50>198.51.100.1"})
	sw2, _ := chassis(t, s, "hv2")
	e := only(t, walk(t, sw2, uplink, ping(t, inetMAC, fipMAC1, "203.0.113.80", "198.51.100.50", 64)))
	if e.Port != 1 || e.Packet.IPv4Dst != mustIP("10.0.2.12") || e.Packet.EthSrc != rA2 || e.Packet.EthDst != macA2 {
		t.Fatalf("after the move: %s out %d", e.Packet, e.Port)
	}
}
