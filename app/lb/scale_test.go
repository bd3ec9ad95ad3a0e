package lb

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// bigPool is the scenario with pool-1 holding n members, all on hv2
// (ofports 100 and up, addresses 10.1.x.y), so hv1 sees them remote.
func bigPool(n int) *scenario {
	s := newScenario("ROUND_ROBIN")
	for i := range mIP {
		delete(s.recs[model.KindMember], memberID(i))
	}
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		s.port(fmt.Sprintf("b%07d-0000-4000-8000-000000000000", i), fmt.Sprintf("fa:16:3e:10:%02x:%02x", i>>8, i&0xff), ip, "hv2", uint32(100+i))
		s.put(&model.LBMember{Base: model.Base{ID: memberID(100 + i)}, PoolID: "pool-1", Address: ip, ProtocolPort: 8080,
			Weight: 1, AdminStateUp: true, Status: "ACTIVE"})
	}
	return s
}

// One pool of 1,000 members: on a client's chassis, one select group of
// 1,000 buckets, and per member three flows (its DNAT MAC flow and its
// reply lookup in lb, its tunnel-reply catch in the classifier), plus
// four per VIP/network. Adding the 1,000th member to 999 changes that
// group (one group mod) and adds that member's three flows: nothing else.
func TestScale1000(t *testing.T) {
	before := lbState(t, bigPool(999).input("hv1"))
	after := lbState(t, bigPool(1000).input("hv1"))
	if len(after.Groups) != 1 {
		t.Fatalf("want one group, got %d", len(after.Groups))
	}
	for _, g := range after.Groups {
		if g.Type != flow.GroupSelect || len(g.Buckets) != 1000 {
			t.Fatalf("want a select group of 1,000 buckets, got type %d, %d buckets", g.Type, len(g.Buckets))
		}
	}
	perTable := map[uint8]int{}
	for _, f := range after.Flows {
		perTable[f.Table]++
	}
	t.Logf("1,000 members on hv1: %d flows (classifier %d, lb %d), %d group(s), %d buckets",
		len(after.Flows), perTable[pipeline.Classifier.ID()], perTable[pipeline.LB.ID()], len(after.Groups), 1000)
	if want := 3*1000 + 6; len(after.Flows) != want { // per member 6 (classifier), 4 and 5 (lb); 1, 2, 3, 3b, 3c and E1
		t.Errorf("want %d flows, got %d", want, len(after.Flows))
	}
	actual := reconcile.NewActual()
	actual.State = before
	ops := reconcile.Diff(after, actual, true)
	t.Logf("adding member 1,000: %d group mods, %d group adds, %d flow adds, %d flow mods, %d flow dels",
		len(ops.GroupMods), len(ops.GroupAdds), len(ops.FlowAdds), len(ops.FlowMods), len(ops.FlowDels))
	if len(ops.GroupMods) != 1 || len(ops.GroupAdds) != 0 || len(ops.GroupDels) != 0 {
		t.Errorf("want exactly one group mod, got:\n%s", ops.Text())
	}
	if len(ops.FlowMods) != 0 || len(ops.FlowDels) != 0 || len(ops.FlowAdds) != 3 {
		t.Errorf("want only the new member's 3 flows added, got:\n%s", ops.Text())
	}
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(memberID(100+999)))
	for _, f := range ops.FlowAdds {
		if f.Cookie != ck {
			t.Errorf("added flow not the new member's: %s", f)
		}
	}
}
