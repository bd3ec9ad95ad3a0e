package northbound_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/northbound"
)

// Issue 9, the API's part. Every attack runs as a non-admin project.

func routes(n int) []any {
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, map[string]any{"destination": fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), "nexthop": "10.0.0.254"})
	}
	return out
}

func nameservers(n int) []string {
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("192.0.2.%d", i+1))
	}
	return out
}

func pairs(n int) []any {
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, map[string]any{"ip_address": fmt.Sprintf("10.9.0.%d", i+1)})
	}
	return out
}

// Finding 1: list attributes are bounded with Neutron's limits (a subnet
// with ~9,000 host routes made a DHCP reply no packet-out can carry).
func TestListAttributeBounds(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	t1 := a.tenant("t1")
	net := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"}), "id")
	sub := func(cidr string, extra map[string]any) resp {
		b := map[string]any{"network_id": net, "cidr": cidr}
		for k, v := range extra {
			b[k] = v
		}
		return t1.do("POST", "/v2.0/subnets", map[string]any{"subnet": b})
	}
	sub("10.1.0.0/24", map[string]any{"host_routes": routes(9000)}).err(t, 400, "HostRoutesExhausted")
	sub("10.1.0.0/24", map[string]any{"host_routes": routes(21)}).err(t, 400, "HostRoutesExhausted")
	sub("10.1.0.0/24", map[string]any{"dns_nameservers": nameservers(6)}).err(t, 400, "DNSNameServersExhausted")
	s := obj(sub("10.0.0.0/24", map[string]any{"host_routes": routes(20), "dns_nameservers": nameservers(5)}).must(t, 201), "subnet")
	sid := str(s, "id")
	if len(list(s, "host_routes")) != 20 || len(list(s, "dns_nameservers")) != 5 {
		t.Fatalf("subnet at the limits: %s", fmtJSON(s))
	}
	put := func(path, singular string, attrs map[string]any) resp {
		return t1.do("PUT", path, map[string]any{singular: attrs})
	}
	put("/v2.0/subnets/"+sid, "subnet", map[string]any{"host_routes": routes(21)}).err(t, 400, "HostRoutesExhausted")
	put("/v2.0/subnets/"+sid, "subnet", map[string]any{"dns_nameservers": nameservers(6)}).err(t, 400, "DNSNameServersExhausted")
	if got := obj(t1.do("GET", "/v2.0/subnets/"+sid, nil).must(t, 200), "subnet"); len(list(got, "host_routes")) != 20 {
		t.Fatalf("a refused update changed the subnet: %s", fmtJSON(got))
	}

	fixed := func(n int) []any {
		out := []any{}
		for i := 0; i < n; i++ {
			out = append(out, map[string]any{"subnet_id": sid})
		}
		return out
	}
	t1.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "fixed_ips": fixed(6)}}).err(t, 400, "InvalidInput")
	t1.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "allowed_address_pairs": pairs(11)}}).
		err(t, 400, "AllowedAddressPairExhausted")
	p := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": net, "fixed_ips": fixed(5), "allowed_address_pairs": pairs(10)})
	if len(list(p, "fixed_ips")) != 5 || len(list(p, "allowed_address_pairs")) != 10 {
		t.Fatalf("port at the limits: %s", fmtJSON(p))
	}
	pid := str(p, "id")
	put("/v2.0/ports/"+pid, "port", map[string]any{"fixed_ips": fixed(6)}).err(t, 400, "InvalidInput")
	put("/v2.0/ports/"+pid, "port", map[string]any{"allowed_address_pairs": pairs(11)}).err(t, 400, "AllowedAddressPairExhausted")

	// Strings and the body itself are bounded too.
	long := strings.Repeat("x", 256)
	t1.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": long}}).err(t, 400, "HTTPBadRequest")
	put("/v2.0/ports/"+pid, "port", map[string]any{"description": long}).err(t, 400, "HTTPBadRequest")
	t1.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "big", "description": strings.Repeat("y", 2<<20)}}).
		err(t, 413, "HTTPRequestEntityTooLarge")

}

// Finding 2: binding:* is admin-only (set, and shown); even an admin
// never binds a port to an uplink, tunnel, patch or bridge port, and
// two ports never claim one interface.
func TestBindingPolicy(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	t1 := a.tenant("t1")
	net := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"}), "id")
	t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	post := func(c *api, attrs map[string]any) resp {
		b := map[string]any{"network_id": net}
		for k, v := range attrs {
			b[k] = v
		}
		return c.do("POST", "/v2.0/ports", map[string]any{"port": b})
	}
	post(t1, map[string]any{"binding:profile": map[string]any{"port_name": "tap-victim"}}).err(t, 403, "PolicyNotAuthorized")
	post(t1, map[string]any{"binding:profile": map[string]any{"port_name": "phy-physnet1"}}).err(t, 403, "PolicyNotAuthorized")
	post(t1, map[string]any{"binding:host_id": "hv1"}).err(t, 403, "PolicyNotAuthorized")
	mine := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": net})
	pid := str(mine, "id")
	t1.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:profile": map[string]any{"port_name": "gre-0123456789a"}}}).
		err(t, 403, "PolicyNotAuthorized")
	t1.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:host_id": "hv2"}}).err(t, 403, "PolicyNotAuthorized")
	// vnic_type stays open (create_port:binding:vnic_type is rule:any).
	t1.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:vnic_type": "normal"}}).must(t, 200)

	// The admin binds; the tenant does not see the binding.
	vm := a.port(t, "t1", net, "binding:host_id", "hv1", "binding:profile", map[string]any{"port_name": "vm-a"})
	if vm["binding:host_id"] != "hv1" || obj(vm, "binding:profile")["port_name"] != "vm-a" {
		t.Fatalf("admin view: %s", fmtJSON(vm))
	}
	seen := obj(t1.do("GET", "/v2.0/ports/"+str(vm, "id"), nil).must(t, 200), "port")
	for _, k := range []string{"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"} {
		if _, ok := seen[k]; ok {
			t.Fatalf("non-admin sees %s: %s", k, fmtJSON(seen))
		}
	}
	for _, p := range list(t1.do("GET", "/v2.0/ports", nil).must(t, 200), "ports") {
		if _, ok := p.(map[string]any)["binding:profile"]; ok {
			t.Fatalf("non-admin list shows binding:profile: %s", fmtJSON(p))
		}
	}

	// Infrastructure interfaces are never a port's, even for an admin.
	if _, err := st.Put(context.Background(), &model.Chassis{Name: "hv1", TunnelIP: "192.0.2.1", Mappings: map[string]string{"physnet1": "ext0"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"phy-physnet1", "int-physnet1", "gre-0123456789a", "patch-tun", "br-int", "LOCAL", "ext0"} {
		post(a, map[string]any{"project_id": "t1", "binding:profile": map[string]any{"port_name": name}}).err(t, 400, "HTTPBadRequest")
		a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:profile": map[string]any{"port_name": name}}}).err(t, 400, "HTTPBadRequest")
	}
	post(a, map[string]any{"project_id": "t1", "binding:profile": map[string]any{"port_name": 7}}).err(t, 400, "HTTPBadRequest")

	// One interface, one port: per host when both name a host, else globally.
	msg := post(a, map[string]any{"project_id": "t1", "binding:host_id": "hv1", "binding:profile": map[string]any{"port_name": "vm-a"}}).
		err(t, 409, "PortBindingConflict")
	if !strings.Contains(msg, "vm-a") || !strings.Contains(msg, str(vm, "id")) {
		t.Fatalf("conflict message does not say what is taken: %s", msg)
	}
	post(a, map[string]any{"project_id": "t1", "binding:profile": map[string]any{"port_name": "vm-a"}}).err(t, 409, "PortBindingConflict")
	other := a.port(t, "t1", net, "binding:host_id", "hv2", "binding:profile", map[string]any{"port_name": "vm-a"})
	a.do("PUT", "/v2.0/ports/"+str(other, "id"), map[string]any{"port": map[string]any{"binding:host_id": "hv1"}}).err(t, 409, "PortBindingConflict")
	a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:host_id": "hv2", "binding:profile": map[string]any{"port_name": "vm-a"}}}).
		err(t, 409, "PortBindingConflict")
	// Moving or deleting a port frees its interface.
	a.do("PUT", "/v2.0/ports/"+str(vm, "id"), map[string]any{"port": map[string]any{"binding:profile": map[string]any{"port_name": "vm-b"}}}).must(t, 200)
	a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"binding:host_id": "hv1", "binding:profile": map[string]any{"port_name": "vm-a"}}}).must(t, 200)
	a.do("DELETE", "/v2.0/ports/"+pid, nil).must(t, 204)
	a.port(t, "t1", net, "binding:host_id", "hv1", "binding:profile", map[string]any{"port_name": "vm-a"})

	// Race-free across replicas: two handlers on one store, many creates
	// of one interface at once, exactly one wins.
	b := newAPI(t, st, northbound.Config{})
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = post(c, map[string]any{"project_id": "t1", "binding:profile": map[string]any{"port_name": "vm-race"}}).code
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 201:
			won++
		case 409:
		default:
			t.Fatalf("concurrent binds answered %v", codes)
		}
	}
	if won != 1 {
		t.Fatalf("%d ports bound vm-race: %v", won, codes)
	}
}

// Finding 3: the gateway IP of someone else's shared network cannot be
// taken, router interfaces on a shared subnet need its network, and
// router-interface ports are deletable by their router (or, orphaned, by
// an admin).
func TestGatewayTheft(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	t1, t2 := a.tenant("t1"), a.tenant("t2")
	sh := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "t1-shared"}), "id")
	a.do("PUT", "/v2.0/networks/"+sh, map[string]any{"network": map[string]any{"shared": true}}).must(t, 200)
	sub := t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": sh, "cidr": "10.0.0.0/24"})
	sid, gw := str(sub, "id"), str(sub, "gateway_ip")
	gwIP := []any{map[string]any{"subnet_id": sid, "ip_address": gw}}
	post := func(c *api, attrs map[string]any) resp {
		b := map[string]any{"network_id": sh}
		for k, v := range attrs {
			b[k] = v
		}
		return c.do("POST", "/v2.0/ports", map[string]any{"port": b})
	}
	// The reported attack: t2 takes the gateway as a "router interface".
	post(t2, map[string]any{"device_owner": "network:router_interface", "fixed_ips": gwIP}).err(t, 403, "PolicyNotAuthorized")
	post(t2, map[string]any{"device_owner": "network:router_interface"}).err(t, 403, "PolicyNotAuthorized")
	post(t2, map[string]any{"device_owner": "compute:nova", "fixed_ips": gwIP}).err(t, 403, "PolicyNotAuthorized")
	p2 := t2.create(t, "/v2.0/ports", "port", map[string]any{"network_id": sh, "device_owner": "compute:nova",
		"fixed_ips": []any{map[string]any{"subnet_id": sid}}})
	if fixedIP(p2) == gw || fixedIP(p2) == "" {
		t.Fatalf("t2's port got %q", fixedIP(p2))
	}
	t2.do("PUT", "/v2.0/ports/"+str(p2, "id"), map[string]any{"port": map[string]any{"device_owner": "network:router_interface"}}).
		err(t, 403, "PolicyNotAuthorized")
	t2.do("PUT", "/v2.0/ports/"+str(p2, "id"), map[string]any{"port": map[string]any{"fixed_ips": gwIP}}).err(t, 403, "PolicyNotAuthorized")
	// The network's owner may take its own gateway address while no
	// router holds it, as in Neutron (recorded: port-create-gateway-ip);
	// a second claim finds it allocated.
	pg := obj(post(t1, map[string]any{"fixed_ips": gwIP}).must(t, 201), "port")
	post(t1, map[string]any{"device_owner": "network:router_interface", "fixed_ips": gwIP}).err(t, 409, "IpAddressAlreadyAllocated")
	t1.do("DELETE", "/v2.0/ports/"+str(pg, "id"), nil).must(t, 204)

	// add_router_interface: t2 may not plug its router into t1's subnet.
	r2 := str(t2.create(t, "/v2.0/routers", "router", map[string]any{"name": "r2"}), "id")
	t2.do("PUT", "/v2.0/routers/"+r2+"/add_router_interface", map[string]any{"subnet_id": sid}).err(t, 403, "PolicyNotAuthorized")
	p3 := t2.create(t, "/v2.0/ports", "port", map[string]any{"network_id": sh})
	t2.do("PUT", "/v2.0/routers/"+r2+"/add_router_interface", map[string]any{"port_id": str(p3, "id")}).err(t, 403, "PolicyNotAuthorized")
	if got := obj(t2.do("GET", "/v2.0/ports/"+str(p3, "id"), nil).must(t, 200), "port"); got["device_owner"] != "" {
		t.Fatalf("refused attach changed the port: %s", fmtJSON(got))
	}
	// The network's owner may; its interface port is the router's.
	r1 := str(t1.create(t, "/v2.0/routers", "router", map[string]any{"name": "r1"}), "id")
	info := t1.do("PUT", "/v2.0/routers/"+r1+"/add_router_interface", map[string]any{"subnet_id": sid}).must(t, 200)
	ifp := str(info, "port_id")
	t1.do("PUT", "/v2.0/ports/"+ifp, map[string]any{"port": map[string]any{"device_owner": "compute:nova"}}).err(t, 409, "ServicePortInUse")
	a.do("PUT", "/v2.0/ports/"+ifp, map[string]any{"port": map[string]any{"device_owner": "compute:nova"}}).err(t, 409, "IpAddressInUse")
	msg := t1.do("DELETE", "/v2.0/ports/"+ifp, nil).err(t, 409, "ServicePortInUse")
	if !strings.Contains(msg, "has device owner network:router_interface") {
		t.Fatalf("message: %s", msg)
	}
	a.do("DELETE", "/v2.0/ports/"+ifp, nil).err(t, 409, "ServicePortInUse")
	t1.do("PUT", "/v2.0/routers/"+r1+"/remove_router_interface", map[string]any{"subnet_id": sid}).must(t, 200)
	t1.do("DELETE", "/v2.0/routers/"+r1, nil).must(t, 204)

	// Orphans: a router-interface port no router holds can be deleted.
	own := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "t1-own"}), "id")
	t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": own, "cidr": "10.5.0.0/24"})
	orphan := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": own, "device_owner": "network:router_interface", "device_id": r1})
	a.do("DELETE", "/v2.0/ports/"+str(orphan, "id"), nil).must(t, 204)
	orphan = a.port(t, "t1", own, "device_owner", "network:router_interface", "device_id", "no-such-router")
	t1.do("DELETE", "/v2.0/ports/"+str(orphan, "id"), nil).must(t, 204)
}

// Finding 4: on someone else's shared network, mac_address, fixed IP
// addresses, port_security_enabled, allowed_address_pairs and network:*
// owners are the network owner's; bad MACs are refused for everyone.
func TestSharedNetworkOwnerAttributes(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	t1, t2 := a.tenant("t1"), a.tenant("t2")
	sh := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "t1-shared"}), "id")
	a.do("PUT", "/v2.0/networks/"+sh, map[string]any{"network": map[string]any{"shared": true}}).must(t, 200)
	sid := str(t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": sh, "cidr": "10.0.0.0/24"}), "id")
	post := func(c *api, attrs map[string]any) resp {
		b := map[string]any{"network_id": sh}
		for k, v := range attrs {
			b[k] = v
		}
		return c.do("POST", "/v2.0/ports", map[string]any{"port": b})
	}
	for _, attrs := range []map[string]any{
		{"mac_address": "fa:16:3e:11:22:33"},
		{"fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.50"}}},
		{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.50"}}},
		{"port_security_enabled": false, "security_groups": []string{}},
		{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.0/24"}}},
		{"device_owner": "network:dhcp"},
	} {
		if r := post(t2, attrs); r.code != 403 {
			t.Fatalf("t2 on t1's shared network with %v: %d %s", attrs, r.code, r.raw)
		}
	}
	p := t2.create(t, "/v2.0/ports", "port", map[string]any{"network_id": sh, "fixed_ips": []any{map[string]any{"subnet_id": sid}}})
	pid := str(p, "id")
	for _, attrs := range []map[string]any{
		{"mac_address": "fa:16:3e:11:22:34"},
		{"fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.51"}}},
		{"port_security_enabled": false, "security_groups": []string{}},
		{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.0/24"}}},
		{"device_owner": "network:dhcp"},
	} {
		t2.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": attrs}).err(t, 403, "PolicyNotAuthorized")
	}
	t2.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"name": "ok", "fixed_ips": []any{map[string]any{"subnet_id": sid}}}}).must(t, 200)
	// A load balancer VIP is a port too: no chosen address on t1's network.
	pool := str(t2.create(t, "/v2.0/lb/pools", "pool", map[string]any{"subnet_id": sid, "protocol": "TCP", "lb_method": "ROUND_ROBIN"}), "id")
	t2.do("POST", "/v2.0/lb/vips", map[string]any{"vip": map[string]any{"pool_id": pool, "subnet_id": sid, "protocol": "TCP", "protocol_port": 80,
		"address": "10.0.0.60"}}).err(t, 403, "PolicyNotAuthorized")
	t2.create(t, "/v2.0/lb/vips", "vip", map[string]any{"pool_id": pool, "subnet_id": sid, "protocol": "TCP", "protocol_port": 80})
	// The network's owner may set them; a MAC changes only by an admin.
	o := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": sh, "mac_address": "fa:16:3e:11:22:35",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.152"}}, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.0/24"}}})
	t1.do("PUT", "/v2.0/ports/"+str(o, "id"), map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:11:22:36"}}).err(t, 403, "PolicyNotAuthorized")
	a.do("PUT", "/v2.0/ports/"+str(o, "id"), map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:11:22:36"}}).must(t, 200)

	// Broadcast, multicast and zero MACs: never, for anyone.
	for _, mac := range []string{"ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01", "00:00:00:00:00:00"} {
		post(t1, map[string]any{"mac_address": mac}).err(t, 400, "HTTPBadRequest")
		post(a, map[string]any{"project_id": "t1", "mac_address": mac}).err(t, 400, "HTTPBadRequest")
		a.do("PUT", "/v2.0/ports/"+str(o, "id"), map[string]any{"port": map[string]any{"mac_address": mac}}).err(t, 400, "HTTPBadRequest")
		post(t1, map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.9", "mac_address": mac}}}).err(t, 400, "HTTPBadRequest")
	}
}
