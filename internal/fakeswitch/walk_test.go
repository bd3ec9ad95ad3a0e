package fakeswitch

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

var (
	macA  = flow.MustMAC("02:00:00:00:00:0a")
	macB  = flow.MustMAC("02:00:00:00:00:0b")
	bcast = flow.MustMAC("ff:ff:ff:ff:ff:ff")
)

func ipPkt() Packet {
	return Packet{EthSrc: macA, EthDst: macB, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP,
		IPv4Src: flow.MustIPv4("10.0.0.1"), IPv4Dst: flow.MustIPv4("10.0.0.2"), TTL: 64, TPSrc: 1000, TPDst: 53}
}

func walk(t *testing.T, s *Switch, in uint32, p Packet) *Result {
	t.Helper()
	r, err := s.Walk(in, p)
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	return r
}

func wantPorts(t *testing.T, r *Result, want ...uint32) {
	t.Helper()
	if got := r.Ports(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("ports %v, want %v\n%s", got, want, r.TraceText())
	}
}

func sw(flows ...*flow.Flow) *Switch {
	s := New()
	for _, f := range flows {
		f.Match = f.Match.Normalize()
		s.Install(f)
	}
	return s
}

func TestPriorityMaskGotoMetadata(t *testing.T) {
	s := sw(
		&flow.Flow{Table: 0, Priority: 10, Match: flow.M().EthType(flow.EthTypeIPv4).SetMasked(flow.IPv4Dst, uint64(flow.MustIPv4("10.0.0.0")), 0xffffff00),
			Metadata: 0x5, MetadataMask: 0xff, Goto: 3},
		&flow.Flow{Table: 0, Priority: 20, Match: flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(flow.MustIPv4("10.0.0.9")))},
		&flow.Flow{Table: 3, Priority: 5, Match: flow.M().SetMasked(flow.Metadata, 0x5, 0xf), Actions: []flow.Action{flow.Output{Port: 7}}},
	)
	wantPorts(t, walk(t, s, 1, ipPkt()), 7)
	p := ipPkt()
	p.IPv4Dst = flow.MustIPv4("10.0.0.9") // the higher-priority flow drops
	if r := walk(t, s, 1, p); !r.Dropped() {
		t.Fatalf("want drop, got %s", r)
	}
	p.IPv4Dst = flow.MustIPv4("10.0.1.1") // no flow: table miss drops
	if r := walk(t, s, 1, p); !r.Dropped() || !strings.Contains(r.TraceText(), "no flow matches") {
		t.Fatalf("want miss drop, got %s\n%s", r, r.TraceText())
	}
	// A field the packet lacks never matches (udp_dst on an ARP frame).
	s = sw(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPDst, 0),
		Actions: []flow.Action{flow.Output{Port: 2}}})
	if r := walk(t, s, 1, Packet{EthType: flow.EthTypeARP}); !r.Dropped() {
		t.Fatal("udp match hit an ARP frame")
	}
}

func TestResubmitKeepsChangesAndRestoresInPort(t *testing.T) {
	s := sw(
		&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{
			flow.Resubmit{InPort: 9, Table: 5}, flow.Output{Port: 1}, flow.Output{Port: flow.PortInPort}}},
		&flow.Flow{Table: 5, Priority: 1, Match: flow.M().InPort(9), Actions: []flow.Action{
			flow.SetField{F: flow.EthDst, Value: uint64(bcast)}, flow.Output{Port: flow.PortInPort}}},
	)
	r := walk(t, s, 1, ipPkt())
	// Table 5 is looked up as if from port 9, but its flow runs with the
	// real in_port (as in OVS): IN_PORT emits to 1 there; back in table 0,
	// output:1 is skipped and IN_PORT emits to 1, with the rewrite.
	wantPorts(t, r, 1, 1)
	if r.Emits[1].Packet.EthDst != bcast || r.Emits[1].Packet.InPort != 1 {
		t.Fatalf("rewrite lost after resubmit: %s", r.Emits[1].Packet)
	}
	// Without the in_port override, table 5 misses.
	s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: 5}}},
		&flow.Flow{Table: 5, Priority: 1, Match: flow.M().InPort(9), Actions: []flow.Action{flow.Output{Port: 2}}})
	wantPorts(t, walk(t, s, 1, ipPkt()))
	// A miss in a resubmitted table is no drop of the caller.
	s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: 7}, flow.Output{Port: 4}}})
	wantPorts(t, walk(t, s, 1, ipPkt()), 4)
}

func TestOutputSemantics(t *testing.T) {
	s := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Output{Port: flow.PortFlood}}})
	if _, err := s.Walk(1, ipPkt()); err == nil || !strings.Contains(err.Error(), "port list") {
		t.Fatalf("FLOOD without ports: %v", err)
	}
	s.SetPorts(3, 1, 2, flow.PortLocal)
	wantPorts(t, walk(t, s, 2, ipPkt()), 1, 3, flow.PortLocal)
	s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Output{Port: 5}, flow.Output{Port: 2}, flow.Output{Port: 1}}})
	s.SetPorts(1, 2)
	wantPorts(t, walk(t, s, 1, ipPkt()), 2) // 5 does not exist, 1 is in_port
	for _, port := range []uint32{flow.PortNormal, flow.PortTable} {
		s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Output{Port: port}}})
		if _, err := s.Walk(1, ipPkt()); !errors.Is(err, ErrUnsupported) {
			t.Errorf("output %s: %v", flow.PortString(port), err)
		}
	}
}

func TestPuntReasonAndCookie(t *testing.T) {
	s := sw(
		&flow.Flow{Table: 0, Priority: 100, Cookie: 0xaa, Match: flow.M().InPort(1),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}},
		&flow.Flow{Table: 0, Priority: 0, Cookie: 0xbb, Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: 128}}},
	)
	r := walk(t, s, 1, ipPkt())
	if p := r.Punts(); len(p) != 1 || p[0].Reason != ReasonAction || p[0].Cookie != 0xaa || p[0].MaxLen != flow.MaxLenNoBuffer {
		t.Fatalf("punt %+v", p)
	}
	r = walk(t, s, 2, ipPkt())
	if p := r.Punts(); len(p) != 1 || p[0].Reason != ReasonNoMatch || p[0].Cookie != 0xbb {
		t.Fatalf("table-miss punt %+v", p)
	}
}

func TestGroups(t *testing.T) {
	s := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 1}, flow.Output{Port: 9}}})
	s.InstallGroup(&flow.Group{ID: 1, Type: flow.GroupAll, Buckets: []flow.Bucket{
		// Action set: the set_field runs before the output although listed after.
		{Actions: []flow.Action{flow.Output{Port: 2}, flow.SetField{F: flow.TunnelID, Value: 5}}},
		{Actions: []flow.Action{flow.GroupAction{ID: 2}}},
	}})
	s.InstallGroup(&flow.Group{ID: 2, Type: flow.GroupIndirect, Buckets: []flow.Bucket{
		{Actions: []flow.Action{flow.PushVLAN{EthType: 0x8100}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 200}, flow.Output{Port: 3}}}}})
	r := walk(t, s, 1, ipPkt())
	wantPorts(t, r, 2, 3, 9)
	if r.Emits[0].Packet.TunnelID != 5 || len(r.Emits[0].Packet.VLANs) != 0 {
		t.Errorf("bucket 0 packet %s", r.Emits[0].Packet)
	}
	if v := r.Emits[1].Packet.VLANs; len(v) != 1 || v[0].VID != 200 || r.Emits[1].Packet.TunnelID != 0 {
		t.Errorf("chained indirect bucket packet %s", r.Emits[1].Packet)
	}
	if p := r.Emits[2].Packet; p.TunnelID != 0 || len(p.VLANs) != 0 {
		t.Errorf("a bucket leaked into the caller's packet: %s", p)
	}

	// Fast failover follows its watch ports.
	ff := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 4}}})
	ff.SetPorts(1, 2, 3)
	ff.InstallGroup(&flow.Group{ID: 4, Type: flow.GroupFF, Buckets: []flow.Bucket{
		{WatchPort: 2, Actions: []flow.Action{flow.Output{Port: 2}}},
		{WatchPort: 3, Actions: []flow.Action{flow.Output{Port: 3}}}}})
	wantPorts(t, walk(t, ff, 1, ipPkt()), 2)
	ff.SetPortLive(2, false)
	wantPorts(t, walk(t, ff, 1, ipPkt()), 3)
	ff.SetPortLive(3, false)
	wantPorts(t, walk(t, ff, 1, ipPkt()))

	// Select: deterministic by hash, or the caller's choice.
	sel := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 5}}})
	sel.InstallGroup(&flow.Group{ID: 5, Type: flow.GroupSelect, Buckets: []flow.Bucket{
		{Weight: 1, Actions: []flow.Action{flow.Output{Port: 2}}},
		{Weight: 1, Actions: []flow.Action{flow.Output{Port: 3}}},
		{Weight: 0, Actions: []flow.Action{flow.Output{Port: 4}}}}})
	first := walk(t, sel, 1, ipPkt()).String()
	seen := map[string]bool{}
	for i := 0; i < 64; i++ {
		p := ipPkt()
		p.TPSrc = uint16(1000 + i)
		seen[walk(t, sel, 1, p).String()] = true
		if walk(t, sel, 1, ipPkt()).String() != first {
			t.Fatal("select is not deterministic")
		}
	}
	if !seen["output:2"] || !seen["output:3"] || seen["output:4"] {
		t.Errorf("select spread %v", seen)
	}
	sel.SelectBucket = func(*flow.Group, Packet) int { return 1 }
	wantPorts(t, walk(t, sel, 1, ipPkt()), 3)
	sel.SelectBucket = func(*flow.Group, Packet) int { return 2 } // weight 0: dead
	wantPorts(t, walk(t, sel, 1, ipPkt()))

	missing := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 99}}})
	if _, err := missing.Walk(1, ipPkt()); err == nil {
		t.Fatal("a missing group must be an error")
	}
}

func TestVLANAndSetField(t *testing.T) {
	s := sw(
		&flow.Flow{Table: 0, Priority: 2, Match: flow.M().Set(flow.VlanVID, flow.VlanPresent|100), Actions: []flow.Action{
			flow.PopVLAN{}, flow.SetField{F: flow.Reg0, Value: 0x30, Mask: 0xf0}, flow.SetField{F: flow.Reg0, Value: 0x5, Mask: 0xf},
			flow.Move{Src: flow.Reg0, SrcOfs: 4, Dst: flow.Reg1, DstOfs: 8, NBits: 4}}, Goto: 1},
		&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.VlanVID, 0), Actions: []flow.Action{
			flow.PushVLAN{EthType: 0x8100}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 300},
			flow.PushVLAN{EthType: 0x88a8}, flow.Output{Port: 2}}},
		&flow.Flow{Table: 1, Priority: 1, Match: flow.M().SetMasked(flow.Reg1, 0x300, 0xf00).Set(flow.VlanVID, 0).Reg(0, 0x35),
			Actions: []flow.Action{flow.Output{Port: 3}}},
	)
	p := ipPkt()
	p.VLANs = []VLAN{{TPID: 0x8100, VID: 100, PCP: 3}}
	r := walk(t, s, 1, p)
	wantPorts(t, r, 3)
	if len(r.Emits[0].Packet.VLANs) != 0 {
		t.Fatal("pop_vlan")
	}
	r = walk(t, s, 1, ipPkt())
	wantPorts(t, r, 2)
	v := r.Emits[0].Packet.VLANs
	if len(v) != 2 || v[0] != (VLAN{TPID: 0x88a8, VID: 300}) || v[1] != (VLAN{TPID: 0x8100, VID: 300}) {
		t.Fatalf("tags %+v", v)
	}
	// A flow that sets a field its match does not guarantee is refused,
	// as OVS refuses to install it.
	for _, a := range []flow.Action{flow.SetField{F: flow.ARPOp, Value: 2}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 5},
		flow.Move{Src: flow.EthSrc, Dst: flow.ARPSha, NBits: 48}} {
		s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{a, flow.Output{Port: 2}}})
		if _, err := s.Walk(1, ipPkt()); err == nil || !strings.Contains(err.Error(), "OVS rejects") {
			t.Errorf("%s without its prerequisite: %v", a, err)
		}
	}
	// In a group bucket (no match) it is ignored at run time, as OVS does.
	s = sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 1}}})
	s.InstallGroup(&flow.Group{ID: 1, Type: flow.GroupIndirect, Buckets: []flow.Bucket{{Actions: []flow.Action{
		flow.SetField{F: flow.ARPOp, Value: 2}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 5}, flow.Output{Port: 2}}}}})
	if r := walk(t, s, 1, ipPkt()); r.Emits[0].Packet.ARPOp != 0 || len(r.Emits[0].Packet.VLANs) != 0 || !strings.Contains(r.TraceText(), "unmet prerequisites") {
		t.Fatalf("bucket sets on a packet lacking the fields: %s", r.Emits[0].Packet)
	}
}

func TestDecTTL(t *testing.T) {
	s := sw(&flow.Flow{Table: 0, Priority: 1, Cookie: 7, Actions: []flow.Action{flow.DecTTL{}, flow.Output{Port: 2}}, Goto: 1},
		&flow.Flow{Table: 1, Priority: 1, Actions: []flow.Action{flow.Output{Port: 3}}})
	r := walk(t, s, 1, ipPkt())
	wantPorts(t, r, 2, 3)
	if r.Emits[0].Packet.TTL != 63 {
		t.Fatalf("ttl %d", r.Emits[0].Packet.TTL)
	}
	p := ipPkt()
	p.TTL = 1
	r = walk(t, s, 1, p)
	if len(r.Emits) != 1 || !r.Emits[0].Punt() || r.Emits[0].Reason != ReasonInvalidTTL || r.Emits[0].Cookie != 7 {
		t.Fatalf("expired TTL: %s", r)
	}
}

func TestConntrack(t *testing.T) {
	s := sw(
		&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.EthType, 0x0800).SetMasked(flow.CTState, 0, flow.CTTracked), Actions: []flow.Action{
			flow.SetField{F: flow.Reg4, Value: 9},
			flow.CT{Commit: true, ZoneSrc: flow.Reg4, Table: 2, Exec: []flow.SetField{{F: flow.CTMark, Value: 0x11}}},
			flow.Output{Port: 5}}},
		&flow.Flow{Table: 2, Priority: 2, Match: flow.M().SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew).Set(flow.CTMark, 0x11),
			Actions: []flow.Action{flow.Output{Port: 2}}},
		&flow.Flow{Table: 2, Priority: 1, Match: flow.M().SetMasked(flow.CTState, flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished),
			Actions: []flow.Action{flow.Output{Port: 3}}},
	)
	r := walk(t, s, 1, ipPkt())
	wantPorts(t, r, 5, 2) // the pass continues (untracked), then the recirculation
	if r.Emits[0].Packet.CTState != 0 || r.Emits[1].Packet.CTZone != 9 || r.Emits[1].Packet.Regs[4] != 9 {
		t.Fatalf("ct fields: %s / %s", r.Emits[0].Packet, r.Emits[1].Packet)
	}
	s.Conntrack = ConntrackFunc(func(p Packet, zone uint16, commit bool) (uint32, uint32) {
		return flow.CTEstablished, 0
	})
	wantPorts(t, walk(t, s, 1, ipPkt()), 5, 3)

	// After ct() the pass goes on untracked, with or without recirculation.
	clear := sw(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.EthType, 0x0800), Actions: []flow.Action{flow.CT{Zone: 3, Table: flow.CTNoTable}, flow.Output{Port: 2}}})
	in := ipPkt()
	in.CTState, in.CTZone, in.CTMark = flow.CTTracked|flow.CTEstablished, 3, 7
	if p := walk(t, clear, 1, in).Emits[0].Packet; p.CTState != 0 || p.CTZone != 0 || p.CTMark != 0 {
		t.Fatalf("ct fields after ct(): %s", p)
	}

	nat := sw(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.EthType, 0x0800), Actions: []flow.Action{flow.CT{Table: 1, NAT: &flow.NAT{}}}})
	if _, err := nat.Walk(1, ipPkt()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("nat: %v", err)
	}
	// OVS refuses ct() where the match fixes no IP dl_type
	// (OFPBAC_MATCH_INCONSISTENT); so does the model.
	noIP := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.CT{Zone: 3, Table: flow.CTNoTable}}})
	if _, err := noIP.Walk(1, ipPkt()); err == nil || !strings.Contains(err.Error(), "dl_type=ip") {
		t.Fatalf("ct() without dl_type=ip: %v", err)
	}
	loop := sw(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.EthType, 0x0800), Actions: []flow.Action{flow.CT{Table: 0}}})
	if _, err := loop.Walk(1, ipPkt()); err == nil {
		t.Fatal("endless recirculation must be an error")
	}
}

func TestRefusals(t *testing.T) {
	cases := map[string]*Switch{
		"opaque action": sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Opaque{Desc: "learn(...)"}}}),
		"opaque in a bucket": func() *Switch {
			s := sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.GroupAction{ID: 1}}})
			s.InstallGroup(&flow.Group{ID: 1, Type: flow.GroupAll, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.Opaque{Desc: "x"}}}}})
			return s
		}(),
		"missing meter": sw(&flow.Flow{Table: 0, Priority: 1, Meter: 3, Actions: []flow.Action{flow.Output{Port: 2}}}),
		"ambiguous": sw(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().InPort(1), Actions: []flow.Action{flow.Output{Port: 2}}},
			&flow.Flow{Table: 0, Priority: 1, Match: flow.M().EthSrc(macA), Actions: []flow.Action{flow.Output{Port: 3}}}),
		"resubmit loop": sw(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: 0}}}),
		"backward goto": sw(&flow.Flow{Table: 2, Priority: 1, Goto: 1}, &flow.Flow{Table: 0, Priority: 1, Goto: 2}),
	}
	for name, s := range cases {
		if r, err := s.Walk(1, ipPkt()); err == nil {
			t.Errorf("%s: no error, verdict %s", name, r)
		}
	}
	// A meter that exists passes the packet.
	s := sw(&flow.Flow{Table: 0, Priority: 1, Meter: 3, Actions: []flow.Action{flow.Output{Port: 2}}})
	s.InstallMeter(&flow.Meter{ID: 3})
	wantPorts(t, walk(t, s, 1, ipPkt()), 2)
}

func TestParse(t *testing.T) {
	arp := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xa, 0x81, 0x00, 0x20, 0xc8, 0x08, 0x06, // tag pcp 1 vid 200
		0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0xa, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2}
	p, err := Parse(arp)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{EthSrc: macA, EthDst: bcast, VLANs: []VLAN{{TPID: 0x8100, VID: 200, PCP: 1}}, EthType: flow.EthTypeARP,
		ARPOp: 1, ARPSha: macA, ARPSpa: flow.MustIPv4("10.0.0.1"), ARPTpa: flow.MustIPv4("10.0.0.2")}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %s\nwant %s", p, want)
	}
	udp := []byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x08, 0x00,
		0x45, 0x10, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x03, 0xe8, 0, 53, 0, 8, 0, 0}
	p, err = Parse(udp)
	if err != nil {
		t.Fatal(err)
	}
	w := ipPkt()
	w.IPDSCP = 4
	if !reflect.DeepEqual(p, w) {
		t.Fatalf("got  %s\nwant %s", p, w)
	}
	for _, b := range [][]byte{arp[:20], udp[:30], udp[:10]} {
		if _, err := Parse(b); err == nil {
			t.Errorf("truncated frame of %d bytes parsed", len(b))
		}
	}
}

// TestConjunction: clause flows never act; a complete conjunction above
// the best ordinary flow re-looks up with conj_id; an incomplete one is
// as if absent; a higher ordinary flow wins; a clause flow with an
// instruction is refused. (TestModelAgreesWithOVS checks the same cases
// against OVS.)
func TestConjunction(t *testing.T) {
	cj := func(id uint32, k, n uint8) flow.Action { return flow.Conjunction{ID: id, Clause: k, NClauses: n} }
	udp := func(n uint64) flow.Match {
		return flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPDst, n)
	}
	dst := flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(flow.MustIPv4("10.0.0.2")))
	s := sw(
		&flow.Flow{Priority: 30, Match: dst, Actions: []flow.Action{cj(1, 1, 2), cj(3, 1, 3)}},
		&flow.Flow{Priority: 30, Match: udp(53), Actions: []flow.Action{cj(1, 2, 2)}},
		&flow.Flow{Priority: 30, Match: udp(54), Actions: []flow.Action{cj(3, 2, 3)}},
		&flow.Flow{Priority: 30, Match: udp(55), Actions: []flow.Action{cj(1, 2, 2)}},
		&flow.Flow{Priority: 30, Match: flow.M().Set(flow.ConjID, 1), Actions: []flow.Action{flow.Output{Port: 2}}},
		&flow.Flow{Priority: 40, Match: udp(55), Actions: []flow.Action{flow.Output{Port: 5}}},
		&flow.Flow{Priority: 10, Match: flow.M().EthType(flow.EthTypeIPv4), Actions: []flow.Action{flow.Output{Port: 4}}},
	)
	p := ipPkt()
	r := walk(t, s, 1, p)
	wantPorts(t, r, 2)
	if !strings.Contains(r.TraceText(), "conjunction(1) complete") {
		t.Fatalf("trace:\n%s", r.TraceText())
	}
	p.TPDst = 54 // clause 2 of 3 only
	wantPorts(t, walk(t, s, 1, p), 4)
	p.TPDst = 55 // complete, under a higher ordinary flow
	wantPorts(t, walk(t, s, 1, p), 5)
	p.TPDst, p.IPv4Dst = 53, flow.MustIPv4("10.0.0.3") // clause 1 missing
	wantPorts(t, walk(t, s, 1, p), 4)

	bad := sw(&flow.Flow{Priority: 30, Match: dst, Actions: []flow.Action{cj(1, 1, 2)}, Goto: 1})
	if _, err := bad.Walk(1, ipPkt()); err == nil {
		t.Fatal("a conjunction flow with goto_table walked")
	}
}

// Multipath writes a link in 0..MaxLink into the destination bits (and
// keeps the field's other bits); the same hashed fields always give the
// same link, whatever the other fields; different sources spread.
func TestMultipath(t *testing.T) {
	mp := flow.Multipath{Fields: flow.HashNwSrc, Algorithm: flow.MPHRW, MaxLink: 2, Dst: flow.Reg6, Ofs: 16, NBits: 16}
	var fs []*flow.Flow
	fs = append(fs, &flow.Flow{Table: 0, Priority: 1, Match: flow.M().EthType(flow.EthTypeIPv4),
		Actions: []flow.Action{flow.SetField{F: flow.Reg6, Value: 7, Mask: 0xffff}, mp}, Goto: 1})
	for link := range 3 {
		fs = append(fs, &flow.Flow{Table: 1, Priority: 1, Match: flow.M().Set(flow.Reg6, uint64(link)<<16|7),
			Actions: []flow.Action{flow.Output{Port: uint32(10 + link)}}})
	}
	s := sw(fs...)
	links := map[uint32]bool{}
	for i := range 30 {
		p := ipPkt()
		p.IPv4Src = flow.MustIPv4("10.0.1.0") + flow.IPv4(i)
		first := walk(t, s, 1, p).Ports()
		p.TPSrc, p.IPv4Dst = 2000+uint16(i), flow.MustIPv4("10.9.9.9")
		if again := walk(t, s, 1, p).Ports(); len(first) != 1 || !reflect.DeepEqual(first, again) {
			t.Fatalf("source %s: %v then %v", p.IPv4Src, first, again)
		}
		links[first[0]] = true
	}
	if len(links) != 3 {
		t.Errorf("30 sources used links %v, want all 3", links)
	}
}
