package flow

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Flow flags (OFPFF_*).
const (
	FlagSendFlowRem  = 1 << 0
	FlagCheckOverlap = 1 << 1
	FlagResetCounts  = 1 << 2
)

// Flow is one flow entry. Apply actions, write_metadata, meter and goto
// are the instructions Nimbus uses.
type Flow struct {
	Table       uint8
	Priority    uint16
	Cookie      uint64
	IdleTimeout uint16
	HardTimeout uint16
	Flags       uint16
	Match       Match

	Meter        uint32 // 0: none
	Actions      []Action
	Metadata     uint64 // write_metadata value
	MetadataMask uint64 // 0: no write_metadata instruction
	Goto         uint8  // 0: no goto_table (table 0 can never be a goto target)

	// Counter, when set, names what this flow's packet and byte
	// counters measure for its cookie's object (app/lb's "in", "out",
	// "new"). It is not sent to the switch and is not part of the flow's
	// identity or equality: the reconciler reads such flows' counters on
	// each full pass and sums them per object and name
	// (reconcile.Options.Counted).
	Counter string
}

// Key identifies a flow on a switch: table, priority and match. Two flows
// with the same key cannot coexist. It is a compact binary string (cheap
// to build for 100k flows); use KeyText for people.
func (f *Flow) Key() string {
	var buf [64]byte
	b := append(buf[:0], f.Table, byte(f.Priority>>8), byte(f.Priority))
	for _, x := range f.Match {
		b = append(b, byte(x.F))
		b = binary.BigEndian.AppendUint64(b, x.Value)
		b = binary.BigEndian.AppendUint64(b, x.Mask)
	}
	return string(b)
}

// KeyText is the key in readable form.
func (f *Flow) KeyText() string {
	return fmt.Sprintf("table=%d,priority=%d,%s", f.Table, f.Priority, f.Match.String())
}

// InstructionsString prints the instructions the way ovs-ofctl shows them.
func (f *Flow) InstructionsString() string {
	var parts []string
	if f.Meter != 0 {
		parts = append(parts, fmt.Sprintf("meter:%d", f.Meter))
	}
	for _, a := range f.Actions {
		parts = append(parts, a.String())
	}
	if f.MetadataMask != 0 {
		if f.MetadataMask == ^uint64(0) {
			parts = append(parts, fmt.Sprintf("write_metadata:0x%x", f.Metadata))
		} else {
			parts = append(parts, fmt.Sprintf("write_metadata:0x%x/0x%x", f.Metadata, f.MetadataMask))
		}
	}
	if f.Goto != 0 {
		parts = append(parts, fmt.Sprintf("goto_table:%d", f.Goto))
	}
	if len(parts) == 0 {
		return "drop"
	}
	return strings.Join(parts, ",")
}

// String is the canonical text form, close to `ovs-ofctl -O OpenFlow13
// dump-flows` without the counters:
//
//	cookie=0x..., table=1, priority=100, idle_timeout=60, dl_dst=..., actions=output:2
func (f *Flow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cookie=0x%x, table=%d, ", f.Cookie, f.Table)
	if f.IdleTimeout != 0 {
		fmt.Fprintf(&b, "idle_timeout=%d, ", f.IdleTimeout)
	}
	if f.HardTimeout != 0 {
		fmt.Fprintf(&b, "hard_timeout=%d, ", f.HardTimeout)
	}
	fmt.Fprintf(&b, "priority=%d", f.Priority)
	if m := f.Match.String(); m != "" {
		b.WriteString("," + m)
	}
	b.WriteString(" actions=" + f.InstructionsString())
	return b.String()
}

// Equal reports whether two flows with the same key are identical in
// everything the reconciler manages.
func (f *Flow) Equal(o *Flow) bool {
	return f.Cookie == o.Cookie && f.IdleTimeout == o.IdleTimeout && f.HardTimeout == o.HardTimeout &&
		f.InstructionsString() == o.InstructionsString()
}

// SameButInstructions reports whether only the instructions differ, so an
// OFPFC_MODIFY_STRICT (which keeps the cookie and timeouts) is enough.
func (f *Flow) SameButInstructions(o *Flow) bool {
	return f.Cookie == o.Cookie && f.IdleTimeout == o.IdleTimeout && f.HardTimeout == o.HardTimeout
}

// Group types.
const (
	GroupAll      = 0
	GroupSelect   = 1
	GroupIndirect = 2
	GroupFF       = 3
)

// Bucket is one group bucket.
type Bucket struct {
	Weight     uint16
	WatchPort  uint32
	WatchGroup uint32
	Actions    []Action
}

// Group is an OpenFlow group.
type Group struct {
	ID      uint32
	Type    uint8
	Buckets []Bucket
}

func (g *Group) String() string {
	types := []string{"all", "select", "indirect", "ff"}
	t := fmt.Sprintf("%d", g.Type)
	if int(g.Type) < len(types) {
		t = types[g.Type]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "group_id=%d,type=%s", g.ID, t)
	for _, bk := range g.Buckets {
		b.WriteString(",bucket=")
		if g.Type == GroupSelect {
			fmt.Fprintf(&b, "weight:%d,", bk.Weight)
		}
		if g.Type == GroupFF {
			fmt.Fprintf(&b, "watch_port:%s,", PortString(bk.WatchPort))
		}
		b.WriteString("actions=" + ActionsString(bk.Actions))
	}
	return b.String()
}

// Meter band types.
const (
	BandDrop       = 1
	BandDSCPRemark = 2
)

// Meter flags.
const (
	MeterKbps  = 1 << 0
	MeterPktps = 1 << 1
	MeterBurst = 1 << 2
	MeterStats = 1 << 3
)

// Band is one meter band.
type Band struct {
	Type      uint16
	Rate      uint32
	Burst     uint32
	PrecLevel uint8
}

// Meter is an OpenFlow meter.
type Meter struct {
	ID    uint32
	Flags uint16
	Bands []Band
}

func (m *Meter) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "meter=%d", m.ID)
	switch {
	case m.Flags&MeterPktps != 0:
		b.WriteString(" pktps")
	default:
		b.WriteString(" kbps")
	}
	if m.Flags&MeterBurst != 0 {
		b.WriteString(" burst")
	}
	if m.Flags&MeterStats != 0 {
		b.WriteString(" stats")
	}
	for _, bd := range m.Bands {
		typ := "drop"
		if bd.Type == BandDSCPRemark {
			typ = fmt.Sprintf("dscp_remark prec_level=%d", bd.PrecLevel)
		}
		fmt.Fprintf(&b, " bands=type=%s rate=%d", typ, bd.Rate)
		if m.Flags&MeterBurst != 0 {
			fmt.Fprintf(&b, " burst_size=%d", bd.Burst)
		}
	}
	return b.String()
}

// State is the full set of flows, groups and meters for one switch.
type State struct {
	Flows  map[string]*Flow
	Groups map[uint32]*Group
	Meters map[uint32]*Meter
}

// NewState makes an empty State.
func NewState() *State {
	return &State{Flows: map[string]*Flow{}, Groups: map[uint32]*Group{}, Meters: map[uint32]*Meter{}}
}

// AddFlow adds f, replacing any flow with the same key. It reports whether
// a different flow with that key was already present.
func (s *State) AddFlow(f *Flow) (conflict bool) {
	k := f.Key()
	if old, ok := s.Flows[k]; ok && !old.Equal(f) {
		conflict = true
	}
	s.Flows[k] = f
	return conflict
}

// SortedFlows returns the flows sorted by table, descending priority, match.
func (s *State) SortedFlows() []*Flow {
	out := make([]*Flow, 0, len(s.Flows))
	for _, f := range s.Flows {
		out = append(out, f)
	}
	SortFlows(out)
	return out
}

// SortFlows orders flows by table, then descending priority, then match
// (in binary key order, which is deterministic and cheap).
func SortFlows(fs []*Flow) {
	type kf struct {
		k string
		f *Flow
	}
	ks := make([]kf, len(fs))
	for i, f := range fs {
		ks[i] = kf{f.Key(), f}
	}
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i].f, ks[j].f
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return ks[i].k < ks[j].k
	})
	for i := range ks {
		fs[i] = ks[i].f
	}
}

// Text renders the whole state as sorted lines, for golden files.
func (s *State) Text() string {
	var b strings.Builder
	for _, f := range s.SortedFlows() {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	ids := make([]uint32, 0, len(s.Groups))
	for id := range s.Groups {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		b.WriteString(s.Groups[id].String())
		b.WriteByte('\n')
	}
	ids = ids[:0]
	for id := range s.Meters {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		b.WriteString(s.Meters[id].String())
		b.WriteByte('\n')
	}
	return b.String()
}
