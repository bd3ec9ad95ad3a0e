package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/store"
)

// Config configures the agent.
type Config struct {
	// Chassis is this hypervisor's name (unique; the hostname by default
	// in cmd/).
	Chassis string
	// TunnelIP is the underlay address peers send GRE to.
	TunnelIP string
	// Bridge is the integration bridge (default "br-int"; tests use a
	// unique name).
	Bridge string
	// DatapathType of every bridge the agent creates ("netdev" in labs).
	DatapathType string
	// Controllers are the OpenFlow targets of every controller replica.
	Controllers []string
	// Mappings maps physical networks to bridges ("physnet1": "br-phy").
	Mappings map[string]string
	// OVS is the switch configuration backend (default Vswitch{}:
	// go-openvswitch plus a small ovs-vsctl fallback).
	OVS OVS
	// Store holds the model (chassis records).
	Store *store.Store
	// Resync re-reads OVS and repairs drift this often (default 30s).
	Resync time.Duration
	// IfacePoll re-reads the iface-ids of the bridge's interfaces this
	// often (default 1s) and publishes them in the chassis record when
	// they changed.
	IfacePoll time.Duration
	// SNATBlockBits is log2 of the SNAT port blocks this chassis leases
	// (default snatlease.DefaultBits, 1024 ports); SNATLeaseTTL the
	// lease's TTL in seconds (default 2): a dead chassis's blocks and
	// external IPs return after it.
	SNATBlockBits int
	SNATLeaseTTL  int
	// SNATInterval re-checks SNAT usage and leases this often (default 1s).
	SNATInterval time.Duration
	// LBConnInterval counts this chassis's load balancer connections per
	// VIP (one conntrack dump) and publishes them this often (default
	// 10s; negative: never), for the pools' active_connections.
	LBConnInterval time.Duration
	// OnSnapshot, when set, is called from Run's loop with every loaded
	// model snapshot and the bridge's interfaces (name -> iface-id): the
	// load balancer's health prober (lbprobe) hangs here.
	OnSnapshot func(ctx context.Context, s *model.Snapshot, ifaceIDs map[string]string)
	Logger     *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	dpid string
	// ifaces is what register publishes as model.Chassis.Interfaces and
	// Ports (touched only by Setup and Run's goroutine).
	ifaces map[string]Iface
	// snat is the SNAT lease manager while Run runs.
	snat atomic.Pointer[snatMgr]
}

// SNATExhaustionDrops counts packets the chassis's SNAT exhaustion flows
// dropped (conntrack found no free port in its blocks), as seen by Run.
func (a *Agent) SNATExhaustionDrops() uint64 {
	if s := a.snat.Load(); s != nil {
		return s.exhausted.Load()
	}
	return 0
}

// New checks the configuration and fills defaults.
func New(cfg Config) (*Agent, error) {
	if cfg.Chassis == "" || cfg.TunnelIP == "" || cfg.Store == nil {
		return nil, errors.New("node: chassis name, tunnel IP and store are required")
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if cfg.OVS == nil {
		cfg.OVS = Vswitch{}
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.IfacePoll == 0 {
		cfg.IfacePoll = time.Second
	}
	if cfg.LBConnInterval == 0 {
		cfg.LBConnInterval = 10 * time.Second
	}
	if cfg.SNATInterval == 0 {
		cfg.SNATInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("chassis", cfg.Chassis, "bridge", cfg.Bridge)}, nil
}

// DPID is br-int's datapath id once Setup has run.
func (a *Agent) DPID() string { return a.dpid }

// Setup configures the bridges and patch ports and registers the chassis.
func (a *Agent) Setup(ctx context.Context) error {
	o := a.cfg.OVS
	if err := o.EnsureBridge(ctx, Bridge{Name: a.cfg.Bridge, DatapathType: a.cfg.DatapathType, Controllers: a.cfg.Controllers}); err != nil {
		return err
	}
	for _, p := range DesiredPatches(a.cfg.Mappings) {
		if err := o.EnsurePlainBridge(ctx, p.Bridge, a.cfg.DatapathType); err != nil {
			return err
		}
		if err := o.SetPatch(ctx, a.cfg.Bridge, p.IntPort, p.PhysPort); err != nil {
			return err
		}
		if err := o.SetPatch(ctx, p.Bridge, p.PhysPort, p.IntPort); err != nil {
			return err
		}
	}
	// ovs-vswitchd fills datapath_id shortly after the bridge appears.
	for i := 0; ; i++ {
		id, err := o.DatapathID(ctx, a.cfg.Bridge)
		if err != nil {
			return err
		}
		if id != "" {
			a.dpid = id
			break
		}
		if i == 50 {
			return fmt.Errorf("node: bridge %s has no datapath id (is ovs-vswitchd running?)", a.cfg.Bridge)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	ifaces, err := o.Interfaces(ctx, a.cfg.Bridge)
	if err != nil {
		return err
	}
	a.ifaces = ifaces
	return a.register(ctx)
}

// pollIfaces re-reads the bridge's interfaces (iface-ids and OpenFlow
// port numbers) and, when they changed, updates the chassis record.
func (a *Agent) pollIfaces(ctx context.Context) error {
	cur, err := a.cfg.OVS.Interfaces(ctx, a.cfg.Bridge)
	if err != nil {
		return err
	}
	if maps.Equal(cur, a.ifaces) {
		return nil
	}
	prev := a.ifaces
	a.ifaces = cur
	if err := a.register(ctx); err != nil {
		a.ifaces = prev // retried at the next poll
		return err
	}
	a.log.Debug("interfaces published", "interfaces", len(cur))
	return nil
}

// register creates or updates the chassis record (compare-and-swap on its
// revision, retried on conflict).
func (a *Agent) register(ctx context.Context) error {
	want := &model.Chassis{Name: a.cfg.Chassis, TunnelIP: a.cfg.TunnelIP, DPID: a.dpid, Mappings: a.cfg.Mappings}
	for name, it := range a.ifaces {
		if it.IfaceID != "" {
			if want.Interfaces == nil {
				want.Interfaces = map[string]string{}
			}
			want.Interfaces[name] = it.IfaceID
		}
		if it.OFPort != 0 {
			if want.Ports == nil {
				want.Ports = map[string]uint32{}
			}
			want.Ports[name] = it.OFPort
		}
	}
	for {
		r, rev, err := a.cfg.Store.Get(ctx, model.KindChassis, a.cfg.Chassis)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err = a.cfg.Store.Create(ctx, want); err == nil {
				a.log.Info("chassis registered", "dpid", a.dpid, "tunnel_ip", a.cfg.TunnelIP)
				return nil
			}
		case err != nil:
			return fmt.Errorf("node: reading chassis %s: %w", a.cfg.Chassis, err)
		default:
			old := r.(*model.Chassis)
			if old.TunnelIP == want.TunnelIP && old.DPID == want.DPID && maps.Equal(old.Mappings, want.Mappings) &&
				maps.Equal(old.Interfaces, want.Interfaces) && maps.Equal(old.Ports, want.Ports) {
				return nil
			}
			if _, err = a.cfg.Store.Update(ctx, want, rev); err == nil {
				a.log.Info("chassis updated", "dpid", a.dpid, "tunnel_ip", a.cfg.TunnelIP)
				return nil
			}
		}
		if !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("node: registering chassis %s: %w", a.cfg.Chassis, err)
		}
	}
}

// Deregister deletes the chassis record (a clean decommission; a restart
// keeps it).
func (a *Agent) Deregister(ctx context.Context) error {
	_, rev, err := a.cfg.Store.Get(ctx, model.KindChassis, a.cfg.Chassis)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.cfg.Store.Delete(ctx, model.KindChassis, a.cfg.Chassis, rev)
}

// SyncTunnels makes the bridge's GRE ports match chassis. Ports are only
// deleted when the chassis list is complete (the mirror has loaded).
func (a *Agent) SyncTunnels(ctx context.Context, chassis []*model.Chassis, complete bool) (TunnelOps, error) {
	cur, err := a.cfg.OVS.Tunnels(ctx, a.cfg.Bridge)
	if err != nil {
		return TunnelOps{}, err
	}
	ops := DiffTunnels(DesiredTunnels(a.cfg.Chassis, chassis), cur, complete)
	for _, t := range append(append([]Tunnel{}, ops.Add...), ops.Update...) {
		if err := a.cfg.OVS.SetGRE(ctx, a.cfg.Bridge, t.Port, t.RemoteIP); err != nil {
			return ops, err
		}
		a.log.Info("tunnel port set", "port", t.Port, "peer", t.Peer, "remote_ip", t.RemoteIP)
	}
	for _, p := range ops.Delete {
		if err := a.cfg.OVS.DeletePort(ctx, a.cfg.Bridge, p); err != nil {
			return ops, err
		}
		a.log.Info("tunnel port deleted", "port", p)
	}
	return ops, nil
}

// Run sets up, then keeps tunnels in step with the chassis records until
// ctx ends. Setup failures are retried with backoff; so are sync
// failures, at the next change or resync tick.
func (a *Agent) Run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		err := a.Setup(ctx)
		if err == nil {
			break
		}
		a.log.Warn("node setup failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	m := a.cfg.Store.NewMirror()
	changed := m.Subscribe()
	go m.Run(ctx)
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	poll := time.NewTicker(a.cfg.IfacePoll)
	defer poll.Stop()
	sn := newSNATMgr(a)
	a.snat.Store(sn)
	defer sn.close()
	snatTick := time.NewTicker(a.cfg.SNATInterval)
	defer snatTick.Stop()
	var lbTick <-chan time.Time
	var lbw *store.StatusWriter
	if a.cfg.LBConnInterval > 0 {
		t := time.NewTicker(a.cfg.LBConnInterval)
		defer t.Stop()
		lbTick = t.C
		lbw = a.cfg.Store.NewStatusWriter(int(3*a.cfg.LBConnInterval/time.Second), a.log)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lbTick:
			if snap, loaded := m.Snapshot(); loaded {
				if err := a.syncLBConns(ctx, snap, lbw); err != nil && ctx.Err() == nil {
					a.log.Warn("load balancer connection count failed", "err", err)
				}
			}
			continue
		case <-snatTick.C:
			if snap, loaded := m.Snapshot(); loaded {
				if err := sn.sync(ctx, snap); err != nil {
					a.log.Warn("snat lease sync failed", "err", err)
				}
			}
			continue
		case <-poll.C:
			if err := a.pollIfaces(ctx); err != nil {
				a.log.Warn("publishing interface iface-ids failed", "err", err)
			}
			continue
		case <-changed:
		case <-tick.C:
			// Re-register too: an operator may have deleted the record.
			if err := a.register(ctx); err != nil {
				a.log.Warn("chassis re-registration failed", "err", err)
			}
		}
		snap, loaded := m.Snapshot()
		if !loaded {
			continue
		}
		if _, err := a.SyncTunnels(ctx, snap.Chassis(), true); err != nil {
			a.log.Warn("tunnel sync failed", "err", err)
		}
		if err := sn.sync(ctx, snap); err != nil {
			a.log.Warn("snat lease sync failed", "err", err)
		}
		if a.cfg.OnSnapshot != nil {
			ids := make(map[string]string, len(a.ifaces))
			for name, it := range a.ifaces {
				if it.IfaceID != "" {
					ids[name] = it.IfaceID
				}
			}
			a.cfg.OnSnapshot(ctx, snap, ids)
		}
	}
}

// ParseMappings reads bridge mappings as Neutron writes them:
// "physnet1:br-phy,physnet2:br-ex".
func ParseMappings(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		pn, br, ok := strings.Cut(kv, ":")
		if !ok || pn == "" || br == "" || len(br) > names.MaxIfName {
			return nil, fmt.Errorf("node: bad bridge mapping %q (want physnet:bridge)", kv)
		}
		if _, dup := out[pn]; dup {
			return nil, fmt.Errorf("node: physical network %s mapped twice", pn)
		}
		out[pn] = br
	}
	return out, nil
}
