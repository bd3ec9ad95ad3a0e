package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Switch is what the reconciler needs from a switch.
type Switch interface {
	// Dump reads everything the switch holds.
	Dump(ctx context.Context) (*Actual, error)
	// Apply sends ops, atomically where possible, and returns once the
	// switch has applied them.
	Apply(ctx context.Context, ops *Ops) error
}

// Observer receives reconcile metrics.
type Observer interface {
	Reconciled(dpid uint64, d time.Duration, ops *Ops, err error)
	DriftRepaired(dpid uint64, n int)
}

type nopObserver struct{}

func (nopObserver) Reconciled(uint64, time.Duration, *Ops, error) {}
func (nopObserver) DriftRepaired(uint64, int)                     {}

// Options configure a reconciler.
type Options struct {
	// Interval between full passes (re-dump and repair drift).
	Interval time.Duration
	Logger   *slog.Logger
	Observer Observer
	// Applied, when set, is called after a pass that left the switch
	// holding its complete desired state, except the flows in refused
	// (by Flow.Key()): after the first such pass, and after every pass
	// that changed something, and after every pass while it returns an
	// error. The state must not be modified. The switch manager
	// publishes data-plane status from it.
	Applied func(desired *flow.State, refused map[string]bool) error
	// Counted, when set, is called after every pass that dumped the
	// switch while its desired state was complete, with the dumped
	// counters of the desired flows that name a Counter, summed by
	// pipeline.CounterKey (Counted). The switch manager publishes them (LBaaS
	// pool statistics).
	Counted func(map[string]pipeline.Counter)
}

// Reconciler owns one switch's desired state.
type Reconciler struct {
	dpid uint64
	sw   Switch
	opt  Options
	log  *slog.Logger

	mu       sync.Mutex
	desired  *flow.State
	complete bool
	actual   *Actual // what we believe the switch holds; nil forces a dump
	last     *Ops
	passes   int
	refused  map[string]string // "kind id" -> error, as last logged
	reported bool              // Applied was called since Run began

	kick chan struct{}
}

// New makes a reconciler; call Run.
func New(dpid uint64, sw Switch, opt Options) *Reconciler {
	if opt.Interval <= 0 {
		opt.Interval = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Observer == nil {
		opt.Observer = nopObserver{}
	}
	return &Reconciler{dpid: dpid, sw: sw, opt: opt, log: opt.Logger, kick: make(chan struct{}, 1)}
}

// SetDesired replaces the desired state. complete says the desired state
// is fully loaded; until then nothing is pruned.
func (r *Reconciler) SetDesired(s *flow.State, complete bool) {
	r.mu.Lock()
	r.desired, r.complete = s, complete
	r.mu.Unlock()
	r.Kick()
}

// Kick asks for an incremental pass.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// LastOps returns the ops of the last pass that changed something.
func (r *Reconciler) LastOps() *Ops {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Run reconciles until ctx ends: a full pass first, incremental passes
// when desired state changes, and a full pass every Interval.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.opt.Interval)
	defer t.Stop()
	r.mu.Lock()
	r.reported = false
	r.mu.Unlock()
	full := true
	start := time.Now()
	converged := false
	changes := 0
	for {
		ops, err := r.Pass(ctx, full)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.Warn("reconcile pass failed", "err", err)
		}
		if err == nil && !converged {
			changes += ops.Len()
			r.mu.Lock()
			ready := r.desired != nil && r.complete
			r.mu.Unlock()
			if ready {
				// The first pass on complete desired state since this
				// run began (a connection, or a takeover).
				converged = true
				r.log.Info("converged", "changes", changes, "took", time.Since(start).Round(time.Microsecond))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.kick:
			full = false
		case <-t.C:
			full = true
		}
	}
}

// Pass runs one reconcile pass. full re-dumps the switch first; a pass
// after a failure always dumps.
func (r *Reconciler) Pass(ctx context.Context, full bool) (*Ops, error) {
	r.mu.Lock()
	desired, complete, tracked := r.desired, r.complete, r.actual
	r.mu.Unlock()
	if desired == nil {
		return &Ops{}, nil
	}
	start := time.Now()
	actual := tracked
	drift := 0
	if full || tracked == nil {
		dumped, err := r.sw.Dump(ctx)
		if err != nil {
			return nil, fmt.Errorf("reconcile: dump: %w", err)
		}
		if tracked != nil && complete {
			drift = Diff(tracked.State, dumped, true).Len()
		}
		if complete && r.opt.Counted != nil {
			r.opt.Counted(Counted(desired, dumped))
		}
		dumped.Counts = nil
		actual = dumped
	} else {
		actual = tracked.Clone()
	}
	ops := Diff(desired, actual, complete)
	for _, f := range ops.Conflicts {
		r.log.Warn("desired flow collides with a foreign flow; left alone", "flow", f.String())
	}
	var err error
	var refused []Refusal
	if !ops.Empty() {
		err = r.sw.Apply(ctx, ops)
		var re *RefusedError
		if errors.As(err, &re) {
			// Everything else was applied.
			refused, err = re.Refused, nil
			ops = ops.without(refused)
		}
	}
	r.noteRefused(refused)
	r.opt.Observer.Reconciled(r.dpid, time.Since(start), ops, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.passes++
	if err != nil {
		r.actual = nil // unknown: dump next time
		return ops, fmt.Errorf("reconcile: apply %d change(s): %w", ops.Len(), err)
	}
	actual.Apply(ops)
	r.actual = actual
	if !ops.Empty() {
		r.last = ops
		r.log.Info("reconciled", "adds", len(ops.FlowAdds), "mods", len(ops.FlowMods), "dels", len(ops.FlowDels),
			"groups", len(ops.GroupAdds)+len(ops.GroupMods)+len(ops.GroupDels),
			"meters", len(ops.MeterAdds)+len(ops.MeterMods)+len(ops.MeterDels),
			"drift", drift, "full", full, "took", time.Since(start).Round(time.Microsecond))
	}
	if drift > 0 {
		r.opt.Observer.DriftRepaired(r.dpid, drift)
	}
	if r.opt.Applied != nil && complete && (!ops.Empty() || !r.reported || len(refused) > 0) {
		r.reported = true
		var bad map[string]bool
		if len(refused) > 0 {
			bad = make(map[string]bool, len(refused))
			for _, x := range refused {
				if x.Flow != nil {
					bad[x.Flow.Key()] = true
				}
			}
		}
		r.mu.Unlock()
		aerr := r.opt.Applied(desired, bad)
		r.mu.Lock()
		if aerr != nil {
			r.reported = false
		}
	}
	return ops, nil
}

// noteRefused logs and counts objects the switch side refused to send,
// once each until the refusal ends or changes: they are retried (and
// refused again) on every pass while they stay desired.
func (r *Reconciler) noteRefused(refused []Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(refused) == 0 && len(r.refused) == 0 {
		return
	}
	now := make(map[string]string, len(refused))
	for _, x := range refused {
		k, msg := x.Kind()+" "+x.ID(), x.Err.Error()
		now[k] = msg
		if r.refused[k] == msg {
			continue
		}
		r.log.Error("reconcile: refusing to send "+x.Kind()+"; the rest of the switch is applied",
			x.Kind(), x.ID(), "err", x.Err)
		if o, ok := r.opt.Observer.(RefusalObserver); ok {
			o.Refused(r.dpid, x.Kind(), x.ID(), x.Err)
		}
	}
	for k := range r.refused {
		if _, ok := now[k]; !ok {
			r.log.Info("reconcile: previously refused object no longer refused", "object", k)
		}
	}
	r.refused = now
}

// Refused lists the objects ("group 0x..." or "flow <key>") refused on the
// last pass that sent something, with why.
func (r *Reconciler) Refused() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.refused))
	for k, v := range r.refused {
		out[k] = v
	}
	return out
}

// ErrNotReady is returned when there is no desired state yet.
var ErrNotReady = errors.New("reconcile: desired state not loaded")
