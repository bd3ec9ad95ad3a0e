package switches

import (
	"context"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
)

func TestChassisOwner(t *testing.T) {
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {
			"hv1": &model.Chassis{Name: "hv1", DPID: "0x00000000000000A1"},
			"bad": &model.Chassis{Name: "bad", DPID: "not-hex"},
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, Config{Model: func() (*model.Snapshot, bool) { return snap, true }})
	if name, ok := m.ChassisOwner(0xa1); !ok || name != "hv1" {
		t.Fatalf("ChassisOwner(a1) = %q, %v", name, ok)
	}
	if _, ok := m.ChassisOwner(0xa2); ok {
		t.Fatal("a plain switch has a chassis")
	}
}
