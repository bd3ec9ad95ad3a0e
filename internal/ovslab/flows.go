package ovslab

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultPriority is the OpenFlow default flow priority; ovs-ofctl omits
// "priority=" from a dumped flow that has it.
const DefaultPriority = 32768

// DumpedFlow is one line of `ovs-ofctl dump-flows` output.
type DumpedFlow struct {
	Cookie      uint64
	Table       int
	Priority    int
	DurationSec float64
	IdleTimeout int
	HardTimeout int
	Importance  int
	// Flags are the bare flow-mod flags ovs-ofctl prints before the match,
	// in order: send_flow_rem, check_overlap, reset_counts,
	// no_packet_counts, no_byte_counts.
	Flags []string
	// Match is the match without "priority=", exactly as OVS prints it,
	// e.g. "ip,in_port=5,nw_dst=10.0.0.1" ("" matches everything).
	Match    string
	Actions  string
	NPackets uint64
	NBytes   uint64
	// IdleAge and HardAge are only printed for OpenFlow 1.0/NXM dumps.
	IdleAge int
	HardAge int
	// Raw is the line as printed, without leading/trailing spaces.
	Raw string
}

// volatile stats: parsed but left out of Key and Spec.
var statKeys = map[string]bool{
	"cookie": true, "duration": true, "table": true, "n_packets": true,
	"n_bytes": true, "idle_timeout": true, "hard_timeout": true,
	"idle_age": true, "hard_age": true, "importance": true,
}

// Key is a stable, normalised text for the flow: the dump-flows line without
// duration, n_packets, n_bytes, idle_age and hard_age, and with the priority
// always explicit. Two dumps of the same installed flow give the same Key.
//
//	cookie=0x1234, table=0, idle_timeout=60, priority=100,ip,in_port=5 actions=LOCAL
func (f DumpedFlow) Key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cookie=%#x, table=%d, ", f.Cookie, f.Table)
	if f.IdleTimeout != 0 {
		fmt.Fprintf(&b, "idle_timeout=%d, ", f.IdleTimeout)
	}
	if f.HardTimeout != 0 {
		fmt.Fprintf(&b, "hard_timeout=%d, ", f.HardTimeout)
	}
	if f.Importance != 0 {
		fmt.Fprintf(&b, "importance=%d, ", f.Importance)
	}
	for _, fl := range f.Flags {
		b.WriteString(fl)
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "priority=%d", f.Priority)
	if f.Match != "" {
		b.WriteString("," + f.Match)
	}
	b.WriteString(" actions=" + f.Actions)
	return b.String()
}

// Spec renders the flow in `ovs-ofctl add-flow` syntax, so that
// AddFlow(f.Spec()) reinstalls it (importance needs OpenFlow 1.4 and is
// left out).
func (f DumpedFlow) Spec() string {
	parts := []string{fmt.Sprintf("cookie=%#x", f.Cookie), fmt.Sprintf("table=%d", f.Table),
		fmt.Sprintf("priority=%d", f.Priority)}
	if f.IdleTimeout != 0 {
		parts = append(parts, fmt.Sprintf("idle_timeout=%d", f.IdleTimeout))
	}
	if f.HardTimeout != 0 {
		parts = append(parts, fmt.Sprintf("hard_timeout=%d", f.HardTimeout))
	}
	parts = append(parts, f.Flags...)
	if f.Match != "" {
		parts = append(parts, f.Match)
	}
	parts = append(parts, "actions="+f.Actions)
	return strings.Join(parts, ",")
}

// MatchSpec renders table, priority and match, the selector that
// `ovs-ofctl --strict del-flows` (Bridge.DelFlows) needs for this flow.
func (f DumpedFlow) MatchSpec() string {
	s := fmt.Sprintf("table=%d,priority=%d", f.Table, f.Priority)
	if f.Match != "" {
		s += "," + f.Match
	}
	return s
}

// ParseDumpFlows parses the output of `ovs-ofctl dump-flows` (any OpenFlow
// version, with stats). Header lines such as "OFPST_FLOW reply (OF1.3)
// (xid=0x2):" and blank lines are skipped. Flows are returned in the order
// printed.
func ParseDumpFlows(text string) ([]DumpedFlow, error) {
	var flows []DumpedFlow
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if isReplyHeader(line) {
			continue
		}
		f, err := ParseFlowLine(line)
		if err != nil {
			return nil, fmt.Errorf("dump-flows line %d: %v", i+1, err)
		}
		flows = append(flows, f)
	}
	return flows, nil
}

func isReplyHeader(line string) bool {
	return strings.HasSuffix(line, ":") && strings.Contains(line, " reply")
}

// ParseFlowLine parses a single dump-flows line.
func ParseFlowLine(line string) (DumpedFlow, error) {
	line = strings.TrimSpace(line)
	f := DumpedFlow{Raw: line, Priority: DefaultPriority}
	var pre string
	if strings.HasPrefix(line, "actions=") {
		f.Actions = strings.TrimPrefix(line, "actions=")
	} else {
		idx := strings.Index(line, " actions=")
		if idx < 0 {
			return f, fmt.Errorf("no actions in %q", line)
		}
		pre, f.Actions = line[:idx], line[idx+len(" actions="):]
	}
	if f.Actions == "" {
		return f, fmt.Errorf("empty actions in %q", line)
	}
	// "n_bytes=0, actions=drop": the comma before " actions=" stays in pre.
	pre = strings.TrimSuffix(strings.TrimSpace(pre), ",")
	var words []string
	for _, part := range strings.Split(pre, ", ") {
		words = append(words, strings.Fields(part)...)
	}
	for i, w := range words {
		k, v, hasEq := strings.Cut(w, "=")
		switch {
		case hasEq && statKeys[k]:
			if err := f.setStat(k, v); err != nil {
				return f, fmt.Errorf("%s in %q: %v", k, line, err)
			}
		case i == len(words)-1 && !isFlowFlag(w):
			if err := f.setMatch(w); err != nil {
				return f, fmt.Errorf("%v in %q", err, line)
			}
		default:
			if hasEq {
				return f, fmt.Errorf("unexpected field %q in %q", w, line)
			}
			f.Flags = append(f.Flags, w)
		}
	}
	return f, nil
}

func isFlowFlag(w string) bool {
	switch w {
	case "send_flow_rem", "check_overlap", "reset_counts", "no_packet_counts", "no_byte_counts", "no_readonly_table":
		return true
	}
	return false
}

func (f *DumpedFlow) setStat(k, v string) error {
	var err error
	switch k {
	case "cookie":
		f.Cookie, err = strconv.ParseUint(v, 0, 64)
	case "duration":
		f.DurationSec, err = strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
	case "table":
		f.Table, err = strconv.Atoi(v)
	case "n_packets":
		f.NPackets, err = strconv.ParseUint(v, 10, 64)
	case "n_bytes":
		f.NBytes, err = strconv.ParseUint(v, 10, 64)
	case "idle_timeout":
		f.IdleTimeout, err = strconv.Atoi(v)
	case "hard_timeout":
		f.HardTimeout, err = strconv.Atoi(v)
	case "idle_age":
		f.IdleAge, err = strconv.Atoi(v)
	case "hard_age":
		f.HardAge, err = strconv.Atoi(v)
	case "importance":
		f.Importance, err = strconv.Atoi(v)
	}
	return err
}

func (f *DumpedFlow) setMatch(m string) error {
	var rest []string
	for _, fld := range strings.Split(m, ",") {
		if p, ok := strings.CutPrefix(fld, "priority="); ok {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bad priority %q", p)
			}
			f.Priority = n
			continue
		}
		rest = append(rest, fld)
	}
	f.Match = strings.Join(rest, ",")
	return nil
}

// SortFlows orders flows by table, then priority (highest first), then
// match and actions, giving a deterministic order for comparisons.
func SortFlows(flows []DumpedFlow) {
	slices.SortStableFunc(flows, func(a, b DumpedFlow) int {
		return cmp.Or(
			cmp.Compare(a.Table, b.Table),
			cmp.Compare(b.Priority, a.Priority),
			strings.Compare(a.Match, b.Match),
			strings.Compare(a.Actions, b.Actions),
			cmp.Compare(a.Cookie, b.Cookie),
		)
	})
}

// FlowKeys returns the Key of every flow, in order.
func FlowKeys(flows []DumpedFlow) []string {
	keys := make([]string, len(flows))
	for i, f := range flows {
		keys[i] = f.Key()
	}
	return keys
}
