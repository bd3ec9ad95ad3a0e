package pipeline

import (
	"fmt"
	"slices"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Check verifies a flow against its table's contract: the table exists,
// the cookie is ours and names an app allowed to write the table, the
// match fields are ones the table accepts (with prerequisites), the
// fields its actions write are ones the table may set, gotos and
// resubmits only go forward to declared tables, and priorities of static
// flows stay out of the miss band, and every punt to the controller goes
// through a declared meter.
func Check(f *flow.Flow) error {
	t := ByID(f.Table)
	if t == nil {
		return fmt.Errorf("pipeline: flow %s: no table %d", f.KeyText(), f.Table)
	}
	if !IsOurs(f.Cookie) {
		return fmt.Errorf("pipeline: flow %s: cookie 0x%x lacks the nimbus marker", f.KeyText(), f.Cookie)
	}
	app := CookieApp(f.Cookie)
	if app != AppPipeline && app != t.Owner && !slices.Contains(t.Writers, app) {
		return fmt.Errorf("pipeline: flow %s: app %s may not write table %s (owner %s)", f.KeyText(), app, t.Name, t.Owner)
	}
	if IsDynamic(f.Cookie) && !t.Dynamic {
		return fmt.Errorf("pipeline: flow %s: dynamic flow in static table %s", f.KeyText(), t.Name)
	}
	if f.Priority == PriorityMiss && app != AppPipeline {
		return fmt.Errorf("pipeline: flow %s: only the pipeline owns the miss band", f.KeyText())
	}
	if f.Meter != 0 && !declaredMeter(f.Meter) && !projectMeter(f.Meter, app) {
		return fmt.Errorf("pipeline: flow %s: meter %d is not declared in pipeline.Meters (nor the app's per-project meters)", f.KeyText(), f.Meter)
	}
	if f.Meter == 0 && punts(f.Actions) {
		return fmt.Errorf("pipeline: flow %s: sends to the controller without a meter (declare one in pipeline.Meters)", f.KeyText())
	}
	if err := f.Match.Validate(); err != nil {
		return fmt.Errorf("pipeline: flow %s: %w", f.KeyText(), err)
	}
	if t.Matches != nil {
		for _, m := range f.Match {
			if !slices.Contains(t.Matches, m.F) && !isPrereq(f.Match, m.F) {
				return fmt.Errorf("pipeline: flow %s: table %s does not match on %s", f.KeyText(), t.Name, m.F)
			}
		}
	}
	for _, a := range f.Actions {
		if w, ok := writes(a); ok && !slices.Contains(t.Sets, w) {
			return fmt.Errorf("pipeline: flow %s: table %s may not set %s", f.KeyText(), t.Name, w)
		}
	}
	next := func(id uint8, how string) error {
		nt := ByID(id)
		if nt == nil {
			return fmt.Errorf("pipeline: flow %s: %s to unknown table %d", f.KeyText(), how, id)
		}
		ok := slices.Contains(t.Next, nt.Name) || (f.Priority == PriorityMiss && (nt.id == t.id+1 || nt.Name == t.MissTable))
		if !ok {
			return fmt.Errorf("pipeline: flow %s: table %s may not %s %s", f.KeyText(), t.Name, how, nt.Name)
		}
		return nil
	}
	if f.Goto != 0 {
		if err := next(f.Goto, "goto"); err != nil {
			return err
		}
	}
	for _, a := range f.Actions {
		if r, ok := a.(flow.Resubmit); ok {
			if err := next(r.Table, "resubmit to"); err != nil {
				return err
			}
		}
		if ct, ok := a.(flow.CT); ok && ct.Table != flow.CTNoTable && !(t.Recirculate && ct.Table == f.Table) {
			if err := next(ct.Table, "recirculate to"); err != nil {
				return err
			}
		}
	}
	return nil
}

// writes returns the field an action writes, if any.
func writes(a flow.Action) (flow.Field, bool) {
	switch a := a.(type) {
	case flow.SetField:
		return a.F, true
	case flow.Move:
		return a.Dst, true
	case flow.PushVLAN, flow.PopVLAN:
		return flow.VlanVID, true
	}
	return 0, false
}

// punts reports whether actions send the packet to the controller.
func punts(acts []flow.Action) bool {
	for _, a := range acts {
		if o, ok := a.(flow.Output); ok && o.Port == flow.PortController {
			return true
		}
	}
	return false
}

// isPrereq allows dl_type and nw_proto when they only serve as another
// field's prerequisite.
func isPrereq(m flow.Match, f flow.Field) bool {
	for _, x := range m {
		for _, p := range x.F.Def().Prereq {
			if p.F == f {
				return true
			}
		}
	}
	return false
}

// CheckGroups verifies the groups flow f uses (group actions, and groups
// their buckets chain to) against f's table's contract: what a bucket
// sets and where it resubmits is what the flow does. groups are the
// app's groups by id; a group not among them is not checked here.
func CheckGroups(f *flow.Flow, groups map[uint32]*flow.Group) error {
	t := ByID(f.Table)
	if t == nil {
		return fmt.Errorf("pipeline: flow %s: no table %d", f.KeyText(), f.Table)
	}
	seen := map[uint32]bool{}
	var walk func(acts []flow.Action) error
	walk = func(acts []flow.Action) error {
		for _, a := range acts {
			ga, ok := a.(flow.GroupAction)
			if !ok || seen[ga.ID] {
				continue
			}
			seen[ga.ID] = true
			g := groups[ga.ID]
			if g == nil {
				continue
			}
			for _, b := range g.Buckets {
				for _, ba := range b.Actions {
					if w, ok := writes(ba); ok && !slices.Contains(t.Sets, w) {
						return fmt.Errorf("pipeline: flow %s: group 0x%x sets %s, which table %s may not set", f.KeyText(), g.ID, w, t.Name)
					}
					if r, ok := ba.(flow.Resubmit); ok {
						nt := ByID(r.Table)
						if nt == nil || !slices.Contains(t.Next, nt.Name) {
							return fmt.Errorf("pipeline: flow %s: group 0x%x resubmits to table %d, which table %s may not go to", f.KeyText(), g.ID, r.Table, t.Name)
						}
					}
				}
				if err := walk(b.Actions); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(f.Actions)
}
