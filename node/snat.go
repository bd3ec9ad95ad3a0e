package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/app/snat"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/cluster/snatlease"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// SNATOVS is what the SNAT lease manager needs of OVS besides OVS: the
// packet count of the flows with a cookie (exhaustion drops) and the
// number of SNATed connections to an external IP in a conntrack zone
// (usage). Vswitch implements it with ovs-ofctl and ovs-appctl. (The
// new ARP owner's gratuitous ARP is the snat app's Desired.Announce,
// sent by the controller once the owner's flows are in.)
type SNATOVS interface {
	FlowPackets(ctx context.Context, bridge string, cookie uint64) (uint64, error)
	SNATConnections(ctx context.Context, zone uint16, ip string) (int, error)
}

// snatMgr leases this chassis's SNAT port blocks and campaigns for the
// external IPs it can reach (cluster/snatlease), from the model snapshot
// the agent mirrors.
type snatMgr struct {
	a   *Agent
	ovs SNATOVS
	log *slog.Logger
	l   *snatlease.Leaser
	// gen: the generation of each IP we own (logged when it changes).
	gen map[string]int64
	// drops: exhaustion-flow packets last seen per (ip, network);
	// grown: when a lease last grew there.
	drops map[[2]string]uint64
	grown map[[2]string]time.Time
	// exhausted counts exhaustion drops seen (metrics).
	exhausted atomic.Uint64
}

func newSNATMgr(a *Agent) *snatMgr {
	o, _ := a.cfg.OVS.(SNATOVS)
	return &snatMgr{a: a, ovs: o, log: a.log.With("part", "snat"), gen: map[string]int64{}, drops: map[[2]string]uint64{},
		grown: map[[2]string]time.Time{}}
}

// close revokes the lease: a cleanly stopped agent returns its blocks
// and external IPs at once.
func (s *snatMgr) close() {
	if s.l != nil {
		s.l.Close()
		s.l = nil
	}
}

func (s *snatMgr) leaser(ctx context.Context) (*snatlease.Leaser, error) {
	if s.l != nil {
		select {
		case <-s.l.Done():
			s.log.Warn("snat lease lost; blocks and external IPs are gone, leasing again")
			s.l, s.gen = nil, map[string]int64{}
		default:
			return s.l, nil
		}
	}
	l, err := snatlease.New(ctx, snatlease.Config{Client: s.a.cfg.Store.Client(), Chassis: s.a.cfg.Chassis,
		TTL: s.a.cfg.SNATLeaseTTL, Bits: s.a.cfg.SNATBlockBits, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.l = l
	return l, nil
}

// sync brings the leases in step with the snapshot.
func (s *snatMgr) sync(ctx context.Context, snap *model.Snapshot) error {
	gws := snat.Gateways(snap)
	if len(gws) == 0 && s.l == nil {
		return nil
	}
	l, err := s.leaser(ctx)
	if err != nil {
		return err
	}
	tbl := binding.Compute(snap, nil)
	wantIPs := map[string]bool{}
	wantBlocks := map[[2]string]bool{}
	var errs []error
	for _, g := range gws {
		if s.a.cfg.Mappings[g.Ext.PhysicalNetwork] == "" {
			continue // this chassis cannot reach the external network
		}
		wantIPs[g.IPText] = true
		owned, gen, err := l.Campaign(ctx, g.IPText)
		if err != nil {
			errs = append(errs, err)
		} else if owned {
			if s.gen[g.IPText] != gen {
				s.gen[g.IPText] = gen
				s.log.Info("external IP owned: answering ARP for it", "external_ip", g.IPText, "generation", gen)
			}
		} else {
			delete(s.gen, g.IPText)
		}
		for _, pid := range g.Router.Interfaces {
			r, _ := snap.Get(model.KindPort, pid)
			ifp, _ := r.(*model.Port)
			if ifp == nil || ifp.DeviceID != g.Router.ID {
				continue
			}
			n := tbl.Networks[ifp.NetworkID]
			if n == nil || n.Network.External || !s.hasLocalPort(snap, tbl, n.Network.ID) {
				continue
			}
			k := [2]string{g.IPText, n.Network.ID}
			if wantBlocks[k] {
				continue
			}
			wantBlocks[k] = true
			want := s.want(ctx, l, g, n)
			if _, err := l.EnsureReserving(ctx, g.IPText, n.Network.ID, want, s.reserve(snap, tbl, l, g.IPText, n.Network.ID)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, k := range l.HeldKeys() {
		if !wantBlocks[k] {
			if err := l.ReleaseAll(ctx, k[0], k[1]); err != nil {
				errs = append(errs, err)
			}
			delete(s.drops, k)
		}
	}
	for _, ip := range l.Owned() {
		if !wantIPs[ip] {
			if err := l.Resign(ctx, ip); err != nil {
				errs = append(errs, err)
			}
			delete(s.gen, ip)
		}
	}
	return errors.Join(errs...)
}

// reserve is how many free blocks of ip this chassis's growth must leave
// for (ip, network): one for every other chassis with a port on the
// network that holds no block of it yet (each will lease a first one),
// at most half the IP's blocks.
func (s *snatMgr) reserve(snap *model.Snapshot, tbl *binding.Table, l *snatlease.Leaser, ip, network string) int {
	need := map[string]bool{}
	for _, p := range snap.Ports() {
		if p.NetworkID != network || p.DeviceOwner == "network:dhcp" || strings.HasPrefix(p.DeviceOwner, "network:router") {
			continue
		}
		if c := tbl.ChassisOfPort(p.ID); c != "" && c != s.a.cfg.Chassis {
			need[c] = true
		}
	}
	for _, r := range snap.List(model.KindSNATBlock) {
		if b := r.(*model.SNATBlock); b.ExternalIP == ip && b.NetworkID == network {
			delete(need, b.Chassis)
		}
	}
	_, n := snatlease.Blocks(l.Bits())
	return min(len(need), n/2)
}

func (s *snatMgr) hasLocalPort(snap *model.Snapshot, tbl *binding.Table, network string) bool {
	for _, p := range snap.Ports() {
		if p.NetworkID != network || p.DeviceOwner == "network:dhcp" || strings.HasPrefix(p.DeviceOwner, "network:router") {
			continue
		}
		if tbl.ChassisOfPort(p.ID) == s.a.cfg.Chassis {
			return true
		}
	}
	return false
}

// want is how many blocks this chassis should hold for (g, n): at least
// one, one more than now when its conntrack holds more connections to
// the IP than half its ports (Open vSwitch's NAT, which tries a few
// random ports, starts failing well before a block is full), or when
// conntrack could not NAT a new connection since the last pass (the
// exhaustion flow counted it) while the blocks are at least a quarter
// used. Drops within growCooldown of the
// last growth do not count: they are what the switch dropped before the
// new block's flows arrived.
func (s *snatMgr) want(ctx context.Context, l *snatlease.Leaser, g *snat.Gateway, n *binding.Network) int {
	have := l.Held(g.IPText, n.Network.ID)
	want := max(1, len(have))
	if s.ovs == nil || len(have) == 0 {
		return want
	}
	k := [2]string{g.IPText, n.Network.ID}
	capacity := 0
	for _, b := range have {
		capacity += 1 << b.Bits
	}
	used, uerr := s.ovs.SNATConnections(ctx, pipeline.ZoneSNAT(n.Key), g.IPText)
	if uerr == nil && used*2 > capacity {
		want = len(have) + 1
	}
	if c, err := s.ovs.FlowPackets(ctx, s.a.cfg.Bridge, snat.ExhaustionCookie(g.Router.ID, n.Network.ID)); err == nil {
		if last, seen := s.drops[k]; seen && c > last {
			s.exhausted.Add(c - last)
			// Open vSwitch gives up on a NAT after a few random port
			// tries, so a block can report exhaustion with ports still
			// free: drops lease another block only when the blocks are
			// at least a quarter used, and not right after a growth.
			if (uerr != nil || used*4 > capacity) && time.Since(s.grown[k]) >= growCooldown {
				s.log.Warn("snat blocks exhausted; leasing another", "external_ip", g.IPText, "network", n.Network.ID, "drops", c-last, "used", used, "ports", capacity)
				want = len(have) + 1
			}
		}
		s.drops[k] = c
	}
	if want > len(have) {
		s.grown[k] = time.Now()
	}
	return want
}

// growCooldown is how long exhaustion drops after a growth are taken for
// the switch catching up rather than a new shortage.
const growCooldown = 3 * time.Second

func (v Vswitch) tool(name string) string {
	if v.Path == "" {
		return name
	}
	return strings.TrimSuffix(v.Path, "ovs-vsctl") + name
}

// exec runs tool with args (command) and returns its whole stdout: for
// outputs bounded by what Nimbus installed (a cookie's flows); a dump
// that grows with tenants' traffic goes through command with a reader that
// keeps a line at a time (ScanConntrack).
func (v Vswitch) exec(ctx context.Context, tool string, args ...string) (string, error) {
	var out bytes.Buffer
	err := v.command(ctx, func(r io.Reader) error { _, err := out.ReadFrom(r); return err }, tool, args...)
	return out.String(), err
}

// command runs tool with args under the OVS timeout and hands its stdout to
// read as it arrives; the error names the command and carries the start
// of its stderr (4 KiB at most).
func (v Vswitch) command(ctx context.Context, read func(io.Reader) error, tool string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, v.tool(tool), args...)
	errb := &cappedBuffer{max: 4096}
	cmd.Stderr = errb
	what := tool + " " + strings.Join(args, " ")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("node: %s: %w", what, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node: %s: %w", what, err)
	}
	rerr := read(out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("node: %s: %w: %s", what, err, strings.TrimSpace(errb.String()))
	}
	if rerr != nil {
		return fmt.Errorf("node: %s: reading its output: %w", what, rerr)
	}
	return nil
}

// cappedBuffer keeps the first max bytes written to it (a command's
// stderr, for its error message) and drops the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// FlowPackets sums n_packets of the bridge's flows with cookie.
func (v Vswitch) FlowPackets(ctx context.Context, bridge string, cookie uint64) (uint64, error) {
	out, err := v.exec(ctx, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge, fmt.Sprintf("cookie=%#x/-1", cookie))
	if err != nil {
		return 0, err
	}
	return sumPackets(out), nil
}

func sumPackets(dump string) uint64 {
	var n uint64
	for _, f := range strings.Fields(dump) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(f, ","), "n_packets="); ok {
			c, _ := strconv.ParseUint(v, 10, 64)
			n += c
		}
	}
	return n
}

// SNATConnections counts the conntrack entries of zone whose reply goes
// to ip (connections SNATed to it).
func (v Vswitch) SNATConnections(ctx context.Context, zone uint16, ip string) (int, error) {
	n := 0
	err := v.ScanConntrack(ctx, zone, func(line string) {
		if snatTo(line, ip) {
			n++
		}
	})
	return n, err
}

// snatTo reports whether a dump line is an entry whose reply goes to ip.
func snatTo(line, ip string) bool {
	e, ok := parseConntrack(line)
	return ok && e.reply.get("dst") == ip
}
