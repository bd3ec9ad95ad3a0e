package isolation

import (
	"sort"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
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

// onFabric reports whether the fabric carries n.
func onFabric(n *model.Network) bool { return n.NetworkType == model.NetVLAN }

func (a *App) desiredFabric(in app.Input, chassis []*model.Chassis) (app.Desired, error) {
	var d app.Desired
	me := in.Switch.DPID
	if in.Topology == nil {
		return d, nil
	}
	isChassis := map[uint64]bool{}
	for _, c := range chassis {
		if dp, err := c.DatapathID(); err == nil {
			isChassis[dp] = true
		}
	}
	var sws []uint64
	byName := map[string]bound{}
	for _, dp := range in.Topology.DPIDs() {
		if isChassis[dp] {
			continue
		}
		sws = append(sws, dp)
		sw := in.Topology.Switches[dp]
		if dp == me {
			sw = in.Switch
		}
		for _, p := range sw.Ports {
			if infraPort(nil, p) {
				continue // LOCAL, tunnels, patches: never a VM's
			}
			if _, dup := byName[p.Name]; !dup {
				byName[p.Name] = bound{dpid: dp, port: p}
			}
		}
	}
	var links []topology.Link
	for _, l := range in.Model.Links() {
		links = append(links, topology.Link{A: topology.End{DPID: l.SrcDPID, Port: l.SrcPort}, B: topology.End{DPID: l.DstDPID, Port: l.DstPort}})
	}
	alive := func(e topology.End) bool {
		sw := in.Topology.Switches[e.DPID]
		if e.DPID == me {
			sw = in.Switch
		}
		if sw == nil {
			return false
		}
		p, ok := sw.Ports[e.Port]
		return ok && p.Up
	}
	fab := topology.NewFabric(sws, links, alive)

	nets := indexNetworks(in.Model)
	var claims []claim
	for _, p := range in.Model.Ports() {
		if ns := nets[p.NetworkID]; ns == nil || !onFabric(ns.n) {
			continue
		}
		c := claim{port: p, how: claimTapName}
		var ok bool
		c.at, ok = byName[names.VMPortName(p.ID)]
		if !ok {
			if pn, _ := p.Profile["port_name"].(string); pn != "" {
				c.how = claimProfile
				c.at, ok = byName[pn]
			}
		}
		if ok && !fab.IsLinkPort(c.at.dpid, c.at.port.No) {
			claims = append(claims, c)
		}
	}
	// One interface, one Neutron port.
	bindings := a.settleBindings(claims)
	where := map[*located]uint64{}
	hosts := map[string]map[uint64]bool{}
	for _, p := range in.Model.Ports() {
		ns := nets[p.NetworkID]
		if ns == nil || !onFabric(ns.n) {
			continue
		}
		mac, err := flow.ParseMAC(p.MACAddress)
		if err != nil {
			continue
		}
		bd, ok := bindings[p.ID]
		if !ok {
			continue
		}
		l := &located{port: p, mac: mac, ofport: bd.port.No}
		where[l] = bd.dpid
		ns.all = append(ns.all, l)
		if bd.dpid == me {
			ns.local = append(ns.local, l)
		} else {
			ns.remote = append(ns.remote, l)
		}
		if hosts[ns.n.ID] == nil {
			hosts[ns.n.ID] = map[uint64]bool{}
		}
		hosts[ns.n.ID][bd.dpid] = true
	}

	ids := make([]string, 0, len(hosts))
	for id := range hosts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b := &builder{}
	leases := &leaseTable{byPort: map[uint32]*lease{}}
	linkPorts := fab.LinkPorts(me)
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
	a.leases.Store(me, leases)
	d.Flows, d.Groups, d.Meters = b.flows, b.groups, b.meters()
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
