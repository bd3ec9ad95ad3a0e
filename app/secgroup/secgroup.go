// Package secgroup is the security group app: Neutron's security groups,
// enforced statefully in flows on each port's own hypervisor. It writes
// the two ACL tables the pipeline reserves: traffic from a VM (the VM's
// egress rules) after port security, traffic to a VM (its ingress rules)
// after L2 forwarding. See README.md for the flow layout and the limits.
// It is pure: the model snapshot and the topology in, flows out.
package secgroup

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// The tables, read from the VM's side.
var (
	fromVM = pipeline.FromVMACL // the VM's egress rules
	toVM   = pipeline.ToVMACL   // the VM's ingress rules
)

// MarkRevoked is the ct_mark bit of a connection no rule allows any more:
// its packets drop in both directions until conntrack forgets it.
const MarkRevoked = 1

// Priorities within the two tables (see README.md).
const (
	prioGuard    = pipeline.PriorityGuard         // invalid, revoked, DHCP server spoofing
	prioPass     = pipeline.PrioritySpecific      // ARP, DHCP, replies and related
	prioRule     = pipeline.PriorityNormal        // one flow per rule match
	prioClassify = pipeline.PriorityDefault + 200 // + prefix length: remote address classification, conntrack
	prioRevoke   = pipeline.PriorityDefault + 2   // established, no rule allows it any more
	prioDenied   = pipeline.PriorityDefault + 1   // classified and tracked, no rule allows it
	prioDropAll  = pipeline.PriorityDefault       // anything else of a filtered port
)

// Remote group bits (pipeline.RegSGRemote): a packet's remote address is
// classified once per table into the remote groups it belongs to, one bit
// per group referenced by a rule in that direction on the switch, so that
// a rule with a remote group of N ports costs one flow per local port and
// the group costs N flows (not N per rule per port). Groups past
// maxGroupBits in one direction fall back to one flow per address.
const (
	maxGroupBits = 30
	flagFromVM   = 1 << 30 // classified in the from-VM table
	flagToVM     = 1 << 31 // classified in the to-VM table
	groupMask    = 1<<maxGroupBits - 1
)

// groupBits is how many remote groups get a bit (tests lower it to
// exercise the per-address fallback).
var groupBits = maxGroupBits

// App is the security group app.
type App struct{}

// New makes the app.
func New() *App { return &App{} }

func (*App) Name() string       { return "secgroup" }
func (*App) ID() pipeline.AppID { return pipeline.AppSecGroup }

// Zone is the conntrack zone of a network key (pipeline.ZoneSG: GRE keys
// map into 1..0x6fff, VLAN networks to 0x7000 | VLAN id).
func Zone(key uint32) uint16 { return pipeline.ZoneSG(key) }

// Filtered reports whether the app filters a port: port security on and
// not a network-owned port (router interfaces, DHCP ports), as Neutron.
func Filtered(p *model.Port) bool {
	return p.PortSecurity && !strings.HasPrefix(p.DeviceOwner, "network:")
}

// Desired computes the switch's security group flows.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	var ports []boundPort
	for _, bp := range localPorts(in) {
		if Filtered(bp.port) {
			ports = append(ports, bp)
		}
	}
	if len(ports) == 0 {
		return d, nil
	}
	ix := index(in.Model)
	b := &builder{seen: map[string]bool{}, clauses: map[string]*flow.Flow{}, done: map[uint32]bool{},
		conjIDs: map[uint8]map[string]uint32{}, conjUsed: map[uint8]map[uint32]bool{}}
	for _, ingress := range []bool{false, true} {
		dr := newDirection(ix, ports, ingress)
		b.classify(ix, dr, ports)
		for _, bp := range ports {
			b.port(ix, dr, bp)
		}
	}
	b.finish()
	d.Flows = b.flows
	return d, nil
}

// direction is one of the two tables with its remote group bits.
type direction struct {
	t       *pipeline.Table
	ingress bool // the VM's ingress rules (traffic to the VM)
	flag    uint64
	bit     map[string]uint // remote group -> bit
}

func newDirection(ix *modelIndex, ports []boundPort, ingress bool) *direction {
	dr := &direction{t: fromVM, flag: flagFromVM, ingress: ingress, bit: map[string]uint{}}
	if ingress {
		dr.t, dr.flag = toVM, flagToVM
	}
	refs := map[string]bool{}
	for _, bp := range ports {
		for _, g := range bp.port.SecurityGroups {
			for _, r := range ix.rules[g] {
				if (r.Direction == "ingress") == ingress && r.RemoteGroupID != "" && len(ix.addrs[r.RemoteGroupID]) > 0 {
					refs[r.RemoteGroupID] = true
				}
			}
		}
	}
	ids := make([]string, 0, len(refs))
	for g := range refs {
		ids = append(ids, g)
	}
	sort.Strings(ids)
	for i, g := range ids {
		if i < groupBits {
			dr.bit[g] = uint(i)
		}
	}
	return dr
}

func (dr *direction) remoteField() flow.Field {
	if dr.ingress {
		return flow.IPv4Src
	}
	return flow.IPv4Dst
}

// classified matches packets this table has classified and tracked.
func (dr *direction) classified(m flow.Match) flow.Match {
	return m.SetMasked(flow.Reg7, dr.flag, dr.flag)
}

// classify emits, per network with filtered ports here, the flows that
// set the remote group bits from the packet's remote address and send it
// through conntrack in the network's zone, back to this table. A longer
// prefix wins and carries the bits of every shorter prefix covering it.
func (b *builder) classify(ix *modelIndex, dr *direction, ports []boundPort) {
	groups := make([]string, 0, len(dr.bit))
	for g := range dr.bit {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	bits := map[prefix]uint64{}
	var short []prefix // prefixes shorter than /32
	for _, g := range groups {
		for _, a := range ix.addrs[g] {
			if _, ok := bits[a]; !ok && a.bits < 32 {
				short = append(short, a)
			}
			bits[a] |= 1 << dr.bit[g]
		}
	}
	addrs := make([]prefix, 0, len(bits))
	for a := range bits {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool {
		if addrs[i].ip != addrs[j].ip {
			return addrs[i].ip < addrs[j].ip
		}
		return addrs[i].bits < addrs[j].bits
	})
	all := map[prefix]uint64{}
	for _, a := range addrs {
		v := bits[a]
		for _, s := range short {
			if s.bits < a.bits && uint64(a.ip)&s.mask() == uint64(s.ip) {
				v |= bits[s]
			}
		}
		all[a] = v
	}
	keys := map[uint32]bool{}
	for _, bp := range ports {
		if keys[bp.key] {
			continue
		}
		keys[bp.key] = true
		zone := Zone(bp.key)
		net := pipeline.RegNetwork.Match(nil, uint64(bp.key)).EthType(flow.EthTypeIPv4).SetMasked(flow.Reg7, 0, dr.flag)
		load := func(v uint64) []flow.Action {
			// Two loads: a reg_load's bits must be contiguous.
			return []flow.Action{flow.SetField{F: flow.Reg7, Value: v, Mask: groupMask},
				flow.SetField{F: flow.Reg7, Value: dr.flag, Mask: dr.flag},
				flow.CT{Zone: zone, Table: dr.t.ID()}}
		}
		ck := cookie(fmt.Sprintf("network-key:%d", bp.key))
		b.add(&flow.Flow{Table: dr.t.ID(), Priority: prioClassify - 1, Cookie: ck, Match: net, Actions: load(0)})
		for _, a := range addrs {
			b.add(&flow.Flow{Table: dr.t.ID(), Priority: prioClassify + uint16(a.bits), Cookie: cookie(fmt.Sprintf("address:%s/%d", a.ip, a.bits)),
				Match: net.SetMasked(dr.remoteField(), uint64(a.ip), a.mask()), Actions: load(all[a])})
		}
	}
}

// modelIndex holds the rules by group and the addresses of each group's
// members.
type modelIndex struct {
	rules map[string][]*model.SGRule // group id -> rules, sorted by id
	addrs map[string][]prefix        // group id -> IPv4 members' addresses
}

type prefix struct {
	ip   flow.IPv4
	bits int
}

func (p prefix) mask() uint64 {
	if p.bits >= 32 {
		return 0
	}
	return uint64(^uint32(0) << (32 - p.bits))
}

func parsePrefix(s string) (prefix, bool) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		a, err2 := netip.ParseAddr(s)
		if err2 != nil {
			return prefix{}, false
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if !pfx.Addr().Is4() {
		return prefix{}, false
	}
	a4 := pfx.Masked().Addr().As4()
	return prefix{flow.IPv4(uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])), pfx.Bits()}, true
}

func index(m *model.Snapshot) *modelIndex {
	ix := &modelIndex{rules: map[string][]*model.SGRule{}, addrs: map[string][]prefix{}}
	for _, r := range m.List(model.KindSGRule) {
		if sr, ok := r.(*model.SGRule); ok {
			ix.rules[sr.SecurityGroupID] = append(ix.rules[sr.SecurityGroupID], sr)
		}
	}
	for _, rs := range ix.rules {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	}
	seen := map[string]map[prefix]bool{}
	ports := m.Ports()
	sort.Slice(ports, func(i, j int) bool { return ports[i].ID < ports[j].ID })
	for _, p := range ports {
		var own []prefix
		for _, ip := range p.FixedIPs {
			if v, ok := parsePrefix(ip.IPAddress); ok {
				own = append(own, v)
			}
		}
		for _, ap := range p.AllowedAddressPairs {
			if v, ok := parsePrefix(ap.IPAddress); ok {
				own = append(own, v)
			}
		}
		for _, g := range p.SecurityGroups {
			if seen[g] == nil {
				seen[g] = map[prefix]bool{}
			}
			for _, v := range own {
				if !seen[g][v] {
					seen[g][v] = true
					ix.addrs[g] = append(ix.addrs[g], v)
				}
			}
		}
	}
	for _, as := range ix.addrs {
		sort.Slice(as, func(i, j int) bool {
			if as[i].ip != as[j].ip {
				return as[i].ip < as[j].ip
			}
			return as[i].bits < as[j].bits
		})
	}
	return ix
}

// builder accumulates flows, keeping the first of flows with the same key
// (two rules that compile to the same match).
type builder struct {
	flows    []*flow.Flow
	seen     map[string]bool
	clauses  map[string]*flow.Flow // conjunctive clause flows by key
	done     map[uint32]bool       // conjunctions whose clauses are out
	conjIDs  map[uint8]map[string]uint32
	conjUsed map[uint8]map[uint32]bool
}

func (b *builder) add(f *flow.Flow) {
	f.Match = f.Match.Normalize()
	k := f.Key()
	if b.seen[k] {
		return
	}
	b.seen[k] = true
	b.flows = append(b.flows, f)
}

func cookie(id string) uint64 { return pipeline.Cookie(pipeline.AppSecGroup, pipeline.ObjectID(id)) }

func next(t *pipeline.Table) uint8 { return pipeline.ByName(t.Next[0]).ID() }

// state matches the port's packets classified and tracked here with
// the ct_state bits on set and off clear.
func (dr *direction) state(base flow.Match, on, off uint64) flow.Match {
	on |= flow.CTTracked
	return dr.classified(base).SetMasked(flow.CTState, on, on|off)
}

// port emits a filtered port's flows in one direction.
func (b *builder) port(ix *modelIndex, dr *direction, bp boundPort) {
	ck := cookie(bp.port.ID)
	zone := Zone(bp.key)
	base := pipeline.RegInPort.Match(nil, uint64(bp.ofport))
	if dr.ingress {
		base = pipeline.RegOutPort.Match(nil, uint64(bp.ofport))
	}
	t := dr.t.ID()
	pass := next(dr.t)
	udp := func(sport, dport uint64) flow.Match {
		return base.EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPSrc, sport).Set(flow.UDPDst, dport)
	}
	// ARP and DHCP are never filtered (Neutron's base rules); a VM never
	// answers as a DHCP server.
	b.add(&flow.Flow{Table: t, Priority: prioPass, Cookie: ck, Match: base.EthType(flow.EthTypeARP), Goto: pass})
	if dr.ingress {
		b.add(&flow.Flow{Table: t, Priority: prioPass, Cookie: ck, Match: udp(67, 68), Goto: pass})
	} else {
		b.add(&flow.Flow{Table: t, Priority: prioPass, Cookie: ck, Match: udp(68, 67), Goto: pass})
		b.add(&flow.Flow{Table: t, Priority: prioGuard, Cookie: ck, Match: udp(67, 68)})
	}
	// Conntrack: invalid and revoked connections drop; replies and
	// related packets of allowed connections pass.
	b.add(&flow.Flow{Table: t, Priority: prioGuard, Cookie: ck, Match: dr.state(base, flow.CTInvalid, 0)})
	b.add(&flow.Flow{Table: t, Priority: prioGuard, Cookie: ck, Match: dr.state(base, 0, 0).SetMasked(flow.CTMark, MarkRevoked, MarkRevoked)})
	b.add(&flow.Flow{Table: t, Priority: prioPass, Cookie: ck, Match: dr.state(base, flow.CTEstablished|flow.CTReply, 0), Goto: pass})
	b.add(&flow.Flow{Table: t, Priority: prioPass, Cookie: ck, Match: dr.state(base, flow.CTRelated, 0), Goto: pass})
	// An established connection no rule allows any more is marked
	// revoked, then dropped; other tracked packets no rule allowed drop;
	// whatever else (not IPv4 nor ARP) drops.
	// (OVS refuses ct() in a flow that does not match an IP dl_type.)
	b.add(&flow.Flow{Table: t, Priority: prioRevoke, Cookie: ck, Match: dr.state(base, flow.CTEstablished, flow.CTReply).EthType(flow.EthTypeIPv4),
		Actions: []flow.Action{flow.CT{Commit: true, Zone: zone, Table: flow.CTNoTable,
			Exec: []flow.SetField{{F: flow.CTMark, Value: MarkRevoked}}}}})
	b.add(&flow.Flow{Table: t, Priority: prioDenied, Cookie: ck, Match: dr.classified(base)})
	b.add(&flow.Flow{Table: t, Priority: prioDropAll, Cookie: ck, Match: base})
	// The rules of the port's groups in this direction: the port is
	// clause 1 of each rule's conjunction in its zone (see rule).
	groups := append([]string{}, bp.port.SecurityGroups...)
	sort.Strings(groups)
	for _, g := range groups {
		for _, r := range ix.rules[g] {
			if (r.Direction == "ingress") != dr.ingress {
				continue
			}
			b.rule(ix, dr, r, zone, dr.state(base, 0, flow.CTReply).EthType(flow.EthTypeIPv4), ck)
		}
	}
}

// rule emits one rule for one port (portMatch: the port's packets,
// classified, tracked, not replies) as an OVS conjunctive match, so that
// nothing multiplies: clause 1 is the rule's ports (one flow per port,
// shared by all the rules of that port), clause 2 the rule's protocol
// and ports (one flow per port mask), clause 3, if needed, its remote
// addresses (one flow per address). The conjunction's id is the rule's
// in the port's zone; the flow matching that conj_id commits to the zone's
// conntrack and passes. Clause flows that several rules share (same match)
// are one flow carrying one conjunction action per rule.
func (b *builder) rule(ix *modelIndex, dr *direction, r *model.SGRule, zone uint16, portMatch flow.Match, portCookie uint64) {
	clauses := ruleClauses(ix, dr, r)
	if len(clauses) == 0 {
		return // a rule this data plane cannot enforce allows nothing
	}
	t := dr.t.ID()
	id := b.conjID(t, fmt.Sprintf("%s/%d", r.ID, zone))
	n := uint8(1 + len(clauses))
	b.conj(t, portCookie, portMatch, flow.Conjunction{ID: id, Clause: 1, NClauses: n})
	if b.done[id] {
		return
	}
	b.done[id] = true
	for i, cl := range clauses {
		for _, m := range cl {
			b.conj(t, cookie("clause:"+m.Normalize().String()), m, flow.Conjunction{ID: id, Clause: uint8(i + 2), NClauses: n})
		}
	}
	b.add(&flow.Flow{Table: t, Priority: prioRule, Cookie: cookie(r.ID),
		Match:   flow.M().EthType(flow.EthTypeIPv4).Set(flow.ConjID, uint64(id)),
		Actions: []flow.Action{flow.CT{Commit: true, Zone: zone, Table: flow.CTNoTable}}, Goto: next(dr.t)})
}

// conjID gives (rule, zone) its conjunction id in table t: a hash of the
// key, so that a rule keeps its id whatever else changes (a collision,
// rare in 32 bits, takes the next free id).
func (b *builder) conjID(t uint8, key string) uint32 {
	if id, ok := b.conjIDs[t][key]; ok {
		return id
	}
	if b.conjIDs[t] == nil {
		b.conjIDs[t] = map[string]uint32{}
		b.conjUsed[t] = map[uint32]bool{}
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	id := h.Sum32()
	for id == 0 || b.conjUsed[t][id] {
		id++
	}
	b.conjIDs[t][key] = id
	b.conjUsed[t][id] = true
	return id
}

// conj adds a conjunction action to the clause flow with match m, making
// the flow if it is new.
func (b *builder) conj(t uint8, ck uint64, m flow.Match, a flow.Conjunction) {
	f := &flow.Flow{Table: t, Priority: prioRule, Cookie: ck, Match: m.Normalize()}
	k := f.Key()
	if old, ok := b.clauses[k]; ok {
		for _, x := range old.Actions {
			if x == flow.Action(a) {
				return // a port listing a group twice
			}
		}
		old.Actions = append(old.Actions, a)
		return
	}
	f.Actions = []flow.Action{a}
	b.clauses[k] = f
	b.add(f)
}

// finish puts every clause flow's conjunction actions in order.
func (b *builder) finish() {
	for _, f := range b.clauses {
		sort.Slice(f.Actions, func(i, j int) bool {
			x, y := f.Actions[i].(flow.Conjunction), f.Actions[j].(flow.Conjunction)
			if x.ID != y.ID {
				return x.ID < y.ID
			}
			return x.Clause < y.Clause
		})
	}
}

// protocols are the names Neutron accepts for a rule's protocol.
var protocols = map[string]uint8{
	"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "igmp": 2, "ipip": 4,
	"ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}

// Protocol resolves a rule's protocol: ok false for one this data plane
// cannot enforce; any true for "any protocol".
func Protocol(s string) (proto uint8, any bool, ok bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "any" {
		return 0, true, true
	}
	if p, found := protocols[s]; found {
		return p, false, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, false, false
	}
	return uint8(n), false, true
}

// ruleClauses compiles one rule into the clauses of its conjunction
// after the ports' (see rule): its protocol and ports with its remote
// address folded in when either is a single match, else protocol and
// ports, then remote addresses. A rule the IPv4 data plane cannot
// enforce (IPv6, a protocol or range it cannot express) compiles to
// nothing: it allows nothing.
func ruleClauses(ix *modelIndex, dr *direction, r *model.SGRule) [][]flow.Match {
	if r.EtherType != "" && !strings.EqualFold(r.EtherType, "IPv4") {
		return nil // IPv6 rules are stored, not enforced (IPv4 data plane)
	}
	proto, anyProto, ok := Protocol(r.Protocol)
	if !ok {
		return nil
	}
	m := flow.M().EthType(flow.EthTypeIPv4)
	var l4 []flow.Match
	switch {
	case anyProto:
		l4 = []flow.Match{m}
	case proto == flow.ProtoTCP || proto == flow.ProtoUDP:
		m = m.Set(flow.IPProto, uint64(proto))
		f := flow.TCPDst
		if proto == flow.ProtoUDP {
			f = flow.UDPDst
		}
		if r.PortRangeMin == nil && r.PortRangeMax == nil {
			l4 = []flow.Match{m}
			break
		}
		lo, hi := 1, 65535
		if r.PortRangeMin != nil {
			lo = *r.PortRangeMin
		}
		if r.PortRangeMax != nil {
			hi = *r.PortRangeMax
		} else {
			hi = lo
		}
		if lo < 0 || hi > 65535 || lo > hi {
			return nil
		}
		for _, rg := range PortMasks(uint16(lo), uint16(hi)) {
			if rg.Mask == 0 {
				l4 = append(l4, m) // 0-65535: any port
				continue
			}
			l4 = append(l4, m.SetMasked(f, uint64(rg.Value), uint64(rg.Mask)))
		}
	case proto == flow.ProtoICMP:
		m = m.Set(flow.IPProto, flow.ProtoICMP)
		if r.PortRangeMin != nil && *r.PortRangeMin >= 0 && *r.PortRangeMin <= 255 {
			m = m.Set(flow.ICMPv4Type, uint64(*r.PortRangeMin))
			if r.PortRangeMax != nil && *r.PortRangeMax >= 0 && *r.PortRangeMax <= 255 {
				m = m.Set(flow.ICMPv4Code, uint64(*r.PortRangeMax))
			}
		}
		l4 = []flow.Match{m}
	default:
		if r.PortRangeMin != nil || r.PortRangeMax != nil {
			return nil // ports of a protocol the data plane has no field for
		}
		l4 = []flow.Match{m.Set(flow.IPProto, uint64(proto))}
	}
	remote := dr.remoteField()
	var remotes []flow.Match
	switch {
	case r.RemoteGroupID != "":
		addrs := ix.addrs[r.RemoteGroupID]
		if len(addrs) == 0 {
			return nil
		}
		if bit, ok := dr.bit[r.RemoteGroupID]; ok {
			v := uint64(1)<<bit | dr.flag
			remotes = []flow.Match{flow.M().SetMasked(flow.Reg7, v, v)}
			break
		}
		for _, a := range addrs {
			remotes = append(remotes, flow.M().EthType(flow.EthTypeIPv4).SetMasked(remote, uint64(a.ip), a.mask()))
		}
	case r.RemoteIPPrefix != "":
		p, ok := parsePrefix(r.RemoteIPPrefix)
		if !ok {
			return nil
		}
		if p.bits > 0 {
			remotes = []flow.Match{flow.M().EthType(flow.EthTypeIPv4).SetMasked(remote, uint64(p.ip), p.mask())}
		}
	}
	switch {
	case len(remotes) == 0:
		return [][]flow.Match{l4}
	case len(remotes) == 1:
		return [][]flow.Match{cross(l4, remotes[0])}
	case len(l4) == 1:
		out := make([]flow.Match, 0, len(remotes))
		for _, x := range remotes {
			out = append(out, merge(l4[0], x))
		}
		return [][]flow.Match{out}
	}
	return [][]flow.Match{l4, remotes}
}

// merge is the match of both a and b.
func merge(a, b flow.Match) flow.Match {
	for _, x := range b {
		a = a.SetMasked(x.F, x.Value, x.Mask)
	}
	return a
}

// cross merges x into every match of ms.
func cross(ms []flow.Match, x flow.Match) []flow.Match {
	out := make([]flow.Match, len(ms))
	for i, m := range ms {
		out[i] = merge(m, x)
	}
	return out
}

// Masked is a value/mask pair.
type Masked struct{ Value, Mask uint16 }

func (m Masked) String() string { return fmt.Sprintf("0x%x/0x%x", m.Value, m.Mask) }

// PortMasks splits [lo, hi] into the fewest prefix-aligned value/mask
// pairs that cover exactly that range.
func PortMasks(lo, hi uint16) []Masked {
	var out []Masked
	l, h := uint32(lo), uint32(hi)
	for l <= h {
		size := uint32(1)
		for l%(size*2) == 0 && l+size*2-1 <= h && size*2 <= 1<<16 {
			size *= 2
		}
		out = append(out, Masked{Value: uint16(l), Mask: uint16(0x10000 - size)})
		l += size
	}
	return out
}

var _ app.App = (*App)(nil)
