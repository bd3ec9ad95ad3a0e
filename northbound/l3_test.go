package northbound_test

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

func TestRoutersAndFloatingIPs(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	ext := str(a.network(t, "admin", "public", "router:external", true, "provider:network_type", "flat", "provider:physical_network", "public"), "id")
	extSub := a.subnet(t, "admin", ext, "203.0.113.0/24", "enable_dhcp", false)
	net := str(a.network(t, "p1", "private"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	net2 := str(a.network(t, "p1", "private2"), "id")
	sub2 := str(a.subnet(t, "p1", net2, "10.0.0.0/25"), "id") // overlaps sub
	net3 := str(a.network(t, "p1", "private3"), "id")
	sub3 := str(a.subnet(t, "p1", net3, "10.3.0.0/24"), "id")

	r := a.create(t, "/v2.0/routers", "router", map[string]any{"name": "r1", "project_id": "p1",
		"external_gateway_info": map[string]any{"network_id": ext}})
	gw := obj(r, "external_gateway_info")
	if gw["network_id"] != ext || gw["enable_snat"] != true || len(list(gw, "external_fixed_ips")) != 1 {
		t.Fatalf("gateway: %s", fmtJSON(r))
	}
	gwIP := str(list(gw, "external_fixed_ips")[0].(map[string]any), "ip_address")
	if gwIP == "" || gwIP == str(extSub, "gateway_ip") {
		t.Fatalf("gateway ip %q", gwIP)
	}
	rid := str(r, "id")
	// The gateway port exists, owned by the router, and cannot be deleted directly.
	gps := list(a.do("GET", "/v2.0/ports?device_owner=network:router_gateway&device_id="+rid, nil).must(t, 200), "ports")
	if len(gps) != 1 || fixedIP(gps[0].(map[string]any)) != gwIP {
		t.Fatalf("gateway port: %v", gps)
	}
	a.do("DELETE", "/v2.0/ports/"+str(gps[0].(map[string]any), "id"), nil).err(t, 409, "")
	// Non-external gateway network.
	a.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"project_id": "p1",
		"external_gateway_info": map[string]any{"network_id": net}}}).err(t, 400, "")
	a.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"project_id": "p1",
		"external_gateway_info": map[string]any{"network_id": ext, "bogus": 1}}}).err(t, 400, "")

	// Interfaces.
	info := a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
	if info["subnet_id"] != sub || info["id"] != rid || str(info, "port_id") == "" {
		t.Fatalf("add interface: %v", info)
	}
	ifPort := obj(a.do("GET", "/v2.0/ports/"+str(info, "port_id"), nil).must(t, 200), "port")
	if fixedIP(ifPort) != "10.0.0.1" || ifPort["device_owner"] != "network:router_interface" || ifPort["device_id"] != rid {
		t.Fatalf("interface port: %s", fmtJSON(ifPort))
	}
	// Overlap and the same subnet twice: 400 BadRequest as Neutron
	// (recorded: rtr-if-add-again).
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub2}).err(t, 400, "BadRequest")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub}).err(t, 400, "BadRequest")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{}).err(t, 400, "")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub3, "port_id": "x"}).err(t, 400, "")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": sub3, "foo": 1}).err(t, 400, "")
	a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": "nope"}).err(t, 404, "")
	// By port.
	p3 := a.port(t, "p1", net3, "fixed_ips", []any{map[string]any{"ip_address": "10.3.0.254"}}, "port_security_enabled", false)
	info3 := a.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"port_id": str(p3, "id")}).must(t, 200)
	if info3["port_id"] != p3["id"] || info3["subnet_id"] != sub3 {
		t.Fatal(info3)
	}
	a.do("DELETE", "/v2.0/networks/"+net, nil).err(t, 409, "NetworkInUse")
	a.do("DELETE", "/v2.0/routers/"+rid, nil).err(t, 409, "RouterInUse")

	// Floating IPs.
	vm := a.port(t, "p1", net, "device_owner", "compute:nova")
	f := a.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "project_id": "p1"})
	if f["status"] != "DOWN" || f["port_id"] != nil || str(f, "floating_ip_address") == "" || f["router_id"] != nil {
		t.Fatalf("fip: %s", fmtJSON(f))
	}
	fid := str(f, "id")
	up := obj(a.do("PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": vm["id"]}}).must(t, 200), "floatingip")
	// DOWN: no switch holds its flows here (data-plane status: status_test.go).
	if up["port_id"] != vm["id"] || up["fixed_ip_address"] != fixedIP(vm) || up["router_id"] != rid || up["status"] != "DOWN" {
		t.Fatalf("associate: %s", fmtJSON(up))
	}
	// A second FIP on the same fixed IP conflicts.
	a.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext, "project_id": "p1",
		"port_id": vm["id"]}}).err(t, 409, "FloatingIPPortAlreadyAssociated")
	// Unreachable: a port on a subnet without a router interface.
	net4 := str(a.network(t, "p1", "isolated"), "id")
	a.subnet(t, "p1", net4, "10.4.0.0/24")
	iso := a.port(t, "p1", net4)
	a.do("PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": iso["id"]}}).err(t, 404, "ExternalGatewayForFloatingIPNotFound")
	// Interface in use by the FIP, router gateway in use.
	a.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": sub}).err(t, 409, "RouterInterfaceInUseByFloatingIP")
	a.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}}).err(t, 409, "")
	// Disassociate.
	dis := obj(a.do("PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"port_id": nil}}).must(t, 200), "floatingip")
	if dis["port_id"] != nil || dis["status"] != "DOWN" || dis["router_id"] != nil {
		t.Fatal(dis)
	}
	// Create associated directly, then delete the VM port: the FIP is disassociated.
	f2 := a.create(t, "/v2.0/floatingips", "floatingip", map[string]any{"floating_network_id": ext, "project_id": "p1",
		"port_id": vm["id"], "fixed_ip_address": fixedIP(vm)})
	if f2["router_id"] != rid {
		t.Fatal(f2)
	}
	a.do("DELETE", "/v2.0/ports/"+str(vm, "id"), nil).must(t, 204)
	f2b := obj(a.do("GET", "/v2.0/floatingips/"+str(f2, "id"), nil).must(t, 200), "floatingip")
	if f2b["port_id"] != nil {
		t.Fatal(f2b)
	}
	a.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": net, "project_id": "p1"}}).err(t, 400, "")
	a.do("DELETE", "/v2.0/floatingips/"+fid, nil).must(t, 204)
	a.do("DELETE", "/v2.0/floatingips/"+str(f2, "id"), nil).must(t, 204)
	a.do("GET", "/v2.0/floatingips/"+fid, nil).err(t, 404, "FloatingIPNotFound")

	// Remove interfaces by subnet and by port; both ports go away.
	a.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": sub}).must(t, 200)
	a.do("GET", "/v2.0/ports/"+str(info, "port_id"), nil).err(t, 404, "PortNotFound")
	a.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"port_id": p3["id"]}).must(t, 200)
	a.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"port_id": p3["id"]}).err(t, 404, "")
	// Gateway cleared, set again without SNAT, router deleted with its gateway port.
	r2 := obj(a.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": nil, "name": "r1b"}}).must(t, 200), "router")
	if r2["external_gateway_info"] != nil || r2["name"] != "r1b" {
		t.Fatal(r2)
	}
	r3 := obj(a.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": ext, "enable_snat": false}}}).must(t, 200), "router")
	if obj(r3, "external_gateway_info")["enable_snat"] != false {
		t.Fatal(r3)
	}
	a.do("DELETE", "/v2.0/routers/"+rid, nil).must(t, 204)
	if n := len(list(a.do("GET", "/v2.0/ports?network_id="+ext, nil).must(t, 200), "ports")); n != 0 {
		t.Fatalf("%d ports left on the external network", n)
	}
	a.do("DELETE", "/v2.0/networks/"+ext, nil).must(t, 204)
}

func TestSecurityGroups(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	t1 := a.tenant("t1")
	sgs := list(t1.do("GET", "/v2.0/security-groups", nil).must(t, 200), "security_groups")
	if len(sgs) != 1 {
		t.Fatalf("lazy default: %v", sgs)
	}
	def := sgs[0].(map[string]any)
	rules := list(def, "security_group_rules")
	kinds := map[string]bool{}
	for _, r := range rules {
		m := r.(map[string]any)
		kinds[str(m, "direction")+"/"+str(m, "ethertype")+"/"+str(m, "remote_group_id")] = true
	}
	did := str(def, "id")
	for _, k := range []string{"egress/IPv4/", "egress/IPv6/", "ingress/IPv4/" + did, "ingress/IPv6/" + did} {
		if !kinds[k] {
			t.Fatalf("default rule %s missing: %v", k, kinds)
		}
	}
	// Listing again does not create a second one.
	if n := len(list(t1.do("GET", "/v2.0/security-groups", nil).must(t, 200), "security_groups")); n != 1 {
		t.Fatal(n)
	}
	t1.do("DELETE", "/v2.0/security-groups/"+did, nil).err(t, 409, "SecurityGroupInUse")
	t1.do("PUT", "/v2.0/security-groups/"+did, map[string]any{"security_group": map[string]any{"name": "x"}}).err(t, 409, "")
	sg := t1.create(t, "/v2.0/security-groups", "security_group", map[string]any{"name": "web", "description": "w"})
	if len(list(sg, "security_group_rules")) != 2 {
		t.Fatalf("new group egress rules: %s", fmtJSON(sg))
	}
	t1.do("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "default"}}).err(t, 409, "")
	sid := str(sg, "id")
	rule := t1.create(t, "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_id": sid,
		"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": "443", "remote_ip_prefix": "10.0.0.5/24"})
	// The prefix is kept as given and shown masked in normalized_cidr, as
	// Neutron does (recorded: sgr-create-prefix-hostbits).
	if rule["remote_ip_prefix"] != "10.0.0.5/24" || rule["normalized_cidr"] != "10.0.0.0/24" || rule["port_range_max"] != float64(443) || rule["ethertype"] != "IPv4" || rule["project_id"] != "t1" {
		t.Fatalf("rule: %s", fmtJSON(rule))
	}
	t1.do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{"security_group_id": sid,
		"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 443, "remote_ip_prefix": "10.0.0.0/24"}}).
		err(t, 409, "SecurityGroupRuleExists")
	bad := func(b map[string]any, typ string) {
		t.Helper()
		b["security_group_id"] = sid
		t1.do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": b}).err(t, 400, typ)
	}
	bad(map[string]any{"direction": "sideways"}, "HTTPBadRequest")
	bad(map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "SecurityGroupInvalidPortRange")
	bad(map[string]any{"direction": "ingress", "protocol": "bogus"}, "SecurityGroupRuleInvalidProtocol")
	bad(map[string]any{"direction": "ingress", "remote_ip_prefix": "10.0.0.0/24", "remote_group_id": did}, "")
	bad(map[string]any{"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/24"}, "")
	bad(map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_min": 300}, "")
	icmp := t1.create(t, "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_id": sid,
		"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0, "remote_group_id": did})
	if icmp["remote_group_id"] != did {
		t.Fatal(icmp)
	}
	got := obj(t1.do("GET", "/v2.0/security-groups/"+sid, nil).must(t, 200), "security_group")
	if len(list(got, "security_group_rules")) != 4 {
		t.Fatal(got)
	}
	if n := len(list(t1.do("GET", "/v2.0/security-group-rules?security_group_id="+sid+"&direction=ingress", nil).must(t, 200), "security_group_rules")); n != 2 {
		t.Fatal(n)
	}
	// Another project sees none of it.
	t2 := a.tenant("t2")
	t2.do("GET", "/v2.0/security-groups/"+sid, nil).err(t, 404, "SecurityGroupNotFound")
	t2.do("GET", "/v2.0/security-group-rules/"+str(rule, "id"), nil).err(t, 404, "HTTPNotFound") // Neutron's answer (recorded: sgr-show-p2)
	t2.do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{"security_group_id": sid, "direction": "ingress"}}).
		err(t, 404, "SecurityGroupNotFound")
	// In use by a port.
	net := str(t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"}), "id")
	t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	p := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": net, "security_groups": []string{sid}})
	t1.do("DELETE", "/v2.0/security-groups/"+sid, nil).err(t, 409, "SecurityGroupInUse")
	t1.do("DELETE", "/v2.0/ports/"+str(p, "id"), nil).must(t, 204)
	up := obj(t1.do("PUT", "/v2.0/security-groups/"+sid, map[string]any{"security_group": map[string]any{"name": "web2"}}).must(t, 200), "security_group")
	if up["name"] != "web2" {
		t.Fatal(up)
	}
	t1.do("DELETE", "/v2.0/security-group-rules/"+str(rule, "id"), nil).must(t, 204)
	t1.do("DELETE", "/v2.0/security-groups/"+sid, nil).must(t, 204)
	if n := len(list(a.do("GET", "/v2.0/security-group-rules?security_group_id="+sid, nil).must(t, 200), "security_group_rules")); n != 0 {
		t.Fatalf("%d rules outlived their group", n)
	}
	// The admin may delete a default group; the next use makes a new one.
	a.do("DELETE", "/v2.0/security-groups/"+did, nil).must(t, 204)
	again := list(t1.do("GET", "/v2.0/security-groups?name=default", nil).must(t, 200), "security_groups")
	if len(again) != 1 || str(again[0].(map[string]any), "id") == did {
		t.Fatal(again)
	}
}

func TestLBaaSv1(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	pool := a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"name": "web", "subnet_id": sub, "protocol": "HTTP",
		"lb_method": "ROUND_ROBIN", "tenant_id": "p1", "admin_state_up": true})
	pid := str(pool, "id")
	if pool["status"] != "ACTIVE" || pool["vip_id"] != nil || len(list(pool, "members")) != 0 || pool["tenant_id"] != "p1" {
		t.Fatalf("pool: %s", fmtJSON(pool))
	}
	a.do("POST", "/v2.0/lb/pools", map[string]any{"pool": map[string]any{"subnet_id": sub, "protocol": "UDP", "lb_method": "ROUND_ROBIN", "tenant_id": "p1"}}).err(t, 400, "")
	a.do("POST", "/v2.0/lb/pools", map[string]any{"pool": map[string]any{"subnet_id": "nope", "protocol": "TCP", "lb_method": "ROUND_ROBIN", "tenant_id": "p1"}}).err(t, 404, "")
	// The neutron CLI sends numbers as strings.
	vip := a.create(t, "/v2.0/lb/vips", "vip", map[string]any{"name": "v", "pool_id": pid, "subnet_id": sub, "protocol": "HTTP",
		"protocol_port": "80", "connection_limit": "100", "tenant_id": "p1", "admin_state_up": true})
	if vip["protocol_port"] != float64(80) || vip["connection_limit"] != float64(100) || str(vip, "address") == "" || str(vip, "port_id") == "" {
		t.Fatalf("vip: %s", fmtJSON(vip))
	}
	vport := obj(a.do("GET", "/v2.0/ports/"+str(vip, "port_id"), nil).must(t, 200), "port")
	if fixedIP(vport) != vip["address"] {
		t.Fatal(vport)
	}
	a.do("POST", "/v2.0/lb/vips", map[string]any{"vip": map[string]any{"pool_id": pid, "subnet_id": sub, "protocol": "HTTP", "protocol_port": 81, "tenant_id": "p1"}}).err(t, 409, "VipExists")
	if obj(a.do("GET", "/v2.0/lb/pools/"+pid, nil).must(t, 200), "pool")["vip_id"] != vip["id"] {
		t.Fatal("pool vip_id not set")
	}
	a.do("DELETE", "/v2.0/lb/pools/"+pid, nil).err(t, 409, "PoolInUse")
	uv := obj(a.do("PUT", "/v2.0/lb/vips/"+str(vip, "id"), map[string]any{"vip": map[string]any{"connection_limit": 5,
		"session_persistence": map[string]any{"type": "SOURCE_IP"}}}).must(t, 200), "vip")
	if uv["connection_limit"] != float64(5) || obj(uv, "session_persistence")["type"] != "SOURCE_IP" {
		t.Fatal(uv)
	}
	m := a.create(t, "/v2.0/lb/members", "member", map[string]any{"pool_id": pid, "address": "10.0.0.10", "protocol_port": "8080", "weight": "3", "tenant_id": "p1"})
	if m["weight"] != float64(3) || m["status"] != "ACTIVE" {
		t.Fatal(m)
	}
	a.do("POST", "/v2.0/lb/members", map[string]any{"member": map[string]any{"pool_id": pid, "address": "10.0.0.10", "protocol_port": 8080, "tenant_id": "p1"}}).err(t, 409, "MemberExists")
	a.do("POST", "/v2.0/lb/members", map[string]any{"member": map[string]any{"pool_id": pid, "address": "10.0.0.11", "protocol_port": 70000, "tenant_id": "p1"}}).err(t, 400, "")
	um := obj(a.do("PUT", "/v2.0/lb/members/"+str(m, "id"), map[string]any{"member": map[string]any{"weight": 7, "admin_state_up": false}}).must(t, 200), "member")
	if um["weight"] != float64(7) || um["admin_state_up"] != false {
		t.Fatal(um)
	}
	hm := a.create(t, "/v2.0/lb/health_monitors", "health_monitor", map[string]any{"type": "HTTP", "delay": "5", "timeout": "3", "max_retries": "2", "tenant_id": "p1", "url_path": "/health"})
	if hm["delay"] != float64(5) || hm["expected_codes"] != "200" || hm["http_method"] != "GET" {
		t.Fatal(hm)
	}
	a.do("POST", "/v2.0/lb/health_monitors", map[string]any{"health_monitor": map[string]any{"type": "HTTP", "delay": 1, "timeout": 3, "max_retries": 2, "tenant_id": "p1"}}).err(t, 400, "")
	hid := str(hm, "id")
	a.do("POST", "/v2.0/lb/pools/"+pid+"/health_monitors", map[string]any{"health_monitor": map[string]any{"id": hid}}).must(t, 201)
	a.do("POST", "/v2.0/lb/pools/"+pid+"/health_monitors", map[string]any{"health_monitor": map[string]any{"id": hid}}).err(t, 409, "")
	p := obj(a.do("GET", "/v2.0/lb/pools/"+pid, nil).must(t, 200), "pool")
	if len(list(p, "health_monitors")) != 1 || len(list(p, "members")) != 1 {
		t.Fatalf("pool: %s", fmtJSON(p))
	}
	h2 := obj(a.do("GET", "/v2.0/lb/health_monitors/"+hid, nil).must(t, 200), "health_monitor")
	if len(list(h2, "pools")) != 1 {
		t.Fatal(h2)
	}
	a.do("DELETE", "/v2.0/lb/pools/"+pid+"/health_monitors/"+hid, nil).must(t, 204)
	a.do("DELETE", "/v2.0/lb/pools/"+pid+"/health_monitors/"+hid, nil).err(t, 404, "")
	a.do("POST", "/v2.0/lb/pools/"+pid+"/health_monitors", map[string]any{"health_monitor": map[string]any{"id": hid}}).must(t, 201)
	// Deleting the monitor disassociates it.
	a.do("DELETE", "/v2.0/lb/health_monitors/"+hid, nil).must(t, 204)
	if n := len(list(obj(a.do("GET", "/v2.0/lb/pools/"+pid, nil).must(t, 200), "pool"), "health_monitors")); n != 0 {
		t.Fatal(n)
	}
	st := a.do("GET", "/v2.0/lb/pools/"+pid+"/stats", nil).must(t, 200)
	if obj(st, "stats") == nil {
		t.Fatal(st)
	}
	up := obj(a.do("PUT", "/v2.0/lb/pools/"+pid, map[string]any{"pool": map[string]any{"lb_method": "LEAST_CONNECTIONS", "name": "web2"}}).must(t, 200), "pool")
	if up["lb_method"] != "LEAST_CONNECTIONS" {
		t.Fatal(up)
	}
	a.do("PUT", "/v2.0/lb/pools/"+pid, map[string]any{"pool": map[string]any{"protocol": "TCP"}}).err(t, 400, "")
	a.do("DELETE", "/v2.0/lb/vips/"+str(vip, "id"), nil).must(t, 204)
	a.do("GET", "/v2.0/ports/"+str(vip, "port_id"), nil).err(t, 404, "")
	a.do("DELETE", "/v2.0/lb/pools/"+pid, nil).must(t, 204)
	a.do("GET", "/v2.0/lb/members/"+str(m, "id"), nil).err(t, 404, "MemberNotFound")
	a.do("DELETE", "/v2.0/networks/"+net, nil).must(t, 204)
}

func TestQuotas(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	q := obj(a.do("GET", "/v2.0/quotas/p1", nil).must(t, 200), "quota")
	if q["network"] != float64(100) {
		t.Fatal(q)
	}
	q = obj(a.do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"network": 5}}).must(t, 200), "quota")
	if q["network"] != float64(5) {
		t.Fatal(q)
	}
	a.do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"bogus": 5}}).err(t, 400, "")
	if n := len(list(a.do("GET", "/v2.0/quotas", nil).must(t, 200), "quotas")); n != 1 {
		t.Fatal(n)
	}
	a.do("DELETE", "/v2.0/quotas/p1", nil).must(t, 204)
	a.tenant("t1").do("PUT", "/v2.0/quotas/t1", map[string]any{"quota": map[string]any{"network": 5}}).err(t, 403, "")
}
