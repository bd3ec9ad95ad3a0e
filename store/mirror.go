package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/model"
)

// mirrorLoadedHook, when set (tests), runs between the mirror's read and
// its watch.
var mirrorLoadedHook atomic.Pointer[func(rev int64)]

// Mirror keeps an immutable snapshot of the model current: it reads the
// whole prefix at revision R, then watches from R+1 and applies each
// event to a new snapshot. If the watch reports a compaction it reads
// again. Subscribers are notified (coalesced) on every change.
type Mirror struct {
	s *Store

	mu     sync.Mutex
	snap   *model.Snapshot
	loaded bool
	subs   []chan struct{}
}

// NewMirror makes a mirror; call Run.
func (s *Store) NewMirror() *Mirror { return &Mirror{s: s, snap: model.Empty} }

// Snapshot returns the current snapshot and whether it has been fully
// loaded at least once (until then, nothing may be pruned).
func (m *Mirror) Snapshot() (*model.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap, m.loaded
}

// Subscribe returns a channel that receives a value after each change.
func (m *Mirror) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs = append(m.subs, ch)
	m.mu.Unlock()
	return ch
}

func (m *Mirror) publish(s *model.Snapshot) {
	m.mu.Lock()
	m.snap, m.loaded = s, true
	subs := m.subs
	m.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// WaitLoaded blocks until the first full load or ctx ends.
func (m *Mirror) WaitLoaded(ctx context.Context) error {
	ch := m.Subscribe()
	for {
		if _, ok := m.Snapshot(); ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run mirrors until ctx ends, retrying with backoff while etcd is away.
func (m *Mirror) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := m.once(ctx)
		if ctx.Err() != nil {
			break
		}
		m.s.log.Warn("store mirror restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
	return ctx.Err()
}

// once loads then watches until the watch fails.
func (m *Mirror) once(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	snap, err := m.s.Load(lctx)
	cancel()
	if err != nil {
		return err
	}
	m.publish(snap)
	if h := mirrorLoadedHook.Load(); h != nil {
		(*h)(snap.Revision)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := m.s.c.Watch(wctx, Prefix+"model/", clientv3.WithPrefix(), clientv3.WithRev(snap.Revision+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return err // read again
			}
			return err
		}
		for _, ev := range resp.Events {
			k, id, ok := parseKey(string(ev.Kv.Key))
			if !ok {
				continue
			}
			var r model.Record
			if ev.Type == clientv3.EventTypePut {
				if r, err = decode(k, ev.Kv.Value); err != nil {
					m.s.log.Warn("skipping undecodable record", "key", string(ev.Kv.Key), "err", err)
					continue
				}
			}
			snap = snap.With(ev.Kv.ModRevision, k, id, r)
		}
		if len(resp.Events) > 0 {
			snap = model.NewSnapshotAt(snap, resp.Header.Revision)
			m.publish(snap)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("store: watch closed")
}
