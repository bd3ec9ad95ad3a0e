// Package lb is the distributed load balancer (LBaaS v1). NAT mode (the
// default; DSR per pool, README.md): a client's connection to a VIP is balanced on the client's own chassis by
// an OpenFlow select group over the pool's healthy members, conntrack
// DNATs it to the chosen member and pins that choice for the rest of the
// connection, and the member's replies are un-NATed on the client's
// chassis. Pure, like every app: model snapshot + topology + the shared
// binding table in, flows and groups out. See README.md for the tables,
// the flows, what is covered and what is not (DSR, persistence). Health
// monitors run in the node agents (package lbprobe); the app reads the
// members' status and steers the probes (probes).
package lb

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Config configures the app (nothing yet).
type Config struct{}

// App is the load-balancer app.
type App struct{ cfg Config }

// New makes the app.
func New(cfg Config) *App { return &App{cfg: cfg} }

// Name is "lb".
func (*App) Name() string { return "lb" }

// ID is pipeline.AppLB.
func (*App) ID() pipeline.AppID { return pipeline.AppLB }

// Priorities in the lb table. A VIP's lookup sits above the members'
// reply lookups so that a member that is itself a client of the VIP
// (same address and port as its member entry) is never ambiguous.
const (
	prioVIP    = pipeline.PriorityNormal + 1
	prioMember = pipeline.PriorityNormal
	prioGuard  = pipeline.PriorityDefault
)

// lookupDone is RegLB's value once the lb table's conntrack lookup ran.
const lookupDone = 1

// Zone is the conntrack zone of a network's load-balanced connections
// (pipeline.ZoneLB): apart from the security groups' zone of the same
// network, because conntrack takes NAT only on a connection's first
// commit, and the client's from_vm_acl has committed it there already.
// Networks whose keys share a zone must not share VIP and member
// addresses.
func Zone(key uint32) uint16 { return pipeline.ZoneLB(key) }

// Group is the id of a VIP's select group given every VIP id of the
// model: GroupBase(lb) + the VIP's ObjectID modulo GroupsPerApp, the
// next free id on a collision (VIPs taken in id order).
func groupIDs(vips []*model.LBVIP) map[string]uint32 {
	ids := make([]string, 0, len(vips))
	for _, v := range vips {
		ids = append(ids, v.ID)
	}
	sort.Strings(ids)
	used := map[uint32]bool{}
	out := make(map[string]uint32, len(ids))
	for _, id := range ids {
		off := uint32(pipeline.ObjectID(id) % uint64(pipeline.GroupsPerApp))
		for used[off] {
			off = (off + 1) % pipeline.GroupsPerApp
		}
		used[off] = true
		out[id] = pipeline.GroupBase(pipeline.AppLB) + off
	}
	return out
}

// member is one pool member resolved to its Neutron port.
type member struct {
	m    *model.LBMember
	ip   flow.IPv4
	port uint16
	mac  flow.MAC
	// remote: the member's port is on another chassis, so its replies
	// come in from a tunnel.
	remote bool
	// chassis: where the member's port is bound.
	chassis string
}

// Healthy reports whether a member may take new connections: admin up,
// and status ACTIVE (or not set yet). Whoever runs health monitors sets
// status INACTIVE on failure; the member then leaves the select group.
func Healthy(m *model.LBMember) bool {
	return m.AdminStateUp && (m.Status == "" || strings.EqualFold(m.Status, "ACTIVE"))
}

// Weight is a member's bucket weight: 1 for ROUND_ROBIN (equal), its
// weight otherwise (LEAST_CONNECTIONS and SOURCE_IP cannot be expressed
// by a select group: they get weights too, see README.md). A weight of 0
// takes no new connections.
func Weight(pool *model.LBPool, m *model.LBMember) uint16 {
	if strings.EqualFold(pool.LBMethod, "ROUND_ROBIN") {
		return 1
	}
	if m.Weight < 0 {
		return 0
	}
	if m.Weight > 0xffff {
		return 0xffff
	}
	return uint16(m.Weight)
}

// Desired computes the lb flows and groups of one switch.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Switch == nil || in.Model == nil {
		return d, nil
	}
	bt := in.Binding()
	v := bt.Switch(in.Switch)
	if v.Chassis == nil {
		return d, nil // fabric switches: not in this slice
	}
	var vips []*model.LBVIP
	for _, r := range in.Model.List(model.KindVIP) {
		vips = append(vips, r.(*model.LBVIP))
	}
	if len(vips) == 0 {
		return d, nil
	}
	gids := groupIDs(vips)
	ix := index{byPool: map[string][]*model.LBMember{}, fips: map[string][]*model.FloatingIP{}}
	for _, r := range in.Model.List(model.KindMember) {
		m := r.(*model.LBMember)
		ix.byPool[m.PoolID] = append(ix.byPool[m.PoolID], m)
	}
	vipPorts := map[string]bool{}
	for _, vip := range vips {
		vipPorts[vip.PortID] = true
	}
	for _, r := range in.Model.List(model.KindFloatingIP) {
		if f := r.(*model.FloatingIP); f.PortID != "" && vipPorts[f.PortID] {
			ix.fips[f.PortID] = append(ix.fips[f.PortID], f)
		}
	}
	keys := map[string]bool{}
	add := func(f *flow.Flow) {
		f.Match = f.Match.Normalize()
		if k := f.Key(); !keys[k] {
			keys[k] = true
			d.Flows = append(d.Flows, f)
		}
	}
	for _, vip := range vips {
		if err := a.vip(in, bt, v, vip, gids[vip.ID], ix, add, &d); err != nil {
			return app.Desired{}, err
		}
	}
	return d, nil
}

// index is what Desired looks up for every VIP, built once per call:
// the members by pool and the floating IPs on VIP ports, by port.
type index struct {
	byPool map[string][]*model.LBMember
	fips   map[string][]*model.FloatingIP
}

func (a *App) vip(in app.Input, bt *binding.Table, v *binding.View, vip *model.LBVIP, gid uint32,
	ix index, add func(*flow.Flow), d *app.Desired) error {
	byPool := ix.byPool
	if !vip.AdminStateUp {
		return nil
	}
	pr, ok := in.Model.Get(model.KindPool, vip.PoolID)
	if !ok {
		return nil
	}
	pool := pr.(*model.LBPool)
	if !pool.AdminStateUp {
		return nil
	}
	sr, ok := in.Model.Get(model.KindSubnet, vip.SubnetID)
	if !ok {
		return nil
	}
	net := bt.Networks[sr.(*model.Subnet).NetworkID]
	if net == nil || (net.Network.NetworkType != model.NetGRE && net.Network.NetworkType != model.NetVLAN) {
		return nil // GRE and VLAN tenant networks only (README.md)
	}
	vipIP, err := flow.ParseIPv4(vip.Address)
	if err != nil {
		return fmt.Errorf("lb: vip %s: address %q: %w", vip.ID, vip.Address, err)
	}
	if vip.ProtocolPort <= 0 || vip.ProtocolPort > 0xffff {
		return fmt.Errorf("lb: vip %s: protocol_port %d out of range", vip.ID, vip.ProtocolPort)
	}
	// The client networks of this chassis: the VIP's own network when it
	// has a local port here, and every other GRE network of a router with
	// an interface on the VIP's subnet that has a local port here (routed
	// clients, README.md).
	ports := v.ByNetwork[net.Network.ID]
	sameNet := hasLocal(v, net)
	var clients []clientNet
	if sameNet {
		clients = append(clients, clientNet{net: net})
	}
	clients = append(clients, routedClients(in, bt, v, vip.SubnetID, net)...)
	// The home chassis of the VIP's floating IP balances its outside
	// clients as clients of the VIP's network (fip.go).
	fips := floatingIPs(in, bt, vip, net, ix.fips[vip.PortID])
	if !sameNet && homeHere(v, fips) {
		clients = append([]clientNet{{net: net, fipOnly: true}}, clients...)
	}
	if len(clients) == 0 {
		return nil
	}
	echo(in, v, clients, vip, vipIP, add)
	// Members: healthy, resolved to a port of the network by fixed IP.
	byIP := map[flow.IPv4]*binding.Port{}
	for _, p := range ports {
		for _, fip := range p.Port.FixedIPs {
			if ip, err := flow.ParseIPv4(fip.IPAddress); err == nil {
				if _, dup := byIP[ip]; !dup {
					byIP[ip] = p
				}
			}
		}
	}
	if sameNet {
		a.probes(in, v, net, vip, vipIP, pool, byPool[pool.ID], byIP, add)
	}
	var members []member
	for _, m := range byPool[pool.ID] {
		if !Healthy(m) || Weight(pool, m) == 0 || m.ProtocolPort <= 0 || m.ProtocolPort > 0xffff {
			continue
		}
		ip, err := flow.ParseIPv4(m.Address)
		if err != nil {
			continue
		}
		p := byIP[ip]
		if p == nil {
			continue // no port of the VIP's network holds it (yet)
		}
		if p.Chassis == "" || (p.Chassis != v.Chassis.Name && !switchUp(in, bt, p.Chassis)) {
			// Bound nowhere, or its hypervisor's switch is connected to no
			// replica: the hypervisor (and its prober) is down or cut off,
			// so the member is treated as failed (README.md, "Health
			// monitors").
			continue
		}
		members = append(members, member{m: m, ip: ip, port: uint16(m.ProtocolPort), mac: p.MAC, remote: v.Remote(p), chassis: p.Chassis})
	}
	if len(members) > pipeline.MaxGroupBuckets {
		// A select group cannot be chained without changing the
		// distribution; the first MaxGroupBuckets (by member id) serve.
		members = members[:pipeline.MaxGroupBuckets]
	}
	if DSR(pool) {
		reached := a.dsr(v, net, clients, vip, vipIP, gid, members, DSRMarks(byPool[pool.ID]), pool, add, d)
		a.steerDSR(v, net, fips, vip, vipIP, members, add)
		for _, mb := range members {
			if mb.remote {
				homeCatch(v, net, fips, []srcPort{{vipIP, uint16(vip.ProtocolPort)}}, add)
				break
			}
		}
		if reached == 0 && homeHere(v, fips) {
			rstOutsideDSR(v, net, fips, vip, vipIP, pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(vip.ID)), add, d)
		}
		return nil
	}
	// Every client network's connections live in the VIP network's zone:
	// the zone of the group's commits, and of the reply lookups on the
	// client's chassis, whatever network the reply comes in on.
	zone := Zone(net.Key)
	lbT := pipeline.LB.ID()
	vck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(vip.ID))
	grouped := false
	for _, cn := range clients {
		a.natFlows(v, cn, vip, vipIP, gid, pool, members, zone, lbT, vck, &grouped, add, d)
	}
	a.steer(v, net, fips, members, add)
	var remote []srcPort
	for _, mb := range members {
		if mb.remote {
			remote = append(remote, srcPort{mb.ip, mb.port})
		}
	}
	homeCatch(v, net, fips, remote, add)
	if len(members) == 0 && homeHere(v, fips) {
		rstOutside(v, net, fips, vip, vipIP, vck, add, d)
	}
	return nil
}

// echo answers the VIP's clients' pings in place, whatever the pool's
// mode and health (the VIP exists and is up), as a VIP held by a
// load-balancer box would: on the VIP's own network from the VIP port's
// MAC, to a routed client from the router's MAC it sent to (not floating
// IP clients: app/nat drops what is not TCP to the VIP's port).
//
//	E1 lb 10001 key, RegLB=0, icmp echo request, nw_dst=VIP (routed: dl_dst=router MAC) ->
//	   nw_dst=nw_src, nw_src=VIP, dl_dst=dl_src, dl_src=VIP port's MAC (router MAC), icmp_type=0, output:in_port
func echo(in app.Input, v *binding.View, clients []clientNet, vip *model.LBVIP, vipIP flow.IPv4, add func(*flow.Flow)) {
	pr, _ := in.Model.Get(model.KindPort, vip.PortID)
	vp, _ := pr.(*model.Port)
	if vp == nil {
		return
	}
	vmac, err := flow.ParseMAC(vp.MACAddress)
	if err != nil {
		return
	}
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(vip.ID))
	answer := func(m flow.Match, from flow.MAC) {
		add(&flow.Flow{Table: pipeline.LB.ID(), Priority: prioVIP, Cookie: ck, Match: m,
			Actions: flow.EchoReply(vipIP, from)})
	}
	for _, cn := range clients {
		if cn.fipOnly {
			continue
		}
		m := func() flow.Match {
			return pipeline.RegLB.Match(pipeline.RegNetwork.Match(nil, uint64(cn.net.Key)), 0).EthType(flow.EthTypeIPv4).
				Set(flow.IPProto, flow.ProtoICMP).Set(flow.ICMPv4Type, 8).Set(flow.IPv4Dst, uint64(vipIP))
		}
		if !cn.routed() {
			answer(m(), vmac)
		}
		for _, mac := range cn.macs {
			answer(m().EthDst(mac), mac)
		}
	}
}

// clientNet is a network whose local ports are clients of a VIP: the
// VIP's own network (macs nil), or a network behind a router with an
// interface on the VIP's subnet (macs: the router's interface MACs on
// it, the destination MAC of a routed client's packets; vias[i]: the
// MAC of macs[i]'s router on the VIP's subnet, a routed packet's new
// source MAC, used by DSR, which routes in lb).
type clientNet struct {
	net  *binding.Network
	macs []flow.MAC
	vias []flow.MAC
	// fipOnly: the VIP's own network on the home chassis of the VIP's
	// floating IP, which has no port of it (so no isolation flows for
	// it): flow 4 sends a remote member's packets to its tunnel itself.
	fipOnly bool
}

func (c clientNet) routed() bool { return c.macs != nil }

func hasLocal(v *binding.View, n *binding.Network) bool {
	for _, p := range v.ByNetwork[n.Network.ID] {
		if v.Local(p) {
			return true
		}
	}
	return false
}

// routedClients are the GRE networks, other than the VIP's own (vnet),
// of every admin-up router with an interface on the VIP's subnet, that
// have a local port on this chassis, each with the router's interface
// MACs on it. Only interfaces a router lists and owns count
// (binding.RouterInterfaces), as for app/l3router, which routes them.
func routedClients(in app.Input, bt *binding.Table, v *binding.View, subnetID string, vnet *binding.Network) []clientNet {
	ok := bt.RouterIfaces
	routers := in.Model.Routers()
	sort.Slice(routers, func(i, j int) bool { return routers[i].ID < routers[j].ID })
	var out []clientNet
	idx := map[string]int{}
	for _, rt := range routers {
		if !rt.AdminStateUp {
			continue
		}
		var ifs []*model.Port
		onVIP := false
		var via flow.MAC
		for _, pid := range rt.Interfaces {
			r, found := in.Model.Get(model.KindPort, pid)
			p, _ := r.(*model.Port)
			if !found || p == nil || !ok[pid] || p.DeviceID != rt.ID {
				continue
			}
			ifs = append(ifs, p)
			for _, fip := range p.FixedIPs {
				if fip.SubnetID == subnetID && !onVIP {
					mac, err := flow.ParseMAC(p.MACAddress)
					if err != nil {
						continue
					}
					onVIP, via = true, mac
				}
			}
		}
		if !onVIP {
			continue
		}
		for _, p := range ifs {
			n := bt.Networks[p.NetworkID]
			if n == nil || n.Network.ID == vnet.Network.ID || (n.Network.NetworkType != model.NetGRE && n.Network.NetworkType != model.NetVLAN) || n.Network.External || !hasLocal(v, n) {
				continue
			}
			mac, err := flow.ParseMAC(p.MACAddress)
			if err != nil {
				continue
			}
			i, seen := idx[n.Network.ID]
			if !seen {
				i = len(out)
				idx[n.Network.ID] = i
				out = append(out, clientNet{net: n, macs: []flow.MAC{}})
			}
			if !slices.Contains(out[i].macs, mac) {
				out[i].macs = append(out[i].macs, mac)
				out[i].vias = append(out[i].vias, via)
			}
		}
	}
	return out
}

// natFlows are a NAT VIP's flows for the clients of one client network
// cn (README.md, "What a packet does"; routed clients: flows 1r-6r).
// The select group is shared by every client network (one zone): it is
// added once (*grouped).
func (a *App) natFlows(v *binding.View, cn clientNet, vip *model.LBVIP, vipIP flow.IPv4, gid uint32,
	pool *model.LBPool, members []member, zone uint16, lbT uint8, vck uint64, grouped *bool, add func(*flow.Flow), d *app.Desired) {
	key := uint64(cn.net.Key)
	tcp := func(m flow.Match) flow.Match {
		return pipeline.RegNetwork.Match(m, key).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP)
	}
	toVIP := func(done uint64) flow.Match {
		m := pipeline.RegLB.Match(tcp(nil), done)
		return m.Set(flow.IPv4Dst, uint64(vipIP)).Set(flow.TCPDst, uint64(vip.ProtocolPort))
	}
	lookup := []flow.Action{pipeline.RegLB.Set(lookupDone), flow.CT{Zone: zone, Table: lbT, NAT: &flow.NAT{}}}
	// 1. Every packet to the VIP: conntrack lookup with nat (an
	// established connection gets its member's address back), then
	// recirculate into lb with RegLB set. A routed client's packet is
	// the one sent to the router's MAC (1r).
	if !cn.routed() {
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: toVIP(0), Actions: lookup, Counter: pipeline.CounterIn})
	}
	for _, mac := range cn.macs {
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: toVIP(0).EthDst(mac), Actions: lookup, Counter: pipeline.CounterIn})
	}
	// 2. A new connection (still addressed to the VIP) goes to the select
	// group; its bucket commits nat(dst=member) and recirculates here.
	if len(members) > 0 && (SourceIP(vip) || SourceIPMethod(pool)) {
		a.persistent(vip, pool, members, zone, tcp, toVIP, vck, add)
	} else if len(members) > 0 {
		newCT := toVIP(lookupDone).SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew)
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: newCT,
			Actions: []flow.Action{flow.GroupAction{ID: gid}}, Counter: pipeline.CounterNew})
		if !*grouped {
			*grouped = true
			d.Groups = append(d.Groups, natGroup(gid, pool, members, zone, lbT))
		}
	} else {
		// No healthy member: a new connection is answered with a RST by
		// the packet-in handler (reject.go), through a meter.
		newCT := toVIP(lookupDone).SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew)
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: newCT, Meter: pipeline.MeterLBReject.ID(vip.ProjectID),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
		addMeter(d, vip.ProjectID)
	}
	// 3. Anything else still addressed to the VIP after the lookup
	// (invalid, or not new with no healthy member) is dropped.
	add(&flow.Flow{Table: lbT, Priority: prioGuard, Cookie: vck, Match: toVIP(lookupDone)})
	// 3c. A reply un-NATed by flow 5 (from the VIP now) goes on to dnat,
	// as the table's miss would send it: here so that its counters are
	// the VIP's bytes out (each reply is un-NATed once, on the chassis
	// that NATed its connection).
	add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: vck, Counter: pipeline.CounterOut,
		Match: pipeline.RegLB.Match(tcp(nil), lookupDone).Set(flow.IPv4Src, uint64(vipIP)).Set(flow.TCPSrc, uint64(vip.ProtocolPort)).
			SetMasked(flow.CTState, flow.CTTracked|flow.CTReply, flow.CTTracked|flow.CTReply),
		Goto: pipeline.DNAT.ID()})
	// 3b. A connection DNATed to a member that is no longer healthy (or
	// no longer in the pool) ends here instead of being flooded to the
	// VIP's MAC (or routed to the old member): one flow per network.
	gone := pipeline.RegLB.Match(tcp(nil), lookupDone).
		SetMasked(flow.CTState, flow.CTTracked|flow.CTDstNAT, flow.CTTracked|flow.CTDstNAT|flow.CTReply)
	add(&flow.Flow{Table: lbT, Priority: prioGuard, Cookie: pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(cn.net.Network.ID)), Match: gone})
	for _, mb := range members {
		mck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(mb.m.ID))
		// 4. DNATed to this member (new or established, original
		// direction): the member's MAC, on to the rest of the pipeline.
		// 4r. A routed client's packet keeps the router's MAC: l3_routing
		// routes it to the member by its new destination address.
		dn := pipeline.RegLB.Match(tcp(nil), lookupDone).
			Set(flow.IPv4Dst, uint64(mb.ip)).Set(flow.TCPDst, uint64(mb.port)).
			SetMasked(flow.CTState, flow.CTTracked|flow.CTDstNAT, flow.CTTracked|flow.CTDstNAT|flow.CTReply)
		var acts []flow.Action
		if !cn.routed() {
			acts = []flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(mb.mac)}}
		}
		// 4h. On a home chassis with no port of the VIP's network
		// (l2_forward has no flows for it there), a floating IP client's
		// packet goes straight to a remote member's chassis.
		if out := toPeer(v, cn.net, mb.chassis); cn.fipOnly && mb.remote && out != nil {
			add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: mck, Match: dn, Actions: append(acts, out...)})
		} else {
			add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: mck, Match: dn, Actions: acts, Goto: pipeline.DNAT.ID()})
		}
		// 5. The member's replies: conntrack lookup with nat, which puts
		// the VIP back as the source of a load-balanced connection's
		// reply (anything else passes unchanged), then on through lb.
		// On the VIP's network this also catches the replies of a local
		// member to a routed client (same zone), before l3_routing; 5r
		// catches a remote member's routed replies (from 6r).
		peer := fromPeer(v, cn.net, flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
			Set(flow.IPv4Src, uint64(mb.ip)).Set(flow.TCPSrc, uint64(mb.port)), mck)
		if !cn.routed() || (mb.remote && peer != nil) {
			rp := pipeline.RegLB.Match(tcp(nil), 0).Set(flow.IPv4Src, uint64(mb.ip)).Set(flow.TCPSrc, uint64(mb.port))
			add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: mck, Match: rp, Actions: lookup})
		}
		// 6. A remote member's replies come in from a tunnel (or the
		// VLAN uplink), which isolation sends straight to l2_forward:
		// catch them in the classifier (classified as isolation does)
		// and send them to lb. 6r. Routed on the member's chassis, they
		// come with the client network's key (l3router's output).
		if mb.remote && peer != nil {
			add(peer)
		}
	}
}

// fromPeer is the classifier flow that sends a packet of network n that
// matches m and comes from another chassis (GRE: a tunnel with n's
// segmentation id; VLAN: the uplink with n's tag, popped) to lb,
// classified as isolation classifies it there; nil when nothing of n
// can come from another chassis here. Isolation sends such packets
// straight to l2_forward, past lb.
func fromPeer(v *binding.View, n *binding.Network, m flow.Match, ck uint64) *flow.Flow {
	switch n.Network.NetworkType {
	case model.NetGRE:
		if len(v.TunnelPorts) == 0 {
			return nil
		}
		return &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: ck,
			Match: m.Set(flow.TunnelID, uint64(n.Network.SegmentationID)),
			Actions: []flow.Action{
				pipeline.SetClass(pipeline.ClassTunnel, 0),
				pipeline.RegNetwork.Set(uint64(n.Key)),
				flow.Move{Src: flow.InPort, Dst: pipeline.RegInPort.Field, NBits: 16}, // ofports < 2^16; OVS moves in_port as 16 bits,
			}, Goto: pipeline.LB.ID()}
	case model.NetVLAN:
		phy := v.Uplink(n)
		if phy == 0 {
			return nil
		}
		return &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: ck,
			Match: m.InPort(phy).Set(flow.VlanVID, flow.VlanPresent|uint64(n.Network.SegmentationID)),
			Actions: []flow.Action{
				flow.PopVLAN{},
				pipeline.SetClass(pipeline.ClassPhys, 0),
				pipeline.RegNetwork.Set(uint64(n.Key)),
				pipeline.RegInPort.Set(uint64(phy)),
			}, Goto: pipeline.LB.ID()}
	}
	return nil
}

// toPeer is how a packet of network n reaches a port on chassis c (not
// this one), as isolation's l2_forward sends it (the tunnel with n's
// segmentation id, or the VLAN uplink tagged); nil when it cannot.
func toPeer(v *binding.View, n *binding.Network, c string) []flow.Action {
	switch n.Network.NetworkType {
	case model.NetGRE:
		if t, ok := v.Tunnels[c]; ok {
			return []flow.Action{flow.SetField{F: flow.TunnelID, Value: uint64(n.Network.SegmentationID)}, flow.Output{Port: t}}
		}
	case model.NetVLAN:
		if phy := v.Uplink(n); phy != 0 {
			return []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN},
				flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | uint64(n.Network.SegmentationID)}, flow.Output{Port: phy}}
		}
	}
	return nil
}

// natGroup is a NAT VIP's select group: one bucket per healthy member,
// ct(commit,zone,nat(dst=member)) recirculating into lb, weighted by
// BucketWeights.
func natGroup(gid uint32, pool *model.LBPool, members []member, zone uint16, lbT uint8) *flow.Group {
	g := &flow.Group{ID: gid, Type: flow.GroupSelect}
	ws := make([]uint16, len(members))
	for i, mb := range members {
		ws[i] = Weight(pool, mb.m)
	}
	ws, pad := BucketWeights(ws)
	bucket := func(mb member, w uint16) flow.Bucket {
		return flow.Bucket{Weight: w, Actions: []flow.Action{
			flow.CT{Commit: true, Zone: zone, Table: lbT, NAT: &flow.NAT{Flags: flow.NATDst, IPMin: mb.ip, PortMin: mb.port}},
		}}
	}
	for i, mb := range members {
		g.Buckets = append(g.Buckets, bucket(mb, ws[i]))
	}
	if pad {
		g.Buckets = append(g.Buckets, bucket(members[0], 1))
	}
	return g
}

// probePort is the ofport of the VIP's health-probe port on this chassis
// (names.LBProbePortName, made by the node agent's prober), 0 if none.
func probePort(v *binding.View, vipID string) uint32 {
	name := names.LBProbePortName(vipID)
	if v.Chassis.Interfaces[name] != names.LBProbeIfaceID(vipID) {
		return 0
	}
	for _, p := range v.Switch.Ports {
		if p.Name == name {
			return p.No
		}
	}
	return 0
}

// probes steers health probes between the VIP's probe port (a veth into
// the node agent's probe namespace, which holds the VIP's MAC and the
// probes' source address) and every member of the pool whose port is on
// this chassis, healthy or not (an INACTIVE member is probed until it
// comes back). The probes bypass the rest of the pipeline in both
// directions: they come from the infrastructure, not from a tenant port.
//
//	P1 classifier: in_port=probe, dl_dst=M's MAC -> output:M's port
//	P2 classifier: in_port=M's port, tcp, nw_src=M, nw_dst=S, tp_src=Mport -> output:probe
//	P3 classifier: in_port=M's port, icmp echo reply, nw_src=M, nw_dst=S -> output:probe
//	P4 classifier: in_port=M's port, arp request for S -> output:probe
//
// S, the source, is the VIP (NAT pools). A DSR member holds the VIP
// itself and drops packets from it as martians, so a DSR pool is probed
// from its subnet's gateway_ip (lbprobe.Targets; none: no probe) at the
// VIP's port on the member's own address (Mport = the VIP's port); the
// member answers the gateway's address at the MAC it has for it, the
// router's when a router holds it, so P2 and P3 set the probe's MAC
// (the VIP port's) before output, and P4, which would answer the
// member's ARP for its gateway from the probe, is there only when no
// router interface holds the gateway on this network (README.md,
// "Health monitors of DSR pools").
func (a *App) probes(in app.Input, v *binding.View, net *binding.Network, vip *model.LBVIP, vipIP flow.IPv4, pool *model.LBPool,
	pms []*model.LBMember, byIP map[flow.IPv4]*binding.Port, add func(*flow.Flow)) {
	pp := probePort(v, vip.ID)
	if pp == 0 {
		return
	}
	src, arp := vipIP, true
	var setMAC []flow.Action
	dsr := DSR(pool)
	if dsr {
		sr, _ := in.Model.Get(model.KindSubnet, vip.SubnetID)
		sub, _ := sr.(*model.Subnet)
		pr, _ := in.Model.Get(model.KindPort, vip.PortID)
		vp, _ := pr.(*model.Port)
		if sub == nil || vp == nil {
			return
		}
		gw, err := flow.ParseIPv4(sub.GatewayIP)
		mac, err2 := flow.ParseMAC(vp.MACAddress)
		if err != nil || err2 != nil || gw == 0 {
			return
		}
		src, arp = gw, !routerHolds(in, v.Table, net, sub.ID, sub.GatewayIP)
		setMAC = []flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(mac)}}
	}
	cl := pipeline.Classifier.ID()
	for _, m := range pms {
		ip, err := flow.ParseIPv4(m.Address)
		port := m.ProtocolPort
		if dsr {
			port = vip.ProtocolPort
		}
		if err != nil || port <= 0 || port > 0xffff {
			continue
		}
		p := byIP[ip]
		if p == nil || !v.Local(p) || p.OFPort == 0 || p.Port.ProjectID != pool.ProjectID {
			// (another project's port on a shared network is never
			// probed, lbprobe.Targets: no flows take its packets either)
			continue
		}
		mck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(m.ID))
		out := func(port uint32) []flow.Action { return []flow.Action{flow.Output{Port: port}} }
		toProbe := append(append([]flow.Action(nil), setMAC...), out(pp)...)
		add(&flow.Flow{Table: cl, Priority: pipeline.PrioritySpecific, Cookie: mck,
			Match: flow.M().InPort(pp).EthDst(p.MAC), Actions: out(p.OFPort)})
		ipm := func() flow.Match {
			return flow.M().InPort(p.OFPort).EthType(flow.EthTypeIPv4).Set(flow.IPv4Src, uint64(ip)).Set(flow.IPv4Dst, uint64(src))
		}
		add(&flow.Flow{Table: cl, Priority: pipeline.PrioritySpecific, Cookie: mck,
			Match: ipm().Set(flow.IPProto, flow.ProtoTCP).Set(flow.TCPSrc, uint64(port)), Actions: toProbe})
		add(&flow.Flow{Table: cl, Priority: pipeline.PrioritySpecific, Cookie: mck,
			Match: ipm().Set(flow.IPProto, flow.ProtoICMP).Set(flow.ICMPv4Type, 0), Actions: toProbe})
		if arp {
			add(&flow.Flow{Table: cl, Priority: pipeline.PrioritySpecific, Cookie: mck,
				Match: flow.M().InPort(p.OFPort).EthType(flow.EthTypeARP).Set(flow.ARPTpa, uint64(src)), Actions: out(pp)})
		}
	}
}

// routerHolds reports whether an interface of a router (one it lists and
// owns, binding.Table.RouterIfaces) on network net holds address ip on
// subnet subnetID.
func routerHolds(in app.Input, bt *binding.Table, net *binding.Network, subnetID, ip string) bool {
	ifaces := bt.RouterIfaces
	for _, rt := range in.Model.Routers() {
		for _, pid := range rt.Interfaces {
			pr, _ := in.Model.Get(model.KindPort, pid)
			p, _ := pr.(*model.Port)
			if p == nil || !ifaces[pid] || p.DeviceID != rt.ID || p.NetworkID != net.Network.ID {
				continue
			}
			for _, f := range p.FixedIPs {
				if f.SubnetID == subnetID && f.IPAddress == ip {
					return true
				}
			}
		}
	}
	return false
}

// switchUp reports whether the br-int of chassis is in the topology
// (connected to this replica; every replica is every switch's
// controller). Unknown (no topology, no such chassis, no dpid): up.
func switchUp(in app.Input, bt *binding.Table, chassis string) bool {
	if in.Topology == nil || in.Topology.Settling {
		return true // (settling: just restarted, the switches still coming back)
	}
	for _, c := range bt.Chassis {
		if c.Name != chassis {
			continue
		}
		dpid, err := strconv.ParseUint(c.DPID, 16, 64)
		if err != nil || dpid == 0 {
			return true
		}
		_, ok := in.Topology.Switches[dpid]
		return ok
	}
	return true
}

// linkPicked is RegLB's value between the multipath choice and the
// commit of a SOURCE_IP persistent VIP's new connection.
const linkPicked = 2

// SourceIPMethod reports whether a pool's lb_method is SOURCE_IP (LBaaS
// v1: the member chosen by a hash of the client's address), balanced as
// SOURCE_IP persistence is (the multipath on nw_src, the members'
// weights as links).
func SourceIPMethod(pool *model.LBPool) bool { return strings.EqualFold(pool.LBMethod, "SOURCE_IP") }

// SourceIP reports whether a VIP has SOURCE_IP session persistence.
func SourceIP(vip *model.LBVIP) bool {
	return vip.SessionPersistence != nil && strings.EqualFold(vip.SessionPersistence.Type, "SOURCE_IP")
}

// persistent balances a SOURCE_IP VIP's new connections on the source
// address alone. A select group cannot: OVS hashes the 5-tuple unless
// the group carries selection_method=hash,fields(ip_src), a group
// property OpenFlow 1.3 does not carry (ovs-ofctl drops it from an OF1.3
// group-mod). So flow 2 becomes a Nicira multipath on nw_src (HRW:
// adding or removing a member moves only the sources that hashed to it)
// into RegLBLink, RegLB=2 and a conntrack lookup that recirculates into
// lb; then one flow per link commits the connection with its member's
// DNAT, exactly as that member's bucket would (RegLB back to 1). A
// member's weight gives it that many links (all 1 if the total would
// exceed pipeline.MaxGroupBuckets; ROUND_ROBIN: 1 each).
//
//	2p  lb 10001 key, RegLB=1, +new+trk, tcp, nw_dst=VIP, tp_dst=port -> multipath(nw_src,0,hrw,N,0,RegLBLink), RegLB=2, ct(zone,table=lb)
//	2l  lb 10001 key, RegLB=2, RegLBLink=i, +new+trk, tcp, nw_dst=VIP, tp_dst=port -> RegLB=1, ct(commit,zone,table=lb,nat(dst=M_i))
//	3p  lb 100   key, RegLB=2, tcp, nw_dst=VIP, tp_dst=port -> drop
func (a *App) persistent(vip *model.LBVIP, pool *model.LBPool, members []member, zone uint16,
	tcp func(flow.Match) flow.Match, toVIP func(uint64) flow.Match, vck uint64, add func(*flow.Flow)) {
	var links []member
	total := 0
	for _, mb := range members {
		total += int(Weight(pool, mb.m))
	}
	for _, mb := range members {
		n := int(Weight(pool, mb.m))
		if total > pipeline.MaxGroupBuckets {
			n = 1
		}
		for range n {
			links = append(links, mb)
		}
	}
	lbT := pipeline.LB.ID()
	newCT := uint64(flow.CTTracked | flow.CTNew)
	add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: toVIP(lookupDone).SetMasked(flow.CTState, newCT, newCT),
		Counter: pipeline.CounterNew, Actions: []flow.Action{
			flow.Multipath{Fields: flow.HashNwSrc, Algorithm: flow.MPHRW, MaxLink: uint16(len(links) - 1),
				Dst: pipeline.RegLBLink.Field, Ofs: pipeline.RegLBLink.Ofs, NBits: pipeline.RegLBLink.NBits},
			pipeline.RegLB.Set(linkPicked),
			flow.CT{Zone: zone, Table: lbT},
		}})
	vipIP, _ := flow.ParseIPv4(vip.Address)
	for i, mb := range links {
		m := tcp(nil).SetMasked(flow.Reg6, pipeline.RegLB.Value(linkPicked)|pipeline.RegLBLink.Value(uint64(i)),
			pipeline.RegLB.Mask()|pipeline.RegLBLink.Mask()).
			Set(flow.IPv4Dst, uint64(vipIP)).Set(flow.TCPDst, uint64(vip.ProtocolPort)).SetMasked(flow.CTState, newCT, newCT)
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: m, Actions: []flow.Action{
			pipeline.RegLB.Set(lookupDone),
			flow.CT{Commit: true, Zone: zone, Table: lbT, NAT: &flow.NAT{Flags: flow.NATDst, IPMin: mb.ip, PortMin: mb.port}},
		}})
	}
	add(&flow.Flow{Table: lbT, Priority: prioGuard, Cookie: vck, Match: toVIP(linkPicked)})
}

// BucketWeights scales a select group's member weights so that OVS
// spreads them evenly. OVS 3.1 serves a select group without
// selection_method from a table of 2^k dp_hash values, with 2^k the
// larger of 16 and total weight / smallest weight rounded up to a power
// of two, each bucket getting a whole number of values: three equal
// buckets get 6, 5 and 5 of 16, one member taking 37.5% of the
// connections instead of 33.3% (seen in the lab: 1116/919/965 of 3,000).
// So when the weights sum to at most 255 they are multiplied by
// 255/sum and one extra bucket of weight 1 (pad: a copy of the first
// member's, so still a member) is added: the total is then at most 256
// and the smallest weight 1, so OVS uses 256 values (or, where it allows
// fewer, its default hash), and every member is within a value or two
// of its share (85/256 + 1/256, 85/256, 85/256 for three). Larger pools
// keep their weights (2^k is then already large).
func BucketWeights(ws []uint16) (out []uint16, pad bool) {
	sum := 0
	for _, w := range ws {
		sum += int(w)
	}
	if len(ws) < 2 || sum == 0 || sum > 255 {
		return ws, false
	}
	k := uint16(255 / sum)
	out = make([]uint16, len(ws))
	for i, w := range ws {
		out[i] = w * k
	}
	return out, true
}

// DSRTag in a pool's description makes it a DSR (direct server return)
// pool; NAT is the default.
const DSRTag = "nimbus:dsr"

// DSR reports whether a pool is in DSR mode (its description holds
// DSRTag).
func DSR(pool *model.LBPool) bool { return strings.Contains(pool.Description, DSRTag) }

// dsr balances a DSR pool's VIP: the seed's design. Only the destination
// MAC is rewritten, to the chosen member's; the packet keeps the VIP as
// its destination address, and the member, which holds the VIP on its
// loopback, answers straight to the client with the VIP as source:
// nothing un-NATs the reply. The chosen member is pinned in the
// connection's conntrack entry (ct_mark = the member's DSRMarks mark, in
// the VIP network's lb zone): an established connection follows its
// mark, never the group, so adding, removing or re-weighting members
// never moves it; a connection whose member is gone matches no mark and
// is dropped (it ends). The reply reaches the client's chassis (the
// client is there) and goes through the same zone there (D5, D6), so
// conntrack sees both directions of the connection.
//
// A routed client (a network kB behind a router with an interface on the
// VIP's subnet) sends to the router's MAC: D1r does the routing step
// l3router would (dec_ttl, the router's MAC on the VIP's subnet as
// source, the VIP network's key, the routed flag) before the lookup, so
// from there on its packets are the VIP network's. So that a chassis
// with no port of the VIP's network (which then has no l2_forward flows
// for it) can reach a member, a remote member's packets go straight to
// the tunnel of its chassis with the VIP network's key, as isolation's
// l2_forward would; a local member's go on to the pipeline (dnat,
// l2_forward, to_vm_acl). A remote member with no tunnel to its chassis
// yet is left out. The member's reply is routed on its own chassis by
// l3router (D5r, D6r: the same zone on the client's chassis).
//
//	D1  lb 10001 key, RegLB=0, tcp, nw_dst=VIP, tp_dst=port -> RegLB=1, ct(zone,table=lb)
//	D1r lb 10001 kB, RegLB=0, dl_dst=rB, tcp, nw_dst=VIP, tp_dst=port -> dec_ttl, dl_src=rA, reg1=key, routed, RegLB=1, ct(zone,table=lb)
//	D0r lb 10002 as D1r, nw_ttl=0 / nw_ttl=1 -> goto dnat (l3_routing answers time exceeded)
//	D2  lb 10001 key, RegLB=1, +new+trk, ct_mark=0, tcp, nw_dst=VIP, tp_dst=port -> group
//	    (bucket i: RegLB=2, RegLBLink=i, ct(zone,table=lb))
//	D2l lb 10001 key, RegLB=2, RegLBLink=i, +new+trk, tcp, nw_dst=VIP, tp_dst=port ->
//	    ct(commit,zone,exec(ct_mark=M_i's mark)), forward to M_i
//	D4  lb 10000 key, RegLB=1, +trk, ct_mark=M's mark, tcp, nw_dst=VIP, tp_dst=port -> forward to M
//	    forward: dl_dst=M's MAC, goto dnat (M here) or tun_id=seg, output:tunnel (M remote)
//	D3  lb 100   key, RegLB=1 (and RegLB=2), tcp, nw_dst=VIP, tp_dst=port -> drop
//	D5  lb 10000 key (kB), RegLB=0, tcp, nw_src=VIP, tp_src=port -> RegLB=1, ct(zone,table=lb)
//	D5b lb 10000 key (kB), RegLB=1, tcp, nw_src=VIP, tp_src=port -> goto dnat
//	D6  classifier 20000 tun_id=seg (segB), tcp, nw_src=VIP, tp_src=port -> class tunnel, reg1=key (kB), reg2=in_port, goto lb
//	with no healthy member: D1 and D1r are meter lb_reject_punt, CONTROLLER (RST)
func (a *App) dsr(v *binding.View, net *binding.Network, clients []clientNet, vip *model.LBVIP, vipIP flow.IPv4, gid uint32,
	members []member, marks map[string]uint32, pool *model.LBPool, add func(*flow.Flow), d *app.Desired) int {
	lbT := pipeline.LB.ID()
	zone := Zone(net.Key)
	vck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(vip.ID))
	var reach []member
	for _, mb := range members {
		if mb.remote && toPeer(v, net, mb.chassis) == nil {
			continue
		}
		reach = append(reach, mb)
	}
	tcp := func(key uint32, done uint64) flow.Match {
		return pipeline.RegLB.Match(pipeline.RegNetwork.Match(nil, uint64(key)).EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP), done)
	}
	toVIP := func(key uint32, done uint64) flow.Match {
		return tcp(key, done).Set(flow.IPv4Dst, uint64(vipIP)).Set(flow.TCPDst, uint64(vip.ProtocolPort))
	}
	fromVIP := func(key uint32, done uint64) flow.Match {
		return tcp(key, done).Set(flow.IPv4Src, uint64(vipIP)).Set(flow.TCPSrc, uint64(vip.ProtocolPort))
	}
	if len(reach) == 0 {
		// The RST punt; a routed client's punt keeps the router's MAC as
		// its destination, so the RST (reject.go) comes from that MAC.
		punt := func(m flow.Match) {
			add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: m, Meter: pipeline.MeterLBReject.ID(vip.ProjectID),
				Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
		}
		for _, cn := range clients {
			if !cn.routed() {
				punt(toVIP(cn.net.Key, 0))
			}
			for _, mac := range cn.macs {
				punt(toVIP(cn.net.Key, 0).EthDst(mac))
			}
		}
		addMeter(d, vip.ProjectID)
		return 0
	}
	lookup := func(acts ...flow.Action) []flow.Action {
		return append(acts, pipeline.RegLB.Set(lookupDone), flow.CT{Zone: zone, Table: lbT})
	}
	for _, cn := range clients {
		k := cn.net.Key
		if !cn.routed() {
			add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: toVIP(k, 0), Actions: lookup(), Counter: pipeline.CounterIn})
		}
		for i, mac := range cn.macs {
			m := toVIP(k, 0).EthDst(mac)
			add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck, Match: m, Counter: pipeline.CounterIn, Actions: lookup(
				flow.DecTTL{},
				flow.SetField{F: flow.EthSrc, Value: uint64(cn.vias[i])},
				pipeline.RegNetwork.Set(uint64(net.Key)),
				flow.SetField{F: pipeline.RegFlags.Field, Value: pipeline.FlagRouted, Mask: pipeline.FlagRouted},
			)})
			// An expired TTL is not routed here (dec_ttl would drop it
			// silently): l3_routing punts it for ICMP time exceeded.
			for _, ttl := range []uint64{0, 1} {
				add(&flow.Flow{Table: lbT, Priority: prioVIP + 1, Cookie: vck, Match: m.Set(flow.IPTTL, ttl), Goto: pipeline.DNAT.ID()})
			}
		}
		// D5, D6: the replies, on the client's network, looked up in the
		// VIP network's zone.
		add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: vck, Match: fromVIP(k, 0), Actions: lookup()})
		// D5m: the same for a reply straight from a member's own port
		// (each reply leaves its member once; on the client's chassis it
		// comes from a tunnel or uplink): its counters are the VIP's
		// bytes out.
		if !cn.routed() {
			add(&flow.Flow{Table: lbT, Priority: prioMember + 1, Cookie: vck, Counter: pipeline.CounterOut,
				Match: pipeline.RegPortClass.Match(fromVIP(k, 0), pipeline.ClassVM), Actions: lookup()})
		}
		add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: vck, Match: fromVIP(k, lookupDone), Goto: pipeline.DNAT.ID()})
		if f := fromPeer(v, cn.net, flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).
			Set(flow.IPv4Src, uint64(vipIP)).Set(flow.TCPSrc, uint64(vip.ProtocolPort)), vck); f != nil {
			add(f)
		}
	}
	// After the lookup every client's packet is the VIP network's.
	kA := net.Key
	forward := func(mb member, acts ...flow.Action) ([]flow.Action, uint8) {
		acts = append(acts, flow.SetField{F: flow.EthDst, Value: uint64(mb.mac)})
		if mb.remote {
			return append(acts, toPeer(v, net, mb.chassis)...), 0
		}
		return acts, pipeline.DNAT.ID()
	}
	newCT := uint64(flow.CTTracked | flow.CTNew)
	ws := make([]uint16, len(reach))
	for i, mb := range reach {
		ws[i] = Weight(pool, mb.m)
	}
	ws, pad := BucketWeights(ws)
	g := &flow.Group{ID: gid, Type: flow.GroupSelect}
	// The group picks a link (OVS runs a bucket as an action set: only
	// its last ct, output or resubmit runs, so a bucket cannot both
	// commit and forward); D2l commits the link's member's mark and
	// forwards, D4 forwards a pinned connection.
	bucket := func(i int, w uint16) flow.Bucket {
		return flow.Bucket{Weight: w, Actions: []flow.Action{
			pipeline.RegLB.Set(linkPicked), pipeline.RegLBLink.Set(uint64(i)), flow.CT{Zone: zone, Table: lbT},
		}}
	}
	for i, mb := range reach {
		g.Buckets = append(g.Buckets, bucket(i, ws[i]))
		mck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(mb.m.ID))
		pick := toVIP(kA, 0).SetMasked(flow.Reg6, pipeline.RegLB.Value(linkPicked)|pipeline.RegLBLink.Value(uint64(i)),
			pipeline.RegLB.Mask()|pipeline.RegLBLink.Mask()).SetMasked(flow.CTState, newCT, newCT)
		acts, next := forward(mb, flow.CT{Commit: true, Zone: zone, Table: flow.CTNoTable,
			Exec: []flow.SetField{{F: flow.CTMark, Value: uint64(marks[mb.m.ID])}}})
		add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: mck, Match: pick, Actions: acts, Goto: next})
		pinned := toVIP(kA, lookupDone).SetMasked(flow.CTState, flow.CTTracked, flow.CTTracked).Set(flow.CTMark, uint64(marks[mb.m.ID]))
		acts, next = forward(mb)
		add(&flow.Flow{Table: lbT, Priority: prioMember, Cookie: mck, Match: pinned, Actions: acts, Goto: next})
	}
	if pad {
		g.Buckets = append(g.Buckets, bucket(0, 1))
	}
	d.Groups = append(d.Groups, g)
	add(&flow.Flow{Table: lbT, Priority: prioVIP, Cookie: vck,
		Match:   toVIP(kA, lookupDone).SetMasked(flow.CTState, newCT, newCT).Set(flow.CTMark, 0),
		Actions: []flow.Action{flow.GroupAction{ID: gid}}, Counter: pipeline.CounterNew})
	// D3: anything else to the VIP after the lookup (its member is gone,
	// or conntrack found it invalid), or picked with no link, is dropped.
	add(&flow.Flow{Table: lbT, Priority: prioGuard, Cookie: vck, Match: toVIP(kA, lookupDone)})
	add(&flow.Flow{Table: lbT, Priority: prioGuard, Cookie: vck, Match: toVIP(kA, linkPicked)})
	return len(reach)
}

// DSRMarks gives each member of a pool (every member, healthy or not, in
// id order) its ct_mark for DSR pinning: the low 32 bits of its object
// id, never 0 (0 is "no member chosen yet"), the next free value on a
// collision. A member keeps its mark while it exists, whatever else
// changes in the pool (short of a colliding member with a smaller id
// being added: once in 2^32).
func DSRMarks(ms []*model.LBMember) map[string]uint32 {
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	out := make(map[string]uint32, len(ids))
	used := map[uint32]bool{}
	for _, id := range ids {
		mk := uint32(pipeline.ObjectID(id))
		for mk == 0 || used[mk] {
			mk++
		}
		used[mk] = true
		out[id] = mk
	}
	return out
}
