package binding

import (
	"hash/fnv"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// LBDSRTag in a pool's description makes it a DSR pool (app/lb's
// DSRTag; kept here so that app/nat can tell without importing app/lb).
const LBDSRTag = "nimbus:dsr"

// FloatingIPVIP is the load-balancer VIP whose port floating IP f is
// associated with, when that VIP is admin up and its pool exists, is
// admin up, on a GRE or VLAN network; nil otherwise. Such a floating IP has no
// VM and no chassis of its own: it is served on its home chassis
// (FloatingIPHome) by app/nat (ARP, the rewrite to the VIP, the way
// out) and app/lb (the balancing, in either mode: a DSR member's reply,
// from the VIP, is steered to the home like a NAT member's).
func FloatingIPVIP(m *model.Snapshot, f *model.FloatingIP) *model.LBVIP {
	if m == nil || f == nil || f.PortID == "" {
		return nil
	}
	for _, r := range m.List(model.KindVIP) {
		v := r.(*model.LBVIP)
		if v.PortID != f.PortID || !v.AdminStateUp {
			continue
		}
		pr, ok := m.Get(model.KindPool, v.PoolID)
		if !ok {
			return nil
		}
		if pool := pr.(*model.LBPool); !pool.AdminStateUp {
			return nil
		}
		// GRE and VLAN networks (app/lb's): the members' replies are
		// steered to the home through a tunnel, or through the VLAN
		// uplink to the VIP port's MAC.
		sr, ok := m.Get(model.KindSubnet, v.SubnetID)
		if !ok {
			return nil
		}
		nr, ok := m.Get(model.KindNetwork, sr.(*model.Subnet).NetworkID)
		if !ok || (nr.(*model.Network).NetworkType != model.NetGRE && nr.(*model.Network).NetworkType != model.NetVLAN) {
			return nil
		}
		return v
	}
	return nil
}

// FloatingIPHome is the home chassis of floating IP f, whose port has no
// chassis of its own (a VIP's port, FloatingIPVIP): the chassis with the
// highest rendezvous hash of (f's id, chassis name) among the chassis
// that can carry f's external network: they map its physical network,
// their br-int is connected (in topo) and has that network's uplink
// patch port. "" when no chassis can (or f's network is not a flat or
// VLAN external network). Pure and deterministic: every replica, and
// app/nat and app/lb on every switch, compute the same home from the
// same snapshots. When the home goes away the floating IP moves to the
// next chassis in its ranking only (rendezvous hashing: the other
// floating IPs stay where they are).
func (t *Table) FloatingIPHome(topo *topology.Snapshot, f *model.FloatingIP) string {
	ext := t.Networks[f.FloatingNetworkID]
	if ext == nil || !ext.Network.External || (ext.Network.NetworkType != model.NetFlat && ext.Network.NetworkType != model.NetVLAN) {
		return ""
	}
	pn := ext.Network.PhysicalNetwork
	best, bestScore := "", uint64(0)
	for _, c := range t.Chassis {
		if _, ok := c.Mappings[pn]; !ok || !t.canCarry(c, pn, topo) {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(f.ID))
		h.Write([]byte{0})
		h.Write([]byte(c.Name))
		s := h.Sum64()
		if best == "" || s > bestScore || (s == bestScore && c.Name < best) {
			best, bestScore = c.Name, s
		}
	}
	return best
}

// canCarry reports whether chassis c's br-int is connected (in topo; any
// when topo is nil) and has physical network pn's uplink patch port.
func (t *Table) canCarry(c *model.Chassis, pn string, topo *topology.Snapshot) bool {
	dp, err := c.DatapathID()
	if err != nil || t.byDPID[dp] != c {
		return false
	}
	var sw *topology.Switch
	if topo != nil {
		sw = topo.Switches[dp]
	}
	if topo != nil && sw == nil && !topo.Settling {
		return false
	}
	if sw == nil {
		// No topology, or settling (just restarted: the switch may not
		// be back yet): the ports its agent published.
		sw = ChassisSwitch(c, dp, nil)
	}
	if sw == nil {
		return true // no topology, no port record: the mapping alone
	}
	up := names.PhysPortName(pn)
	for _, p := range sw.Ports {
		if p.Name == up {
			return true
		}
	}
	return false
}
