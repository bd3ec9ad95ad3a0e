package northbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/store"
)

// replicas starts n handlers, each with its own store client, on one
// real etcd.
func replicas(t testing.TB, c *etcdtest.Cluster, n int, cfg northbound.Config) []*api {
	var out []*api
	for i := 0; i < n; i++ {
		st, err := store.Open(context.Background(), store.Config{Endpoints: c.Endpoints(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, newAPI(t, st, cfg))
	}
	return out
}

// 100 ports created in parallel through 3 replicas get 100 distinct IPs
// and 100 distinct MACs.
func TestParallelPortsAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	rs := replicas(t, c, 3, northbound.Config{})
	net := str(rs[0].network(t, "p1", "n"), "id")
	rs[1].subnet(t, "p1", net, "10.0.0.0/24")
	const n = 100
	var wg sync.WaitGroup
	ips := make([]string, n)
	macs := make([]string, n)
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := rs[i%3].do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1"}})
			if r.code != 201 {
				errs <- r.raw
				return
			}
			p := obj(r.body, "port")
			ips[i], macs[i] = fixedIP(p), str(p, "mac_address")
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	seenIP, seenMAC := map[string]bool{}, map[string]bool{}
	for i := range ips {
		if ips[i] == "" || seenIP[ips[i]] {
			t.Fatalf("ip %q duplicated or missing", ips[i])
		}
		if seenMAC[macs[i]] {
			t.Fatalf("mac %s duplicated", macs[i])
		}
		seenIP[ips[i]], seenMAC[macs[i]] = true, true
	}
	// Every replica sees all of them (no replica-local state).
	for _, r := range rs {
		if got := len(list(r.do("GET", "/v2.0/ports?network_id="+net, nil).must(t, 200), "ports")); got != n {
			t.Fatalf("a replica lists %d ports", got)
		}
	}
	// Explicit addresses requested concurrently: exactly one wins each.
	var wins atomic.Int32
	var wg2 sync.WaitGroup
	for i := 0; i < 9; i++ {
		wg2.Add(1)
		go func(i int) {
			defer wg2.Done()
			r := rs[i%3].do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
				"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.250"}}}})
			switch r.code {
			case 201:
				wins.Add(1)
			case 409:
			default:
				t.Errorf("unexpected %d %s", r.code, r.raw)
			}
		}(i)
	}
	wg2.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d creates won 10.0.0.250", wins.Load())
	}
	// Segmentation ids allocated concurrently are distinct too.
	segs := make([]float64, 12)
	var wg3 sync.WaitGroup
	for i := range segs {
		wg3.Add(1)
		go func(i int) {
			defer wg3.Done()
			r := rs[i%3].do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "vlan"}})
			if r.code != 201 {
				t.Errorf("%d %s", r.code, r.raw)
				return
			}
			segs[i], _ = obj(r.body, "network")["provider:segmentation_id"].(float64)
		}(i)
	}
	wg3.Wait()
	seen := map[float64]bool{}
	for _, s := range segs {
		if s == 0 || seen[s] {
			t.Fatalf("segmentation ids not unique: %v", segs)
		}
		seen[s] = true
	}
}

// With etcd down the API answers 503 with a NeutronError, then recovers.
func TestStoreUnavailable(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := replicas(t, c, 1, northbound.Config{RequestTimeout: 1500 * time.Millisecond})[0]
	a.network(t, "p1", "n")
	c.Members[0].Stop()
	for _, r := range []resp{
		a.do("GET", "/v2.0/networks", nil),
		a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1"}}),
	} {
		msg := r.err(t, 503, "ServiceUnavailable")
		if !strings.Contains(msg, "backing store") {
			t.Fatal(msg)
		}
	}
	c.Members[0].Restart()
	c.Members[0].WaitHealthy(30 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := a.do("GET", "/v2.0/networks", nil)
		if r.code == 200 {
			if len(list(r.body, "networks")) != 1 {
				t.Fatal(r.raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %s", r.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fakeKeystone answers GET /v3/auth/tokens for a fixed set of tokens.
func fakeKeystone(t *testing.T, service string, calls *atomic.Int32) *httptest.Server {
	tokens := map[string]map[string]any{
		"admin-tok":  {"project": map[string]any{"id": "adminproj"}, "roles": []any{map[string]any{"name": "admin"}}},
		"alice-tok":  {"project": map[string]any{"id": "alice"}, "roles": []any{map[string]any{"name": "member"}}},
		"bob-tok":    {"project": map[string]any{"id": "bob"}, "roles": []any{map[string]any{"name": "reader"}, map[string]any{"name": "member"}}},
		"domain-tok": {"roles": []any{map[string]any{"name": "member"}}},
		"old-tok":    {"project": map[string]any{"id": "alice"}, "expires_at": "2001-01-01T00:00:00Z"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/v3/auth/tokens" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("X-Auth-Token") != service {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tok, ok := tokens[r.Header.Get("X-Subject-Token")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		body := map[string]any{}
		for k, v := range tok {
			body[k] = v
		}
		if body["expires_at"] == nil {
			body["expires_at"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": body})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestKeystoneAuth(t *testing.T) {
	var calls atomic.Int32
	ks := fakeKeystone(t, "svc-secret", &calls)
	a := newAPI(t, openEmbedded(t), northbound.Config{Auth: northbound.AuthKeystone, KeystoneURL: ks.URL, ServiceToken: "svc-secret"})
	tok := func(s string) *api { return a.as(map[string]string{"X-Auth-Token": s}) }
	a.do("GET", "/v2.0/networks", nil).err(t, 401, "")
	tok("forged").do("GET", "/v2.0/networks", nil).err(t, 401, "")
	tok("domain-tok").do("GET", "/v2.0/networks", nil).err(t, 401, "")
	tok("old-tok").do("GET", "/v2.0/networks", nil).err(t, 401, "")
	// Discovery needs no token.
	a.do("GET", "/", nil).must(t, 200)
	alice, bob, admin := tok("alice-tok"), tok("bob-tok"), tok("admin-tok")
	n := alice.create(t, "/v2.0/networks", "network", map[string]any{"name": "an"})
	if n["project_id"] != "alice" {
		t.Fatal(n)
	}
	// X-Project-Id cannot impersonate in keystone mode.
	bob.as(map[string]string{"X-Project-Id": "alice"}).do("GET", "/v2.0/networks/"+str(n, "id"), nil).err(t, 404, "NetworkNotFound")
	bob.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "alice"}}).err(t, 400, "")
	bob.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan"}}).err(t, 403, "")
	if l := list(bob.do("GET", "/v2.0/networks", nil).must(t, 200), "networks"); len(l) != 0 {
		t.Fatal(l)
	}
	// The admin role sees everything and may create for others.
	if l := list(admin.do("GET", "/v2.0/networks", nil).must(t, 200), "networks"); len(l) != 1 {
		t.Fatal(l)
	}
	bn := admin.create(t, "/v2.0/networks", "network", map[string]any{"name": "for-bob", "project_id": "bob", "provider:network_type": "vlan"})
	bob.do("GET", "/v2.0/networks/"+str(bn, "id"), nil).must(t, 200)
	// Validated tokens are cached for a while.
	before := calls.Load()
	for i := 0; i < 5; i++ {
		alice.do("GET", "/v2.0/networks", nil).must(t, 200)
	}
	if calls.Load() != before {
		t.Fatalf("token validated %d more times", calls.Load()-before)
	}
	// Keystone down: 503.
	ks.Close()
	b2 := newAPI(t, openEmbedded(t), northbound.Config{Auth: northbound.AuthKeystone, KeystoneURL: ks.URL})
	b2.as(map[string]string{"X-Auth-Token": "x"}).do("GET", "/v2.0/networks", nil).err(t, 503, "")
}

func TestWrongServiceToken(t *testing.T) {
	var calls atomic.Int32
	ks := fakeKeystone(t, "svc-secret", &calls)
	a := newAPI(t, openEmbedded(t), northbound.Config{Auth: northbound.AuthKeystone, KeystoneURL: ks.URL, ServiceToken: "wrong"})
	r := a.as(map[string]string{"X-Auth-Token": "alice-tok"}).do("GET", "/v2.0/networks", nil)
	if r.code != 401 && r.code != 503 {
		t.Fatal(fmt.Sprint(r.code, r.raw))
	}
}
