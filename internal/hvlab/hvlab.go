package hvlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// EnvE2E is the environment variable that enables the lab tests.
const EnvE2E = ovslab.EnvE2E

// Schema is the OVSDB schema every hypervisor's database is created from.
const Schema = "/usr/share/openvswitch/vswitch.ovsschema"

// UnderlayBridge is the Linux bridge, in the lab's underlay namespace, that
// joins the hypervisors' underlay links (capture on it to see tunnel
// traffic).
const UnderlayBridge = "br0"

// PhysnetSegment is the Linux bridge, in the lab's underlay namespace, that
// joins every hypervisor's PhysnetBridge when Options.Physnet is set: the
// lab's physical network (capture on it to see VLAN-tagged tenant frames).
const PhysnetSegment = "br1"

// PhysnetBridge is the OVS bridge (netdev, fail_mode=standalone: NORMAL
// forwarding) of every hypervisor that carries the lab's physical network
// when Options.Physnet is set; map a physnet to it with
// `controller node --bridge-mappings physnet1:br-vlan`.
const PhysnetBridge = "br-vlan"

// DefaultUnderlay is the underlay subnet when Options.Underlay is empty.
const DefaultUnderlay = "172.31.255.0/24"

// cmdTimeout bounds every single command the lab runs.
const cmdTimeout = 30 * time.Second

// Options configures New.
type Options struct {
	// Hypervisors is the number of hypervisors (default 3, at most 60).
	Hypervisors int
	// Controllers are OVS controller targets for br-int when BrInt is set
	// (and the default of Hypervisor.CreateBrInt). Hosts 127.0.0.1,
	// localhost and 0.0.0.0 are rewritten to the hypervisor's RootMgmtIP.
	Controllers []string
	// Underlay is the /24 (or larger) subnet of the tunnel IPs; hypervisor N
	// gets host number 10+N. Default DefaultUnderlay. It exists only inside
	// the lab's namespaces.
	Underlay string
	// UnderlayMTU, when > 0, is the MTU of the underlay links and br-phy.
	// With the default 1500, GRE (outer IP 20 + GRE with key 8 + inner
	// Ethernet 14 bytes) leaves VMs 1458 bytes of IP packet, and OVS drops
	// bigger packets silently (no ICMP "fragmentation needed"); 1600 lets
	// VMs with MTU 1500 pass whole.
	UnderlayMTU int
	// BrInt makes New create br-int on every hypervisor (datapath ID N,
	// Controllers) and a full mesh of GRE ports (see Hypervisor.GREPort).
	BrInt bool
	// Physnet gives every hypervisor a PhysnetBridge whose port eth-phys is
	// a veth to the PhysnetSegment Linux bridge of the underlay namespace:
	// a plain shared L2 segment (no IP, IPv6 off, so only tenant frames
	// cross it) for VLAN provider networks.
	Physnet bool
	// External gives the lab an external network (see Internet): a Linux
	// bridge ExternalSegment in the underlay namespace, every
	// hypervisor's ExternalBridge plugged into it by a veth (eth-ex <->
	// exN), and the "internet" namespace on it. Map it with
	// `--bridge-mappings extnet:br-ex` (ExternalPhysnet, ExternalBridge).
	External bool
	// ExternalCIDR is the external subnet (default DefaultExternal); the
	// internet namespace takes its first host address.
	ExternalCIDR string
}

// Lab is a set of hypervisors built by New.
type Lab struct {
	t      testing.TB
	prefix string
	dir    string
	mgmt   int // third octet of the 169.254.X.0/24 management subnet
	ul     netip.Prefix
	opts   Options
	hvs    []*Hypervisor

	inet *Internet

	mu  sync.Mutex
	vms []*VM
}

var (
	requireMu sync.Mutex
	requireOK bool
)

// RequireE2E skips the test unless NIMBUS_E2E=1, then fails it when a tool
// the lab needs is missing or the caller is not root, and sweeps leftovers of
// dead test processes.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvE2E) != "1" {
		t.Skipf("multi-hypervisor lab test: set %s=1 to run it (make test does)", EnvE2E)
	}
	requireMu.Lock()
	defer requireMu.Unlock()
	if requireOK {
		return
	}
	var missing []string
	for _, tool := range []string{"ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat(Schema); err != nil {
		missing = append(missing, Schema)
	}
	if len(missing) > 0 {
		t.Fatalf("hvlab: missing %s: install the lab dependencies with scripts/deps.sh", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		t.Fatalf("hvlab: network namespaces need root")
	}
	if err := SweepStale(); err != nil {
		t.Logf("hvlab: sweeping stale labs: %v", err)
	}
	requireOK = true
}

// BaseDir is where labs keep their state directories.
func BaseDir() string { return filepath.Join(os.TempDir(), "nimbus-hvlab") }

// New builds a lab and tears it down in t.Cleanup, even when the test fails.
// It calls RequireE2E first.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	RequireE2E(t)
	if opts.Hypervisors == 0 {
		opts.Hypervisors = 3
	}
	if opts.Hypervisors < 1 || opts.Hypervisors > 60 {
		t.Fatalf("hvlab: %d hypervisors: want 1..60", opts.Hypervisors)
	}
	if opts.Underlay == "" {
		opts.Underlay = DefaultUnderlay
	}
	ul, err := netip.ParsePrefix(opts.Underlay)
	if err != nil || !ul.Addr().Is4() || ul.Bits() > 24 {
		t.Fatalf("hvlab: underlay %q: want an IPv4 /24 or larger", opts.Underlay)
	}
	l := &Lab{t: t, ul: ul.Masked(), opts: opts}
	if err := l.claim(); err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	start := time.Now()
	// Registered before anything is made, so a half-built lab goes too; the
	// daemons' own cleanups (registered later) run before this one.
	t.Cleanup(func() {
		td := time.Now()
		if err := l.teardown(); err != nil {
			t.Errorf("hvlab: teardown of %s: %v", l.prefix, err)
		}
		t.Logf("hvlab: %s torn down in %v", l.prefix, time.Since(td).Round(time.Millisecond))
	})

	ulns := l.UnderlayNS()
	l.mustRun("ip", "netns", "add", ulns)
	l.mustRun("ip", "-n", ulns, "link", "set", "lo", "up")
	l.mustRun("ip", "-n", ulns, "link", "add", UnderlayBridge, "type", "bridge")
	l.mustRun("ip", "-n", ulns, "link", "set", UnderlayBridge, "up")
	if opts.Physnet {
		l.mustRun("ip", "-n", ulns, "link", "add", PhysnetSegment, "type", "bridge")
		l.noIPv6(ulns, PhysnetSegment)
		l.mustRun("ip", "-n", ulns, "link", "set", PhysnetSegment, "up")
	}
	if opts.External {
		l.newInternet()
	}
	for i := 1; i <= opts.Hypervisors; i++ {
		l.hvs = append(l.hvs, l.newHypervisor(i))
	}
	if opts.BrInt {
		for _, hv := range l.hvs {
			hv.CreateBrInt(opts.Controllers, uint64(hv.index))
		}
		l.ConnectMesh()
	}
	t.Logf("hvlab: %s up with %d hypervisors in %v (state %s)", l.prefix, len(l.hvs), time.Since(start).Round(time.Millisecond), l.dir)
	return l
}

// claim picks a free management subnet 169.254.X.0/24 (X also names the
// lab: prefix "nh"+hex(X)) and creates the state directory atomically.
func (l *Lab) claim() error {
	if err := os.MkdirAll(BaseDir(), 0o755); err != nil {
		return err
	}
	routes, _ := run(nil, "ip", "-4", "-o", "addr", "show")
	r2, _ := run(nil, "ip", "-4", "route", "show", "table", "all")
	routes += r2
	var b [1]byte
	_, _ = rand.Read(b[:])
	for k := 0; k < 256; k++ {
		x := (int(b[0]) + k) % 256
		// 169.254.169.x is the cloud metadata service; 0 and 255 look odd.
		if x == 0 || x == 255 || x == 169 {
			continue
		}
		if strings.Contains(routes, fmt.Sprintf("169.254.%d.", x)) {
			continue
		}
		prefix := fmt.Sprintf("nh%02x", x)
		dir := filepath.Join(BaseDir(), prefix)
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue // another lab has it (or a stale one: SweepStale)
		}
		if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			os.RemoveAll(dir)
			return err
		}
		l.prefix, l.dir, l.mgmt = prefix, dir, x
		return nil
	}
	return errors.New("no free 169.254.X.0/24 management subnet")
}

// Prefix is the lab's unique name prefix (namespaces P-..., root links Pm<N>).
func (l *Lab) Prefix() string { return l.prefix }

// Dir is the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// UnderlayNS is the namespace holding the underlay bridge (UnderlayBridge).
func (l *Lab) UnderlayNS() string { return l.prefix + "-ul" }

// HV returns hypervisor n (1-based).
func (l *Lab) HV(n int) *Hypervisor {
	l.t.Helper()
	if n < 1 || n > len(l.hvs) {
		l.t.Fatalf("hvlab: no hypervisor %d (lab has %d)", n, len(l.hvs))
	}
	return l.hvs[n-1]
}

// Hypervisors returns all hypervisors, hv1 first.
func (l *Lab) Hypervisors() []*Hypervisor { return append([]*Hypervisor(nil), l.hvs...) }

// ConnectMesh adds a GRE port to every other hypervisor on every
// hypervisor's br-int (which must exist).
func (l *Lab) ConnectMesh() {
	l.t.Helper()
	for _, a := range l.hvs {
		for _, b := range l.hvs {
			if a != b {
				a.GREPort(b)
			}
		}
	}
}

// noIPv6 turns IPv6 off on a link, so the kernel sends nothing (router
// solicitations, MLD) on it by itself.
func (l *Lab) noIPv6(ns, link string) {
	l.t.Helper()
	l.mustRun("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf."+link+".disable_ipv6=1")
}

func (l *Lab) mustRun(name string, args ...string) string {
	l.t.Helper()
	out, err := run(nil, name, args...)
	if err != nil {
		l.t.Fatalf("hvlab: %v", err)
	}
	return out
}

// teardown deletes what the lab made. The daemons were stopped by their own
// cleanups already; stopDaemons catches any survivor.
func (l *Lab) teardown() error {
	for _, hv := range l.hvs {
		hv.stopDaemons()
	}
	return removeLab(l.prefix, l.dir)
}

// removeLab deletes the namespaces (P-*) and root links (Pm<N>) of a lab and
// its state directory, killing first any daemon whose pidfile is in that
// directory and whose command line names it.
func removeLab(prefix, dir string) error {
	var errs []error
	if hvs, _ := filepath.Glob(filepath.Join(dir, "hv*")); len(hvs) > 0 {
		for _, rd := range hvs {
			for _, d := range []string{"ovs-vswitchd", "ovsdb-server"} {
				killOwned(filepath.Join(rd, d+".pid"), rd)
			}
		}
	}
	if out, err := run(nil, "ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
				if _, err := run(nil, "ip", "netns", "del", f[0]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if out, err := run(nil, "ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if rest, ok := strings.CutPrefix(name, prefix+"m"); ok && rest != "" && isDigits(rest) {
				_, _ = run(nil, "ip", "link", "del", name) // may be gone with its netns
			}
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// killOwned kills the process of a pidfile if it is alive and its command
// line mentions mark (our run directory), so a recycled PID is never hit.
func killOwned(pidfile, mark string) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !pidAlive(pid) {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(mark)) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50 && pidAlive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if pidAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// SweepStale removes the labs (state directories under BaseDir, their
// namespaces, root links and daemons) whose owner process is dead. Labs of
// live processes are never touched.
func SweepStale() error {
	dirs, err := filepath.Glob(filepath.Join(BaseDir(), "nh*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			// A claim being written right now, or a broken one: leave
			// directories younger than a minute alone.
			if st, serr := os.Stat(dir); serr != nil || time.Since(st.ModTime()) < time.Minute {
				continue
			}
		} else if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pidAlive(pid) {
			continue
		}
		if err := removeLab(filepath.Base(dir), dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		st := s[i+2]
		return st != 'Z' && st != 'X'
	}
	return true
}

// run executes a command with cmdTimeout, the process environment plus env,
// and returns its stdout; the error carries stderr.
func run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// randomDPID returns a random non-zero datapath ID.
func randomDPID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}
