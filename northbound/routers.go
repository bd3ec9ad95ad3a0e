package northbound

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

type routerReq struct {
	nameAttrs
	ownerAttrs
	AdminStateUp oBool `json:"admin_state_up"`
	Gateway      oRaw  `json:"external_gateway_info"`
	Routes       oRaw  `json:"routes"`
	Distributed  oBool `json:"distributed"`
	HA           oBool `json:"ha"`
	AZHints      oRaw  `json:"availability_zone_hints"`
}

func (h *handler) routerDef() *resDef {
	d := &resDef{singular: "router", plural: "routers", path: "routers", kind: model.KindRouter,
		what: "Router", notFoundType: "RouterNotFound",
		attrs: attrSet("admin_state_up external_gateway_info status routes distributed ha availability_zones availability_zone_hints"),
	}
	d.views = viewsOf(func(rc *reqCtx, rt *model.Router) map[string]any {
		v := baseView(rt)
		delete(v, "interfaces")
		if rt.Gateway != nil {
			fips := []any{}
			for _, f := range rt.Gateway.ExternalFixedIPs {
				fips = append(fips, map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IPAddress})
			}
			v["external_gateway_info"] = map[string]any{"network_id": rt.Gateway.NetworkID,
				"enable_snat": rt.Gateway.EnableSNAT, "external_fixed_ips": fips}
		}
		v["status"] = h.routerStatus(rc, rt) // from the data plane (status.go)
		routes := []any{}
		for _, r := range rt.Routes {
			routes = append(routes, map[string]any{"destination": r.Destination, "nexthop": r.NextHop})
		}
		v["routes"] = routes
		v["flavor_id"] = nil
		// distributed and ha are admin-only attributes (recorded:
		// rtr-show vs rtr-show-admin).
		if rc.admin {
			v["distributed"] = true
			v["ha"] = false
		}
		v["availability_zones"] = []any{}
		v["availability_zone_hints"] = []any{}
		return v
	})
	d.create = h.createRouter
	d.update = h.updateRouter
	d.del = h.deleteRouter
	d.action = h.routerAction
	return d
}

// gwPortID is the id of a router's gateway port, derived from the router
// id so the router record needs no extra field.
func gwPortID(router string) string {
	s := sha1.Sum([]byte(router + "/gateway"))
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	x := hex.EncodeToString(s[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

type gwReq struct {
	NetworkID  string     `json:"network_id"`
	EnableSNAT *bool      `json:"enable_snat"`
	FixedIPs   []fixedReq `json:"external_fixed_ips"`
	Present    bool       `json:"-"`
}

func parseGateway(rc *reqCtx, o oRaw) (*gwReq, error) {
	if o.Null {
		return &gwReq{}, nil
	}
	var m map[string]json.RawMessage
	if err := decodeRaw("external_gateway_info", o, &m); err != nil {
		return nil, err
	}
	g := &gwReq{}
	if len(m) == 0 {
		return g, nil
	}
	for k, v := range m {
		switch k {
		case "network_id":
			if err := json.Unmarshal(v, &g.NetworkID); err != nil {
				return nil, invalidInput("external_gateway_info", "network_id must be a string")
			}
		case "enable_snat":
			var b oBool
			if err := json.Unmarshal(v, &b); err != nil {
				return nil, invalidInput("external_gateway_info", "%v", err)
			}
			if !b.Null {
				g.EnableSNAT = &b.V
			}
		case "external_fixed_ips":
			if string(v) != "null" {
				f, err := parseFixedIPs(oRaw{Set: true, V: v}, rc.h.cfg.MaxFixedIPsPerPort)
				if err != nil {
					return nil, err
				}
				g.FixedIPs = f
			}
		case "qos_policy_id":
		default:
			return nil, invalidInput("external_gateway_info", "Unexpected keys supplied: %s", k)
		}
	}
	if g.NetworkID == "" {
		return nil, invalidInput("external_gateway_info", "Validation of dictionary's keys failed. Expected keys: {'network_id'}")
	}
	if !rc.admin && g.EnableSNAT != nil {
		return nil, forbidden("(rule:%s_router:external_gateway_info:enable_snat) is disallowed by policy", routerAction(rc))
	}
	if !rc.admin && len(g.FixedIPs) > 0 {
		return nil, forbidden("(rule:%s_router:external_gateway_info:external_fixed_ips) is disallowed by policy", routerAction(rc))
	}
	g.Present = true
	return g, nil
}

// externalNetTx reads network id in tx for a gateway or floating IP: 404
// if it does not exist, 400 with notExternal (one %s: the id) if it is
// not external.
func externalNetTx(tx *store.Tx, id, notExternal string) (*model.Network, error) {
	n, err := txGet[*model.Network](tx, model.KindNetwork, id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, notFound("NetworkNotFound", "Network", id)
	}
	if !n.External {
		return nil, badRequest(notExternal, id)
	}
	return n, nil
}

// setGatewayTx makes rt's gateway what g says (g.Present false: none).
func (h *handler) setGatewayTx(rc *reqCtx, tx *store.Tx, rt *model.Router, g *gwReq) error {
	cur := rt.Gateway
	if g.Present && cur != nil && cur.NetworkID == g.NetworkID && len(g.FixedIPs) == 0 {
		if g.EnableSNAT != nil {
			rt.Gateway.EnableSNAT = *g.EnableSNAT
		}
		return nil
	}
	if cur != nil {
		fips, _, err := h.listRaw(rc, refPrefix(refRouterFIPs, rt.ID))
		if err != nil {
			return err
		}
		if len(fips) > 0 {
			return conflict("RouterExternalGatewayInUseByFloatingIp", "Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", rt.ID, cur.NetworkID)
		}
		if p, err := txGet[*model.Port](tx, model.KindPort, gwPortID(rt.ID)); err != nil {
			return err
		} else if p != nil {
			releasePortTx(tx, p)
		}
		rt.Gateway = nil
	}
	if !g.Present {
		return nil
	}
	n, err := externalNetTx(tx, g.NetworkID, "Bad router request: Network %s is not an external network.")
	if err != nil {
		return err
	}
	p := &model.Port{NetworkID: n.ID, DeviceOwner: ownerRouterGW, DeviceID: rt.ID, AdminStateUp: true, Status: "ACTIVE",
		FixedIPs: []model.FixedIP{}, AllowedAddressPairs: []model.AddressPair{}, SecurityGroups: []string{}}
	stamp(&p.Base, gwPortID(rt.ID), "", oStr{}, oStr{})
	if p.MACAddress, err = claimMAC(tx, "", p.ID, p.NetworkID); err != nil {
		return err
	}
	if p.FixedIPs, err = h.assignIPs(rc, tx, p, g.FixedIPs, len(g.FixedIPs) == 0, nil); err != nil {
		return err
	}
	if len(p.FixedIPs) == 0 {
		return badRequest("Bad router request: external network %s has no subnet to allocate a gateway address from.", n.ID)
	}
	if err := putPortTx(tx, p); err != nil {
		return err
	}
	snat := true
	if g.EnableSNAT != nil {
		snat = *g.EnableSNAT
	}
	rt.Gateway = &model.ExternalGateway{NetworkID: n.ID, EnableSNAT: snat, ExternalFixedIPs: p.FixedIPs}
	return nil
}

func (h *handler) createRouter(rc *reqCtx) (model.Record, error) {
	var req routerReq
	project, err := readCreate(rc, "router", &req)
	if err != nil {
		return nil, err
	}
	if err := routerAdminAttrs(rc, "create", &req); err != nil {
		return nil, err
	}
	// routes is allow_post False in Neutron's extraroute.
	if req.Routes.Set {
		return nil, badRequest("Attribute 'routes' not allowed in POST")
	}
	if err := checkRouterExtras(&req); err != nil {
		return nil, err
	}
	var g *gwReq
	if req.Gateway.Set {
		if g, err = parseGateway(rc, req.Gateway); err != nil {
			return nil, err
		}
	}
	rt := &model.Router{AdminStateUp: true}
	stamp(&rt.Base, newID(), project, req.Name, req.Description)
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		rt.AdminStateUp = req.AdminStateUp.V
	}
	err = h.txn(rc, func(tx *store.Tx) error {
		if err := claimQuota(tx, project, "router"); err != nil {
			return err
		}
		rt.Gateway = nil
		if g != nil && g.Present {
			if err := h.setGatewayTx(rc, tx, rt, g); err != nil {
				return err
			}
			// Created, then given its gateway port, then bound to it:
			// revision 3 (recorded: rtr-create-gw, rtr-create-gw-p1).
			rt.RevisionNo += 2
		}
		return tx.Put(rt)
	})
	if err != nil {
		return nil, err
	}
	return rt, nil
}

// routerAdminAttrs: distributed and ha are Neutron's admin-only router
// attributes; a non-admin that names one is refused (recorded:
// rtr-create-distributed-p1, rtr-create-ha-p1, rtr-update-distributed-p1).
func routerAdminAttrs(rc *reqCtx, action string, req *routerReq) error {
	if rc.admin {
		return nil
	}
	if req.Distributed.Set {
		return forbidden("(rule:%s_router and rule:%s_router:distributed) is disallowed by policy", action, action)
	}
	if req.HA.Set {
		return forbidden("(rule:%s_router and rule:%s_router:ha) is disallowed by policy", action, action)
	}
	return nil
}

func routerAction(rc *reqCtx) string {
	if rc.r.Method == http.MethodPut {
		return "update"
	}
	return "create"
}

func checkRouterExtras(req *routerReq) error {
	if req.HA.Set && req.HA.V {
		return badRequest("HA routers are not supported: Nimbus routers are distributed.")
	}
	if req.AZHints.Set && !req.AZHints.Null {
		var hints []string
		if err := decodeRaw("availability_zone_hints", req.AZHints, &hints); err != nil {
			return err
		}
	}
	return nil
}

// maxRoutes is Neutron's default router_route quota: the most extra
// routes one router may have.
const maxRoutes = 30

// parseRoutes reads a router's routes as Neutron's type:hostroutes
// validator does (null is no routes): each a {destination, nexthop}, the
// destination a normalised IPv4 CIDR, the nexthop an IPv4 address, no
// duplicates.
func parseRoutes(o oRaw) ([]model.Route, error) {
	out := []model.Route{}
	if o.Null {
		return out, nil
	}
	var raw []map[string]any
	if err := decodeRaw("routes", o, &raw); err != nil {
		return nil, err
	}
	seen := map[model.Route]bool{}
	for _, m := range raw {
		if err := onlyKeys(m, "routes", "route", "destination", "nexthop"); err != nil {
			return nil, err
		}
		d, _ := m["destination"].(string)
		nh, _ := m["nexthop"].(string)
		if _, ok := m["destination"]; !ok {
			return nil, invalidInput("routes", "Validation of dictionary's keys failed. Expected keys: {'destination', 'nexthop'} Provided keys: %s", keyList(m))
		}
		if _, ok := m["nexthop"]; !ok {
			return nil, invalidInput("routes", "Validation of dictionary's keys failed. Expected keys: {'destination', 'nexthop'} Provided keys: %s", keyList(m))
		}
		pfx, err := netip.ParsePrefix(d)
		if err != nil || !pfx.Addr().Is4() {
			return nil, invalidInput("routes", "'%s' is not a valid IP subnet", d)
		}
		if pfx.Masked() != pfx {
			return nil, invalidInput("routes", "'%s' isn't a recognized IP subnet cidr, '%s' is recommended", d, pfx.Masked())
		}
		if _, ok := ip4(nh); !ok || strings.TrimSpace(nh) != nh {
			return nil, invalidInput("routes", "'%s' is not a valid IP address", nh)
		}
		r := model.Route{Destination: d, NextHop: nh}
		if seen[r] {
			return nil, invalidInput("routes", "Duplicate hostroute '%s'", pyRoute(r))
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}

func keyList(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, "'"+k+"'")
	}
	sort.Strings(ks)
	return "{" + strings.Join(ks, ", ") + "}"
}

// pyRoute and pyRoutes print routes as Neutron's messages do (Python's
// repr of the list of dicts).
func pyRoute(r model.Route) string {
	return "{'destination': '" + r.Destination + "', 'nexthop': '" + r.NextHop + "'}"
}

func pyRoutes(rs []model.Route) string {
	var b []string
	for _, r := range rs {
		b = append(b, pyRoute(r))
	}
	return "[" + strings.Join(b, ", ") + "]"
}

// validateRoutesTx checks a router's new routes against its ports in tx,
// as Neutron's extraroute does: every nexthop on a subnet of one of the
// router's ports (interfaces or gateway), and none of the router's own
// addresses (400 InvalidRoutes). Nimbus also refuses a destination that
// overlaps a subnet of one of the router's interfaces: the connected
// subnet would win on the data plane (its host routes outrank every extra
// route), so such a route could never be what the user asked for.
func validateRoutesTx(tx *store.Tx, rt *model.Router, routes []model.Route) error {
	if len(routes) == 0 {
		return nil
	}
	if len(routes) > maxRoutes {
		return conflict("OverQuota", "Quota exceeded for resources: ['router_route'].")
	}
	type conn struct {
		c     cidr4
		cidr  string
		iface bool
	}
	var conns []conn
	var ips []string
	add := func(p *model.Port, iface bool) error {
		for _, f := range p.FixedIPs {
			s, err := txGet[*model.Subnet](tx, model.KindSubnet, f.SubnetID)
			if err != nil {
				return err
			}
			if s == nil {
				continue
			}
			if c, ok := parseCIDR(s.CIDR); ok {
				conns = append(conns, conn{c, s.CIDR, iface})
			}
			ips = append(ips, f.IPAddress)
		}
		return nil
	}
	for p, err := range routerPorts(tx, rt) {
		if err != nil {
			return err
		}
		if err := add(p, true); err != nil {
			return err
		}
	}
	if rt.Gateway != nil {
		gp, err := txGet[*model.Port](tx, model.KindPort, gwPortID(rt.ID))
		if err != nil {
			return err
		}
		if gp != nil {
			if err := add(gp, false); err != nil {
				return err
			}
		}
	}
	invalid := func(reason string) error {
		return errf(http.StatusBadRequest, "InvalidRoutes", "Invalid format for routes: %s, %s", pyRoutes(routes), reason)
	}
	for _, r := range routes {
		nh, _ := ip4(r.NextHop)
		connected := false
		for _, c := range conns {
			connected = connected || c.c.contains(nh)
		}
		if !connected {
			return invalid("the nexthop is not connected with router")
		}
		for _, ip := range ips {
			if ip == r.NextHop {
				return invalid("the nexthop is used by router")
			}
		}
		d, _ := parseCIDR(r.Destination)
		for _, c := range conns {
			if c.iface && c.c.overlaps(d) {
				return invalid("the destination " + r.Destination + " overlaps subnet " + c.cidr + " connected to the router")
			}
		}
	}
	return nil
}

func (h *handler) updateRouter(rc *reqCtx, id string) (model.Record, error) {
	var req routerReq
	if err := readNamed(rc, "router", &req, "tenant_id", "project_id"); err != nil {
		return nil, err
	}
	if err := routerAdminAttrs(rc, "update", &req); err != nil {
		return nil, err
	}
	if err := checkRouterExtras(&req); err != nil {
		return nil, err
	}
	var g *gwReq
	var err error
	if req.Gateway.Set {
		if g, err = parseGateway(rc, req.Gateway); err != nil {
			return nil, err
		}
	}
	var routes []model.Route
	if req.Routes.Set {
		if routes, err = parseRoutes(req.Routes); err != nil {
			return nil, err
		}
	}
	rt, err := ownedUpdate(h, rc, "routers", id, func(tx *store.Tx, rt *model.Router) error {
		setNameDesc(&rt.Base, req.Name, req.Description)
		if req.AdminStateUp.Set && !req.AdminStateUp.Null {
			rt.AdminStateUp = req.AdminStateUp.V
		}
		if g != nil {
			had := rt.Gateway
			if err := h.setGatewayTx(rc, tx, rt, g); err != nil {
				return err
			}
			if rt.Gateway != nil && (had == nil || had.NetworkID != rt.Gateway.NetworkID) {
				// A new gateway is two bumps (recorded: rtr-update-gw).
				rt.RevisionNo++
			}
		}
		if req.Routes.Set {
			// Checked against the ports the update leaves.
			if err := validateRoutesTx(tx, rt, routes); err != nil {
				return err
			}
			rt.Routes = routes
		}
		touch(&rt.Base)
		return tx.Put(rt)
	})
	return rt, err
}

func (h *handler) deleteRouter(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "routers", id, func(rt *model.Router, rev int64) (*plan, error) {
		if len(rt.Interfaces) > 0 {
			// Neutron lists them by port id (its router-port index), an
			// order of random ids: two recordings of rtr-delete-in-use
			// disagree.
			ids := slices.Sorted(slices.Values(rt.Interfaces))
			return nil, conflict("RouterInUse", "Router %s has ports still attached: %s", id, strings.Join(ids, ", "))
		}
		p := &plan{}
		p.delRecord(model.KindRouter, id, rev)
		p.release(rt.ProjectID, "router")
		if err := h.noRefs(rc, p, refPrefix(refRouterFIPs, id), conflict("RouterInUse",
			"Router %s still has floating IPs associated through it", id)); err != nil {
			return nil, err
		}
		gp, grev, err := getT[*model.Port](h, rc, model.KindPort, gwPortID(id))
		if err != nil {
			return nil, err
		}
		if gp != nil {
			p.delRecord(model.KindPort, gp.ID, grev)
			for _, f := range gp.FixedIPs {
				p.del(ipamKey(f.SubnetID, f.IPAddress))
			}
			p.del(macKey(gp.MACAddress))
			p.del(refKey(refNetPorts, gp.NetworkID, gp.ID))
		}
		return p, nil
	})
}

type ifaceReq struct {
	SubnetID oStr `json:"subnet_id"`
	PortID   oStr `json:"port_id"`
}

func (h *handler) routerAction(rc *reqCtx, id string, rest []string) (int, any, error) {
	if len(rest) == 1 && (rest[0] == "add_extraroutes" || rest[0] == "remove_extraroutes") {
		return h.extraRoutes(rc, id, rest[0] == "add_extraroutes")
	}
	if len(rest) != 1 || (rest[0] != "add_router_interface" && rest[0] != "remove_router_interface") {
		return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	}
	if rc.r.Method != http.MethodPut {
		return 0, nil, methodNotAllowed()
	}
	b, err := readRawBody(rc)
	if err != nil {
		return 0, nil, err
	}
	var req ifaceReq
	if _, err := decodeBody(append(append([]byte(`{"x":`), b...), '}'), "x", &req); err != nil {
		return 0, nil, err
	}
	sub := req.SubnetID.V
	port := req.PortID.V
	if sub == "" && port == "" {
		return 0, nil, badRequest("Bad router request: Either subnet_id or port_id must be specified.")
	}
	if rest[0] == "add_router_interface" {
		if sub != "" && port != "" {
			return 0, nil, badRequest("Bad router request: Cannot specify both subnet-id and port-id.")
		}
		return h.addInterface(rc, id, sub, port)
	}
	return h.removeInterface(rc, id, sub, port)
}

// extraRoutes is extraroute-atomic's add_extraroutes (add: merged into
// the router's routes, duplicates once) and remove_extraroutes (removed;
// a route the router does not have is no error), then validated as a
// whole, as Neutron does; the answer is the router.
func (h *handler) extraRoutes(rc *reqCtx, id string, add bool) (int, any, error) {
	if rc.r.Method != http.MethodPut {
		return 0, nil, methodNotAllowed()
	}
	b, err := readRawBody(rc)
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		Router *struct {
			Routes oRaw `json:"routes"`
		} `json:"router"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Router == nil {
		return 0, nil, badRequest("Body contains invalid data")
	}
	if !body.Router.Routes.Set {
		return 0, nil, badRequest("Failed to parse request. Required attribute 'routes' not specified")
	}
	routes, err := parseRoutes(body.Router.Routes)
	if err != nil {
		return 0, nil, err
	}
	rt, err := ownedTxn(h, rc, "routers", id, func(tx *store.Tx, rt *model.Router) error {
		var next []model.Route
		if add {
			next = append(next, rt.Routes...)
			have := map[model.Route]bool{}
			for _, r := range rt.Routes {
				have[r] = true
			}
			for _, r := range routes {
				if !have[r] {
					have[r] = true
					next = append(next, r)
				}
			}
		} else {
			drop := map[model.Route]bool{}
			for _, r := range routes {
				drop[r] = true
			}
			for _, r := range rt.Routes {
				if !drop[r] {
					next = append(next, r)
				}
			}
		}
		if err := validateRoutesTx(tx, rt, next); err != nil {
			return err
		}
		rt.Routes = next
		touch(&rt.Base)
		return tx.Put(rt)
	})
	if err != nil {
		return 0, nil, err
	}
	v, err := h.viewOne(rc, h.defs["routers"], rt)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"router": v}, nil
}

func readRawBody(rc *reqCtx) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rc.r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("Unable to read the request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, errf(413, "HTTPRequestEntityTooLarge", "Request body too large.")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, badRequest("Resource body required")
	}
	return b, nil
}

func ifaceInfo(rt *model.Router, p *model.Port) map[string]any {
	var subs []any
	for _, f := range p.FixedIPs {
		subs = append(subs, f.SubnetID)
	}
	sub := ""
	if len(p.FixedIPs) > 0 {
		sub = p.FixedIPs[0].SubnetID
	}
	return map[string]any{"id": rt.ID, "tenant_id": rt.ProjectID, "port_id": p.ID,
		"network_id": p.NetworkID, "subnet_id": sub, "subnet_ids": subs}
}

func (h *handler) addInterface(rc *reqCtx, id, subID, portID string) (int, any, error) {
	var info map[string]any
	_, err := ownedTxn(h, rc, "routers", id, func(tx *store.Tx, rt *model.Router) error {
		var err error
		// CIDRs the router already has.
		type have struct{ subnet, cidr string }
		var haves []have
		for p, err := range routerPorts(tx, rt) {
			if err != nil {
				return err
			}
			for _, f := range p.FixedIPs {
				s, err := txGet[*model.Subnet](tx, model.KindSubnet, f.SubnetID)
				if err != nil {
					return err
				}
				if s != nil {
					haves = append(haves, have{s.ID, s.CIDR})
				}
			}
		}
		checkOverlap := func(s *model.Subnet) error {
			c, _ := parseCIDR(s.CIDR)
			for _, hv := range haves {
				if hv.subnet == s.ID {
					return badRequest("Bad router request: Router already has a port on subnet %s.", s.ID)
				}
				if oc, ok := parseCIDR(hv.cidr); ok && oc.overlaps(c) {
					return badRequest("Bad router request: Cidr %s of subnet %s overlaps with cidr %s of subnet %s.", s.CIDR, s.ID, hv.cidr, hv.subnet)
				}
			}
			return nil
		}
		var p *model.Port
		if subID != "" {
			s, err := txGet[*model.Subnet](tx, model.KindSubnet, subID)
			if err != nil {
				return err
			}
			if s == nil || !h.defs["subnets"].isVisible(rc, s) {
				return notFound("SubnetNotFound", "Subnet", subID)
			}
			if s.GatewayIP == "" {
				return badRequest("Bad router request: Subnet for router interface must have a gateway IP.")
			}
			// The interface port takes the subnet's gateway IP with
			// device_owner network:router_interface: Neutron creates it
			// in the caller's name, so create_port:fixed_ips:ip_address
			// and create_port:device_owner need the network's owner.
			if err := h.ownsNetworkTx(rc, tx, s.NetworkID, "create_port:fixed_ips:ip_address"); err != nil {
				return err
			}
			if err := checkOverlap(s); err != nil {
				return err
			}
			p = &model.Port{NetworkID: s.NetworkID, DeviceOwner: ownerRouterIface, DeviceID: rt.ID, AdminStateUp: true,
				Status: "ACTIVE", AllowedAddressPairs: []model.AddressPair{}, SecurityGroups: []string{}}
			stamp(&p.Base, newID(), rt.ProjectID, oStr{}, oStr{})
			// Created, then attached: revision 2 (recorded:
			// rtr-if-port-show, rev-rif-port).
			p.RevisionNo = 2
			if p.MACAddress, err = claimMAC(tx, "", p.ID, p.NetworkID); err != nil {
				return err
			}
			ip, err := claimIP(tx, s, s.GatewayIP, p.ID)
			if err != nil {
				return err
			}
			p.FixedIPs = []model.FixedIP{{SubnetID: s.ID, IPAddress: ip}}
			// Counted, never refused: Neutron makes this port itself.
			countUsage(tx, p.ProjectID, "port", 1)
		} else {
			if p, err = txGet[*model.Port](tx, model.KindPort, portID); err != nil {
				return err
			}
			if p == nil || !rc.owns(p.ProjectID) {
				return notFound("PortNotFound", "Port", portID)
			}
			if p.DeviceID != "" || p.DeviceOwner != "" {
				return conflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, p.DeviceID)
			}
			if len(p.FixedIPs) == 0 {
				return badRequest("Bad router request: Router port must have at least one fixed IP.")
			}
			// The port becomes network:router_interface in the caller's
			// name (update_port:device_owner needs the network's owner).
			if err := h.ownsNetworkTx(rc, tx, p.NetworkID, "update_port:device_owner"); err != nil {
				return err
			}
			for _, f := range p.FixedIPs {
				s, err := txGet[*model.Subnet](tx, model.KindSubnet, f.SubnetID)
				if err != nil {
					return err
				}
				if s != nil {
					if err := checkOverlap(s); err != nil {
						return err
					}
				}
			}
			for _, sg := range p.SecurityGroups {
				tx.DelRaw(refKey(refSGPorts, sg, p.ID))
			}
			p.SecurityGroups = []string{}
			p.DeviceOwner, p.DeviceID, p.Status = ownerRouterIface, rt.ID, "ACTIVE"
			// Its owner changes, then it is attached: two bumps
			// (recorded: rev-rtr-if-add-port-ok, rev-port-after-if-add-ok).
			touch(&p.Base)
			p.RevisionNo++
		}
		if err := putPortTx(tx, p); err != nil {
			return err
		}
		rt.Interfaces = append(rt.Interfaces, p.ID)
		touch(&rt.Base)
		info = ifaceInfo(rt, p)
		return tx.Put(rt)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, info, nil
}

// ownsNetworkTx answers 403 under rule unless the caller is admin or
// owns network id.
func (h *handler) ownsNetworkTx(rc *reqCtx, tx *store.Tx, id, rule string) error {
	if rc.admin {
		return nil
	}
	n, err := txGet[*model.Network](tx, model.KindNetwork, id)
	if err != nil {
		return err
	}
	if n == nil {
		return notFound("NetworkNotFound", "Network", id)
	}
	if !rc.netOwner(n) {
		return forbidden("(rule:%s) is disallowed by policy: network %s belongs to another project", rule, id)
	}
	return nil
}

func (h *handler) removeInterface(rc *reqCtx, id, subID, portID string) (int, any, error) {
	var info map[string]any
	_, err := ownedTxn(h, rc, "routers", id, func(tx *store.Tx, rt *model.Router) error {
		var p *model.Port
		for ip, err := range routerPorts(tx, rt) {
			if err != nil {
				return err
			}
			if portID != "" && ip.ID != portID {
				continue
			}
			if subID != "" {
				on := false
				for _, f := range ip.FixedIPs {
					on = on || f.SubnetID == subID
				}
				if !on {
					continue
				}
			}
			p = ip
			break
		}
		if p == nil {
			if portID != "" {
				return errf(http.StatusNotFound, "RouterInterfaceNotFound", "Router %s does not have an interface with id %s", id, portID)
			}
			return notFound("RouterInterfaceNotFoundForSubnet", "Router "+id+" has no interface on subnet", subID)
		}
		// Floating IPs reached through this interface keep it.
		fips, _, err := h.listRaw(rc, refPrefix(refRouterFIPs, id))
		if err != nil {
			return err
		}
		for _, kv := range fips {
			f, err := txGet[*model.FloatingIP](tx, model.KindFloatingIP, kv.val)
			if err != nil {
				return err
			}
			if f == nil || f.PortID == "" {
				continue
			}
			fp, err := txGet[*model.Port](tx, model.KindPort, f.PortID)
			if err != nil {
				return err
			}
			if fp == nil {
				continue
			}
			for _, ff := range fp.FixedIPs {
				for _, pf := range p.FixedIPs {
					if ff.SubnetID == pf.SubnetID && ff.IPAddress == f.FixedIPAddress {
						return conflict("RouterInterfaceInUseByFloatingIP", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", pf.SubnetID, id)
					}
				}
			}
		}
		// A route whose nexthop is on the interface's subnet keeps it
		// (Neutron's RouterInterfaceInUseByRoute).
		for _, pf := range p.FixedIPs {
			s, err := txGet[*model.Subnet](tx, model.KindSubnet, pf.SubnetID)
			if err != nil {
				return err
			}
			c, ok := cidr4{}, false
			if s != nil {
				c, ok = parseCIDR(s.CIDR)
			}
			for _, r := range rt.Routes {
				if nh, _ := ip4(r.NextHop); ok && c.contains(nh) {
					return conflict("RouterInterfaceInUseByRoute", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", pf.SubnetID, id)
				}
			}
		}
		info = ifaceInfo(rt, p)
		releasePortTx(tx, p)
		var keep []string
		for _, pid := range rt.Interfaces {
			if pid != p.ID {
				keep = append(keep, pid)
			}
		}
		rt.Interfaces = keep
		touch(&rt.Base)
		return tx.Put(rt)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, info, nil
}

// routerPorts yields a router's interface ports that still exist, reading
// each in tx only when the loop reaches it, so a loop that stops early
// keeps the transaction's read set as small as before.
func routerPorts(tx *store.Tx, rt *model.Router) iter.Seq2[*model.Port, error] {
	return func(yield func(*model.Port, error) bool) {
		for _, pid := range rt.Interfaces {
			p, err := txGet[*model.Port](tx, model.KindPort, pid)
			if err != nil {
				yield(nil, err)
				return
			}
			if p != nil && !yield(p, nil) {
				return
			}
		}
	}
}
