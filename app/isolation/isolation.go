// Package isolation is the tenant isolation app: distributed L2 for VLAN
// and GRE tenant networks. For one chassis's br-int it computes the
// classifier (ingress port to network key), port security (anti-spoofing),
// the local ARP responder, the DHCP punt to the controller, L2 forwarding
// (local ports, GRE tunnels, the VLAN uplink) with one flood group pair per
// network, and the output table. Its packet-in handler is the DHCP server.
// It is pure: the model snapshot, the topology and the shared binding
// table (app.Input.Bindings: where every Neutron port is) in; flows,
// groups, meters and the DHCP lease table (app.Desired.Handler) out. The
// one state it keeps is which subnets' DHCP-option warnings it already
// logged (trimmed), so a warning is not repeated on every computation.
package isolation

import (
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Port classes and flags written to reg0 (declared in pipeline).
const (
	ClassVM     = pipeline.ClassVM
	ClassTunnel = pipeline.ClassTunnel
	ClassPhys   = pipeline.ClassPhys
	FlagFromVM  = pipeline.FlagFromVM
)

// Config tunes the app.
type Config struct {
	// DHCPServerMAC is the source MAC of DHCP replies.
	DHCPServerMAC flow.MAC
	// LeaseSeconds is the DHCP lease time (default one day).
	LeaseSeconds uint32
}

// App is the isolation app.
type App struct {
	cfg Config
	// trimmed remembers, per subnet id, the [DNS, routes] counts last
	// logged as dropped from DHCP replies ([2]int), so the warning is not
	// repeated on every computation.
	trimmed sync.Map
}

// New makes the app with defaults filled in.
func New(cfg Config) *App {
	if cfg.DHCPServerMAC == 0 {
		cfg.DHCPServerMAC = flow.MustMAC("02:4e:44:48:43:50")
	}
	if cfg.LeaseSeconds == 0 {
		cfg.LeaseSeconds = 86400
	}
	return &App{cfg: cfg}
}

func (a *App) Name() string       { return "isolation" }
func (a *App) ID() pipeline.AppID { return pipeline.AppIsolation }

// NetworkKey is a network's value in pipeline.RegNetwork (see
// binding.NetworkKey).
func NetworkKey(n *model.Network) (key uint32, ok bool) { return binding.NetworkKey(n) }

func floodGroupID(key uint32, localOnly bool) uint32 { return binding.FloodGroup(key, localOnly) }

// chainGroupBase starts the ids of chained flood groups (a network with
// more ports on one switch than pipeline.MaxGroupBuckets). They are
// handed out in order (network id, all then local) each time a switch's
// state is computed, so the same model gives the same ids.
var chainGroupBase = binding.ChainGroupBase

// FloodGroupID is the flood group of a network key (exported for tests
// and other apps that need to flood on a tenant network).
func FloodGroupID(key uint32, localOnly bool) uint32 { return floodGroupID(key, localOnly) }

type located struct {
	port    *model.Port
	mac     flow.MAC
	chassis string // "" if not bound anywhere
	ofport  uint32 // on the chassis's switch, when local or seen
}

type netState struct {
	*binding.Network
	n      *model.Network
	key    uint32
	local  []*located      // bound on this switch, model order
	remote []*located      // bound elsewhere
	all    []*located      // every port with a MAC
	hosts  map[string]bool // chassis with a port on this network
}

func (ns *netState) mayHoldGateway(p *model.Port) bool { return ns.MayHoldGateway(p) }
func (ns *netState) isGateway(v flow.IPv4) bool        { return ns.IsGateway(v) }

func newNetState(n *binding.Network) *netState {
	return &netState{Network: n, n: n.Network, key: n.Key, hosts: map[string]bool{}}
}

// Desired computes the switch's isolation flows and groups from the
// binding table (app.Input.Bindings): nothing here decides where a
// Neutron port is.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Model == nil || in.Switch == nil {
		return d, nil
	}
	v := in.Binding().Switch(in.Switch)
	if v.Chassis == nil {
		if in.Topology == nil {
			return d, nil
		}
		return a.desiredFabric(v)
	}
	self := v.Chassis
	t := v.Table
	nets := map[string]*netState{}
	for _, id := range t.NetworkIDs {
		ns := newNetState(t.Networks[id])
		nets[id] = ns
		for _, bp := range v.ByNetwork[id] {
			l := &located{port: bp.Port, mac: bp.MAC}
			switch {
			case v.Local(bp):
				l.chassis, l.ofport = bp.Chassis, bp.OFPort
				ns.local = append(ns.local, l)
				ns.hosts[l.chassis] = true
			case v.Remote(bp):
				l.chassis, l.ofport = bp.Chassis, bp.OFPort
				ns.remote = append(ns.remote, l)
				ns.hosts[l.chassis] = true
			}
			ns.all = append(ns.all, l)
		}
	}

	b := &builder{}
	tunnels, tunnelPorts := v.Tunnels, v.TunnelPorts

	// Frames from a tunnel or uplink that no network claims are dropped
	// here, never left to the classifier's miss (L2 learning).
	for _, c := range t.Chassis {
		if tp, ok := tunnels[c.Name]; ok {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityDefault,
				Cookie: pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID("chassis:"+c.Name)), Match: flow.M().InPort(tp)})
		}
	}
	for pn := range self.Mappings {
		if tp, ok := v.Uplinks[pn]; ok {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityDefault,
				Cookie: pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID("physnet:"+pn)), Match: flow.M().InPort(tp)})
		}
	}

	leases := &leaseTable{byPort: map[uint32]*lease{}}
	for _, id := range t.NetworkIDs {
		ns := nets[id]
		if len(ns.local) == 0 {
			continue // nothing of this network here: no flows, no group
		}
		phy := v.Uplink(ns.Network)
		b.network(ns, phy, tunnels, tunnelPorts)
		for _, l := range ns.local {
			b.localPort(ns, l)
			if ls := a.lease(ns, l); ls != nil {
				leases.byPort[l.ofport] = ls
			}
		}
		for _, l := range ns.remote {
			b.remotePort(ns, l, phy, tunnels)
		}
		for _, l := range ns.all {
			b.arp(ns, l)
		}
	}
	d.Flows, d.Groups, d.Meters, d.Handler = b.flows, b.groups, b.meters(), leases
	return d, nil
}

// builder accumulates flows.
type builder struct {
	flows      []*flow.Flow
	groups     []*flow.Group
	dhcpMeters []*flow.Meter // the DHCP punts' meters (pipeline.MeterDHCP, per project), each once
	chains     uint32        // chained flood groups handed out so far
}

// floodGroups adds the flood group head (split into a chain when its
// buckets do not fit one group, pipeline.MaxGroupBuckets).
func (b *builder) floodGroups(head uint32, buckets []flow.Bucket) {
	b.groups = append(b.groups, pipeline.ChainGroup(head, buckets, func() uint32 {
		b.chains++
		return chainGroupBase + b.chains - 1
	})...)
}

// meters returns the meters the flows use.
func (b *builder) meters() []*flow.Meter {
	return b.dhcpMeters
}

func (b *builder) add(f *flow.Flow) { b.flows = append(b.flows, f) }

func portCookie(id string) uint64 {
	return pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID(id))
}
func netCookie(id string) uint64 {
	return pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID(id))
}

// classify sets port class (and flags), network and ingress port.
func classify(class, flags uint64, key uint32, ofport uint32) []flow.Action {
	return []flow.Action{
		pipeline.SetClass(class, flags),
		pipeline.RegNetwork.Set(uint64(key)),
		pipeline.RegInPort.Set(uint64(ofport)),
	}
}

func netMatch(key uint32) flow.Match { return pipeline.RegNetwork.Match(nil, uint64(key)) }

// network emits the per-network flows (cookie: the network) and groups.
func (b *builder) network(ns *netState, phy uint32, tunnels map[string]uint32, tunnelPorts []uint32) {
	ck := netCookie(ns.n.ID)
	seg := uint64(ns.n.SegmentationID)
	var remoteBuckets []flow.Bucket
	switch ns.n.NetworkType {
	case model.NetGRE:
		for _, t := range tunnelPorts {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
				Match:   flow.M().InPort(t).Set(flow.TunnelID, seg),
				Actions: classify(ClassTunnel, 0, ns.key, t), Goto: pipeline.L2Forward.ID()})
		}
		hosts := make([]string, 0, len(ns.hosts))
		for h := range ns.hosts {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			if t, ok := tunnels[h]; ok {
				remoteBuckets = append(remoteBuckets, flow.Bucket{Actions: []flow.Action{
					flow.SetField{F: flow.TunnelID, Value: seg}, flow.Output{Port: t}}})
			}
		}
	case model.NetVLAN:
		if phy != 0 {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
				Match:   flow.M().InPort(phy).Set(flow.VlanVID, flow.VlanPresent|seg),
				Actions: append([]flow.Action{flow.PopVLAN{}}, classify(ClassPhys, 0, ns.key, phy)...), Goto: pipeline.L2Forward.ID()})
			remoteBuckets = append(remoteBuckets, flow.Bucket{Actions: pushVLAN(seg, phy)})
		}
	case model.NetFlat:
		// Untagged on the physical network (vlan_vid=none: no 802.1Q
		// header), e.g. an external network on br-ex.
		if phy != 0 {
			b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
				Match:   flow.M().InPort(phy).Set(flow.VlanVID, 0),
				Actions: classify(ClassPhys, 0, ns.key, phy), Goto: pipeline.L2Forward.ID()})
			remoteBuckets = append(remoteBuckets, flow.Bucket{Actions: []flow.Action{flow.Output{Port: phy}}})
		}
	}
	var localBuckets []flow.Bucket
	for _, l := range ns.local {
		localBuckets = append(localBuckets, flow.Bucket{Actions: []flow.Action{
			pipeline.RegOutPort.Set(uint64(l.ofport)), flow.Resubmit{InPort: flow.PortInPort, Table: pipeline.ToVMACL.ID()}}})
	}
	all, local := floodGroupID(ns.key, false), floodGroupID(ns.key, true)
	b.floodGroups(all, append(append([]flow.Bucket{}, localBuckets...), remoteBuckets...))
	b.floodGroups(local, localBuckets)
	// Broadcast, multicast and unknown unicast: no dl_dst flow matched.
	for _, c := range []struct {
		class uint64
		group uint32
	}{{ClassVM, all}, {ClassTunnel, local}, {ClassPhys, local}} {
		b.add(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityDefault, Cookie: ck,
			Match:   pipeline.RegPortClass.Match(netMatch(ns.key), c.class),
			Actions: []flow.Action{flow.GroupAction{ID: c.group}}})
	}
	b.dhcpPunt(ns)
}

// dhcpPunt sends the network's local VMs' DHCP requests to the
// controller when any subnet runs DHCP: one flow per VM port, through
// its project's meter (pipeline.MeterDHCP), so one tenant's flood is
// dropped by its own meter.
func (b *builder) dhcpPunt(ns *netState) {
	if !slices.ContainsFunc(ns.Subnets, func(s *model.Subnet) bool { return s.EnableDHCP }) {
		return
	}
	for _, l := range ns.local {
		if l.ofport == 0 {
			continue
		}
		b.dhcpMeters = pipeline.MeterDHCP.Add(b.dhcpMeters, l.port.ProjectID)
		b.add(&flow.Flow{Table: pipeline.DHCP.ID(), Priority: pipeline.PriorityNormal, Cookie: portCookie(l.port.ID),
			Meter: pipeline.MeterDHCP.ID(l.port.ProjectID),
			Match: pipeline.RegInPort.Match(pipeline.RegPortClass.Match(netMatch(ns.key), ClassVM), uint64(l.ofport)).EthType(flow.EthTypeIPv4).
				Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPSrc, 68).Set(flow.UDPDst, 67),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}})
	}
}

func pushVLAN(vid uint64, port uint32) []flow.Action {
	return []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | vid}, flow.Output{Port: port}}
}

// localPort emits a bound port's flows (cookie: the port).
func (b *builder) localPort(ns *netState, l *located) {
	ck := portCookie(l.port.ID)
	o := l.ofport
	b.add(&flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
		Match: flow.M().InPort(o), Actions: classify(ClassVM, FlagFromVM, ns.key, o), Goto: pipeline.PortSecurity.ID()})
	ps := func(m flow.Match) {
		b.add(&flow.Flow{Table: pipeline.PortSecurity.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
			Match: m, Goto: pipeline.FromVMACL.ID()})
	}
	if !l.port.PortSecurity {
		ps(flow.M().InPort(o))
	} else {
		type pair struct {
			mac    flow.MAC
			ip     flow.IPv4
			prefix int
		}
		var pairs []pair
		gwOK := ns.mayHoldGateway(l.port)
		for _, ip := range l.port.FixedIPs {
			if v, err := flow.ParseIPv4(ip.IPAddress); err == nil {
				if ns.isGateway(v) && !gwOK {
					continue // a gateway address only for a router interface
				}
				pairs = append(pairs, pair{l.mac, v, 32})
			}
		}
		for _, ap := range l.port.AllowedAddressPairs {
			mac := l.mac
			if ap.MACAddress != "" {
				m, err := flow.ParseMAC(ap.MACAddress)
				if err != nil {
					continue
				}
				mac = m
			}
			pfx, err := netip.ParsePrefix(ap.IPAddress)
			if err != nil {
				a, err2 := netip.ParseAddr(ap.IPAddress)
				if err2 != nil {
					continue
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			if !pfx.Addr().Is4() {
				continue
			}
			a4 := pfx.Masked().Addr().As4()
			pairs = append(pairs, pair{mac, flow.IPv4(uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])), pfx.Bits()})
		}
		guarded := map[flow.IPv4]bool{}
		for _, p := range pairs {
			mask := uint64(0)
			if p.prefix < 32 {
				mask = uint64(^uint32(0) << (32 - p.prefix))
			}
			base := flow.M().InPort(o).EthSrc(p.mac)
			ps(base.EthType(flow.EthTypeIPv4).SetMasked(flow.IPv4Src, uint64(p.ip), mask))
			ps(base.EthType(flow.EthTypeARP).SetMasked(flow.ARPSpa, uint64(p.ip), mask))
			// An allowed address pair that covers a gateway address
			// does not let the port speak for the gateway.
			cover := flow.IPv4(0)
			if p.prefix > 0 {
				cover = flow.IPv4(^uint32(0) << (32 - p.prefix))
			}
			for _, gw := range ns.Gateways {
				if gwOK || guarded[gw] || gw&cover != p.ip&cover {
					continue
				}
				guarded[gw] = true
				for _, m := range []flow.Match{flow.M().InPort(o).EthType(flow.EthTypeIPv4).Set(flow.IPv4Src, uint64(gw)),
					flow.M().InPort(o).EthType(flow.EthTypeARP).Set(flow.ARPSpa, uint64(gw))} {
					b.add(&flow.Flow{Table: pipeline.PortSecurity.ID(), Priority: pipeline.PrioritySpecific, Cookie: ck, Match: m})
				}
			}
		}
		// DHCP before the port has an address.
		ps(flow.M().InPort(o).EthSrc(l.mac).EthType(flow.EthTypeIPv4).Set(flow.IPv4Src, 0).
			Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPSrc, 68).Set(flow.UDPDst, 67))
	}
	b.add(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
		Match:   netMatch(ns.key).EthDst(l.mac),
		Actions: []flow.Action{pipeline.RegOutPort.Set(uint64(o))}, Goto: pipeline.ToVMACL.ID()})
	b.add(&flow.Flow{Table: pipeline.Output.ID(), Priority: pipeline.PriorityNormal, Cookie: ck,
		Match: pipeline.RegOutPort.Match(nil, uint64(o)), Actions: []flow.Action{flow.Output{Port: o}}})
}

// remotePort sends known unicast for a port on another chassis straight
// to its tunnel (or the VLAN uplink); the other chassis applies its
// egress ACL.
func (b *builder) remotePort(ns *netState, l *located, phy uint32, tunnels map[string]uint32) {
	var acts []flow.Action
	switch ns.n.NetworkType {
	case model.NetGRE:
		t, ok := tunnels[l.chassis]
		if !ok {
			return
		}
		acts = []flow.Action{flow.SetField{F: flow.TunnelID, Value: uint64(ns.n.SegmentationID)}, flow.Output{Port: t}}
	case model.NetVLAN:
		if phy == 0 {
			return
		}
		acts = pushVLAN(uint64(ns.n.SegmentationID), phy)
	case model.NetFlat:
		if phy == 0 {
			return
		}
		acts = []flow.Action{flow.Output{Port: phy}}
	}
	b.add(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal, Cookie: portCookie(l.port.ID),
		Match: netMatch(ns.key).EthDst(l.mac), Actions: acts})
}

// arp answers ARP requests for a port's fixed IPs on its network.
func (b *builder) arp(ns *netState, l *located) {
	for _, ip := range l.port.FixedIPs {
		v, err := flow.ParseIPv4(ip.IPAddress)
		if err != nil || (ns.isGateway(v) && !ns.mayHoldGateway(l.port)) {
			continue
		}
		b.add(&flow.Flow{Table: pipeline.ARPResponder.ID(), Priority: pipeline.PriorityNormal, Cookie: portCookie(l.port.ID),
			Match: netMatch(ns.key).EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, uint64(v)),
			Actions: []flow.Action{
				flow.Move{Src: flow.EthSrc, Dst: flow.EthDst, NBits: 48},
				flow.SetField{F: flow.EthSrc, Value: uint64(l.mac)},
				flow.SetField{F: flow.ARPOp, Value: 2},
				flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48},
				flow.Move{Src: flow.ARPSpa, Dst: flow.ARPTpa, NBits: 32},
				flow.SetField{F: flow.ARPSha, Value: uint64(l.mac)},
				flow.SetField{F: flow.ARPSpa, Value: uint64(v)},
				flow.Output{Port: flow.PortInPort},
			}})
	}
}

var _ app.PacketInApp = (*App)(nil)
