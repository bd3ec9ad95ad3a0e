// Package binding computes the binding table every app shares: where each
// Neutron port is plugged (chassis, switch, OpenFlow port), each network's
// key, and, seen from one switch, the tunnels, uplinks and fabric paths
// that reach the others. It covers overlay mode (chassis br-ints joined by
// GRE tunnels and VLAN uplinks) and fabric mode (plain OpenFlow switches
// joined by LLDP links).
//
// It is pure: the model and topology snapshots in, an immutable Table
// out. The switch manager computes it once per snapshot and hands it to
// every app in app.Input, so no app computes bindings on its own.
//
// Binding rules (what a Neutron port may be bound to, whoever asks):
//
//   - by the interface's external_ids:iface-id (the chassis records'
//     Interfaces, ChassisIfaceIDs), else by the tap name (tap + id[:11]),
//     else by binding:profile port_name. A name or iface-id seen on two
//     chassis binds to the first chassis by name.
//   - never to a switch's own ports: LOCAL (the bridge), a tunnel
//     (gre-*), a bridge-mapping patch (phy-*, int-*) or a bridge of the
//     chassis's mappings, whatever binding:profile port_name or
//     external_ids:iface-id say (InfraPort);
//   - one OpenFlow port carries at most one Neutron port. When several
//     resolve to the same interface, the strongest claim keeps it: the
//     interface's own iface-id, then the tap name, then a binding:profile
//     port_name; between equal claims the older port (created_at, then
//     id). The others stay unbound and are reported in Table.Failures.
//   - another chassis's ports come from its record (ChassisSwitch), so a
//     switch's bindings do not depend on which peers are connected; a
//     chassis's own ports come from its live port description. When the
//     two differ (the agent has not published yet) that chassis gets its
//     own resolution (computed once, in Compute).
//   - a port bound to no interface but whose binding:host_id names a
//     chassis is on that chassis (reached by its tunnel), never local.
//   - on a fabric switch ports bind by tap name or port_name only, never
//     to a fabric link port, and only for networks the fabric carries
//     (VLAN).
package binding

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// Claim is how a port's binding was found, strongest first.
type Claim int

const (
	ClaimIfaceID Claim = iota // the interface's external_ids:iface-id names the port
	ClaimTapName              // the interface is the port's tap (tap + id[:11])
	ClaimProfile              // binding:profile port_name names the interface
	ClaimHostID               // no interface: binding:host_id names a chassis
)

func (c Claim) String() string {
	return [...]string{"iface-id", "tap name", "binding:profile port_name", "binding:host_id"}[c]
}

// Port is one Neutron port's binding.
type Port struct {
	Port *model.Port
	MAC  flow.MAC
	// Chassis holds the port ("" on a fabric switch, or unbound).
	Chassis string
	// DPID and OFPort locate its interface (zero when How is
	// ClaimHostID: known only by binding:host_id).
	DPID   uint64
	OFPort uint32
	How    Claim
}

// Network is a network the apps carry, with what every switch needs of it.
type Network struct {
	Network *model.Network
	// Key is the network's value in pipeline.RegNetwork (NetworkKey).
	Key uint32
	// Subnets are its IPv4 subnets; Gateways their gateway addresses.
	Subnets  []*model.Subnet
	Gateways []flow.IPv4
	// DHCPIP is the DHCP port's address per subnet id; DHCPMAC its MAC.
	DHCPIP  map[string]flow.IPv4
	DHCPMAC flow.MAC
	// routerIfaces is the set of ports that may hold a gateway address
	// (shared by every network; see RouterInterfaces).
	routerIfaces map[string]bool
}

// OnFabric reports whether the fabric carries the network (VLAN only).
func (n *Network) OnFabric() bool { return n.Network.NetworkType == model.NetVLAN }

// MayHoldGateway tells whether port p may use its network's gateway
// addresses: only a router interface a router of the model lists.
func (n *Network) MayHoldGateway(p *model.Port) bool { return n.routerIfaces[p.ID] }

// IsGateway tells whether v is a gateway address of the network.
func (n *Network) IsGateway(v flow.IPv4) bool { return slices.Contains(n.Gateways, v) }

// FloodGroup is the network's flood group (all members, or local ports
// only: split horizon for frames from a tunnel or an uplink).
func (n *Network) FloodGroup(localOnly bool) uint32 { return FloodGroup(n.Key, localOnly) }

// NetworkKey is a network's value in pipeline.RegNetwork: the GRE key for
// GRE networks, 1<<23 | VLAN id for VLAN networks (so VLAN 100 and GRE key
// 100 never collide), and for a flat network (untagged on its physical
// network's bridge mapping; Neutron allows one per physical network)
// 1<<23 | 1<<12 | a 12-bit hash of the physical network name, which no
// VLAN key reaches (VLAN ids are 12 bits; flood group ids stay below
// ChainGroupBase). Two flat networks whose keys collide: the one with the
// smaller id is carried (indexNetworks). A flat network's conntrack zone
// (pipeline.ZoneSG) may equal a VLAN network's. ok is false for networks
// no app carries.
func NetworkKey(n *model.Network) (key uint32, ok bool) {
	switch n.NetworkType {
	case model.NetFlat:
		if n.PhysicalNetwork == "" {
			return 0, false
		}
		return FlatKey(n.PhysicalNetwork), true
	case model.NetGRE:
		if n.SegmentationID <= 0 || n.SegmentationID >= 1<<23 {
			return 0, false
		}
		return uint32(n.SegmentationID), true
	case model.NetVLAN:
		if n.SegmentationID <= 0 || n.SegmentationID >= 4095 || n.PhysicalNetwork == "" {
			return 0, false
		}
		return 1<<23 | uint32(n.SegmentationID), true
	}
	return 0, false
}

// FlatKey is the network key of the flat network on physical network pn
// (see NetworkKey).
func FlatKey(pn string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(pn); i++ {
		h ^= uint32(pn[i])
		h *= 16777619
	}
	return 1<<23 | 1<<12 | h&0xfff
}

// FloodGroup ids live in isolation's group range
// (pipeline.GroupBase(pipeline.AppIsolation)): two per network key,
// key<<1 (flood to all members) and key<<1|1 (local ports only).
func FloodGroup(key uint32, localOnly bool) uint32 {
	id := pipeline.GroupBase(pipeline.AppIsolation) + key<<1
	if localOnly {
		id |= 1
	}
	return id
}

// ChainGroupBase starts the ids of chained flood groups (a network with
// more ports on one switch than pipeline.MaxGroupBuckets): above every
// network's flood groups (VLAN and flat keys end at (1<<23|0x1fff)<<1|1 < 1<<24 +
// 1<<13), inside isolation's range.
var ChainGroupBase = pipeline.GroupBase(pipeline.AppIsolation) + 1<<24 + 1<<14

// Failure is a losing claim on an interface another port keeps.
type Failure struct {
	Port, BoundPort string
	By, BoundBy     Claim
	Chassis         string
	DPID            uint64
	OFPort          uint32
	Interface       string
}

// Key identifies a failure (the pair of ports and the interface).
func (f Failure) Key() string {
	return fmt.Sprintf("%x/%d/%s/%s", f.DPID, f.OFPort, f.Port, f.BoundPort)
}

// resolution is the bindings as seen from one set of port lists.
type resolution struct {
	ports     map[string]*Port
	byNetwork map[string][]*Port // every port with a MAC, model order
}

// Table is the binding table of one model and topology snapshot.
// Immutable: share it freely.
type Table struct {
	// Chassis are the model's chassis (model order).
	Chassis []*model.Chassis
	byDPID  map[uint64]*model.Chassis
	// Networks are the networks with a key, by id; NetworkIDs sorted.
	Networks   map[string]*Network
	NetworkIDs []string
	// Failures are the losing claims (for the caller to log).
	Failures []Failure
	// RouterIfaces is RouterInterfaces of the snapshot, computed once
	// for every app (never nil).
	RouterIfaces map[string]bool

	overlay *resolution            // other chassis's records (and live lists equal to them)
	own     map[uint64]*resolution // a chassis whose live port list differs from its record

	// claimed are the interface names any Neutron port claims (tap name
	// or binding:profile port_name), whatever its network.
	claimed map[string]bool

	// Fabric mode (nil when the topology has no fabric switch).
	Fabric         *topology.Fabric
	FabricSwitches []uint64
	fabric         *resolution
}

// Options tune Compute.
type Options struct {
	// IfaceIDs resolves external_ids:iface-id (nil: ChassisIfaceIDs).
	IfaceIDs IfaceIDs
}

// Compute builds the table with the default options.
func Compute(m *model.Snapshot, topo *topology.Snapshot) *Table {
	return ComputeWith(m, topo, Options{})
}

// ComputeWith builds the table of a model and topology snapshot.
func ComputeWith(m *model.Snapshot, topo *topology.Snapshot, o Options) *Table {
	if o.IfaceIDs == nil {
		o.IfaceIDs = ChassisIfaceIDs{}
	}
	t := &Table{byDPID: map[uint64]*model.Chassis{}, Networks: map[string]*Network{}, RouterIfaces: map[string]bool{}}
	if m == nil {
		return t
	}
	t.Chassis = m.Chassis()
	for _, c := range t.Chassis {
		if dp, err := c.DatapathID(); err == nil {
			if _, dup := t.byDPID[dp]; !dup {
				t.byDPID[dp] = c
			}
		}
	}
	ports := m.Ports()
	t.indexNetworks(m, ports)
	t.claimed = make(map[string]bool, len(ports))
	for _, p := range ports {
		t.claimed[names.VMPortName(p.ID)] = true
		if pn, _ := p.Profile["port_name"].(string); pn != "" {
			t.claimed[pn] = true
		}
	}

	// Overlay: every chassis from its record (its live switch when it
	// publishes no ports).
	recorded := map[string]*topology.Switch{}
	for _, c := range t.Chassis {
		dp, err := c.DatapathID()
		if err != nil {
			continue
		}
		if sw := ChassisSwitch(c, dp, topo); sw != nil {
			recorded[c.Name] = sw
		}
	}
	t.overlay = t.resolveOverlay(ports, recorded, o.IfaceIDs)
	// A chassis whose live port list differs from its record sees its own
	// ports as they are.
	if topo != nil {
		for _, c := range t.Chassis {
			dp, err := c.DatapathID()
			if err != nil || t.byDPID[dp] != c {
				continue
			}
			live := topo.Switches[dp]
			if live == nil || samePorts(c, live, recorded[c.Name]) {
				continue
			}
			view := make(map[string]*topology.Switch, len(recorded))
			for k, v := range recorded {
				view[k] = v
			}
			view[c.Name] = live
			if t.own == nil {
				t.own = map[uint64]*resolution{}
			}
			t.own[dp] = t.resolveOverlay(ports, view, o.IfaceIDs)
		}
	}
	t.computeFabric(m, topo, ports)
	return t
}

// samePorts reports whether two port lists of chassis c give the same
// bindings: the same ports no Neutron port is barred from (InfraPort), by
// name and number. (A record lists the bridge's own interface at OVS's
// ofport 65534 and the live description at OFPP_LOCAL: both are infra.)
func samePorts(c *model.Chassis, a, b *topology.Switch) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	n := 0
	for no, p := range a.Ports {
		if InfraPort(c, p) {
			continue
		}
		n++
		if q, ok := b.Ports[no]; !ok || q.Name != p.Name {
			return false
		}
	}
	for _, p := range b.Ports {
		if !InfraPort(c, p) {
			n--
		}
	}
	return n == 0
}

// RouterInterfaces returns the ports that may hold a subnet's gateway
// address: a port a router lists in its interfaces, whose device_id is
// that router and whose device_owner is a router interface. What a port
// claims (its device_owner alone) is not enough: a tenant could create a
// port as a "router interface" with the gateway address on a shared
// network, then change its device_owner.
func RouterInterfaces(m *model.Snapshot) map[string]bool {
	ifaces := map[string]bool{}
	for _, rt := range m.Routers() {
		for _, pid := range rt.Interfaces {
			r, ok := m.Get(model.KindPort, pid)
			if !ok {
				continue
			}
			if p, ok := r.(*model.Port); ok && p.DeviceID == rt.ID && strings.HasPrefix(p.DeviceOwner, "network:router_interface") {
				ifaces[pid] = true
			}
		}
	}
	return ifaces
}

// indexNetworks collects the networks with a key, with their IPv4
// subnets and DHCP port addresses.
func (t *Table) indexNetworks(m *model.Snapshot, ports []*model.Port) {
	ifaces := RouterInterfaces(m)
	t.RouterIfaces = ifaces
	keys := map[uint32]bool{}
	nets := m.Networks()
	sort.Slice(nets, func(i, j int) bool { return nets[i].ID < nets[j].ID })
	for _, n := range nets {
		if k, ok := NetworkKey(n); ok && !keys[k] {
			keys[k] = true
			t.Networks[n.ID] = &Network{Network: n, Key: k, DHCPIP: map[string]flow.IPv4{}, routerIfaces: ifaces}
			t.NetworkIDs = append(t.NetworkIDs, n.ID)
		}
	}
	sort.Strings(t.NetworkIDs)
	for _, s := range m.Subnets() {
		if ns := t.Networks[s.NetworkID]; ns != nil && s.IPVersion != 6 {
			ns.Subnets = append(ns.Subnets, s)
			if gw, err := flow.ParseIPv4(s.GatewayIP); err == nil && gw != 0 {
				ns.Gateways = append(ns.Gateways, gw)
			}
		}
	}
	for _, p := range ports {
		ns := t.Networks[p.NetworkID]
		if ns == nil || p.DeviceOwner != "network:dhcp" {
			continue
		}
		if mac, err := flow.ParseMAC(p.MACAddress); err == nil {
			ns.DHCPMAC = mac
		}
		for _, ip := range p.FixedIPs {
			if v, err := flow.ParseIPv4(ip.IPAddress); err == nil {
				ns.DHCPIP[ip.SubnetID] = v
			}
		}
	}
}

// at is an interface a claim names.
type at struct {
	chassis string // "" on a fabric switch
	dpid    uint64
	port    topology.Port
}

// claim is one Neutron port's claim on an interface.
type claim struct {
	port *model.Port
	how  Claim
	at   at
}

// resolveOverlay binds the ports of the carried networks to the chassis
// switches given (by chassis name).
func (t *Table) resolveOverlay(ports []*model.Port, switches map[string]*topology.Switch, ids IfaceIDs) *resolution {
	n := 0
	for _, sw := range switches {
		n += len(sw.Ports)
	}
	byName, byIface := make(map[string]at, n), map[string]at{}
	for _, c := range t.Chassis {
		sw := switches[c.Name]
		if sw == nil {
			continue
		}
		for _, p := range sw.Ports {
			if InfraPort(c, p) {
				continue
			}
			if _, dup := byName[p.Name]; !dup {
				byName[p.Name] = at{c.Name, sw.DPID, p}
			}
			if id := ids.IfaceID(c, p); id != "" {
				if _, dup := byIface[id]; !dup {
					byIface[id] = at{c.Name, sw.DPID, p}
				}
			}
		}
	}
	var claims []claim
	for _, p := range ports {
		if t.Networks[p.NetworkID] == nil {
			continue
		}
		if b, ok := byIface[p.ID]; ok {
			claims = append(claims, claim{p, ClaimIfaceID, b})
		} else if b, ok := byName[names.VMPortName(p.ID)]; ok {
			claims = append(claims, claim{p, ClaimTapName, b})
		} else if pn, _ := p.Profile["port_name"].(string); pn != "" {
			if b, ok := byName[pn]; ok {
				claims = append(claims, claim{p, ClaimProfile, b})
			}
		}
	}
	won := t.settle(claims)
	known := map[string]bool{}
	for _, c := range t.Chassis {
		known[c.Name] = true
	}
	r := &resolution{ports: make(map[string]*Port, len(ports)), byNetwork: make(map[string][]*Port, len(t.Networks))}
	for _, p := range ports {
		if t.Networks[p.NetworkID] == nil {
			continue
		}
		mac, err := flow.ParseMAC(p.MACAddress)
		if err != nil {
			continue
		}
		bp := &Port{Port: p, MAC: mac}
		if c, ok := won[p.ID]; ok {
			bp.Chassis, bp.DPID, bp.OFPort, bp.How = c.at.chassis, c.at.dpid, c.at.port.No, c.how
		} else if p.HostID != "" && known[p.HostID] {
			bp.Chassis, bp.How = p.HostID, ClaimHostID
		}
		r.ports[p.ID] = bp
		r.byNetwork[p.NetworkID] = append(r.byNetwork[p.NetworkID], bp)
	}
	return r
}

func createdAt(p *model.Port) time.Time {
	t, _ := time.Parse(time.RFC3339, p.CreatedAt) // zero (oldest) if absent
	return t
}

// stronger orders two claims on the same interface.
func stronger(a, b claim) bool {
	if a.how != b.how {
		return a.how < b.how
	}
	ta, tb := createdAt(a.port), createdAt(b.port)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.port.ID < b.port.ID
}

// settle keeps, per interface, the strongest claim and returns the
// winners by Neutron port id; the losers go to t.Failures (once per
// pair of ports and interface).
func (t *Table) settle(claims []claim) map[string]claim {
	type iface struct {
		dpid uint64
		no   uint32
	}
	best := map[iface]claim{}
	var lost []claim
	// Deterministic regardless of the model's iteration order.
	sort.Slice(claims, func(i, j int) bool { return claims[i].port.ID < claims[j].port.ID })
	for _, c := range claims {
		k := iface{c.at.dpid, c.at.port.No}
		old, ok := best[k]
		switch {
		case !ok:
			best[k] = c
		case stronger(c, old):
			best[k] = c
			lost = append(lost, old)
		default:
			lost = append(lost, c)
		}
	}
	out := make(map[string]claim, len(best))
	for _, c := range best {
		out[c.port.ID] = c
	}
	for _, l := range lost {
		w := best[iface{l.at.dpid, l.at.port.No}]
		f := Failure{Port: l.port.ID, By: l.how, BoundPort: w.port.ID, BoundBy: w.how, Chassis: l.at.chassis,
			DPID: l.at.dpid, OFPort: l.at.port.No, Interface: l.at.port.Name}
		if !slices.ContainsFunc(t.Failures, func(g Failure) bool { return g.Key() == f.Key() }) {
			t.Failures = append(t.Failures, f)
		}
	}
	return out
}

// computeFabric builds the fabric of the switches that are no chassis's
// and binds the fabric networks' ports to their ports.
func (t *Table) computeFabric(m *model.Snapshot, topo *topology.Snapshot, ports []*model.Port) {
	if topo == nil {
		return
	}
	byName := map[string]at{}
	for _, dp := range topo.DPIDs() {
		if t.byDPID[dp] != nil {
			continue
		}
		t.FabricSwitches = append(t.FabricSwitches, dp)
		for _, p := range topo.Switches[dp].Ports {
			if InfraPort(nil, p) {
				continue // LOCAL, tunnels, patches: never a VM's
			}
			if _, dup := byName[p.Name]; !dup {
				byName[p.Name] = at{dpid: dp, port: p}
			}
		}
	}
	if len(t.FabricSwitches) == 0 {
		return
	}
	var links []topology.Link
	for _, l := range m.Links() {
		links = append(links, topology.Link{A: topology.End{DPID: l.SrcDPID, Port: l.SrcPort}, B: topology.End{DPID: l.DstDPID, Port: l.DstPort}})
	}
	alive := func(e topology.End) bool {
		sw := topo.Switches[e.DPID]
		if sw == nil {
			return false
		}
		p, ok := sw.Ports[e.Port]
		return ok && p.Up
	}
	t.Fabric = topology.NewFabric(t.FabricSwitches, links, alive)
	var claims []claim
	for _, p := range ports {
		if ns := t.Networks[p.NetworkID]; ns == nil || !ns.OnFabric() {
			continue
		}
		c := claim{port: p, how: ClaimTapName}
		var ok bool
		c.at, ok = byName[names.VMPortName(p.ID)]
		if !ok {
			if pn, _ := p.Profile["port_name"].(string); pn != "" {
				c.how = ClaimProfile
				c.at, ok = byName[pn]
			}
		}
		if ok && !t.Fabric.IsLinkPort(c.at.dpid, c.at.port.No) {
			claims = append(claims, c)
		}
	}
	won := t.settle(claims)
	r := &resolution{ports: map[string]*Port{}, byNetwork: map[string][]*Port{}}
	for _, p := range ports {
		ns := t.Networks[p.NetworkID]
		if ns == nil || !ns.OnFabric() {
			continue
		}
		mac, err := flow.ParseMAC(p.MACAddress)
		if err != nil {
			continue
		}
		c, ok := won[p.ID]
		if !ok {
			continue
		}
		bp := &Port{Port: p, MAC: mac, DPID: c.at.dpid, OFPort: c.at.port.No, How: c.how}
		r.ports[p.ID] = bp
		r.byNetwork[p.NetworkID] = append(r.byNetwork[p.NetworkID], bp)
	}
	t.fabric = r
}

// ClaimedPorts are sw's ports that a Neutron port claims by tap name or
// binding:profile port_name, on any network and before settlement (a
// superset of what binds): a plain switch's tenant ports (nil: none).
func (t *Table) ClaimedPorts(sw *topology.Switch) map[uint32]bool {
	var out map[uint32]bool
	for no, p := range sw.Ports {
		if t.claimed[p.Name] && no != flow.PortLocal {
			if out == nil {
				out = map[uint32]bool{}
			}
			out[no] = true
		}
	}
	return out
}

// ChassisOf returns the chassis whose br-int has datapath id dpid (nil:
// a fabric switch).
func (t *Table) ChassisOf(dpid uint64) *model.Chassis { return t.byDPID[dpid] }

// ChassisOfPort is the chassis a Neutron port is bound to as the chassis
// records say ("" when unbound, or placed only by binding:host_id). The
// node agent asks it for its own ports (snat leases).
func (t *Table) ChassisOfPort(id string) string {
	if t.overlay == nil {
		return ""
	}
	p := t.overlay.ports[id]
	if p == nil || p.How == ClaimHostID {
		return ""
	}
	return p.Chassis
}

// View is the binding table seen from one switch.
type View struct {
	Table *Table
	// Switch is the switch's live port description.
	Switch *topology.Switch
	// Chassis is the chassis the switch is the br-int of (nil: a fabric
	// switch).
	Chassis *model.Chassis
	// Ports are the bindings seen from this switch, by Neutron port id;
	// ByNetwork the bound (or host-id placed) ports of each network, with a
	// MAC, in model order (on a fabric switch: only ports bound on the
	// fabric).
	Ports     map[string]*Port
	ByNetwork map[string][]*Port
	// Overlay: the tunnel port toward each peer chassis (by name) and all
	// of them sorted; the uplink port of each physical network the
	// chassis maps.
	Tunnels     map[string]uint32
	TunnelPorts []uint32
	Uplinks     map[string]uint32
	// Fabric: the switch's fabric link ports.
	LinkPorts []uint32
}

// Switch returns the view of switch sw (its live port description).
func (t *Table) Switch(sw *topology.Switch) *View {
	v := &View{Table: t, Switch: sw, Chassis: t.byDPID[sw.DPID]}
	if v.Chassis == nil {
		if t.fabric != nil {
			v.Ports, v.ByNetwork = t.fabric.ports, t.fabric.byNetwork
			v.LinkPorts = t.Fabric.LinkPorts(sw.DPID)
		}
		return v
	}
	r := t.overlay
	if o := t.own[sw.DPID]; o != nil {
		r = o
	}
	if r != nil {
		v.Ports, v.ByNetwork = r.ports, r.byNetwork
	}
	local := make(map[string]uint32, len(sw.Ports))
	for _, p := range sw.Ports {
		local[p.Name] = p.No
	}
	v.Tunnels = map[string]uint32{}
	for _, c := range t.Chassis {
		if c.Name == v.Chassis.Name {
			continue
		}
		if no, ok := local[names.TunnelPortName(c.Name)]; ok {
			v.Tunnels[c.Name] = no
			v.TunnelPorts = append(v.TunnelPorts, no)
		}
	}
	sort.Slice(v.TunnelPorts, func(i, j int) bool { return v.TunnelPorts[i] < v.TunnelPorts[j] })
	v.Uplinks = map[string]uint32{}
	for pn := range v.Chassis.Mappings {
		if no, ok := local[names.PhysPortName(pn)]; ok {
			v.Uplinks[pn] = no
		}
	}
	return v
}

// Local reports whether p's interface is on this switch.
func (v *View) Local(p *Port) bool {
	if v.Chassis == nil {
		return p.OFPort != 0 && p.DPID == v.Switch.DPID
	}
	return p.Chassis == v.Chassis.Name && p.How != ClaimHostID
}

// Remote reports whether p is on another chassis or fabric switch.
func (v *View) Remote(p *Port) bool {
	if v.Chassis == nil {
		return p.OFPort != 0 && p.DPID != v.Switch.DPID
	}
	return p.Chassis != "" && p.Chassis != v.Chassis.Name
}

// Uplink is the uplink of VLAN or flat network n on this chassis (0:
// none: not a provider network, its physical network not mapped here, or
// no patch port). A VLAN network's frames cross it tagged, a flat
// network's untagged.
func (v *View) Uplink(n *Network) uint32 {
	if v.Chassis == nil || (n.Network.NetworkType != model.NetVLAN && n.Network.NetworkType != model.NetFlat) {
		return 0
	}
	return v.Uplinks[n.Network.PhysicalNetwork]
}
