package northbound_test

import (
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

func TestDiscovery(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	v := a.do("GET", "/", nil).must(t, 200)
	vs := list(v, "versions")
	if len(vs) != 1 || str(vs[0].(map[string]any), "status") != "CURRENT" || str(vs[0].(map[string]any), "id") != "v2.0" {
		t.Fatalf("versions: %s", fmtJSON(v))
	}
	link := list(vs[0].(map[string]any), "links")[0].(map[string]any)
	if !strings.HasPrefix(str(link, "href"), a.url+"/v2.0") {
		t.Fatalf("version link %v does not point at this server", link)
	}
	idx := a.do("GET", "/v2.0/", nil).must(t, 200)
	// Neutron lists its core resources only (recorded: disc-v2-slash).
	if len(list(idx, "resources")) != 3 {
		t.Fatalf("resources: %s", fmtJSON(idx))
	}
	ext := a.do("GET", "/v2.0/extensions", nil).must(t, 200)
	have := map[string]bool{}
	for _, e := range list(ext, "extensions") {
		have[str(e.(map[string]any), "alias")] = true
	}
	for _, want := range []string{"router", "external-net", "security-group", "binding", "provider", "allowed-address-pairs",
		"port-security", "quotas", "lbaas"} {
		if !have[want] {
			t.Errorf("extension %s missing", want)
		}
	}
	one := a.do("GET", "/v2.0/extensions/router", nil).must(t, 200)
	if str(obj(one, "extension"), "alias") != "router" {
		t.Fatal(one)
	}
	// Neutron answers webob's plain 404 here (recorded: disc-ext-unknown).
	if r := a.do("GET", "/v2.0/extensions/nope", nil); r.code != 404 || r.body["title"] != "Not Found" {
		t.Fatalf("unknown extension: %d %s", r.code, r.raw)
	}
	a.do("GET", "/v2.0/nothing", nil).err(t, 404, "HTTPNotFound")
	a.do("GET", "/healthz", nil).err(t, 404, "")
	a.do("DELETE", "/v2.0/networks", nil).err(t, 405, "")
	// The .json suffix older clients append.
	a.do("GET", "/v2.0/networks.json", nil).must(t, 200)
}

func TestNetworkCRUDAndSegmentation(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{
		VLANRanges: []northbound.VLANRange{{PhysicalNetwork: "physnet1", Min: 100, Max: 101}},
		GRERanges:  []northbound.IDRange{{Min: 10, Max: 20}}})
	n := a.network(t, "p1", "net1")
	if n["provider:network_type"] != "gre" || n["provider:segmentation_id"] != float64(10) || n["mtu"] != float64(1458) {
		t.Fatalf("default gre network: %s", fmtJSON(n))
	}
	if n["tenant_id"] != "p1" || n["status"] != "ACTIVE" || n["admin_state_up"] != true || n["shared"] != false || n["router:external"] != false {
		t.Fatalf("network: %s", fmtJSON(n))
	}
	n2 := a.network(t, "p1", "net2")
	if n2["provider:segmentation_id"] != float64(11) {
		t.Fatalf("second gre id: %v", n2["provider:segmentation_id"])
	}
	v1 := a.network(t, "p1", "v1", "provider:network_type", "vlan")
	if v1["provider:segmentation_id"] != float64(100) || v1["provider:physical_network"] != "physnet1" || v1["mtu"] != float64(1500) {
		t.Fatalf("vlan: %s", fmtJSON(v1))
	}
	a.network(t, "p1", "v2", "provider:network_type", "vlan")
	// The VLAN range is exhausted.
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "vlan"}}).
		err(t, 503, "NoNetworkAvailable")
	// Explicit VLAN id outside the range is fine, twice is not.
	a.network(t, "p1", "v3", "provider:network_type", "vlan", "provider:physical_network", "physnet2", "provider:segmentation_id", 7)
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "vlan",
		"provider:physical_network": "physnet2", "provider:segmentation_id": 7}}).err(t, 409, "VlanIdInUse")
	// A VLAN id serves one network across physical networks (the data
	// plane keys VLAN networks by id): VLAN 100 is physnet1's already.
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "vlan",
		"provider:physical_network": "physnet2", "provider:segmentation_id": 100}}).err(t, 409, "VlanIdInUse")
	f := a.network(t, "p1", "ext", "provider:network_type", "flat", "provider:physical_network", "public", "router:external", true)
	if f["mtu"] != float64(1500) || f["router:external"] != true {
		t.Fatalf("flat: %s", fmtJSON(f))
	}
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "flat",
		"provider:physical_network": "public"}}).err(t, 409, "FlatNetworkInUse")
	l := a.network(t, "p1", "loc", "provider:network_type", "local")
	if l["mtu"] != float64(1500) {
		t.Fatal(l)
	}
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "provider:network_type": "vxlan"}}).err(t, 400, "InvalidInput")
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "mtu": 1500}}).err(t, 400, "InvalidInput")
	// No identity headers and no project: Neutron's noauth makes the
	// caller admin of fake_project_id (recorded: net-create-noproject).
	np := obj(a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "x"}}).must(t, 201), "network")
	if np["project_id"] != "fake_project_id" {
		t.Fatal(fmtJSON(np))
	}
	// X-Project-Id without X-Roles makes an admin without a project: its
	// creates must name one (recorded: net-create-project-header).
	msg := a.as(map[string]string{"X-Project-Id": "p9"}).do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "hdr"}}).err(t, 400, "HTTPBadRequest")
	if !strings.Contains(msg, "tenant_id is specified") {
		t.Fatal(msg)
	}
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "bogus": 1}}).err(t, 400, "HTTPBadRequest")
	a.do("POST", "/v2.0/networks", `{"network": `).err(t, 400, "HTTPBadRequest")
	a.do("POST", "/v2.0/networks", map[string]any{"net": map[string]any{}}).err(t, 400, "HTTPBadRequest")
	a.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "p1", "admin_state_up": "maybe"}}).err(t, 400, "InvalidInput")

	id := str(n, "id")
	got := obj(a.do("GET", "/v2.0/networks/"+id, nil).must(t, 200), "network")
	if got["name"] != "net1" {
		t.Fatal(got)
	}
	up := obj(a.do("PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "renamed", "mtu": 1400, "admin_state_up": "false"}}).must(t, 200), "network")
	if up["name"] != "renamed" || up["mtu"] != float64(1400) || up["admin_state_up"] != false || up["revision_number"] != float64(2) {
		t.Fatalf("update: %s", fmtJSON(up))
	}
	a.do("PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"provider:segmentation_id": 3}}).err(t, 400, "")
	a.do("DELETE", "/v2.0/networks/"+id, nil).must(t, 204)
	a.do("GET", "/v2.0/networks/"+id, nil).err(t, 404, "NetworkNotFound")
	a.do("DELETE", "/v2.0/networks/"+id, nil).err(t, 404, "NetworkNotFound")
	// Its GRE id is free again.
	if n3 := a.network(t, "p1", "net3"); n3["provider:segmentation_id"] != float64(10) {
		t.Fatalf("freed id not reused: %v", n3["provider:segmentation_id"])
	}
}

func TestSubnets(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	net := str(a.network(t, "p1", "n"), "id")
	s := a.subnet(t, "p1", net, "10.0.0.0/24", "dns_nameservers", []string{"8.8.8.8"},
		"host_routes", []any{map[string]any{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}})
	if s["gateway_ip"] != "10.0.0.1" || s["enable_dhcp"] != true || s["ip_version"] != float64(4) {
		t.Fatalf("subnet: %s", fmtJSON(s))
	}
	pools := list(s, "allocation_pools")
	if len(pools) != 1 || str(pools[0].(map[string]any), "start") != "10.0.0.2" || str(pools[0].(map[string]any), "end") != "10.0.0.254" {
		t.Fatalf("pools: %v", pools)
	}
	nw := obj(a.do("GET", "/v2.0/networks/"+net, nil).must(t, 200), "network")
	if sn := list(nw, "subnets"); len(sn) != 1 || sn[0] != s["id"] {
		t.Fatalf("network subnets: %v", sn)
	}
	// Gateway in the middle splits the default pool; null gateway.
	net2 := str(a.network(t, "p1", "n2"), "id")
	s2 := a.subnet(t, "p1", net2, "192.168.0.0/29", "gateway_ip", "192.168.0.3")
	if len(list(s2, "allocation_pools")) != 2 {
		t.Fatalf("split pools: %v", s2["allocation_pools"])
	}
	s3 := a.subnet(t, "p1", net2, "192.168.1.0/29", "gateway_ip", nil, "enable_dhcp", false)
	if s3["gateway_ip"] != nil || str(list(s3, "allocation_pools")[0].(map[string]any), "start") != "192.168.1.1" {
		t.Fatalf("no gateway: %s", fmtJSON(s3))
	}
	bad := func(body map[string]any, code int, typ string) string {
		t.Helper()
		return a.do("POST", "/v2.0/subnets", map[string]any{"subnet": body}).err(t, code, typ)
	}
	// IPv6 subnets are stored as Neutron stores them (recorded:
	// sub-create-v6-*); a port gets its SLAAC address (EUI-64 of its MAC)
	// or, naming the subnet, one from the pool.
	s6 := obj(a.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "fd00::5/64",
		"ip_version": 6, "project_id": "p1", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}).must(t, 201), "subnet")
	if s6["cidr"] != "fd00::/64" || s6["gateway_ip"] != "fd00::" || s6["ipv6_address_mode"] != "slaac" || s6["ip_version"] != float64(6) {
		t.Fatalf("ipv6 subnet: %s", fmtJSON(s6))
	}
	p6 := obj(a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"mac_address": "fa:16:3e:12:34:56"}}).must(t, 201), "port")
	if !strings.Contains(fmtJSON(p6["fixed_ips"]), "fd00::f816:3eff:fe12:3456") {
		t.Fatalf("SLAAC address: %s", fmtJSON(p6["fixed_ips"]))
	}
	a.do("DELETE", "/v2.0/ports/"+str(p6, "id"), nil).must(t, 204)
	bad(map[string]any{"network_id": net, "cidr": "fd01::/64", "ip_version": 6, "project_id": "p1",
		"ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}, 400, "InvalidInput")
	bad(map[string]any{"network_id": net, "cidr": "fd00::/48", "ip_version": 6, "project_id": "p1"}, 400, "InvalidInput") // overlap
	a.do("DELETE", "/v2.0/subnets/"+str(s6, "id"), nil).must(t, 204)
	bad(map[string]any{"network_id": net, "cidr": "10.1.0.0/33", "project_id": "p1"}, 400, "InvalidInput")
	bad(map[string]any{"network_id": net, "cidr": "banana", "project_id": "p1"}, 400, "InvalidInput")
	// Host bits are dropped and a gateway outside the CIDR is accepted
	// (recorded: sub-create-hostbits, sub-create-gw-outside); see
	// TestNeutronReplay.
	bad(map[string]any{"network_id": net, "cidr": "10.0.0.128/25", "project_id": "p1"}, 400, "InvalidInput") // overlap
	bad(map[string]any{"network_id": net, "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.255", "project_id": "p1"}, 400, "InvalidIpForSubnet")
	bad(map[string]any{"network_id": net, "cidr": "10.2.0.0/24", "project_id": "p1",
		"allocation_pools": []any{map[string]any{"start": "10.2.0.1", "end": "10.2.0.10"}}}, 409, "GatewayConflictWithAllocationPools")
	bad(map[string]any{"network_id": net, "cidr": "10.2.0.0/24", "project_id": "p1",
		"allocation_pools": []any{map[string]any{"start": "10.2.0.10", "end": "10.3.0.10"}}}, 400, "OutOfBoundsAllocationPool")
	bad(map[string]any{"network_id": "nope", "cidr": "10.2.0.0/24", "project_id": "p1"}, 404, "NetworkNotFound")
	bad(map[string]any{"network_id": net, "cidr": "10.2.0.0/24", "project_id": "p1", "dns_nameservers": "x"}, 400, "HTTPBadRequest")
	up := obj(a.do("PUT", "/v2.0/subnets/"+str(s, "id"), map[string]any{"subnet": map[string]any{"name": "s1", "dns_nameservers": []string{}, "enable_dhcp": false}}).must(t, 200), "subnet")
	if up["name"] != "s1" || len(list(up, "dns_nameservers")) != 0 || up["enable_dhcp"] != false {
		t.Fatal(up)
	}
	a.do("PUT", "/v2.0/subnets/"+str(s, "id"), map[string]any{"subnet": map[string]any{"cidr": "10.5.0.0/24"}}).err(t, 400, "")
	// In use by a port.
	p := a.port(t, "p1", net)
	a.do("DELETE", "/v2.0/subnets/"+str(s, "id"), nil).err(t, 409, "SubnetInUse")
	a.do("DELETE", "/v2.0/ports/"+str(p, "id"), nil).must(t, 204)
	a.do("DELETE", "/v2.0/subnets/"+str(s, "id"), nil).must(t, 204)
	a.do("GET", "/v2.0/subnets/"+str(s, "id"), nil).err(t, 404, "SubnetNotFound")
}

func TestPorts(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	net := str(a.network(t, "p1", "n"), "id")
	sub := a.subnet(t, "p1", net, "10.0.0.0/24")
	sid := str(sub, "id")
	p := a.port(t, "p1", net, "name", "vm1", "device_owner", "compute:nova", "device_id", "vm-1",
		"binding:host_id", "hv1", "binding:profile", map[string]any{"k": "v"})
	if !strings.HasPrefix(str(p, "mac_address"), "fa:16:3e:") || p["status"] != "DOWN" || p["binding:vif_type"] != "ovs" ||
		p["port_security_enabled"] != true || obj(p, "binding:profile")["k"] != "v" {
		t.Fatalf("port: %s", fmtJSON(p))
	}
	sgs := list(p, "security_groups")
	if len(sgs) != 1 {
		t.Fatalf("default security group not applied: %v", sgs)
	}
	def := obj(a.do("GET", "/v2.0/security-groups/"+sgs[0].(string), nil).must(t, 200), "security_group")
	if def["name"] != "default" || len(list(def, "security_group_rules")) != 4 {
		t.Fatalf("default group: %s", fmtJSON(def))
	}
	ip := fixedIP(p)
	if ip == "" || ip == "10.0.0.1" {
		t.Fatalf("fixed ip %q", ip)
	}
	// Explicit address: taken (409), gateway (201 while no router holds
	// it, as Neutron: recorded port-create-gateway-ip), outside (400), bad (400).
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": ip}}}}).err(t, 409, "IpAddressAlreadyAllocated")
	gwp := obj(a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.1"}}}}).must(t, 201), "port")
	a.do("DELETE", "/v2.0/ports/"+str(gwp, "id"), nil).must(t, 204)
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.1.0.5"}}}}).err(t, 400, "InvalidIpForSubnet")
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.1.0.5"}}}}).err(t, 400, "InvalidIpForNetwork")
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.255"}}}}).err(t, 400, "InvalidIpForSubnet")
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "x"}}}}).err(t, 400, "HTTPBadRequest")
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": "nope", "project_id": "p1"}}).err(t, 404, "NetworkNotFound")
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1", "mac_address": p["mac_address"]}}).
		err(t, 409, "MacAddressInUse")
	p2 := a.port(t, "p1", net, "fixed_ips", []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.150"}}, "mac_address", "FA:16:3E:00:00:01")
	if fixedIP(p2) != "10.0.0.150" || p2["mac_address"] != "fa:16:3e:00:00:01" {
		t.Fatal(p2)
	}
	p3 := a.port(t, "p1", net, "fixed_ips", []any{map[string]any{"subnet_id": sid}})
	if fixedIP(p3) == "" {
		t.Fatal(p3)
	}
	// Port security off: no groups; with groups it is a conflict.
	p4 := a.port(t, "p1", net, "port_security_enabled", false)
	if len(list(p4, "security_groups")) != 0 {
		t.Fatal(p4)
	}
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"port_security_enabled": false, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.99"}}}}).
		err(t, 409, "AddressPairAndPortSecurityRequired")
	// Update: name, address pairs, fixed IPs move, groups.
	pid := str(p, "id")
	up := obj(a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"name": "vm1b",
		"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.200/32"}},
		"fixed_ips":             []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.177"}}}}).must(t, 200), "port")
	if up["name"] != "vm1b" || fixedIP(up) != "10.0.0.177" || len(list(up, "allowed_address_pairs")) != 1 {
		t.Fatalf("update: %s", fmtJSON(up))
	}
	// The old address is free again, the new one taken.
	a.port(t, "p1", net, "fixed_ips", []any{map[string]any{"ip_address": ip}})
	a.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.177"}}}}).err(t, 409, "IpAddressAlreadyAllocated")
	a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"network_id": net}}).err(t, 400, "")
	a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"security_groups": []string{"nope"}}}).err(t, 404, "SecurityGroupNotFound")
	up = obj(a.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"security_groups": []string{}, "port_security_enabled": false,
		"allowed_address_pairs": []any{}}}).must(t, 200), "port")
	if up["port_security_enabled"] != false {
		t.Fatal(up)
	}
	// Network in use.
	a.do("DELETE", "/v2.0/networks/"+net, nil).err(t, 409, "NetworkInUse")
	for _, x := range ids(list(a.do("GET", "/v2.0/ports?network_id="+net, nil).must(t, 200), "ports")) {
		a.do("DELETE", "/v2.0/ports/"+x, nil).must(t, 204)
	}
	a.do("DELETE", "/v2.0/networks/"+net, nil).must(t, 204)
	a.do("GET", "/v2.0/subnets/"+sid, nil).err(t, 404, "SubnetNotFound")
}

func TestListQueries(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	var all []string
	for _, n := range []string{"c", "a", "e", "b", "d"} {
		all = append(all, str(a.network(t, "p1", n, "shared", n == "a" || n == "b"), "id"))
	}
	sort.Strings(all)
	names := func(m map[string]any) string {
		var s []string
		for _, x := range list(m, "networks") {
			s = append(s, str(x.(map[string]any), "name"))
		}
		return strings.Join(s, "")
	}
	if got := names(a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=asc", nil).must(t, 200)); got != "abcde" {
		t.Fatal(got)
	}
	if got := names(a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=desc", nil).must(t, 200)); got != "edcba" {
		t.Fatal(got)
	}
	if got := names(a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=asc&name=a&name=d", nil).must(t, 200)); got != "ad" {
		t.Fatalf("OR filter: %s", got)
	}
	if got := names(a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=asc&shared=True", nil).must(t, 200)); got != "ab" {
		t.Fatalf("bool filter: %s", got)
	}
	if got := names(a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=asc&shared=false&name=c", nil).must(t, 200)); got != "c" {
		t.Fatalf("AND filter: %s", got)
	}
	a.do("GET", "/v2.0/networks?bogus=1", nil).err(t, 400, "")
	a.do("GET", "/v2.0/networks?sort_key=bogus", nil).err(t, 400, "")
	a.do("GET", "/v2.0/networks?sort_key=name&sort_dir=up", nil).err(t, 400, "")
	a.do("GET", "/v2.0/networks?limit=-1", nil).err(t, 400, "")
	// fields
	f := a.do("GET", "/v2.0/networks?fields=id&fields=name", nil).must(t, 200)
	for _, x := range list(f, "networks") {
		if len(x.(map[string]any)) != 2 {
			t.Fatalf("fields: %v", x)
		}
	}
	one := obj(a.do("GET", "/v2.0/networks/"+all[0]+"?fields=name", nil).must(t, 200), "network")
	if len(one) != 1 {
		t.Fatal(one)
	}
	// Pagination: walk forward with next links, then back.
	var walked []string
	path := "/v2.0/networks?limit=2"
	pages := 0
	var last map[string]any
	for path != "" {
		pg := a.do("GET", path, nil).must(t, 200)
		last = pg
		pages++
		walked = append(walked, ids(list(pg, "networks"))...)
		path = ""
		for _, l := range list(pg, "networks_links") {
			if str(l.(map[string]any), "rel") == "next" {
				u, _ := url.Parse(str(l.(map[string]any), "href"))
				path = u.RequestURI()
			}
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(walked, ",") != strings.Join(all, ",") || pages != 3 {
		t.Fatalf("walked %v in %d pages, want %v", walked, pages, all)
	}
	var prev string
	for _, l := range list(last, "networks_links") {
		if str(l.(map[string]any), "rel") == "previous" {
			u, _ := url.Parse(str(l.(map[string]any), "href"))
			prev = u.RequestURI()
		}
	}
	if prev == "" {
		t.Fatalf("no previous link: %v", last)
	}
	back := ids(list(a.do("GET", prev, nil).must(t, 200), "networks"))
	if strings.Join(back, ",") != strings.Join(all[2:4], ",") {
		t.Fatalf("previous page %v, want %v", back, all[2:4])
	}
	rev := ids(list(a.do("GET", "/v2.0/networks?limit=2&page_reverse=True", nil).must(t, 200), "networks"))
	if strings.Join(rev, ",") != strings.Join(all[3:], ",") {
		t.Fatalf("page_reverse %v, want %v", rev, all[3:])
	}
	// Filter on list attributes (fixed_ips) of ports.
	net := all[0]
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	p := a.port(t, "p1", net, "fixed_ips", []any{map[string]any{"ip_address": "10.0.0.9"}})
	a.port(t, "p1", net)
	got := ids(list(a.do("GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.9", nil).must(t, 200), "ports"))
	if len(got) != 1 || got[0] != str(p, "id") {
		t.Fatalf("fixed_ips filter: %v", got)
	}
	if n := len(list(a.do("GET", "/v2.0/ports?fixed_ips=subnet_id%3D"+sub, nil).must(t, 200), "ports")); n != 2 {
		t.Fatalf("subnet filter: %d", n)
	}
}

func TestProjectScoping(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	t1, t2 := a.tenant("t1"), a.tenant("t2")
	n1 := t1.create(t, "/v2.0/networks", "network", map[string]any{"name": "mine"})
	if n1["project_id"] != "t1" {
		t.Fatal(n1)
	}
	if _, ok := n1["provider:network_type"]; ok {
		t.Fatal("provider attributes shown to a non-admin")
	}
	id := str(n1, "id")
	t2.do("GET", "/v2.0/networks/"+id, nil).err(t, 404, "NetworkNotFound")
	t2.do("PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"name": "x"}}).err(t, 404, "NetworkNotFound")
	t2.do("DELETE", "/v2.0/networks/"+id, nil).err(t, 404, "NetworkNotFound")
	if n := len(list(t2.do("GET", "/v2.0/networks", nil).must(t, 200), "networks")); n != 0 {
		t.Fatalf("t2 sees %d networks", n)
	}
	// A non-admin cannot create for another project nor set provider attributes.
	t2.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "t1"}}).err(t, 400, "")
	t2.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan"}}).err(t, 403, "")
	// Subnets and ports of t1 are invisible to t2 too.
	s := t1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": id, "cidr": "10.0.0.0/24"})
	p := t1.create(t, "/v2.0/ports", "port", map[string]any{"network_id": id})
	t2.do("GET", "/v2.0/subnets/"+str(s, "id"), nil).err(t, 404, "SubnetNotFound")
	t2.do("GET", "/v2.0/ports/"+str(p, "id"), nil).err(t, 404, "PortNotFound")
	t2.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": id}}).err(t, 404, "NetworkNotFound")
	sgs := list(t2.do("GET", "/v2.0/security-groups", nil).must(t, 200), "security_groups")
	if len(sgs) != 1 || str(sgs[0].(map[string]any), "name") != "default" || str(sgs[0].(map[string]any), "project_id") != "t2" {
		t.Fatalf("t2 groups: %v", sgs)
	}
	// Shared networks are visible (not writable) to others, who may port on them.
	sh := a.network(t, "t1", "shared", "shared", true)
	a.subnet(t, "t1", str(sh, "id"), "10.1.0.0/24")
	t2.do("GET", "/v2.0/networks/"+str(sh, "id"), nil).must(t, 200)
	t2.do("PUT", "/v2.0/networks/"+str(sh, "id"), map[string]any{"network": map[string]any{"name": "x"}}).err(t, 403, "")
	t2.create(t, "/v2.0/ports", "port", map[string]any{"network_id": str(sh, "id")})
	// The admin sees all.
	if n := len(list(a.do("GET", "/v2.0/ports", nil).must(t, 200), "ports")); n != 2 {
		t.Fatalf("admin sees %d ports", n)
	}
}
