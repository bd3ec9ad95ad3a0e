package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// backends runs body against the embedded etcd and a real etcd server.
func backends(t *testing.T, body func(t *testing.T, s *store.Store)) {
	t.Run("embedded", func(t *testing.T) {
		s := etcdtest.Embedded(t)
		if !s.Embedded() {
			t.Fatal("not embedded")
		}
		body(t, s)
	})
	t.Run("etcd-server", func(t *testing.T) {
		c := etcdtest.Start(t, 1)
		s, err := store.Open(context.Background(), store.Config{Endpoints: c.Endpoints(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		body(t, s)
	})
}

func net1(id string) *model.Network {
	return &model.Network{Base: model.Base{ID: id, ProjectID: "p1", Name: "n-" + id}, NetworkType: model.NetGRE, SegmentationID: 5, MTU: 1458}
}

func TestCRUDWithRevisionGuards(t *testing.T) {
	backends(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rev, err := s.Create(ctx, net1("a"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, net1("a")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate create: %v", err)
		}
		r, modRev, err := s.Get(ctx, model.KindNetwork, "a")
		if err != nil || modRev != rev || r.(*model.Network).Name != "n-a" {
			t.Fatalf("get: %v %d %v", r, modRev, err)
		}
		n := *r.(*model.Network)
		n.Name = "renamed"
		if _, err := s.Update(ctx, &n, modRev); err != nil {
			t.Fatal(err)
		}
		n.Name = "lost update"
		if _, err := s.Update(ctx, &n, modRev); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale update accepted: %v", err)
		}
		if err := s.Delete(ctx, model.KindNetwork, "a", modRev); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale delete accepted: %v", err)
		}
		_, modRev, _ = s.Get(ctx, model.KindNetwork, "a")
		if err := s.Delete(ctx, model.KindNetwork, "a", modRev); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Get(ctx, model.KindNetwork, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted record still there: %v", err)
		}
	})
}

// Concurrent read-modify-write transactions never lose an update.
func TestTxnIsSerializable(t *testing.T) {
	backends(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Txn(ctx, func(tx *store.Tx) error {
					var n int
					fmt.Sscan(tx.GetRaw("test/counter"), &n)
					tx.PutRaw("test/counter", fmt.Sprint(n+1))
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		resp, err := s.Client().Get(ctx, store.Prefix+"test/counter")
		if err != nil || string(resp.Kvs[0].Value) != "20" {
			t.Fatalf("counter = %s, want 20 (%v)", resp.Kvs[0].Value, err)
		}
	})
}

func TestGuardFencesWrites(t *testing.T) {
	backends(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		lease, err := s.Client().Grant(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		s.Client().Put(ctx, "/fence", "me", clientv3.WithLease(lease.ID))
		resp, _ := s.Client().Get(ctx, "/fence")
		guard := store.Held("/fence", resp.Kvs[0].CreateRevision)
		if _, err := s.Create(ctx, net1("g1"), guard); err != nil {
			t.Fatal(err)
		}
		s.Client().Revoke(ctx, lease.ID)
		if _, err := s.Create(ctx, net1("g2"), guard); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("write after losing the lease: %v", err)
		}
	})
}

func TestMirrorReadsThenWatches(t *testing.T) {
	backends(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.Create(ctx, net1("pre"))
		m := s.NewMirror()
		ch := m.Subscribe()
		go m.Run(ctx)
		if err := m.WaitLoaded(ctx); err != nil {
			t.Fatal(err)
		}
		first, _ := m.Snapshot()
		if _, ok := first.Get(model.KindNetwork, "pre"); !ok {
			t.Fatal("initial read missed a record")
		}
		s.Create(ctx, net1("post"))
		waitSnap(t, m, ch, func(sn *model.Snapshot) bool { _, ok := sn.Get(model.KindNetwork, "post"); return ok })
		if _, ok := first.Get(model.KindNetwork, "post"); ok {
			t.Fatal("an old snapshot changed: snapshots must be immutable")
		}
		// Compact past the watch and write again: the mirror reads again.
		resp, _ := s.Client().Get(ctx, "x")
		for i := 0; i < 3; i++ {
			s.Client().Put(ctx, store.Prefix+"test/x", fmt.Sprint(i))
		}
		s.Client().Compact(ctx, resp.Header.Revision+2)
		_, mr, _ := s.Get(ctx, model.KindNetwork, "pre")
		s.Delete(ctx, model.KindNetwork, "pre", mr)
		waitSnap(t, m, ch, func(sn *model.Snapshot) bool { _, ok := sn.Get(model.KindNetwork, "pre"); return !ok })
	})
}

func waitSnap(t *testing.T, m *store.Mirror, ch <-chan struct{}, ok func(*model.Snapshot) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if sn, _ := m.Snapshot(); ok(sn) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("mirror never caught up")
		}
	}
}

func TestUnavailableByCode(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, rpctypes.ErrNoLeader, rpctypes.ErrTimeout,
		status.Error(codes.Unavailable, "connection refused")} {
		if !errors.Is(store.Unavailable(err), store.ErrUnavailable) {
			t.Errorf("%v not classified as unavailable", err)
		}
	}
	for _, err := range []error{rpctypes.ErrKeyNotFound, errors.New("connection of some kind"), store.ErrConflict} {
		if errors.Is(store.Unavailable(err), store.ErrUnavailable) {
			t.Errorf("%v classified as unavailable", err)
		}
	}
}

// IsUnavailable is the one definition of "unavailable": marked errors
// and etcd's gRPC codes are, error text alone is not.
func TestIsUnavailable(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, rpctypes.ErrNoLeader,
		status.Error(codes.Unavailable, "x"), fmt.Errorf("northbound: %w", store.ErrUnavailable),
		store.Unavailable(status.Error(codes.DeadlineExceeded, "x"))} {
		if !store.IsUnavailable(err) {
			t.Errorf("%v not unavailable", err)
		}
	}
	for _, err := range []error{nil, errors.New("connection refused (text only)"), errors.New("transport is closing"),
		rpctypes.ErrKeyNotFound, store.ErrConflict, store.ErrFenced} {
		if store.IsUnavailable(err) {
			t.Errorf("%v is unavailable", err)
		}
	}
}

// A Plan commits all its ops only while every guard holds; a guard that
// fails is ErrConflict and writes nothing.
func TestPlanGuards(t *testing.T) {
	backends(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rev, err := s.Create(ctx, net1("p1"))
		if err != nil {
			t.Fatal(err)
		}
		var p store.Plan
		p.Guard(store.RecordAt(model.KindNetwork, "p1", rev), store.PrefixEmpty("plan/refs/"), store.RawAt("plan/x", 0))
		p.DeleteRecord(model.KindNetwork, "p1")
		p.PutRaw("plan/x", "1")
		if _, err := s.Commit(ctx, &p); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetRaw(ctx, "plan/x"); err != nil || v != "1" {
			t.Fatalf("plan/x = %q, %v", v, err)
		}
		if _, _, err := s.Get(ctx, model.KindNetwork, "p1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("p1 not deleted: %v", err)
		}
		// Each guard, failing, refuses the whole plan.
		var p2 store.Plan
		p2.PutRaw("plan/refs/a", "a")
		if _, err := s.Commit(ctx, &p2); err != nil {
			t.Fatal(err)
		}
		kvs, lrev, err := s.ListRaw(ctx, "plan/")
		if err != nil || len(kvs) != 2 {
			t.Fatalf("ListRaw: %v %v", kvs, err)
		}
		for name, g := range map[string]store.Guard{
			"prefix not empty":  store.PrefixEmpty("plan/refs/"),
			"raw key changed":   store.RawAt("plan/x", 0),
			"record absent now": store.RecordAt(model.KindNetwork, "p1", rev),
		} {
			var p store.Plan
			p.Guard(g)
			p.PutRaw("plan/y", name)
			if _, err := s.Commit(ctx, &p); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("%s: %v, want ErrConflict", name, err)
			}
		}
		var p3 store.Plan
		p3.Guard(store.PrefixUnchangedSince("plan/refs/", lrev))
		p3.DelPrefix("plan/refs/")
		if _, err := s.Commit(ctx, &p3); err != nil {
			t.Fatal(err)
		}
		var p4 store.Plan
		p4.PutRaw("plan/refs/b", "b")
		s.Commit(ctx, &p4)
		var p5 store.Plan
		p5.Guard(store.PrefixUnchangedSince("plan/refs/", lrev))
		p5.DelPrefix("plan/refs/")
		if _, err := s.Commit(ctx, &p5); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("changed prefix: %v, want ErrConflict", err)
		}
		if v, _ := s.GetRaw(ctx, "plan/y"); v != "" {
			t.Fatalf("a refused plan wrote plan/y = %q", v)
		}
	})
}
