package isolation

import (
	"sort"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// Fabric mode: a switch that is no chassis's br-int (a Mininet or
// top-of-rack switch) is part of a fabric of plain OpenFlow switches
// joined by links found by LLDP. VLAN networks span the fabric: a
// network's frames cross fabric links tagged with its segmentation id
// (pushed when a frame leaves on a link, popped when it arrives), known
// unicast takes the shortest path to the switch holding the destination
// port, and broadcast follows one spanning tree pruned to the switches
// that hold the network's ports. Ports bind by binding:profile
// {"port_name": ...} (or the tap name). ARP, DHCP and port security work
// as on a chassis, on the switch the VM is plugged into. GRE networks
// need chassis; the fabric carries VLAN networks only.

func (a *App) desiredFabric(v *binding.View) (app.Desired, error) {
	var d app.Desired
	me := v.Switch.DPID
	t := v.Table
	fab := t.Fabric
	if fab == nil {
		return d, nil
	}
	nets := map[string]*netState{}
	where := map[*located]uint64{}
	hosts := map[string]map[uint64]bool{}
	for _, id := range t.NetworkIDs {
		bps := v.ByNetwork[id]
		if len(bps) == 0 {
			continue
		}
		ns := newNetState(t.Networks[id])
		nets[id] = ns
		for _, bp := range bps {
			l := &located{port: bp.Port, mac: bp.MAC, ofport: bp.OFPort}
			where[l] = bp.DPID
			ns.all = append(ns.all, l)
			if bp.DPID == me {
				ns.local = append(ns.local, l)
			} else {
				ns.remote = append(ns.remote, l)
			}
			if hosts[id] == nil {
				hosts[id] = map[uint64]bool{}
			}
			hosts[id][bp.DPID] = true
		}
	}

	ids := make([]string, 0, len(hosts))
	for id := range hosts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b := &builder{}
	leases := &leaseTable{byPort: map[uint32]*lease{}}
	linkPorts := v.LinkPorts
	for _, id := range ids {
		ns, members := nets[id], hosts[id]
		reach := members[me]
		for h := range members {
			reach = reach || fab.Connected(me, h)
		}
		if !reach {
			continue
		}
		b.fabricNetwork(ns, linkPorts, fab.TreePorts(me, members))
		for _, l := range ns.local {
			b.localPort(ns, l)
			// A tenant's LLDP never reaches discovery: no forged links.
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityGuard, Cookie: portCookie(l.port.ID),
				Match: flow.M().InPort(l.ofport).EthType(topology.EthTypeLLDP)})
			if ls := a.lease(ns, l); ls != nil {
				leases.byPort[l.ofport] = ls
			}
		}
		for _, l := range ns.remote {
			if nh, ok := fab.NextHop(me, where[l]); ok {
				b.add(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal, Cookie: portCookie(l.port.ID),
					Match: netMatch(ns.key).EthDst(l.mac), Actions: pushVLAN(uint64(ns.n.SegmentationID), nh)})
			}
		}
		if len(ns.local) > 0 {
			for _, l := range ns.all {
				b.arp(ns, l)
			}
		}
	}
	// Once the fabric carries tenant networks, a link port takes only
	// their tagged frames (and LLDP, punted before this table).
	if len(ids) > 0 {
		for _, p := range linkPorts {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityDefault,
				Cookie: pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID("fabric-link")), Match: flow.M().InPort(p)})
		}
	}
	d.Flows, d.Groups, d.Meters, d.Handler = b.flows, b.groups, b.meters(), leases
	return d, nil
}

// fabricNetwork emits a VLAN network's flows on a fabric switch: tagged
// frames from any link join the network, and floods go to the local
// ports and the pruned spanning tree (OVS never sends a frame back out of
// its ingress port, so one group serves every ingress).
func (b *builder) fabricNetwork(ns *netState, linkPorts, tree []uint32) {
	ck := netCookie(ns.n.ID)
	seg := uint64(ns.n.SegmentationID)
	for _, p := range linkPorts {
		b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match:   flow.M().InPort(p).Set(flow.VlanVID, flow.VlanPresent|seg),
			Actions: append([]flow.Action{flow.PopVLAN{}}, classify(ClassPhys, 0, ns.key, p)...), Goto: pipeline.L2Forward.ID()})
	}
	var buckets []flow.Bucket
	for _, l := range ns.local {
		buckets = append(buckets, flow.Bucket{Actions: []flow.Action{
			pipeline.RegOutPort.Set(uint64(l.ofport)), flow.Resubmit{InPort: flow.PortInPort, Table: pipeline.ToVMACL.ID()}}})
	}
	for _, t := range tree {
		buckets = append(buckets, flow.Bucket{Actions: pushVLAN(seg, t)})
	}
	if len(buckets) > 0 {
		g := floodGroupID(ns.key, false)
		b.floodGroups(g, buckets)
		for _, class := range []uint64{ClassVM, ClassPhys} {
			b.add(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityDefault, Cookie: ck,
				Match:   pipeline.RegPortClass.Match(netMatch(ns.key), class),
				Actions: []flow.Action{flow.GroupAction{ID: g}}})
		}
	}
	if len(ns.local) > 0 {
		b.dhcpPunt(ns)
	}
}
