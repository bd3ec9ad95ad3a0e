package switches

import (
	"context"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/learning"
	"log/slog"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

func hasLLDP(t *testing.T, m *Manager, snap *model.Snapshot, dpid uint64) bool {
	t.Helper()
	st, ok := m.Desired(app.Input{Model: snap, Switch: &topology.Switch{DPID: dpid}}, slog.Default())
	if !ok {
		t.Fatal("Desired failed")
	}
	l := LLDPFlow()
	for _, f := range st.Flows {
		if f.Cookie == l.Cookie && f.Table == l.Table {
			return true
		}
	}
	return false
}

// The LLDP punt goes to plain switches only, and only with discovery on.
func TestLLDPFlowOnlyOnFabricSwitches(t *testing.T) {
	if err := pipeline.Check(LLDPFlow()); err != nil {
		t.Fatalf("LLDP flow breaks the classifier's contract: %v", err)
	}
	if LLDPFlow().Priority >= pipeline.PriorityGuard {
		t.Fatal("the LLDP punt must sit below the guard band (tenant ports drop LLDP there)")
	}
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {"hv1": &model.Chassis{Name: "hv1", DPID: "00000000000000a1"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	on := New(ctx, Config{LLDPInterval: 1})
	if !hasLLDP(t, on, snap, 0xb1) {
		t.Error("a plain switch has no LLDP punt")
	}
	if hasLLDP(t, on, snap, 0xa1) {
		t.Error("a chassis br-int got the LLDP punt")
	}
	off := New(ctx, Config{})
	if hasLLDP(t, off, snap, 0xb1) {
		t.Error("LLDP punt with discovery off")
	}
}

func TestIsChassis(t *testing.T) {
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {
			"hv1": &model.Chassis{Name: "hv1", DPID: "0x00000000000000A1"},
			"bad": &model.Chassis{Name: "bad", DPID: "not-hex"},
		},
	})
	if !isChassis(snap, 0xa1) || isChassis(snap, 0xa2) || isChassis(model.Empty, 0xa1) {
		t.Fatal("isChassis")
	}
}

// The binding table is computed once per (model, topology) snapshot pair,
// whichever switches and apps ask, and every app's handler state comes
// back with the desired state (what PacketIn hands the app's handler).
func TestBindingsOncePerSnapshot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, Config{Apps: []app.App{learning.New(learning.Config{}), isolation.New(isolation.Config{})}})
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {
			"hv1": &model.Chassis{Name: "hv1", DPID: "0000000000000001"},
			"hv2": &model.Chassis{Name: "hv2", DPID: "0000000000000002"},
		},
		model.KindNetwork: {"n": &model.Network{Base: model.Base{ID: "n"}, NetworkType: model.NetGRE, SegmentationID: 5}},
		model.KindPort:    {"p": &model.Port{Base: model.Base{ID: "p0000000-0000"}, NetworkID: "n", MACAddress: "fa:16:3e:00:00:01"}},
	})
	m.graph.SetSwitch(1, []topology.Port{{No: 1, Name: "tapp0000000-00", Up: true}})
	m.graph.SetSwitch(2, nil)
	m.graph.SetSwitch(3, []topology.Port{{No: 1, Name: "s3-eth1", Up: true}})
	topo := m.graph.Snapshot()
	var states []*[256]any
	for _, dp := range []uint64{1, 2, 3} {
		_, st, ok := m.desired(app.Input{Model: snap, Topology: topo, Switch: topo.Switches[dp]}, slog.Default())
		if !ok {
			t.Fatal("desired failed")
		}
		states = append(states, st)
	}
	if m.bindCount != 1 {
		t.Fatalf("binding table computed %d times for one snapshot", m.bindCount)
	}
	m.desired(app.Input{Model: model.NewSnapshotAt(snap, 2), Topology: topo, Switch: topo.Switches[1]}, slog.Default())
	if m.bindCount != 2 {
		t.Fatalf("binding table computed %d times for two snapshots", m.bindCount)
	}
	for i, st := range states {
		if st[pipeline.AppIsolation] == nil || st[pipeline.AppLearning] == nil {
			t.Errorf("switch %d: handler states %v", i+1, st[:10])
		}
	}
}

// After a start, until every chassis's switch has connected or the
// settle window ends, the apps' topology is marked Settling (one copy
// per live snapshot, so the binding table's cache still holds); then it
// is the live one.
func TestTopologySettling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {
			"hv1": &model.Chassis{Name: "hv1", DPID: "0000000000000001"},
			"hv2": &model.Chassis{Name: "hv2", DPID: "0000000000000002"},
		},
	})
	m := New(ctx, Config{Apps: []app.App{isolation.New(isolation.Config{})}, SettleWindow: time.Hour})
	m.graph.SetSwitch(1, nil)
	a, b := m.topology(snap), m.topology(snap)
	if !a.Settling || a != b {
		t.Fatalf("hv2 not back yet: settling %v, one copy %v", a.Settling, a == b)
	}
	m.graph.SetSwitch(2, nil)
	if m.topology(snap).Settling {
		t.Fatal("every chassis's switch connected: still settling")
	}
	m.graph.RemoveSwitch(2)
	m.started = time.Now().Add(-2 * time.Hour)
	if m.topology(snap).Settling {
		t.Fatal("past the window: a missing switch is a missing switch")
	}
	off := New(ctx, Config{SettleWindow: -1})
	off.graph.SetSwitch(1, nil)
	if off.topology(snap).Settling {
		t.Fatal("window off: settling")
	}
}
