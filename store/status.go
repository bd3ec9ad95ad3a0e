package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SwitchStatusPrefix is where each switch's data-plane status lives
// (under Prefix), one key per switch: status/switch/<dpid, 16 hex>.
const SwitchStatusPrefix = "status/switch/"

// SwitchStatus is what a switch's master publishes after a reconcile
// pass that applied the switch's complete desired state: which objects'
// flows the switch holds and which Neutron ports are bound on it with
// their flows in. The API derives port, router and floating IP status
// from these (northbound/status.go).
type SwitchStatus struct {
	DPID string `json:"dpid"`
	// Ports are the Neutron ports bound on this switch whose flows are
	// installed.
	Ports []string `json:"ports,omitempty"`
	// Objects are the object ids (pipeline.CookieObject, hex) of the
	// installed flows, every app's.
	Objects []string `json:"objects,omitempty"`
	// Refused are the object ids with a desired flow the switch was not
	// sent (reconcile refusals): not in place.
	Refused []string `json:"refused,omitempty"`
}

// SwitchStatusKey is the key (under Prefix) of a switch's status.
func SwitchStatusKey(dpid uint64) string { return fmt.Sprintf("%s%016x", SwitchStatusPrefix, dpid) }

// StatusWriter publishes switch status under a lease of its own: when
// this replica dies, its switches' records expire with the lease (TTL
// seconds) and what they carried reads as down.
type StatusWriter struct {
	s   *Store
	ttl int64
	log *slog.Logger

	mu    sync.Mutex
	lease clientv3.LeaseID
	last  map[uint64]string // dpid -> value written (skip unchanged)
}

// NewStatusWriter makes a writer whose lease lives for ttl seconds
// without keepalive (at least 2, etcd's minimum).
func (s *Store) NewStatusWriter(ttl int, log *slog.Logger) *StatusWriter {
	if ttl < 2 {
		ttl = 2
	}
	if log == nil {
		log = slog.Default()
	}
	return &StatusWriter{s: s, ttl: int64(ttl), log: log, last: map[uint64]string{}}
}

// leaseID grants the lease on first use, and again after it was lost;
// its keepalive runs until ctx ends.
func (w *StatusWriter) leaseID(ctx context.Context) (clientv3.LeaseID, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lease != 0 {
		return w.lease, nil
	}
	g, err := w.s.c.Grant(ctx, w.ttl)
	if err != nil {
		return 0, unavailable(fmt.Errorf("store: status lease: %w", err))
	}
	ch, err := w.s.c.KeepAlive(context.WithoutCancel(ctx), g.ID)
	if err != nil {
		return 0, unavailable(fmt.Errorf("store: status lease keepalive: %w", err))
	}
	w.lease = g.ID
	w.last = map[uint64]string{}
	go func() {
		for range ch {
		}
		// The keepalive ended (lease expired, revoked or the client
		// closed): the next Publish grants a new lease and rewrites.
		w.mu.Lock()
		if w.lease == g.ID {
			w.lease = 0
		}
		w.mu.Unlock()
	}()
	return g.ID, nil
}

// Publish writes a switch's status (nothing when unchanged).
func (w *StatusWriter) Publish(ctx context.Context, dpid uint64, st SwitchStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: encoding switch status: %w", err)
	}
	id, err := w.leaseID(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	same := w.last[dpid] == string(b)
	w.mu.Unlock()
	if same {
		return nil
	}
	if _, err := w.s.c.Put(ctx, Prefix+SwitchStatusKey(dpid), string(b), clientv3.WithLease(id)); err != nil {
		return unavailable(fmt.Errorf("store: switch %016x status: %w", dpid, err))
	}
	w.mu.Lock()
	if w.lease == id {
		w.last[dpid] = string(b)
	}
	w.mu.Unlock()
	return nil
}

// Withdraw removes a switch's status (this replica no longer masters
// it, or it disconnected), unless another replica has written it since:
// only a record under this writer's lease is deleted.
func (w *StatusWriter) Withdraw(ctx context.Context, dpid uint64) error {
	w.mu.Lock()
	delete(w.last, dpid)
	id := w.lease
	w.mu.Unlock()
	if id == 0 {
		return nil
	}
	key := Prefix + SwitchStatusKey(dpid)
	if _, err := w.s.c.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).Then(clientv3.OpDelete(key)).Commit(); err != nil {
		return unavailable(fmt.Errorf("store: switch %016x status: %w", dpid, err))
	}
	return nil
}
