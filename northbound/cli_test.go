package northbound_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// cliRunner runs the real OpenStack clients against one handler.
type cliRunner struct {
	t   *testing.T
	url string
}

func requireCLIs(t *testing.T) {
	t.Helper()
	if os.Getenv("NIMBUS_E2E") != "1" {
		t.Skip("set NIMBUS_E2E=1 to drive the openstack and neutron CLIs")
	}
	for _, c := range []string{"openstack", "neutron"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s CLI not installed: run scripts/deps.sh (python3-openstackclient python3-neutronclient)", c)
		}
	}
}

func (c *cliRunner) run(ok bool, name string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "OS_CLOUD=", "OS_AUTH_URL=", "HOME="+c.t.TempDir())
	if name == "neutron" {
		cmd.Env = append(cmd.Env, "OS_AUTH_TYPE=admin_token")
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	c.t.Logf("%s %s (%.1fs)", name, strings.Join(args, " "), time.Since(start).Seconds())
	if ok && err != nil {
		c.t.Fatalf("%s %v failed: %v\nstdout: %s\nstderr: %s", name, args, err, out.String(), errb.String())
	}
	if !ok && err == nil {
		c.t.Fatalf("%s %v succeeded, want a failure:\n%s", name, args, out.String())
	}
	if !ok {
		return errb.String()
	}
	return out.String()
}

// os runs `openstack` with no authentication against the handler.
func (c *cliRunner) os(args ...string) string {
	c.t.Helper()
	return c.run(true, "openstack", append([]string{"--os-auth-type", "none", "--os-endpoint", c.url}, args...)...)
}

func (c *cliRunner) osFail(args ...string) string {
	c.t.Helper()
	return c.run(false, "openstack", append([]string{"--os-auth-type", "none", "--os-endpoint", c.url}, args...)...)
}

func (c *cliRunner) osJSON(args ...string) map[string]any {
	c.t.Helper()
	out := c.os(append(args, "-f", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("openstack %v: not JSON: %v\n%s", args, err, out)
	}
	return m
}

func (c *cliRunner) osList(args ...string) []map[string]any {
	c.t.Helper()
	out := c.os(append(args, "-f", "json")...)
	var l []map[string]any
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		c.t.Fatalf("openstack %v: not a JSON list: %v\n%s", args, err, out)
	}
	return l
}

// neutron runs the neutron CLI (LBaaS v1 commands). neutronclient 8.1
// ignores --os-auth-strategy noauth ("only keystone is supported"); its
// token-endpoint mode (--os-token with --os-url, OS_AUTH_TYPE=admin_token)
// skips Keystone, and the noauth API ignores the token.
func (c *cliRunner) neutron(args ...string) string {
	c.t.Helper()
	return c.run(true, "neutron", append([]string{"--os-auth-strategy", "noauth", "--os-token", "noauth", "--os-url", c.url}, args...)...)
}

func (c *cliRunner) neutronJSON(args ...string) map[string]any {
	c.t.Helper()
	out := c.neutron(append(args, "-f", "json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("neutron %v: not JSON: %v\n%s", args, err, out)
	}
	return m
}

func (c *cliRunner) neutronList(args ...string) []map[string]any {
	c.t.Helper()
	out := c.neutron(append(args, "-f", "json")...)
	var l []map[string]any
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		c.t.Fatalf("neutron %v: not a JSON list: %v\n%s", args, err, out)
	}
	return l
}

func names(l []map[string]any, key string) map[string]bool {
	m := map[string]bool{}
	for _, x := range l {
		if s, ok := x[key].(string); ok {
			m[s] = true
		}
	}
	return m
}

func want(t *testing.T, m map[string]any, key string, v any) {
	t.Helper()
	if got := m[key]; got != v {
		t.Fatalf("%s = %#v, want %#v in %s", key, got, v, fmtJSON(m))
	}
}

// sdkBulkPorts creates two ports on a network in one bulk request with
// openstacksdk (no authentication): argv[1] is the endpoint, argv[2] the
// network. It prints the created ports' names.
const sdkBulkPorts = `
import sys
import openstack
conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": sys.argv[1]},
                                       network_endpoint_override=sys.argv[1])
ports = conn.network.create_ports([
    {"network_id": sys.argv[2], "name": "bulk1", "project_id": "p1"},
    {"network_id": sys.argv[2], "name": "bulk2", "project_id": "p1"},
])
print(" ".join(p.name for p in ports))
`

// sdkBulkPortsBad sends a bulk port create whose second item names an
// address outside the subnet: openstacksdk must get an error and neither
// port may exist. It prints "refused" when the SDK raised.
const sdkBulkPortsBad = `
import sys
import openstack
conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": sys.argv[1]},
                                       network_endpoint_override=sys.argv[1])
try:
    conn.network.create_ports([
        {"network_id": sys.argv[2], "name": "bulkbad1", "project_id": "p1"},
        {"network_id": sys.argv[2], "name": "bulkbad2", "project_id": "p1", "fixed_ips": [{"ip_address": "10.99.0.5"}]},
    ])
except Exception as e:
    print("refused", type(e).__name__)
`

func TestOpenStackCLI(t *testing.T) {
	requireCLIs(t)
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	c := &cliRunner{t: t, url: a.url}

	// Networks.
	n := c.osJSON("network", "create", "--project", "p1", "net1")
	want(t, n, "name", "net1")
	want(t, n, "provider:network_type", "gre")
	want(t, n, "mtu", float64(1458))
	nid := n["id"].(string)
	pub := c.osJSON("network", "create", "--project", "admin", "--external", "--provider-network-type", "flat",
		"--provider-physical-network", "public", "public")
	want(t, pub, "router:external", true)
	c.osFail("network", "create", "--project", "p1", "--provider-network-type", "vxlan", "bad")
	if l := names(c.osList("network", "list"), "Name"); !l["net1"] || !l["public"] {
		t.Fatalf("network list: %v", l)
	}
	c.os("network", "set", "--name", "net1b", "--description", "tenant net", nid)
	want(t, c.osJSON("network", "show", nid), "name", "net1b")

	// Subnets.
	s := c.osJSON("subnet", "create", "--project", "p1", "--network", nid, "--subnet-range", "10.0.0.0/24", "--dns-nameserver", "8.8.8.8", "sub1")
	want(t, s, "gateway_ip", "10.0.0.1")
	want(t, s, "cidr", "10.0.0.0/24")
	sid := s["id"].(string)
	c.osJSON("subnet", "create", "--project", "admin", "--network", "public", "--subnet-range", "203.0.113.0/24", "--no-dhcp", "pubsub")
	c.osFail("subnet", "create", "--project", "p1", "--network", nid, "--subnet-range", "10.0.0.128/25", "overlap")
	// IPv6: stored as Neutron stores it (ports get no IPv6 address yet).
	s6 := c.osJSON("subnet", "create", "--project", "p1", "--network", nid, "--ip-version", "6", "--subnet-range", "fd00::/64",
		"--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "v6")
	want(t, s6, "ip_version", float64(6))
	want(t, s6, "gateway_ip", "fd00::")
	want(t, s6, "ipv6_address_mode", "slaac")
	c.os("subnet", "delete", s6["id"].(string))
	c.os("subnet", "set", "--name", "sub1b", sid)
	want(t, c.osJSON("subnet", "show", sid), "name", "sub1b")
	if l := names(c.osList("subnet", "list", "--network", nid), "Name"); !l["sub1b"] || len(l) != 1 {
		t.Fatalf("subnet list: %v", l)
	}

	// Ports.
	p := c.osJSON("port", "create", "--project", "p1", "--network", nid, "--fixed-ip", "subnet="+sid+",ip-address=10.0.0.10", "port1")
	pid := p["id"].(string)
	if !strings.Contains(fmtJSON(p["fixed_ips"]), "10.0.0.10") {
		t.Fatalf("port fixed ips: %v", p["fixed_ips"])
	}
	c.osFail("port", "create", "--project", "p1", "--network", nid, "--fixed-ip", "subnet="+sid+",ip-address=10.0.0.10", "dup")
	p2 := c.osJSON("port", "create", "--project", "p1", "--network", nid, "--host", "hv1", "port2")
	want(t, p2, "binding_host_id", "hv1")
	if l := names(c.osList("port", "list", "--network", nid), "Name"); !l["port1"] || !l["port2"] {
		t.Fatalf("port list: %v", l)
	}
	c.os("port", "set", "--name", "port1b", "--allowed-address", "ip-address=10.0.0.99", pid)
	ps := c.osJSON("port", "show", pid)
	want(t, ps, "name", "port1b")
	if !strings.Contains(fmtJSON(ps["allowed_address_pairs"]), "10.0.0.99") {
		t.Fatalf("address pairs: %v", ps["allowed_address_pairs"])
	}
	c.osFail("network", "delete", nid) // in use

	// Bulk port create through openstacksdk (the client library under the
	// CLI; the CLI itself has no bulk command): all or none.
	bulk := c.run(true, "/usr/bin/python3", "-c", sdkBulkPorts, c.url, nid)
	if !strings.Contains(bulk, "bulk1") || !strings.Contains(bulk, "bulk2") {
		t.Fatalf("bulk ports: %s", bulk)
	}
	if l := names(c.osList("port", "list", "--network", nid), "Name"); !l["bulk1"] || !l["bulk2"] {
		t.Fatalf("port list after bulk: %v", l)
	}
	c.os("port", "delete", "bulk1", "bulk2")
	if out := c.run(true, "/usr/bin/python3", "-c", sdkBulkPortsBad, c.url, nid); !strings.Contains(out, "refused") {
		t.Fatalf("bulk with a bad item: %s", out)
	}
	if l := names(c.osList("port", "list", "--network", nid), "Name"); l["bulkbad1"] || l["bulkbad2"] {
		t.Fatalf("a refused bulk left ports behind: %v", l)
	}

	// Security groups and rules.
	sg := c.osJSON("security group", "create", "--project", "p1", "--description", "web servers", "web")
	sgid := sg["id"].(string)
	r := c.osJSON("security group rule", "create", "--project", "p1", "--protocol", "tcp", "--dst-port", "80:81", "--ingress", sgid)
	want(t, r, "port_range_min", float64(80))
	want(t, r, "port_range_max", float64(81))
	c.osFail("security group rule", "create", "--project", "p1", "--protocol", "tcp", "--dst-port", "80:81", "--ingress", sgid)
	if rl := c.osList("security group rule", "list", sgid); len(rl) != 3 {
		t.Fatalf("rules: %v", rl)
	}
	c.os("security group", "set", "--name", "web2", sgid)
	want(t, c.osJSON("security group", "show", sgid), "name", "web2")
	if l := names(c.osList("security group", "list"), "Name"); !l["web2"] {
		t.Fatalf("sg list: %v", l)
	}
	c.os("security group rule", "show", r["id"].(string))
	c.os("port", "set", "--security-group", sgid, pid)
	c.osFail("security group", "delete", sgid)
	c.os("port", "unset", "--security-group", sgid, pid)
	c.os("security group rule", "delete", r["id"].(string))
	c.os("security group", "delete", sgid)

	// Routers.
	rt := c.osJSON("router", "create", "--project", "p1", "r1")
	rid := rt["id"].(string)
	c.os("router", "set", "--external-gateway", "public", rid)
	rs := c.osJSON("router", "show", rid)
	if !strings.Contains(fmtJSON(rs["external_gateway_info"]), "203.0.113.") {
		t.Fatalf("router gateway: %v", rs["external_gateway_info"])
	}
	c.os("router", "add subnet", rid, sid)
	c.osFail("router", "add subnet", rid, sid)
	if l := c.osList("port", "list", "--router", rid); len(l) != 2 {
		t.Fatalf("router ports: %v", l)
	}
	c.os("router", "set", "--name", "r1b", rid)
	if l := names(c.osList("router", "list"), "Name"); !l["r1b"] {
		t.Fatalf("router list: %v", l)
	}

	// Floating IPs.
	f := c.osJSON("floating ip", "create", "--project", "p1", "public")
	fid := f["id"].(string)
	if !strings.HasPrefix(f["floating_ip_address"].(string), "203.0.113.") {
		t.Fatal(f)
	}
	c.os("floating ip", "set", "--port", pid, fid)
	fs := c.osJSON("floating ip", "show", fid)
	want(t, fs, "port_id", pid)
	want(t, fs, "fixed_ip_address", "10.0.0.10")
	want(t, fs, "router_id", rid)
	if l := c.osList("floating ip", "list"); len(l) != 1 {
		t.Fatal(l)
	}
	c.os("floating ip", "unset", "--port", fid)
	want(t, c.osJSON("floating ip", "show", fid), "port_id", nil)
	c.os("floating ip", "delete", fid)

	// Tear down.
	c.os("router", "remove subnet", rid, sid)
	c.os("router", "unset", "--external-gateway", rid)
	c.os("router", "delete", rid)
	c.os("port", "delete", pid, p2["id"].(string))
	c.os("subnet", "delete", sid)
	c.os("network", "delete", nid)
	if l := names(c.osList("network", "list"), "Name"); l["net1b"] {
		t.Fatalf("network survived: %v", l)
	}
}

func TestNeutronCLILBaaS(t *testing.T) {
	requireCLIs(t)
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	c := &cliRunner{t: t, url: a.url}
	net := c.neutronJSON("net-create", "--tenant-id", "p1", "lbnet")
	sub := c.neutronJSON("subnet-create", "--tenant-id", "p1", "--name", "lbsub", net["id"].(string), "10.1.0.0/24")
	_ = sub

	pool := c.neutronJSON("lb-pool-create", "--tenant-id", "p1", "--lb-method", "ROUND_ROBIN", "--name", "pool1",
		"--protocol", "HTTP", "--subnet-id", "lbsub")
	want(t, pool, "lb_method", "ROUND_ROBIN")
	poolID := pool["id"].(string)
	if l := names(c.neutronList("lb-pool-list"), "name"); !l["pool1"] {
		t.Fatalf("pool list: %v", l)
	}
	c.neutron("lb-pool-update", "pool1", "--lb-method", "LEAST_CONNECTIONS")
	want(t, c.neutronJSON("lb-pool-show", "pool1"), "lb_method", "LEAST_CONNECTIONS")

	vip := c.neutronJSON("lb-vip-create", "--tenant-id", "p1", "--name", "vip1", "--protocol-port", "80", "--protocol", "HTTP",
		"--subnet-id", "lbsub", "--connection-limit", "100", "pool1")
	want(t, vip, "protocol_port", float64(80))
	want(t, vip, "connection_limit", float64(100))
	if !strings.HasPrefix(vip["address"].(string), "10.1.0.") {
		t.Fatal(vip)
	}
	if l := names(c.neutronList("lb-vip-list"), "name"); !l["vip1"] {
		t.Fatalf("vip list: %v", l)
	}
	c.neutron("lb-vip-update", "vip1", "--connection-limit", "50")
	want(t, c.neutronJSON("lb-vip-show", "vip1"), "connection_limit", float64(50))

	m := c.neutronJSON("lb-member-create", "--tenant-id", "p1", "--address", "10.1.0.10", "--protocol-port", "8080", "--weight", "2", "pool1")
	want(t, m, "weight", float64(2))
	if l := c.neutronList("lb-member-list"); len(l) != 1 {
		t.Fatalf("member list: %v", l)
	}
	c.neutron("lb-member-update", m["id"].(string), "--weight", "5")
	want(t, c.neutronJSON("lb-member-show", m["id"].(string)), "weight", float64(5))

	hm := c.neutronJSON("lb-healthmonitor-create", "--tenant-id", "p1", "--delay", "5", "--timeout", "3", "--max-retries", "2",
		"--type", "HTTP", "--url-path", "/health")
	hmID := hm["id"].(string)
	want(t, hm, "url_path", "/health")
	if l := c.neutronList("lb-healthmonitor-list"); len(l) != 1 {
		t.Fatalf("hm list: %v", l)
	}
	c.neutron("lb-healthmonitor-update", hmID, "--delay", "10")
	want(t, c.neutronJSON("lb-healthmonitor-show", hmID), "delay", float64(10))
	c.neutron("lb-healthmonitor-associate", hmID, "pool1")
	if ps := c.neutronJSON("lb-pool-show", poolID); !strings.Contains(fmtJSON(ps["health_monitors"]), hmID) {
		t.Fatalf("association: %v", ps["health_monitors"])
	}
	c.neutron("lb-healthmonitor-disassociate", hmID, "pool1")
	if ps := c.neutronJSON("lb-pool-show", poolID); strings.Contains(fmtJSON(ps["health_monitors"]), hmID) {
		t.Fatalf("disassociation: %v", ps["health_monitors"])
	}

	c.neutron("lb-healthmonitor-delete", hmID)
	c.neutron("lb-member-delete", m["id"].(string))
	c.neutron("lb-vip-delete", vip["id"].(string))
	c.neutron("lb-pool-delete", poolID)
	if l := c.neutronList("lb-pool-list"); len(l) != 0 {
		t.Fatalf("pools left: %v", l)
	}
}

// The shell smoke script in test/northbound works against the handler.
func TestCLISmokeScript(t *testing.T) {
	requireCLIs(t)
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	cmd := exec.Command("bash", "../test/northbound/cli-smoke.sh", a.url)
	cmd.Env = append(os.Environ(), "OS_CLOUD=", "OS_AUTH_URL=", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cli-smoke: OK") {
		t.Fatalf("cli-smoke.sh: %v\n%s", err, out)
	}
}

// TestOpenStackCLITenantBinding: a non-admin tenant, driving the real
// openstack CLI, cannot bind a port of its own to another tenant's
// interface through binding:profile (or pick a host), on create or on
// update; the victim's binding is untouched. The CLI has no identity
// headers of its own under --os-auth-type none, so the tenant's endpoint
// is a proxy that adds them as keystonemiddleware would (X-Project-Id,
// X-Roles member). TestBindingPolicy covers the same through the API.
func TestOpenStackCLITenantBinding(t *testing.T) {
	requireCLIs(t)
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	h := northbound.NewHandler(st, northbound.Config{Logger: quiet})
	tenant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Project-Id", "t-evil")
		r.Header.Set("X-Roles", "member")
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tenant.Close)

	vnet := str(a.network(t, "t-victim", "victim-net"), "id")
	a.subnet(t, "t-victim", vnet, "10.80.0.0/24")
	victim := a.port(t, "t-victim", vnet, "binding:host_id", "hv1", "binding:profile", map[string]any{"port_name": "vm-victim"})

	c := &cliRunner{t: t, url: tenant.URL}
	n := c.osJSON("network", "create", "evil-net")
	want(t, n, "project_id", "t-evil")
	c.os("subnet", "create", "--network", "evil-net", "--subnet-range", "10.81.0.0/24", "evil-sub")
	msg := c.osFail("port", "create", "--network", "evil-net", "--binding-profile", "port_name=vm-victim", "evil1")
	if !strings.Contains(msg, "disallowed by policy") {
		t.Fatalf("binding:profile on create: %s", msg)
	}
	c.osFail("port", "create", "--network", "evil-net", "--host", "hv1", "--binding-profile", "port_name=vm-victim", "evil2")
	own := c.osJSON("port", "create", "--network", "evil-net", "evil3")
	oid := own["id"].(string)
	// The tenant does not see binding:profile, so the CLI's merge into
	// the current profile needs --no-binding-profile to send the update.
	msg = c.osFail("port", "set", "--no-binding-profile", "--binding-profile", "port_name=vm-victim", oid)
	if !strings.Contains(msg, "disallowed by policy") {
		t.Fatalf("binding:profile on update: %s", msg)
	}
	c.osFail("port", "set", "--host", "hv1", oid)

	// The admin's view: the victim keeps its interface, the tenant's
	// port has none, and no other port was made.
	vp := obj(a.do("GET", "/v2.0/ports/"+str(victim, "id"), nil).must(t, 200), "port")
	if obj(vp, "binding:profile")["port_name"] != "vm-victim" || vp["binding:host_id"] != "hv1" {
		t.Fatalf("victim binding changed: %s", fmtJSON(vp))
	}
	op := obj(a.do("GET", "/v2.0/ports/"+oid, nil).must(t, 200), "port")
	if len(obj(op, "binding:profile")) != 0 || op["binding:host_id"] != "" {
		t.Fatalf("tenant port got a binding: %s", fmtJSON(op))
	}
	for _, p := range list(a.do("GET", "/v2.0/ports?project_id=t-evil", nil).must(t, 200), "ports") {
		if id := str(p.(map[string]any), "id"); id != oid {
			t.Fatalf("tenant has another port %s", fmtJSON(p))
		}
	}
}
