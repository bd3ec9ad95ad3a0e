package snat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// diff returns the flows of after that are not in before (added), and
// the flows of before that after lacks or changes (removed or modified).
func diff(before, after *flow.State) (added []*flow.Flow, changed []*flow.Flow) {
	for k, f := range after.Flows {
		if b, ok := before.Flows[k]; !ok {
			added = append(added, f)
		} else if b.String() != f.String() {
			changed = append(changed, b)
		}
	}
	for k, f := range before.Flows {
		if _, ok := after.Flows[k]; !ok {
			changed = append(changed, f)
		}
	}
	return added, changed
}

// A new VM on a chassis that already holds blocks adds only its own
// return delivery flow there, and nothing anywhere else.
func TestAddPortDiffIsLocal(t *testing.T) {
	s := newScenario()
	before := map[string]*flow.State{}
	for _, c := range chassis {
		before[c] = state(t, s.input(c), New())
	}
	vmMAC["v4"], vmIP["v4"] = flow.MustMAC("fa:16:3e:00:00:04"), "10.0.1.14"
	t.Cleanup(func() { delete(vmMAC, "v4"); delete(vmIP, "v4") })
	s.vm("v4", "net-a1", "hv3", 4)
	for _, c := range chassis {
		added, changed := diff(before[c], state(t, s.input(c), New()))
		if len(changed) != 0 {
			t.Fatalf("%s: adding a port changed %d flows, first %s", c, len(changed), changed[0])
		}
		if c != "hv3" {
			if len(added) != 0 {
				t.Fatalf("%s: adding a port on hv3 added %s", c, added[0])
			}
			continue
		}
		if len(added) != 1 || added[0].Cookie != cookie("rA/return/"+portID("v4")) || added[0].Table != pipeline.SNAT.ID() {
			t.Fatalf("hv3: added %v, want only v4's return delivery", added)
		}
	}
}

// A new block for a chassis changes the owner's steering by one flow per
// protocol, and the holder's egress buckets; no other chassis changes.
func TestAddBlockDiff(t *testing.T) {
	s := newScenario()
	before := map[string]*flow.State{}
	for _, c := range chassis {
		before[c] = state(t, s.input(c), New())
	}
	s.put(&model.SNATBlock{ExternalIP: "172.24.4.10", Index: 21, Bits: 10, Chassis: "hv3", NetworkID: "net-a1"})
	for _, c := range chassis {
		added, changed := diff(before[c], state(t, s.input(c), New()))
		switch c {
		case "hv1": // the owner: steering for the new block, TCP and UDP
			if len(changed) != 0 || len(added) != 2 {
				t.Fatalf("owner: %d added, %d changed", len(added), len(changed))
			}
		case "hv2":
			if len(changed)+len(added) != 0 {
				t.Fatalf("hv2 changed by hv3's block: %d added, %d changed", len(added), len(changed))
			}
		case "hv3": // two buckets per protocol now
			if len(added) == 0 || len(changed) == 0 {
				t.Fatalf("hv3: %d added, %d changed", len(added), len(changed))
			}
			for _, f := range append(added, changed...) {
				if f.Table != pipeline.SNAT.ID() {
					t.Errorf("hv3: block growth touched table %d: %s", f.Table, f)
				}
			}
		}
	}
}
