package fakeswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Limits of one walk, as Open vSwitch bounds a translation.
const (
	MaxDepth         = 64   // nested table lookups (goto, resubmit, groups)
	MaxLookups       = 4096 // table lookups in one walk
	MaxRecirculation = 32   // ct() recirculations in one walk
)

// Reason is the OpenFlow 1.3 packet-in reason of a punt.
type Reason uint8

// Packet-in reasons (OFPR_*).
const (
	ReasonNoMatch    Reason = 0 // a table-miss flow sent it
	ReasonAction     Reason = 1 // an output:CONTROLLER action
	ReasonInvalidTTL Reason = 2 // dec_ttl on a TTL of 0 or 1
)

func (r Reason) String() string {
	switch r {
	case ReasonNoMatch:
		return "no_match"
	case ReasonAction:
		return "action"
	case ReasonInvalidTTL:
		return "invalid_ttl"
	}
	return fmt.Sprintf("reason%d", uint8(r))
}

// Emit is one copy of the packet leaving the switch: out of a port, or to
// the controller (Port flow.PortController) with the packet-in's reason,
// the cookie and table of the flow that punted it, and max_len.
type Emit struct {
	Port   uint32
	Packet Packet // as rewritten at the moment of the output
	Reason Reason
	Cookie uint64
	Table  uint8
	MaxLen uint16
}

// Punt reports whether the packet goes to the controller.
func (e Emit) Punt() bool { return e.Port == flow.PortController }

func (e Emit) String() string {
	if e.Punt() {
		return fmt.Sprintf("controller(reason=%s,cookie=0x%x,table=%d)", e.Reason, e.Cookie, e.Table)
	}
	return "output:" + flow.PortString(e.Port)
}

// Result is where a walked packet went. No emits is a drop.
type Result struct {
	Emits []Emit
	// Trace explains the walk, one line per step, like ofproto/trace.
	Trace []string
	// Hits are the flows the walk matched, in order (a flow matched on
	// two passes is listed twice): what the switch's counters would
	// count.
	Hits []*flow.Flow
}

// Dropped reports that the packet went nowhere.
func (r *Result) Dropped() bool { return len(r.Emits) == 0 }

// Ports lists the output ports in order (punts excluded).
func (r *Result) Ports() []uint32 {
	var out []uint32
	for _, e := range r.Emits {
		if !e.Punt() {
			out = append(out, e.Port)
		}
	}
	return out
}

// Punts lists the packet-ins.
func (r *Result) Punts() []Emit {
	var out []Emit
	for _, e := range r.Emits {
		if e.Punt() {
			out = append(out, e)
		}
	}
	return out
}

// String is "drop" or the emits, comma-separated.
func (r *Result) String() string {
	if r.Dropped() {
		return "drop"
	}
	s := make([]string, len(r.Emits))
	for i, e := range r.Emits {
		s[i] = e.String()
	}
	return strings.Join(s, ",")
}

// TraceText is the trace as one string.
func (r *Result) TraceText() string { return strings.Join(r.Trace, "\n") }

// Conntrack is the connection tracker the walk consults for ct(). Track
// returns the ct_state bits of the packet in zone (+trk is added by the
// walk) and its ct_mark after the action (before the exec() of a commit).
type Conntrack interface {
	Track(p Packet, zone uint16, commit bool) (state uint32, mark uint32)
}

// ConntrackFunc adapts a function to Conntrack.
type ConntrackFunc func(p Packet, zone uint16, commit bool) (uint32, uint32)

// Track calls f.
func (f ConntrackFunc) Track(p Packet, zone uint16, commit bool) (uint32, uint32) {
	return f(p, zone, commit)
}

// NewConnections is the default tracker: every packet is the first of a
// new connection (+trk+new), its mark unchanged.
var NewConnections Conntrack = ConntrackFunc(func(p Packet, _ uint16, _ bool) (uint32, uint32) {
	return flow.CTNew, p.CTMark
})

// ErrUnsupported wraps every action or construct the model refuses to
// guess about. A walk never passes over what it does not model.
var ErrUnsupported = errors.New("fakeswitch: not modelled")

// view is the switch as one walk sees it.
type view struct {
	tables map[uint8][]*flow.Flow // sorted by descending priority
	groups map[uint32]*flow.Group
	meters map[uint32]*flow.Meter
	ports  map[uint32]bool // port -> live; nil: no port list
	ct     Conntrack
	pick   func(g *flow.Group, p Packet) int
}

type walker struct {
	v       *view
	res     *Result
	depth   int
	lookups int
	recirc  []recirc
}

type recirc struct {
	table uint8
	pkt   Packet
}

// Walk sends p into the switch on inPort (table 0) and returns every copy
// that leaves: each output with the packet as rewritten at that point,
// each punt to the controller, or nothing (a drop). It follows the
// pipeline as Open vSwitch does:
//
//   - a table holds flows; the highest-priority flow whose (masked) match
//     the packet satisfies wins. Two matching flows of the same priority
//     with different instructions are an error (OpenFlow leaves the choice
//     undefined). No match is a drop (OpenFlow 1.3's table-miss default).
//   - a flow's meter passes the packet (meters are not modelled as rate
//     limits; a missing meter is an error), then its apply-actions run in
//     order, then write_metadata, then goto_table (forward only).
//   - output:N to the packet's own in_port is skipped (OVS's rule; use
//     IN_PORT to send it back); output to a port absent from the port
//     list, when one is set, is skipped. FLOOD and ALL emit on every port
//     of the list but in_port, in port order (the model has no no-flood
//     port config, so they are the same); they need a port list. LOCAL is a
//     port like any other. NORMAL, TABLE and ANY are errors.
//   - output:CONTROLLER is a punt with reason no_match from a table-miss
//     flow (priority 0, empty match) and action otherwise.
//   - resubmit(port,table) looks the packet up in the table as if it had
//     come in on port; only that lookup: the flow found, IN_PORT and the
//     in_port output rule see the real in_port (as OVS restores it). The
//     resubmitted flows' changes to the packet persist. A miss in a
//     resubmitted table does nothing.
//   - groups: every bucket works on its own copy of the packet and never
//     changes the caller's; bucket actions are an action set, so they run
//     in action-set order (pop_vlan, push_vlan, dec_ttl, set-field/move in
//     order, then only the last of group, output, resubmit or ct), as OVS
//     does. ALL runs every bucket; INDIRECT its one bucket; SELECT one live
//     bucket of non-zero weight, chosen by the switch's SelectBucket or by
//     a weighted hash of the L2-L4 headers (deterministic, but not OVS's:
//     OVS 3.1 selects by dp_hash after a recirculation that ofproto/trace
//     does not follow, so no trace can confirm a choice); FF the first
//     live bucket (watch port live in the port list, or a watch group with
//     a live bucket). Groups may chain.
//   - a flow whose set_field or move needs a prerequisite its match does
//     not guarantee (arp_op without arp, dl_vlan without a tag matched or
//     pushed) is an error, as OVS refuses to install it. At run time
//     set_field (masked too, as Nicira reg_load) and move (reg_move) are
//     ignored when the packet lacks the field (possible in group buckets),
//     as OVS does with unmet prerequisites.
//   - push_vlan copies the outer tag's VID and PCP (0 for an untagged
//     frame); pop_vlan on an untagged frame does nothing.
//   - dec_ttl on a non-IPv4 frame does nothing; on TTL 0 or 1 it punts with
//     reason invalid_ttl and stops the flow's remaining actions (whether a
//     controller receives it depends on its async config).
//   - ct(): see Switch.Conntrack. With a table, a copy of the packet with
//     ct_state = +trk plus the tracker's bits, ct_zone and ct_mark set
//     recirculates to that table after the current pass (registers and
//     metadata kept); the current pass continues with the conntrack fields
//     cleared (untracked), as OVS does. exec() may only set ct_mark, on
//     commit. nat() needs a tracker that is a NATConntrack (ConnTable is
//     one) and a recirculation table: the recirculated copy is the
//     tracker's rewritten packet; nat() without a table is an error. There
//     is no connection table in the walk itself: state comes only from the
//     tracker.
//   - conjunctive matches (conjunction actions, conj_id): see lookup.
//     Clause flows never act by themselves and may carry no other action
//     or instruction.
//   - learn is not used by any app and has no value in package flow; any
//     action the model does not know (flow.Opaque) is an error.
func (s *Switch) Walk(inPort uint32, p Packet) (*Result, error) {
	v := s.view()
	w := &walker{v: v, res: &Result{}}
	pkt := p.Clone()
	pkt.InPort = inPort
	w.tracef("packet: %s", pkt)
	if err := w.table(&pkt, 0); err != nil {
		return w.res, err
	}
	if err := w.recirculate(); err != nil {
		return w.res, err
	}
	if w.res.Dropped() {
		w.tracef("verdict: drop")
	}
	return w.res, nil
}

// PacketOut runs an OpenFlow packet-out of p with actions acts, as if sent
// with in_port inPort (flow.PortController for a controller's own
// packet): the actions run on the packet as a flow's would (resubmit,
// groups, ct and its recirculations included), with no flow around them.
func (s *Switch) PacketOut(inPort uint32, p Packet, acts []flow.Action) (*Result, error) {
	v := s.view()
	w := &walker{v: v, res: &Result{}}
	pkt := p.Clone()
	pkt.InPort = inPort
	w.tracef("packet-out: %s actions=%s", pkt, flow.ActionsString(acts))
	if _, err := w.actions(&pkt, acts, nil); err != nil {
		return w.res, err
	}
	return w.res, w.recirculate()
}

// recirculate runs the queued recirculations (and those they queue), at
// most MaxRecirculation.
func (w *walker) recirculate() error {
	for n := 0; len(w.recirc) > 0; n++ {
		if n >= MaxRecirculation {
			return fmt.Errorf("fakeswitch: more than %d recirculations", MaxRecirculation)
		}
		r := w.recirc[0]
		w.recirc = w.recirc[1:]
		w.tracef("recirculation to table %d: %s", r.table, r.pkt)
		if err := w.table(&r.pkt, r.table); err != nil {
			return err
		}
	}
	return nil
}

func (s *Switch) view() *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &view{tables: map[uint8][]*flow.Flow{}, groups: map[uint32]*flow.Group{}, meters: map[uint32]*flow.Meter{},
		ct: s.Conntrack, pick: s.SelectBucket}
	for _, e := range s.flows {
		v.tables[e.Flow.Table] = append(v.tables[e.Flow.Table], e.Flow)
	}
	for _, fs := range v.tables {
		flow.SortFlows(fs)
	}
	for id, g := range s.groups {
		v.groups[id] = g
	}
	for id, m := range s.meters {
		v.meters[id] = m
	}
	if s.ports != nil {
		v.ports = map[uint32]bool{}
		for n, up := range s.ports {
			v.ports[n] = up
		}
	}
	if v.ct == nil {
		v.ct = NewConnections
	}
	return v
}

func (w *walker) tracef(format string, a ...any) {
	w.res.Trace = append(w.res.Trace, strings.Repeat("  ", w.depth)+fmt.Sprintf(format, a...))
}

// conjunctive reports whether f is a clause of conjunctive matches: its
// actions are all conjunction actions (OVS refuses any other action or
// instruction beside them).
func conjunctive(f *flow.Flow) bool {
	if len(f.Actions) == 0 {
		return false
	}
	for _, a := range f.Actions {
		if _, ok := a.(flow.Conjunction); !ok {
			return false
		}
	}
	return true
}

// lookup finds the flow of table id that the packet hits. Conjunctive
// matches follow OVS's classifier: clause flows never act by themselves;
// among those of a higher priority than the best ordinary flow, the
// highest priority at which some conjunction has a matching flow in every
// clause wins, and the table is looked up again with conj_id set to that
// conjunction's id (the flow found then acts; none found is a miss). A
// conjunction with clauses missing is as if its flows were absent.
func (w *walker) lookup(p *Packet, id uint8) (*flow.Flow, error) {
	best, err := w.lookupPlain(p, id)
	if err != nil || p.ConjID != 0 {
		return best, err
	}
	type conj struct {
		n       uint8
		clauses map[uint8]bool
	}
	var prio uint16
	var found map[uint32]*conj
	var done []uint32
	for _, f := range w.v.tables[id] {
		if best != nil && f.Priority <= best.Priority {
			break
		}
		if found != nil && f.Priority < prio {
			if len(done) > 0 {
				break
			}
			found = nil
		}
		if !conjunctive(f) || !p.Matches(f.Match) {
			continue
		}
		if f.Goto != 0 || f.Meter != 0 || f.MetadataMask != 0 {
			return nil, fmt.Errorf("fakeswitch: flow %s: conjunction with other instructions (OVS refuses it)", f.KeyText())
		}
		if found == nil {
			prio, found = f.Priority, map[uint32]*conj{}
		}
		for _, a := range f.Actions {
			c := a.(flow.Conjunction)
			if c.NClauses < 2 || c.Clause < 1 || c.Clause > c.NClauses {
				return nil, fmt.Errorf("fakeswitch: table %d: flow %s: bad %s", id, f.KeyText(), c)
			}
			x := found[c.ID]
			if x == nil {
				x = &conj{n: c.NClauses, clauses: map[uint8]bool{}}
				found[c.ID] = x
			}
			if x.n != c.NClauses {
				return nil, fmt.Errorf("fakeswitch: table %d: conjunction %d has flows with %d and %d clauses", id, c.ID, x.n, c.NClauses)
			}
			if !x.clauses[c.Clause] {
				x.clauses[c.Clause] = true
				if len(x.clauses) == int(x.n) {
					done = append(done, c.ID)
				}
			}
		}
	}
	if len(done) == 0 {
		return best, nil
	}
	if len(done) > 1 {
		sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
		return nil, fmt.Errorf("fakeswitch: table %d: conjunctions %v all match %s at priority %d (OVS picks one undefined)", id, done, p, prio)
	}
	w.tracef("table %d: conjunction(%d) complete at priority %d: lookup again with conj_id=%d", id, done[0], prio, done[0])
	p.ConjID = done[0]
	defer func() { p.ConjID = 0 }()
	return w.lookupPlain(p, id)
}

// lookupPlain finds the highest-priority ordinary flow the packet matches.
func (w *walker) lookupPlain(p *Packet, id uint8) (*flow.Flow, error) {
	var best *flow.Flow
	for _, f := range w.v.tables[id] {
		if best != nil && f.Priority < best.Priority {
			break
		}
		if conjunctive(f) || !p.Matches(f.Match) {
			continue
		}
		if best == nil {
			best = f
			continue
		}
		if f.InstructionsString() != best.InstructionsString() {
			return nil, fmt.Errorf("fakeswitch: table %d: two flows of priority %d match %s: %s and %s",
				id, f.Priority, p, best.KeyText(), f.KeyText())
		}
	}
	return best, nil
}

// table looks the packet up in table id and runs the flow it hits.
func (w *walker) table(p *Packet, id uint8) error { return w.tableAs(p, id, p.InPort) }

// tableAs is table with the lookup done as if the packet had come in on
// inPort. Only the lookup: OVS restores the real in_port before running
// the flow it finds, so IN_PORT and the in_port output rule see the real
// one.
func (w *walker) tableAs(p *Packet, id uint8, inPort uint32) error {
	w.lookups++
	if w.lookups > MaxLookups {
		return fmt.Errorf("fakeswitch: more than %d table lookups", MaxLookups)
	}
	if w.depth >= MaxDepth {
		return fmt.Errorf("fakeswitch: pipeline deeper than %d (table %d)", MaxDepth, id)
	}
	w.depth++
	defer func() { w.depth-- }()
	real := p.InPort
	p.InPort = inPort
	f, err := w.lookup(p, id)
	p.InPort = real
	if err != nil {
		return err
	}
	if f == nil {
		w.tracef("table %d: no flow matches: drop", id)
		return nil
	}
	w.tracef("table %d: %s", id, f)
	w.res.Hits = append(w.res.Hits, f)
	return w.run(p, f)
}

func isTableMiss(f *flow.Flow) bool { return f.Priority == 0 && len(f.Match) == 0 }

// run executes a flow's instructions.
func (w *walker) run(p *Packet, f *flow.Flow) error {
	if f.Meter != 0 {
		if w.v.meters[f.Meter] == nil {
			return fmt.Errorf("fakeswitch: flow %s uses meter %d, which the switch lacks", f.KeyText(), f.Meter)
		}
		w.tracef("meter %d: pass", f.Meter)
	}
	if err := consistent(f); err != nil {
		return err
	}
	stop, err := w.actions(p, f.Actions, f)
	if err != nil || stop {
		return err
	}
	if f.MetadataMask != 0 {
		p.Metadata = p.Metadata&^f.MetadataMask | f.Metadata&f.MetadataMask
	}
	if f.Goto != 0 {
		if f.Goto <= f.Table {
			return fmt.Errorf("fakeswitch: flow %s: goto_table:%d does not go forward", f.KeyText(), f.Goto)
		}
		return w.table(p, f.Goto)
	}
	return nil
}

// actions runs an action list in order. stop is true when dec_ttl ended
// the list (the rest, goto included, is skipped).
func (w *walker) actions(p *Packet, acts []flow.Action, rule *flow.Flow) (stop bool, err error) {
	for _, a := range acts {
		switch a := a.(type) {
		case flow.Output:
			if err := w.output(p, a, rule); err != nil {
				return false, err
			}
		case flow.GroupAction:
			if err := w.group(p, a.ID, rule); err != nil {
				return false, err
			}
		case flow.PushVLAN:
			if a.EthType != 0x8100 && a.EthType != 0x88a8 {
				return false, fmt.Errorf("fakeswitch: push_vlan:0x%04x: bad ethertype", a.EthType)
			}
			tag := VLAN{TPID: a.EthType}
			if len(p.VLANs) > 0 {
				tag.VID, tag.PCP = p.VLANs[0].VID, p.VLANs[0].PCP
			}
			p.VLANs = append([]VLAN{tag}, p.VLANs...)
		case flow.PopVLAN:
			if len(p.VLANs) == 0 {
				w.tracef("pop_vlan on an untagged frame: nothing to pop")
				continue
			}
			p.VLANs = append([]VLAN(nil), p.VLANs[1:]...)
		case flow.DecTTL:
			if p.EthType != flow.EthTypeIPv4 {
				continue
			}
			if p.TTL <= 1 {
				w.emit(p, flow.PortController, flow.MaxLenNoBuffer, ReasonInvalidTTL, rule)
				w.tracef("dec_ttl: TTL %d expired: punt, stop", p.TTL)
				return true, nil
			}
			p.TTL--
		case flow.SetField:
			if err := w.setField(p, a); err != nil {
				return false, err
			}
		case flow.Move:
			if err := w.move(p, a); err != nil {
				return false, err
			}
		case flow.Multipath:
			if err := w.multipath(p, a); err != nil {
				return false, err
			}
		case flow.Resubmit:
			in := p.InPort
			if a.InPort != flow.PortInPort {
				in = a.InPort
			}
			if err := w.tableAs(p, a.Table, in); err != nil {
				return false, err
			}
		case flow.CT:
			if err := w.ct(p, a); err != nil {
				return false, err
			}
		case flow.Conjunction:
			if rule == nil {
				return false, errors.New("fakeswitch: conjunction in a packet-out")
			}
			return false, fmt.Errorf("fakeswitch: flow %s: conjunction with other actions or instructions (OVS refuses it)", rule.KeyText())
		default:
			return false, fmt.Errorf("%w: action %s", ErrUnsupported, a)
		}
	}
	return false, nil
}

func (w *walker) setField(p *Packet, a flow.SetField) error {
	if !a.F.Valid() {
		return fmt.Errorf("fakeswitch: set_field of unknown field %d", a.F)
	}
	full := a.F.FullMask()
	v := a.Value & full
	if a.Mask != 0 && a.Mask&full != full {
		cur, ok := p.Get(a.F)
		if !ok {
			w.tracef("%s: unmet prerequisites, ignored", a)
			return nil
		}
		v = cur&^a.Mask | a.Value&a.Mask
	}
	if err := p.Set(a.F, v); err != nil {
		if errors.Is(err, errNoField) {
			w.tracef("%s: unmet prerequisites, ignored", a)
			return nil
		}
		return err
	}
	return nil
}

func fieldBits(f flow.Field) uint16 {
	m := f.FullMask()
	n := uint16(0)
	for m != 0 {
		n++
		m >>= 1
	}
	return n
}

// multipath models Nicira multipath: the link is a function of the
// hashed fields only (here FNV-1a of them, with the basis, modulo
// MaxLink+1: not OVS's hash, but the same packet fields always give the
// same link, which is what a walk can check). Only nw_src, nw_dst,
// eth_src and symmetric_l4 are modelled.
func (w *walker) multipath(p *Packet, a flow.Multipath) error {
	if !a.Dst.Valid() || a.NBits == 0 || a.NBits > 32 || a.Ofs+a.NBits > fieldBits(a.Dst) {
		return fmt.Errorf("fakeswitch: bad multipath %s", a)
	}
	h := fnv.New32a()
	put := func(vs ...uint64) {
		for _, v := range vs {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], v)
			h.Write(b[:])
		}
	}
	put(uint64(a.Basis))
	switch a.Fields {
	case flow.HashNwSrc:
		put(uint64(p.IPv4Src))
	case flow.HashNwDst:
		put(uint64(p.IPv4Dst))
	case flow.HashEthSrc:
		put(uint64(p.EthSrc))
	case flow.HashSymmetricL4:
		put(uint64(p.IPv4Src)^uint64(p.IPv4Dst), uint64(p.TPSrc)^uint64(p.TPDst), uint64(p.IPProto))
	default:
		return fmt.Errorf("fakeswitch: multipath fields %d not modelled", a.Fields)
	}
	link := uint64(h.Sum32()) % (uint64(a.MaxLink) + 1)
	dst, _ := p.Get(a.Dst)
	m := uint64(1)<<a.NBits - 1
	dst = dst&^(m<<a.Ofs) | (link&m)<<a.Ofs
	w.tracef("%s: link %d", a, link)
	return p.Set(a.Dst, dst)
}

func (w *walker) move(p *Packet, a flow.Move) error {
	if !a.Src.Valid() || !a.Dst.Valid() || a.NBits == 0 || a.NBits > 64 {
		return fmt.Errorf("fakeswitch: bad move %s", a)
	}
	if a.SrcOfs+a.NBits > fieldBits(a.Src) || a.DstOfs+a.NBits > fieldBits(a.Dst) {
		return fmt.Errorf("fakeswitch: move %s exceeds a field's width", a)
	}
	src, ok1 := p.Get(a.Src)
	dst, ok2 := p.Get(a.Dst)
	if !ok1 || !ok2 {
		w.tracef("%s: unmet prerequisites, ignored", a)
		return nil
	}
	m := ^uint64(0)
	if a.NBits < 64 {
		m = uint64(1)<<a.NBits - 1
	}
	bits := (src >> a.SrcOfs) & m
	dst = dst&^(m<<a.DstOfs) | bits<<a.DstOfs
	if err := p.Set(a.Dst, dst); err != nil {
		if errors.Is(err, errNoField) {
			w.tracef("%s: unmet prerequisites, ignored", a)
			return nil
		}
		return err
	}
	return nil
}

func (w *walker) emit(p *Packet, port uint32, maxLen uint16, reason Reason, rule *flow.Flow) {
	e := Emit{Port: port, Packet: p.Clone()}
	if port == flow.PortController {
		e.Reason, e.MaxLen = reason, maxLen
		if rule != nil {
			e.Cookie, e.Table = rule.Cookie, rule.Table
		}
	}
	w.res.Emits = append(w.res.Emits, e)
	w.tracef("-> %s %s", e, p.WireString())
}

func (w *walker) output(p *Packet, a flow.Output, rule *flow.Flow) error {
	switch a.Port {
	case flow.PortController:
		reason := ReasonAction
		if rule != nil && isTableMiss(rule) {
			reason = ReasonNoMatch
		}
		w.emit(p, flow.PortController, a.MaxLen, reason, rule)
	case flow.PortInPort:
		w.emit(p, p.InPort, 0, 0, rule)
	case flow.PortFlood, flow.PortAll:
		if w.v.ports == nil {
			return fmt.Errorf("fakeswitch: %s needs the switch's port list (SetPorts)", a)
		}
		ports := make([]uint32, 0, len(w.v.ports))
		for n := range w.v.ports {
			if n != p.InPort {
				ports = append(ports, n)
			}
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		for _, n := range ports {
			w.emit(p, n, 0, 0, rule)
		}
	case flow.PortNormal, flow.PortTable, flow.PortAny:
		return fmt.Errorf("%w: output to %s", ErrUnsupported, flow.PortString(a.Port))
	default:
		if a.Port == p.InPort {
			w.tracef("output:%s is the input port: skipped", flow.PortString(a.Port))
			return nil
		}
		if w.v.ports != nil {
			if _, ok := w.v.ports[a.Port]; !ok {
				w.tracef("output:%s: no such port: skipped", flow.PortString(a.Port))
				return nil
			}
		}
		w.emit(p, a.Port, 0, 0, rule)
	}
	return nil
}

var groupTypes = map[uint8]string{flow.GroupAll: "all", flow.GroupSelect: "select", flow.GroupIndirect: "indirect", flow.GroupFF: "ff"}

// OFPG_ANY: no watch group.
const groupAny = 0xffffffff

func (w *walker) portLive(n uint32) bool {
	if n == 0 || n == flow.PortAny {
		return true
	}
	if w.v.ports == nil {
		return true
	}
	return w.v.ports[n]
}

func (w *walker) bucketLive(b *flow.Bucket, seen int) bool {
	if !w.portLive(b.WatchPort) {
		return false
	}
	if b.WatchGroup != 0 && b.WatchGroup != groupAny {
		g := w.v.groups[b.WatchGroup]
		if g == nil || seen > MaxDepth {
			return false
		}
		for i := range g.Buckets {
			if w.bucketLive(&g.Buckets[i], seen+1) {
				return true
			}
		}
		return false
	}
	return true
}

func (w *walker) group(p *Packet, id uint32, rule *flow.Flow) error {
	g := w.v.groups[id]
	if g == nil {
		return fmt.Errorf("fakeswitch: group %d does not exist", id)
	}
	if w.depth >= MaxDepth {
		return fmt.Errorf("fakeswitch: pipeline deeper than %d (group %d)", MaxDepth, id)
	}
	w.depth++
	defer func() { w.depth-- }()
	var chosen []int
	switch g.Type {
	case flow.GroupAll:
		for i := range g.Buckets {
			chosen = append(chosen, i)
		}
	case flow.GroupIndirect:
		if len(g.Buckets) != 1 {
			return fmt.Errorf("fakeswitch: indirect group %d has %d buckets", id, len(g.Buckets))
		}
		chosen = []int{0}
	case flow.GroupSelect:
		if i, ok := w.pickSelect(g, p); ok {
			chosen = []int{i}
		}
	case flow.GroupFF:
		for i := range g.Buckets {
			if w.bucketLive(&g.Buckets[i], 0) {
				chosen = []int{i}
				break
			}
		}
	default:
		return fmt.Errorf("%w: group type %d", ErrUnsupported, g.Type)
	}
	w.tracef("group %d (%s): buckets %v", id, groupTypes[g.Type], chosen)
	if len(chosen) == 0 {
		w.tracef("group %d: no live bucket: drop", id)
	}
	for _, i := range chosen {
		acts, err := actionSet(g.Buckets[i].Actions)
		if err != nil {
			return fmt.Errorf("fakeswitch: group %d bucket %d: %w", id, i, err)
		}
		cp := p.Clone()
		if _, err := w.actions(&cp, acts, rule); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) pickSelect(g *flow.Group, p *Packet) (int, bool) {
	var live []int
	total := 0
	for i := range g.Buckets {
		if g.Buckets[i].Weight > 0 && w.bucketLive(&g.Buckets[i], 0) {
			live = append(live, i)
			total += int(g.Buckets[i].Weight)
		}
	}
	if len(live) == 0 {
		return 0, false
	}
	if w.v.pick != nil {
		i := w.v.pick(g, p.Clone())
		for _, l := range live {
			if l == i {
				return i, true
			}
		}
		return 0, false // the caller chose a dead bucket: drop
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%x %x %x %d %x %x %d %d", p.EthSrc, p.EthDst, p.EthType, p.IPProto, p.IPv4Src, p.IPv4Dst, p.TPSrc, p.TPDst)
	n := int(h.Sum32() % uint32(total))
	for _, i := range live {
		n -= int(g.Buckets[i].Weight)
		if n < 0 {
			return i, true
		}
	}
	return live[len(live)-1], true
}

// actionSet orders a bucket's actions as an OpenFlow action set is
// executed (Open vSwitch's ofpacts_execute_action_set): the last pop_vlan,
// the last push_vlan, the last dec_ttl, every set-field and move in order,
// then the last group, else the last output, else the last resubmit, else
// the last ct. Without any of those the bucket does nothing.
func actionSet(acts []flow.Action) ([]flow.Action, error) {
	last := func(match func(flow.Action) bool) flow.Action {
		var l flow.Action
		for _, a := range acts {
			if match(a) {
				l = a
			}
		}
		return l
	}
	for _, a := range acts {
		switch a.(type) {
		case flow.Output, flow.GroupAction, flow.PushVLAN, flow.PopVLAN, flow.DecTTL, flow.SetField, flow.Move, flow.Resubmit, flow.CT:
		default:
			return nil, fmt.Errorf("%w: action %s", ErrUnsupported, a)
		}
	}
	var out []flow.Action
	for _, pick := range []func(flow.Action) bool{
		func(a flow.Action) bool { _, ok := a.(flow.PopVLAN); return ok },
		func(a flow.Action) bool { _, ok := a.(flow.PushVLAN); return ok },
		func(a flow.Action) bool { _, ok := a.(flow.DecTTL); return ok },
	} {
		if a := last(pick); a != nil {
			out = append(out, a)
		}
	}
	for _, a := range acts {
		switch a.(type) {
		case flow.SetField, flow.Move:
			out = append(out, a)
		}
	}
	for _, pick := range []func(flow.Action) bool{
		func(a flow.Action) bool { _, ok := a.(flow.GroupAction); return ok },
		func(a flow.Action) bool { _, ok := a.(flow.Output); return ok },
		func(a flow.Action) bool { _, ok := a.(flow.Resubmit); return ok },
		func(a flow.Action) bool { _, ok := a.(flow.CT); return ok },
	} {
		if a := last(pick); a != nil {
			return append(out, a), nil
		}
	}
	return nil, nil
}

// markSetter is a Conntrack that keeps a connection's ct_mark
// (ConnTable): a commit's exec() stores it.
type markSetter interface {
	SetMark(p Packet, zone uint16, mark uint32)
}

func (w *walker) ct(p *Packet, a flow.CT) error {
	nt, natOK := w.v.ct.(NATConntrack)
	if a.NAT != nil && (!natOK || a.Table == flow.CTNoTable) {
		// Without a table OVS NATs the datapath packet but not the
		// fields the pipeline goes on matching: not modelled.
		return fmt.Errorf("%w: %s (nat needs a NATConntrack and a recirculation table)", ErrUnsupported, a)
	}
	zone := a.Zone
	if a.ZoneSrc != 0 {
		v, ok := p.Get(a.ZoneSrc)
		if !ok {
			return fmt.Errorf("fakeswitch: %s: packet lacks the zone field", a)
		}
		zone = uint16(v)
	}
	var state, mark uint32
	natted := p.Clone()
	if a.NAT != nil {
		natted, state, mark = nt.TrackNAT(p.Clone(), zone, a.Commit, a.NAT)
	} else {
		state, mark = w.v.ct.Track(p.Clone(), zone, a.Commit)
	}
	if len(a.Exec) > 0 && !a.Commit {
		return fmt.Errorf("fakeswitch: %s: exec() without commit", a)
	}
	for _, s := range a.Exec {
		if s.F != flow.CTMark {
			return fmt.Errorf("%w: %s sets %s in exec()", ErrUnsupported, a, s.F)
		}
		m := s.Mask
		if m == 0 {
			m = flow.CTMark.FullMask()
		}
		mark = uint32(uint64(mark)&^m | s.Value&m)
	}
	if ms, ok := w.v.ct.(markSetter); ok && len(a.Exec) > 0 {
		ms.SetMark(*p, zone, mark)
	}
	if a.Table != flow.CTNoTable {
		q := natted
		q.CTState, q.CTZone, q.CTMark = state|flow.CTTracked, zone, mark
		w.recirc = append(w.recirc, recirc{table: a.Table, pkt: q})
		w.tracef("%s: recirculates to table %d with ct_state=0x%x", a, a.Table, q.CTState)
	}
	// As in OVS, the conntrack fields exist only in the recirculation:
	// the current pass goes on untracked.
	p.CTState, p.CTZone, p.CTMark = 0, 0, 0
	return nil
}

// consistent refuses a flow whose actions set or move a field that its
// match (as changed by the actions before) does not guarantee: an ARP
// field without dl_type=arp, a TCP port without nw_proto=6, dl_vlan or
// dl_vlan_pcp without a VLAN tag matched or pushed, ct() without an IP
// dl_type. Open vSwitch rejects
// such a flow when it is added (OFPBAC_MATCH_INCONSISTENT), so a walk
// through it would describe a flow no switch holds.
func consistent(f *flow.Flow) error {
	known := map[flow.Field]uint64{}
	tagged := false
	for _, x := range f.Match {
		if x.Mask == 0 {
			known[x.F] = x.Value
		}
		if x.F == flow.VlanVID && x.Value&flow.VlanPresent != 0 {
			tagged = true
		}
	}
	need := func(a flow.Action, fs ...flow.Field) error {
		for _, fd := range fs {
			if fd == flow.VlanVID || fd == flow.VlanPCP {
				if !tagged {
					return fmt.Errorf("fakeswitch: flow %s: %s needs a VLAN tag the match does not guarantee (OVS rejects the flow)", f.KeyText(), a)
				}
				continue
			}
			for _, pr := range fd.Def().Prereq {
				if v, ok := known[pr.F]; !ok || v != pr.Value {
					return fmt.Errorf("fakeswitch: flow %s: %s needs %s=%s in the match (OVS rejects the flow)",
						f.KeyText(), a, pr.F, pr.F.FormatValue(pr.Value))
				}
			}
		}
		return nil
	}
	for _, a := range f.Actions {
		var err error
		switch a := a.(type) {
		case flow.PushVLAN:
			tagged = true
		case flow.PopVLAN:
			tagged = false
		case flow.SetField:
			err = need(a, a.F)
		case flow.Move:
			err = need(a, a.Src, a.Dst)
		case flow.Multipath:
			err = need(a, a.Dst)
		case flow.CT:
			// OVS refuses ct() in a flow whose match does not fix an IP
			// dl_type (MATCH_INCONSISTENT, found by app/secgroup's e2e).
			if v, ok := known[flow.EthType]; !ok || (v != 0x0800 && v != 0x86dd) {
				err = fmt.Errorf("fakeswitch: flow %s: %s needs dl_type=ip or ipv6 in the match (OVS rejects the flow)", f.KeyText(), a)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
