// Package node is the node agent's logic (the `controller node`
// subcommand): it sets up br-int on a hypervisor (datapath type, fail mode
// secure, OpenFlow 1.3, every controller replica), registers the chassis
// in the store, patches br-int to the bridges of its physical networks,
// keeps one GRE port per peer chassis as chassis come and go, and
// publishes br-int's external_ids:iface-id in its chassis record.
package node

import (
	"sort"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// TunnelPortName is names.TunnelPortName (re-exported for callers of node).
func TunnelPortName(peerChassis string) string { return names.TunnelPortName(peerChassis) }

// Tunnel is one desired GRE port on br-int.
type Tunnel struct {
	Port     string // names.TunnelPortName(Peer)
	Peer     string
	RemoteIP string
}

// DesiredTunnels lists the GRE ports chassis self should have: one per
// other chassis with a tunnel IP, sorted by port name.
func DesiredTunnels(self string, chassis []*model.Chassis) []Tunnel {
	out := make([]Tunnel, 0, len(chassis))
	for _, c := range chassis {
		if c.Name == self || c.TunnelIP == "" {
			continue
		}
		out = append(out, Tunnel{Port: names.TunnelPortName(c.Name), Peer: c.Name, RemoteIP: c.TunnelIP})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

// Patch is one patch pair joining br-int to a physical network's bridge.
type Patch struct {
	Physnet  string
	Bridge   string // the mapped bridge (br-phy)
	IntPort  string // on br-int: names.PhysPortName(physnet)
	PhysPort string // on Bridge: names.IntPortName(physnet)
}

// DesiredPatches lists the patch pairs for bridge mappings, by physnet.
func DesiredPatches(mappings map[string]string) []Patch {
	out := make([]Patch, 0, len(mappings))
	for pn, br := range mappings {
		out = append(out, Patch{Physnet: pn, Bridge: br, IntPort: names.PhysPortName(pn), PhysPort: names.IntPortName(pn)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Physnet < out[j].Physnet })
	return out
}

// TunnelOps is what turns the current GRE ports into the desired ones.
type TunnelOps struct {
	Add    []Tunnel // new ports
	Update []Tunnel // existing ports whose remote_ip changed
	Delete []string // ports no chassis wants any more
}

// Empty reports no changes.
func (o TunnelOps) Empty() bool { return len(o.Add)+len(o.Update)+len(o.Delete) == 0 }

// DiffTunnels compares desired tunnels with the current ones (tunnel
// port name -> remote_ip; only names.TunnelPrefix ports count). With
// prune false nothing is deleted.
func DiffTunnels(desired []Tunnel, current map[string]string, prune bool) TunnelOps {
	var ops TunnelOps
	want := make(map[string]bool, len(desired))
	for _, t := range desired {
		want[t.Port] = true
		ip, ok := current[t.Port]
		switch {
		case !ok:
			ops.Add = append(ops.Add, t)
		case ip != t.RemoteIP:
			ops.Update = append(ops.Update, t)
		}
	}
	if prune {
		for p := range current {
			if !want[p] {
				ops.Delete = append(ops.Delete, p)
			}
		}
		sort.Strings(ops.Delete)
	}
	return ops
}
