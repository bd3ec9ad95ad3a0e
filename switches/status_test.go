package switches

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/topology"
)

// TestDataPlaneStatus: a VM port, its router's interface port and the
// router read DOWN until a reconcile pass has put their flows on the
// chassis's switch (a failed apply leaves them DOWN), ACTIVE after it,
// DOWN again when the VM's interface goes away (its flows are removed),
// and DOWN when the switch's master withdraws its status. The path is
// the controller's: the apps' desired state, the reconciler (on a fake
// switch), the reconciler's Applied hook, the status record in etcd
// under a lease, and the API deriving status on read.
func TestDataPlaneStatus(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Embedded(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	srv := httptest.NewServer(northbound.NewHandler(st, northbound.Config{Logger: log, StatusCacheTTL: -1}))
	t.Cleanup(srv.Close)
	api := newTestAPI(t, srv.URL)

	net := api.create("networks", "network", map[string]any{"name": "n", "project_id": "p"})
	sub := api.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4, "project_id": "p"})
	vm := api.create("ports", "port", map[string]any{"network_id": net, "project_id": "p", "device_owner": "compute:nova"})
	rt := api.create("routers", "router", map[string]any{"name": "r", "project_id": "p"})
	rif := api.action(rt, "add_router_interface", map[string]any{"subnet_id": sub})
	if _, err := st.Put(ctx, &model.Chassis{Name: "hv1", TunnelIP: "192.0.2.1", DPID: "0000000000000001"}); err != nil {
		t.Fatal(err)
	}
	want := func(when, port, ifPort, router string) {
		t.Helper()
		if got := api.status("ports", vm); got != port {
			t.Errorf("%s: VM port %s, want %s", when, got, port)
		}
		if got := api.status("ports", rif); got != ifPort {
			t.Errorf("%s: router interface port %s, want %s", when, got, ifPort)
		}
		if got := api.status("routers", rt); got != router {
			t.Errorf("%s: router %s, want %s", when, got, router)
		}
	}
	want("before any flow", "DOWN", "DOWN", "DOWN")

	m := New(ctx, Config{Apps: []app.App{isolation.New(isolation.Config{}), l3router.New()}, Logger: log,
		Status: st.NewStatusWriter(10, log)})
	sw := fakeswitch.New()
	var home map[string]bool
	rec := reconcile.New(1, sw, reconcile.Options{Logger: log, Applied: m.statusHook(ctx, 1, func() map[string]bool { return home }, log)})
	desire := func(withVM bool) {
		snap, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ports := map[uint32]topology.Port{10: {No: 10, Name: "patch-x", Up: true}}
		if withVM {
			ports[1] = topology.Port{No: 1, Name: names.VMPortName(vm), Up: true}
		}
		topo := &topology.Snapshot{Switches: map[uint64]*topology.Switch{1: {DPID: 1, Ports: ports}}}
		in := app.Input{Model: snap, Topology: topo, Switch: topo.Switches[1], Bindings: m.Bindings(snap, topo)}
		home = HomePorts(in)
		ds, ok := m.Desired(in, log)
		if !ok {
			t.Fatal("an app failed")
		}
		rec.SetDesired(ds, true)
	}

	desire(true)
	if !home[vm] {
		t.Fatalf("the VM port is not bound on hv1: %v", home)
	}
	sw.FailNext = errors.New("switch said no")
	if _, err := rec.Pass(ctx, true); err == nil {
		t.Fatal("the failed apply passed")
	}
	want("after a failed apply", "DOWN", "DOWN", "DOWN")
	if _, err := rec.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	want("flows installed", "ACTIVE", "ACTIVE", "ACTIVE")

	// The VM's interface goes away: its flows (and the router's on this
	// chassis, which hosts no other port of the subnet) are removed.
	desire(false)
	if _, err := rec.Pass(ctx, false); err != nil {
		t.Fatal(err)
	}
	want("interface gone", "DOWN", "DOWN", "DOWN")

	desire(true)
	if _, err := rec.Pass(ctx, false); err != nil {
		t.Fatal(err)
	}
	want("interface back", "ACTIVE", "ACTIVE", "ACTIVE")
	m.withdrawStatus(1, log)
	want("status withdrawn", "DOWN", "DOWN", "DOWN")
}

// testAPI is a minimal Neutron API client (noauth admin).
type testAPI struct {
	t   *testing.T
	url string
}

func newTestAPI(t *testing.T, url string) *testAPI { return &testAPI{t: t, url: url} }

func (a *testAPI) do(method, path string, body any) map[string]any {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	out := map[string]any{}
	json.Unmarshal(raw, &out)
	return out
}

// create makes a resource and returns its id.
func (a *testAPI) create(plural, singular string, attrs map[string]any) string {
	a.t.Helper()
	o, _ := a.do("POST", "/v2.0/"+plural, map[string]any{singular: attrs})[singular].(map[string]any)
	id, _ := o["id"].(string)
	return id
}

// action runs a router action and returns the port id it answers.
func (a *testAPI) action(router, act string, body map[string]any) string {
	a.t.Helper()
	id, _ := a.do("PUT", "/v2.0/routers/"+router+"/"+act, body)["port_id"].(string)
	return id
}

func (a *testAPI) status(plural, id string) string {
	a.t.Helper()
	for _, o := range a.do("GET", "/v2.0/"+plural+"/"+id, nil) {
		if m, ok := o.(map[string]any); ok {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}
