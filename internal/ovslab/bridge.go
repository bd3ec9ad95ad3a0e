package ovslab

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BridgeOptions configures NewBridge. The zero value gives an OpenFlow 1.3
// bridge with a random datapath ID and no controller.
type BridgeOptions struct {
	// Name overrides the generated "nb"+8-hex name (at most 15 bytes).
	Name string
	// DPID is the datapath ID; 0 picks a random one.
	DPID uint64
	// Controllers are OVS controller targets, e.g. "tcp:127.0.0.1:6653".
	Controllers []string
	// AllowOF10 adds OpenFlow10 to the bridge's protocols.
	AllowOF10 bool
	// Protocols, when set, replaces the protocol list entirely
	// (e.g. []string{"OpenFlow13", "OpenFlow14"}).
	Protocols []string
	// FailMode is "secure" (default) or "standalone".
	FailMode string
	// InactivityProbe sets the controllers' inactivity_probe. OVS works in
	// whole seconds and raises anything below 5 s to 5 s (rconn), so a
	// silent controller is dropped after about 2x the probe. 0 keeps the
	// OVS default (5 s); use DisableInactivityProbe to turn probing off.
	InactivityProbe time.Duration
	// DisableInactivityProbe sets inactivity_probe=0.
	DisableInactivityProbe bool
	// MaxBackoff sets the controllers' max_backoff (minimum 1 s). 0 keeps the
	// OVS default (8 s). 1 s makes reconnect tests fast.
	MaxBackoff time.Duration
	// OtherConfig adds bridge other_config entries.
	OtherConfig map[string]string
}

// Bridge is an OVS bridge owned by one test.
type Bridge struct {
	t    testing.TB
	Name string
	DPID uint64
	// Protocols is the value of the bridge's protocols column,
	// e.g. "OpenFlow13" or "OpenFlow10,OpenFlow13".
	Protocols string

	opts      BridgeOptions
	logPath   string
	logOffset int64
	shared    *bridgeShared
}

// bridgeShared is the state common to a Bridge and its For copies.
type bridgeShared struct {
	mu    sync.Mutex
	veths []string
}

// For returns a view of the bridge that reports failures to t, for use in
// subtests (t.Run) and their goroutines: the methods call t.Fatal, which
// must happen on the goroutine of the test it belongs to.
func (b *Bridge) For(t testing.TB) *Bridge {
	c := *b
	c.t = t
	return &c
}

// ControllerStatus is one row of the Controller table of a bridge.
type ControllerStatus struct {
	UUID   string
	Target string
	// IsConnected is the live state: the last rconn event that
	// ovs-vswitchd logged for this bridge and target since the bridge was
	// made, or DBIsConnected when the log says nothing.
	IsConnected bool
	// DBIsConnected is the Controller.is_connected column, which OVS
	// refreshes only every 5 s.
	DBIsConnected bool
	// Role is "master", "slave" or "other" ("" until OVS reports one);
	// from OVSDB, so up to 5 s old.
	Role string
	// Status is OVS's status map (state, last_error, sec_since_connect...),
	// from OVSDB, so up to 5 s old.
	Status map[string]string
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RandomDPID returns a random non-zero datapath ID.
func RandomDPID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// NewBridge creates a uniquely named userspace (netdev) bridge and deletes it
// in t.Cleanup, even when the test fails. It calls Require first.
func NewBridge(t testing.TB, opts BridgeOptions) *Bridge {
	t.Helper()
	Require(t)
	name := opts.Name
	if name == "" {
		name = "nb" + randomHex(4)
	}
	if len(name) > 15 {
		t.Fatalf("ovslab: bridge name %q longer than 15 bytes", name)
	}
	dpid := opts.DPID
	if dpid == 0 {
		dpid = RandomDPID()
	}
	protocols := "OpenFlow13"
	if opts.AllowOF10 {
		protocols = "OpenFlow10,OpenFlow13"
	}
	if len(opts.Protocols) > 0 {
		protocols = strings.Join(opts.Protocols, ",")
	}
	failMode := opts.FailMode
	if failMode == "" {
		failMode = "secure"
	}
	b := &Bridge{t: t, Name: name, DPID: dpid, Protocols: protocols, opts: opts, shared: &bridgeShared{}}
	b.logPath = vswitchdLogPath()
	b.logOffset = logSize(b.logPath)

	args := []string{"--timeout=20", "--", "add-br", name,
		"--", "set", "bridge", name,
		"datapath_type=netdev",
		"fail_mode=" + failMode,
		"protocols=" + protocols,
		fmt.Sprintf("other_config:datapath-id=%016x", dpid),
		"other_config:disable-in-band=true",
		fmt.Sprintf("external_ids:%s=%d", OwnerKey, os.Getpid()),
		fmt.Sprintf("external_ids:%s=%s", PrefixKey, name),
	}
	keys := make([]string, 0, len(opts.OtherConfig))
	for k := range opts.OtherConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, fmt.Sprintf("other_config:%s=%q", k, opts.OtherConfig[k]))
	}
	args = append(args, b.controllerArgs(opts.Controllers)...)

	// Register the cleanup before creating, so a half-made bridge goes too.
	t.Cleanup(func() {
		if err := deleteBridge(name); err != nil {
			t.Errorf("ovslab: deleting bridge %s: %v", name, err)
		}
		b.shared.mu.Lock()
		veths := append([]string(nil), b.shared.veths...)
		b.shared.mu.Unlock()
		for _, v := range veths {
			if isVeth(v) {
				_, _ = run("ip", "link", "del", v)
			}
		}
	})
	if _, err := run("ovs-vsctl", args...); err != nil {
		t.Fatalf("ovslab: creating bridge: %v", err)
	}
	got, err := run("ovs-vsctl", "--timeout=10", "get", "bridge", name, "datapath_id")
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	if want := fmt.Sprintf("%016x", dpid); strings.Trim(strings.TrimSpace(got), `"`) != want {
		t.Fatalf("ovslab: bridge %s has datapath_id %s, want %s", name, strings.TrimSpace(got), want)
	}
	return b
}

// controllerArgs returns the ovs-vsctl arguments that set the bridge's
// controllers (in the same transaction) with the configured probe/backoff.
func (b *Bridge) controllerArgs(targets []string) []string {
	if len(targets) == 0 {
		return []string{"--", "clear", "bridge", b.Name, "controller"}
	}
	var ids []string
	var args []string
	for i, target := range targets {
		id := fmt.Sprintf("@c%d", i)
		ids = append(ids, id)
		args = append(args, "--", "--id="+id, "create", "controller", fmt.Sprintf("target=%q", target))
		switch {
		case b.opts.DisableInactivityProbe:
			args = append(args, "inactivity_probe=0")
		case b.opts.InactivityProbe > 0:
			args = append(args, fmt.Sprintf("inactivity_probe=%d", b.opts.InactivityProbe.Milliseconds()))
		}
		if b.opts.MaxBackoff > 0 {
			args = append(args, fmt.Sprintf("max_backoff=%d", b.opts.MaxBackoff.Milliseconds()))
		}
	}
	return append(args, "--", "set", "bridge", b.Name, "controller=["+strings.Join(ids, ",")+"]")
}

// SetControllers replaces the bridge's controllers (nil or empty removes
// them all), keeping the probe and backoff options.
func (b *Bridge) SetControllers(targets ...string) {
	b.t.Helper()
	if _, err := run("ovs-vsctl", append([]string{"--timeout=20"}, b.controllerArgs(targets)...)...); err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
}

// DPIDHex returns the datapath ID as 16 hex digits.
func (b *Bridge) DPIDHex() string { return fmt.Sprintf("%016x", b.DPID) }

// String returns the bridge name.
func (b *Bridge) String() string { return b.Name }

// ofctlVersion is the -O argument for ovs-ofctl: the highest version the
// bridge speaks among those ovs-ofctl needs (1.3 unless the bridge lacks it).
func (b *Bridge) ofctlVersion() string {
	if strings.Contains(b.Protocols, "OpenFlow13") {
		return "OpenFlow13"
	}
	ps := strings.Split(b.Protocols, ",")
	return ps[len(ps)-1]
}

// OfctlErr runs `ovs-ofctl -O <version> ARGS...` (OpenFlow13 unless the
// bridge does not speak it); pass b.Name in ARGS yourself. It returns stdout
// and an error carrying stderr.
func (b *Bridge) OfctlErr(args ...string) (string, error) {
	return run("ovs-ofctl", append([]string{"-O", b.ofctlVersion()}, args...)...)
}

// Ofctl is OfctlErr that fails the test on error.
func (b *Bridge) Ofctl(args ...string) string {
	b.t.Helper()
	out, err := b.OfctlErr(args...)
	if err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
	return out
}

// AddFlow adds one flow in ovs-ofctl syntax, e.g.
// "table=0,priority=10,in_port=1,actions=output:2".
func (b *Bridge) AddFlow(spec string) {
	b.t.Helper()
	b.Ofctl("add-flow", b.Name, spec)
}

// AddFlows adds many flows in one OpenFlow bundle (atomic and fast).
func (b *Bridge) AddFlows(specs ...string) {
	b.t.Helper()
	in := []byte(strings.Join(specs, "\n") + "\n")
	if _, err := runInput(in, "ovs-ofctl", "-O", b.ofctlVersion(), "--bundle", "add-flows", b.Name, "-"); err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
}

// DelFlows deletes flows with `ovs-ofctl --strict del-flows`: spec must give
// the table, priority and full match of the flow (see DumpedFlow.MatchSpec).
func (b *Bridge) DelFlows(spec string) {
	b.t.Helper()
	b.Ofctl("--strict", "del-flows", b.Name, spec)
}

// DelAllFlows deletes every flow of every table.
func (b *Bridge) DelAllFlows() {
	b.t.Helper()
	b.Ofctl("del-flows", b.Name)
}

// DumpFlowsErr is DumpFlows without failing the test. Flows are sorted with
// SortFlows. An optional selector (e.g. "table=0") narrows the dump.
func (b *Bridge) DumpFlowsErr(selector ...string) ([]DumpedFlow, error) {
	args := append([]string{"--no-names", "dump-flows", b.Name}, selector...)
	out, err := b.OfctlErr(args...)
	if err != nil {
		return nil, err
	}
	flows, err := ParseDumpFlows(out)
	if err != nil {
		return nil, err
	}
	SortFlows(flows)
	return flows, nil
}

// DumpFlows returns the bridge's flows (ports as numbers, sorted by table,
// priority descending, match, actions).
func (b *Bridge) DumpFlows(selector ...string) []DumpedFlow {
	b.t.Helper()
	flows, err := b.DumpFlowsErr(selector...)
	if err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
	return flows
}

// DumpGroups returns one line per group, as ovs-ofctl dump-groups prints it
// (e.g. "group_id=1,type=select,bucket=..."), sorted.
func (b *Bridge) DumpGroups() []string {
	b.t.Helper()
	out := b.Ofctl("--no-names", "dump-groups", b.Name)
	var groups []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || isReplyHeader(l) {
			continue
		}
		groups = append(groups, l)
	}
	sort.Strings(groups)
	return groups
}

// DumpMeters returns one entry per meter. ovs-ofctl prints a meter's bands
// on continuation lines; they are joined with a space, e.g.
// "meter=1 kbps burst bands= type=drop rate=1000 burst_size=100".
func (b *Bridge) DumpMeters() []string {
	b.t.Helper()
	out := b.Ofctl("dump-meters", b.Name)
	var meters []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || isReplyHeader(l) {
			continue
		}
		if strings.HasPrefix(l, "meter=") || len(meters) == 0 {
			meters = append(meters, l)
		} else {
			meters[len(meters)-1] += " " + l
		}
	}
	sort.Strings(meters)
	return meters
}

// Trace runs `ovs-appctl ofproto/trace BRIDGE FLOW` and returns its output.
// flow is a microflow such as "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff"
// (add ",arp" / ",ip,nw_dst=..." etc. as needed). No packet is sent.
func (b *Bridge) Trace(flow string) string {
	b.t.Helper()
	out, err := run("ovs-appctl", "ofproto/trace", b.Name, flow)
	if err != nil {
		b.t.Fatalf("ovslab: %v\n%s", err, out)
	}
	return out
}

// TraceDatapathActions returns what follows "Datapath actions: " in the
// trace of flow, e.g. "2" or "drop".
func (b *Bridge) TraceDatapathActions(flow string) string {
	b.t.Helper()
	return DatapathActions(b.Trace(flow))
}

// DatapathActions extracts the last "Datapath actions:" value of an
// ofproto/trace output ("" if absent).
func DatapathActions(trace string) string {
	var last string
	for _, l := range strings.Split(trace, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Datapath actions: "); ok {
			last = strings.TrimSpace(v)
		}
	}
	return last
}

// AddPort adds an internal port with the given OpenFlow port number
// (ofport_request; 0 lets OVS choose) and returns its name. An empty name
// picks "<bridge>p<ofport>", unique on the machine. Internal ports appear as
// tap devices in the root namespace.
func (b *Bridge) AddPort(name string, ofport int) string {
	b.t.Helper()
	return b.AddPortType(name, ofport, "internal", nil)
}

// AddPortType adds a port of any interface type ("internal", "patch", "gre",
// "" for a system device...) with interface options, e.g.
// AddPortType("", 3, "patch", map[string]string{"peer": "other"}).
func (b *Bridge) AddPortType(name string, ofport int, typ string, options map[string]string) string {
	b.t.Helper()
	if name == "" {
		name = fmt.Sprintf("%sp%d", b.Name, ofport)
	}
	if len(name) > 15 {
		b.t.Fatalf("ovslab: port name %q longer than 15 bytes", name)
	}
	args := []string{"--timeout=20", "add-port", b.Name, name, "--", "set", "interface", name}
	if typ != "" {
		args = append(args, "type="+typ)
	}
	if ofport > 0 {
		args = append(args, "ofport_request="+strconv.Itoa(ofport))
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, fmt.Sprintf("options:%s=%q", k, options[k]))
	}
	if _, err := run("ovs-vsctl", args...); err != nil {
		b.t.Fatalf("ovslab: adding port: %v", err)
	}
	if ofport > 0 {
		if got := b.PortNo(name); got != ofport {
			b.t.Fatalf("ovslab: port %s got ofport %d, want %d", name, got, ofport)
		}
	}
	return name
}

// AddVeth creates a veth pair, adds one end to the bridge with the given
// OpenFlow port number and returns both names. Empty name picks
// "<bridge>v<ofport>"; the peer is the name with a trailing "p" replacing the
// last character if needed to stay within 15 bytes. The pair is deleted in
// t.Cleanup. Move the peer into a namespace with `ip link set PEER netns NS`.
func (b *Bridge) AddVeth(name string, ofport int) (port, peer string) {
	b.t.Helper()
	if name == "" {
		name = fmt.Sprintf("%sv%d", b.Name, ofport)
	}
	peer = name + "p"
	if len(peer) > 15 {
		peer = name[:14] + "p"
		if peer == name {
			peer = name[:14] + "q"
		}
	}
	if _, err := run("ip", "link", "add", name, "type", "veth", "peer", "name", peer); err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
	b.shared.mu.Lock()
	b.shared.veths = append(b.shared.veths, name)
	b.shared.mu.Unlock()
	for _, dev := range []string{name, peer} {
		if _, err := run("ip", "link", "set", dev, "up"); err != nil {
			b.t.Fatalf("ovslab: %v", err)
		}
	}
	b.AddPortType(name, ofport, "", nil)
	return name, peer
}

// PortNo returns the OpenFlow port number OVS assigned to an interface
// (-1 while OVS has not assigned one).
func (b *Bridge) PortNo(name string) int {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := run("ovs-vsctl", "--timeout=10", "get", "interface", name, "ofport")
		if err != nil {
			b.t.Fatalf("ovslab: %v", err)
		}
		s := strings.Trim(strings.TrimSpace(out), "[]")
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ControllersErr returns the status of the bridge's controllers in the order
// OVS lists them, without failing the test.
func (b *Bridge) ControllersErr() ([]ControllerStatus, error) {
	rows, err := vsctlRows("--columns=controller", "list", "bridge", b.Name)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("bridge %s: %d rows", b.Name, len(rows))
	}
	var uuids []string
	for _, e := range ovsSet(rows[0]["controller"]) {
		uuids = append(uuids, ovsAtom(e))
	}
	if len(uuids) == 0 {
		return nil, nil
	}
	crow, err := vsctlRows(append([]string{"--columns=_uuid,target,is_connected,role,status",
		"list", "controller"}, uuids...)...)
	if err != nil {
		return nil, err
	}
	live := rconnLogStates(b.logPath, b.logOffset, b.Name)
	var cs []ControllerStatus
	for _, r := range crow {
		dbConnected, _ := r["is_connected"].(bool)
		c := ControllerStatus{
			UUID:          ovsAtom(r["_uuid"]),
			Target:        ovsAtom(r["target"]),
			IsConnected:   dbConnected,
			DBIsConnected: dbConnected,
			Role:          ovsOptional(r["role"]),
			Status:        ovsMap(r["status"]),
		}
		if v, ok := live[c.Target]; ok {
			c.IsConnected = v
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Target < cs[j].Target })
	return cs, nil
}

// Controllers returns the status of the bridge's controllers, sorted by
// target.
func (b *Bridge) Controllers() []ControllerStatus {
	b.t.Helper()
	cs, err := b.ControllersErr()
	if err != nil {
		b.t.Fatalf("ovslab: %v", err)
	}
	return cs
}

// ControllerConnected reports whether at least one of the bridge's
// controllers is connected.
func (b *Bridge) ControllerConnected() bool {
	b.t.Helper()
	for _, c := range b.Controllers() {
		if c.IsConnected {
			return true
		}
	}
	return false
}

// ControllerRoles maps each controller target to its role as OVS reports
// it ("master", "slave", "other"; "" when not connected yet).
func (b *Bridge) ControllerRoles() map[string]string {
	b.t.Helper()
	roles := map[string]string{}
	for _, c := range b.Controllers() {
		roles[c.Target] = c.Role
	}
	return roles
}

// WaitConnected waits until at least one controller is connected, failing
// the test (with the controllers' status) after timeout. It sees a
// connection within milliseconds (see ControllerStatus.IsConnected).
func (b *Bridge) WaitConnected(timeout time.Duration) {
	b.t.Helper()
	b.waitControllers(timeout, "at least one controller connected", func(cs []ControllerStatus) bool {
		for _, c := range cs {
			if c.IsConnected {
				return true
			}
		}
		return false
	})
}

// WaitAllConnected waits until every configured controller is connected.
func (b *Bridge) WaitAllConnected(timeout time.Duration) {
	b.t.Helper()
	b.waitControllers(timeout, "all controllers connected", func(cs []ControllerStatus) bool {
		for _, c := range cs {
			if !c.IsConnected {
				return false
			}
		}
		return len(cs) > 0
	})
}

// WaitDisconnected waits until no controller is connected.
func (b *Bridge) WaitDisconnected(timeout time.Duration) {
	b.t.Helper()
	b.waitControllers(timeout, "no controller connected", func(cs []ControllerStatus) bool {
		for _, c := range cs {
			if c.IsConnected {
				return false
			}
		}
		return true
	})
}

// WaitRole waits until the controller with this target is connected with
// the given role ("master", "slave" or "other"). OVS publishes roles only
// through OVSDB, every 5 s, so allow at least 6 s.
func (b *Bridge) WaitRole(target, role string, timeout time.Duration) {
	b.t.Helper()
	b.waitControllers(timeout, fmt.Sprintf("%s connected as %s", target, role), func(cs []ControllerStatus) bool {
		for _, c := range cs {
			if c.Target == target {
				return c.IsConnected && c.Role == role
			}
		}
		return false
	})
}

func (b *Bridge) waitControllers(timeout time.Duration, what string, ok func([]ControllerStatus) bool) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []ControllerStatus
	var lastErr error
	for {
		cs, err := b.ControllersErr()
		if err == nil && ok(cs) {
			return
		}
		last, lastErr = cs, err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var sb strings.Builder
	for _, c := range last {
		fmt.Fprintf(&sb, "\n  %s connected=%v role=%q status=%v", c.Target, c.IsConnected, c.Role, c.Status)
	}
	if lastErr != nil {
		fmt.Fprintf(&sb, "\n  error: %v", lastErr)
	}
	b.t.Fatalf("ovslab: bridge %s (dpid %s): not %s after %v; controllers:%s",
		b.Name, b.DPIDHex(), what, timeout, sb.String())
}
