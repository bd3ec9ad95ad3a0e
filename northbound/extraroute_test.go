package northbound_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// TestRouterExtraRoutes: a non-admin project sets, adds and removes a
// router's extra routes; every bad set answers Neutron's error and
// changes nothing (the router reads back the same).
func TestRouterExtraRoutes(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	p1 := a.tenant("p1")
	n1 := str(p1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n1"}), "id")
	s1 := str(p1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": n1, "cidr": "10.1.0.0/24", "ip_version": 4}), "id")
	n2 := str(p1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n2"}), "id")
	s2 := str(p1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": n2, "cidr": "10.2.0.0/24", "ip_version": 4}), "id")
	rid := str(p1.create(t, "/v2.0/routers", "router", map[string]any{"name": "r"}), "id")
	p1.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": s1}).must(t, 200)
	p1.do("PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": s2}).must(t, 200)
	route := func(d, nh string) map[string]any { return map[string]any{"destination": d, "nexthop": nh} }
	setRoutes := func(rs ...any) resp {
		return p1.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"routes": rs}})
	}
	routesOf := func() string {
		r := obj(p1.do("GET", "/v2.0/routers/"+rid, nil).must(t, 200), "router")
		return fmtJSON(r["routes"])
	}

	// routes is not allowed on create (allow_post False).
	p1.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"routes": []any{}}}).err(t, 400, "HTTPBadRequest")

	r := obj(setRoutes(route("10.200.0.0/16", "10.1.0.9")).must(t, 200), "router")
	if got := list(r, "routes"); len(got) != 1 || str(got[0].(map[string]any), "nexthop") != "10.1.0.9" {
		t.Fatalf("routes: %s", fmtJSON(r))
	}
	before := routesOf()
	// Bad sets: each Neutron's answer, nothing changed.
	for _, c := range []struct {
		routes []any
		code   int
		typ    string
		msg    string
	}{
		{[]any{route("10.201.0.0/16", "10.77.0.9")}, 400, "InvalidRoutes",
			"Invalid format for routes: [{'destination': '10.201.0.0/16', 'nexthop': '10.77.0.9'}], the nexthop is not connected with router"},
		{[]any{route("10.201.0.0/16", "10.1.0.1")}, 400, "InvalidRoutes", "the nexthop is used by router"},
		// A destination that overlaps a connected subnet.
		{[]any{route("10.2.0.0/16", "10.1.0.9")}, 400, "InvalidRoutes", "overlaps subnet 10.2.0.0/24"},
		{[]any{route("10.2.0.128/25", "10.1.0.9")}, 400, "InvalidRoutes", "overlaps"},
		{[]any{route("0.0.0.0/0", "10.1.0.9")}, 400, "InvalidRoutes", "overlaps"},
		{[]any{route("10.201.0.1/16", "10.1.0.9")}, 400, "HTTPBadRequest", "isn't a recognized IP subnet cidr"},
		{[]any{route("bogus", "10.1.0.9")}, 400, "HTTPBadRequest", "Invalid input for routes"},
		{[]any{route("10.201.0.0/16", "x")}, 400, "HTTPBadRequest", "Invalid input for routes"},
		{[]any{map[string]any{"destination": "10.201.0.0/16"}}, 400, "HTTPBadRequest", "Invalid input for routes"},
		{[]any{map[string]any{"destination": "10.201.0.0/16", "nexthop": "10.1.0.9", "x": 1}}, 400, "HTTPBadRequest", "Invalid input for routes"},
		{[]any{route("10.201.0.0/16", "10.1.0.9"), route("10.201.0.0/16", "10.1.0.9")}, 400, "HTTPBadRequest", "Duplicate hostroute"},
	} {
		msg := setRoutes(c.routes...).err(t, c.code, c.typ)
		if !strings.Contains(msg, c.msg) {
			t.Errorf("routes %s: message %q, want %q", fmtJSON(c.routes), msg, c.msg)
		}
		if got := routesOf(); got != before {
			t.Fatalf("a refused update changed the routes: %s, was %s", got, before)
		}
	}
	many := []any{}
	for i := 0; i < 31; i++ {
		many = append(many, route("10.99."+strconv.Itoa(i)+".0/24", "10.1.0.9"))
	}
	setRoutes(many...).err(t, 409, "OverQuota")

	// The interface a route's nexthop is on is kept.
	p1.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": s1}).err(t, 409, "RouterInterfaceInUseByRoute")

	// extraroute-atomic.
	r = obj(p1.do("PUT", "/v2.0/routers/"+rid+"/add_extraroutes", map[string]any{"router": map[string]any{"routes": []any{
		route("10.200.0.0/16", "10.1.0.9"), route("10.202.0.0/16", "10.2.0.9")}}}).must(t, 200), "router")
	if got := list(r, "routes"); len(got) != 2 {
		t.Fatalf("add_extraroutes: %s", fmtJSON(r))
	}
	p1.do("PUT", "/v2.0/routers/"+rid+"/add_extraroutes", map[string]any{"router": map[string]any{"routes": []any{
		route("10.203.0.0/16", "10.9.0.9")}}}).err(t, 400, "InvalidRoutes")
	r = obj(p1.do("PUT", "/v2.0/routers/"+rid+"/remove_extraroutes", map[string]any{"router": map[string]any{"routes": []any{
		route("10.200.0.0/16", "10.1.0.9"), route("10.250.0.0/16", "10.1.0.9")}}}).must(t, 200), "router")
	if got := list(r, "routes"); len(got) != 1 || str(got[0].(map[string]any), "destination") != "10.202.0.0/16" {
		t.Fatalf("remove_extraroutes: %s", fmtJSON(r))
	}
	// Another project cannot touch them.
	a.tenant("p2").do("PUT", "/v2.0/routers/"+rid+"/add_extraroutes", map[string]any{"router": map[string]any{"routes": []any{}}}).err(t, 404, "RouterNotFound")
	// Now s1 has no route through it; clearing with null.
	p1.do("PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": s1}).must(t, 200)
	r = obj(p1.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"routes": nil}}).must(t, 200), "router")
	if got := list(r, "routes"); len(got) != 0 {
		t.Fatalf("routes null: %s", fmtJSON(r))
	}
}

// TestRouterGatewayNotExternal: a non-admin project's router gateway on
// a network that is not router:external answers Neutron's 400 BadRequest
// (recorded: rtr-create-gw-not-ext), on create and update, and changes
// nothing: no router, no gateway port.
func TestRouterGatewayNotExternal(t *testing.T) {
	a := newAPI(t, openEmbedded(t), northbound.Config{})
	p1 := a.tenant("p1")
	n1 := str(p1.create(t, "/v2.0/networks", "network", map[string]any{"name": "n1"}), "id")
	p1.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": n1, "cidr": "10.1.0.0/24", "ip_version": 4})
	want := "Bad router request: Network " + n1 + " is not an external network."
	msg := p1.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "x",
		"external_gateway_info": map[string]any{"network_id": n1}}}).err(t, 400, "BadRequest")
	if msg != want {
		t.Errorf("create: %q, want %q", msg, want)
	}
	if rs := list(p1.do("GET", "/v2.0/routers", nil).must(t, 200), "routers"); len(rs) != 0 {
		t.Fatalf("a refused create made a router: %s", fmtJSON(rs))
	}
	rid := str(p1.create(t, "/v2.0/routers", "router", map[string]any{"name": "r"}), "id")
	before := obj(p1.do("GET", "/v2.0/routers/"+rid, nil).must(t, 200), "router")
	msg = p1.do("PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"name": "renamed",
		"external_gateway_info": map[string]any{"network_id": n1}}}).err(t, 400, "BadRequest")
	if msg != want {
		t.Errorf("update: %q, want %q", msg, want)
	}
	after := obj(p1.do("GET", "/v2.0/routers/"+rid, nil).must(t, 200), "router")
	if fmtJSON(before) != fmtJSON(after) {
		t.Fatalf("a refused update changed the router:\n%s\nwas\n%s", fmtJSON(after), fmtJSON(before))
	}
	if ps := list(a.do("GET", "/v2.0/ports?network_id="+n1, nil).must(t, 200), "ports"); len(ps) != 0 {
		t.Fatalf("a refused gateway left ports: %s", fmtJSON(ps))
	}
}
