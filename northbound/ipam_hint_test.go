package northbound_test

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// TestIPAMHintLargeSubnet: a subnet past the hint threshold (300 of its
// 300 pool addresses taken by ports created alternately through two
// replicas) gets every address once; the next create is refused as
// full; an address freed through the other replica is taken by the next
// create at once, though this replica's hint still says the subnet is
// full.
func TestIPAMHintLargeSubnet(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	b := newAPI(t, st, northbound.Config{})
	a.do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"port": 1000}}).must(t, 200)
	net := str(a.network(t, "p1", "big"), "id")
	a.subnet(t, "p1", net, "10.50.0.0/23", "allocation_pools", []any{map[string]any{"start": "10.50.0.10", "end": "10.50.1.53"}})
	seen := map[string]string{}
	for i := 0; i < 300; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		p := c.port(t, "p1", net)
		ip := fixedIP(p)
		if other, dup := seen[ip]; dup {
			t.Fatalf("port %d got %s, already given to %s", i, ip, other)
		}
		seen[ip] = str(p, "id")
	}
	for _, c := range []*api{a, b} {
		c.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1"}}).
			err(t, 409, "IpAddressGenerationFailure")
	}
	var freed string
	for ip, id := range seen {
		freed = ip
		b.do("DELETE", "/v2.0/ports/"+id, nil)
		break
	}
	if got := fixedIP(a.port(t, "p1", net)); got != freed {
		t.Fatalf("after %s was freed through the other replica, the full subnet gave %q", freed, got)
	}
}
