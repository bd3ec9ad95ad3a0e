package ovslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvE2E is the environment variable that enables the real-OVS and Mininet
// tests. make test sets it to 1.
const EnvE2E = "NIMBUS_E2E"

// OwnerKey and PrefixKey are the external_ids keys that mark OVS bridges made
// by this harness (and by test/mininet/pingall.py). OwnerKey holds the PID of
// the process that owns the bridge; a bridge whose owner is dead is stale.
const (
	OwnerKey  = "nimbus-lab-owner"
	PrefixKey = "nimbus-lab-prefix"
)

// cmdTimeout bounds every single ovs-vsctl/ovs-ofctl/ovs-appctl invocation.
const cmdTimeout = 30 * time.Second

var (
	requireMu sync.Mutex
	requireOK bool
)

// RequireE2E skips the test unless NIMBUS_E2E=1, then calls Require.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("real-OVS/Mininet test: set %s=1 to run it (make test does)", EnvE2E)
	}
	Require(t)
}

// Require makes sure the system Open vSwitch answers, starting it with
// scripts/ovs-start.sh from the repository root when needed. It fails the
// test (never skips) when the OVS tools are missing or OVS cannot be started.
// It also deletes stale lab bridges left behind by dead test processes.
func Require(t testing.TB) {
	t.Helper()
	requireMu.Lock()
	defer requireMu.Unlock()
	if requireOK {
		return
	}
	var missing []string
	for _, tool := range []string{"ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("ovslab: Open vSwitch tools not found in PATH (%s). "+
			"Install the lab dependencies with scripts/deps.sh, or run `make test`, which does it.",
			strings.Join(missing, ", "))
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	script := filepath.Join(root, "scripts", "ovs-start.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput()
	if err != nil {
		t.Fatalf("ovslab: %s failed: %v\n%s\n"+
			"Is Open vSwitch installed (scripts/deps.sh) and are you root?", script, err, out)
	}
	if _, err := run("ovs-vsctl", "--timeout=5", "show"); err != nil {
		t.Fatalf("ovslab: OVS does not answer after %s: %v", script, err)
	}
	if err := SweepStale(); err != nil {
		t.Logf("ovslab: sweeping stale bridges: %v", err)
	}
	requireOK = true
}

// RepoRoot returns the closest directory at or above the working directory
// that contains go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// run executes a command with cmdTimeout and returns its stdout. On failure
// the error carries the exit status and stderr.
func run(name string, args ...string) (string, error) {
	return runInput(nil, name, args...)
}

func runInput(stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Vsctl runs ovs-vsctl with a timeout and returns its trimmed stdout,
// failing the test on error.
func Vsctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := run("ovs-vsctl", append([]string{"--timeout=20"}, args...)...)
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	return strings.TrimSpace(out)
}

// pidAlive reports whether a process with this PID exists and is not a
// zombie (a killed process nobody has reaped yet still answers kill -0).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill -0
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		st := s[i+2]
		return st != 'Z' && st != 'X'
	}
	return true
}

// SweepStale deletes lab bridges (external_ids:nimbus-lab-owner set) whose
// owner process no longer exists, together with their veth ports. Bridges of
// live processes, and bridges without the marker, are never touched.
func SweepStale() error {
	rows, err := vsctlRows("--columns=name,external_ids", "list", "bridge")
	if err != nil {
		return err
	}
	var errs []error
	for _, row := range rows {
		name := ovsAtom(row["name"])
		owner, ok := ovsMap(row["external_ids"])[OwnerKey]
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(owner)
		if err != nil || pidAlive(pid) {
			continue
		}
		if err := deleteBridge(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteBridge removes a bridge and deletes the veth devices that were
// attached to it (system ports whose kernel device still exists). Internal
// ports vanish with the bridge.
func deleteBridge(name string) error {
	var veths []string
	if out, err := run("ovs-vsctl", "--timeout=10", "list-ports", name); err == nil {
		for _, p := range strings.Fields(out) {
			typ, err := run("ovs-vsctl", "--timeout=10", "get", "interface", p, "type")
			if err == nil && strings.Trim(strings.TrimSpace(typ), `"`) == "" {
				veths = append(veths, p)
			}
		}
	}
	_, err := run("ovs-vsctl", "--timeout=20", "--if-exists", "del-br", name)
	for _, v := range veths {
		if isVeth(v) {
			_, _ = run("ip", "link", "del", v)
		}
	}
	return err
}

// isVeth reports whether a network device of this name exists and is a veth.
func isVeth(name string) bool {
	out, err := run("ip", "-d", "link", "show", "dev", name)
	return err == nil && strings.Contains(out, "veth")
}
