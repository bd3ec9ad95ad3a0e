package northbound_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nimbus-sdn/nimbus/northbound"
)

var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE"}

// FuzzRequests throws request bodies and query strings at the handler:
// it must never answer 500, and every error must be a NeutronError JSON
// body. Paths may name the seeded resources as @net, @sub, @port, @ext,
// @router, @sg, @pool, @hm.
func FuzzRequests(f *testing.F) {
	st := openEmbedded(f)
	h := northbound.NewHandler(st, northbound.Config{Logger: quiet})
	a := newAPI(f, st, northbound.Config{})
	net := str(a.network(f, "p1", "n"), "id")
	sub := str(a.subnet(f, "p1", net, "10.0.0.0/16"), "id")
	port := str(a.port(f, "p1", net), "id")
	ext := str(a.network(f, "admin", "ext", "router:external", true), "id")
	a.subnet(f, "admin", ext, "203.0.113.0/24")
	router := str(a.create(f, "/v2.0/routers", "router", map[string]any{"project_id": "p1"}), "id")
	sg := str(a.create(f, "/v2.0/security-groups", "security_group", map[string]any{"project_id": "p1", "name": "s"}), "id")
	pool := str(a.create(f, "/v2.0/lb/pools", "pool", map[string]any{"tenant_id": "p1", "subnet_id": sub, "protocol": "TCP", "lb_method": "ROUND_ROBIN"}), "id")
	hm := str(a.create(f, "/v2.0/lb/health_monitors", "health_monitor", map[string]any{"tenant_id": "p1", "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3}), "id")
	repl := strings.NewReplacer("@net", net, "@sub", sub, "@port", port, "@ext", ext, "@router", router, "@sg", sg, "@pool", pool, "@hm", hm)

	seeds := []struct {
		m          uint8
		path, q, b string
	}{
		{0, "/", "", ""},
		{0, "/v2.0/networks", "sort_key=name&sort_dir=desc&limit=2&fields=id", ""},
		{0, "/v2.0/ports", "fixed_ips=ip_address%3D10.0.0.3&network_id=@net", ""},
		{0, "/v2.0/networks", "limit=1&marker=@net&page_reverse=True", ""},
		{1, "/v2.0/networks", "", `{"network": {"name": "x", "project_id": "p1", "provider:network_type": "vlan"}}`},
		{1, "/v2.0/subnets", "", `{"subnet": {"network_id": "@net", "cidr": "10.1.0.0/24", "project_id": "p1", "allocation_pools": [{"start": "10.1.0.5", "end": "10.1.0.9"}]}}`},
		{1, "/v2.0/ports", "", `{"port": {"network_id": "@net", "project_id": "p1", "fixed_ips": [{"subnet_id": "@sub", "ip_address": "10.0.3.4"}], "allowed_address_pairs": [{"ip_address": "10.0.9.0/24"}]}}`},
		{2, "/v2.0/ports/@port", "", `{"port": {"name": "y", "security_groups": ["@sg"], "binding:profile": {"a": 1}}}`},
		{2, "/v2.0/routers/@router", "", `{"router": {"external_gateway_info": {"network_id": "@ext", "enable_snat": "true"}}}`},
		{2, "/v2.0/routers/@router/add_router_interface", "", `{"subnet_id": "@sub"}`},
		{2, "/v2.0/routers/@router/remove_router_interface", "", `{"port_id": "@port"}`},
		{1, "/v2.0/floatingips", "", `{"floatingip": {"floating_network_id": "@ext", "project_id": "p1", "port_id": "@port"}}`},
		{1, "/v2.0/security-group-rules", "", `{"security_group_rule": {"security_group_id": "@sg", "direction": "ingress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 2}}`},
		{1, "/v2.0/lb/vips", "", `{"vip": {"pool_id": "@pool", "subnet_id": "@sub", "protocol": "TCP", "protocol_port": "80", "tenant_id": "p1", "session_persistence": {"type": "APP_COOKIE", "cookie_name": "c"}}}`},
		{1, "/v2.0/lb/members", "", `{"member": {"pool_id": "@pool", "address": "10.0.0.9", "protocol_port": 80, "tenant_id": "p1"}}`},
		{1, "/v2.0/lb/pools/@pool/health_monitors", "", `{"health_monitor": {"id": "@hm"}}`},
		{3, "/v2.0/lb/pools/@pool/health_monitors/@hm", "", ""},
		{2, "/v2.0/quotas/p1", "", `{"quota": {"network": "7"}}`},
		{3, "/v2.0/networks/@net", "", ""},
		{1, "/v2.0/networks", "", `{"network": {"name": 5}}`},
		{1, "/v2.0/networks", "", `[]`},
		{0, "/v2.0/extensions/lbaas", "", ""},
		{0, "/v2.0/extensions//0", "", ""},
		{0, "/v2.0/extensions/lbaas/x", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.m, s.path, s.q, []byte(s.b))
	}
	f.Fuzz(func(t *testing.T, m uint8, path, query string, body []byte) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " ?#\x00\r\n") || !utf8.ValidString(path) || len(path) > 512 {
			return
		}
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		target := repl.Replace(path)
		if query != "" {
			target += "?" + query
		}
		var req *http.Request
		func() {
			defer func() {
				if recover() != nil {
					req = nil // not a URL net/http would accept
				}
			}()
			req = httptest.NewRequest(method, "http://nb.test"+target, bytes.NewReader([]byte(repl.Replace(string(body)))))
		}()
		if req == nil {
			return
		}
		req.Header.Set("X-Project-Id", "p1")
		if m&0x80 != 0 {
			req.Header.Set("X-Roles", "member")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		out := w.Body.Bytes()
		if res.StatusCode >= 500 && res.StatusCode != 503 {
			t.Fatalf("%s %s %q: %d %s", method, target, body, res.StatusCode, out)
		}
		if res.StatusCode == http.StatusNoContent {
			return
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %q", method, target, out)
		}
		if p := strings.SplitN(req.URL.Path, "/", 4); res.StatusCode == http.StatusNotFound && len(p) >= 3 && p[1] == "v2.0" && p[2] == "extensions" {
			// Neutron's extension controller answers webob's plain
			// format (recorded: disc-ext-unknown, disc-ext-post).
			if v["code"] == nil || v["message"] == nil || v["title"] == nil {
				t.Fatalf("%s %s: 404 without code/message/title: %s", method, target, out)
			}
			return
		}
		if res.StatusCode >= 400 {
			ne, ok := v["NeutronError"].(map[string]any)
			if !ok || ne["type"] == nil || ne["message"] == nil {
				t.Fatalf("%s %s: %d without a NeutronError: %s", method, target, res.StatusCode, out)
			}
		}
	})
}
