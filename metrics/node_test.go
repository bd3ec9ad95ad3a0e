package metrics

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/lbprobe"
)

// The node agent's registry reads its sources on each scrape: SNAT
// drops always, the prober's counters when it runs one.
func TestNodeMetrics(t *testing.T) {
	probes := lbprobe.Stats{ProbesOK: 10, ProbesFailed: 4, ToActive: 1, ToInactive: 2, WriteErrors: 3, Monitored: 6}
	values := func(src NodeSources) map[string]float64 {
		t.Helper()
		mfs, err := Node(src).Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch {
				case m.Counter != nil:
					out[mf.GetName()] = m.GetCounter().GetValue()
				case m.Gauge != nil:
					out[mf.GetName()] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	got := values(NodeSources{SNATDrops: func() uint64 { return 7 }, Probes: func() lbprobe.Stats { return probes }})
	for name, want := range map[string]float64{
		"nimbus_snat_exhaustion_drops_total":      7,
		"nimbus_lb_probes_ok_total":               10,
		"nimbus_lb_probes_failed_total":           4,
		"nimbus_lb_members_marked_active_total":   1,
		"nimbus_lb_members_marked_inactive_total": 2,
		"nimbus_lb_status_write_errors_total":     3,
		"nimbus_lb_members_monitored":             6,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	probes.ProbesOK = 11
	if v := values(NodeSources{SNATDrops: func() uint64 { return 7 }, Probes: func() lbprobe.Stats { return probes }})["nimbus_lb_probes_ok_total"]; v != 11 {
		t.Errorf("a later scrape reads %v, want 11", v)
	}
	if _, ok := values(NodeSources{SNATDrops: func() uint64 { return 0 }})["nimbus_lb_probes_ok_total"]; ok {
		t.Error("probe metrics exported with no prober")
	}
}
