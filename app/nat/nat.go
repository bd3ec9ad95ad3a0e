// Package nat is the distributed NAT app: floating IPs on the VM's own
// hypervisor, with no gateway node (issue 11, deliverable 3). For one
// chassis's br-int it computes, for every floating IP associated with a
// port bound on that chassis, through a router whose gateway is on a flat
// external network that the chassis maps (node --bridge-mappings):
//
//   - from the external network's uplink (the br-int patch of the mapped
//     bridge), ARP requests for the floating IP go to the ARP responder,
//     which answers with the floating IP port's MAC (Neutron's
//     network:floatingip port: one MAC per floating IP, so the upstream
//     bridge learns one location for it); IPv4 to the floating IP goes to
//     dnat;
//   - dnat, from the external network: nw_dst = the fixed IP, dec_ttl,
//     dl_src = the router interface's MAC on the VM's subnet, dl_dst = the
//     VM's MAC, network register = the VM's network, then l2_forward (the
//     isolation app delivers it through to_vm_acl);
//   - dnat, from the VM (sent to its router's MAC, from the fixed IP):
//     to an address of one of the router's subnets, on to l3_routing
//     (east-west stays east-west); anything else: dec_ttl, nw_src = the
//     floating IP, dl_src = the floating IP port's MAC, network register
//     = the external network, then snat;
//   - snat: dl_dst = the external gateway's MAC and out of the uplink. The
//     MAC is learned by the packet-in handler (a dynamic flow per external
//     network); until it is known, egress is punted (nat_punt meter) and
//     the handler ARPs for the external subnet's gateway_ip.
//
// Rewriting is stateless (set-field, no conntrack): 1:1 NAT needs no
// state, so connections survive a controller or Open vSwitch restart.
//
// A floating IP on a load-balancer VIP's port has no VM: it is served on
// its home chassis (binding.FloatingIPHome), rewritten to the VIP in the
// classifier and handed to app/lb, and the members' un-NATed replies are
// turned back into the floating IP in dnat (vip.go).
//
// Only the chassis hosting the VM has these flows, so only it answers ARP
// for the floating IP. When a floating IP arrives on a chassis (associated
// or moved), the app's desired state lists a gratuitous ARP for it and an
// ARP request for the external gateway (app.Desired.Announce): the switch
// agent sends them when they first appear. The gateway's answer is punted
// and teaches the handler its MAC before the VM sends anything.
//
// It is pure: model snapshot and binding table in; flows, a meter, the
// handler's table (State) and the announcements out.
package nat

import (
	"net/netip"
	"sort"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// App is the NAT app.
type App struct{}

// New makes the app.
func New() *App { return &App{} }

func (a *App) Name() string       { return "nat" }
func (a *App) ID() pipeline.AppID { return pipeline.AppNAT }

// Ext is one external network as the handler of a switch sees it.
type Ext struct {
	NetworkID string
	Key       uint32
	Uplink    uint32
	// VLAN is the external network's VLAN id on the uplink (0: flat,
	// untagged).
	VLAN uint16
	// Gateway is the external subnet's gateway_ip (the upstream router).
	Gateway flow.IPv4
	// SrcMAC and SrcIP are a floating IP on this chassis (the first by
	// id): the sender of the handler's ARP requests for Gateway.
	SrcMAC flow.MAC
	SrcIP  flow.IPv4
}

// toUplink are the actions that send a frame out of the uplink (tagged
// for a VLAN external network).
func (e *Ext) toUplink() []flow.Action { return uplinkOut(e.VLAN, e.Uplink) }

func uplinkOut(vlan uint16, up uint32) []flow.Action {
	if vlan == 0 {
		return []flow.Action{flow.Output{Port: up}}
	}
	return []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | uint64(vlan)}, flow.Output{Port: up}}
}

// Cookie is the cookie of the external network's flows (and of the
// handler's dynamic flow).
func (e *Ext) Cookie() uint64 { return cookie(e.NetworkID) }

// State is the handler's state on one switch: the external networks with
// a floating IP here, by the cookie of their flows (the punts carry it).
// Not by uplink: the VLAN external networks of one physical network
// share it.
type State map[uint64]*Ext

func cookie(id string) uint64 { return pipeline.Cookie(pipeline.AppNAT, pipeline.ObjectID(id)) }

// placed is one floating IP with everything its flows need.
type placed struct {
	f        *model.FloatingIP
	ip       flow.IPv4 // the floating IP
	fixed    flow.IPv4
	mac      flow.MAC // the floating IP port's MAC
	vm       *binding.Port
	vnet     *binding.Network
	ifaceMAC flow.MAC // the router's interface on the VM's subnet
	ext      *binding.Network
	uplink   uint32
	vlan     uint16 // the external network's VLAN (0: flat)
	gw       flow.IPv4
	subnets  []netip.Prefix // the router's connected subnets
	// vip: the floating IP is associated with this load-balancer VIP's
	// port (binding.FloatingIPVIP) and this chassis is its home
	// (binding.FloatingIPHome): vm is nil, fixed is the VIP's address,
	// vipMAC its port's MAC (vip.go).
	vip    *model.LBVIP
	vipMAC flow.MAC
}

// Desired computes the switch's floating IP flows.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Model == nil || in.Switch == nil {
		return d, nil
	}
	v := in.Binding().Switch(in.Switch)
	if v.Chassis == nil {
		return d, nil // overlay only
	}
	fips := typed[*model.FloatingIP](in.Model.List(model.KindFloatingIP))
	sort.Slice(fips, func(i, j int) bool { return fips[i].ID < fips[j].ID })
	ifaces := binding.RouterInterfaces(in.Model)
	vipPorts := map[string]bool{} // the ports of load-balancer VIPs (vip.go)
	for _, r := range in.Model.List(model.KindVIP) {
		vipPorts[r.(*model.LBVIP).PortID] = true
	}
	st := State{}
	exts := map[string]bool{}
	for _, f := range fips {
		p := place(in, v, ifaces, vipPorts, f)
		if p == nil {
			continue
		}
		if p.vip != nil {
			d.Flows = append(d.Flows, vipFlows(p)...)
		} else {
			d.Flows = append(d.Flows, fipFlows(p)...)
		}
		d.Announce = append(d.Announce,
			app.Announcement{Port: p.uplink, Data: flow.Tagged(flow.ARPRequest(p.mac, p.ip, p.ip), p.vlan)}, // gratuitous
			app.Announcement{Port: p.uplink, Data: flow.Tagged(flow.ARPRequest(p.mac, p.ip, p.gw), p.vlan)}) // who has the gateway
		if !exts[p.ext.Network.ID] {
			exts[p.ext.Network.ID] = true
			e := &Ext{NetworkID: p.ext.Network.ID, Key: p.ext.Key, Uplink: p.uplink, VLAN: p.vlan, Gateway: p.gw, SrcMAC: p.mac, SrcIP: p.ip}
			st[e.Cookie()] = e
			d.Flows = append(d.Flows, extFlows(e)...)
		}
	}
	if len(st) > 0 {
		d.Meters = []*flow.Meter{pipeline.MeterNAT.Meter()}
	}
	d.Handler = st
	return d, nil
}

// place resolves floating IP f on this switch (nil: no flows here).
func place(in app.Input, v *binding.View, ifaces, vipPorts map[string]bool, f *model.FloatingIP) *placed {
	m := in.Model
	if f.PortID == "" || f.RouterID == "" {
		return nil
	}
	r, _ := m.Get(model.KindRouter, f.RouterID)
	rt, _ := r.(*model.Router)
	if rt == nil || !rt.AdminStateUp || rt.Gateway == nil || rt.Gateway.NetworkID != f.FloatingNetworkID {
		return nil
	}
	ext := v.Table.Networks[f.FloatingNetworkID]
	if ext == nil || !ext.Network.External || (ext.Network.NetworkType != model.NetFlat && ext.Network.NetworkType != model.NetVLAN) {
		return nil
	}
	uplink := v.Uplink(ext)
	if uplink == 0 {
		return nil
	}
	// The port behind the floating IP: a VM's bound here, or a VIP's
	// whose home is this chassis. subnet and netID are the fixed IP's.
	var p *placed
	var subnet, netID string
	var vip *model.LBVIP
	if vipPorts[f.PortID] {
		vip = binding.FloatingIPVIP(m, f)
	}
	if vip != nil {
		if p, subnet, netID = placeVIP(in, v, f, vip); p == nil {
			return nil
		}
	} else {
		vm := v.Ports[f.PortID]
		if vm == nil || !v.Local(vm) || !vm.Port.AdminStateUp {
			return nil
		}
		fixed, err := flow.ParseIPv4(f.FixedIPAddress)
		if err != nil {
			return nil
		}
		p = &placed{f: f, fixed: fixed, vm: vm, vnet: v.Table.Networks[vm.Port.NetworkID]}
		netID = vm.Port.NetworkID
		for _, x := range vm.Port.FixedIPs {
			if x.IPAddress == f.FixedIPAddress {
				subnet = x.SubnetID
			}
		}
	}
	ip, err1 := flow.ParseIPv4(f.FloatingIPAddress)
	if p.vnet == nil || err1 != nil {
		return nil
	}
	p.ip, p.ext, p.uplink = ip, ext, uplink
	if ext.Network.NetworkType == model.NetVLAN {
		p.vlan = uint16(ext.Network.SegmentationID)
	}
	// The floating IP port's MAC, and the external subnet's gateway.
	fr, _ := m.Get(model.KindPort, f.FloatingPortID)
	fp, _ := fr.(*model.Port)
	if fp == nil {
		return nil
	}
	if p.mac, err1 = flow.ParseMAC(fp.MACAddress); err1 != nil {
		return nil
	}
	for _, s := range ext.Subnets {
		if pfx, err := netip.ParsePrefix(s.CIDR); err == nil && contains(pfx, ip) {
			p.gw, _ = flow.ParseIPv4(s.GatewayIP)
		}
	}
	if p.gw == 0 {
		return nil // no upstream router to send to
	}
	// The router's interface on the fixed IP's subnet.
	for _, pid := range rt.Interfaces {
		if !ifaces[pid] {
			continue
		}
		pr, _ := m.Get(model.KindPort, pid)
		ip, _ := pr.(*model.Port)
		if ip == nil || ip.DeviceID != rt.ID {
			continue
		}
		mac, err := flow.ParseMAC(ip.MACAddress)
		if err != nil {
			continue
		}
		for _, x := range ip.FixedIPs {
			sr, _ := m.Get(model.KindSubnet, x.SubnetID)
			s, _ := sr.(*model.Subnet)
			if s == nil {
				continue
			}
			if pfx, err := netip.ParsePrefix(s.CIDR); err == nil && pfx.Addr().Is4() {
				p.subnets = append(p.subnets, pfx.Masked())
			}
			if x.SubnetID == subnet && ip.NetworkID == netID {
				p.ifaceMAC = mac
			}
		}
	}
	if p.ifaceMAC == 0 {
		return nil // the router does not reach the VM's subnet
	}
	return p
}

func contains(p netip.Prefix, v flow.IPv4) bool {
	return p.Contains(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
}

// eastWest sends what match selects to l3_routing untranslated when it
// is addressed to one of the router's own subnets (dnat, one flow per
// subnet, longest prefix first is not needed: every one has the same
// action).
func eastWest(p *placed, ck uint64, match func() flow.Match) []*flow.Flow {
	var out []*flow.Flow
	seen := map[netip.Prefix]bool{}
	for _, pfx := range p.subnets {
		if seen[pfx] {
			continue
		}
		seen[pfx] = true
		out = append(out, &flow.Flow{Table: pipeline.DNAT.ID(), Priority: pipeline.PriorityNormal + 1 + uint16(pfx.Bits()), Cookie: ck,
			Match: match().IPv4DstIn(pfx), Goto: pipeline.L3Routing.ID()})
	}
	return out
}

// fromUplink matches the external network's frames from its uplink:
// untagged (flat) or tagged with its VLAN.
func fromUplink(up uint32, vlan uint16) flow.Match {
	if vlan == 0 {
		return flow.M().InPort(up).Set(flow.VlanVID, 0)
	}
	return flow.M().InPort(up).Set(flow.VlanVID, flow.VlanPresent|uint64(vlan))
}

// classify pops the external network's tag (if any) and classifies.
func classify(key, up uint32, vlan uint16) []flow.Action {
	var out []flow.Action
	if vlan != 0 {
		out = append(out, flow.PopVLAN{})
	}
	return append(out,
		pipeline.SetClass(pipeline.ClassPhys, 0),
		pipeline.RegNetwork.Set(uint64(key)),
		pipeline.RegInPort.Set(uint64(up)))
}

var routed = flow.SetField{F: pipeline.RegFlags.Field, Value: pipeline.FlagRouted, Mask: pipeline.FlagRouted}

// fromVM matches what the VM sends to its router from its fixed IP, on
// its own port (reg2: another VM of the network without port security
// cannot borrow the floating IP by sending from this fixed IP).
func fromVM(p *placed) flow.Match {
	m := pipeline.RegNetwork.Match(nil, uint64(p.vnet.Key))
	m = pipeline.RegPortClass.Match(m, pipeline.ClassVM)
	m = pipeline.RegInPort.Match(m, uint64(p.vm.OFPort))
	return m.EthDst(p.ifaceMAC).EthType(flow.EthTypeIPv4).Set(flow.IPv4Src, uint64(p.fixed))
}

// arpFlows answer ARP for the floating IP from the external network
// with the floating IP port's MAC (cookie: the floating IP).
func arpFlows(p *placed) []*flow.Flow {
	ck := cookie(p.f.ID)
	xkey := p.ext.Key
	return []*flow.Flow{
		{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 10, Cookie: ck,
			Match:   fromUplink(p.uplink, p.vlan).EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, uint64(p.ip)),
			Actions: classify(xkey, p.uplink, p.vlan), Goto: pipeline.ARPResponder.ID()},
		{Table: pipeline.ARPResponder.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match: pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(xkey)), pipeline.ClassPhys).
				EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, uint64(p.ip)),
			Actions: append([]flow.Action{
				flow.Move{Src: flow.EthSrc, Dst: flow.EthDst, NBits: 48},
				flow.SetField{F: flow.EthSrc, Value: uint64(p.mac)},
				flow.SetField{F: flow.ARPOp, Value: 2},
				flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48},
				flow.Move{Src: flow.ARPSpa, Dst: flow.ARPTpa, NBits: 32},
				flow.SetField{F: flow.ARPSha, Value: uint64(p.mac)},
				flow.SetField{F: flow.ARPSpa, Value: uint64(p.ip)},
			}, uplinkOut(p.vlan, flow.PortInPort)...)},
	}
}

// fipFlows are one floating IP's flows (cookie: the floating IP).
func fipFlows(p *placed) []*flow.Flow {
	ck := cookie(p.f.ID)
	xkey := p.ext.Key
	out := append(arpFlows(p),
		// From the external network: IPv4 to the floating IP.
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 10, Cookie: ck,
			Match:   fromUplink(p.uplink, p.vlan).EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(p.ip)),
			Actions: classify(xkey, p.uplink, p.vlan), Goto: pipeline.DNAT.ID()},
		// DNAT: to the VM, routed.
		&flow.Flow{Table: pipeline.DNAT.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match: pipeline.RegPortClass.Match(pipeline.RegNetwork.Match(nil, uint64(xkey)), pipeline.ClassPhys).
				EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(p.ip)),
			Actions: []flow.Action{
				flow.SetField{F: flow.IPv4Dst, Value: uint64(p.fixed)},
				flow.DecTTL{},
				flow.SetField{F: flow.EthSrc, Value: uint64(p.ifaceMAC)},
				flow.SetField{F: flow.EthDst, Value: uint64(p.vm.MAC)},
				pipeline.RegNetwork.Set(uint64(p.vnet.Key)),
				routed,
			},
			Goto: pipeline.L2Forward.ID()},
		// SNAT: off the router's subnets, out to the external network.
		&flow.Flow{Table: pipeline.DNAT.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match: fromVM(p),
			Actions: []flow.Action{
				flow.SetField{F: flow.IPv4Src, Value: uint64(p.ip)},
				flow.DecTTL{},
				flow.SetField{F: flow.EthSrc, Value: uint64(p.mac)},
				pipeline.RegNetwork.Set(uint64(xkey)),
				routed,
			},
			Goto: pipeline.SNAT.ID()},
	)
	// East-west stays east-west: the router's own subnets go on to
	// l3_routing untranslated (longest prefix first is not needed: every
	// one of them has the same action).
	out = append(out, eastWest(p, ck, func() flow.Match { return fromVM(p) })...)
	return out
}

// egress matches floating IP egress in snat: translated in dnat (network
// register = the external network, routed, from a VM).
func egress(e *Ext) flow.Match {
	m := pipeline.RegNetwork.Match(nil, uint64(e.Key))
	m = m.SetMasked(pipeline.RegFlags.Field, pipeline.FlagRouted|pipeline.ClassVM, pipeline.FlagRouted|pipeline.RegPortClass.Mask())
	return m.EthType(flow.EthTypeIPv4)
}

// extFlows are one external network's flows on the chassis (cookie: the
// network): the ARP punt of its gateway's answers and announcements, and
// the egress punt while the gateway's MAC is unknown.
func extFlows(e *Ext) []*flow.Flow {
	ck := e.Cookie()
	punt := []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}
	return []*flow.Flow{
		{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: ck, Meter: pipeline.MeterNAT.ID,
			Match:   fromUplink(e.Uplink, e.VLAN).EthType(flow.EthTypeARP).Set(flow.ARPSpa, uint64(e.Gateway)),
			Actions: arpPunt(e)},
		{Table: pipeline.SNAT.ID(), Priority: pipeline.PriorityDefault, Cookie: ck, Meter: pipeline.MeterNAT.ID,
			Match: egress(e), Actions: punt},
	}
}

// arpPunt sends the gateway's ARP to the handler, untagged.
func arpPunt(e *Ext) []flow.Action {
	var out []flow.Action
	if e.VLAN != 0 {
		out = append(out, flow.PopVLAN{})
	}
	return append(out, flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer})
}

// GatewayFlow is the handler's dynamic flow once the external gateway's
// MAC is known: floating IP egress to that MAC, out of the uplink. It
// expires after 5 minutes whatever the traffic (a hard timeout, so a
// changed gateway MAC is re-learned): the next packet is punted and it
// comes back.
func GatewayFlow(e *Ext, mac flow.MAC) flow.Flow {
	return flow.Flow{Table: pipeline.SNAT.ID(), Priority: pipeline.PriorityLearned, Cookie: e.Cookie() | pipeline.CookieDynamic,
		HardTimeout: 300, Match: egress(e),
		Actions: append([]flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(mac)}}, e.toUplink()...)}
}

func typed[T model.Record](rs []model.Record) []T {
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		if t, ok := r.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
