// Package fakeswitch is an in-memory OpenFlow 1.3 switch for unit tests
// of the reconciler and apps, in the spirit of Faucet's fakeoftable.
//
// As a flow store it applies the reconciler's changes with OpenFlow's
// semantics (add replaces, modify-strict keeps a flow's age, delete-strict
// honours the cookie guard) and remembers when each flow was created, so
// tests can prove a flow was never deleted and re-added.
//
// As a table model it walks packets: give Walk a Packet (header fields,
// or Parse a frame) and an in-port, and it returns where the packet goes
// (each output with the packet as rewritten there, each punt to the
// controller with its reason and cookie, or a drop), following the
// flows, groups and meters of package flow as Open vSwitch executes them:
// priorities and masked matches, goto_table, write_metadata, apply-actions
// in order, Nicira resubmit, registers, reg_load and reg_move, VLAN push
// and pop, set_field, dec_ttl, groups of every type, conjunctive matches
// (conjunction, conj_id), and a minimal ct().
// See Walk for the exact rules and the limits. Anything the model does not
// know is an error wrapping ErrUnsupported, never silently passed over.
// Real OVS and ofproto/trace stay the oracle in the e2e tier
// (app/isolation's agreement test compares the two).
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
	// Packets and Bytes are the flow's counters, as a test sets them
	// (Count); Dump reports them.
	Packets, Bytes uint64
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
	// ports are the switch's ports and their liveness (nil: not given).
	ports map[uint32]bool

	// Conntrack answers ct() during walks (nil: NewConnections, every
	// packet +trk+new).
	Conntrack Conntrack
	// SelectBucket, if set, chooses the bucket of a select group (an
	// index into g.Buckets; a dead or out-of-range choice drops). Nil: a
	// weighted hash of the packet's L2-L4 headers.
	SelectBucket func(g *flow.Group, p Packet) int
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

// InstallGroup puts a group directly, replacing one with its id.
func (s *Switch) InstallGroup(g *flow.Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[g.ID] = g
}

// InstallMeter puts a meter directly, replacing one with its id.
func (s *Switch) InstallMeter(m *flow.Meter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meters[m.ID] = m
}

// Load installs a whole state (flows, groups, meters), as if the
// reconciler had pushed it to an empty switch.
func (s *Switch) Load(st *flow.State) {
	for _, f := range st.Flows {
		s.Install(f)
	}
	for _, g := range st.Groups {
		s.InstallGroup(g)
	}
	for _, m := range st.Meters {
		s.InstallMeter(m)
	}
}

// FromState makes a switch holding st with the given ports, all live.
func FromState(st *flow.State, ports ...uint32) *Switch {
	s := New()
	s.Load(st)
	if len(ports) > 0 {
		s.SetPorts(ports...)
	}
	return s
}

// SetPorts declares the switch's ports, all live, replacing any earlier
// list. FLOOD and ALL need it; with it, output to a port not in it is
// dropped, and fast-failover groups watch these ports.
func (s *Switch) SetPorts(ports ...uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports = map[uint32]bool{}
	for _, p := range ports {
		s.ports[p] = true
	}
}

// SetPortLive marks a declared port up or down (for fast-failover
// watch ports; a down port still receives outputs, as in OVS where only
// the group's liveness sees link state).
func (s *Switch) SetPortLive(port uint32, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports == nil {
		s.ports = map[uint32]bool{}
	}
	s.ports[port] = live
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

// Count adds to the counters of the flow with key (Flow.Key()), as
// traffic would; false when the switch holds no such flow.
func (s *Switch) Count(key string, packets, bytes uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.flows[key]
	if ok {
		e.Packets += packets
		e.Bytes += bytes
	}
	return ok
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
		a.AddDumpedCounts(&cp, false, e.Packets, e.Bytes)
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
