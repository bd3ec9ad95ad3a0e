package lb

import (
	"net/netip"
	"sort"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Clients from outside, through a floating IP on the VIP's port
// (README.md, "Floating IPs of a VIP"). The VIP's port is bound nowhere,
// so the floating IP lives on a home chassis (binding.FloatingIPHome,
// shared with app/nat): there app/nat rewrites the floating IP to the
// VIP and sends the packet to lb, which balances it with the VIP
// network's own flows (1-6), installed there even when no port of the
// VIP's network is; the members' replies come back to the home chassis
// to be un-NATed (flow 5, from the tunnel by flow 6), and app/nat turns
// the VIP into the floating IP on the way out of the uplink.

// prioSteer is the priority of a member's steered replies (F1); the
// router's own subnets sit above it (F2: 9001 + prefix length), all below
// the VIP's and members' flows.
const prioSteer = 9000

// vipFIP is a floating IP of a VIP with its home chassis, the router's
// MAC on the VIP's subnet (the destination MAC of a member's replies to
// the outside) and the router's subnets.
type vipFIP struct {
	f       *model.FloatingIP
	home    string
	rmac    flow.MAC
	subnets []netip.Prefix
	// ip, mac and ext: the floating IP, its port's MAC and its external
	// network's key, what a RST to an outside client needs (F3); mac 0
	// when the floating IP's port or network is unknown (no RST then).
	ip  flow.IPv4
	mac flow.MAC
	ext uint32
	// vmac is the VIP port's MAC: on a VLAN network the members' replies
	// are steered to the home addressed to it (steerReplies, homeCatch).
	vmac flow.MAC
}

// floatingIPs are the floating IPs of vip (onPort: those on its port;
// binding.FloatingIPVIP)
// that have a home, through an admin-up router with its gateway on the
// floating IP's network and an interface on the VIP's subnet in its
// network vnet, by floating IP id (app/nat's conditions).
func floatingIPs(in app.Input, bt *binding.Table, vip *model.LBVIP, vnet *binding.Network, onPort []*model.FloatingIP) []vipFIP {
	ifaces := bt.RouterIfaces
	var vmac flow.MAC
	if pr, ok := in.Model.Get(model.KindPort, vip.PortID); ok {
		vmac, _ = flow.ParseMAC(pr.(*model.Port).MACAddress)
	}
	if vnet.Network.NetworkType == model.NetVLAN && vmac == 0 {
		return nil
	}
	var out []vipFIP
	for _, f := range onPort {
		if f.RouterID == "" || f.PortID != vip.PortID {
			continue
		}
		if v := binding.FloatingIPVIP(in.Model, f); v == nil || v.ID != vip.ID {
			continue
		}
		rr, _ := in.Model.Get(model.KindRouter, f.RouterID)
		rt, _ := rr.(*model.Router)
		if rt == nil || !rt.AdminStateUp || rt.Gateway == nil || rt.Gateway.NetworkID != f.FloatingNetworkID {
			continue
		}
		x := vipFIP{f: f, home: bt.FloatingIPHome(in.Topology, f), vmac: vmac}
		if x.home == "" {
			continue
		}
		fr, _ := in.Model.Get(model.KindPort, f.FloatingPortID)
		fp, _ := fr.(*model.Port)
		ip, err := flow.ParseIPv4(f.FloatingIPAddress)
		if ext := bt.Networks[f.FloatingNetworkID]; fp != nil && ext != nil && err == nil {
			if mac, err := flow.ParseMAC(fp.MACAddress); err == nil {
				x.ip, x.mac, x.ext = ip, mac, ext.Key
			}
		}
		for _, pid := range rt.Interfaces {
			pr, _ := in.Model.Get(model.KindPort, pid)
			p, _ := pr.(*model.Port)
			if p == nil || !ifaces[pid] || p.DeviceID != rt.ID {
				continue
			}
			mac, err := flow.ParseMAC(p.MACAddress)
			if err != nil {
				continue
			}
			for _, fx := range p.FixedIPs {
				sr, _ := in.Model.Get(model.KindSubnet, fx.SubnetID)
				s, _ := sr.(*model.Subnet)
				if s == nil {
					continue
				}
				if pfx, err := netip.ParsePrefix(s.CIDR); err == nil && pfx.Addr().Is4() {
					x.subnets = append(x.subnets, pfx.Masked())
				}
				if fx.SubnetID == vip.SubnetID && p.NetworkID == vnet.Network.ID {
					x.rmac = mac
				}
			}
		}
		if x.rmac != 0 {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].f.ID < out[j].f.ID })
	return out
}

// homeHere reports whether this chassis is the home of one of fips.
func homeHere(v *binding.View, fips []vipFIP) bool {
	for _, x := range fips {
		if x.home == v.Chassis.Name {
			return true
		}
	}
	return false
}

// steer sends the replies of the VIP's members on this chassis to the
// home chassis of the VIP's floating IP, unchanged, when that is another
// chassis: there the connection's conntrack entry un-NATs them. A
// member's reply to a client outside has the router's MAC as destination
// and the member's address and port as source; after its lb lookup here
// (flow 5: no connection on this chassis, nothing changes) and before
// app/nat's floating IP or app/snat's egress on this chassis could take
// it out here:
//
//	F1 lb 9000       key, RegLB=1, tcp, dl_dst=router MAC, nw_src=M, tp_src=Mport -> tun_id=VIP network's segmentation id, output:tunnel to home
//	F2 lb 9001+len   the same, nw_dst in one of the router's subnets -> goto dnat (east-west: routed here as before)
//
// A VIP has at most one floating IP in Neutron (its port has one fixed
// IP); if it had several, the first by id with a home takes the replies.
func (a *App) steer(v *binding.View, net *binding.Network, fips []vipFIP, members []member, add func(*flow.Flow)) {
	var srcs []srcPort
	for _, mb := range members {
		if !mb.remote {
			srcs = append(srcs, srcPort{mb.ip, mb.port})
		}
	}
	steerReplies(v, net, fips, srcs, prioSteer, true, add)
	trackFromHome(v, net, fips, srcs, add)
}

// trackFromHome commits, on a NAT member's chassis other than the home,
// the connections the home sends it for the VIP's floating IP (from a
// tunnel or the VLAN uplink, from an address off the router's subnets,
// to the member's address and port) in the VIP network's lb zone, so
// that F1 steers only their replies (+rpl after flow 5's lookup): the
// member's replies on its own floating IP's connections (which app/nat
// serves on this chassis, from the external uplink) are not steered away
// to the home, where nothing would un-NAT them.
//
//	F0  classifier 20000       tun_id=segA (VLAN: uplink, tag popped), tcp, nw_dst=M, tp_dst=Mport -> classified as isolation does, goto lb
//	G0  lb 9000                kA, RegLB=0, class tunnel (phys), tcp, nw_dst=M, tp_dst=Mport -> ct(commit,zone), goto dnat
//	G0s lb 9001+len            the same, nw_src in one of the router's subnets -> goto dnat (east-west: not tracked)
func trackFromHome(v *binding.View, net *binding.Network, fips []vipFIP, srcs []srcPort, add func(*flow.Flow)) {
	if len(fips) == 0 || fips[0].home == v.Chassis.Name || toPeer(v, net, fips[0].home) == nil {
		return
	}
	x := fips[0]
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(x.f.ID))
	zone := Zone(net.Key)
	for _, sp := range srcs {
		tcpTo := func() flow.Match {
			return flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
				Set(flow.IPv4Dst, uint64(sp.ip)).Set(flow.TCPDst, uint64(sp.port))
		}
		f0 := fromPeer(v, net, tcpTo(), ck)
		if f0 == nil {
			return
		}
		add(f0)
		class := uint64(pipeline.ClassTunnel)
		if net.Network.NetworkType == model.NetVLAN {
			class = pipeline.ClassPhys
		}
		m := func() flow.Match {
			return pipeline.RegLB.Match(pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(tcpTo(), uint64(net.Key)), class), 0)
		}
		add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prioSteer, Cookie: ck, Match: m(),
			Actions: []flow.Action{flow.CT{Commit: true, Zone: zone, Table: flow.CTNoTable}}, Goto: pipeline.DNAT.ID()})
		for _, pfx := range x.subnets {
			add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prioSteer + 1 + uint16(pfx.Bits()), Cookie: ck,
				Match: m().IPv4SrcIn(pfx), Goto: pipeline.DNAT.ID()})
		}
	}
}

// srcPort is a reply's source address and port.
type srcPort struct {
	ip   flow.IPv4
	port uint16
}

// steerReplies adds, for each reply source of srcs (a member on this
// chassis), F1 at prio (to the home) and F2 at prio+1+prefix length (the
// router's own subnets: east-west, on to dnat). Nothing when this
// chassis is the home or has no way to it.
func steerReplies(v *binding.View, net *binding.Network, fips []vipFIP, srcs []srcPort, prio uint16, tracked bool, add func(*flow.Flow)) {
	if len(fips) == 0 {
		return
	}
	x := fips[0]
	out := toPeer(v, net, x.home)
	if x.home == v.Chassis.Name || out == nil {
		return
	}
	if net.Network.NetworkType == model.NetVLAN {
		// The uplink carries it to whichever chassis the physical
		// network has the destination MAC at: not the router's (every
		// chassis routes with it) but the VIP port's, which only the home
		// claims (homeCatch turns it back into the router's).
		out = append([]flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(x.vmac)}}, out...)
	}
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(x.f.ID))
	for _, sp := range srcs {
		m := func() flow.Match {
			m := pipeline.RegLB.Match(pipeline.RegNetwork.Match(nil, uint64(net.Key)), lookupDone).
				EthDst(x.rmac).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
				Set(flow.IPv4Src, uint64(sp.ip)).Set(flow.TCPSrc, uint64(sp.port))
			if tracked {
				// (NAT: a reply of a connection trackFromHome committed)
				m = m.SetMasked(flow.CTState, flow.CTTracked|flow.CTReply, flow.CTTracked|flow.CTReply)
			}
			return m
		}
		add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prio, Cookie: ck, Match: m(), Actions: out})
		for _, pfx := range x.subnets {
			add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prio + 1 + uint16(pfx.Bits()), Cookie: ck,
				Match: m().IPv4DstIn(pfx), Goto: pipeline.DNAT.ID()})
		}
	}
}

// homeCatch takes, on the home of the VIP's floating IP on a VLAN
// network, the members' replies steered to it from their chassis
// (steerReplies: addressed to the VIP port's MAC): as fromPeer's flow 6
// (or D6) for them, one above it, with the router's MAC put back as the
// destination (what app/nat's N4 matches after lb's lookup). srcs are
// the replies' sources (NAT: each remote member's address and port;
// DSR: the VIP's).
//
//	F4 classifier 20001  uplink, dl_vlan=tag, dl_dst=VIP port's MAC, tcp, nw_src, tp_src -> pop_vlan, class phys, key, reg2=uplink, dl_dst=router MAC, goto lb
func homeCatch(v *binding.View, net *binding.Network, fips []vipFIP, srcs []srcPort, add func(*flow.Flow)) {
	if net.Network.NetworkType != model.NetVLAN || !homeHere(v, fips) {
		return
	}
	x := fips[0]
	if x.home != v.Chassis.Name {
		return
	}
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(x.f.ID))
	for _, sp := range srcs {
		f := fromPeer(v, net, flow.M().EthDst(x.vmac).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
			Set(flow.IPv4Src, uint64(sp.ip)).Set(flow.TCPSrc, uint64(sp.port)), ck)
		if f == nil {
			return
		}
		f.Priority++
		f.Actions = append(f.Actions, flow.SetField{F: flow.EthDst, Value: uint64(x.rmac)})
		add(f)
	}
}

// rstOutside answers, on the home chassis of the VIP's floating IP, a
// new connection from outside (class phys: app/nat's rewrite from the
// uplink) when the VIP has no healthy member, above flow 2's RST punt,
// which answers out of the packet's ingress port from the VIP's address:
// on the uplink that would put the VIP, not the floating IP, on the
// external network, to the wrong MAC. F3 turns the SYN's destination
// back into the floating IP and its port's MAC before the punt, so the
// RST the handler builds (reject.go) comes from them; the handler then
// sends it through app/nat's floating IP egress (snat, as a floating IP's
// packet from a VM: the external gateway's MAC, the uplink, its VLAN tag)
// by the external network recorded in State under F3's cookie (the
// floating IP's). With no floating IP MAC known, F3 drops (the client
// times out).
//
//	F3 lb 10002 kA, RegLB=1, class phys, +new+trk, tcp, nw_dst=VIP, tp_dst=port -> nw_dst=FIP, dl_dst=FIP port's MAC, meter lb_reject_punt, CONTROLLER
func rstOutside(v *binding.View, net *binding.Network, fips []vipFIP, vip *model.LBVIP, vipIP flow.IPv4, vck uint64, add func(*flow.Flow), d *app.Desired) {
	m := pipeline.RegLB.Match(pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(net.Key)), pipeline.ClassPhys), lookupDone).
		EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
		Set(flow.IPv4Dst, uint64(vipIP)).Set(flow.TCPDst, uint64(vip.ProtocolPort)).
		SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew)
	outsidePunt(v, fips, m, vck, add, d)
}

// outsidePunt adds F3 (or F3d) with match m: the RST punt of the first
// floating IP homed here, or a drop.
func outsidePunt(v *binding.View, fips []vipFIP, m flow.Match, vck uint64, add func(*flow.Flow), d *app.Desired) {
	for _, x := range fips {
		if x.home != v.Chassis.Name || x.mac == 0 {
			continue
		}
		ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(x.f.ID))
		add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prioVIP + 1, Cookie: ck, Match: m, Meter: pipeline.MeterLBReject.ID(x.f.ProjectID),
			Actions: []flow.Action{
				flow.SetField{F: flow.IPv4Dst, Value: uint64(x.ip)},
				flow.SetField{F: flow.EthDst, Value: uint64(x.mac)},
				flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer},
			}})
		st, _ := d.Handler.(State)
		if st == nil {
			st = State{}
			d.Handler = st
		}
		st[ck] = Outside{External: x.ext}
		addMeter(d, x.f.ProjectID)
		return
	}
	add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prioVIP + 1, Cookie: vck, Match: m})
}

// addMeter adds project's RST punt meter (pipeline.MeterLBReject) to d
// once.
func addMeter(d *app.Desired, project string) {
	d.Meters = pipeline.MeterLBReject.Add(d.Meters, project)
}

// steerDSR is steer for a DSR VIP: a member's reply to an outside client
// comes from the VIP (nw_src = VIP, tp_src = the VIP's port), and after
// its lookup here (D5: no connection on this chassis) D5b would send it
// on to dnat; F1d and F2d sit above D5b.
//
//	F1d lb 10001      key, RegLB=1, tcp, dl_dst=router MAC, nw_src=VIP, tp_src=port (a member here) -> to the home (tunnel)
//	F2d lb 10002+len  the same, nw_dst in one of the router's subnets -> goto dnat (east-west)
func (a *App) steerDSR(v *binding.View, net *binding.Network, fips []vipFIP, vip *model.LBVIP, vipIP flow.IPv4, members []member, add func(*flow.Flow)) {
	for _, mb := range members {
		if !mb.remote {
			steerReplies(v, net, fips, []srcPort{{vipIP, uint16(vip.ProtocolPort)}}, prioMember+1, false, add)
			return
		}
	}
}

// rstOutsideDSR is rstOutside for a DSR VIP, whose RST punt (with no
// healthy member) takes the packet before any lookup:
//
//	F3d lb 10002 kA, RegLB=0, class phys, tcp, nw_dst=VIP, tp_dst=port -> as F3
//
// It only matters with no healthy member: otherwise D1 (10001) looks the
// packet up and F3d, above it, would take every outside packet; so the
// flow is added only then.
func rstOutsideDSR(v *binding.View, net *binding.Network, fips []vipFIP, vip *model.LBVIP, vipIP flow.IPv4, vck uint64, add func(*flow.Flow), d *app.Desired) {
	m := pipeline.RegLB.Match(pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(net.Key)), pipeline.ClassPhys), 0).
		EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
		Set(flow.IPv4Dst, uint64(vipIP)).Set(flow.TCPDst, uint64(vip.ProtocolPort))
	outsidePunt(v, fips, m, vck, add, d)
}
