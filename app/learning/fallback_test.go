package learning

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// sw makes switch dpid with ports 1..n (named like Mininet's) and LOCAL.
func sw(dpid uint64, n uint32, name func(uint32) string) *topology.Switch {
	s := &topology.Switch{DPID: dpid, Ports: map[uint32]topology.Port{flow.PortLocal: {No: flow.PortLocal, Name: "br", Up: true}}}
	for i := uint32(1); i <= n; i++ {
		s.Ports[i] = topology.Port{No: i, Name: name(i), Up: true}
	}
	return s
}

func snapshot(recs ...model.Record) *model.Snapshot {
	m := map[model.Kind]map[string]model.Record{}
	for _, r := range recs {
		if m[r.Kind()] == nil {
			m[r.Kind()] = map[string]model.Record{}
		}
		m[r.Kind()][r.Key()] = r
	}
	return model.NewSnapshot(1, m)
}

// checkDesired runs the contract the switch manager applies and checks
// that every meter a flow uses comes with it.
func checkDesired(t *testing.T, d app.Desired) {
	t.Helper()
	meters := map[uint32]bool{}
	for _, m := range d.Meters {
		if !pipeline.OursMeter(m.ID) {
			t.Errorf("meter %d outside nimbus range", m.ID)
		}
		meters[m.ID] = true
	}
	for _, f := range d.Flows {
		if err := pipeline.Check(f); err != nil {
			t.Errorf("contract: %v", err)
		}
		if f.Meter != 0 && !meters[f.Meter] {
			t.Errorf("flow %s uses meter %d not in Desired", f, f.Meter)
		}
	}
	for _, g := range d.Groups {
		if !pipeline.OursGroup(g.ID) || len(g.Buckets) > pipeline.MaxGroupBuckets {
			t.Errorf("group %d: %d buckets", g.ID, len(g.Buckets))
		}
	}
}

// withState is a switch handler fed the Handler state of one Desired, as
// the switch agent does (app.PacketIn.State).
type withState struct {
	app.SwitchHandler
	st any
}

func (w withState) PacketIn(pi *app.PacketIn, out *app.Out) {
	pi.State = w.st
	w.SwitchHandler.PacketIn(pi, out)
}

func flood(t *testing.T, h app.SwitchHandler, inPort uint32) []flow.Action {
	t.Helper()
	var out app.Out
	h.PacketIn(&app.PacketIn{InPort: inPort, BufferID: app.NoBuffer, Data: frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01")}, &out)
	if len(out.Flows) != 0 || len(out.PacketOuts) > 1 {
		t.Fatalf("broadcast: %+v", out)
	}
	if len(out.PacketOuts) == 0 {
		return nil
	}
	return out.PacketOuts[0].Actions
}

// A plain switch without tenant ports: one metered punt, floods with
// OFPP_FLOOD as before.
func TestPlainSwitchMeteredPunt(t *testing.T) {
	a := New(Config{})
	d, err := a.Desired(app.Input{Switch: sw(7, 3, func(i uint32) string { return "s1-eth" + string(rune('0'+i)) })})
	if err != nil {
		t.Fatal(err)
	}
	checkDesired(t, d)
	if len(d.Flows) != 1 || d.Flows[0].Meter != pipeline.MeterLearning.ID || len(d.Meters) != 1 || len(d.Groups) != 0 {
		t.Fatalf("desired %+v", d)
	}
	if got := flow.ActionsString(flood(t, withState{a.NewSwitchHandler(7), d.Handler}, 1)); got != "FLOOD" {
		t.Fatalf("flood actions %q", got)
	}
}

// A chassis's br-int has no learning fallback: no punt (the table's miss
// drops), and a packet-in that still arrives is neither flooded nor
// learned.
func TestChassisHasNoFallback(t *testing.T) {
	a := New(Config{})
	m := snapshot(&model.Chassis{Name: "hv1", DPID: "0000000000000001"},
		&model.Port{Base: model.Base{ID: "a1000000-0000-4000-8000-000000000001"}, NetworkID: "n"})
	br := sw(1, 0, nil)
	br.Ports[1] = topology.Port{No: 1, Name: names.VMPortName("a1000000-0000-4000-8000-000000000001"), Up: true}
	br.Ports[2] = topology.Port{No: 2, Name: names.TunnelPortName("hv2"), Up: true}
	br.Ports[3] = topology.Port{No: 3, Name: names.PhysPortName("physnet1"), Up: true}
	br.Ports[4] = topology.Port{No: 4, Name: "stray0", Up: true}
	d, err := a.Desired(app.Input{Model: m, Switch: br})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Flows)+len(d.Groups)+len(d.Meters) != 0 {
		t.Fatalf("chassis got %+v", d)
	}
	if pipeline.L2Learning.MissFlow().Actions != nil {
		t.Fatalf("l2_learning's miss %s does not drop", pipeline.L2Learning.MissFlow())
	}
	h := withState{a.NewSwitchHandler(1), d.Handler}
	var out app.Out
	h.PacketIn(&app.PacketIn{InPort: 4, BufferID: app.NoBuffer, Data: frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01")}, &out)
	h.PacketIn(&app.PacketIn{InPort: 4, BufferID: app.NoBuffer, Data: frame("00:00:00:00:00:01", "00:00:00:00:00:02")}, &out)
	if len(out.Flows)+len(out.PacketOuts) != 0 {
		t.Fatalf("chassis fallback answered: %+v", out)
	}
}

// A plain switch with ports that Neutron ports claim (fabric mode): the
// flood reaches every other port exactly once, through a group, and never
// a tenant port; a tenant port's packet-ins are ignored.
func TestPlainSwitchFloodSkipsTenantPorts(t *testing.T) {
	a := New(Config{})
	const n = 2500 // more than one group holds
	name := func(i uint32) string {
		return "p" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	br := sw(9, n, name)
	m := snapshot(
		&model.Port{Base: model.Base{ID: "t1"}, NetworkID: "n", Profile: map[string]any{"port_name": name(3)}},
		&model.Port{Base: model.Base{ID: "t2000000-0000-4000-8000-000000000002"}, NetworkID: "n"})
	br.Ports[n+1] = topology.Port{No: n + 1, Name: names.VMPortName("t2000000-0000-4000-8000-000000000002"), Up: true}
	d, err := a.Desired(app.Input{Model: m, Switch: br})
	if err != nil {
		t.Fatal(err)
	}
	checkDesired(t, d)
	groups := map[uint32]*flow.Group{}
	for _, g := range d.Groups {
		groups[g.ID] = g
	}
	acts := flood(t, withState{a.NewSwitchHandler(9), d.Handler}, 1)
	if len(acts) != 1 {
		t.Fatalf("flood actions %v", acts)
	}
	ga, ok := acts[0].(flow.GroupAction)
	if !ok {
		t.Fatalf("flood actions %v, want a group", acts)
	}
	got := map[uint32]int{}
	seen := map[uint32]bool{}
	for id := ga.ID; id != 0; {
		g := groups[id]
		if g == nil || seen[id] {
			t.Fatalf("group chain broken at %d", id)
		}
		seen[id] = true
		id = 0
		for _, b := range g.Buckets {
			switch a := b.Actions[0].(type) {
			case flow.Output:
				got[a.Port]++
			case flow.GroupAction:
				id = a.ID
			}
		}
	}
	for p := uint32(1); p <= n+1; p++ {
		want := 1
		if p == 3 || p == n+1 {
			want = 0
		}
		if got[p] != want {
			t.Errorf("port %d reached %d times, want %d", p, got[p], want)
		}
	}
	if got[flow.PortLocal] != 0 || len(got) != n-1 {
		t.Errorf("flood reaches %d ports (LOCAL %d)", len(got), got[flow.PortLocal])
	}
	if acts := flood(t, withState{a.NewSwitchHandler(9), d.Handler}, 3); acts != nil {
		t.Errorf("a tenant port's broadcast was flooded: %v", acts)
	}
}

// A frame too big for a packet-out is not reflected (the source is still
// learned).
func TestOversizedFrameNotReflected(t *testing.T) {
	h := New(Config{}).NewSwitchHandler(1)
	var out app.Out
	big := append(frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01"), make([]byte, 65501)...)
	h.PacketIn(&app.PacketIn{InPort: 1, BufferID: app.NoBuffer, Data: big}, &out)
	if len(out.PacketOuts) != 0 {
		t.Fatalf("reflected a %d-byte frame", len(big))
	}
}
