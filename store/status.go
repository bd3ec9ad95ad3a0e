package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/pipeline"
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

// MaxValueBytes bounds one switch's status or counters record: a larger
// one is not written (the error says so, and the last record written
// stays), well under etcd's default 1.5 MiB request limit.
const MaxValueBytes = 1 << 20

// SwitchCountersPrefix is where each switch's counters live (under
// Prefix), one key per switch: status/counters/<dpid, 16 hex>.
const SwitchCountersPrefix = "status/counters/"

// SwitchCounters are the counters of a switch's counted flows (those
// whose desired flow names a flow.Flow.Counter), summed per object and
// counter name (pipeline.CounterKey: "<object id hex>/<name>"), as its
// master read them on its last full reconcile pass. Open vSwitch's flow
// counters start from zero when a flow is (re)installed or the switch
// restarts. The API sums them over switches (LBaaS pool stats).
type SwitchCounters struct {
	DPID     string                      `json:"dpid"`
	Counters map[string]pipeline.Counter `json:"counters,omitempty"`
}

// SwitchCountersKey is the key (under Prefix) of a switch's counters.
func SwitchCountersKey(dpid uint64) string {
	return fmt.Sprintf("%s%016x", SwitchCountersPrefix, dpid)
}

// LBConnsPrefix is where each chassis's load balancer connection counts
// live (under Prefix): status/lbconns/<chassis>.
const LBConnsPrefix = "status/lbconns/"

// LBConns are a chassis's ESTABLISHED connections per VIP id (those it
// balanced, counted in its conntrack by its node agent; VIPs with none
// left out), under the agent's lease: a dead agent's counts expire.
type LBConns struct {
	Chassis string         `json:"chassis"`
	VIPs    map[string]int `json:"vips,omitempty"`
}

// PublishLBConns writes a chassis's connection counts (nothing when
// unchanged).
func (w *StatusWriter) PublishLBConns(ctx context.Context, chassis string, c LBConns) error {
	return w.put(ctx, LBConnsPrefix+chassis, "chassis "+chassis, "load balancer connections", c)
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
	last  map[string]string // key -> value written (skip unchanged)
	// sw serializes each switch's writes and withdrawals; withdrawn
	// marks a switch withdrawn since its last status Publish, whose
	// counters are no longer written (a write still in flight when the
	// switch was withdrawn must not bring its record back).
	sw        map[uint64]*sync.Mutex
	withdrawn map[uint64]bool
}

// lockSwitch takes dpid's write lock; call the returned unlock.
func (w *StatusWriter) lockSwitch(dpid uint64) func() {
	w.mu.Lock()
	l := w.sw[dpid]
	if l == nil {
		l = &sync.Mutex{}
		w.sw[dpid] = l
	}
	w.mu.Unlock()
	l.Lock()
	return l.Unlock
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
	return &StatusWriter{s: s, ttl: int64(ttl), log: log, last: map[string]string{}, sw: map[uint64]*sync.Mutex{}, withdrawn: map[uint64]bool{}}
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
	w.last = map[string]string{}
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
	defer w.lockSwitch(dpid)()
	w.mu.Lock()
	delete(w.withdrawn, dpid)
	w.mu.Unlock()
	return w.put(ctx, SwitchStatusKey(dpid), fmt.Sprintf("switch %016x", dpid), "status", st)
}

// PublishCounters writes a switch's counters (nothing when unchanged,
// or when the switch was withdrawn since its last status Publish).
func (w *StatusWriter) PublishCounters(ctx context.Context, dpid uint64, c SwitchCounters) error {
	defer w.lockSwitch(dpid)()
	w.mu.Lock()
	gone := w.withdrawn[dpid]
	w.mu.Unlock()
	if gone {
		return nil
	}
	return w.put(ctx, SwitchCountersKey(dpid), fmt.Sprintf("switch %016x", dpid), "counters", c)
}

// put writes v as JSON at key (under Prefix) under the lease, unless
// this writer last wrote the same value there.
func (w *StatusWriter) put(ctx context.Context, key, who, what string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encoding %s %s: %w", who, what, err)
	}
	if len(b) > MaxValueBytes {
		return fmt.Errorf("store: %s %s is %d bytes, over the %d-byte limit", who, what, len(b), MaxValueBytes)
	}
	id, err := w.leaseID(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	same := w.last[key] == string(b)
	w.mu.Unlock()
	if same {
		return nil
	}
	if _, err := w.s.c.Put(ctx, Prefix+key, string(b), clientv3.WithLease(id)); err != nil {
		return unavailable(fmt.Errorf("store: %s %s: %w", who, what, err))
	}
	w.mu.Lock()
	if w.lease == id {
		w.last[key] = string(b)
	}
	w.mu.Unlock()
	return nil
}

// Withdraw removes a switch's status and counters (this replica no
// longer masters it, or it disconnected), unless another replica has
// written them since: only a record under this writer's lease is
// deleted.
func (w *StatusWriter) Withdraw(ctx context.Context, dpid uint64) error {
	keys := []string{SwitchStatusKey(dpid), SwitchCountersKey(dpid)}
	defer w.lockSwitch(dpid)()
	w.mu.Lock()
	w.withdrawn[dpid] = true
	for _, k := range keys {
		delete(w.last, k)
	}
	id := w.lease
	w.mu.Unlock()
	if id == 0 {
		return nil
	}
	for _, k := range keys {
		key := Prefix + k
		if _, err := w.s.c.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).Then(clientv3.OpDelete(key)).Commit(); err != nil {
			return unavailable(fmt.Errorf("store: switch %016x status: %w", dpid, err))
		}
	}
	return nil
}
