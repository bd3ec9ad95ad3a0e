// Package l3router is the distributed L3 router app: east-west routing
// between the subnets of a Neutron router, done on the chassis where the
// packet enters. For one chassis's br-int it computes, per router, the
// l3_routing flows of every router interface whose network has a local
// port here:
//
//   - ICMP echo to any of the router's gateway addresses is answered in
//     flows (addresses and MACs swapped, type 0, back out of IN_PORT);
//   - a packet to the interface's MAC whose destination is a port of one
//     of the router's subnets is routed: dec_ttl, source MAC = the router
//     interface's MAC on the target's subnet, destination MAC = the target
//     port's MAC from the model (no ARP), network register = the target's
//     network key; a target on this chassis continues to l2_forward (the
//     isolation app delivers it through to_vm_acl), a target on another
//     chassis leaves straight on the tunnel to it with the target
//     network's GRE key, or tagged on the VLAN uplink;
//   - another address of a connected subnet is dropped (no such port);
//   - a destination in one of the router's extra routes (longest prefix
//     first) goes to the route's nexthop port as a packet to that port's
//     own address would (its MAC from the model, no ARP);
//   - anything else has no route and is punted through the router's
//     project's l3_punt meter (pipeline.MeterL3: one per project, so one
//     tenant's flood cannot use up another's ICMP errors) to the
//     packet-in handler, which answers ICMP net unreachable;
//   - a packet to the interface's MAC with TTL 0 or 1 (matched on nw_ttl,
//     above every route) is punted through the same meter, and the
//     handler answers ICMP time exceeded, so traceroute shows the hop.
//     dec_ttl then never meets an expired TTL (Open vSwitch would drop
//     it: its invalid_ttl packet-ins are off by default).
//
// ARP for a gateway address is answered by the isolation app's ARP
// responder (binding.Network.MayHoldGateway: only an interface a router
// lists), with the router interface port's MAC, on every chassis that
// has a port of the network.
// l3router adds gratuitous ARPs of each interface's gateway out of the
// local VM ports of its network (gatewayARPs).
//
// Everything is keyed by the ingress network key and the interface MAC,
// and a router only reaches the ports of its own interfaces' subnets, so
// tenants with identical subnets behind their own routers never meet.
//
// It is pure: the model snapshot and the shared binding table in; flows,
// a meter and the handler's table (router MAC -> gateway address) out.
package l3router

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// App is the L3 router app.
type App struct{}

// New makes the app.
func New() *App { return &App{} }

func (a *App) Name() string       { return "l3router" }
func (a *App) ID() pipeline.AppID { return pipeline.AppL3Router }

// iface is one router interface: its port, network and subnet.
type iface struct {
	port   *model.Port
	net    *binding.Network
	mac    flow.MAC
	gw     flow.IPv4
	prefix netip.Prefix
}

// target is a port a router reaches: its address on one of the router's
// subnets and where it is bound.
type target struct {
	bp  *binding.Port
	via *iface // the router interface on the target's subnet
	ip  flow.IPv4
}

// Gateways is the handler's state on one switch: the gateway address of
// each router interface MAC that has l3_routing flows here.
type Gateways map[flow.MAC]flow.IPv4

func cookie(id string) uint64 { return pipeline.Cookie(pipeline.AppL3Router, pipeline.ObjectID(id)) }

// interfaces returns a router's IPv4 interfaces on networks with a key,
// in the router's order (interfaces a router lists, whose device_id is
// the router and whose owner is a router interface: binding.RouterInterfaces).
func interfaces(m *model.Snapshot, t *binding.Table, rt *model.Router, ok map[string]bool) []*iface {
	var out []*iface
	for _, pid := range rt.Interfaces {
		if !ok[pid] {
			continue
		}
		r, _ := m.Get(model.KindPort, pid)
		p, _ := r.(*model.Port)
		if p == nil || p.DeviceID != rt.ID {
			continue
		}
		n := t.Networks[p.NetworkID]
		mac, err := flow.ParseMAC(p.MACAddress)
		if n == nil || err != nil {
			continue
		}
		for _, fip := range p.FixedIPs {
			gw, err := flow.ParseIPv4(fip.IPAddress)
			if err != nil {
				continue
			}
			for _, s := range n.Subnets {
				if s.ID != fip.SubnetID {
					continue
				}
				pfx, err := netip.ParsePrefix(s.CIDR)
				if err != nil || !pfx.Addr().Is4() {
					continue
				}
				out = append(out, &iface{port: p, net: n, mac: mac, gw: gw, prefix: pfx.Masked()})
			}
		}
	}
	return out
}

func toIPv4(a netip.Addr) flow.IPv4 {
	b := a.As4()
	return flow.IPv4(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
}

func contains(p netip.Prefix, v flow.IPv4) bool {
	return p.Contains(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
}

// Desired computes the switch's l3_routing flows.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Model == nil || in.Switch == nil {
		return d, nil
	}
	v := in.Binding().Switch(in.Switch)
	if v.Chassis == nil {
		return d, nil // overlay only: fabric switches do not route
	}
	gws := Gateways{}
	ok := binding.RouterInterfaces(in.Model)
	routers := in.Model.Routers()
	sort.Slice(routers, func(i, j int) bool { return routers[i].ID < routers[j].ID })
	for _, rt := range routers {
		if !rt.AdminStateUp {
			continue
		}
		ifs := interfaces(in.Model, v.Table, rt, ok)
		if len(ifs) == 0 {
			continue
		}
		targets := a.targets(v, ifs, ok)
		seenIng := map[flow.MAC]bool{}
		for _, ing := range ifs {
			if seenIng[ing.mac] || !hasLocal(v, ing.net) {
				continue // one interface port, or no packet enters it here
			}
			seenIng[ing.mac] = true
			fs := routeFlows(v, rt, ing, ifs, targets)
			d.Flows = append(d.Flows, fs...)
			gws[ing.mac] = ing.gw
			d.Meters = pipeline.MeterL3.Add(d.Meters, rt.ProjectID)
			d.Announce = append(d.Announce, gatewayARPs(v, ing)...)
		}
	}
	d.Handler = gws
	return d, nil
}

// gatewayARPs are gratuitous ARPs of ing's gateway (its address from
// its MAC) out of each local VM port of its network, which the switch
// agent sends when they first appear (an interface added, a VM arrived)
// and again once the flows are in. A VM that asked for the gateway
// before this chassis could answer (the flows of one interface reach
// the chassis at different moments) holds an incomplete neighbour entry
// and would ask again only after a second (Linux's retrans_time); a
// gratuitous ARP completes it at once. Other neighbour caches ignore it
// (Linux's arp_accept 0: no entry is created).
func gatewayARPs(v *binding.View, ing *iface) []app.Announcement {
	var out []app.Announcement
	for _, bp := range v.ByNetwork[ing.net.Network.ID] {
		if !v.Local(bp) || strings.HasPrefix(bp.Port.DeviceOwner, "network:") {
			continue
		}
		out = append(out, app.Announcement{Port: bp.OFPort, Data: flow.ARPRequest(ing.mac, ing.gw, ing.gw)})
	}
	return out
}

func hasLocal(v *binding.View, n *binding.Network) bool {
	for _, bp := range v.ByNetwork[n.Network.ID] {
		if v.Local(bp) {
			return true
		}
	}
	return false
}

// targets are the ports (router interfaces excluded) with an address in
// one of the router's subnets, bound to a chassis, in model order.
func (a *App) targets(v *binding.View, ifs []*iface, routerIfaces map[string]bool) []target {
	var out []target
	seen := map[flow.IPv4]bool{}
	for _, gw := range ifs {
		seen[gw.gw] = true
	}
	for _, via := range ifs {
		for _, bp := range v.ByNetwork[via.net.Network.ID] {
			if routerIfaces[bp.Port.ID] || strings.HasPrefix(bp.Port.DeviceOwner, "network:router") || bp.Port.DeviceOwner == "network:dhcp" {
				continue
			}
			if !v.Local(bp) && !v.Remote(bp) {
				continue // unbound: nowhere to send it
			}
			for _, fip := range bp.Port.FixedIPs {
				ip, err := flow.ParseIPv4(fip.IPAddress)
				if err != nil || seen[ip] || !contains(via.prefix, ip) {
					continue
				}
				seen[ip] = true
				out = append(out, target{bp: bp, via: via, ip: ip})
			}
		}
	}
	return out
}

// ingress is the match of packets that enter router interface ing: from
// a local VM on its network, sent to its MAC, IPv4.
func ingress(ing *iface) flow.Match {
	m := pipeline.RegNetwork.Match(nil, uint64(ing.net.Key))
	m = pipeline.RegPortClass.Match(m, pipeline.ClassVM)
	return m.EthDst(ing.mac).EthType(flow.EthTypeIPv4)
}

// routeFlows are the l3_routing flows of packets entering ing.
func routeFlows(v *binding.View, rt *model.Router, ing *iface, ifs []*iface, targets []target) []*flow.Flow {
	tbl := pipeline.L3Routing.ID()
	ck := cookie(ing.port.ID)
	var out []*flow.Flow
	// ICMP echo to any gateway address of the router, answered in place.
	seenGW := map[flow.IPv4]bool{}
	for _, gw := range ifs {
		if seenGW[gw.gw] {
			continue
		}
		seenGW[gw.gw] = true
		out = append(out, &flow.Flow{Table: tbl, Priority: pipeline.PrioritySpecific, Cookie: ck,
			Match:   ingress(ing).Set(flow.IPProto, flow.ProtoICMP).Set(flow.ICMPv4Type, 8).Set(flow.IPv4Dst, uint64(gw.gw)),
			Actions: flow.EchoReply(gw.gw, ing.mac)})
	}
	// An expired TTL (0 or 1: routing would make it 0): time exceeded,
	// from the handler, through the meter. Above every route, below the
	// router's own addresses (a ping to the gateway with TTL 1 is answered).
	for _, ttl := range []uint64{0, 1} {
		out = append(out, &flow.Flow{Table: tbl, Priority: pipeline.PriorityNormal + 64, Cookie: ck, Meter: pipeline.MeterL3.ID(rt.ProjectID),
			Match:   ingress(ing).Set(flow.IPTTL, ttl),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
	}
	// Host routes: each port of a connected subnet (a /32 beats its
	// subnet's drop below).
	for _, tg := range targets {
		f := forward(v, tg, &flow.Flow{Table: tbl, Priority: pipeline.PriorityNormal + 32, Cookie: cookie(tg.bp.Port.ID),
			Match: ingress(ing).Set(flow.IPv4Dst, uint64(tg.ip))})
		if f != nil {
			out = append(out, f)
		}
	}
	// Extra routes: a packet to the destination goes to the nexthop
	// port, exactly as a packet to the nexthop's own address would, at
	// priority 10000 + prefix length (longest prefix wins).
	out = append(out, extraRoutes(v, rt, ing, ifs, targets)...)
	// A connected subnet's other addresses: no such port, dropped.
	seenPfx := map[netip.Prefix]bool{}
	for _, c := range ifs {
		if seenPfx[c.prefix] {
			continue
		}
		seenPfx[c.prefix] = true
		if c.prefix.Bits() == 0 || c.prefix.Bits() == 32 {
			continue
		}
		mask := uint64(^uint32(0) << (32 - c.prefix.Bits()))
		out = append(out, &flow.Flow{Table: tbl, Priority: pipeline.PriorityNormal + uint16(c.prefix.Bits()), Cookie: cookie(c.port.ID + "/" + ing.port.ID),
			Match: ingress(ing).SetMasked(flow.IPv4Dst, uint64(toIPv4(c.prefix.Addr())), mask)})
	}
	// No route: the handler answers ICMP net unreachable.
	out = append(out, &flow.Flow{Table: tbl, Priority: pipeline.PriorityDefault, Cookie: ck, Meter: pipeline.MeterL3.ID(rt.ProjectID),
		Match:   ingress(ing),
		Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
	return out
}

// forward completes f (the match already set) with the actions that route
// a packet to target tg: dec_ttl, source MAC = the router's MAC on the
// target's subnet, destination MAC = the target port's MAC, the target's
// network key and the routed flag; then a local target goes on to
// l2_forward, a remote one leaves on the tunnel to its chassis with the
// target network's GRE key or tagged on the VLAN uplink. nil when there
// is no way to the target's chassis yet.
func forward(v *binding.View, tg target, f *flow.Flow) *flow.Flow {
	acts := []flow.Action{
		flow.DecTTL{},
		flow.SetField{F: flow.EthSrc, Value: uint64(tg.via.mac)},
		flow.SetField{F: flow.EthDst, Value: uint64(tg.bp.MAC)},
		pipeline.RegNetwork.Set(uint64(tg.via.net.Key)),
		flow.SetField{F: pipeline.RegFlags.Field, Value: pipeline.FlagRouted, Mask: pipeline.FlagRouted},
	}
	switch {
	case v.Local(tg.bp):
		f.Actions, f.Goto = acts, pipeline.L2Forward.ID()
	case tg.via.net.Network.NetworkType == model.NetGRE:
		tp, ok := v.Tunnels[tg.bp.Chassis]
		if !ok {
			return nil // no tunnel to its chassis yet: the subnet drop applies
		}
		f.Actions = append(acts, flow.SetField{F: flow.TunnelID, Value: uint64(tg.via.net.Network.SegmentationID)}, flow.Output{Port: tp})
	case tg.via.net.Network.NetworkType == model.NetVLAN:
		up := v.Uplink(tg.via.net)
		if up == 0 {
			return nil
		}
		f.Actions = append(acts, flow.PushVLAN{EthType: flow.EthTypeVLAN},
			flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | uint64(tg.via.net.Network.SegmentationID)}, flow.Output{Port: up})
	default:
		return nil
	}
	return f
}

// extraRoutes are the flows of router rt's extra routes for packets
// entering ing. A route is used when its nexthop is the address of a
// bound port on one of the router's subnets (a target: its MAC comes
// from the model, no ARP); otherwise the packet meets the no-route punt
// (net unreachable). A route whose destination overlaps a connected
// subnet is skipped (the API refuses one; an interface added after the
// route can still make one): the connected subnet wins. Several routes
// to one destination (Neutron accepts them): the lowest nexthop address
// that resolves carries the traffic (no ECMP).
func extraRoutes(v *binding.View, rt *model.Router, ing *iface, ifs []*iface, targets []target) []*flow.Flow {
	if len(rt.Routes) == 0 {
		return nil
	}
	byIP := map[flow.IPv4]target{}
	for _, tg := range targets {
		byIP[tg.ip] = tg
	}
	type choice struct {
		pfx netip.Prefix
		nh  flow.IPv4
		tg  target
	}
	best := map[netip.Prefix]choice{}
	for _, r := range rt.Routes {
		pfx, err := netip.ParsePrefix(r.Destination)
		if err != nil || !pfx.Addr().Is4() {
			continue
		}
		pfx = pfx.Masked()
		nh, err := flow.ParseIPv4(r.NextHop)
		if err != nil {
			continue
		}
		tg, ok := byIP[nh]
		if !ok {
			continue
		}
		overlaps := false
		for _, c := range ifs {
			overlaps = overlaps || c.prefix.Overlaps(pfx)
		}
		if overlaps {
			continue
		}
		if c, ok := best[pfx]; ok && c.nh < nh {
			continue
		}
		best[pfx] = choice{pfx, nh, tg}
	}
	var cs []choice
	for _, c := range best {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].pfx.Bits() != cs[j].pfx.Bits() {
			return cs[i].pfx.Bits() > cs[j].pfx.Bits()
		}
		return cs[i].pfx.Addr().Less(cs[j].pfx.Addr())
	})
	var out []*flow.Flow
	for _, c := range cs {
		m := ingress(ing)
		if c.pfx.Bits() > 0 {
			m = m.SetMasked(flow.IPv4Dst, uint64(toIPv4(c.pfx.Addr())), uint64(^uint32(0)<<(32-c.pfx.Bits())))
		}
		f := forward(v, c.tg, &flow.Flow{Table: pipeline.L3Routing.ID(), Priority: pipeline.PriorityNormal + uint16(c.pfx.Bits()),
			Cookie: cookie(rt.ID + "/route/" + c.pfx.String() + "/" + ing.port.ID), Match: m})
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

var _ app.PacketInApp = (*App)(nil)
