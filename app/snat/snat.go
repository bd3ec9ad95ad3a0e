// Package snat is distributed SNAT for routers with enable_snat, done on
// the VM's own hypervisor with no gateway node (issue 11, deliverable 4).
// With app/nat (floating IPs) it makes Nimbus's distributed NAT.
//
// The source ports of a router's external IP are shared out in
// power-of-two blocks that each hypervisor's node agent leases in etcd
// (cluster/snatlease; model.SNATBlock records, one per block, held under
// the agent's lease, per hypervisor and tenant network). One hypervisor
// per external IP, elected in etcd (model.SNATOwner), answers ARP for it.
// For one chassis's br-int the app computes:
//
//   - egress, on every chassis that holds blocks of router R's IP X for a
//     tenant network N with a local port: in l3_routing the default route
//     of R's interface on N (priority 10000 + /0, below every connected
//     subnet and extra route): dec_ttl, source MAC = this chassis's own
//     MAC for R (ChassisMAC; never the gateway port's MAC, which only
//     the ARP owner uses, so the external switch learns it in one place),
//     destination MAC = the external next hop's, goto snat; in snat
//     ct(commit, zone=ZoneSNAT(N), nat(src=X:lo-hi)) into one of the
//     chassis's blocks (TCP/UDP: bits 1.. of the source port pick
//     the block), recirculating to snat, then out of the chassis's own
//     uplink to the external network (VLAN tag pushed for a VLAN
//     network). A new connection conntrack could not NAT (the blocks are
//     full) comes back +new and un-NATed and is dropped by a flow of its
//     own: the exhaustion drop the node agent counts and grows its
//     lease on.
//   - on X's ARP owner: ARP requests for X from the uplink are answered
//     with the gateway port's MAC; IPv4 to X from the uplink is steered
//     without state: a masked match on the TCP/UDP destination port
//     finds the block, and the packet goes to the block's chassis on
//     its tunnel with tun_id = pipeline.TunSNATReturn(N) (or, for its
//     own blocks, straight to the conntrack step below). ICMP to X is
//     replicated to every chassis holding a block of X (see ICMP).
//   - on a block's chassis: tun_id TunSNATReturn(N) is classified as
//     network N and sent through ct(zone=ZoneSNAT(N), nat) in snat,
//     which reverses the NAT; an established reply to a local port of N
//     is routed to it (dec_ttl, source MAC = R's interface MAC on N,
//     destination = the port's MAC) through l2_forward and to_vm_acl.
//     Anything else is dropped. No return packet reaches the controller.
//
// ICMP: Open vSwitch's userspace conntrack does not rewrite ICMP echo
// ids when it SNATs (it only translates TCP, UDP and SCTP ports), so ICMP
// ids cannot be shared out in blocks. The ARP owner sends ICMP to X to
// every (chassis, network) holding a block of X instead, and only the
// conntrack that holds the echo's connection reverses it; the others
// drop the copy (+inv / not established). Two VMs on different
// hypervisors pinging the same host with the same id at once each get
// both replies' un-NATed copies only for their own connection; on one
// hypervisor the second such echo cannot be NATed and is dropped (a
// clash of one id, not of a block).
//
// It is pure: the model snapshot (routers, ports, chassis, blocks,
// owners) and the shared binding table in, flows and the owner's
// gratuitous ARP (app.Desired.Announce) out; no meters, no groups, no
// packet-in handler.
package snat

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// App is the SNAT app.
type App struct{}

// New makes the app.
func New() *App { return &App{} }

func (a *App) Name() string       { return "snat" }
func (a *App) ID() pipeline.AppID { return pipeline.AppSNAT }

// OwnerGateway is the device_owner of a router's gateway port.
const OwnerGateway = "network:router_gateway"

// ChassisMAC is the source MAC chassis uses for router's SNATed frames: a
// locally administered unicast MAC, 02 + 40 bits of FNV-1a(chassis/router).
func ChassisMAC(chassis, router string) flow.MAC {
	h := uint64(14695981039346656037)
	for _, c := range []byte(chassis + "/" + router) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return flow.MAC(0x02<<40 | h&(1<<40-1))
}

// ExternalKey is the network register value of an external network's
// frames on the uplink (binding.NetworkKey: the VLAN key, or the flat
// network's key); only flat and VLAN networks can be external here.
func ExternalKey(n *model.Network) (uint32, bool) {
	if n.NetworkType != model.NetFlat && n.NetworkType != model.NetVLAN {
		return 0, false
	}
	return binding.NetworkKey(n)
}

// Gateway is one router's SNAT gateway as the app sees it.
type Gateway struct {
	Router *model.Router
	Ext    *model.Network
	ExtKey uint32
	IP     flow.IPv4
	IPText string
	MAC    flow.MAC // the gateway port's
	// NextHop is the external subnet's gateway (0: none: no egress).
	NextHop flow.IPv4
	Owner   string
	Blocks  []*model.SNATBlock // valid, disjoint blocks of IP, by first port
}

// Gateways lists the routers with enable_snat, an IPv4 external fixed IP
// on a flat or VLAN external network and a gateway port, by router id.
func Gateways(m *model.Snapshot) []*Gateway {
	owners := map[string]*model.SNATOwner{}
	for _, o := range m.SNATOwners() {
		owners[o.ExternalIP] = o
	}
	blocks := map[string][]*model.SNATBlock{}
	for _, b := range m.SNATBlocks() {
		if b.Bits < 6 || b.Bits > 15 || b.Index<<b.Bits < 1024 || (b.Index+1)<<b.Bits > 1<<16 || b.Chassis == "" {
			continue
		}
		blocks[b.ExternalIP] = append(blocks[b.ExternalIP], b)
	}
	gwPorts := map[string]*model.Port{}
	for _, p := range m.Ports() {
		if p.DeviceOwner == OwnerGateway && p.DeviceID != "" {
			gwPorts[p.DeviceID] = p
		}
	}
	var out []*Gateway
	for _, rt := range m.Routers() {
		g := rt.Gateway
		if !rt.AdminStateUp || g == nil || !g.EnableSNAT || gwPorts[rt.ID] == nil {
			continue
		}
		r, _ := m.Get(model.KindNetwork, g.NetworkID)
		ext, _ := r.(*model.Network)
		if ext == nil || !ext.External {
			continue
		}
		key, ok := ExternalKey(ext)
		mac, err := flow.ParseMAC(gwPorts[rt.ID].MACAddress)
		if !ok || err != nil {
			continue
		}
		gw := &Gateway{Router: rt, Ext: ext, ExtKey: key, MAC: mac}
		for _, f := range g.ExternalFixedIPs {
			ip, err := flow.ParseIPv4(f.IPAddress)
			if err != nil {
				continue
			}
			sr, _ := m.Get(model.KindSubnet, f.SubnetID)
			if s, _ := sr.(*model.Subnet); s != nil && s.GatewayIP != "" {
				gw.NextHop, _ = flow.ParseIPv4(s.GatewayIP)
			}
			gw.IP, gw.IPText = ip, f.IPAddress
			break
		}
		if gw.IP == 0 {
			continue
		}
		if o := owners[gw.IPText]; o != nil {
			gw.Owner = o.Chassis
		}
		bs := blocks[gw.IPText]
		sort.Slice(bs, func(i, j int) bool { return bs[i].Index<<bs[i].Bits < bs[j].Index<<bs[j].Bits })
		gw.Blocks = disjoint(bs)
		out = append(out, gw)
	}
	return out
}

// Pool counts, per external IP of a SNAT gateway, the blocks leased and
// the blocks still free in blocks of 1<<bits ports (ports 1024-65535).
func Pool(m *model.Snapshot, bits int) map[string][2]int {
	out := map[string][2]int{}
	for _, g := range Gateways(m) {
		used := 0
		for _, b := range g.Blocks {
			used += 1 << b.Bits
		}
		out[g.IPText] = [2]int{len(g.Blocks), max(0, (1<<16-1024-used)>>bits)}
	}
	return out
}

// disjoint drops blocks that overlap an earlier one (different sizes
// from agents configured differently): first come, first kept.
func disjoint(bs []*model.SNATBlock) []*model.SNATBlock {
	var out []*model.SNATBlock
	end := 0
	for _, b := range bs {
		lo := b.Index << b.Bits
		if lo < end {
			continue
		}
		end = (b.Index + 1) << b.Bits
		out = append(out, b)
	}
	return out
}

// iface is one router interface on a tenant network with a key.
type iface struct {
	port *model.Port
	net  *binding.Network
	mac  flow.MAC
}

func interfaces(m *model.Snapshot, t *binding.Table, rt *model.Router, ok map[string]bool) []*iface {
	var out []*iface
	seen := map[string]bool{}
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
		if n == nil || err != nil || n.Network.External || seen[n.Network.ID] {
			continue
		}
		seen[n.Network.ID] = true
		out = append(out, &iface{port: p, net: n, mac: mac})
	}
	return out
}

func cookie(id string) uint64 { return pipeline.Cookie(pipeline.AppSNAT, pipeline.ObjectID(id)) }

// ExhaustionCookie is the cookie of the flow that drops router's packets
// on chassis that conntrack could not NAT into a block (blocks full).
func ExhaustionCookie(router, network string) uint64 {
	return cookie("exhausted/" + router + "/" + network)
}

// vmPorts are the local ports of network n that are not router or DHCP
// ports, with their IPv4 fixed addresses.
func vmPorts(v *binding.View, n *binding.Network) []*binding.Port {
	var out []*binding.Port
	for _, bp := range v.ByNetwork[n.Network.ID] {
		if !v.Local(bp) || bp.Port.DeviceOwner == "network:dhcp" || strings.HasPrefix(bp.Port.DeviceOwner, "network:router") {
			continue
		}
		out = append(out, bp)
	}
	return out
}

// Desired computes the switch's SNAT flows.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Model == nil || in.Switch == nil {
		return d, nil
	}
	v := in.Binding().Switch(in.Switch)
	if v.Chassis == nil {
		return d, nil
	}
	ok := binding.RouterInterfaces(in.Model)
	st := State{}
	for _, g := range Gateways(in.Model) {
		up, hasUp := v.Uplinks[g.Ext.PhysicalNetwork]
		if !hasUp {
			continue // this chassis cannot reach the external network
		}
		ifs := interfaces(in.Model, v.Table, g.Router, ok)
		byNet := map[string]*iface{}
		for _, i := range ifs {
			byNet[i.net.Network.ID] = i
		}
		fs, eg := egress(v, g, ifs, up)
		d.Flows = append(d.Flows, fs...)
		if len(eg) > 0 {
			// The next hop's answers to this chassis's probes, and a
			// first probe (ARP from this chassis's MAC, sender 0.0.0.0:
			// no neighbour cache learns anything from it).
			d.Flows = append(d.Flows, &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 5,
				Cookie: cookie(g.Router.ID + "/arp/" + v.Chassis.Name), Meter: pipeline.MeterSNAT.ID,
				Match:   fromUplink(g, up).EthType(flow.EthTypeARP).Set(flow.ARPOp, 2).Set(flow.ARPSpa, uint64(g.NextHop)).Set(flow.ARPTpa, 0),
				Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
			d.Announce = append(d.Announce, app.Announcement{Port: up, Data: eg[0].Probe()})
			for _, e := range eg {
				st[e.Cookie] = e
			}
		}
		d.Flows = append(d.Flows, returns(v, g, byNet)...)
		if g.Owner == v.Chassis.Name {
			d.Flows = append(d.Flows, owner(v, g, byNet, up)...)
			// A new owner announces the IP (the switch agent sends it
			// when it first appears here, and again once the flows are
			// in): the external switch learns the gateway MAC on this
			// chassis's uplink, and neighbours refresh their caches.
			var vid uint16
			if g.Ext.NetworkType == model.NetVLAN {
				vid = uint16(g.Ext.SegmentationID)
			}
			d.Announce = append(d.Announce, app.Announcement{Port: up, Data: flow.Tagged(flow.ARPRequest(g.MAC, g.IP, g.IP), vid)})
		}
	}
	if len(st) > 0 {
		d.Meters = []*flow.Meter{pipeline.MeterSNAT.Meter()}
	}
	d.Handler = st
	return d, nil
}

// fromUplink matches frames of g's external network from the uplink.
func fromUplink(g *Gateway, up uint32) flow.Match {
	m := flow.M().InPort(up)
	if g.Ext.NetworkType == model.NetVLAN {
		return m.Set(flow.VlanVID, flow.VlanPresent|uint64(g.Ext.SegmentationID))
	}
	return m.Set(flow.VlanVID, 0) // untagged
}

// egress are the flows that SNAT this chassis's traffic out of g, and
// what the resolver needs of each (router interface) egress.
func egress(v *binding.View, g *Gateway, ifs []*iface, up uint32) ([]*flow.Flow, []*Egress) {
	if g.NextHop == 0 {
		return nil, nil
	}
	var out []*flow.Flow
	var eg []*Egress
	cmac := ChassisMAC(v.Chassis.Name, g.Router.ID)
	snat := pipeline.SNAT.ID()
	for _, ing := range ifs {
		var mine []*model.SNATBlock
		for _, b := range g.Blocks {
			if b.Chassis == v.Chassis.Name && b.NetworkID == ing.net.Network.ID {
				mine = append(mine, b)
			}
		}
		if len(mine) == 0 || len(vmPorts(v, ing.net)) == 0 {
			continue // no block yet (or no port here): l3router's no-route answer applies
		}
		ck := cookie(g.Router.ID + "/" + ing.port.ID + "/" + v.Chassis.Name)
		key := ing.net.Key
		zone := pipeline.ZoneSNAT(key)
		// The default route of the router's interface on N.
		out = append(out, &flow.Flow{Table: pipeline.L3Routing.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match:   pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(key)), pipeline.ClassVM).EthDst(ing.mac).EthType(flow.EthTypeIPv4),
			Actions: []flow.Action{flow.DecTTL{}, flow.SetField{F: flow.EthSrc, Value: uint64(cmac)}},
			Goto:    snat})
		base := func() flow.Match {
			return pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(key)), pipeline.ClassVM).EthSrc(cmac).EthType(flow.EthTypeIPv4)
		}
		commit := func(b *model.SNATBlock, ports bool) flow.Action {
			n := &flow.NAT{Flags: flow.NATSrc, IPMin: g.IP, IPMax: g.IP}
			if ports {
				n.PortMin, n.PortMax = uint16(b.Index<<b.Bits), uint16((b.Index+1)<<b.Bits-1)
			}
			return flow.CT{Commit: true, Zone: zone, Table: snat, NAT: n}
		}
		// TCP/UDP: bits 1.. of the source port pick the block (a
		// power-of-two number of buckets, block = bucket mod blocks).
		nb := 1 << bits.Len(uint(len(mine)-1))
		for _, proto := range []struct {
			p  uint64
			sp flow.Field
		}{{flow.ProtoTCP, flow.TCPSrc}, {flow.ProtoUDP, flow.UDPSrc}} {
			for j := 0; j < nb; j++ {
				m := base().Set(flow.IPProto, proto.p).SetMasked(flow.CTState, 0, flow.CTTracked)
				if nb > 1 {
					// Bits 1.. of the source port: Linux picks even
					// ports for connect(), so bit 0 would leave every
					// other block unused.
					m = m.SetMasked(proto.sp, uint64(j)<<1, uint64(nb-1)<<1)
				}
				out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 10, Cookie: ck,
					Match: m, Actions: []flow.Action{commit(mine[j%len(mine)], true)}})
			}
		}
		// ICMP and other IP: the address only (ids and ports kept).
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 5, Cookie: ck,
			Match: base().SetMasked(flow.CTState, 0, flow.CTTracked), Actions: []flow.Action{commit(mine[0], false)}})
		// After conntrack: NATed -> to the next hop, out of this chassis's
		// uplink: the resolver's dynamic flow (GatewayFlow) once it knows
		// the next hop's MAC; until then a metered punt to it.
		e := &Egress{Cookie: ck, Uplink: up, NextHop: g.NextHop, MAC: cmac,
			Match: base().SetMasked(flow.CTState, flow.CTTracked, flow.CTTracked|flow.CTInvalid).Set(flow.IPv4Src, uint64(g.IP))}
		if g.Ext.NetworkType == model.NetVLAN {
			e.VLAN = uint16(g.Ext.SegmentationID)
		}
		eg = append(eg, e)
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 20, Cookie: ck, Meter: pipeline.MeterSNAT.ID,
			Match: e.Match, Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
		// A new connection conntrack could not NAT (no free port in the
		// blocks: Open vSwitch leaves it +new, un-NATed, and logs "tuple
		// space exhaustion"): the exhaustion drop, counted by the agent.
		// Anything else not NATed (+inv) is dropped by a flow of its own,
		// so stray invalid packets never look like a shortage.
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 15, Cookie: ExhaustionCookie(g.Router.ID, ing.net.Network.ID),
			Match: base().SetMasked(flow.CTState, flow.CTTracked|flow.CTNew, flow.CTTracked|flow.CTNew|flow.CTInvalid)})
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 14, Cookie: ck,
			Match: base().SetMasked(flow.CTState, flow.CTTracked, flow.CTTracked)})
	}
	return out, eg
}

// returns are the flows that take this chassis's blocks' return traffic
// (from the ARP owner's tunnel, or from its own steering) through
// conntrack and to the port.
func returns(v *binding.View, g *Gateway, byNet map[string]*iface) []*flow.Flow {
	var out []*flow.Flow
	snat := pipeline.SNAT.ID()
	nets := map[string]bool{}
	for _, b := range g.Blocks {
		if b.Chassis == v.Chassis.Name && byNet[b.NetworkID] != nil {
			nets[b.NetworkID] = true
		}
	}
	ids := make([]string, 0, len(nets))
	for id := range nets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ing := byNet[id]
		key := ing.net.Key
		ck := cookie(g.Router.ID + "/return/" + ing.port.ID + "/" + v.Chassis.Name)
		class := func() flow.Match {
			return pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(key)), pipeline.ClassTunnel).EthType(flow.EthTypeIPv4)
		}
		out = append(out, &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match:   flow.M().Set(flow.TunnelID, pipeline.TunSNATReturn(key)),
			Actions: []flow.Action{pipeline.SetClass(pipeline.ClassTunnel, 0), pipeline.RegNetwork.Set(uint64(key))}, Goto: snat})
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 10, Cookie: ck,
			Match:   class().Set(flow.IPv4Dst, uint64(g.IP)).SetMasked(flow.CTState, 0, flow.CTTracked),
			Actions: []flow.Action{flow.CT{Zone: pipeline.ZoneSNAT(key), Table: snat, NAT: &flow.NAT{}}}})
		// Established replies, un-NATed, routed to the local port.
		for _, bp := range vmPorts(v, ing.net) {
			for _, fip := range bp.Port.FixedIPs {
				ip, err := flow.ParseIPv4(fip.IPAddress)
				if err != nil {
					continue
				}
				out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 20, Cookie: cookie(g.Router.ID + "/return/" + bp.Port.ID),
					Match: class().SetMasked(flow.CTState, flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished|flow.CTInvalid).
						Set(flow.IPv4Dst, uint64(ip)),
					Actions: []flow.Action{flow.DecTTL{},
						flow.SetField{F: flow.EthSrc, Value: uint64(ing.mac)},
						flow.SetField{F: flow.EthDst, Value: uint64(bp.MAC)},
						flow.SetField{F: pipeline.RegFlags.Field, Value: pipeline.FlagRouted, Mask: pipeline.FlagRouted}},
					Goto: pipeline.L2Forward.ID()})
			}
		}
		// Anything else that came back for this network: dropped.
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 1, Cookie: ck,
			Match: class().SetMasked(flow.CTState, flow.CTTracked, flow.CTTracked)})
	}
	return out
}

// owner are the ARP owner's flows for g's IP: ARP answers and steering.
func owner(v *binding.View, g *Gateway, byNet map[string]*iface, up uint32) []*flow.Flow {
	var out []*flow.Flow
	ck := cookie(g.Router.ID + "/owner/" + g.IPText)
	snat := pipeline.SNAT.ID()
	vlan := g.Ext.NetworkType == model.NetVLAN
	fromUp := func() flow.Match { return fromUplink(g, up) }
	classify := []flow.Action{pipeline.SetClass(pipeline.ClassPhys, 0), pipeline.RegNetwork.Set(uint64(g.ExtKey))}
	if vlan {
		classify = append([]flow.Action{flow.PopVLAN{}}, classify...)
	}
	out = append(out,
		// Above nat's punt of the external gateway's ARP (PrioritySpecific):
		// the gateway asking for X is answered here.
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 5, Cookie: ck,
			Match: fromUp().EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, uint64(g.IP)), Actions: classify, Goto: pipeline.ARPResponder.ID()},
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: ck,
			Match: fromUp().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(g.IP)), Actions: classify, Goto: snat})
	reply := []flow.Action{
		flow.Move{Src: flow.EthSrc, Dst: flow.EthDst, NBits: 48},
		flow.SetField{F: flow.EthSrc, Value: uint64(g.MAC)},
		flow.SetField{F: flow.ARPOp, Value: 2},
		flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48},
		flow.Move{Src: flow.ARPSpa, Dst: flow.ARPTpa, NBits: 32},
		flow.SetField{F: flow.ARPSha, Value: uint64(g.MAC)},
		flow.SetField{F: flow.ARPSpa, Value: uint64(g.IP)},
	}
	if vlan {
		reply = append(reply, flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | uint64(g.Ext.SegmentationID)})
	}
	reply = append(reply, flow.Output{Port: flow.PortInPort})
	phys := func() flow.Match {
		return pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(g.ExtKey)), pipeline.ClassPhys)
	}
	out = append(out, &flow.Flow{Table: pipeline.ARPResponder.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
		Match: phys().EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, uint64(g.IP)), Actions: reply})
	// Anything else for X from the uplink is dropped unless a block claims it.
	out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal, Cookie: ck,
		Match: phys().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(g.IP))})
	// to sends the packet to the chassis/network holding a block.
	to := func(chassis string, n *iface) ([]flow.Action, bool) {
		if chassis == v.Chassis.Name {
			return []flow.Action{pipeline.SetClass(pipeline.ClassTunnel, 0), pipeline.RegNetwork.Set(uint64(n.net.Key)),
				flow.CT{Zone: pipeline.ZoneSNAT(n.net.Key), Table: snat, NAT: &flow.NAT{}}}, true
		}
		tp, ok := v.Tunnels[chassis]
		if !ok {
			return nil, false
		}
		return []flow.Action{flow.SetField{F: flow.TunnelID, Value: pipeline.TunSNATReturn(n.net.Key)}, flow.Output{Port: tp}}, true
	}
	type dest struct {
		chassis string
		n       *iface
	}
	var dests []dest
	seen := map[dest]bool{}
	for _, b := range g.Blocks {
		n := byNet[b.NetworkID]
		if n == nil {
			continue
		}
		acts, ok := to(b.Chassis, n)
		if !ok {
			continue
		}
		bck := cookie(fmt.Sprintf("%s/block/%s/%d", g.Router.ID, g.IPText, b.Index))
		lo := uint64(b.Index << b.Bits)
		mask := uint64(0xffff &^ (1<<b.Bits - 1))
		for _, proto := range []struct {
			p  uint64
			dp flow.Field
		}{{flow.ProtoTCP, flow.TCPDst}, {flow.ProtoUDP, flow.UDPDst}} {
			out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 10, Cookie: bck,
				Match:   phys().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(g.IP)).Set(flow.IPProto, proto.p).SetMasked(proto.dp, lo, mask),
				Actions: acts})
		}
		d := dest{b.Chassis, n}
		if !seen[d] {
			seen[d] = true
			dests = append(dests, d)
		}
	}
	// ICMP: to every holder of a block (the local one last: its ct
	// recirculates, the copies are already out).
	var icmp, local []flow.Action
	for _, d := range dests {
		acts, _ := to(d.chassis, d.n)
		if d.chassis == v.Chassis.Name {
			if local == nil {
				local = acts
			}
			continue
		}
		icmp = append(icmp, acts...)
	}
	if len(icmp)+len(local) > 0 {
		out = append(out, &flow.Flow{Table: snat, Priority: pipeline.PriorityNormal + 10, Cookie: ck,
			Match:   phys().EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(g.IP)).Set(flow.IPProto, flow.ProtoICMP),
			Actions: append(icmp, local...)})
	}
	return out
}
