package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/testport"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

func loopbackURL(t *testing.T) string {
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p)
}

type defragObserver struct {
	mu      sync.Mutex
	sizes   []int64
	defrags [][2]int64
	errs    []error
}

func (o *defragObserver) DBSize(n int64) { o.mu.Lock(); o.sizes = append(o.sizes, n); o.mu.Unlock() }
func (o *defragObserver) Defragmented(before, after int64, err error) {
	o.mu.Lock()
	o.defrags = append(o.defrags, [2]int64{before, after})
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *defragObserver) passes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sizes)
}

// Finding 12: the embedded etcd compacts its history (a read at an old
// revision is refused as compacted), the mirror keeps serving the
// current model through it, and a defragmentation returns the space.
func TestEmbeddedCompactsAndDefragments(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := store.Open(ctx, store.Config{DataDir: filepath.Join(t.TempDir(), "etcd"),
		EmbedClientURL: loopbackURL(t), EmbedPeerURL: loopbackURL(t),
		AutoCompactionMode: "periodic", AutoCompactionRetention: "1s", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := s.NewMirror()
	go m.Run(ctx)
	if err := m.WaitLoaded(ctx); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	rev0, err := s.Create(ctx, net1("a"))
	if err != nil {
		t.Fatal(err)
	}
	// History only compaction and defragmentation reclaim: large values
	// rewritten, then deleted.
	big := strings.Repeat("x", 32<<10)
	for i := 0; i < 200; i++ {
		if _, err := c.Put(ctx, fmt.Sprintf("%sscratch/k%02d", store.Prefix, i%20), big); err != nil {
			t.Fatal(err)
		}
	}
	del, err := c.Delete(ctx, store.Prefix+"scratch/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revDel := del.Header.Revision
	// Keep the model changing while the compactor runs.
	n := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		n++
		nw := net1("a")
		nw.Name = fmt.Sprintf("v%d", n)
		if _, err := s.Put(ctx, nw); err != nil {
			t.Fatal(err)
		}
		_, err := c.Get(ctx, store.Key(model.KindNetwork, "a"), clientv3.WithRev(revDel))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d never compacted (last read: %v)", revDel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.Get(ctx, store.Key(model.KindNetwork, "a"), clientv3.WithRev(rev0)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read at the first revision %d: %v, want compacted", rev0, err)
	}
	// The mirror follows the model through the compaction.
	want := fmt.Sprintf("v%d", n)
	deadline = time.Now().Add(10 * time.Second)
	for {
		snap, _ := m.Snapshot()
		if r, _ := snap.Get(model.KindNetwork, "a"); r != nil && r.(*model.Network).Name == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror does not show network a at %s after compaction", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The scheduled maintenance defragments the member: most of its file
	// is free.
	obs := &defragObserver{}
	go s.Maintain(ctx, 50*time.Millisecond, obs)
	deadline = time.Now().Add(10 * time.Second)
	for {
		obs.mu.Lock()
		done := len(obs.defrags)
		obs.mu.Unlock()
		if done > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no defragmentation in 10s (%d passes)", obs.passes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	obs.mu.Lock()
	d, derr := obs.defrags[0], obs.errs[0]
	obs.mu.Unlock()
	if derr != nil || d[1] >= d[0] {
		t.Fatalf("defragmentation: %d -> %d bytes, err %v", d[0], d[1], derr)
	}
	t.Logf("compacted past revision %d; defragmented %d -> %d bytes", revDel, d[0], d[1])
	// Nothing left to reclaim: later passes skip the defragmentation.
	p := obs.passes()
	for obs.passes() < p+3 {
		time.Sleep(20 * time.Millisecond)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.defrags) != 1 {
		t.Fatalf("%d defragmentations with nothing to reclaim, want 1", len(obs.defrags))
	}
}

// An external cluster is its operators' to defragment.
func TestDefragmentNeedsEmbeddedMember(t *testing.T) {
	s, err := store.Open(context.Background(), store.Config{Endpoints: []string{"http://127.0.0.1:1"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Defragment(context.Background(), true, nil); !errors.Is(err, store.ErrNotEmbedded) {
		t.Fatalf("defragment on an external store: %v", err)
	}
}

// The mirror read the model at R; before its watch from R+1 starts,
// history up to past R is compacted. The watch reports ErrCompacted and
// the mirror reads again instead of stalling or missing the change.
func TestMirrorRereadsAfterCompaction(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Create(ctx, net1("a")); err != nil {
		t.Fatal(err)
	}
	loaded, release := make(chan int64, 4), make(chan struct{})
	var once sync.Once
	t.Cleanup(store.SetMirrorLoadedHook(func(rev int64) {
		select {
		case loaded <- rev:
		default:
		}
		once.Do(func() { <-release })
	}))
	m := s.NewMirror()
	go m.Run(ctx)
	r := <-loaded
	nw := net1("a")
	nw.Name = "changed"
	rev, err := s.Put(ctx, nw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, net1("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Compact(ctx, rev+1); err != nil {
		t.Fatal(err)
	}
	close(release) // the watch from r+1 now starts below the compaction
	select {
	case r2 := <-loaded:
		if r2 <= r {
			t.Fatalf("second read at %d, first at %d", r2, r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the mirror did not read again after the compaction")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, _ := m.Snapshot()
		a, _ := snap.Get(model.KindNetwork, "a")
		b, _ := snap.Get(model.KindNetwork, "b")
		if a != nil && a.(*model.Network).Name == "changed" && b != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mirror does not show the changes made during the compaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
