package pipeline

import (
	"fmt"

	"github.com/nimbus-sdn/nimbus/flow"
)

// MissAction is what a table does with a packet no flow matches.
type MissAction uint8

const (
	MissDrop       MissAction = iota // drop
	MissNext                         // goto the next table in order
	MissController                   // send to the controller
	MissGoto                         // goto MissTable
	MissFlood                        // flood out all ports but the ingress port
)

// Table declares one table and its contract.
type Table struct {
	Name    string
	Owner   AppID
	Purpose string
	Miss    MissAction
	// MissTable names the table for MissGoto.
	MissTable string
	// Writers are the apps besides Owner allowed to add flows here.
	Writers []AppID
	// Matches lists the fields flows here may match (nil: any).
	Matches []flow.Field
	// Sets lists the fields flows here may write: set-field and move
	// destinations, and dl_vlan (VlanVID) for push/pop VLAN (nil: none).
	Sets []flow.Field
	// Recirculate lets ct() recirculate into the table itself (never a
	// goto or resubmit): the lookup before conntrack matches packets not
	// yet tracked, the verdict after it +trk (secgroup), or a register
	// bit the recirculated packet has set (lb: RegLB).
	Recirculate bool
	// Next lists the tables flows here may goto/resubmit to.
	Next []string
	// Dynamic tables hold flows installed by packet-in handlers.
	Dynamic bool

	id uint8
}

// ID is the table number, fixed by declaration order.
func (t *Table) ID() uint8 { return t.id }

// Shorthands for the contracts below.
var (
	regClass = flow.Reg0 // RegPortClass and RegFlags
	regNet   = flow.Reg1 // RegNetwork
	regIn    = flow.Reg2 // RegInPort
	regOut   = flow.Reg3 // RegOutPort
	ipFields = []flow.Field{flow.EthType, flow.IPProto, flow.IPv4Src, flow.IPv4Dst, flow.TCPSrc, flow.TCPDst, flow.UDPSrc, flow.UDPDst, flow.ICMPv4Type, flow.ICMPv4Code}
	ctFields = []flow.Field{flow.CTState, flow.CTZone, flow.CTMark}
)

func fields(groups ...[]flow.Field) []flow.Field {
	var out []flow.Field
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func fs(f ...flow.Field) []flow.Field { return f }

// The pipeline, in table order. Adding a table is one line here. Matches
// are the fields the table's flows use; Sets the fields their actions
// may write (set-field, move destination, VLAN push/pop): a table whose
// flows set nothing declares none.
var (
	Classifier = &Table{Name: "classifier", Owner: AppPipeline, Purpose: "classify the ingress port (VM, tunnel, physical or fabric link); LLDP goes to the controller; ports no tenant network covers go to L2 learning; nat: from an external network's uplink, ARP for a floating IP here to arp_responder, IPv4 to it to dnat, ARP from the external gateway punted (nat_punt); a floating IP of a load-balancer VIP, on its home chassis: TCP to its port rewritten to the VIP (nw_dst, dec_ttl, the router's MAC as source, the VIP port's MAC as destination, the VIP's network) and on to lb, an ICMP echo request to it answered in place (output in_port); snat: on a router external IP's ARP owner, ARP for it to arp_responder and IPv4 to it to snat; SNAT return traffic from a tunnel (tun_id TunSNATReturn) to snat", Miss: MissGoto, MissTable: "l2_learning", Writers: []AppID{AppIsolation, AppTopology, AppLB, AppNAT, AppSNAT},
		Matches: fs(flow.InPort, flow.TunnelID, flow.VlanVID, flow.EthType, flow.IPv4Src, flow.TCPSrc, // lb: members' replies from a tunnel
			flow.IPv4Dst, flow.EthDst, flow.IPProto, flow.ICMPv4Type, flow.ARPOp, flow.ARPSpa, flow.ARPTpa, // nat, snat, lb health probes: floating IPs, router external IPs and the external gateway
			flow.TCPDst), // nat: a VIP floating IP's port
		Sets: fs(regClass, regNet, regIn, flow.VlanVID, flow.IPv4Dst, flow.EthSrc, flow.EthDst, flow.IPv4Src, flow.ICMPv4Type), // nat: a VIP floating IP rewritten to the VIP; its ping answered (nw_src, icmp_type)
		Next: []string{"port_security", "arp_responder", "lb", "dnat", "l3_routing", "snat", "l2_forward", "l2_learning"}}
	PortSecurity = &Table{Name: "port_security", Owner: AppIsolation, Purpose: "drop frames whose source MAC/IP is not the port's (fixed IPs, allowed address pairs)", Miss: MissDrop,
		Matches: fs(flow.InPort, flow.EthSrc, flow.EthType, flow.IPv4Src, flow.ARPSpa, flow.IPProto, flow.UDPSrc, flow.UDPDst),
		Next:    []string{"from_vm_acl"}}
	FromVMACL = &Table{Name: "from_vm_acl", Owner: AppSecGroup, Purpose: "stateful security groups on what a VM sends (conntrack commit/lookup)", Miss: MissNext,
		Matches:     fields(fs(regClass, regNet, regIn, flow.Reg7, flow.EthSrc, flow.EthDst, flow.ConjID), ipFields, ctFields),
		Sets:        fs(flow.Reg4, flow.Reg7, flow.CTMark),
		Next:        []string{"arp_responder"},
		Recirculate: true}
	ARPResponder = &Table{Name: "arp_responder", Owner: AppIsolation, Purpose: "answer ARP for known addresses on the local chassis", Miss: MissNext, Writers: []AppID{AppL3Router, AppNAT, AppLB, AppSNAT},
		Matches: fs(regClass, regNet, flow.EthType, flow.ARPOp, flow.ARPTpa),
		Sets:    fs(regClass, flow.EthSrc, flow.EthDst, flow.ARPOp, flow.ARPSha, flow.ARPSpa, flow.ARPTha, flow.ARPTpa, flow.VlanVID), // nat: answers tagged back onto a VLAN external network
		Next:    []string{"dhcp"}}
	DHCP = &Table{Name: "dhcp", Owner: AppIsolation, Purpose: "send DHCP requests to the controller's DHCP responder", Miss: MissNext,
		Matches: fs(regClass, regNet, regIn, flow.EthType, flow.IPProto, flow.UDPSrc, flow.UDPDst), // reg2: the VM port (its project's meter)
		Next:    []string{"lb"}}
	LB = &Table{Name: "lb", Owner: AppLB, Purpose: "VIP to member selection: conntrack (nat) lookup recirculating here, new connections to the VIP's select group (buckets commit with nat(dst=member) and recirculate here), then dl_dst = the member's MAC (a client routed to the VIP by a router, matched by dl_dst = the router's MAC, keeps it for l3_routing); members' replies un-NATed; DSR: a conntrack lookup (no nat), new connections to the select group, whose bucket names a link and recirculates here, where the link's member is committed as the connection's ct_mark; established connections follow their ct_mark; the member's MAC as dl_dst (on to dnat for a local member, straight to the member's tunnel, or the VLAN uplink tagged, for a remote one); a routed client's packet routed first in lb (dec_ttl, dl_src = the router's MAC on the VIP's subnet, network register = the VIP's network, routed flag; TTL 0/1 left to l3_routing); replies looked up in the same zone; on a member's chassis, its replies to a client of a VIP floating IP (outside the router's subnets) sent unchanged to the floating IP's home chassis (tun_id = the VIP network's, output to that tunnel); a client's ICMP echo request to the VIP answered in place (output in_port)", Miss: MissNext,
		Matches:     fields(fs(regClass, regNet, flow.Reg6, flow.EthDst, flow.IPTTL), ipFields, ctFields),
		Sets:        fs(flow.Reg6, flow.EthDst, flow.IPv4Dst, flow.TCPDst, flow.UDPDst, regClass, regNet, flow.EthSrc, flow.TunnelID, flow.VlanVID, flow.CTMark, flow.IPv4Src, flow.ICMPv4Type), // ct_mark: a DSR connection's member; tun_id, dl_vlan: to a remote DSR member; nw_src, icmp_type: the VIP's echo reply
		Next:        []string{"dnat"},
		Recirculate: true}
	DNAT = &Table{Name: "dnat", Owner: AppNAT, Purpose: "floating IPs, stateless 1:1 in both directions, before routing: from the external network, nw_dst = the fixed IP, routed to the VM (l2_forward); from the VM, off its router's subnets, nw_src = the floating IP, dl_src = the floating IP port's MAC, network register = the external network (snat); to the router's own subnets, on to l3_routing; a VIP floating IP's reply (un-NATed to the VIP by lb: +trk+rpl in the lb zone) back to the floating IP (class VM, routed) to snat", Miss: MissNext,
		Matches: fields(fs(regClass, regNet, regIn, flow.Reg5, flow.EthDst), ipFields, ctFields),
		Sets:    fs(regClass, regNet, flow.Reg4, flow.Reg5, flow.EthSrc, flow.EthDst, flow.IPv4Src, flow.IPv4Dst, flow.CTMark),
		Next:    []string{"l3_routing", "snat", "l2_forward"}}
	L3Routing = &Table{Name: "l3_routing", Owner: AppL3Router, Purpose: "distributed routing between tenant subnets on the source chassis: a packet to a router interface's MAC is routed by destination address (dec_ttl, MACs rewritten, network register set to the target's network, then l2_forward for a local target or straight to the target chassis's tunnel / the VLAN uplink); ICMP echo to a gateway answered in place; TTL 0/1 and no route punted (l3_punt) for ICMP time exceeded / net unreachable; snat: the default route of a router with enable_snat (dec_ttl, source MAC = this chassis's MAC for the router) to snat", Miss: MissNext, Writers: []AppID{AppSNAT},
		Matches: fields(fs(regClass, regNet, flow.Reg5, flow.EthDst, flow.IPTTL), ipFields),
		Sets:    fs(regClass, regNet, flow.Reg5, flow.EthSrc, flow.EthDst, flow.IPv4Src, flow.IPv4Dst, flow.ICMPv4Type, flow.TunnelID, flow.VlanVID),
		Next:    []string{"snat", "l2_forward"}}
	SNAT = &Table{Name: "snat", Owner: AppNAT, Purpose: "SNAT toward the external network; floating IP egress (already translated in dnat): dl_dst = the external gateway's MAC learned by the nat handler (dynamic flow per external network) and out of this chassis's uplink, or, before it is learned, a metered punt (nat_punt) that makes the handler ARP for the gateway; snat app: conntrack nat(src=external IP:block) into this chassis's port blocks (recirculating here) and out of its own uplink to the next hop's MAC (the snat handler's dynamic flow; before it is learned a metered punt, snat_punt, and an ARP probe); on the external IP's ARP owner, return traffic steered by a masked match on the destination port to the block's chassis (tun_id = TunSNATReturn), where conntrack reverses the NAT (recirculating here) and the packet is delivered (l2_forward)", Miss: MissNext,
		Writers:     []AppID{AppSNAT},
		Matches:     fields(fs(regClass, regNet, flow.Reg5, flow.EthSrc), ipFields, ctFields),
		Sets:        fs(regClass, regNet, flow.Reg4, flow.IPv4Src, flow.CTMark, flow.EthSrc, flow.EthDst, flow.TunnelID, flow.VlanVID),
		Next:        []string{"l2_forward"},
		Dynamic:     true,
		Recirculate: true}
	L2Forward = &Table{Name: "l2_forward", Owner: AppIsolation, Purpose: "known unicast to its port or tunnel; broadcast to the network's flood group", Miss: MissNext,
		Matches: fs(regClass, regNet, flow.EthDst),
		Sets:    fs(regOut, flow.TunnelID, flow.VlanVID),
		Next:    []string{"to_vm_acl"}}
	ToVMACL = &Table{Name: "to_vm_acl", Owner: AppSecGroup, Purpose: "stateful security groups on what a VM receives", Miss: MissNext,
		Matches:     fields(fs(regClass, regNet, regIn, regOut, flow.Reg7, flow.EthSrc, flow.EthDst, flow.ConjID), ipFields, ctFields),
		Sets:        fs(flow.Reg4, flow.Reg7, flow.CTMark),
		Next:        []string{"output"},
		Recirculate: true}
	Output = &Table{Name: "output", Owner: AppIsolation, Purpose: "emit to the egress port chosen earlier (reg3)", Miss: MissDrop,
		Matches: fs(regOut)}
	L2Learning = &Table{Name: "l2_learning", Owner: AppLearning, Purpose: "MAC learning for ports no tenant network covers, on plain switches: learned (in_port, dl_src, dl_dst) flows with idle timeouts; the learning app's metered punt (learning_punt) sends the rest to the controller; on a chassis nothing is punted and the miss drops", Miss: MissDrop,
		Matches: fs(flow.InPort, flow.EthSrc, flow.EthDst), Dynamic: true}
)

// Tables is the ordered pipeline; a table's index is its id.
var Tables = declare(Classifier, PortSecurity, FromVMACL, ARPResponder, DHCP, LB, DNAT, L3Routing, SNAT, L2Forward, ToVMACL, Output, L2Learning)

var byName = map[string]*Table{}

func declare(ts ...*Table) []*Table {
	for i, t := range ts {
		t.id = uint8(i)
		if _, dup := byName[t.Name]; dup {
			panic("pipeline: duplicate table " + t.Name)
		}
		byName[t.Name] = t
	}
	for _, t := range ts {
		for _, n := range append(append([]string{}, t.Next...), t.MissTable) {
			if n == "" {
				continue
			}
			nt, ok := byName[n]
			if !ok {
				panic(fmt.Sprintf("pipeline: table %s names unknown table %s", t.Name, n))
			}
			if nt.id <= t.id {
				panic(fmt.Sprintf("pipeline: table %s may only go forward, not to %s", t.Name, n))
			}
		}
	}
	return ts
}

// ByName returns a declared table.
func ByName(name string) *Table { return byName[name] }

// ByID returns the table with id, or nil.
func ByID(id uint8) *Table {
	if int(id) < len(Tables) {
		return Tables[id]
	}
	return nil
}

// MissFlow is the table-miss flow the pipeline installs for t.
func (t *Table) MissFlow() *flow.Flow {
	f := &flow.Flow{Table: t.id, Priority: PriorityMiss, Cookie: Cookie(AppPipeline, uint64(t.id))}
	switch t.Miss {
	case MissNext:
		f.Goto = t.id + 1
	case MissGoto:
		f.Goto = byName[t.MissTable].id
	case MissController:
		f.Actions = []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}
	case MissFlood:
		f.Actions = []flow.Action{flow.Output{Port: flow.PortFlood}}
	}
	return f
}

// BaseFlows are the flows every switch holds regardless of apps.
func BaseFlows() []*flow.Flow {
	out := make([]*flow.Flow, 0, len(Tables))
	for _, t := range Tables {
		out = append(out, t.MissFlow())
	}
	return out
}

func (m MissAction) String() string {
	switch m {
	case MissDrop:
		return "drop"
	case MissNext:
		return "next table"
	case MissController:
		return "controller"
	case MissFlood:
		return "flood"
	}
	return "goto"
}
