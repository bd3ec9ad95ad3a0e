package switches

import (
	"context"
	"errors"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/ofproto"
)

// roleConn is the part of a switch connection role changes use.
type roleConn interface {
	SetRole(ctx context.Context, role uint32, generation uint64) (uint32, uint64, error)
	Barrier(ctx context.Context) error
}

// roleSource is this replica's candidacy for a switch (cluster.Membership).
type roleSource interface {
	Roles() <-chan cluster.Role
	RaiseGeneration(ctx context.Context, r cluster.Role, above uint64) (cluster.Role, error)
	Resign(r cluster.Role, holdoff time.Duration)
}

// Takeover retry policy: a refused MASTER request is retried
// roleAttempts times with doubling backoff from roleRetryMin; then the
// replica resigns the election and stays out of it for roleHoldoff so
// that another replica tries.
var (
	roleAttempts = 5
	roleRetryMin = 100 * time.Millisecond
	roleRetryMax = 2 * time.Second
	roleHoldoff  = 3 * time.Second
)

// followRoles is the only goroutine that sends role requests to the
// switch: it applies the membership's role changes one at a time, in
// order, and a newer change preempts the retries of an older one.
func (a *agent) followRoles(ctx context.Context, mem roleSource, c roleConn) {
	var stop context.CancelFunc
	var done chan struct{}
	stopRec := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
			a.m.cfg.Metrics.SwitchesMastered.Dec()
		}
	}
	defer stopRec()
	defer a.setUnconfirmed(false)
	var next *cluster.Role
	for {
		var role cluster.Role
		if next != nil {
			role, next = *next, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case role = <-mem.Roles():
			}
		}
		if role.Master {
			stopRec()
			a.mu.Lock()
			a.masterSince = time.Time{}
			a.mu.Unlock()
			start := time.Now()
			ok, newer := a.takeMastership(ctx, mem, c, &role)
			if newer != nil {
				next = newer
				continue
			}
			if !ok {
				continue
			}
			a.m.cfg.Metrics.MastershipChanges.Inc()
			a.m.cfg.Metrics.SwitchesMastered.Inc()
			a.mu.Lock()
			a.masterSince = time.Now()
			a.mu.Unlock()
			a.log.Info("took mastership", "generation", role.Generation, "took", time.Since(start).Round(time.Microsecond))
			// Announce again as the new master (a refresh before the
			// role was confirmed announced nothing).
			if a.m != nil && a.m.cfg.Model != nil { // (role tests run agents without a model)
				go func() {
					a.refreshMu.Lock()
					a.announced = nil
					a.refreshMu.Unlock()
					a.refresh()
				}()
			}
			rctx, cancel := context.WithCancel(ctx)
			stop, done = cancel, make(chan struct{})
			run := a.master
			if a.masterFn != nil {
				run = a.masterFn
			}
			go func(done chan struct{}) { defer close(done); run(rctx) }(done)
			continue
		}
		if stop != nil {
			a.log.Info("gave up mastership")
		}
		a.mu.Lock()
		a.masterSince = time.Time{}
		a.mu.Unlock()
		stopRec()
		if role.Generation != 0 {
			// Another replica is master: the alarm is its to raise.
			a.setUnconfirmed(false)
			if _, _, err := c.SetRole(ctx, ofproto.RoleSlave, role.Generation); err != nil {
				a.log.Debug("SLAVE role request refused", "generation", role.Generation, "err", err)
			}
		}
	}
}

// takeMastership asks the switch for the MASTER role r and confirms it
// with a barrier, retrying with backoff. A STALE refusal (the switch
// holds a higher generation, e.g. after an etcd restore lowered the
// revisions) makes it read the switch's generation and raise the
// cluster's generation offset above it. When the switch still refuses,
// it resigns the election so another replica tries, and alarms. It
// returns whether the switch confirmed, or a newer role that arrived
// meanwhile (to be applied instead). r's generation is updated.
func (a *agent) takeMastership(ctx context.Context, mem roleSource, c roleConn, r *cluster.Role) (bool, *cluster.Role) {
	a.setUnconfirmed(true)
	backoff := roleRetryMin
	for attempt := 1; ; attempt++ {
		err := requestMaster(ctx, c, r.Generation)
		if err == nil {
			a.setUnconfirmed(false)
			return true, nil
		}
		if ctx.Err() != nil {
			return false, nil
		}
		a.m.cfg.Metrics.RoleRequestFailures.Inc()
		a.log.Warn("switch refused MASTER role", "generation", r.Generation, "attempt", attempt, "err", err)
		raised := false
		if isStale(err) {
			if _, cur, qerr := c.SetRole(ctx, ofproto.RoleNoChange, 0); qerr != nil {
				a.log.Warn("cannot read the switch's role generation", "err", qerr)
			} else if nr, rerr := mem.RaiseGeneration(ctx, *r, cur); rerr != nil {
				a.log.Warn("cannot raise the role generation", "switch_generation", cur, "err", rerr)
			} else {
				a.m.cfg.Metrics.RoleGenerationRaises.Inc()
				a.log.Warn("switch holds a higher role generation; raised ours above it", "switch_generation", cur, "generation", nr.Generation)
				*r, raised = nr, true
			}
		}
		if attempt >= roleAttempts {
			a.m.cfg.Metrics.MastershipResigns.Inc()
			a.log.Error("switch keeps refusing the MASTER role: resigning so that another replica tries; the switch has no confirmed master", // the logger carries the dpid
				"generation", r.Generation, "attempts", attempt, "holdoff", roleHoldoff, "err", err)
			mem.Resign(*r, roleHoldoff)
			return false, nil
		}
		wait := backoff
		if raised {
			wait = 0 // retry at once with the new generation
		} else if backoff *= 2; backoff > roleRetryMax {
			backoff = roleRetryMax
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, nil
		case nr := <-mem.Roles():
			t.Stop()
			return false, &nr
		case <-t.C:
		}
	}
}

// requestMaster sends ROLE_REQUEST MASTER and a barrier.
func requestMaster(ctx context.Context, c roleConn, generation uint64) error {
	if _, _, err := c.SetRole(ctx, ofproto.RoleMaster, generation); err != nil {
		return err
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	return nil
}

func isStale(err error) bool {
	var oe *ofproto.OFError
	return errors.As(err, &oe) && oe.Type == ofproto.ErrRoleRequestFail && oe.Code == ofproto.ErrCodeStale
}

// setUnconfirmed keeps the unconfirmed-master gauge in step with this
// switch's state.
func (a *agent) setUnconfirmed(v bool) {
	a.mu.Lock()
	changed := a.unconfirmed != v
	a.unconfirmed = v
	a.mu.Unlock()
	if !changed {
		return
	}
	if v {
		a.m.cfg.Metrics.SwitchesUnconfirmed.Inc()
	} else {
		a.m.cfg.Metrics.SwitchesUnconfirmed.Dec()
	}
}
