// Package reconcile keeps one switch's flows, groups and meters equal to
// the desired state: it diffs desired against what the switch holds and
// applies only the difference, in one bundle where the switch allows it.
package reconcile

import (
	"sort"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// GroupIDBase and MeterIDBase start the id ranges Nimbus owns (declared,
// with each app's slice, in pipeline/ids.go); groups and meters below
// them are someone else's and never touched.
const (
	GroupIDBase = pipeline.GroupIDBase
	MeterIDBase = pipeline.MeterIDBase
)

// OursGroup reports whether a group id is in Nimbus's range.
func OursGroup(id uint32) bool { return pipeline.OursGroup(id) }

// OursMeter reports whether a meter id is in Nimbus's range.
func OursMeter(id uint32) bool { return pipeline.OursMeter(id) }

// Ops is an ordered change set.
type Ops struct {
	MeterAdds, MeterMods []*flow.Meter
	GroupAdds, GroupMods []*flow.Group
	FlowDels             []*flow.Flow // delete strict, guarded by cookie
	FlowMods             []*flow.Flow // modify strict: instructions only
	FlowAdds             []*flow.Flow // add (also replaces cookie/timeouts)
	GroupDels            []*flow.Group
	MeterDels            []*flow.Meter
	// Conflicts are desired flows whose key is held by a foreign flow;
	// they are not applied.
	Conflicts []*flow.Flow
}

// Len counts the changes.
func (o *Ops) Len() int {
	return len(o.MeterAdds) + len(o.MeterMods) + len(o.GroupAdds) + len(o.GroupMods) + len(o.FlowDels) +
		len(o.FlowMods) + len(o.FlowAdds) + len(o.GroupDels) + len(o.MeterDels)
}

// Empty reports no changes.
func (o *Ops) Empty() bool { return o.Len() == 0 }

// Actual is what the switch holds, split into Nimbus's static flows (the
// ones the reconciler manages) and the keys of everything else.
type Actual struct {
	State *flow.State
	// Foreign maps keys of flows whose cookie is not ours.
	Foreign map[string]bool
	// Dynamic counts flows installed by packet-in handlers (ignored).
	Dynamic int
	// Counts are the dumped counters of our flows, by Flow.Key() (set
	// by AddDumpedCounts; a dump's only, never cloned).
	Counts map[string]pipeline.Counter
}

// AddDumpedCounts files one dumped flow with its counters (AddDumped,
// and the counters of one of ours that a desired flow names a Counter).
// A flow that has counted nothing is not filed (Counted reads it as 0).
func (a *Actual) AddDumpedCounts(f *flow.Flow, unknown bool, packets, bytes uint64) {
	k := a.addDumped(f, unknown)
	if k != "" && !unknown && packets|bytes != 0 {
		if a.Counts == nil {
			a.Counts = map[string]pipeline.Counter{}
		}
		a.Counts[k] = pipeline.Counter{Packets: packets, Bytes: bytes}
	}
}

// Counted sums the dumped counters of desired's flows that name a
// Counter, by pipeline.CounterKey. A desired flow the dump does not hold counts
// nothing.
func Counted(desired *flow.State, dumped *Actual) map[string]pipeline.Counter {
	out := map[string]pipeline.Counter{}
	for k, f := range desired.Flows {
		if f.Counter == "" {
			continue
		}
		key := pipeline.CounterKey(pipeline.CookieObject(f.Cookie), f.Counter)
		c := out[key]
		if d, ok := dumped.Counts[k]; ok {
			c.Packets += d.Packets
			c.Bytes += d.Bytes
		}
		out[key] = c
	}
	return out
}

// NewActual makes an empty Actual.
func NewActual() *Actual { return &Actual{State: flow.NewState(), Foreign: map[string]bool{}} }

// AddDumped files one dumped flow. unknown marks flows using fields or
// actions Nimbus does not model.
func (a *Actual) AddDumped(f *flow.Flow, unknown bool) { a.addDumped(f, unknown) }

// addDumped is AddDumped; it returns the key of a flow it filed as ours
// (not dynamic), "" otherwise.
func (a *Actual) addDumped(f *flow.Flow, unknown bool) string {
	switch {
	case !pipeline.IsOurs(f.Cookie):
		a.Foreign[f.Key()] = true
	case pipeline.IsDynamic(f.Cookie):
		a.Dynamic++
	default:
		if unknown {
			// Ours but altered into something we cannot express: make
			// sure it compares unequal so it is rewritten.
			f.Actions = append(f.Actions, flow.Opaque{Desc: "unmodelled"})
		}
		k := f.Key()
		a.State.Flows[k] = f
		return k
	}
	return ""
}

// unmodelledMatch marks the Foreign key of a flow whose match has fields
// Nimbus does not model.
const unmodelledMatch = " +unmodelled-match"

// AddUnmodelledMatch files a dumped flow whose match holds fields Nimbus
// does not model (an experimenter OXM such as OVS's tcp_flags). Its
// decoded match lacks them, so its key would name a different flow: it is
// kept apart, never matches a desired flow, and is never touched, whoever
// owns it.
func (a *Actual) AddUnmodelledMatch(f *flow.Flow) {
	a.Foreign[f.Key()+unmodelledMatch] = true
}

// Clone copies the Actual (flows are shared: they are never mutated).
func (a *Actual) Clone() *Actual {
	c := NewActual()
	for k, v := range a.State.Flows {
		c.State.Flows[k] = v
	}
	for k, v := range a.State.Groups {
		c.State.Groups[k] = v
	}
	for k, v := range a.State.Meters {
		c.State.Meters[k] = v
	}
	for k := range a.Foreign {
		c.Foreign[k] = true
	}
	c.Dynamic = a.Dynamic
	return c
}

// Diff computes the changes that turn actual into desired. With prune
// false, nothing is deleted (desired state is not fully loaded yet).
func Diff(desired *flow.State, actual *Actual, prune bool) *Ops {
	ops := &Ops{}
	for id, m := range desired.Meters {
		old, ok := actual.State.Meters[id]
		switch {
		case !ok:
			ops.MeterAdds = append(ops.MeterAdds, m)
		case old.String() != m.String():
			ops.MeterMods = append(ops.MeterMods, m)
		}
	}
	for id, g := range desired.Groups {
		old, ok := actual.State.Groups[id]
		switch {
		case !ok:
			ops.GroupAdds = append(ops.GroupAdds, g)
		case old.String() != g.String():
			ops.GroupMods = append(ops.GroupMods, g)
		}
	}
	for k, f := range desired.Flows {
		if actual.Foreign[k] {
			ops.Conflicts = append(ops.Conflicts, f)
			continue
		}
		old, ok := actual.State.Flows[k]
		switch {
		case !ok:
			ops.FlowAdds = append(ops.FlowAdds, f)
		case old.Equal(f):
		case old.SameButInstructions(f):
			ops.FlowMods = append(ops.FlowMods, f)
		default:
			ops.FlowAdds = append(ops.FlowAdds, f) // add replaces cookie and timeouts
		}
	}
	if prune {
		for k, f := range actual.State.Flows {
			if _, ok := desired.Flows[k]; !ok {
				ops.FlowDels = append(ops.FlowDels, f)
			}
		}
		for id, g := range actual.State.Groups {
			if _, ok := desired.Groups[id]; !ok && OursGroup(id) {
				ops.GroupDels = append(ops.GroupDels, g)
			}
		}
		for id, m := range actual.State.Meters {
			if _, ok := desired.Meters[id]; !ok && OursMeter(id) {
				ops.MeterDels = append(ops.MeterDels, m)
			}
		}
	}
	ops.sort()
	return ops
}

func (o *Ops) sort() {
	flow.SortFlows(o.FlowAdds)
	flow.SortFlows(o.FlowMods)
	flow.SortFlows(o.FlowDels)
	flow.SortFlows(o.Conflicts)
	sortG := func(gs []*flow.Group) { sort.Slice(gs, func(i, j int) bool { return gs[i].ID < gs[j].ID }) }
	sortM := func(ms []*flow.Meter) { sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID }) }
	sortG(o.GroupAdds)
	sortG(o.GroupMods)
	sortG(o.GroupDels)
	sortM(o.MeterAdds)
	sortM(o.MeterMods)
	sortM(o.MeterDels)
}

// Apply records ops as done on a.
func (a *Actual) Apply(o *Ops) {
	for _, m := range append(append([]*flow.Meter{}, o.MeterAdds...), o.MeterMods...) {
		a.State.Meters[m.ID] = m
	}
	for _, g := range append(append([]*flow.Group{}, o.GroupAdds...), o.GroupMods...) {
		a.State.Groups[g.ID] = g
	}
	for _, f := range o.FlowDels {
		delete(a.State.Flows, f.Key())
	}
	for _, f := range append(append([]*flow.Flow{}, o.FlowMods...), o.FlowAdds...) {
		a.State.Flows[f.Key()] = f
	}
	for _, g := range o.GroupDels {
		delete(a.State.Groups, g.ID)
		// A switch deletes the flows that use a deleted group.
		for k, f := range a.State.Flows {
			for _, act := range f.Actions {
				if ga, ok := act.(flow.GroupAction); ok && ga.ID == g.ID {
					delete(a.State.Flows, k)
				}
			}
		}
	}
	for _, m := range o.MeterDels {
		delete(a.State.Meters, m.ID)
	}
}

// Text renders the ops, one change a line, for logs and tests.
func (o *Ops) Text() string {
	var s string
	for _, m := range o.MeterAdds {
		s += "+meter " + m.String() + "\n"
	}
	for _, m := range o.MeterMods {
		s += "~meter " + m.String() + "\n"
	}
	for _, g := range o.GroupAdds {
		s += "+group " + g.String() + "\n"
	}
	for _, g := range o.GroupMods {
		s += "~group " + g.String() + "\n"
	}
	for _, f := range o.FlowDels {
		s += "-flow " + f.String() + "\n"
	}
	for _, f := range o.FlowMods {
		s += "~flow " + f.String() + "\n"
	}
	for _, f := range o.FlowAdds {
		s += "+flow " + f.String() + "\n"
	}
	for _, g := range o.GroupDels {
		s += "-group " + g.String() + "\n"
	}
	for _, m := range o.MeterDels {
		s += "-meter " + m.String() + "\n"
	}
	for _, f := range o.Conflicts {
		s += "!conflict " + f.String() + "\n"
	}
	return s
}
