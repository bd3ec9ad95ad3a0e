package switches

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/topology"
)

// A switch that connects before the model has loaded (a controller
// restart: the switches reconnect while the store is still being read)
// gets nothing computed from the empty model: no flow is added and none
// deleted once the model arrives. Before, the chassis got the LLDP punt
// meant for fabric switches (the model did not list it as a chassis yet),
// which the first complete pass then deleted.
func TestNoDesiredStateBeforeModelLoads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const dpid = 0xa1
	snap := model.NewSnapshot(1, map[model.Kind]map[string]model.Record{
		model.KindChassis: {"hv1": &model.Chassis{Name: "hv1", DPID: "00000000000000a1"}},
	})
	var loaded atomic.Bool
	m := New(ctx, Config{Apps: []app.App{isolation.New(isolation.Config{})}, LLDPInterval: 1,
		Model: func() (*model.Snapshot, bool) {
			if loaded.Load() {
				return snap, true
			}
			return model.Empty, false
		}})
	fs := fakeswitch.New()
	a := &agent{m: m, c: &ofproto.Conn{Features: ofproto.Features{DPID: dpid}}, log: slog.Default(),
		rec: reconcile.New(dpid, fs, reconcile.Options{})}
	m.graph.SetSwitch(dpid, []topology.Port{{No: 1, Name: "gre-x", Up: true}})

	a.refresh()
	if _, err := a.rec.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := len(fs.Entries()); n != 0 || fs.Messages != 0 {
		t.Fatalf("before the model loaded: %d flows, %d changes sent; want none", n, fs.Messages)
	}
	loaded.Store(true)
	a.refresh()
	ops, err := a.rec.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.FlowDels) != 0 || len(ops.FlowAdds) == 0 {
		t.Fatalf("first pass on the loaded model: %d adds, %d deletes; want adds only", len(ops.FlowAdds), len(ops.FlowDels))
	}
	l := LLDPFlow()
	for _, e := range fs.Entries() {
		if e.Flow.Cookie == l.Cookie && e.Flow.Table == l.Table {
			t.Fatalf("the chassis got the LLDP punt: %s", e.Flow)
		}
	}
}
