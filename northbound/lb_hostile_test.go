package northbound_test

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// A non-admin project's hostile LBaaS input, each refused with
// Neutron's 400 and nothing stored:
//   - a health monitor delay sent as a string past 32 bits (it would
//     overflow the prober's duration and panic its ticker);
//   - a session_persistence cookie_name of 100,000 characters, or not a
//     string;
//   - a bulk create of 1,001 members (no quota bounds members).
func TestLBHostileTenantInput(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	tn := a.tenant("p1")
	net := str(tn.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"}), "id")
	sub := str(tn.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"}), "id")
	pool := str(tn.create(t, "/v2.0/lb/pools", "pool", map[string]any{"subnet_id": sub, "protocol": "TCP", "lb_method": "ROUND_ROBIN"}), "id")

	for _, d := range []any{"9223372037", "2147483648", 9223372037.0} {
		tn.do("POST", "/v2.0/lb/health_monitors", map[string]any{"health_monitor": map[string]any{
			"type": "TCP", "delay": d, "timeout": 1, "max_retries": 1}}).err(t, 400, "")
	}
	tn.create(t, "/v2.0/lb/health_monitors", "health_monitor", map[string]any{"type": "TCP", "delay": "2147483647", "timeout": 1, "max_retries": 1})

	for _, c := range []any{strings.Repeat("c", 100000), 5} {
		tn.do("POST", "/v2.0/lb/vips", map[string]any{"vip": map[string]any{"pool_id": pool, "subnet_id": sub, "protocol": "TCP",
			"protocol_port": 80, "session_persistence": map[string]any{"type": "APP_COOKIE", "cookie_name": c}}}).err(t, 400, "")
	}
	if l := list(tn.do("GET", "/v2.0/lb/vips", nil).must(t, 200), "vips"); len(l) != 0 {
		t.Fatalf("a refused VIP was stored: %v", l)
	}

	var members []any
	for i := 0; i < 1001; i++ {
		members = append(members, map[string]any{"pool_id": pool, "address": "10.0.0.9", "protocol_port": 1 + i})
	}
	tn.do("POST", "/v2.0/lb/members", map[string]any{"members": members}).err(t, 400, "")
	if l := list(tn.do("GET", "/v2.0/lb/members", nil).must(t, 200), "members"); len(l) != 0 {
		t.Fatalf("a refused bulk left %d members", len(l))
	}
}
