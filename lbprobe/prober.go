package lbprobe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/store"
)

// Status values written to a member record.
const (
	Active   = "ACTIVE"
	Inactive = "INACTIVE"
)

// Statuses writes a member's status (the store in production).
type Statuses interface {
	SetStatus(ctx context.Context, memberID, status string) error
}

// StoreStatuses writes status into the member's model record
// (compare-and-swap on its revision, retried on conflict).
type StoreStatuses struct{ S *store.Store }

// SetStatus implements Statuses.
func (s StoreStatuses) SetStatus(ctx context.Context, memberID, status string) error {
	for {
		r, rev, err := s.S.Get(ctx, model.KindMember, memberID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("lbprobe: member %s: %w", memberID, err)
		}
		m := r.(*model.LBMember)
		if m.Status == status {
			return nil
		}
		m.Status = status
		if _, err = s.S.Update(ctx, m, rev); err == nil || !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("lbprobe: member %s: %w", memberID, err)
			}
			return nil
		}
	}
}

// Plumbing makes and removes a VIP's probe namespace and port.
type Plumbing interface {
	Ensure(ctx context.Context, pb Probe) (nsPath string, err error)
	Remove(ctx context.Context, vipID string) error
}

// Config configures a Prober.
type Config struct {
	Chassis string
	Bridge  string
	// NetnsPrefix starts the probe namespaces' names (default "nlbp";
	// a lab passes its own prefix so its teardown sweeps them).
	NetnsPrefix string
	Statuses    Statuses
	Plumbing    Plumbing // default: Netns{Chassis, Bridge}
	// Check runs one probe (default Check); tests replace it.
	Check  func(ctx context.Context, nsPath string, t Target) error
	Logger *slog.Logger
}

// Prober runs the health monitors of the members on one chassis.
type Prober struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	status  map[string]string // member id -> status in the last snapshot
	plans   map[string]string // vip id -> key of the plumbed probe
	running map[string]*runner
	nsPath  map[string]string // vip id -> namespace path

	stats stats
}

// stats are the prober's counters (Stats).
type stats struct {
	ok, failed, active, inactive, writeErrors atomic.Uint64
	monitored                                 atomic.Int64
}

// Stats are the prober's counters since it started, for the node
// agent's metrics.
type Stats struct {
	ProbesOK, ProbesFailed uint64 // probes run, by result
	// ToActive and ToInactive count the member status changes this
	// prober wrote; WriteErrors the writes that failed (retried on the
	// next probe).
	ToActive, ToInactive, WriteErrors uint64
	Monitored                         int // members probed now
}

// Stats reads the counters.
func (p *Prober) Stats() Stats {
	n := int(p.stats.monitored.Load())
	return Stats{ProbesOK: p.stats.ok.Load(), ProbesFailed: p.stats.failed.Load(), ToActive: p.stats.active.Load(),
		ToInactive: p.stats.inactive.Load(), WriteErrors: p.stats.writeErrors.Load(), Monitored: n}
}

type runner struct {
	key    string
	cancel context.CancelFunc
}

// New makes a prober.
func New(cfg Config) *Prober {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Plumbing == nil {
		cfg.Plumbing = Netns{Prefix: cfg.NetnsPrefix, Chassis: cfg.Chassis, Bridge: cfg.Bridge}
	}
	if cfg.Check == nil {
		cfg.Check = Check
	}
	return &Prober{cfg: cfg, log: cfg.Logger.With("component", "lbprobe"), status: map[string]string{},
		plans: map[string]string{}, running: map[string]*runner{}, nsPath: map[string]string{}}
}

// Update takes a new snapshot and the chassis's interfaces (name ->
// iface-id): probe namespaces are made or removed and the probe loops
// started or stopped to match. Probe loops run until ctx ends.
func (p *Prober) Update(ctx context.Context, s *model.Snapshot, ifaceIDs map[string]string) {
	plan := Targets(s, ifaceIDs)
	p.mu.Lock()
	p.status = map[string]string{}
	for _, r := range s.List(model.KindMember) {
		p.status[r.Key()] = r.(*model.LBMember).Status
	}
	p.mu.Unlock()
	for _, id := range plan.Unmonitor {
		p.write(ctx, id, Active)
	}
	want := map[string]bool{}
	wantVIP := map[string]bool{}
	for _, pb := range plan.Probes {
		wantVIP[pb.VIPID] = true
		pkey := fmt.Sprint(pb.Source, pb.DSR, pb.VIPMAC, pb.Port, pb.Targets)
		if p.plans[pb.VIPID] != pkey {
			ns, err := p.cfg.Plumbing.Ensure(ctx, pb)
			if err != nil {
				p.log.Warn("probe namespace setup failed; retried at the next update", "vip", pb.VIPID, "err", err)
				continue
			}
			p.plans[pb.VIPID], p.nsPath[pb.VIPID] = pkey, ns
		}
		for _, t := range pb.Targets {
			rk := pb.VIPID + "/" + t.MemberID
			want[rk] = true
			key := fmt.Sprint(t, p.nsPath[pb.VIPID])
			if r := p.running[rk]; r != nil {
				if r.key == key {
					continue
				}
				r.cancel()
			}
			rctx, cancel := context.WithCancel(ctx)
			p.running[rk] = &runner{key: key, cancel: cancel}
			go p.loop(rctx, p.nsPath[pb.VIPID], t)
		}
	}
	for rk, r := range p.running {
		if !want[rk] {
			r.cancel()
			delete(p.running, rk)
		}
	}
	p.stats.monitored.Store(int64(len(p.running)))
	for vip := range p.plans {
		if !wantVIP[vip] {
			if err := p.cfg.Plumbing.Remove(ctx, vip); err != nil {
				p.log.Warn("probe namespace removal failed", "vip", vip, "err", err)
				continue
			}
			delete(p.plans, vip)
			delete(p.nsPath, vip)
		}
	}
}

// loop probes t every delay: max_retries failures in a row make it
// INACTIVE, riseAfter successes in a row ACTIVE again (health).
func (p *Prober) loop(ctx context.Context, ns string, t Target) {
	log := p.log.With("member", t.MemberID, "monitor", t.Monitor.ID, "type", t.Monitor.Type, "addr", t.Addr)
	tick := time.NewTicker(time.Duration(t.Monitor.Delay) * time.Second)
	defer tick.Stop()
	p.mu.Lock()
	h := health{down: p.status[t.MemberID] == Inactive}
	p.mu.Unlock()
	for {
		err := p.cfg.Check(ctx, ns, t)
		if ctx.Err() != nil {
			return
		}
		was := h.down
		st := h.observe(err == nil, t.Monitor.MaxRetries)
		if err == nil {
			p.stats.ok.Add(1)
		} else {
			p.stats.failed.Add(1)
			log.Debug("probe failed", "fails", h.fails, "err", err)
		}
		switch {
		case was && !h.down:
			log.Info("member healthy again", "passes", riseAfter)
		case !was && h.down:
			log.Warn("member down", "fails", h.fails, "err", err)
		}
		if st != "" {
			p.write(ctx, t.MemberID, st)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// riseAfter is how many probes in a row must pass before a member that
// is down counts as healthy again: HAProxy's default rise, which LBaaS
// v1's reference driver kept. One success is not enough, so a member
// that fails max_retries times, passes once and fails again stays out of
// the select group instead of flapping it.
const riseAfter = 2

// health is one member's probe history.
type health struct {
	fails, passes int
	down          bool
}

// observe records one probe's result and returns the status the member
// should have: Inactive after maxRetries failures in a row and until
// riseAfter passes in a row, Active once up; "" while a member that is
// up has failed fewer than maxRetries times (no change).
func (h *health) observe(ok bool, maxRetries int) string {
	if ok {
		h.fails = 0
		h.passes++
		if h.down && h.passes < riseAfter {
			return Inactive
		}
		h.down = false
		return Active
	}
	h.passes = 0
	h.fails++
	if h.fails >= maxRetries {
		h.down = true
	}
	if h.down {
		return Inactive
	}
	return ""
}

// write sets a member's status when the last snapshot has another one.
func (p *Prober) write(ctx context.Context, memberID, status string) {
	p.mu.Lock()
	cur, ok := p.status[memberID]
	p.mu.Unlock()
	if !ok || cur == status || (cur == "" && status == Active) {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	err := p.cfg.Statuses.SetStatus(wctx, memberID, status)
	cancel()
	if err != nil {
		p.stats.writeErrors.Add(1)
		p.log.Warn("member status write failed", "member", memberID, "status", status, "err", err)
		return
	}
	if status == Active {
		p.stats.active.Add(1)
	} else {
		p.stats.inactive.Add(1)
	}
	p.mu.Lock()
	p.status[memberID] = status
	p.mu.Unlock()
	p.log.Info("member status", "member", memberID, "status", status)
}

// NetnsName is the probe namespace of a VIP on a chassis: prefix
// ("nlbp" if empty) + "-" + 12 hex digits of SHA-256(chassis/vip).
func NetnsName(prefix, chassis, vipID string) string {
	if prefix == "" {
		prefix = "nlbp"
	}
	sum := sha256.Sum256([]byte(chassis + "/" + vipID))
	return prefix + "-" + hex.EncodeToString(sum[:])[:12]
}

// Netns is the production Plumbing: `ip` and `ovs-vsctl` (OVS_RUNDIR
// from the environment picks the instance, as for the node agent).
type Netns struct {
	Prefix  string
	Chassis string
	Bridge  string
}

// Bounds on the prober's blocking work, which runs on the node agent's
// main loop (Update): a plumbing command (ip, ovs-vsctl) that hangs, or
// an etcd write during an outage, must not stall the agent's tunnel and
// SNAT syncs behind it. A timed-out step is retried at the next update.
var (
	commandTimeout = 30 * time.Second
	writeTimeout   = 10 * time.Second
)

func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lbprobe: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// hostNetns is the network namespace ovs-vswitchd runs in (where the
// probe port's br-int end must be), "" when it is ours: read from
// ovs-vswitchd's pidfile in OVS_RUNDIR (default /var/run/openvswitch).
// In the lab the agents run in the root namespace and each hypervisor's
// ovs-vswitchd in its own.
func hostNetns() string {
	dir := os.Getenv("OVS_RUNDIR")
	if dir == "" {
		dir = "/var/run/openvswitch"
	}
	b, err := os.ReadFile(dir + "/ovs-vswitchd.pid")
	if err != nil {
		return ""
	}
	pid := strings.TrimSpace(string(b))
	theirs, err1 := os.Readlink("/proc/" + pid + "/ns/net")
	ours, err2 := os.Readlink("/proc/self/ns/net")
	if err1 != nil || err2 != nil || theirs == ours {
		return ""
	}
	return "/proc/" + pid + "/ns/net"
}

// host runs a command in ovs-vswitchd's namespace (nsenter when it is not ours).
func host(ctx context.Context, name string, args ...string) error {
	if ns := hostNetns(); ns != "" {
		return run(ctx, "nsenter", append([]string{"--net=" + ns, name}, args...)...)
	}
	return run(ctx, name, args...)
}

// Ensure implements Plumbing: the namespace, the veth pair (br-int side
// names.LBProbePortName, namespace side eth0 with the VIP's MAC and
// the probes' source address (Probe.Source), TX checksum offload off as the userspace datapath needs), a
// permanent neighbour entry per member, and the OVS port with its
// iface-id.
func (n Netns) Ensure(ctx context.Context, pb Probe) (string, error) {
	ns := NetnsName(n.Prefix, n.Chassis, pb.VIPID)
	path := "/run/netns/" + ns
	if _, err := os.Stat(path); err != nil {
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return "", err
		}
	}
	if err := host(ctx, "ip", "link", "show", pb.Port); err != nil {
		_ = run(ctx, "ip", "-n", ns, "link", "del", "eth0")
		if err := host(ctx, "ip", "link", "add", pb.Port, "type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
			return "", err
		}
	}
	if err := host(ctx, "ip", "link", "set", pb.Port, "up"); err != nil {
		return "", err
	}
	steps := [][]string{
		{"ip", "-n", ns, "link", "set", "eth0", "address", pb.VIPMAC},
		{"ip", "-n", ns, "addr", "flush", "dev", "eth0"}, // (a pool switched to or from DSR changes the source)
		{"ip", "-n", ns, "addr", "replace", pb.Source.String(), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"},
		{"ovs-vsctl", "--may-exist", "add-port", n.Bridge, pb.Port, "--", "set", "Interface", pb.Port,
			"external_ids:iface-id=" + pb.IfaceID},
	}
	for _, t := range pb.Targets {
		steps = append(steps, []string{"ip", "-n", ns, "neigh", "replace", t.Addr.String(), "lladdr", t.MAC, "nud", "permanent", "dev", "eth0"})
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return "", err
		}
	}
	return path, nil
}

// Remove implements Plumbing.
func (n Netns) Remove(ctx context.Context, vipID string) error {
	port := names.LBProbePortName(vipID)
	_ = run(ctx, "ovs-vsctl", "--if-exists", "del-port", n.Bridge, port)
	_ = host(ctx, "ip", "link", "del", port)
	ns := NetnsName(n.Prefix, n.Chassis, vipID)
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		return nil
	}
	return run(ctx, "ip", "netns", "del", ns)
}
