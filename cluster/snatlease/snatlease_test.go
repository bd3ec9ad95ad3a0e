package snatlease_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/cluster/snatlease"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// client opens a client of its own (closing it stops the lease's
// keepalives without revoking it: the hypervisor "dies").
func client(t *testing.T, s *store.Store) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Client().Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func leaser(t *testing.T, c *clientv3.Client, chassis string, bits int) *snatlease.Leaser {
	t.Helper()
	l, err := snatlease.New(context.Background(), snatlease.Config{Client: c, Chassis: chassis, Bits: bits, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func blocks(t *testing.T, s *store.Store, ip string) map[int]*model.SNATBlock {
	t.Helper()
	rs, err := s.List(context.Background(), model.KindSNATBlock)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]*model.SNATBlock{}
	for _, r := range rs {
		b := r.(*model.SNATBlock)
		if b.ExternalIP == ip {
			out[b.Index] = b
		}
	}
	return out
}

const ip = "203.0.113.10"

func TestBlocksDisjointAlignedAndGrow(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	var ls []*snatlease.Leaser
	for _, hv := range []string{"hv1", "hv2", "hv3"} {
		ls = append(ls, leaser(t, client(t, s), hv, 10))
	}
	for i, l := range ls {
		got, err := l.Ensure(ctx, ip, "net-a", 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("hv%d: %v %v", i+1, got, err)
		}
	}
	// hv1 runs short: two more.
	got, err := ls[0].Ensure(ctx, ip, "net-a", 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("grow: %v %v", got, err)
	}
	all := blocks(t, s, ip)
	if len(all) != 5 {
		t.Fatalf("want 5 blocks in etcd, got %d", len(all))
	}
	owner := map[int]string{}
	for idx, b := range all {
		lo, hi := snatlease.Range(b.Bits, idx)
		if lo < snatlease.FirstPort || int(hi)-int(lo) != 1023 || lo%1024 != 0 {
			t.Fatalf("block %d: ports %d-%d not an aligned 1024 block above 1024", idx, lo, hi)
		}
		owner[idx] = b.Chassis
	}
	for i, l := range ls {
		for _, b := range l.Held(ip, "net-a") {
			if owner[b.Index] != b.Chassis || b.Chassis != []string{"hv1", "hv2", "hv3"}[i] {
				t.Fatalf("block %d held by %s in etcd, %s thinks it holds it", b.Index, owner[b.Index], b.Chassis)
			}
		}
	}
	// Shrink: the extra blocks go back.
	if got, err := ls[0].Ensure(ctx, ip, "net-a", 1); err != nil || len(got) != 1 {
		t.Fatalf("shrink: %v %v", got, err)
	}
	if n := len(blocks(t, s, ip)); n != 3 {
		t.Fatalf("after shrink want 3 blocks, got %d", n)
	}
	if err := ls[1].ReleaseAll(ctx, ip, "net-a"); err != nil {
		t.Fatal(err)
	}
	if n := len(blocks(t, s, ip)); n != 2 {
		t.Fatalf("after release want 2 blocks, got %d", n)
	}
}

func TestExhaustion(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	a, b := leaser(t, client(t, s), "hv1", 14), leaser(t, client(t, s), "hv2", 14)
	// 1<<14 blocks: 1 (16384-32767) .. 3: three blocks in all.
	if got, err := a.Ensure(ctx, ip, "n", 2); err != nil || len(got) != 2 {
		t.Fatalf("a: %v %v", got, err)
	}
	got, err := b.Ensure(ctx, ip, "n", 2)
	if !errors.Is(err, snatlease.ErrExhausted) || len(got) != 1 {
		t.Fatalf("b: want 1 block and ErrExhausted, got %v %v", got, err)
	}
	if err := a.ReleaseAll(ctx, ip, "n"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Ensure(ctx, ip, "n", 2); err != nil || len(got) != 2 {
		t.Fatalf("b after a released: %v %v", got, err)
	}
}

// A dead hypervisor (its client gone, lease not revoked) loses its
// blocks when the lease expires, and another can take them.
func TestDeadHypervisorBlocksReturn(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	ca := client(t, s)
	a, b := leaser(t, ca, "hv1", 14), leaser(t, client(t, s), "hv2", 14)
	if _, err := a.Ensure(ctx, ip, "n", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Ensure(ctx, ip, "n", 1); !errors.Is(err, snatlease.ErrExhausted) {
		t.Fatalf("pool should be full: %v", err)
	}
	ca.Close() // hv1 dies: no more keepalives
	deadline := time.Now().Add(20 * time.Second)
	for len(blocks(t, s, ip)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("hv1's blocks still leased: %v", blocks(t, s, ip))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, err := b.Ensure(ctx, ip, "n", 3); err != nil || len(got) != 3 {
		t.Fatalf("hv2 after hv1's lease expired: %v %v", got, err)
	}
}

func TestARPOwnerElectionAndFailover(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	ca := client(t, s)
	a, b := leaser(t, ca, "hv1", 10), leaser(t, client(t, s), "hv2", 10)
	ok, gen1, err := a.Campaign(ctx, ip)
	if err != nil || !ok {
		t.Fatalf("a: %v %v", ok, err)
	}
	if ok, _, err := b.Campaign(ctx, ip); err != nil || ok {
		t.Fatalf("b must lose while a lives: %v %v", ok, err)
	}
	if ok, g, err := a.Campaign(ctx, ip); err != nil || !ok || g != gen1 {
		t.Fatalf("a again: %v %d %v (want gen %d)", ok, g, err, gen1)
	}
	r, _, err := s.Get(ctx, model.KindSNATOwner, ip)
	if err != nil || r.(*model.SNATOwner).Chassis != "hv1" {
		t.Fatalf("owner record: %v %v", r, err)
	}
	ca.Close()
	start := time.Now()
	var gen2 int64
	for {
		ok, g, err := b.Campaign(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			gen2 = g
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("hv2 never took over the external IP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("hv2 took %s over %v after hv1's client died (lease TTL %ds)", ip, time.Since(start).Round(10*time.Millisecond), snatlease.DefaultTTL)
	if gen2 <= gen1 {
		t.Fatalf("generation must rise: %d then %d", gen1, gen2)
	}
	r, _, err = s.Get(ctx, model.KindSNATOwner, ip)
	if err != nil || r.(*model.SNATOwner).Chassis != "hv2" {
		t.Fatalf("owner record after failover: %v %v", r, err)
	}
	// Resign hands it over at once.
	if err := b.Resign(ctx, ip); err != nil {
		t.Fatal(err)
	}
	c := leaser(t, client(t, s), "hv3", 10)
	if ok, _, err := c.Campaign(ctx, ip); err != nil || !ok {
		t.Fatalf("hv3 after hv2 resigned: %v %v", ok, err)
	}
}

// Closing a leaser (a clean agent stop) revokes: blocks and ownership go
// at once, without waiting for the TTL, even when the context it was
// made with has ended (the agent's, on shutdown).
func TestCloseRevokes(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	a, err := snatlease.New(runCtx, snatlease.Config{Client: client(t, s), Chassis: "hv1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ensure(ctx, ip, "n", 2); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := a.Campaign(ctx, ip); !ok || err != nil {
		t.Fatal(ok, err)
	}
	stop()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(blocks(t, s, ip)); n != 0 {
		t.Fatalf("blocks left after close: %d", n)
	}
	if _, _, err := s.Get(ctx, model.KindSNATOwner, ip); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("owner left after close: %v", err)
	}
}

// A busy hypervisor grows only while more than reserve blocks stay free
// (kept for hypervisors that hold none yet), so another hypervisor still
// gets its first block; a first block may take any free one.
func TestReserve(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	a, b := leaser(t, client(t, s), "hv1", 14), leaser(t, client(t, s), "hv2", 14)
	// Three blocks in all; hv1 wants them all but one is kept for hv2.
	got, err := a.EnsureReserving(ctx, ip, "n", 3, 1)
	if !errors.Is(err, snatlease.ErrExhausted) || len(got) != 2 {
		t.Fatalf("hv1: want 2 blocks and ErrExhausted (one kept), got %v %v", got, err)
	}
	if got, err := b.EnsureReserving(ctx, ip, "n", 1, 5); err != nil || len(got) != 1 {
		t.Fatalf("hv2's first block, whatever the reserve: %v %v", got, err)
	}
	if got, err := a.EnsureReserving(ctx, ip, "n", 3, 0); !errors.Is(err, snatlease.ErrExhausted) || len(got) != 2 {
		t.Fatalf("hv1 with the pool full: %v %v", got, err)
	}
}
