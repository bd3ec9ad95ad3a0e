package secgroup

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// changes is what the reconciler sends hv1 to go from the scenario's
// state before to after.
func changes(t *testing.T, before, after *scenario) *reconcile.Ops {
	t.Helper()
	a := reconcile.NewActual()
	for _, f := range state(t, before.input("hv1"), true).Flows {
		cp := *f
		a.AddDumped(&cp, false)
	}
	st := state(t, after.input("hv1"), true)
	a.State.Groups, a.State.Meters = st.Groups, st.Meters
	return reconcile.Diff(st, a, true)
}

func flowsText(fs []*flow.Flow) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

// TestHitlessChanges: adding a rule, or a port to a remote group,
// changes only the flows that concern it: nothing is deleted; the rule's
// clause and conj_id flows are added and the clause flow of each local
// port of its group gets one more conjunction action (modified in place);
// a new member of a remote group adds its address's classification
// flows and touches nothing else.
func TestHitlessChanges(t *testing.T) {
	// A rule for web (a1 is web's only filtered port on hv1).
	const rid = "e0000000-0000-4000-8000-000000000099"
	after := newScenario()
	after.rule(rid, sgWeb, "ingress", "IPv4", "tcp", intp(9000), intp(9001), "10.9.0.0/16", "")
	ops := changes(t, newScenario(), after)
	if len(ops.FlowDels) != 0 || len(ops.GroupAdds)+len(ops.GroupMods)+len(ops.GroupDels) != 0 {
		t.Fatalf("adding a rule deletes flows or touches groups:\n%s", ops.Text())
	}
	id := conjIDOf(t, after, rid)
	for _, f := range ops.FlowAdds {
		if !strings.Contains(f.String(), fmt.Sprint(id)) {
			t.Errorf("adding a rule adds a flow that is not the rule's: %s", f)
		}
	}
	if len(ops.FlowAdds) != 2 { // 9000-9001 is one mask: one clause flow (with the prefix) and the conj_id flow
		t.Errorf("want 2 flows added, got:\n%s", flowsText(ops.FlowAdds))
	}
	for _, f := range ops.FlowMods {
		if f.Cookie != cookie(idA1) || !strings.Contains(f.InstructionsString(), fmt.Sprintf("conjunction(%d,1/2)", id)) {
			t.Errorf("adding a rule of web modifies a flow that is not a1's clause: %s", f)
		}
	}
	if len(ops.FlowMods) != 1 {
		t.Errorf("want a1's clause flow modified once, got:\n%s", flowsText(ops.FlowMods))
	}

	// A new port of the default group (a remote group of a5 and of
	// web's ICMP rule) on hv2.
	after = newScenario()
	after.port(&model.Port{Base: model.Base{ID: "a8000000-0000-4000-8000-000000000008"}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:08",
		PortSecurity: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.18"}}, SecurityGroups: []string{sgDefault}}, "hv2", 8)
	ops = changes(t, newScenario(), after)
	if len(ops.FlowDels)+len(ops.FlowMods) != 0 {
		t.Fatalf("a new remote group member deletes or modifies flows:\n%s", ops.Text())
	}
	mine := 0
	for _, f := range ops.FlowAdds {
		if f.Cookie>>48 != cookie("")>>48 {
			continue // isolation's flows for the new port (l2_forward to its chassis)
		}
		mine++
		if !strings.Contains(f.Match.String(), "10.0.0.18") {
			t.Errorf("a new remote group member adds a flow that is not about its address: %s", f)
		}
	}
	if mine != 2 { // default is a remote group in to_vm_acl only; one per network with filtered ports here (net-a, net-v)
		t.Fatalf("want one classification flow for the new member, got:\n%s", flowsText(ops.FlowAdds))
	}
}

// conjIDOf finds the conjunction id of rule rid on hv1.
func conjIDOf(t *testing.T, s *scenario, rid string) uint32 {
	t.Helper()
	for _, f := range state(t, s.input("hv1"), false).Flows {
		if f.Cookie == cookie(rid) {
			if x, ok := f.Match.Get(flow.ConjID); ok {
				return uint32(x.Value)
			}
		}
	}
	t.Fatalf("rule %s has no conj_id flow", rid)
	return 0
}

// TestGroupListedTwice: a port that lists a group twice gets each of its
// rules' conjunction action once (OVS takes one action per conjunction
// per flow).
func TestGroupListedTwice(t *testing.T) {
	s := newScenario()
	p := s.recs[model.KindPort][idA1].(*model.Port)
	cp := *p
	cp.SecurityGroups = []string{sgWeb, sgWeb}
	s.put(&cp)
	for _, f := range state(t, s.input("hv1"), false).Flows {
		seen := map[string]bool{}
		for _, a := range f.Actions {
			if seen[a.String()] {
				t.Fatalf("%s carries %s twice", f, a)
			}
			seen[a.String()] = true
		}
	}
}
