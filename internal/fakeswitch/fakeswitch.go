// Package fakeswitch is an in-memory OpenFlow 1.3 flow table for unit
// tests of the reconciler and apps. It applies changes with OpenFlow's
// semantics (add replaces, modify-strict keeps a flow's age, delete-strict
// honours the cookie guard) and remembers when each flow was created, so
// tests can prove a flow was never deleted and re-added.
package fakeswitch

import (
	"context"
	"sync"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// Entry is one installed flow.
type Entry struct {
	Flow    *flow.Flow
	Created int // the Apply call that created it (0: installed by the test)
}

// Switch is the fake.
type Switch struct {
	mu      sync.Mutex
	flows   map[string]*Entry
	groups  map[uint32]*flow.Group
	meters  map[uint32]*flow.Meter
	applies int
	// Messages counts every change applied.
	Messages int
	// FailNext makes the next Apply fail with this error.
	FailNext error
}

// New makes an empty switch.
func New() *Switch {
	return &Switch{flows: map[string]*Entry{}, groups: map[uint32]*flow.Group{}, meters: map[uint32]*flow.Meter{}}
}

// Install puts a flow directly (as another controller or ovs-ofctl would).
func (s *Switch) Install(f *flow.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flows[f.Key()] = &Entry{Flow: f, Created: 0}
}

// Remove deletes a flow directly (drift).
func (s *Switch) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flows, key)
}

// Entries returns a copy of the flow table.
func (s *Switch) Entries() map[string]Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Entry, len(s.flows))
	for k, e := range s.flows {
		out[k] = *e
	}
	return out
}

// Applies counts Apply calls.
func (s *Switch) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

// Dump implements reconcile.Switch.
func (s *Switch) Dump(context.Context) (*reconcile.Actual, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := reconcile.NewActual()
	for _, e := range s.flows {
		cp := *e.Flow
		a.AddDumped(&cp, false)
	}
	for id, g := range s.groups {
		a.State.Groups[id] = g
	}
	for id, m := range s.meters {
		a.State.Meters[id] = m
	}
	return a, nil
}

// Apply implements reconcile.Switch.
func (s *Switch) Apply(_ context.Context, ops *reconcile.Ops) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.FailNext; err != nil {
		s.FailNext = nil
		return err
	}
	s.applies++
	s.Messages += ops.Len()
	for _, m := range append(append([]*flow.Meter{}, ops.MeterAdds...), ops.MeterMods...) {
		s.meters[m.ID] = m
	}
	for _, g := range append(append([]*flow.Group{}, ops.GroupAdds...), ops.GroupMods...) {
		s.groups[g.ID] = g
	}
	for _, f := range ops.FlowDels {
		if e, ok := s.flows[f.Key()]; ok && e.Flow.Cookie == f.Cookie {
			delete(s.flows, f.Key())
		}
	}
	for _, f := range ops.FlowMods {
		if e, ok := s.flows[f.Key()]; ok && e.Flow.Cookie == f.Cookie {
			cp := *e.Flow
			cp.Actions, cp.Goto, cp.Meter, cp.Metadata, cp.MetadataMask = f.Actions, f.Goto, f.Meter, f.Metadata, f.MetadataMask
			e.Flow = &cp
		}
	}
	for _, f := range ops.FlowAdds {
		s.flows[f.Key()] = &Entry{Flow: f, Created: s.applies}
	}
	for _, g := range ops.GroupDels {
		delete(s.groups, g.ID)
	}
	for _, m := range ops.MeterDels {
		delete(s.meters, m.ID)
	}
	return nil
}
