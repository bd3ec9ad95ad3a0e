package northbound_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/store"
)

// TestFloatingIPStatusFromDataPlane: a floating IP is ACTIVE only while
// associated and some switch holds its flows (cookie object: the
// floating IP's id) with none refused; the switch's status record comes
// and goes as switches/status.go publishes and withdraws it.
// switches.TestDataPlaneStatus covers ports and routers end to end.
func TestFloatingIPStatusFromDataPlane(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{StatusCacheTTL: -1}) // each read fresh: the derivation is under test
	ext := str(a.network(t, "admin", "ext", "router:external", true), "id")
	a.subnet(t, "admin", ext, "203.0.113.0/24")
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	rid := str(a.create(t, "/v2.0/routers", "router", map[string]any{"name": "r", "project_id": "p1",
		"external_gateway_info": map[string]any{"network_id": ext}}), "id")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
	vm := str(a.port(t, "p1", net, "device_owner", "compute:nova"), "id")
	fid := str(a.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "project_id": "p1", "port_id": vm}), "id")
	status := func() string {
		return str(obj(a.do("GET", "/v2.0/floatingips/"+fid, nil).must(t, 200), "floatingip"), "status")
	}
	if s := status(); s != "DOWN" {
		t.Fatalf("no switch holds its flows, status %s", s)
	}
	w := followsSwitches(t, st, fid, status)
	a.do("PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": nil}}).must(t, 200)
	if s := status(); s != "DOWN" {
		t.Fatalf("disassociated, status %s", s)
	}
	if err := w.Withdraw(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
}

// followsSwitches checks that an object's status (status()) follows the
// switches' status records: ACTIVE once switch 7 holds flows of object
// id, DOWN while switch 8 refused one, ACTIVE again once 8 is withdrawn.
// It leaves switch 7's record published, with the writer returned.
func followsSwitches(t *testing.T, st *store.Store, id string, status func() string) *store.StatusWriter {
	t.Helper()
	w := st.NewStatusWriter(10, quiet)
	ctx := context.Background()
	obj := fmt.Sprintf("%x", pipeline.ObjectID(id))
	if err := w.Publish(ctx, 7, store.SwitchStatus{DPID: "0000000000000007", Objects: []string{obj}}); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != "ACTIVE" {
		t.Fatalf("flows installed, status %s", s)
	}
	if err := w.Publish(ctx, 8, store.SwitchStatus{DPID: "0000000000000008", Refused: []string{obj}}); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != "DOWN" {
		t.Fatalf("a flow refused on another switch, status %s", s)
	}
	if err := w.Withdraw(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != "ACTIVE" {
		t.Fatalf("refusing switch withdrawn, status %s", s)
	}
	return w
}

// TestStatusCache: the switches' status records are read at most once
// per StatusCacheTTL across requests: within the TTL, a record published
// after the last read (the floating IP's create answer read them) is not
// seen yet; past it, it is; with a TTL of -1 every request reads them.
func TestStatusCache(t *testing.T) {
	st := openEmbedded(t)
	for _, ttl := range []time.Duration{time.Hour, 50 * time.Millisecond, -1} {
		a := newAPI(t, st, northbound.Config{StatusCacheTTL: ttl})
		ext := str(a.network(t, "admin", "ext", "router:external", true), "id")
		a.subnet(t, "admin", ext, "203.0.113.0/24")
		net := str(a.network(t, "p1", "n"), "id")
		sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
		rid := str(a.create(t, "/v2.0/routers", "router", map[string]any{"name": "r", "project_id": "p1",
			"external_gateway_info": map[string]any{"network_id": ext}}), "id")
		a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
		vm := str(a.port(t, "p1", net, "device_owner", "compute:nova"), "id")
		fip := a.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "project_id": "p1", "port_id": vm})
		fid := str(fip, "id")
		if s := str(fip, "status"); s != "DOWN" {
			t.Fatalf("ttl %v: created with status %s", ttl, s)
		}
		status := func() string {
			return str(obj(a.do("GET", "/v2.0/floatingips/"+fid, nil).must(t, 200), "floatingip"), "status")
		}
		w := st.NewStatusWriter(10, quiet)
		ctx := context.Background()
		if err := w.Publish(ctx, 9, store.SwitchStatus{DPID: "0000000000000009", Objects: []string{fmt.Sprintf("%x", pipeline.ObjectID(fid))}}); err != nil {
			t.Fatal(err)
		}
		switch ttl {
		case time.Hour:
			if s := status(); s != "DOWN" {
				t.Fatalf("ttl 1h: the create's read was not reused: status %s", s)
			}
		case -1:
			if s := status(); s != "ACTIVE" {
				t.Fatalf("ttl -1: flows installed, status %s", s)
			}
		default:
			deadline := time.Now().Add(10 * time.Second)
			for status() != "ACTIVE" {
				if time.Now().After(deadline) {
					t.Fatalf("ttl %v: the published record never read", ttl)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if err := w.Withdraw(ctx, 9); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVIPStatusFromDataPlane: a VIP is ACTIVE only while admin up and
// some switch holds its flows (cookie object: the VIP's id), as app/lb
// installs them where it has clients; DOWN before, when a switch refused
// one of them, and when set admin down.
func TestVIPStatusFromDataPlane(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{StatusCacheTTL: -1})
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	pid := str(a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"name": "web", "subnet_id": sub, "protocol": "HTTP",
		"lb_method": "ROUND_ROBIN", "tenant_id": "p1"}), "id")
	vip := a.create(t, "/v2.0/lb/vips", "vip", map[string]any{"name": "v", "pool_id": pid, "subnet_id": sub, "protocol": "HTTP",
		"protocol_port": 80, "tenant_id": "p1"})
	vid := str(vip, "id")
	if s := str(vip, "status"); s != "DOWN" {
		t.Fatalf("created, no switch holds its flows: status %s", s)
	}
	status := func() string { return str(obj(a.do("GET", "/v2.0/lb/vips/"+vid, nil).must(t, 200), "vip"), "status") }
	w := followsSwitches(t, st, vid, status)
	a.do("PUT", "/v2.0/lb/vips/"+vid, map[string]any{"vip": map[string]any{"admin_state_up": false}}).must(t, 200)
	if s := status(); s != "DOWN" {
		t.Fatalf("admin down, status %s", s)
	}
	if err := w.Withdraw(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
}

// TestPoolStatsFromCounters: a pool's stats are the sums, over every
// switch's published counters, of its VIP's counted flows (bytes_in from
// "in", bytes_out from "out", total_connections from the packets of
// "new"); another VIP's counters on the same switches are not added; a
// withdrawn switch's counters leave the sums; a non-admin project cannot
// read another project's pool stats (404), and reads its own.
func TestPoolStatsFromCounters(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{StatusCacheTTL: -1})
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	pool := func(name string) (string, string) {
		pid := str(a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"name": name, "subnet_id": sub, "protocol": "HTTP",
			"lb_method": "ROUND_ROBIN", "tenant_id": "p1"}), "id")
		vid := str(a.create(t, "/v2.0/lb/vips", "vip", map[string]any{"name": name, "pool_id": pid, "subnet_id": sub, "protocol": "HTTP",
			"protocol_port": 80, "tenant_id": "p1"}), "id")
		return pid, vid
	}
	pid, vid := pool("web")
	_, other := pool("db")
	noVIP := str(a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"name": "spare", "subnet_id": sub, "protocol": "HTTP",
		"lb_method": "ROUND_ROBIN", "tenant_id": "p1"}), "id")
	stats := func(c *api, id string) map[string]any {
		return obj(c.do("GET", "/v2.0/lb/pools/"+id+"/stats", nil).must(t, 200), "stats")
	}
	active := float64(0)
	want := func(s map[string]any, in, out, conns float64) {
		t.Helper()
		if s["bytes_in"] != in || s["bytes_out"] != out || s["total_connections"] != conns || s["active_connections"] != active {
			t.Fatalf("stats %v, want bytes_in %v, bytes_out %v, total_connections %v, active_connections %v", s, in, out, conns, active)
		}
	}
	want(stats(a, pid), 0, 0, 0)
	key := func(vip, name string) string { return pipeline.CounterKey(pipeline.ObjectID(vip), name) }
	w := st.NewStatusWriter(10, quiet)
	ctx := context.Background()
	for dpid, n := range map[uint64]uint64{5: 1, 6: 10} {
		c := store.SwitchCounters{DPID: fmt.Sprintf("%016x", dpid), Counters: map[string]pipeline.Counter{
			key(vid, pipeline.CounterIn):    {Packets: 7 * n, Bytes: 700 * n},
			key(vid, pipeline.CounterOut):   {Packets: 5 * n, Bytes: 5000 * n},
			key(vid, pipeline.CounterNew):   {Packets: 2 * n, Bytes: 120 * n},
			key(other, pipeline.CounterIn):  {Packets: 1000, Bytes: 1000000},
			key(other, pipeline.CounterNew): {Packets: 1000, Bytes: 60000},
		}}
		if err := w.PublishCounters(ctx, dpid, c); err != nil {
			t.Fatal(err)
		}
	}
	want(stats(a, pid), 7700, 55000, 22)
	want(stats(a, noVIP), 0, 0, 0)
	want(stats(a.tenant("p1"), pid), 7700, 55000, 22)
	a.tenant("p2").do("GET", "/v2.0/lb/pools/"+pid+"/stats", nil).err(t, 404, "")
	if err := w.Withdraw(ctx, 6); err != nil {
		t.Fatal(err)
	}
	want(stats(a, pid), 700, 5000, 2)
	if err := w.Withdraw(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// active_connections: the chassis's counts of the VIP's connections
	// (node agents), summed; another VIP's left out.
	for c, n := range map[string]int{"hv1": 3, "hv2": 4} {
		if err := w.PublishLBConns(ctx, c, store.LBConns{Chassis: c, VIPs: map[string]int{vid: n, other: 50}}); err != nil {
			t.Fatal(err)
		}
	}
	active = 7
	want(stats(a, pid), 0, 0, 0)
}
