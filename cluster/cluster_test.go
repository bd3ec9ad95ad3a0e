package cluster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var testSecret = []byte("cluster-test-secret-0123456789ab")

// replica is an in-process replica: a cluster handle with its own etcd
// client and heartbeat server.
type replica struct {
	cl     *cluster.Cluster
	st     *store.Store
	srv    *http.Server
	cancel context.CancelFunc
}

func newReplica(t *testing.T, id string, endpoints []string) *replica {
	st, err := store.Open(context.Background(), store.Config{Endpoints: endpoints, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := cluster.New(st.Client(), cluster.Config{ReplicaID: id, APIAddr: ln.Addr().String(), Settle: time.Hour, Logger: quiet,
		Secret: testSecret})
	mux := http.NewServeMux()
	mux.HandleFunc(cluster.HeartbeatPath, cl.HeartbeatHandler())
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx }}
	go srv.Serve(ln)
	go cl.Run(ctx)
	r := &replica{cl: cl, st: st, srv: srv, cancel: cancel}
	t.Cleanup(r.crash)
	return r
}

// crash drops everything without a goodbye: the heartbeat server closes
// and the lease is left to peers (or expiry), as with kill -9.
func (r *replica) crash() {
	r.srv.Close()
	r.cancel()
	r.st.Close()
}

func nextRole(t *testing.T, m *cluster.Membership, master bool) cluster.Role {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-m.Roles():
			if r.Master == master {
				return r
			}
		case <-deadline:
			t.Fatalf("no role master=%v", master)
		}
	}
}

func TestFailoverAndFencing(t *testing.T) {
	embedded := etcdtest.Embedded(t)
	ep := []string{embedded.Client().Endpoints()[0]}
	a := newReplica(t, "a", ep)
	ctx := context.Background()
	ma := a.cl.Join(ctx, 1)
	ra := nextRole(t, ma, true)
	b := newReplica(t, "b", ep)
	mb := b.cl.Join(ctx, 1)
	// b waits as slave, told the current master's generation.
	if r := nextRole(t, mb, false); r.Generation != ra.Generation {
		t.Fatalf("slave told generation %d, master has %d", r.Generation, ra.Generation)
	}
	// While a is master its guarded writes land.
	if _, err := a.st.Create(ctx, &model.Network{Base: model.Base{ID: "n1"}}, ma.Guard()); err != nil {
		t.Fatalf("master's guarded write: %v", err)
	}
	staleGuard := ma.Guard()
	// Wait until b holds a heartbeat stream to a, then crash a.
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	a.crash()
	rb := nextRole(t, mb, true)
	t.Logf("failover after crash: %s (lease TTL 2s)", time.Since(t0).Round(time.Millisecond))
	if rb.Generation <= ra.Generation {
		t.Fatalf("new generation %d not above %d", rb.Generation, ra.Generation)
	}
	// A deposed master's write is fenced.
	if _, err := b.st.Create(ctx, &model.Network{Base: model.Base{ID: "n2"}}, staleGuard); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("write under the old master's guard: %v, want ErrFenced", err)
	}
	if _, err := b.st.Create(ctx, &model.Network{Base: model.Base{ID: "n3"}}, mb.Guard()); err != nil {
		t.Fatalf("new master's guarded write: %v", err)
	}
	st, err := b.cl.Status(ctx)
	if err != nil || len(st.Switches) != 1 || st.Switches[0].Master != "b" {
		t.Fatalf("status after failover: %+v %v", st, err)
	}
}
