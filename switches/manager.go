// Package switches runs one agent per connected switch: it computes the
// switch's desired state from the apps, drives its reconciler, and routes
// its packet-ins to the owning app's handler.
package switches

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/topology"
	"github.com/nimbus-sdn/nimbus/topology/discovery"
)

// Config configures the manager.
type Config struct {
	Apps              []app.App
	ReconcileInterval time.Duration
	Metrics           *metrics.Metrics
	Logger            *slog.Logger
	// Model returns the current model snapshot and whether it is fully
	// loaded (nothing is pruned until it is).
	Model func() (*model.Snapshot, bool)
	// Cluster, when set, decides mastership per switch. Without it this
	// replica masters every switch it connects to.
	Cluster *cluster.Cluster
	// LLDPInterval is how often fabric switches send discovery frames
	// (0: no discovery). Links go to Links.
	LLDPInterval time.Duration
	// LinkTimeout forgets a link no frame confirmed for this long
	// (default 4 x LLDPInterval).
	LinkTimeout time.Duration
	Links       LinkStore
	// LLDPKey authenticates discovery frames (HMAC): frames naming a
	// switch port without the cluster's key are ignored. Empty: none.
	LLDPKey []byte
	// Status, when set, receives each mastered switch's data-plane status
	// (status.go); nil publishes nothing.
	Status StatusSink
	// SettleWindow: for this long after the manager starts, until every
	// chassis's switch has connected, the topology handed to the apps is
	// marked Settling (a switch not connected yet is not taken for a dead
	// hypervisor). Default 15s; negative: never.
	SettleWindow time.Duration
}

// Manager implements ofproto.Session.
type Manager struct {
	cfg   Config
	graph *topology.Graph
	log   *slog.Logger
	ctx   context.Context

	mu     sync.Mutex
	agents map[uint64]*agent
	kick   chan struct{} // coalesced RefreshAll requests
	// started: when the manager started (Config.SettleWindow).
	started    time.Time
	settleMu   sync.Mutex
	settleBase *topology.Snapshot // the live snapshot settleSnap copies
	settleSnap *topology.Snapshot

	// The binding table of the last (model, topology) snapshot pair:
	// computed once, shared by every switch's refresh and every app.
	bindMu    sync.Mutex
	bindModel *model.Snapshot
	bindTopo  *topology.Snapshot
	bindTable *binding.Table
	bindCount int             // tables computed (for tests)
	failures  map[string]bool // binding failures already logged

	disc *discovery.Config
}

// Bindings returns the binding table of a model and topology snapshot,
// computing it only when the pair differs from the last one asked for.
// New binding failures are logged once.
func (m *Manager) Bindings(snap *model.Snapshot, topo *topology.Snapshot) *binding.Table {
	m.bindMu.Lock()
	defer m.bindMu.Unlock()
	if m.bindTable != nil && m.bindModel == snap && m.bindTopo == topo {
		return m.bindTable
	}
	t := binding.Compute(snap, topo)
	m.bindModel, m.bindTopo, m.bindTable = snap, topo, t
	m.bindCount++
	for _, f := range t.Failures {
		if m.failures[f.Key()] {
			continue
		}
		if m.failures == nil || len(m.failures) >= 10000 {
			m.failures = map[string]bool{} // bounded: forgotten, logged again
		}
		m.failures[f.Key()] = true
		m.log.Error("switches: binding failure: interface already bound to another port",
			"port", f.Port, "by", f.By.String(), "bound_port", f.BoundPort, "bound_by", f.BoundBy.String(),
			"chassis", f.Chassis, "dpid", fmt.Sprintf("%016x", f.DPID), "ofport", f.OFPort, "interface", f.Interface)
	}
	return t
}

// New makes a manager whose agents live until ctx ends.
func New(ctx context.Context, cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Model == nil {
		cfg.Model = func() (*model.Snapshot, bool) { return model.Empty, true }
	}
	if cfg.SettleWindow == 0 {
		cfg.SettleWindow = 15 * time.Second
	}
	m := &Manager{cfg: cfg, graph: topology.NewGraph(), log: cfg.Logger, ctx: ctx, agents: map[uint64]*agent{}, kick: make(chan struct{}, 1),
		started: time.Now()}
	m.disc = m.discoveryConfig()
	go m.refresher()
	if cfg.SettleWindow > 0 {
		// The window's end changes what a missing switch means: recompute.
		t := time.AfterFunc(cfg.SettleWindow, m.kickAll)
		context.AfterFunc(ctx, func() { t.Stop() })
	}
	return m
}

// topology is the live topology as the apps get it: marked Settling
// while the window after the start runs and some chassis of the model
// has no switch connected here yet.
func (m *Manager) topology(snap *model.Snapshot) *topology.Snapshot {
	topo := m.graph.Snapshot()
	if m.cfg.SettleWindow <= 0 || time.Since(m.started) >= m.cfg.SettleWindow {
		return topo
	}
	for _, r := range snap.List(model.KindChassis) {
		dp, err := r.(*model.Chassis).DatapathID()
		if err != nil {
			continue
		}
		if _, ok := topo.Switches[dp]; !ok {
			// One settling copy per live snapshot: the binding table's
			// cache is keyed by the snapshots.
			m.settleMu.Lock()
			defer m.settleMu.Unlock()
			if m.settleBase != topo {
				m.settleBase, m.settleSnap = topo, &topology.Snapshot{Switches: topo.Switches, Settling: true}
			}
			return m.settleSnap
		}
	}
	return topo
}

// kickAll asks for a RefreshAll; requests made while one runs coalesce
// into one more.
func (m *Manager) kickAll() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) refresher() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
			m.RefreshAll()
		}
	}
}

// Topology returns the live topology graph.
func (m *Manager) Topology() *topology.Graph { return m.graph }

// Connected returns the datapath ids of connected switches.
func (m *Manager) Connected() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.agents))
	for d := range m.agents {
		out = append(out, d)
	}
	return out
}

// Reconciler returns the reconciler of a connected switch (for tests).
func (m *Manager) Reconciler(dpid uint64) *reconcile.Reconciler {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.agents[dpid]; a != nil {
		return a.rec
	}
	return nil
}

type agent struct {
	mu          sync.Mutex
	mem         *cluster.Membership
	connected   time.Time
	masterSince time.Time             // zero unless the switch confirmed us as MASTER
	unconfirmed bool                  // elected master, not (yet) confirmed by the switch (role.go)
	masterFn    func(context.Context) // replaces master in tests

	m        *Manager
	c        *ofproto.Conn
	log      *slog.Logger
	rec      *reconcile.Reconciler
	cancel   context.CancelFunc
	handlers [256]app.SwitchHandler
	// states holds, per app id, Desired.Handler of the last desired state
	// handed to the reconciler (read by PacketIn, written by refresh).
	states atomic.Pointer[[256]any]
	out    app.Out
	buf    []byte
	pi     app.PacketIn
	disc   *discovery.Switch // while mastering a fabric switch

	refreshMu sync.Mutex
	// home holds the Neutron ports bound on this switch, as of the last
	// refresh (for the status the reconciler's Applied publishes).
	home atomic.Pointer[map[string]bool]
	// announced are the announcements of the last desired state sent
	// (under refreshMu).
	announced map[string]bool
	// annPending are the packet-outs of the announcements that are new
	// in the desired state the reconciler has not yet reported applied:
	// sent again (and cleared) when it does (afterApply), the moment the
	// flows that handle the answers are in.
	annMu      sync.Mutex
	annPending []pendingAnn
}

// announceWindow is the last timed resend of new announcements: a
// pending batch older than it is not sent when a pass reports applied.
const announceWindow = 3 * time.Second

// pendingAnn is one refresh's new announcements (packet-outs) and when.
type pendingAnn struct {
	b  []byte
	at time.Time
}

// afterApply wraps a reconciler's Applied callback: the pending
// announcements go out first, once the pass has put the desired state
// on the switch.
func (a *agent) afterApply(next func(*flow.State, map[string]bool) error) func(*flow.State, map[string]bool) error {
	return func(desired *flow.State, refused map[string]bool) error {
		a.annMu.Lock()
		pend := a.annPending
		a.annPending = nil
		a.annMu.Unlock()
		for _, p := range pend {
			// (a pass with nothing to change reports nothing: a batch
			// older than the last timed resend is not sent late)
			if time.Since(p.at) < announceWindow {
				_ = a.c.Send(p.b)
			}
		}
		if next == nil {
			return nil
		}
		return next(desired, refused)
	}
}

// OnConnect starts an agent for the switch.
func (m *Manager) OnConnect(c *ofproto.Conn) ofproto.Handler {
	dpid := c.DPID()
	ctx, cancel := context.WithCancel(m.ctx)
	a := &agent{m: m, c: c, log: c.Logger(), cancel: cancel, connected: time.Now()}
	for _, ap := range m.cfg.Apps {
		if pa, ok := ap.(app.PacketInApp); ok {
			a.handlers[ap.ID()] = pa.NewSwitchHandler(dpid)
		}
	}
	sw := &OFSwitch{Conn: c, Logger: a.log}
	a.rec = reconcile.New(dpid, sw, reconcile.Options{Interval: m.cfg.ReconcileInterval, Logger: a.log, Observer: m.cfg.Metrics,
		Applied: a.afterApply(m.statusHook(ctx, dpid, a.homePorts, a.log)), Counted: m.countersHook(ctx, dpid, a.log)})
	m.mu.Lock()
	// ofproto.Server hands a datapath id over only after the previous
	// session's OnDisconnect (a live session is never evicted: a
	// duplicate is refused there), so this is a safety net for other
	// callers.
	if old := m.agents[dpid]; old != nil {
		old.log.Warn("second session for a connected switch; replacing the old connection")
		old.cancel()
		old.c.Close(errors.New("switches: replaced by a new connection"))
	}
	m.agents[dpid] = a
	m.mu.Unlock()
	m.cfg.Metrics.SwitchesConnected.Inc()
	go a.run(ctx)
	return a
}

// OnDisconnect stops the switch's agent.
func (m *Manager) OnDisconnect(c *ofproto.Conn, err error) {
	if errors.Is(err, ofproto.ErrMalformed) {
		m.cfg.Metrics.MalformedClosures.Inc()
	}
	m.cfg.Metrics.SwitchesConnected.Dec()
	m.mu.Lock()
	a := m.agents[c.DPID()]
	if a != nil && a.c == c {
		delete(m.agents, c.DPID())
		a.cancel()
		m.graph.RemoveSwitch(c.DPID())
	}
	m.mu.Unlock()
	if a != nil {
		m.kickAll() // bindings and fabric paths may have used it
	}
}

func (a *agent) run(ctx context.Context) {
	ports, err := a.c.PortDesc(ctx)
	if err != nil {
		// Without its port list every binding on the switch would look
		// gone, and a complete desired state would prune its flows: drop
		// the connection instead, the switch reconnects.
		if ctx.Err() == nil {
			a.log.Warn("port description failed; closing the connection", "err", err)
			a.c.Close(fmt.Errorf("switches: port description: %w", err))
		}
		return
	}
	tp := make([]topology.Port, 0, len(ports))
	for _, p := range ports {
		tp = append(tp, topology.Port{No: p.No, Name: p.Name, MAC: uint64(p.HWAddr), Up: p.Up()})
	}
	a.m.graph.SetSwitch(a.c.DPID(), tp)
	a.refresh()
	// Other switches may bind ports by this switch's port names or route
	// through it.
	a.m.kickAll()
	if a.m.cfg.Cluster == nil {
		a.master(ctx)
		return
	}
	mem := a.m.cfg.Cluster.Join(ctx, a.c.DPID())
	a.mu.Lock()
	a.mem = mem
	a.mu.Unlock()
	defer mem.Leave()
	a.followRoles(ctx, mem, a.c)
}

// master runs the reconciler while this replica masters the switch.
func (a *agent) master(ctx context.Context) {
	go a.discover(ctx)
	if err := a.rec.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("reconciler stopped", "err", err)
	}
	a.m.withdrawStatus(a.c.DPID(), a.log)
}

// MasterSince reports whether this replica masters dpid, and since when:
// the moment the switch confirmed the MASTER role (role reply, then a
// barrier).
func (m *Manager) MasterSince(dpid uint64) (bool, time.Time) {
	m.mu.Lock()
	a := m.agents[dpid]
	m.mu.Unlock()
	if a == nil {
		return false, time.Time{}
	}
	if m.cfg.Cluster == nil {
		return true, a.connected
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.masterSince.IsZero(), a.masterSince
}

// RefreshAll recomputes every switch's desired state (after a model change).
func (m *Manager) RefreshAll() {
	m.mu.Lock()
	as := make([]*agent, 0, len(m.agents))
	for _, a := range m.agents {
		as = append(as, a)
	}
	m.mu.Unlock()
	if snap, _ := m.cfg.Model(); snap != nil {
		m.cfg.Metrics.FabricLinks.Set(float64(snap.Len(model.KindLink)))
	}
	// In parallel, bounded by the CPUs: each agent's refresh is
	// serialized on its own lock.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, a := range as {
		wg.Add(1)
		sem <- struct{}{}
		go func(a *agent) {
			defer func() { <-sem; wg.Done() }()
			a.refresh()
		}(a)
	}
	wg.Wait()
}

// refresh recomputes desired state and hands it to the reconciler.
func (a *agent) refresh() {
	// Serialized, and the snapshots are read under the lock, so a slower
	// computation from an older snapshot never overwrites a newer one.
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	snap, complete := a.m.cfg.Model()
	if !complete {
		// The init guard: nothing is computed from a model that has not
		// loaded (chassis, ports and networks would all look absent, and
		// e.g. a chassis would get a fabric switch's flows). The first
		// load triggers RefreshAll.
		return
	}
	topo := a.m.topology(snap)
	sw := topo.Switches[a.c.DPID()]
	if sw == nil {
		return
	}
	in := app.Input{Model: snap, Topology: topo, Switch: sw, Bindings: a.m.Bindings(snap, topo)}
	home := HomePorts(in)
	a.home.Store(&home)
	st, states, ann, ok := a.m.compute(in, a.log)
	b := a.pendAnnouncements(ann)
	a.rec.SetDesired(st, complete && ok)
	a.states.Store(states)
	a.announce(b)
}

// newAnnouncements returns the set of announcements ann (keyed by app,
// port and frame) and those of them not in prev.
func newAnnouncements(prev map[string]bool, ann []announcement) (map[string]bool, []announcement) {
	cur := make(map[string]bool, len(ann))
	var fresh []announcement
	for _, x := range ann {
		k := fmt.Sprintf("%d/%d/%x", x.app, x.Port, x.Data)
		if cur[k] {
			continue
		}
		cur[k] = true
		if !prev[k] {
			fresh = append(fresh, x)
		}
	}
	return cur, fresh
}

// announcement is an app's Desired.Announce entry.
type announcement struct {
	app pipeline.AppID
	app.Announcement
}

// pendAnnouncements encodes the announcements that were not in the last
// desired state this agent announced (a gratuitous ARP when a floating
// IP comes to this chassis) and keeps them pending for afterApply. Only
// the switch's master announces; a replica that becomes master announces
// at its next refresh. Called under refreshMu, before the desired state
// goes to the reconciler.
func (a *agent) pendAnnouncements(ann []announcement) []byte {
	a.mu.Lock()
	master := a.m.cfg.Cluster == nil || !a.masterSince.IsZero()
	a.mu.Unlock()
	if !master {
		return nil
	}
	var fresh []announcement
	a.announced, fresh = newAnnouncements(a.announced, ann)
	var b []byte
	for _, x := range fresh {
		var err error
		if b, err = ofproto.AppendPacketOut(b, a.c.NextXid(), app.NoBuffer, flow.PortController,
			[]flow.Action{flow.Output{Port: x.Port}}, x.Data); err != nil {
			a.unencodable(x.app, "announcement", err)
		}
	}
	if len(b) > 0 {
		a.annMu.Lock()
		keep := a.annPending[:0]
		for _, p := range a.annPending {
			if time.Since(p.at) < announceWindow {
				keep = append(keep, p)
			}
		}
		a.annPending = append(keep, pendingAnn{b: b, at: time.Now()})
		a.annMu.Unlock()
		a.log.Debug("announcing", "frames", len(fresh))
	}
	return b
}

// announce sends b (pendAnnouncements' packet-outs) at once, and again
// after 200 ms, 1 s and 3 s; afterApply sends them as well when the
// reconciler has put their desired state on the switch: the first copy
// may leave before the flows that handle the answers are in place.
func (a *agent) announce(b []byte) {
	if len(b) == 0 {
		return
	}
	c := a.c
	_ = c.Send(b)
	for _, d := range []time.Duration{200 * time.Millisecond, time.Second, announceWindow} {
		time.AfterFunc(d, func() { _ = c.Send(b) })
	}
}

// Desired computes a switch's full desired state from the pipeline and
// the apps. Flows that break their table's contract are left out and
// counted; ok is false when any app failed, so nothing is pruned.
func (m *Manager) Desired(in app.Input, log *slog.Logger) (*flow.State, bool) {
	st, _, ok := m.desired(in, log)
	return st, ok
}

// desired is Desired, also returning each app's Desired.Handler by app id.
func (m *Manager) desired(in app.Input, log *slog.Logger) (*flow.State, *[256]any, bool) {
	st, states, _, ok := m.compute(in, log)
	return st, states, ok
}

// compute is desired, also returning the apps' announcements.
func (m *Manager) compute(in app.Input, log *slog.Logger) (*flow.State, *[256]any, []announcement, bool) {
	if in.Bindings == nil && in.Model != nil {
		in.Bindings = m.Bindings(in.Model, in.Topology)
	}
	states := new([256]any)
	var ann []announcement
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	if m.cfg.LLDPInterval > 0 && in.Switch != nil && (in.Model == nil || !isChassis(in.Model, in.Switch.DPID)) {
		st.AddFlow(LLDPFlow())
		st.Meters[pipeline.MeterLLDP.ID] = pipeline.MeterLLDP.Meter()
	}
	ok := true
	for _, ap := range m.cfg.Apps {
		d, err := ap.Desired(in)
		if err != nil {
			log.Error("app failed to compute flows", "app", ap.Name(), "err", err)
			ok = false
			continue
		}
		states[ap.ID()] = d.Handler
		for _, x := range d.Announce {
			ann = append(ann, announcement{ap.ID(), x})
		}
		var groups map[uint32]*flow.Group
		if len(d.Groups) > 0 {
			groups = make(map[uint32]*flow.Group, len(d.Groups))
			for _, g := range d.Groups {
				groups[g.ID] = g
			}
		}
		for _, f := range d.Flows {
			err := pipeline.Check(f)
			if err == nil && groups != nil {
				err = pipeline.CheckGroups(f, groups)
			}
			if err != nil {
				m.cfg.Metrics.ContractViolations.Inc()
				log.Error("flow refused", "app", ap.Name(), "err", err)
				continue
			}
			if st.AddFlow(f) {
				log.Warn("two flows share a key; the later one wins", "app", ap.Name(), "flow", f.KeyText())
			}
		}
		for _, g := range d.Groups {
			if pipeline.GroupOwner(g.ID) != ap.ID() {
				log.Error("group id outside the app's range", "app", ap.Name(), "group", g.ID)
				continue
			}
			st.Groups[g.ID] = g
		}
		for _, mt := range d.Meters {
			if !pipeline.OursMeter(mt.ID) {
				log.Error("meter id outside nimbus range", "app", ap.Name(), "meter", mt.ID)
				continue
			}
			st.Meters[mt.ID] = mt
		}
	}
	return st, states, ann, ok
}

// PacketIn routes a packet-in to the app owning the flow that sent it
// and queues the app's replies.
func (a *agent) PacketIn(c *ofproto.Conn, p *ofproto.PacketIn) {
	id := pipeline.CookieApp(p.Cookie)
	switch {
	case !pipeline.IsOurs(p.Cookie):
		// Not sent by a flow of ours (a table-miss on a switch that does
		// not hold our pipeline yet, or a foreign flow): the default app
		// handles it, as the learning switch for uncovered ports.
		id = pipeline.DefaultPacketInApp
	case id == pipeline.AppTopology:
		a.m.cfg.Metrics.PacketIn(id)
		a.lldpIn(p.InPort, p.Data)
		return
	case id == pipeline.AppPipeline:
		t := pipeline.ByID(p.Table)
		if t == nil {
			return
		}
		id = t.Owner
	}
	a.m.cfg.Metrics.PacketIn(id)
	h := a.handlers[id]
	if h == nil {
		return
	}
	a.pi = app.PacketIn{DPID: c.DPID(), InPort: p.InPort, BufferID: p.BufferID, Table: p.Table, Cookie: p.Cookie, Data: p.Data}
	if states := a.states.Load(); states != nil {
		a.pi.State = states[id]
	}
	a.out.Reset()
	h.PacketIn(&a.pi, &a.out)
	b := a.buf[:0]
	for i := range a.out.Flows {
		fo := &a.out.Flows[i]
		if err := pipeline.Check(&fo.Flow); err != nil {
			a.m.cfg.Metrics.ContractViolations.Inc()
			a.log.Error("packet-in flow refused", "app", id, "err", err)
			continue
		}
		var err error
		if fo.Delete {
			if b, err = ofproto.AppendFlowMod(b, c.NextXid(), &fo.Flow, ofproto.FlowModOpts{Command: ofproto.FCDelete, CookieMask: ^uint64(0)}); err != nil {
				a.unencodable(id, "flow-mod", err)
			}
			continue
		}
		if b, err = ofproto.AppendFlowMod(b, c.NextXid(), &fo.Flow, ofproto.FlowModOpts{Command: ofproto.FCAdd, BufferID: fo.BufferID}); err != nil {
			a.unencodable(id, "flow-mod", err)
			continue
		}
		a.m.cfg.Metrics.PacketInFlowAdds.Inc()
	}
	for i := range a.out.PacketOuts {
		po := &a.out.PacketOuts[i]
		var err error
		if b, err = ofproto.AppendPacketOut(b, c.NextXid(), po.BufferID, po.InPort, po.Actions, po.Data); err != nil {
			// A frame too large for one message (the switch gave no
			// buffer id): dropped, the rest of the reply still goes.
			a.unencodable(id, "packet-out", err)
		}
	}
	a.buf = b
	if len(b) > 0 {
		c.Queue(b)
	}
}

// unencodable drops one reply of a packet-in handler that cannot be
// encoded (ErrTooLarge, ErrUnencodable); the others still go.
func (a *agent) unencodable(id pipeline.AppID, what string, err error) {
	a.m.cfg.Metrics.UnencodableReplies.WithLabelValues(id.String(), what).Inc()
	if errors.Is(err, ofproto.ErrTooLarge) {
		// Driven by the switch's input (a huge frame): no log flood.
		a.log.Debug("packet-in reply dropped: too large", "app", id, "message", what, "err", err)
		return
	}
	a.log.Error("packet-in reply dropped: cannot encode", "app", id, "message", what, "err", err)
}

// PortStatus updates the topology and recomputes desired state.
func (a *agent) PortStatus(c *ofproto.Conn, reason uint8, p ofproto.Port) {
	a.log.Info("port status", "port", p.No, "name", p.Name, "reason", reason, "up", p.Up())
	a.m.graph.SetPort(c.DPID(), topology.Port{No: p.No, Name: p.Name, MAC: uint64(p.HWAddr), Up: p.Up()}, reason == ofproto.PortDeleted)
	if !p.Up() || reason == ofproto.PortDeleted {
		a.portDown(p.No)
	}
	// Every switch: bindings and fabric paths span switches.
	a.m.kickAll()
}

// FlowRemoved passes expiries of dynamic flows to their app.
func (a *agent) FlowRemoved(c *ofproto.Conn, r ofproto.FlowRemoved) {
	if h := a.handlers[pipeline.CookieApp(r.Cookie)]; h != nil && pipeline.IsOurs(r.Cookie) {
		h.FlowRemoved(r.Cookie, r.Match)
	}
}
