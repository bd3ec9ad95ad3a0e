package ovslab

import (
	"reflect"
	"strings"
	"testing"
)

// Captured from ovs-ofctl 3.1.0 (-O OpenFlow13 dump-flows) on this lab.
const sampleOF13 = `OFPST_FLOW reply (OF1.3) (xid=0x2):
 cookie=0x1234, duration=9.246s, table=0, n_packets=3, n_bytes=294, idle_timeout=60, hard_timeout=300, priority=100,ip,in_port=5,nw_dst=10.0.0.1 actions=LOCAL
 cookie=0x0, duration=9.230s, table=1, n_packets=0, n_bytes=0, priority=0 actions=drop
 cookie=0x0, duration=0.105s, table=2, n_packets=0, n_bytes=0, priority=10,ip actions=ct(commit,zone=5,nat(src=10.0.0.1)),resubmit(,3)
 cookie=0x0, duration=9.196s, table=3, n_packets=0, n_bytes=0, send_flow_rem priority=5,arp actions=CONTROLLER:65535
 cookie=0x0, duration=0.087s, table=4, n_packets=0, n_bytes=0, priority=10,reg0=0x5/0xff,metadata=0x7 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],load:0x1->NXM_NX_REG1[0..7],learn(table=10,idle_timeout=30,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),goto_table:5
 cookie=0x0, duration=0.025s, table=4, n_packets=0, n_bytes=0, reset_counts no_packet_counts priority=10,tcp,tp_dst=80 actions=group:1
 cookie=0x0, duration=0.046s, table=5, n_packets=0, n_bytes=0, actions=drop
 cookie=0x0, duration=0.031s, table=5, n_packets=0, n_bytes=0, udp actions=drop
 cookie=0xffffffffffffffff, duration=6.704s, table=6, n_packets=12, n_bytes=1176, priority=1 actions=meter:1,output:5
`

// OpenFlow 1.0 (NXST) dumps add idle_age.
const sampleOF10 = `NXST_FLOW reply (xid=0x4):
 cookie=0x1234, duration=15.945s, table=0, n_packets=0, n_bytes=0, idle_timeout=60, hard_timeout=300, idle_age=15, priority=100,ip,in_port=5,nw_dst=10.0.0.1 actions=LOCAL
 cookie=0x0, duration=0.075s, table=5, n_packets=0, n_bytes=0, idle_age=0, actions=drop
`

func TestParseDumpFlowsOF13(t *testing.T) {
	flows, err := ParseDumpFlows(sampleOF13)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 9 {
		t.Fatalf("got %d flows, want 9", len(flows))
	}
	f := flows[0]
	want := DumpedFlow{
		Cookie: 0x1234, Table: 0, Priority: 100, DurationSec: 9.246,
		IdleTimeout: 60, HardTimeout: 300, Match: "ip,in_port=5,nw_dst=10.0.0.1",
		Actions: "LOCAL", NPackets: 3, NBytes: 294,
		Raw: strings.TrimSpace(strings.Split(sampleOF13, "\n")[1]),
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("flow 0:\n got %+v\nwant %+v", f, want)
	}
	if got, want := f.Key(), "cookie=0x1234, table=0, idle_timeout=60, hard_timeout=300, priority=100,ip,in_port=5,nw_dst=10.0.0.1 actions=LOCAL"; got != want {
		t.Errorf("Key:\n got %s\nwant %s", got, want)
	}
	if got, want := f.Spec(), "cookie=0x1234,table=0,priority=100,idle_timeout=60,hard_timeout=300,ip,in_port=5,nw_dst=10.0.0.1,actions=LOCAL"; got != want {
		t.Errorf("Spec:\n got %s\nwant %s", got, want)
	}
	if got, want := f.MatchSpec(), "table=0,priority=100,ip,in_port=5,nw_dst=10.0.0.1"; got != want {
		t.Errorf("MatchSpec: got %s want %s", got, want)
	}

	cases := []struct {
		i        int
		table    int
		priority int
		match    string
		actions  string
		flags    []string
	}{
		{1, 1, 0, "", "drop", nil},
		{2, 2, 10, "ip", "ct(commit,zone=5,nat(src=10.0.0.1)),resubmit(,3)", nil},
		{3, 3, 5, "arp", "CONTROLLER:65535", []string{"send_flow_rem"}},
		{4, 4, 10, "reg0=0x5/0xff,metadata=0x7", "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],load:0x1->NXM_NX_REG1[0..7],learn(table=10,idle_timeout=30,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),goto_table:5", nil},
		{5, 4, 10, "tcp,tp_dst=80", "group:1", []string{"reset_counts", "no_packet_counts"}},
		{6, 5, DefaultPriority, "", "drop", nil},
		{7, 5, DefaultPriority, "udp", "drop", nil},
	}
	for _, c := range cases {
		f := flows[c.i]
		if f.Table != c.table || f.Priority != c.priority || f.Match != c.match || f.Actions != c.actions || !reflect.DeepEqual(f.Flags, c.flags) {
			t.Errorf("flow %d: got table=%d priority=%d match=%q actions=%q flags=%q; want %d %d %q %q %q",
				c.i, f.Table, f.Priority, f.Match, f.Actions, f.Flags, c.table, c.priority, c.match, c.actions, c.flags)
		}
	}
	if got := flows[8].Cookie; got != 0xffffffffffffffff {
		t.Errorf("cookie: got %#x", got)
	}
	if got, want := flows[5].Key(), "cookie=0x0, table=4, reset_counts no_packet_counts priority=10,tcp,tp_dst=80 actions=group:1"; got != want {
		t.Errorf("Key with flags:\n got %s\nwant %s", got, want)
	}
	if got, want := flows[6].Spec(), "cookie=0x0,table=5,priority=32768,actions=drop"; got != want {
		t.Errorf("Spec empty match: got %s want %s", got, want)
	}
}

func TestKeyIgnoresVolatileStats(t *testing.T) {
	a, err := ParseFlowLine(" cookie=0x1, duration=1.000s, table=0, n_packets=1, n_bytes=98, idle_age=1, priority=5,ip actions=drop")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseFlowLine("cookie=0x1, duration=99.5s, table=0, n_packets=100, n_bytes=9800, idle_age=0, hard_age=3, priority=5,ip actions=drop")
	if err != nil {
		t.Fatal(err)
	}
	if a.Key() != b.Key() || a.Spec() != b.Spec() {
		t.Errorf("keys differ: %q vs %q", a.Key(), b.Key())
	}
	if b.HardAge != 3 || b.DurationSec != 99.5 {
		t.Errorf("stats not parsed: %+v", b)
	}
}

func TestParseDumpFlowsOF10(t *testing.T) {
	flows, err := ParseDumpFlows(sampleOF10)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("got %d flows", len(flows))
	}
	if flows[0].IdleAge != 15 || flows[0].Priority != 100 || flows[0].Match != "ip,in_port=5,nw_dst=10.0.0.1" {
		t.Errorf("flow 0: %+v", flows[0])
	}
	if flows[1].Match != "" || flows[1].Priority != DefaultPriority || flows[1].Actions != "drop" {
		t.Errorf("flow 1: %+v", flows[1])
	}
	// Same flow as in the OF1.3 dump: same Key.
	f13, _ := ParseDumpFlows(sampleOF13)
	if flows[0].Key() != f13[0].Key() {
		t.Errorf("OF1.0 and OF1.3 keys differ:\n%s\n%s", flows[0].Key(), f13[0].Key())
	}
}

func TestParseDumpFlowsEmptyAndErrors(t *testing.T) {
	flows, err := ParseDumpFlows("OFPST_FLOW reply (OF1.3) (xid=0x2):\n")
	if err != nil || len(flows) != 0 {
		t.Errorf("empty dump: %v %v", flows, err)
	}
	for _, bad := range []string{
		"cookie=0x0, duration=1s, table=0, priority=1",             // no actions
		"cookie=zz, duration=1s, table=0, priority=1 actions=drop", // bad cookie
		"cookie=0x0, table=x, priority=1 actions=drop",             // bad table
		"cookie=0x0, table=0, priority=abc actions=drop",           // bad priority
		"cookie=0x0, table=0, priority=1 actions=",                 // empty actions
	} {
		if _, err := ParseDumpFlows(bad); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestSortFlows(t *testing.T) {
	flows, err := ParseDumpFlows(sampleOF13)
	if err != nil {
		t.Fatal(err)
	}
	// Reverse, then sort back.
	for i, j := 0, len(flows)-1; i < j; i, j = i+1, j-1 {
		flows[i], flows[j] = flows[j], flows[i]
	}
	SortFlows(flows)
	for i := 1; i < len(flows); i++ {
		a, b := flows[i-1], flows[i]
		if a.Table > b.Table || (a.Table == b.Table && a.Priority < b.Priority) {
			t.Fatalf("not sorted at %d: %s / %s", i, a.Key(), b.Key())
		}
	}
	// Within table 5 the default-priority flows sort by match: "" < "udp".
	keys := FlowKeys(flows)
	if !strings.HasSuffix(keys[6], "priority=32768 actions=drop") || !strings.HasSuffix(keys[7], "priority=32768,udp actions=drop") {
		t.Errorf("table 5 order: %q, %q", keys[6], keys[7])
	}
}

func TestDatapathActions(t *testing.T) {
	trace := `Flow: ip,in_port=5,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=10.0.0.1,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("nb01")
--------------
 0. ip,in_port=5,nw_dst=10.0.0.1, priority 100, cookie 0x1234
    output:6

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=5,nw_dst=10.0.0.1,nw_frag=no
Datapath actions: 3
`
	if got := DatapathActions(trace); got != "3" {
		t.Errorf("got %q", got)
	}
	if got := DatapathActions("nothing"); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestParseRconnLog(t *testing.T) {
	log := `2026-11-24T21:18:50.873Z|00351|rconn|INFO|nb01<->tcp:127.0.0.1:6653: connecting...
2026-11-24T21:18:50.873Z|00353|rconn|INFO|nb01<->tcp:127.0.0.1:6653: connected
2026-11-24T21:18:50.874Z|00354|rconn|INFO|nb011<->tcp:127.0.0.1:6653: connection dropped (Connection reset by peer)
2026-11-24T21:18:50.883Z|00360|rconn|INFO|nb01<->tcp:127.0.0.1:6654: connecting...
2026-11-24T21:18:50.884Z|00362|rconn|WARN|nb01<->tcp:127.0.0.1:6654: connection failed (Connection refused)
2026-11-24T21:18:50.893Z|00369|rconn|WARN|nb01<->unix#52: connection dropped (Protocol error)
2026-11-24T21:18:51.000Z|00370|bridge|INFO|bridge nb01: using datapath ID 0000000000000001
2026-11-24T21:18:52.000Z|00371|rconn|INFO|nb01<->tcp:127.0.0.1:6655: connected
2026-11-24T21:18:53.000Z|00372|rconn|ERR|nb01<->tcp:127.0.0.1:6655: no response to inactivity probe after 5 seconds, disconnecting
`
	got := parseRconnLog(log, "nb01")
	want := map[string]bool{
		"tcp:127.0.0.1:6653": true,
		"tcp:127.0.0.1:6654": false,
		"unix#52":            false,
		"tcp:127.0.0.1:6655": false,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestOvsdbJSON(t *testing.T) {
	one := []any{"uuid", "a"}
	two := []any{"set", []any{[]any{"uuid", "a"}, []any{"uuid", "b"}}}
	empty := []any{"set", []any{}}
	if got := ovsSet(one); len(got) != 1 || ovsAtom(got[0]) != "a" {
		t.Errorf("one: %v", got)
	}
	if got := ovsSet(two); len(got) != 2 || ovsAtom(got[1]) != "b" {
		t.Errorf("two: %v", got)
	}
	if got := ovsSet(empty); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
	if ovsOptional(empty) != "" || ovsOptional("master") != "master" {
		t.Error("ovsOptional")
	}
	m := ovsMap([]any{"map", []any{[]any{"state", "ACTIVE"}, []any{"sec_since_connect", "0"}}})
	if m["state"] != "ACTIVE" || m["sec_since_connect"] != "0" {
		t.Errorf("map: %v", m)
	}
}
