package snat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

func walk(t *testing.T, sw *fakeswitch.Switch, in uint32, p fakeswitch.Packet) *fakeswitch.Result {
	t.Helper()
	r, err := sw.Walk(in, p)
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	for _, e := range r.Emits {
		if e.Punt() {
			t.Fatalf("punted to the controller: %s\n%s", e, r.TraceText())
		}
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

// tcp is a TCP segment from vm (to its router MAC) to an internet host.
func tcp(vm string, sport uint16, proto uint8) fakeswitch.Packet {
	rmac := rA1
	if vm == "w2" {
		rmac = rA2
	}
	return fakeswitch.Packet{EthSrc: vmMAC[vm], EthDst: rmac, EthType: flow.EthTypeIPv4, IPProto: proto, TTL: 64,
		IPv4Src: flow.MustIPv4(vmIP[vm]), IPv4Dst: flow.MustIPv4("198.51.100.7"), TPSrc: sport, TPDst: 80}
}

// reply is the internet host's answer to an SNATed packet e, as it
// arrives on an uplink (to the gateway port's MAC).
func reply(e fakeswitch.Packet) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: nhMAC, EthDst: gwMAC, EthType: flow.EthTypeIPv4, IPProto: e.IPProto, TTL: 60,
		IPv4Src: e.IPv4Dst, IPv4Dst: e.IPv4Src, TPSrc: e.TPDst, TPDst: e.TPSrc, ICMPType: 0}
}

// out SNATs vm's packet on its chassis and checks what leaves the uplink.
func out(t *testing.T, l *lab, c, vm string, p fakeswitch.Packet, blocks ...int) fakeswitch.Packet {
	t.Helper()
	e := only(t, walk(t, l.sw[c], map[string]uint32{"v1": 1, "v2": 1, "v3": 1, "w2": 2}[vm], p))
	q := e.Packet
	if e.Port != uplink || q.IPv4Src != extIP || q.EthSrc != ChassisMAC(c, "rA") || q.EthDst != nhMAC || q.TTL != 63 || len(q.VLANs) != 0 {
		t.Fatalf("%s on %s: %s out %d, want SNATed to %s out the uplink from %s to the next hop, TTL 63", vm, c, q, e.Port, extIP, ChassisMAC(c, "rA"))
	}
	if q.EthSrc == gwMAC {
		t.Fatal("SNATed frame carries the gateway port's MAC (only the ARP owner may)")
	}
	if p.IPProto == flow.ProtoTCP || p.IPProto == flow.ProtoUDP {
		ok := false
		for _, b := range blocks {
			if int(q.TPSrc)>>10 == b {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("%s on %s: source port %d not in its blocks %v", vm, c, q.TPSrc, blocks)
		}
	}
	return q
}

// back takes a reply through the ARP owner (hv1) and, when steered, the
// block's chassis, and checks it reaches vm un-NATed.
func back(t *testing.T, l *lab, c, vm string, p, orig fakeswitch.Packet) {
	t.Helper()
	r := walk(t, l.sw["hv1"], uplink, reply(p))
	var e fakeswitch.Emit
	if c == "hv1" {
		e = only(t, r)
	} else {
		tun := uint32(11 + map[string]int{"hv2": 1, "hv3": 2}[c])
		var steered *fakeswitch.Emit
		for i := range r.Emits {
			if r.Emits[i].Port == tun {
				steered = &r.Emits[i]
			}
		}
		if steered == nil {
			t.Fatalf("reply to %s not steered to %s's tunnel %d: %s\n%s", vm, c, tun, r, r.TraceText())
		}
		net := map[string]uint32{"w2": 101}[vm]
		if net == 0 {
			net = 100
		}
		if steered.Packet.TunnelID != pipeline.TunSNATReturn(net) || steered.Packet.IPv4Dst != extIP {
			t.Fatalf("steered %s with tun_id %#x, want %#x and the NATed address", steered.Packet, steered.Packet.TunnelID, pipeline.TunSNATReturn(net))
		}
		in := steered.Packet
		in.TunnelID = steered.Packet.TunnelID
		fromHV1 := uint32(11)
		r2 := walk(t, l.sw[c], fromHV1, in)
		e = only(t, r2)
	}
	q := e.Packet
	port := map[string]uint32{"v1": 1, "v2": 1, "v3": 1, "w2": 2}[vm]
	if e.Port != port || q.IPv4Dst != orig.IPv4Src || q.EthDst != vmMAC[vm] || q.EthSrc != orig.EthDst || q.IPv4Src != orig.IPv4Dst ||
		(orig.IPProto != flow.ProtoICMP && q.TPDst != orig.TPSrc) {
		t.Fatalf("reply delivered %s out %d, want to %s (%s:%d) out %d", q, e.Port, vm, orig.IPv4Src, orig.TPSrc, port)
	}
}

func TestWalkSNATOutAndSteeredReturn(t *testing.T) {
	l := newResolvedLab(t, newScenario())
	cases := []struct {
		c, vm  string
		blocks []int
	}{
		{"hv1", "v1", []int{1}},    // the ARP owner's own block: no tunnel
		{"hv2", "v2", []int{5, 6}}, // two blocks: bit 1 of the source port picks
		{"hv3", "v3", []int{20}},   // another chassis
		{"hv2", "w2", []int{9}},    // another network on hv2: its own block and zone
	}
	for _, proto := range []uint8{flow.ProtoTCP, flow.ProtoUDP} {
		for _, tc := range cases {
			for _, sport := range []uint16{40000, 40002} {
				orig := tcp(tc.vm, sport, proto)
				p := out(t, l, tc.c, tc.vm, orig, tc.blocks...)
				back(t, l, tc.c, tc.vm, p, orig)
			}
		}
	}
	// hv2's two blocks both carry traffic.
	// (Even ports, as Linux picks for connect(): bit 1 picks the block.)
	a := out(t, l, "hv2", "v2", tcp("v2", 50000, flow.ProtoTCP), 5, 6)
	b := out(t, l, "hv2", "v2", tcp("v2", 50002, flow.ProtoTCP), 5, 6)
	if a.TPSrc>>10 == b.TPSrc>>10 {
		t.Fatalf("source ports %d and %d share a block: only one of hv2's blocks is used", a.TPSrc, b.TPSrc)
	}
}

// (A lab per echo: the fake conntrack does not model ICMP ids, so two
// VMs' echoes to one host would be one connection to it.)
func TestWalkICMPEcho(t *testing.T) {
	for _, tc := range []struct{ c, vm string }{{"hv1", "v1"}, {"hv3", "v3"}, {"hv2", "w2"}} {
		l := newResolvedLab(t, newScenario())
		orig := tcp(tc.vm, 0, flow.ProtoICMP)
		orig.TPDst, orig.ICMPType = 0, 8
		p := out(t, l, tc.c, tc.vm, orig)
		rp := reply(p)
		// The owner copies the echo reply to every holder of a block.
		r := walk(t, l.sw["hv1"], uplink, rp)
		delivered := 0
		for _, e := range r.Emits {
			if e.Port == 1 && tc.c == "hv1" {
				delivered++
				continue
			}
			if e.Port < 11 || e.Port > 13 {
				t.Fatalf("echo reply out %d: %s", e.Port, r.TraceText())
			}
			for _, c := range []string{"hv2", "hv3"} {
				if e.Port != uint32(11+map[string]int{"hv2": 1, "hv3": 2}[c]) {
					continue
				}
				r2, err := l.sw[c].Walk(11, e.Packet)
				if err != nil {
					t.Fatal(err)
				}
				for _, e2 := range r2.Emits {
					if e2.Punt() {
						t.Fatal("punted")
					}
					if c != tc.c {
						t.Fatalf("%s delivered an echo reply that is %s's: %s", c, tc.c, r2.TraceText())
					}
					if e2.Packet.IPv4Dst != orig.IPv4Src || e2.Packet.EthDst != vmMAC[tc.vm] {
						t.Fatalf("echo reply delivered as %s", e2.Packet)
					}
					delivered++
				}
			}
		}
		if delivered != 1 {
			t.Fatalf("echo reply to %s on %s delivered %d times\n%s", tc.vm, tc.c, delivered, r.TraceText())
		}
	}
}

func TestWalkARP(t *testing.T) {
	l := newResolvedLab(t, newScenario())
	req := fakeswitch.Packet{EthSrc: nhMAC, EthDst: flow.MustMAC("ff:ff:ff:ff:ff:ff"), EthType: flow.EthTypeARP, ARPOp: 1,
		ARPSha: nhMAC, ARPSpa: flow.MustIPv4("172.24.4.1"), ARPTpa: extIP}
	e := only(t, walk(t, l.sw["hv1"], uplink, req))
	if (e.Port != flow.PortInPort && e.Port != uplink) || e.Packet.ARPOp != 2 || e.Packet.ARPSha != gwMAC || e.Packet.EthSrc != gwMAC ||
		e.Packet.ARPSpa != extIP || e.Packet.EthDst != nhMAC || e.Packet.ARPTha != nhMAC {
		t.Fatalf("owner's ARP reply %s out %d", e.Packet, e.Port)
	}
	for _, c := range []string{"hv2", "hv3"} {
		r := walk(t, l.sw[c], uplink, req)
		for _, e := range r.Emits {
			if e.Packet.ARPOp == 2 {
				t.Fatalf("%s (not the owner) answered ARP for the external IP: %s", c, r.TraceText())
			}
		}
		// Nor does it take return traffic from its uplink.
		if r := walk(t, l.sw[c], uplink, reply(fakeswitch.Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: extIP, IPv4Dst: flow.MustIPv4("198.51.100.7"), TPSrc: 5200, TPDst: 80})); !r.Dropped() {
			t.Fatalf("%s forwarded return traffic it does not own: %s", c, r.TraceText())
		}
	}
}

// Replies for no block, or for a connection that never left, die on the
// owner or on the block's chassis; nothing goes to the controller.
func TestWalkUnknownReturnDropped(t *testing.T) {
	l := newResolvedLab(t, newScenario())
	stray := reply(fakeswitch.Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: extIP, IPv4Dst: flow.MustIPv4("198.51.100.7"), TPSrc: 30000, TPDst: 80})
	if r := walk(t, l.sw["hv1"], uplink, stray); !r.Dropped() {
		t.Fatalf("reply to a port in no block: %s", r.TraceText())
	}
	stray.TPDst = 20500 // hv3's block, no connection there
	e := only(t, walk(t, l.sw["hv1"], uplink, stray))
	if r := walk(t, l.sw["hv3"], 11, e.Packet); !r.Dropped() {
		t.Fatalf("hv3 delivered a reply with no connection: %s", r.TraceText())
	}
}

// A chassis whose blocks are full drops the new connection by its
// exhaustion flow (counted), and takes nothing from another block.
func TestWalkExhaustion(t *testing.T) {
	s := newScenario()
	delete(s.recs[model_KindSNATBlock()], "172.24.4.10~20")
	s.put(snatBlock("hv3", "net-a1", 320, 6)) // 64 ports: 20480-20543
	l := newResolvedLab(t, s)
	for i := 0; i < 64; i++ {
		p := out(t, l, "hv3", "v3", tcp("v3", uint16(30000+i), flow.ProtoTCP), 20)
		if p.TPSrc < 20480 || p.TPSrc > 20543 {
			t.Fatalf("port %d outside the 64-port block", p.TPSrc)
		}
	}
	r := walk(t, l.sw["hv3"], 1, tcp("v3", 30064, flow.ProtoTCP))
	if !r.Dropped() {
		t.Fatalf("65th connection in a 64-port block: %s", r.TraceText())
	}
	dropped := false
	for _, line := range r.Trace {
		if contains(line, cookieText(ExhaustionCookie("rA", "net-a1"))) {
			dropped = true
		}
	}
	if !dropped {
		t.Fatalf("not dropped by the exhaustion flow:\n%s", r.TraceText())
	}
}

// A VLAN external network: SNATed egress leaves tagged, the owner takes
// tagged ARP and return traffic from the uplink (and answers ARP
// tagged), and the resolver learns from a tagged answer.
func TestWalkVLANExternal(t *testing.T) {
	s := newScenario()
	ext := s.recs[model.KindNetwork]["ext"].(*model.Network)
	v := *ext
	v.NetworkType, v.SegmentationID = model.NetVLAN, 300
	s.put(&v)
	l := newLab(t, s)
	tag := []fakeswitch.VLAN{{VID: 300}}
	for _, c := range chassis {
		a := answer(c)
		a.VLANs = tag
		r := walk0(t, l.sw[c], uplink, a)
		ps := r.Punts()
		if len(ps) != 1 {
			t.Fatalf("%s: tagged answer %s\n%s", c, r, r.TraceText())
		}
		var out app.Out
		l.h[c].PacketIn(&app.PacketIn{InPort: uplink, Cookie: ps[0].Cookie, Data: wireTagged(t, a, 300), State: l.st[c]}, &out)
		if len(out.Flows) == 0 {
			t.Fatalf("%s: nothing learned from a tagged answer", c)
		}
		for _, f := range out.Flows {
			ff := f.Flow
			l.sw[c].Install(&ff)
		}
	}
	orig := tcp("v3", 40000, flow.ProtoTCP)
	e := only(t, walk(t, l.sw["hv3"], 1, orig))
	if e.Port != uplink || len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != 300 || e.Packet.IPv4Src != extIP || e.Packet.EthDst != nhMAC {
		t.Fatalf("egress %s out %d, want tagged 300 from %s", e.Packet, e.Port, extIP)
	}
	rp := reply(e.Packet)
	rp.VLANs = tag
	r := walk(t, l.sw["hv1"], uplink, rp)
	var steered *fakeswitch.Emit
	for i := range r.Emits {
		if r.Emits[i].Port == 13 {
			steered = &r.Emits[i]
		}
	}
	if steered == nil || len(steered.Packet.VLANs) != 0 {
		t.Fatalf("tagged reply not steered untagged to hv3: %s\n%s", r, r.TraceText())
	}
	d := only(t, walk(t, l.sw["hv3"], 11, steered.Packet))
	if d.Port != 1 || d.Packet.IPv4Dst != orig.IPv4Src || d.Packet.TPDst != orig.TPSrc {
		t.Fatalf("delivered %s out %d", d.Packet, d.Port)
	}
	req := fakeswitch.Packet{EthSrc: nhMAC, EthDst: flow.MustMAC("ff:ff:ff:ff:ff:ff"), EthType: flow.EthTypeARP, ARPOp: 1, VLANs: tag,
		ARPSha: nhMAC, ARPSpa: flow.MustIPv4("172.24.4.1"), ARPTpa: extIP}
	a := only(t, walk(t, l.sw["hv1"], uplink, req))
	if a.Packet.ARPOp != 2 || a.Packet.ARPSha != gwMAC || len(a.Packet.VLANs) != 1 || a.Packet.VLANs[0].VID != 300 {
		t.Fatalf("ARP answer %s", a.Packet)
	}
}

// wireTagged is wire with an 802.1Q tag.
func wireTagged(t *testing.T, p fakeswitch.Packet, vid uint16) []byte {
	t.Helper()
	b := wire(t, p)
	out := append([]byte{}, b[:12]...)
	out = append(out, 0x81, 0x00, byte(vid>>8), byte(vid))
	return append(out, b[12:]...)
}

// The resolver learns the next hop only from an answer on the external
// network's own VLAN: an answer with another tag (another VLAN external
// network on the same uplink, whose next hop may have the same address)
// or untagged teaches a VLAN egress nothing.
func TestResolverVLANTag(t *testing.T) {
	s := newScenario()
	ext := s.recs[model.KindNetwork]["ext"].(*model.Network)
	v := *ext
	v.NetworkType, v.SegmentationID = model.NetVLAN, 300
	s.put(&v)
	l := newLab(t, s)
	a := answer("hv2")
	for _, data := range [][]byte{wireTagged(t, a, 301), wire(t, a)} {
		var out app.Out
		l.h["hv2"].PacketIn(&app.PacketIn{InPort: uplink, Data: data, State: l.st["hv2"]}, &out)
		if len(out.Flows)+len(out.PacketOuts) != 0 {
			t.Fatalf("learned from an answer off VLAN 300: %+v", out)
		}
	}
	var out app.Out
	l.h["hv2"].PacketIn(&app.PacketIn{InPort: uplink, Data: wireTagged(t, a, 300), State: l.st["hv2"]}, &out)
	if len(out.Flows) == 0 {
		t.Fatal("nothing learned from the answer on VLAN 300")
	}
}
