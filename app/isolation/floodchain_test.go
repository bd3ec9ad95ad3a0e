package isolation

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// walkFlood follows a flood group chain from head and counts every
// terminal bucket: local ports (reg3 set, resubmit to egress) by ofport,
// tunnels and uplinks (output) by port.
func walkFlood(t *testing.T, groups map[uint32]*flow.Group, head uint32) (local, out map[uint32]int) {
	t.Helper()
	local, out = map[uint32]int{}, map[uint32]int{}
	seen := map[uint32]bool{}
	var walk func(id uint32)
	walk = func(id uint32) {
		g := groups[id]
		if g == nil {
			t.Fatalf("group %#x referenced but not desired", id)
		}
		if seen[id] {
			t.Fatalf("group %#x reached twice", id)
		}
		seen[id] = true
		if len(g.Buckets) > pipeline.MaxGroupBuckets {
			t.Errorf("group %#x has %d buckets, cap %d", id, len(g.Buckets), pipeline.MaxGroupBuckets)
		}
		lo, hi := pipeline.GroupBase(pipeline.AppIsolation), pipeline.GroupBase(pipeline.AppIsolation+1)
		if id < lo || id >= hi {
			t.Errorf("group %#x outside isolation's range", id)
		}
		for _, b := range g.Buckets {
			for _, a := range b.Actions {
				switch a := a.(type) {
				case flow.SetField:
					if a.F == pipeline.RegOutPort.Field {
						local[uint32(a.Value)]++
					}
				case flow.Output:
					out[a.Port]++
				case flow.GroupAction:
					walk(a.ID)
				}
			}
		}
	}
	walk(head)
	return local, out
}

// 2,000 local ports on one network: the flood groups are chains of
// groups under the cap that together reach every port exactly once.
func TestFloodGroupChain(t *testing.T) {
	s := newScenario()
	const n = 2000
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("e%07d-0000-4000-8000-000000000000", i)
		s.port(&model.Port{Base: model.Base{ID: id}, NetworkID: "net-a", MACAddress: fmt.Sprintf("fa:16:3e:e0:%02x:%02x", i>>8, i&0xff),
			FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: fmt.Sprintf("10.0.%d.%d", 1+i/250, 1+i%250)}}}, "hv1", uint32(100+i), "")
	}
	st := state(t, New(Config{}), s.input("hv1"))
	key, _ := NetworkKey(&model.Network{NetworkType: model.NetGRE, SegmentationID: 100})
	for _, c := range []struct {
		localOnly bool
		tunnel    int
	}{{false, 1}, {true, 0}} {
		local, out := walkFlood(t, st.Groups, FloodGroupID(key, c.localOnly))
		want := map[uint32]bool{1: true} // a1
		for i := 0; i < n; i++ {
			want[uint32(100+i)] = true
		}
		if len(local) != len(want) {
			t.Errorf("localOnly=%v: flood reaches %d local ports, want %d", c.localOnly, len(local), len(want))
		}
		for p, k := range local {
			if !want[p] || k != 1 {
				t.Errorf("localOnly=%v: port %d reached %d times (member %v)", c.localOnly, p, k, want[p])
			}
		}
		if out[10] != c.tunnel || len(out) != c.tunnel {
			t.Errorf("localOnly=%v: tunnel outputs %v, want %d to port 10", c.localOnly, out, c.tunnel)
		}
	}
	// Computing again gives the same groups (chain ids are stable).
	st2 := state(t, New(Config{}), s.input("hv1"))
	if len(st2.Groups) != len(st.Groups) {
		t.Fatalf("group count changed: %d then %d", len(st.Groups), len(st2.Groups))
	}
	for id, g := range st.Groups {
		if g2 := st2.Groups[id]; g2 == nil || g2.String() != g.String() {
			t.Fatalf("group %#x differs between two computations", id)
		}
	}
}
