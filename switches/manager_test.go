package switches

import (
	"context"
	"log/slog"
	"testing"

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
