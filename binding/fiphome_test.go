package binding

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// FloatingIPHome: one of the chassis that map the external network and
// have its uplink on a connected br-int; deterministic; spread over
// them; a floating IP moves only when its home goes; none without a
// candidate.
func TestFloatingIPHome(t *testing.T) {
	w := newWorld()
	for i := 1; i <= 4; i++ {
		w.put(&model.Chassis{Name: fmt.Sprintf("hv%d", i), DPID: fmt.Sprintf("%016x", i), Mappings: map[string]string{"extnet": "br-ex"}})
		w.port(uint64(i), 30, names.PhysPortName("extnet"))
	}
	w.port(4, 30, "not-the-uplink") // hv4 maps extnet but has no patch port
	w.put(&model.Network{Base: model.Base{ID: "net-x"}, External: true, NetworkType: model.NetFlat, PhysicalNetwork: "extnet"})
	fips := make([]*model.FloatingIP, 60)
	for i := range fips {
		fips[i] = &model.FloatingIP{Base: model.Base{ID: fmt.Sprintf("f%07d-0000-4000-8000-000000000000", i)}, FloatingNetworkID: "net-x"}
	}
	tb := w.table(Options{})
	homes := map[string]string{}
	count := map[string]int{}
	for _, f := range fips {
		h := tb.FloatingIPHome(w.topo, f)
		if h == "" || h == "hv4" {
			t.Fatalf("%s: home %q", f.ID, h)
		}
		if again := w.table(Options{}).FloatingIPHome(w.topo, f); again != h {
			t.Fatalf("%s: home %s then %s", f.ID, h, again)
		}
		homes[f.ID] = h
		count[h]++
	}
	if len(count) != 3 {
		t.Errorf("60 floating IPs on %v, want all of hv1-hv3 used", count)
	}
	// hv2's switch goes away: only its floating IPs move.
	delete(w.topo.Switches, 2)
	tb = w.table(Options{})
	for _, f := range fips {
		h := tb.FloatingIPHome(w.topo, f)
		if h == "hv2" || h == "" || (homes[f.ID] != "hv2" && h != homes[f.ID]) {
			t.Errorf("%s: home %s -> %s after hv2 left", f.ID, homes[f.ID], h)
		}
	}
	// Settling (the replica just restarted, hv2's switch not back yet):
	// nothing moves.
	w.topo.Settling = true
	tb = w.table(Options{})
	for _, f := range fips {
		if h := tb.FloatingIPHome(w.topo, f); h != homes[f.ID] {
			t.Errorf("%s: home %s -> %s while settling", f.ID, homes[f.ID], h)
		}
	}
	w.topo.Settling = false
	// Not an external flat/VLAN network, or nowhere to go: no home.
	w.put(&model.Network{Base: model.Base{ID: "net-g"}, NetworkType: model.NetGRE, SegmentationID: 5})
	if h := w.table(Options{}).FloatingIPHome(w.topo, &model.FloatingIP{Base: model.Base{ID: "x"}, FloatingNetworkID: "net-g"}); h != "" {
		t.Errorf("GRE network: home %q", h)
	}
	w.topo.Switches = nil
	if h := w.table(Options{}).FloatingIPHome(w.topo, fips[0]); h != "" {
		t.Errorf("no switch connected: home %q", h)
	}
}
