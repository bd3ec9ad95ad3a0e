package reconcile

import (
	"fmt"
	"strings"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Refusal is one desired group or flow a Switch did not send because it
// cannot be encoded (a group with more buckets than fit one OpenFlow
// message, say), or because it depends on such a group.
type Refusal struct {
	Group *flow.Group // one of Group and Flow is set
	Flow  *flow.Flow
	Err   error
}

// Kind is "group" or "flow".
func (r Refusal) Kind() string {
	if r.Group != nil {
		return "group"
	}
	return "flow"
}

// ID names the object: a group id, or a flow's key.
func (r Refusal) ID() string {
	if r.Group != nil {
		return fmt.Sprintf("0x%x", r.Group.ID)
	}
	return r.Flow.KeyText()
}

// RefusedError is Apply's answer when it applied everything but the
// refused objects. The reconciler records the rest as applied, logs and
// counts the refusals, and tries them again on later passes (they are
// still desired), so the rest of the switch converges.
type RefusedError struct{ Refused []Refusal }

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reconcile: %d object(s) refused", len(e.Refused))
	for i, r := range e.Refused {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; %s %s: %v", r.Kind(), r.ID(), r.Err)
	}
	return b.String()
}

// RefusalObserver is an Observer that also counts refusals.
type RefusalObserver interface {
	Refused(dpid uint64, kind, id string, err error)
}

// GroupRefusals finds the added and modified groups of ops that cannot be
// sent: those enc rejects and, transitively, those whose buckets chain to
// a refused group that is being added (so is not on the switch). A
// refused modify leaves the old group in place, which chains still reach.
func GroupRefusals(ops *Ops, enc func(cmdAdd bool, g *flow.Group) error) map[uint32]error {
	var bad map[uint32]error
	added := map[uint32]bool{}
	for _, g := range ops.GroupAdds {
		added[g.ID] = true
		if err := enc(true, g); err != nil {
			if bad == nil {
				bad = map[uint32]error{}
			}
			bad[g.ID] = err
		}
	}
	for _, g := range ops.GroupMods {
		if err := enc(false, g); err != nil {
			if bad == nil {
				bad = map[uint32]error{}
			}
			bad[g.ID] = err
		}
	}
	if bad == nil {
		return nil
	}
	all := append(append([]*flow.Group{}, ops.GroupAdds...), ops.GroupMods...)
	for changed := true; changed; {
		changed = false
		for _, g := range all {
			if bad[g.ID] != nil {
				continue
			}
			for _, bk := range g.Buckets {
				if id, ok := UsesGroup(bk.Actions, bad, added); ok {
					bad[g.ID] = fmt.Errorf("reconcile: chains to refused group 0x%x", id)
					changed = true
					break
				}
			}
		}
	}
	return bad
}

// UsesGroup reports a group action in as naming a refused group that is
// not on the switch.
func UsesGroup(as []flow.Action, bad map[uint32]error, added map[uint32]bool) (uint32, bool) {
	for _, a := range as {
		if ga, ok := a.(flow.GroupAction); ok && bad[ga.ID] != nil && added[ga.ID] {
			return ga.ID, true
		}
	}
	return 0, false
}

// without returns ops less the refused objects (matched by identity).
func (o *Ops) without(refused []Refusal) *Ops {
	gs, fs := map[*flow.Group]bool{}, map[*flow.Flow]bool{}
	for _, r := range refused {
		if r.Group != nil {
			gs[r.Group] = true
		} else {
			fs[r.Flow] = true
		}
	}
	keepG := func(in []*flow.Group) []*flow.Group {
		var out []*flow.Group
		for _, g := range in {
			if !gs[g] {
				out = append(out, g)
			}
		}
		return out
	}
	keepF := func(in []*flow.Flow) []*flow.Flow {
		var out []*flow.Flow
		for _, f := range in {
			if !fs[f] {
				out = append(out, f)
			}
		}
		return out
	}
	return &Ops{MeterAdds: o.MeterAdds, MeterMods: o.MeterMods,
		GroupAdds: keepG(o.GroupAdds), GroupMods: keepG(o.GroupMods),
		FlowDels: keepF(o.FlowDels), FlowMods: keepF(o.FlowMods), FlowAdds: keepF(o.FlowAdds),
		GroupDels: o.GroupDels, MeterDels: o.MeterDels, Conflicts: o.Conflicts}
}
