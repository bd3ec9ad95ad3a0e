package nat

import (
	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// A floating IP on a load-balancer VIP's port (binding.FloatingIPVIP).
// The VIP's port is bound nowhere, so the floating IP is served on its
// home chassis (binding.FloatingIPHome, the same function app/lb uses):
// only there does nat answer ARP for it, rewrite what comes in to the
// VIP and hand it to app/lb's lb table (which balances it as a client's
// connection of the VIP's network), and turn the VIP back into the
// floating IP on the way out (README.md, "Floating IPs of a VIP").

// placeVIP resolves the VIP side of floating IP f on this chassis (nil
// unless this chassis is f's home and the VIP's port is on a GRE or
// VLAN network); it returns the VIP's subnet and network too.
func placeVIP(in app.Input, v *binding.View, f *model.FloatingIP, vip *model.LBVIP) (*placed, string, string) {
	if v.Table.FloatingIPHome(in.Topology, f) != v.Chassis.Name {
		return nil, "", ""
	}
	r, _ := in.Model.Get(model.KindPort, vip.PortID)
	port, _ := r.(*model.Port)
	if port == nil {
		return nil, "", ""
	}
	vnet := v.Table.Networks[port.NetworkID]
	vipIP, err := flow.ParseIPv4(vip.Address)
	mac, err2 := flow.ParseMAC(port.MACAddress)
	if vnet == nil || (vnet.Network.NetworkType != model.NetGRE && vnet.Network.NetworkType != model.NetVLAN) || err != nil || err2 != nil ||
		vip.ProtocolPort <= 0 || vip.ProtocolPort > 0xffff {
		return nil, "", "" // app/lb balances VIPs of GRE and VLAN networks only
	}
	return &placed{f: f, fixed: vipIP, vnet: vnet, vip: vip, vipMAC: mac}, vip.SubnetID, port.NetworkID
}

// vipFlows are a VIP floating IP's flows on its home chassis (cookie:
// the floating IP):
//
//	classifier 20010  uplink, ARP request for the FIP -> arp_responder (answered with the FIP port's MAC)
//	classifier 20011  uplink, tcp, nw_dst=FIP, tp_dst=VIP port -> (pop,) class phys, routed, reg1=VIP network,
//	                  reg2=uplink, nw_dst=VIP, dec_ttl, dl_src=router MAC on the VIP's subnet, dl_dst=VIP port's MAC, goto lb
//	classifier 20011  uplink, icmp echo request to the FIP -> answered in place: nw_dst=nw_src, nw_src=FIP,
//	                  dl_dst=dl_src, dl_src=FIP port's MAC, icmp_type=0, output:in_port (a tag stays)
//	classifier 20010  uplink, IPv4 to the FIP (anything else) -> drop
//	dnat 10000        VIP network, +trk+rpl, ct_zone=lb zone, dl_dst=router MAC, tcp, nw_src=VIP, tp_src=VIP port
//	                  -> nw_src=FIP, dec_ttl, dl_src=FIP port's MAC, reg1=external, class VM, routed, goto snat
//	dnat 10001+len    the same, nw_dst in one of the router's subnets -> goto l3_routing
func vipFlows(p *placed) []*flow.Flow {
	ck := cookie(p.f.ID)
	key := uint64(p.vnet.Key)
	in := fromUplink(p.uplink, p.vlan).EthType(flow.EthTypeIPv4).Set(flow.IPv4Dst, uint64(p.ip))
	var pop []flow.Action
	if p.vlan != 0 {
		pop = []flow.Action{flow.PopVLAN{}}
	}
	out := append(arpFlows(p),
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 11, Cookie: ck,
			Match: in.Set(flow.IPProto, flow.ProtoTCP).Set(flow.TCPDst, uint64(p.vip.ProtocolPort)),
			Actions: append(pop,
				pipeline.SetClass(pipeline.ClassPhys, 0),
				routed, // (one contiguous mask per set-field: OpenFlow cannot encode class|routed in one)
				pipeline.RegNetwork.Set(key),
				pipeline.RegInPort.Set(uint64(p.uplink)),
				flow.SetField{F: flow.IPv4Dst, Value: uint64(p.fixed)},
				flow.DecTTL{},
				flow.SetField{F: flow.EthSrc, Value: uint64(p.ifaceMAC)},
				flow.SetField{F: flow.EthDst, Value: uint64(p.vipMAC)},
			),
			Goto: pipeline.LB.ID()},
		// A ping to the floating IP is answered by its home, as a VIP's
		// own clients' are by app/lb (E1): nothing behind it would.
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 11, Cookie: ck,
			Match:   in.Set(flow.IPProto, flow.ProtoICMP).Set(flow.ICMPv4Type, 8),
			Actions: flow.EchoReply(p.ip, p.mac)},
		&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific + 10, Cookie: ck, Match: in},
	)
	// The member's reply, un-NATed to VIP:port by app/lb (in the VIP
	// network's lb zone, reply direction): back to the floating IP.
	reply := func() flow.Match {
		m := pipeline.RegNetwork.Match(nil, key).EthDst(p.ifaceMAC).EthType(flow.EthTypeIPv4).
			Set(flow.IPProto, flow.ProtoTCP).Set(flow.IPv4Src, uint64(p.fixed)).Set(flow.TCPSrc, uint64(p.vip.ProtocolPort))
		return m.SetMasked(flow.CTState, flow.CTTracked|flow.CTReply, flow.CTTracked|flow.CTReply).
			Set(flow.CTZone, uint64(pipeline.ZoneLB(p.vnet.Key)))
	}
	out = append(out, &flow.Flow{Table: pipeline.DNAT.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
		Match: reply(),
		Actions: []flow.Action{
			flow.SetField{F: flow.IPv4Src, Value: uint64(p.ip)},
			flow.DecTTL{},
			flow.SetField{F: flow.EthSrc, Value: uint64(p.mac)},
			pipeline.RegNetwork.Set(uint64(p.ext.Key)),
			pipeline.SetClass(pipeline.ClassVM, 0), // what snat's egress flows take
			routed,
		},
		Goto: pipeline.SNAT.ID()})
	// A reply to a client behind the same router (a routed client of the
	// VIP) stays east-west.
	out = append(out, eastWest(p, ck, func() flow.Match { return reply() })...)
	return out
}
