package northbound_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/store"
)

// etcdRev is the store's current etcd revision: it moves on every
// committed write, so an unchanged revision means nothing was written
// (not even a record created and deleted again).
func etcdRev(t *testing.T, st *store.Store) int64 {
	t.Helper()
	r, err := st.Client().Get(context.Background(), "nimbus-test-probe")
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

func count(t *testing.T, a *api, path, plural string) int {
	t.Helper()
	return len(list(a.do("GET", path, nil).must(t, 200), plural))
}

// TestBulkCreateAllOrNone: a failure injected in the middle item of a
// bulk create of networks, subnets, ports and security group rules
// leaves nothing behind and writes nothing at all: the batch is one
// store transaction, not creates undone by deletes.
func TestBulkCreateAllOrNone(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	const p = "project-bulk"
	net := a.network(t, p, "n-bulk")
	netID := str(net, "id")
	a.subnet(t, p, netID, "10.70.0.0/24")
	sg := a.create(t, "/v2.0/security-groups", "security_group", map[string]any{"name": "sg-bulk", "project_id": p})
	sgID := str(sg, "id")
	t.Cleanup(func() { northbound.SetBulkItemHook(nil) })
	northbound.SetBulkItemHook(func(_ string, i int) bool { return i == 1 })

	rule := func(port int) map[string]any {
		return map[string]any{"security_group_id": sgID, "direction": "ingress", "ethertype": "IPv4",
			"protocol": "tcp", "port_range_min": port, "port_range_max": port, "project_id": p}
	}
	cases := []struct {
		path, plural string
		items        []any
	}{
		{"/v2.0/networks", "networks", []any{
			map[string]any{"name": "b1", "project_id": "project-bulk-new"},
			map[string]any{"name": "b2", "project_id": "project-bulk-new"},
			map[string]any{"name": "b3", "project_id": "project-bulk-new"}}},
		{"/v2.0/subnets", "subnets", []any{
			map[string]any{"network_id": netID, "cidr": "10.71.0.0/24", "ip_version": 4, "project_id": p},
			map[string]any{"network_id": netID, "cidr": "10.72.0.0/24", "ip_version": 4, "project_id": p},
			map[string]any{"network_id": netID, "cidr": "10.73.0.0/24", "ip_version": 4, "project_id": p}}},
		{"/v2.0/ports", "ports", []any{
			map[string]any{"network_id": netID, "project_id": p},
			map[string]any{"network_id": netID, "project_id": p},
			map[string]any{"network_id": netID, "project_id": p}}},
		{"/v2.0/security-group-rules", "security_group_rules", []any{rule(81), rule(82), rule(83)}},
	}
	for _, c := range cases {
		before := count(t, a, c.path, c.plural)
		sgBefore := obj(a.do("GET", "/v2.0/security-groups/"+sgID, nil).must(t, 200), "security_group")["revision_number"]
		rev := etcdRev(t, st)
		a.do("POST", c.path, map[string]any{c.plural: c.items}).err(t, 500, "HTTPInternalServerError")
		if got := etcdRev(t, st); got != rev {
			t.Errorf("%s: the failed bulk wrote to etcd (revision %d -> %d)", c.plural, rev, got)
		}
		if got := count(t, a, c.path, c.plural); got != before {
			t.Errorf("%s: %d after the failed bulk, want %d", c.plural, got, before)
		}
		if got := obj(a.do("GET", "/v2.0/security-groups/"+sgID, nil).must(t, 200), "security_group")["revision_number"]; got != sgBefore {
			t.Errorf("%s: group revision %v -> %v after a failed bulk", c.plural, sgBefore, got)
		}
	}
	// Without the failure the same batches go through whole.
	northbound.SetBulkItemHook(nil)
	for _, c := range cases {
		before := count(t, a, c.path, c.plural)
		made := list(a.do("POST", c.path, map[string]any{c.plural: c.items}).must(t, 201), c.plural)
		if len(made) != 3 || count(t, a, c.path, c.plural) != before+3 {
			t.Errorf("%s: bulk made %d, list grew by %d; want 3", c.plural, len(made), count(t, a, c.path, c.plural)-before)
		}
	}
}

// TestBulkCreateQuotaCountsBatch: the quota counts the whole batch: a
// batch one item over the limit is refused whole.
func TestBulkCreateQuotaCountsBatch(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	const p = "project-bq"
	a.do("PUT", "/v2.0/quotas/"+p, map[string]any{"quota": map[string]any{"port": 3, "network": 2}}).must(t, 200)
	net := str(a.network(t, p, "n-bq"), "id")
	a.subnet(t, p, net, "10.74.0.0/24")
	four := []any{}
	for range 4 {
		four = append(four, map[string]any{"network_id": net, "project_id": p})
	}
	a.do("POST", "/v2.0/ports", map[string]any{"ports": four}).err(t, 409, "OverQuota")
	if n := count(t, a, "/v2.0/ports?network_id="+net, "ports"); n != 0 {
		t.Fatalf("%d ports after the refused batch, want 0", n)
	}
	a.do("POST", "/v2.0/networks", map[string]any{"networks": []any{
		map[string]any{"name": "x1", "project_id": p}, map[string]any{"name": "x2", "project_id": p}}}).err(t, 409, "OverQuota")
	list(a.do("POST", "/v2.0/ports", map[string]any{"ports": four[:3]}).must(t, 201), "ports")
	used := obj(obj(a.do("GET", "/v2.0/quotas/"+p+"/details", nil).must(t, 200), "quota"), "port")["used"]
	if used != float64(3) {
		t.Fatalf("port quota used %v, want 3", used)
	}
}

// TestBulkCreateConcurrent: concurrent bulk creates on one network under
// a quota: each batch is taken whole or refused whole, addresses and
// MACs stay unique, and the usage counter matches what exists.
func TestBulkCreateConcurrent(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	const p = "project-bc"
	a.do("PUT", "/v2.0/quotas/"+p, map[string]any{"quota": map[string]any{"port": 10}}).must(t, 200)
	net := str(a.network(t, p, "n-bc"), "id")
	a.subnet(t, p, net, "10.75.0.0/24")
	const clients, per = 4, 4
	codes := make([]int, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var items []any
			for i := range per {
				items = append(items, map[string]any{"network_id": net, "project_id": p, "name": fmt.Sprintf("c%d-%d", c, i)})
			}
			codes[c] = a.do("POST", "/v2.0/ports", map[string]any{"ports": items}).code
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 201:
			ok++
		case 409:
		default:
			t.Fatalf("bulk answered %d (codes %v)", c, codes)
		}
	}
	if ok != 10/per {
		t.Fatalf("%d batches of %d went through under a quota of 10, want %d (codes %v)", ok, per, 10/per, codes)
	}
	ports := list(a.do("GET", "/v2.0/ports?network_id="+net, nil).must(t, 200), "ports")
	if len(ports) != ok*per {
		t.Fatalf("%d ports, want %d", len(ports), ok*per)
	}
	batches := map[string]int{}
	ips, macs := map[string]bool{}, map[string]bool{}
	for _, x := range ports {
		pm := x.(map[string]any)
		batches[str(pm, "name")[:2]]++
		ip, mac := fixedIP(pm), str(pm, "mac_address")
		if ips[ip] || macs[mac] {
			t.Fatalf("address %s or MAC %s given twice", ip, mac)
		}
		ips[ip], macs[mac] = true, true
	}
	for b, n := range batches {
		if n != per {
			t.Fatalf("batch %s has %d of its %d ports", b, n, per)
		}
	}
	used := obj(obj(a.do("GET", "/v2.0/quotas/"+p+"/details", nil).must(t, 200), "quota"), "port")["used"]
	if used != float64(ok*per) {
		t.Fatalf("port quota used %v, want %d", used, ok*per)
	}
}
