package fakeswitch_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/internal/ofovs"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/switches"
)

var (
	macA  = flow.MustMAC("02:00:00:00:00:0a")
	macB  = flow.MustMAC("02:00:00:00:00:0b")
	bcast = flow.MustMAC("ff:ff:ff:ff:ff:ff")
)

func udpTo(dport uint16) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: macA, EthDst: macB, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoUDP,
		IPv4Src: flow.MustIPv4("10.0.0.1"), IPv4Dst: flow.MustIPv4("10.0.0.2"), TTL: 64, TPSrc: 1000, TPDst: dport}
}

// modelState exercises what the model claims to do as OVS does: one
// flow per UDP destination port in table 0, from port 1.
func modelState() *flow.State {
	st := flow.NewState()
	g := func(n uint32) uint32 { return reconcile.GroupIDBase + 0x100 + n }
	meter := reconcile.MeterIDBase + 0x100
	ck := func(n int) uint64 { return pipeline.Cookie(pipeline.AppIsolation, uint64(n)) }
	add := func(f *flow.Flow) { f.Match = f.Match.Normalize(); st.AddFlow(f) }
	udp := func(n uint16) flow.Match {
		return flow.M().InPort(1).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPDst, uint64(n))
	}
	add(&flow.Flow{Table: 0, Priority: 0, Cookie: ck(0), Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
	// 1: resubmit with another in_port; its rewrite persists.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(1), Match: udp(1), Actions: []flow.Action{
		flow.Resubmit{InPort: 9, Table: 5}, flow.Output{Port: 1}, flow.Output{Port: flow.PortInPort}}})
	add(&flow.Flow{Table: 5, Priority: 10, Cookie: ck(1), Match: flow.M().InPort(9), Actions: []flow.Action{
		flow.SetField{F: flow.EthDst, Value: uint64(bcast)}, flow.Output{Port: flow.PortInPort}}})
	// 2: an ALL group whose bucket is an action set, chaining an indirect
	// group that tags; the caller's packet is untouched after the group.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(2), Match: udp(2), Actions: []flow.Action{flow.GroupAction{ID: g(1)}, flow.Output{Port: 4}}})
	st.Groups[g(1)] = &flow.Group{ID: g(1), Type: flow.GroupAll, Buckets: []flow.Bucket{
		{Actions: []flow.Action{flow.Output{Port: 2}, flow.SetField{F: flow.EthSrc, Value: uint64(macB)}}},
		{Actions: []flow.Action{flow.GroupAction{ID: g(2)}}}}}
	st.Groups[g(2)] = &flow.Group{ID: g(2), Type: flow.GroupIndirect, Buckets: []flow.Bucket{
		{Actions: []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 200}, flow.Output{Port: 3}}}}}
	// 3: fast failover past a bucket watching a port that does not exist.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(3), Match: udp(3), Actions: []flow.Action{flow.GroupAction{ID: g(3)}}})
	st.Groups[g(3)] = &flow.Group{ID: g(3), Type: flow.GroupFF, Buckets: []flow.Bucket{
		{WatchPort: 7, WatchGroup: 0xffffffff, Actions: []flow.Action{flow.Output{Port: 2}}},
		{WatchPort: 3, WatchGroup: 0xffffffff, Actions: []flow.Action{flow.Output{Port: 3}}}}}
	// 4: masked reg loads and a reg move, matched in a later table.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(4), Match: udp(4), Actions: []flow.Action{
		flow.SetField{F: flow.Reg0, Value: 0x30, Mask: 0xf0}, flow.SetField{F: flow.Reg0, Value: 0x5, Mask: 0xf},
		flow.Move{Src: flow.Reg0, SrcOfs: 4, Dst: flow.Reg1, DstOfs: 8, NBits: 4}}, Goto: 6})
	add(&flow.Flow{Table: 6, Priority: 10, Cookie: ck(4), Match: flow.M().Reg(0, 0x35).SetMasked(flow.Reg1, 0x300, 0xf00), Actions: []flow.Action{flow.Output{Port: 5}}})
	// 5: dec_ttl.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(5), Match: udp(5), Actions: []flow.Action{flow.DecTTL{}, flow.Output{Port: 2}}})
	// 6: a rewrite of the tagged frame's VID and of the UDP port.
	add(&flow.Flow{Table: 0, Priority: 20, Cookie: ck(6), Match: udp(6).Set(flow.VlanVID, flow.VlanPresent|300), Actions: []flow.Action{
		flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 5}, flow.SetField{F: flow.UDPDst, Value: 66}, flow.Output{Port: 2}}})
	// 7: FLOOD.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(7), Match: udp(7), Actions: []flow.Action{flow.Output{Port: flow.PortFlood}}})
	// 8: a punt from a flow that is no table-miss flow.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(8), Match: udp(8), Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
	// 9: ct commit with a mark, recirculated; the pass goes on untracked.
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(9), Match: udp(9), Actions: []flow.Action{
		flow.CT{Commit: true, Zone: 5, Table: 7, Exec: []flow.SetField{{F: flow.CTMark, Value: 0x11}}}, flow.Output{Port: 2}}})
	add(&flow.Flow{Table: 7, Priority: 20, Cookie: ck(9), Match: flow.M().SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew).Set(flow.CTMark, 0x11).Set(flow.CTZone, 5),
		Actions: []flow.Action{flow.Output{Port: 3}}})
	add(&flow.Flow{Table: 7, Priority: 10, Cookie: ck(9), Match: flow.M().SetMasked(flow.CTState, flow.CTTracked, flow.CTTracked),
		Actions: []flow.Action{flow.Output{Port: 4}}})
	// (No select group: OVS 3.1 selects by dp_hash after a recirculation
	// that ofproto/trace does not follow, so the trace cannot say.)
	// 11: pop_vlan on a tagged frame; 12: push on an untagged one copies no tag.
	add(&flow.Flow{Table: 0, Priority: 20, Cookie: ck(11), Match: udp(11).Set(flow.VlanVID, flow.VlanPresent|300), Actions: []flow.Action{flow.PopVLAN{}, flow.Output{Port: 2}}})
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(12), Match: udp(12), Actions: []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.Output{Port: 2}}})
	// 13: a meter passes; write_metadata and goto.
	st.Meters[meter] = &flow.Meter{ID: meter, Flags: flow.MeterPktps, Bands: []flow.Band{{Type: flow.BandDrop, Rate: 1000}}}
	add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(13), Match: udp(13), Meter: meter, Metadata: 0x5, MetadataMask: 0xff, Goto: 8})
	add(&flow.Flow{Table: 8, Priority: 10, Cookie: ck(13), Match: flow.M().SetMasked(flow.Metadata, 0x5, 0xf), Actions: []flow.Action{flow.Output{Port: 4}}})
	// 14-17: conjunctive matches in table 9. Clause 1 of conjunctions 1,
	// 2 and 3 is nw_dst; clause 2 is the UDP port. 14 completes 1, 15
	// completes 2, 16 completes 1 but an ordinary flow of a higher
	// priority wins, 17 matches only clause 2 of 3 (and 1 of 4): the
	// lower ordinary flow acts.
	ipDst := flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(flow.MustIPv4("10.0.0.2")))
	udpDst := func(n uint16) flow.Match {
		return flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPDst, uint64(n))
	}
	cj := func(id uint32, k, n uint8) flow.Action { return flow.Conjunction{ID: id, Clause: k, NClauses: n} }
	for n := uint16(14); n <= 17; n++ {
		add(&flow.Flow{Table: 0, Priority: 10, Cookie: ck(14), Match: udp(n), Goto: 9})
	}
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: ipDst, Actions: []flow.Action{cj(1, 1, 2), cj(2, 1, 2), cj(4, 1, 2)}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: udpDst(14), Actions: []flow.Action{cj(1, 2, 2)}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: udpDst(15), Actions: []flow.Action{cj(2, 2, 2)}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: udpDst(16), Actions: []flow.Action{cj(1, 2, 2)}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: udpDst(17), Actions: []flow.Action{cj(3, 2, 2)}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: flow.M().Set(flow.ConjID, 1), Actions: []flow.Action{flow.Output{Port: 2}}})
	add(&flow.Flow{Table: 9, Priority: 30, Cookie: ck(14), Match: flow.M().Set(flow.ConjID, 2), Actions: []flow.Action{flow.Output{Port: 3}}})
	add(&flow.Flow{Table: 9, Priority: 40, Cookie: ck(14), Match: udpDst(16), Actions: []flow.Action{flow.Output{Port: 5}}})
	add(&flow.Flow{Table: 9, Priority: 10, Cookie: ck(14), Match: flow.M().EthType(flow.EthTypeIPv4), Actions: []flow.Action{flow.Output{Port: 4}}})
	return st
}

// TestModelAgreesWithOVS checks the model's rules (not one app's flows)
// against real OVS: the flows of modelState go into a bridge through our
// codec, and each packet's fake-switch verdict must equal the verdict
// replayed from ofproto/trace's datapath actions.
func TestModelAgreesWithOVS(t *testing.T) {
	ovslab.RequireE2E(t)
	br, conn := ofovs.Bridge(t)
	ctx := t.Context()
	ports := []uint32{1, 2, 3, 4, 5, 9}
	for _, n := range ports {
		name := br.AddPort("", int(n))
		// Fast failover watches link state: bring the taps up.
		if out, err := exec.Command("ip", "link", "set", "dev", name, "up").CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s up: %v\n%s", name, err, out)
		}
	}
	st := modelState()
	sw := &switches.OFSwitch{Conn: conn}
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	defer acancel()
	if err := sw.Apply(actx, reconcile.Diff(st, reconcile.NewActual(), true)); err != nil {
		t.Fatalf("OVS refused the flows: %v", err)
	}
	if got, err := sw.Dump(actx); err != nil {
		t.Fatal(err)
	} else if ops := reconcile.Diff(st, got, true); !ops.Empty() {
		t.Fatalf("OVS holds something else than we sent:\n%s", ops.Text())
	}
	out, err := exec.Command("ovs-appctl", "dpif/show").CombinedOutput()
	if err != nil {
		t.Fatalf("dpif/show: %v\n%s", err, out)
	}
	x := &fakeswitch.Replay{ODP: fakeswitch.ParseDpifShow(string(out))[br.Name]}
	fake := fakeswitch.FromState(st, append(ports, flow.PortLocal)...)

	ttl1 := udpTo(5)
	ttl1.TTL = 1
	tagged := func(p fakeswitch.Packet) fakeswitch.Packet {
		p.VLANs = []fakeswitch.VLAN{{TPID: flow.EthTypeVLAN, VID: 300, PCP: 2}}
		return p
	}
	cases := []struct {
		name string
		pkt  fakeswitch.Packet
	}{
		{"resubmit(9,5): looked up as from 9, run with in_port 1; rewrite kept", udpTo(1)},
		{"ALL group: action-set bucket, chained indirect tagging, caller untouched", udpTo(2)},
		{"fast failover skips a dead watch port", udpTo(3)},
		{"masked reg loads and a reg move match in a later table", udpTo(4)},
		{"dec_ttl", udpTo(5)},
		{"dec_ttl on TTL 1 punts invalid_ttl", ttl1},
		{"set_field dl_vlan and udp_dst on a tagged frame", tagged(udpTo(6))},
		{"FLOOD: every port but in_port, LOCAL included", udpTo(7)},
		{"output:CONTROLLER from a flow: reason action", udpTo(8)},
		{"ct(commit,zone=5,table=7,exec(ct_mark)) recirculates +trk+new", udpTo(9)},
		{"pop_vlan", tagged(udpTo(11))},
		{"push_vlan on an untagged frame", udpTo(12)},
		{"meter passes, write_metadata, goto", udpTo(13)},
		{"conjunction 1 complete: conj_id=1 acts", udpTo(14)},
		{"conjunction 2 complete: conj_id=2 acts", udpTo(15)},
		{"a complete conjunction under a higher ordinary flow", udpTo(16)},
		{"incomplete conjunctions fall to a lower ordinary flow", udpTo(17)},
		{"table miss flow: punt with reason no_match", udpTo(99)},
	}
	var table strings.Builder
	agreed := 0
	for _, c := range cases {
		r, err := fake.Walk(1, c.pkt)
		if err != nil {
			t.Errorf("%s: fake switch: %v", c.name, err)
			continue
		}
		want := r.Verdict(nil)
		in := c.pkt.Clone()
		in.InPort = 1
		tr := br.Trace(in.String())
		got, err := x.Trace(tr, in)
		if err != nil {
			t.Errorf("%s: replaying the trace: %v\n%s", c.name, err, tr)
			continue
		}
		if got == want {
			agreed++
			fmt.Fprintf(&table, "%-72s | agree | %s\n", c.name, want)
		} else {
			fmt.Fprintf(&table, "%-72s | DIFFER | fake: %s\n%-72s |        | OVS:  %s\n", c.name, want, "", got)
			t.Errorf("%s: the fake switch and OVS disagree\nfake: %s\nOVS:  %s\nfake trace:\n%s\nOVS trace:\n%s", c.name, want, got, r.TraceText(), tr)
		}
	}
	t.Logf("model vs ofproto/trace, %d of %d packets agree:\n%s", agreed, len(cases), table.String())

	// A flow that sets dl_vlan on a match that guarantees no tag: OVS
	// refuses it, and the fake switch refuses to walk through it.
	bad := &flow.Flow{Table: 0, Priority: 30, Cookie: pipeline.Cookie(pipeline.AppIsolation, 20),
		Match:   flow.M().InPort(1).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPDst, 20),
		Actions: []flow.Action{flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 5}, flow.Output{Port: 2}}}
	withBad := modelState()
	withBad.AddFlow(bad)
	actual, err := sw.Dump(actx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Apply(actx, reconcile.Diff(withBad, actual, true)); err == nil {
		t.Fatalf("OVS accepted %s", bad)
	} else {
		t.Logf("OVS refuses %s: %v", bad, err)
	}
	if r, err := fakeswitch.FromState(withBad, ports...).Walk(1, udpTo(20)); err == nil {
		t.Fatalf("the fake switch walked through %s: %s", bad, r)
	}
}
