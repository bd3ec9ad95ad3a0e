// Package topology tracks the switches Nimbus controls and their ports.
package topology

import (
	"sort"
	"sync"
)

// Port is one OpenFlow port of a switch.
type Port struct {
	No   uint32
	Name string
	MAC  uint64
	Up   bool
}

// Switch is an immutable view of one switch.
type Switch struct {
	DPID  uint64
	Ports map[uint32]Port
}

// PortByName finds a port by interface name.
func (s *Switch) PortByName(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// Snapshot is an immutable view of all switches.
type Snapshot struct {
	Switches map[uint64]*Switch
	// Settling: this replica started moments ago and not every chassis's
	// switch has connected to it yet (switches.Config.SettleWindow), so
	// a switch missing from Switches says nothing about its hypervisor's
	// health. Apps that take a missing switch for a dead hypervisor (a
	// load-balancer member left out, a floating IP's home moved) treat
	// every chassis as up while it is set: a controller restart must not
	// change desired state as the switches come back one by one.
	Settling bool
}

// DPIDs returns the switch ids in order.
func (s *Snapshot) DPIDs() []uint64 {
	out := make([]uint64, 0, len(s.Switches))
	for d := range s.Switches {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Graph holds the live topology; readers take immutable snapshots.
type Graph struct {
	mu   sync.Mutex
	snap *Snapshot
}

// NewGraph makes an empty graph.
func NewGraph() *Graph { return &Graph{snap: &Snapshot{Switches: map[uint64]*Switch{}}} }

// Snapshot returns the current immutable view.
func (g *Graph) Snapshot() *Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.snap
}

func (g *Graph) update(fn func(m map[uint64]*Switch)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[uint64]*Switch, len(g.snap.Switches)+1)
	for k, v := range g.snap.Switches {
		m[k] = v
	}
	fn(m)
	g.snap = &Snapshot{Switches: m}
}

// SetSwitch records a switch and its full port list.
func (g *Graph) SetSwitch(dpid uint64, ports []Port) {
	pm := make(map[uint32]Port, len(ports))
	for _, p := range ports {
		pm[p.No] = p
	}
	g.update(func(m map[uint64]*Switch) { m[dpid] = &Switch{DPID: dpid, Ports: pm} })
}

// SetPort adds or updates one port; del removes it.
func (g *Graph) SetPort(dpid uint64, p Port, del bool) {
	g.update(func(m map[uint64]*Switch) {
		old, ok := m[dpid]
		if !ok {
			return
		}
		pm := make(map[uint32]Port, len(old.Ports)+1)
		for k, v := range old.Ports {
			pm[k] = v
		}
		if del {
			delete(pm, p.No)
		} else {
			pm[p.No] = p
		}
		m[dpid] = &Switch{DPID: dpid, Ports: pm}
	})
}

// RemoveSwitch forgets a switch.
func (g *Graph) RemoveSwitch(dpid uint64) {
	g.update(func(m map[uint64]*Switch) { delete(m, dpid) })
}
