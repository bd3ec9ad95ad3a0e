package northbound_test

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// TestFloatingIPBadInputNonAdmin: a non-admin project asks for a floating
// IP on a port no router reaches (no router on its subnet; a router on
// its subnet with no gateway; a router whose gateway is on another
// external network): 404 ExternalGatewayForFloatingIPNotFound, and
// nothing changes (no floating IP, no port on the external network, the
// quota usage, an existing floating IP's association). On a reachable
// port, port_details is Neutron's summary of the port.
func TestFloatingIPBadInputNonAdmin(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	ext := str(a.network(t, "admin", "public", "router:external", true, "shared", false, "provider:network_type", "flat", "provider:physical_network", "public"), "id")
	a.subnet(t, "admin", ext, "203.0.113.0/24", "enable_dhcp", false)
	ext2 := str(a.network(t, "admin", "public2", "router:external", true, "provider:network_type", "flat", "provider:physical_network", "public2"), "id")
	a.subnet(t, "admin", ext2, "198.51.100.0/24", "enable_dhcp", false)
	u := a.tenant("pa")
	mk := func(name, cidr string) (net, sub string) {
		n := u.create(t, "/v2.0/networks", "network", map[string]any{"name": name})
		s := u.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": cidr, "ip_version": 4})
		return str(n, "id"), str(s, "id")
	}
	netOK, subOK := mk("reachable", "10.0.0.0/24")
	netNoRouter, _ := mk("norouter", "10.1.0.0/24")
	netNoGW, subNoGW := mk("nogw", "10.2.0.0/24")
	netOther, subOther := mk("othergw", "10.3.0.0/24")
	r := u.create(t, "/v2.0/routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}})
	u.do("PUT", "/v2.0/routers/"+str(r, "id")+"/add_router_interface", map[string]any{"subnet_id": subOK}).must(t, 200)
	rNoGW := u.create(t, "/v2.0/routers", "router", map[string]any{"name": "r-nogw"})
	u.do("PUT", "/v2.0/routers/"+str(rNoGW, "id")+"/add_router_interface", map[string]any{"subnet_id": subNoGW}).must(t, 200)
	rOther := u.create(t, "/v2.0/routers", "router", map[string]any{"name": "r-other", "external_gateway_info": map[string]any{"network_id": ext2}})
	u.do("PUT", "/v2.0/routers/"+str(rOther, "id")+"/add_router_interface", map[string]any{"subnet_id": subOther}).must(t, 200)

	vm := u.create(t, "/v2.0/ports", "port", map[string]any{"network_id": netOK, "name": "vm", "device_owner": "compute:nova", "device_id": "d1"})
	f := u.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "port_id": vm["id"]})
	fid := str(f, "id")
	pd := obj(f, "port_details")
	want := map[string]any{"name": "vm", "network_id": netOK, "mac_address": vm["mac_address"], "admin_state_up": true,
		"status": vm["status"], "device_id": "d1", "device_owner": "compute:nova"}
	if len(pd) != len(want) {
		t.Fatalf("port_details %v, want %v", pd, want)
	}
	for k, v := range want {
		if pd[k] != v {
			t.Errorf("port_details[%s] = %v, want %v", k, pd[k], v)
		}
	}
	if g := obj(obj(u.do("GET", "/v2.0/floatingips/"+fid, nil).must(t, 200), "floatingip"), "port_details"); g["mac_address"] != vm["mac_address"] {
		t.Errorf("GET port_details %v", g)
	}

	count := func(path, key string) int { return len(list(a.do("GET", path, nil).must(t, 200), key)) }
	fips, extPorts := count("/v2.0/floatingips", "floatingips"), count("/v2.0/ports?network_id="+ext, "ports")
	for _, c := range []struct{ name, net string }{{"no router", netNoRouter}, {"router without gateway", netNoGW}, {"gateway on another external network", netOther}} {
		p := u.create(t, "/v2.0/ports", "port", map[string]any{"network_id": c.net})
		// Create with the port, and move the existing floating IP to it.
		u.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext, "port_id": p["id"]}}).
			err(t, 404, "ExternalGatewayForFloatingIPNotFound")
		u.do("PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": p["id"]}}).
			err(t, 404, "ExternalGatewayForFloatingIPNotFound")
		if n, m := count("/v2.0/floatingips", "floatingips"), count("/v2.0/ports?network_id="+ext, "ports"); n != fips || m != extPorts {
			t.Errorf("%s: %d floating IPs and %d external ports after the refusals, want %d and %d", c.name, n, m, fips, extPorts)
		}
		g := obj(u.do("GET", "/v2.0/floatingips/"+fid, nil).must(t, 200), "floatingip")
		if g["port_id"] != vm["id"] || g["router_id"] != r["id"] || g["fixed_ip_address"] != fixedIP(vm) {
			t.Errorf("%s: the refused move changed the floating IP: %s", c.name, fmtJSON(g))
		}
	}
	// The quota still allows exactly what it did: usage did not leak.
	q := obj(a.do("GET", "/v2.0/quotas/pa/details.json", nil).must(t, 200), "quota")
	if used := obj(q, "floatingip")["used"]; used != float64(1) {
		t.Errorf("floatingip quota used %v, want 1", used)
	}
}

// TestVIPFloatingIPOtherProject: project pb cannot put its floating IP
// on project pa's load-balancer VIP port (it would take pa's VIP's
// traffic from outside: the data plane serves a floating IP on any VIP
// port, binding.FloatingIPVIP), neither at create nor by a move; pa's
// own floating IP on its VIP port is accepted.
func TestVIPFloatingIPOtherProject(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	ext := str(a.network(t, "admin", "public", "router:external", true, "provider:network_type", "flat", "provider:physical_network", "public"), "id")
	a.subnet(t, "admin", ext, "203.0.113.0/24", "enable_dhcp", false)
	pa, pb := a.tenant("pa"), a.tenant("pb")
	n := pa.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"})
	s := pa.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24", "ip_version": 4})
	r := pa.create(t, "/v2.0/routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}})
	pa.do("PUT", "/v2.0/routers/"+str(r, "id")+"/add_router_interface", map[string]any{"subnet_id": s["id"]}).must(t, 200)
	pool := pa.create(t, "/v2.0/lb/pools", "pool", map[string]any{"name": "p", "subnet_id": s["id"], "protocol": "HTTP", "lb_method": "ROUND_ROBIN"})
	vip := pa.create(t, "/v2.0/lb/vips", "vip", map[string]any{"name": "v", "subnet_id": s["id"], "protocol": "HTTP", "protocol_port": 80, "pool_id": pool["id"]})
	port := str(vip, "port_id")
	if c := pb.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext, "port_id": port}}); c.code < 400 || c.code >= 500 {
		t.Fatalf("pb's floating IP on pa's VIP port: %d, want a 4xx refusal", c.code)
	}
	f := pb.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext})
	if c := pb.do("PUT", "/v2.0/floatingips/"+str(f, "id"), map[string]any{"floatingip": map[string]any{"port_id": port}}); c.code < 400 || c.code >= 500 {
		t.Fatalf("pb's floating IP moved to pa's VIP port: %d, want a 4xx refusal", c.code)
	}
	if g := obj(pb.do("GET", "/v2.0/floatingips/"+str(f, "id"), nil).must(t, 200), "floatingip"); g["port_id"] != nil {
		t.Fatalf("the refused move associated it: %v", g["port_id"])
	}
	pa.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "port_id": port})
}
