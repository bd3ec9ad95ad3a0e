package ovslab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SystemPython is the interpreter that sees Debian's mininet package. A
// python3 earlier in PATH (pyenv, venv) usually does not.
const SystemPython = "/usr/bin/python3"

var (
	mininetMu sync.Mutex
	mininetOK bool
)

// RequireMininet calls Require, then checks that Mininet imports under
// SystemPython and removes leftovers of dead lab runs
// (test/mininet/cleanup.sh). It fails the test when Mininet is missing.
func RequireMininet(t testing.TB) {
	t.Helper()
	Require(t)
	mininetMu.Lock()
	defer mininetMu.Unlock()
	if mininetOK {
		return
	}
	out, err := exec.Command(SystemPython, "-c", "import mininet.net").CombinedOutput()
	if err != nil {
		t.Fatalf("ovslab: Mininet is not importable by %s: %v\n%s\n"+
			"Install the lab dependencies with scripts/deps.sh, or run `make test`.", SystemPython, err, out)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	if out, err := exec.Command("bash", filepath.Join(root, "test", "mininet", "cleanup.sh")).CombinedOutput(); err != nil {
		t.Logf("ovslab: test/mininet/cleanup.sh: %v\n%s", err, out)
	}
	mininetOK = true
}

// PingallOptions configures Pingall.
type PingallOptions struct {
	// Topo is "linear,4", "tree,2,2", "single,3", "ring,3"...
	Topo string
	// Controllers are "IP:PORT" (or "tcp:IP:PORT") targets; at least one.
	Controllers []string
	// Timeout is the script's budget for connecting and pinging (default
	// 60 s). Setup and teardown (about 1 s) come on top.
	Timeout time.Duration
	// Attempts is the number of pingall rounds while loss > 0 (default 3).
	Attempts int
	// AllControllers requires every switch to be connected to every
	// controller, not just one.
	AllControllers bool
	// DPIDBase: switch N gets datapath ID DPIDBase+N.
	DPIDBase uint64
	// ExtraArgs are passed to pingall.py as they are.
	ExtraArgs []string
}

// PingallResult is the outcome of test/mininet/pingall.py.
type PingallResult struct {
	LossPct  float64
	Sent     int
	Received int
	// Error is the script's error= reason ("not_connected",
	// "setup_failed"...) or "".
	Error    string
	ExitCode int
	Duration time.Duration
	// Output is the script's stdout and stderr.
	Output string
}

// OK reports 0% loss with at least one ping sent.
func (r PingallResult) OK() bool {
	return r.ExitCode == 0 && r.Error == "" && r.Sent > 0 && r.Received == r.Sent
}

var pingallLine = regexp.MustCompile(`(?m)^PINGALL loss=([0-9.]+) sent=(\d+) received=(\d+)(?: error=(\S+))?\s*$`)

// Pingall runs test/mininet/pingall.py and returns its result; it fails the
// test only when the script cannot run or prints no PINGALL line. The test
// decides what loss is acceptable (usually: require res.OK()).
func Pingall(t testing.TB, opts PingallOptions) PingallResult {
	t.Helper()
	RequireMininet(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	args := []string{filepath.Join(root, "test", "mininet", "pingall.py"),
		"--topo", opts.Topo, "--timeout", strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64)}
	for _, c := range opts.Controllers {
		args = append(args, "--controller", c)
	}
	if opts.Attempts > 0 {
		args = append(args, "--attempts", strconv.Itoa(opts.Attempts))
	}
	if opts.AllControllers {
		args = append(args, "--all-controllers")
	}
	if opts.DPIDBase != 0 {
		args = append(args, "--dpid-base", fmt.Sprintf("%#x", opts.DPIDBase))
	}
	args = append(args, opts.ExtraArgs...)

	// Hard limit: the budget plus setup/teardown; SIGTERM lets the script
	// tear the network down, SIGKILL follows after StopGrace.
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, SystemPython, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = StopGrace + 10*time.Second
	// If the test binary dies, SIGTERM still lets the script tear down.
	cmd.SysProcAttr = deathSignalAttr(syscall.SIGTERM)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err = cmd.Run()
	res := PingallResult{Duration: time.Since(start), Output: out.String(), ExitCode: cmd.ProcessState.ExitCode()}
	m := pingallLine.FindStringSubmatch(res.Output)
	if m == nil {
		t.Fatalf("ovslab: pingall.py printed no PINGALL line (err %v); output:\n%s", err, res.Output)
	}
	res.LossPct, _ = strconv.ParseFloat(m[1], 64)
	res.Sent, _ = strconv.Atoi(m[2])
	res.Received, _ = strconv.Atoi(m[3])
	res.Error = m[4]
	if !res.OK() {
		t.Logf("ovslab: pingall %s: %s", opts.Topo, strings.TrimSpace(m[0]))
	}
	return res
}
