package switches

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/store"
)

// Data-plane status. After a reconcile pass that left a switch holding
// its complete desired state, the switch's master publishes which
// objects' flows the switch holds (the object ids of their cookies),
// which were refused, and which Neutron ports are bound on it with
// their flows in (store.SwitchStatus, under a lease: a dead replica's
// records expire). The API derives port, router and floating IP status
// from these records on read (northbound/status.go). The apps stay pure:
// they only name their flows' objects in cookies, as they already do.

// StatusSink receives switch status (store.StatusWriter in the
// controller).
type StatusSink interface {
	Publish(ctx context.Context, dpid uint64, st store.SwitchStatus) error
	Withdraw(ctx context.Context, dpid uint64) error
}

// HomePorts are the Neutron ports bound on the input's switch (their
// interface is on it).
func HomePorts(in app.Input) map[string]bool {
	out := map[string]bool{}
	if in.Bindings == nil || in.Switch == nil {
		return out
	}
	v := in.Bindings.Switch(in.Switch)
	for id, p := range v.Ports {
		if v.Local(p) {
			out[id] = true
		}
	}
	return out
}

// SwitchStatusOf is a switch's status from its installed state: every
// desired flow but the refused ones is on the switch. A home port counts
// when its own flows (its object id) are installed and none refused.
func SwitchStatusOf(dpid uint64, desired *flow.State, refused map[string]bool, home map[string]bool) store.SwitchStatus {
	in, bad := map[uint64]bool{}, map[uint64]bool{}
	for k, f := range desired.Flows {
		if !pipeline.IsOurs(f.Cookie) || pipeline.IsDynamic(f.Cookie) {
			continue
		}
		o := pipeline.CookieObject(f.Cookie)
		if o == 0 {
			continue
		}
		if refused[k] {
			bad[o] = true
		} else {
			in[o] = true
		}
	}
	st := store.SwitchStatus{DPID: fmt.Sprintf("%016x", dpid)}
	for o := range in {
		if !bad[o] {
			st.Objects = append(st.Objects, fmt.Sprintf("%x", o))
		}
	}
	for o := range bad {
		st.Refused = append(st.Refused, fmt.Sprintf("%x", o))
	}
	for id := range home {
		if o := pipeline.ObjectID(id); in[o] && !bad[o] {
			st.Ports = append(st.Ports, id)
		}
	}
	sort.Strings(st.Objects)
	sort.Strings(st.Refused)
	sort.Strings(st.Ports)
	return st
}

// statusHook is a reconciler's Applied callback for switch dpid: it
// publishes the switch's status to Config.Status.
func (m *Manager) statusHook(ctx context.Context, dpid uint64, home func() map[string]bool, log *slog.Logger) func(*flow.State, map[string]bool) error {
	if m.cfg.Status == nil {
		return nil
	}
	return func(desired *flow.State, refused map[string]bool) error {
		st := SwitchStatusOf(dpid, desired, refused, home())
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := m.cfg.Status.Publish(pctx, dpid, st)
		if err != nil && ctx.Err() == nil {
			log.Warn("switches: publishing data-plane status failed; the next pass retries", "dpid", st.DPID, "err", err)
		}
		return err
	}
}

// CounterSink receives switch counters (store.StatusWriter in the
// controller); a StatusSink that is one gets them.
type CounterSink interface {
	PublishCounters(ctx context.Context, dpid uint64, c store.SwitchCounters) error
}

// countersHook is a reconciler's Counted callback for switch dpid: it
// publishes the counters of the switch's counted flows (LBaaS pool
// statistics) when Config.Status takes them.
func (m *Manager) countersHook(ctx context.Context, dpid uint64, log *slog.Logger) func(map[string]pipeline.Counter) {
	sink, ok := m.cfg.Status.(CounterSink)
	if !ok {
		return nil
	}
	var busy atomic.Bool
	return func(cs map[string]pipeline.Counter) {
		// Off the reconcile pass: an etcd outage must not slow flow
		// repair. One write in flight per switch; a pass that finds one
		// still going skips its counters (the next full pass has newer).
		if !busy.CompareAndSwap(false, true) {
			return
		}
		c := store.SwitchCounters{DPID: fmt.Sprintf("%016x", dpid), Counters: cs}
		go func() {
			defer busy.Store(false)
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := sink.PublishCounters(pctx, dpid, c); err != nil && ctx.Err() == nil {
				log.Warn("switches: publishing flow counters failed; the next full pass retries", "dpid", c.DPID, "err", err)
			}
		}()
	}
}

// withdrawStatus removes a switch's status when this replica stops
// mastering it.
func (m *Manager) withdrawStatus(dpid uint64, log *slog.Logger) {
	if m.cfg.Status == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 5*time.Second)
	defer cancel()
	if err := m.cfg.Status.Withdraw(ctx, dpid); err != nil {
		log.Warn("switches: withdrawing data-plane status failed (it expires with the lease)", "dpid", fmt.Sprintf("%016x", dpid), "err", err)
	}
}

// homePorts reads the agent's home ports of its last refresh.
func (a *agent) homePorts() map[string]bool {
	if p := a.home.Load(); p != nil {
		return *p
	}
	return nil
}
