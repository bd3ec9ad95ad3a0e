package switches_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/store"
	"github.com/nimbus-sdn/nimbus/switches"
)

// capture hands the test the connections an OpenFlow server accepts.
type capture struct{ conns chan *ofproto.Conn }

func (c *capture) OnConnect(conn *ofproto.Conn) ofproto.Handler { c.conns <- conn; return nil }
func (c *capture) OnDisconnect(*ofproto.Conn, error)            {}

func serve(t *testing.T, sess ofproto.Session, log *slog.Logger) string {
	t.Helper()
	srv := &ofproto.Server{Addr: "127.0.0.1:0", Session: sess, Logger: log}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr.String()
}

// Finding 9: a switch that holds a generation_id above every election
// revision (an etcd restore lowered the revisions, or another controller
// claimed MASTER with a large generation) refuses every MASTER request
// as STALE. Nimbus learns the switch's generation, raises its own above
// it (a fenced per-switch offset in etcd) and becomes master anyway.
func TestMasterDespiteHigherSwitchGeneration(t *testing.T) {
	ovslab.RequireE2E(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	t.Run("embedded-etcd", func(t *testing.T) { masterDespiteHigherGeneration(t, log, etcdtest.Embedded(t)) })
	t.Run("etcd-server", func(t *testing.T) {
		c := etcdtest.Start(t, 1)
		st, err := store.Open(context.Background(), store.Config{Endpoints: c.Endpoints(), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		masterDespiteHigherGeneration(t, log, st)
	})
}

func masterDespiteHigherGeneration(t *testing.T, log *slog.Logger, st *store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cl := cluster.New(st.Client(), cluster.Config{ReplicaID: "r1", APIAddr: "127.0.0.1:1", Logger: log})
	go cl.Run(ctx)
	m := metrics.New()
	mgr := switches.New(ctx, switches.Config{Cluster: cl, Metrics: m, Logger: log, ReconcileInterval: time.Hour})
	nimbus := serve(t, mgr, log)

	// Another controller connects first and claims MASTER with a
	// generation far above any revision this etcd will reach.
	rogue := &capture{conns: make(chan *ofproto.Conn, 4)}
	rogueAddr := serve(t, rogue, log)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{"tcp:" + rogueAddr}, MaxBackoff: time.Second})
	var rc *ofproto.Conn
	select {
	case rc = <-rogue.conns:
	case <-time.After(15 * time.Second):
		t.Fatal("bridge never connected to the first controller")
	}
	const high = uint64(1) << 40
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if role, gen, err := rc.SetRole(rctx, ofproto.RoleMaster, high); err != nil || role != ofproto.RoleMaster || gen != high {
		t.Fatalf("first controller's MASTER gen %d: role=%d gen=%d err=%v", high, role, gen, err)
	}
	// OpenFlow 1.3: ROLE_REQUEST NOCHANGE answers the switch's generation.
	if _, gen, err := rc.SetRole(rctx, ofproto.RoleNoChange, 0); err != nil || gen != high {
		t.Fatalf("NOCHANGE: gen=%d err=%v, want %d", gen, err, high)
	}

	// Now Nimbus joins as the bridge's second controller.
	br.SetControllers("tcp:"+rogueAddr, "tcp:"+nimbus)
	ovslab.WaitFor(t, 30*time.Second, "Nimbus confirmed as master", func() bool {
		ok, _ := mgr.MasterSince(br.DPID)
		return ok
	})
	br.WaitRole("tcp:"+nimbus, "master", 20*time.Second)
	if r := br.ControllerRoles()["tcp:"+rogueAddr]; r != "slave" {
		t.Errorf("first controller's role %q, want slave (OVS demotes the old master)", r)
	}
	// The generation the switch now holds is above the rogue's, and the
	// cluster reports the same one.
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	_, gen, err := rc.SetRole(gctx, ofproto.RoleNoChange, 0)
	if err != nil || int64(gen-high) <= 0 {
		t.Fatalf("switch generation %d after takeover (err %v), want above %d", gen, err, high)
	}
	status, err := cl.Status(gctx)
	if err != nil || len(status.Switches) != 1 || uint64(status.Switches[0].Generation) != gen {
		t.Fatalf("cluster status %+v (err %v), want generation %d", status, err, gen)
	}
	if v := value(m.RoleRequestFailures); v < 1 {
		t.Errorf("nimbus_role_request_failures_total = %v, want >= 1 (the STALE refusal)", v)
	}
	if v := value(m.RoleGenerationRaises); v != 1 {
		t.Errorf("nimbus_role_generation_raises_total = %v, want 1", v)
	}
	if v := value(m.SwitchesUnconfirmed); v != 0 {
		t.Errorf("nimbus_switches_master_unconfirmed = %v after the takeover, want 0", v)
	}
	t.Logf("switch generation %d -> %d; Nimbus is master", high, gen)
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
