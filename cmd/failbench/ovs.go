package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ownerKey marks the bridges failbench made (external_ids), with our PID.
const ownerKey = "failbench-owner"

func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// requireOVS checks that ovs-vswitchd answers.
func requireOVS(ctx context.Context) error {
	if _, err := exec.LookPath("ovs-vsctl"); err != nil {
		return fmt.Errorf("ovs-vsctl not found (apt-get install -y openvswitch-switch): %w", err)
	}
	if _, err := runCmd(ctx, "ovs-vsctl", "--timeout=5", "show"); err != nil {
		return fmt.Errorf("Open vSwitch is not answering (run scripts/ovs-start.sh): %w", err)
	}
	return nil
}

// bridge is a netdev bridge failbench created.
type bridge struct {
	name    string
	dpid    uint64
	targets []string
}

func (br *bridge) dpidHex() string { return fmt.Sprintf("%016x", br.dpid) }

// addBridge creates a secure OpenFlow 1.3 netdev bridge whose controllers
// are targets (each with max_backoff=1000 ms, default inactivity probe).
// It refuses a name that already exists: failbench deletes only bridges
// it made.
func (b *bench) addBridge(ctx context.Context, name string, dpid uint64, targets []string) (*bridge, error) {
	if len(name) > 15 {
		return nil, fmt.Errorf("bridge name %q longer than 15 bytes", name)
	}
	if _, err := runCmd(ctx, "ovs-vsctl", "--timeout=10", "br-exists", name); err == nil {
		return nil, fmt.Errorf("bridge %s already exists; not touching it", name)
	}
	br := &bridge{name: name, dpid: dpid, targets: targets}
	args := []string{"--timeout=20", "--", "add-br", name,
		"--", "set", "bridge", name, "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13",
		fmt.Sprintf("other_config:datapath-id=%016x", dpid), "other_config:disable-in-band=true",
		fmt.Sprintf("external_ids:%s=%d", ownerKey, os.Getpid())}
	var ids []string
	for i, t := range targets {
		id := fmt.Sprintf("@c%d", i)
		ids = append(ids, id)
		args = append(args, "--", "--id="+id, "create", "controller", fmt.Sprintf("target=%q", "tcp:"+t), "max_backoff=1000")
	}
	args = append(args, "--", "set", "bridge", name, "controller=["+strings.Join(ids, ",")+"]")
	b.mu.Lock()
	b.bridges = append(b.bridges, name) // before creating: a half-made bridge goes too
	b.mu.Unlock()
	if _, err := runCmd(ctx, "ovs-vsctl", args...); err != nil {
		return nil, err
	}
	got, err := runCmd(ctx, "ovs-vsctl", "--timeout=10", "get", "bridge", name, "datapath_id")
	if err != nil {
		return nil, err
	}
	if g := strings.Trim(strings.TrimSpace(got), `"`); g != br.dpidHex() {
		return nil, fmt.Errorf("bridge %s has datapath_id %s, want %s", name, g, br.dpidHex())
	}
	return br, nil
}

// delBridge deletes a bridge failbench made, if it still carries our mark.
func delBridge(ctx context.Context, name string) error {
	owner, err := runCmd(ctx, "ovs-vsctl", "--timeout=10", "--if-exists", "get", "bridge", name, "external_ids:"+ownerKey)
	if err != nil {
		if strings.Contains(err.Error(), "no row") || strings.Contains(err.Error(), "no key") {
			return nil
		}
		return err
	}
	owner = strings.Trim(strings.TrimSpace(owner), `"`)
	if owner == "" {
		return nil // gone
	}
	if owner != fmt.Sprint(os.Getpid()) {
		return fmt.Errorf("bridge %s belongs to %s, not to us; left alone", name, owner)
	}
	_, err = runCmd(ctx, "ovs-vsctl", "--timeout=20", "--if-exists", "del-br", name)
	return err
}

// vswitchdLog is ovs-vswitchd's log file (ovs-ctl's default).
func vswitchdLog() string {
	dir := os.Getenv("OVS_LOGDIR")
	if dir == "" {
		dir = "/var/log/openvswitch"
	}
	return filepath.Join(dir, "ovs-vswitchd.log")
}

// logTail reads whole lines appended to a file since it was opened.
type logTail struct {
	path    string
	off     int64
	partial string
}

func newLogTail(path string) *logTail {
	t := &logTail{path: path}
	if st, err := os.Stat(path); err == nil {
		t.off = st.Size()
	}
	return t
}

// next returns the complete lines appended since the last call.
func (t *logTail) next() []string {
	f, err := os.Open(t.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < t.off {
		t.off, t.partial = 0, "" // rotated
	}
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	t.off += int64(len(data))
	text := t.partial + string(data)
	i := strings.LastIndexByte(text, '\n')
	if i < 0 {
		t.partial = text
		return nil
	}
	t.partial = text[i+1:]
	return strings.Split(text[:i], "\n")
}

// rconnEvent is one rconn state change that ovs-vswitchd logged, e.g.
//
//	2026-11-24T21:39:25.824Z|05272|rconn|INFO|br0<->tcp:127.0.0.1:6653: connected
type rconnEvent struct {
	at     time.Time
	bridge string
	target string
	event  string
}

func parseRconn(line string) (rconnEvent, bool) {
	parts := strings.SplitN(line, "|", 5)
	if len(parts) < 5 || parts[2] != "rconn" {
		return rconnEvent{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil {
		return rconnEvent{}, false
	}
	name, rest, ok := strings.Cut(parts[4], "<->")
	if !ok {
		return rconnEvent{}, false
	}
	target, event, ok := strings.Cut(rest, ": ")
	if !ok {
		return rconnEvent{}, false
	}
	return rconnEvent{at: at, bridge: name, target: target, event: event}, true
}

// isDisconnect reports whether an rconn event says the connection ended.
func (e rconnEvent) isDisconnect() bool {
	for _, s := range []string{"connection closed", "connection dropped", "disconnecting", "inactivity probe", "connection timed out"} {
		if strings.Contains(e.event, s) {
			return true
		}
	}
	return false
}

func (e rconnEvent) isConnected() bool { return e.event == "connected" }
