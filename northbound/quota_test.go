package northbound_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/testport"
	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/store"
)

// used reads a project's usage of resource from the details view.
func (a *api) used(t testing.TB, project, resource string) float64 {
	t.Helper()
	d := obj(a.do("GET", "/v2.0/quotas/"+project+"/details", nil).must(t, 200), "quota")
	n, _ := obj(d, resource)["used"].(float64)
	return n
}

func (a *api) setQuota(t testing.TB, project string, q map[string]any) {
	t.Helper()
	a.do("PUT", "/v2.0/quotas/"+project, map[string]any{"quota": q}).must(t, 200)
}

func overQuota(t testing.TB, r resp, resource string) {
	t.Helper()
	msg := r.err(t, 409, "OverQuota")
	if want := "Quota exceeded for resources: ['" + resource + "']."; msg != want {
		t.Fatalf("message %q, want %q", msg, want)
	}
}

func TestQuotaEnforcedNetworksPorts(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	u := a.tenant("p1")
	a.setQuota(t, "p1", map[string]any{"network": 2, "port": 3})
	n1 := str(u.network(t, "p1", "n1"), "id")
	n2 := str(u.network(t, "p1", "n2"), "id")
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n3"}}), "network")
	// An admin creating in p1 is held to p1's quota; another project is not.
	overQuota(t, a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1"}}), "network")
	a.network(t, "p2", "other")
	if got := a.used(t, "p1", "network"); got != 2 {
		t.Fatalf("network used %v, want 2", got)
	}
	u.do("DELETE", "/v2.0/networks/"+n2, nil).must(t, 204)
	if got := a.used(t, "p1", "network"); got != 1 {
		t.Fatalf("network used after delete %v, want 1", got)
	}
	u.network(t, "p1", "n2again")
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")

	u.subnet(t, "p1", n1, "10.0.0.0/24")
	var ports []string
	for i := 0; i < 3; i++ {
		ports = append(ports, str(u.port(t, "p1", n1), "id"))
	}
	overQuota(t, u.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n1}}), "port")
	u.do("DELETE", "/v2.0/ports/"+ports[0], nil).must(t, 204)
	u.port(t, "p1", n1)
	if got := a.used(t, "p1", "port"); got != 3 {
		t.Fatalf("port used %v, want 3", got)
	}

	// -1 is unlimited.
	a.setQuota(t, "p1", map[string]any{"network": -1})
	for i := 0; i < 5; i++ {
		u.network(t, "p1", fmt.Sprint("many", i))
	}
	if got := a.used(t, "p1", "network"); got != 7 {
		t.Fatalf("network used %v, want 7", got)
	}
	// Dropping the overrides brings back the defaults (100 networks).
	a.do("DELETE", "/v2.0/quotas/p1", nil).must(t, 204)
	u.network(t, "p1", "after-reset")
}

// Deleting a network deletes its subnets and frees their usage;
// deleting a security group frees its rules'.
func TestQuotaCascades(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	u := a.tenant("p1")
	a.setQuota(t, "p1", map[string]any{"subnet": 2})
	n := str(u.network(t, "p1", "n"), "id")
	u.subnet(t, "p1", n, "10.0.0.0/24")
	u.subnet(t, "p1", n, "10.0.1.0/24")
	overQuota(t, u.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": n, "cidr": "10.0.2.0/24", "ip_version": 4}}), "subnet")
	u.do("DELETE", "/v2.0/networks/"+n, nil).must(t, 204)
	if got := a.used(t, "p1", "subnet"); got != 0 {
		t.Fatalf("subnet used after network delete %v, want 0", got)
	}
	n = str(u.network(t, "p1", "n2"), "id")
	u.subnet(t, "p1", n, "10.0.0.0/24")
	u.subnet(t, "p1", n, "10.0.1.0/24")

	// The default group and its four rules count but are never refused;
	// a new group brings two egress rules.
	a.setQuota(t, "p2", map[string]any{"security_group": 1, "security_group_rule": 7})
	w := a.tenant("p2")
	sg := str(w.create(t, "/v2.0/security-groups", "security_group", map[string]any{"name": "web"}), "id")
	if g, r := a.used(t, "p2", "security_group"), a.used(t, "p2", "security_group_rule"); g != 2 || r != 6 {
		t.Fatalf("used %v groups %v rules, want 2 and 6", g, r)
	}
	overQuota(t, w.do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "db"}}), "security_group")
	rule := map[string]any{"security_group_rule": map[string]any{"security_group_id": sg, "direction": "ingress",
		"ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}}
	w.do("POST", "/v2.0/security-group-rules", rule).must(t, 201)
	rule2 := map[string]any{"security_group_rule": map[string]any{"security_group_id": sg, "direction": "ingress",
		"ethertype": "IPv4", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}}
	overQuota(t, w.do("POST", "/v2.0/security-group-rules", rule2), "security_group_rule")
	w.do("DELETE", "/v2.0/security-groups/"+sg, nil).must(t, 204)
	if g, r := a.used(t, "p2", "security_group"), a.used(t, "p2", "security_group_rule"); g != 1 || r != 4 {
		t.Fatalf("used after group delete %v groups %v rules, want 1 and 4", g, r)
	}
	// The default group alone fills a quota of one.
	overQuota(t, w.do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "db"}}), "security_group")
	a.setQuota(t, "p2", map[string]any{"security_group": 2})
	w.do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "db"}}).must(t, 201)
}

func TestQuotaRoutersFloatingIPs(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	u := a.tenant("p1")
	a.setQuota(t, "p1", map[string]any{"router": 1, "floatingip": 1, "port": 1})
	ext := str(a.network(t, "admin", "ext", "router:external", true), "id")
	a.subnet(t, "admin", ext, "172.16.0.0/24")
	rt := str(u.create(t, "/v2.0/routers", "router", map[string]any{"name": "r1",
		"external_gateway_info": map[string]any{"network_id": ext}}), "id")
	overQuota(t, u.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r2"}}), "router")
	// A router interface port counts toward port usage but is not refused.
	n := str(u.network(t, "p1", "n"), "id")
	sub := str(u.subnet(t, "p1", n, "10.0.0.0/24"), "id")
	u.port(t, "p1", n)
	u.do("PUT", "/v2.0/routers/"+rt+"/add_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
	if got := a.used(t, "p1", "port"); got != 2 {
		t.Fatalf("port used %v, want 2", got)
	}
	f := str(u.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext}), "id")
	overQuota(t, u.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext}}), "floatingip")
	u.do("DELETE", "/v2.0/floatingips/"+f, nil).must(t, 204)
	u.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext})
	u.do("PUT", "/v2.0/routers/"+rt+"/remove_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
	if got := a.used(t, "p1", "port"); got != 1 {
		t.Fatalf("port used after interface removal %v, want 1", got)
	}
	// Gateway and floating IP ports belong to no project.
	if got := a.used(t, "admin", "port"); got != 0 {
		t.Fatalf("admin port used %v, want 0", got)
	}
	u.do("PUT", "/v2.0/routers/"+rt, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}}).must(t, 200)
	u.do("DELETE", "/v2.0/routers/"+rt, nil).must(t, 204)
	u.create(t, "/v2.0/routers", "router", map[string]any{"name": "r2"})
}

// embeddedReplicas opens n store clients on one embedded etcd, each
// behind its own handler.
func embeddedReplicas(t *testing.T, n int, cfg northbound.Config) []*api {
	free := func() int {
		p, err := testport.Free()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", free())
	first, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(t.TempDir(), "etcd"),
		EmbedClientURL: url, EmbedPeerURL: fmt.Sprintf("http://127.0.0.1:%d", free()), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	out := []*api{newAPI(t, first, cfg)}
	for i := 1; i < n; i++ {
		st, err := store.Open(context.Background(), store.Config{Endpoints: []string{url}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, newAPI(t, st, cfg))
	}
	return out
}

// N parallel creates through two replicas against quota K: exactly K
// succeed, and the counter stays equal to the records while creates
// race with deletes.
func TestQuotaParallelAcrossReplicas(t *testing.T) {
	rs := embeddedReplicas(t, 2, northbound.Config{})
	const n, k = 16, 3
	rs[0].setQuota(t, "p1", map[string]any{"network": k})
	race := func(creates int, deletes []string) (ok int, other []string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := 0; i < creates+len(deletes); i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := rs[i%2]
				var res resp
				if i < creates {
					res = r.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1"}})
				} else {
					res = r.do("DELETE", "/v2.0/networks/"+deletes[i-creates], nil)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case res.code == 201:
					ok++
				case res.code == 204:
				case res.code == 409 && strings.Contains(res.raw, "OverQuota"):
				default:
					other = append(other, res.raw)
				}
			}(i)
		}
		wg.Wait()
		return ok, other
	}
	ok, other := race(n, nil)
	if ok != k || len(other) > 0 {
		t.Fatalf("%d of %d creates succeeded against quota %d; unexpected answers %v", ok, n, k, other)
	}
	have := func() []string {
		return ids(list(rs[1].do("GET", "/v2.0/networks?project_id=p1", nil).must(t, 200), "networks"))
	}
	nets := have()
	if len(nets) != k {
		t.Fatalf("%d networks, want %d", len(nets), k)
	}
	_, other = race(n, nets)
	if len(other) > 0 {
		t.Fatalf("unexpected answers %v", other)
	}
	nets = have()
	if got := rs[0].used(t, "p1", "network"); int(got) != len(nets) || len(nets) > k {
		t.Fatalf("network used %v, %d networks exist, quota %d", got, len(nets), k)
	}
}

// The usage is split over shards: a limit lowered below the usage, or
// unlimited records pushed past it, still refuse creates until deletes
// bring the usage back under the limit, through both the transactional
// (ports) and the planned (networks) delete paths.
func TestQuotaShardsLoweredLimit(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	u := a.tenant("p1")
	a.setQuota(t, "p1", map[string]any{"network": 40, "port": 40})
	var nets []string
	for i := 0; i < 20; i++ {
		nets = append(nets, str(u.network(t, "p1", fmt.Sprint("n", i)), "id"))
	}
	u.subnet(t, "p1", nets[0], "10.0.0.0/24")
	var ports []string
	for i := 0; i < 20; i++ {
		ports = append(ports, str(u.port(t, "p1", nets[0]), "id"))
	}
	a.setQuota(t, "p1", map[string]any{"network": 3, "port": 17})
	if n, p := a.used(t, "p1", "network"), a.used(t, "p1", "port"); n != 20 || p != 20 {
		t.Fatalf("used %v networks %v ports, want 20 and 20", n, p)
	}
	for i := 19; i >= 3; i-- {
		overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")
		u.do("DELETE", "/v2.0/networks/"+nets[i], nil).must(t, 204)
	}
	if got := a.used(t, "p1", "network"); got != 3 {
		t.Fatalf("network used %v, want 3", got)
	}
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")
	for i := 19; i >= 17; i-- {
		overQuota(t, u.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nets[0]}}), "port")
		u.do("DELETE", "/v2.0/ports/"+ports[i], nil).must(t, 204)
	}
	overQuota(t, u.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nets[0]}}), "port")
	u.do("DELETE", "/v2.0/ports/"+ports[0], nil).must(t, 204)
	u.port(t, "p1", nets[0])
	overQuota(t, u.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nets[0]}}), "port")
	if got := a.used(t, "p1", "port"); got != 17 {
		t.Fatalf("port used %v, want 17", got)
	}
	// Raising the limit again frees exactly the difference.
	a.setQuota(t, "p1", map[string]any{"network": 5})
	u.network(t, "p1", "a")
	u.network(t, "p1", "b")
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")
	// Unlimited (35 networks), then back to a limit below the usage and
	// just above it.
	a.setQuota(t, "p1", map[string]any{"network": -1})
	for i := 0; i < 30; i++ {
		u.network(t, "p1", fmt.Sprint("m", i))
	}
	a.setQuota(t, "p1", map[string]any{"network": 33})
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")
	a.setQuota(t, "p1", map[string]any{"network": 36})
	u.network(t, "p1", "last")
	overQuota(t, u.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}), "network")
	if got := a.used(t, "p1", "network"); got != 36 {
		t.Fatalf("network used %v, want 36", got)
	}
}
