package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
)

// recorder is a fake switch: it records the roles it is sent, in order.
type recorder struct {
	mu    sync.Mutex
	roles []cluster.Role
}

func (r *recorder) follow(ctx context.Context, m *cluster.Membership) {
	for {
		select {
		case <-ctx.Done():
			return
		case role := <-m.Roles():
			r.mu.Lock()
			r.roles = append(r.roles, role)
			r.mu.Unlock()
		}
	}
}

func (r *recorder) get() []cluster.Role {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Role(nil), r.roles...)
}

// Finding 10: the observer of the old leader decides "slave of a" just
// before this replica is elected, and publishes it just after. That
// older decision must not reach the switch after the newer MASTER role
// (the switch would be left with no master, or with a STALE refusal).
func TestStaleObserverCannotOvertakeMaster(t *testing.T) {
	embedded := etcdtest.Embedded(t)
	ep := []string{embedded.Client().Endpoints()[0]}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const dpid = 7
	a := newReplica(t, "a", ep)
	ma := a.cl.Join(ctx, dpid)
	ra := nextRole(t, ma, true)

	entered, release := make(chan cluster.Role, 1), make(chan struct{})
	var once sync.Once
	t.Cleanup(cluster.SetObserveHook(func(d uint64, r cluster.Role) {
		if d != dpid || r.Generation != ra.Generation {
			return
		}
		once.Do(func() {
			entered <- r
			<-release
		})
	}))
	b := newReplica(t, "b", ep)
	mb := b.cl.Join(ctx, dpid)
	rec := &recorder{}
	go rec.follow(ctx, mb)
	select {
	case <-entered: // b's observer decided "slave of a" and is held there
	case <-time.After(15 * time.Second):
		t.Fatal("b never observed a as leader")
	}
	ma.Leave() // a resigns: b is elected
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs := rec.get()
		if len(rs) > 0 && rs[len(rs)-1].Master {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never became master: %+v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release) // the stale decision now tries to go out
	time.Sleep(time.Second)
	rs := rec.get()
	t.Logf("roles delivered to b: %+v", rs)
	last := rs[len(rs)-1]
	if !last.Master {
		t.Fatalf("a stale slave role overtook the master role: %+v", rs)
	}
	if ok, _ := mb.IsMaster(); !ok {
		t.Fatal("b is not master")
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq <= rs[i-1].Seq {
			t.Fatalf("role %d (seq %d) delivered after seq %d: %+v", i, rs[i].Seq, rs[i-1].Seq, rs)
		}
	}
}

// Finding 9: a master that cannot take the switch resigns with a
// holdoff; another replica connected to the switch is elected, with a
// higher generation, and the first stays out for the holdoff.
func TestResignHandsOverToAnotherReplica(t *testing.T) {
	embedded := etcdtest.Embedded(t)
	ep := []string{embedded.Client().Endpoints()[0]}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := newReplica(t, "a", ep), newReplica(t, "b", ep)
	ma := a.cl.Join(ctx, 9)
	ra := nextRole(t, ma, true)
	mb := b.cl.Join(ctx, 9)
	nextRole(t, mb, false)
	// A resignation for a role we no longer hold is ignored.
	ma.Resign(cluster.Role{Master: true, Generation: ra.Generation - 1}, time.Hour)
	time.Sleep(200 * time.Millisecond)
	if ok, _ := ma.IsMaster(); !ok {
		t.Fatal("a stale resignation deposed the current master")
	}
	t0 := time.Now()
	ma.Resign(ra, 3*time.Second)
	rb := nextRole(t, mb, true)
	if rb.Generation <= ra.Generation {
		t.Fatalf("b's generation %d not above a's %d", rb.Generation, ra.Generation)
	}
	if ok, _ := ma.IsMaster(); ok {
		t.Fatal("a still master after resigning")
	}
	t.Logf("b master %s after a resigned", time.Since(t0).Round(time.Millisecond))
	// b leaves: a campaigns again once its holdoff is over.
	mb.Leave()
	nextRole(t, ma, true)
	if d := time.Since(t0); d < 3*time.Second {
		t.Fatalf("a re-elected %s after resigning, within its 3s holdoff", d)
	}
}

// The generation offset is raised only by the current master, every
// replica derives the same generation from it, and it keeps rising
// across elections.
func TestRaiseGenerationFencedAndShared(t *testing.T) {
	embedded := etcdtest.Embedded(t)
	ep := []string{embedded.Client().Endpoints()[0]}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := newReplica(t, "a", ep), newReplica(t, "b", ep)
	ma := a.cl.Join(ctx, 11)
	ra := nextRole(t, ma, true)
	mb := b.cl.Join(ctx, 11)
	nextRole(t, mb, false)
	const switchGen = uint64(1) << 50
	// A replica that is not master cannot move the offset.
	if _, err := mb.RaiseGeneration(ctx, cluster.Role{Master: true, Generation: 1}, switchGen); !errors.Is(err, cluster.ErrNotMaster) {
		t.Fatalf("slave raised the generation: %v", err)
	}
	raised, err := ma.RaiseGeneration(ctx, ra, switchGen)
	if err != nil || raised.Generation != switchGen+1 {
		t.Fatalf("raise: %+v %v, want generation %d", raised, err, switchGen+1)
	}
	st, err := a.cl.Status(ctx)
	if err != nil || uint64(st.Switches[0].Generation) != raised.Generation {
		t.Fatalf("status %+v %v, want generation %d", st, err, raised.Generation)
	}
	// Hand over: b's generation is its election revision plus the same
	// offset, above the raised one; a's old role can no longer raise it.
	ma.Resign(raised, time.Hour)
	rb := nextRole(t, mb, true)
	if int64(rb.Generation-raised.Generation) <= 0 {
		t.Fatalf("b's generation %d not above the raised %d", rb.Generation, raised.Generation)
	}
	if _, err := ma.RaiseGeneration(ctx, raised, switchGen<<1); !errors.Is(err, cluster.ErrNotMaster) {
		t.Fatalf("deposed master raised the generation: %v", err)
	}
}
