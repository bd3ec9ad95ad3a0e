package northbound

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// ---- subnets ----

type subnetReq struct {
	nameAttrs
	ownerAttrs
	NetworkID       oStr  `json:"network_id"`
	IPVersion       oInt  `json:"ip_version"`
	CIDR            oStr  `json:"cidr"`
	GatewayIP       oStr  `json:"gateway_ip"`
	AllocationPools oRaw  `json:"allocation_pools"`
	DNSNameservers  oRaw  `json:"dns_nameservers"`
	HostRoutes      oRaw  `json:"host_routes"`
	EnableDHCP      oBool `json:"enable_dhcp"`
	SubnetpoolID    oStr  `json:"subnetpool_id"`
	PrefixLen       oInt  `json:"prefixlen"`
	UseDefaultPool  oBool `json:"use_default_subnetpool"`
	IPv6RAMode      oStr  `json:"ipv6_ra_mode"`
	IPv6AddressMode oStr  `json:"ipv6_address_mode"`
	SegmentID       oStr  `json:"segment_id"`
	ServiceTypes    oRaw  `json:"service_types"`
}

func (h *handler) subnetDef() *resDef {
	d := &resDef{singular: "subnet", plural: "subnets", path: "subnets", kind: model.KindSubnet,
		what: "Subnet", notFoundType: "SubnetNotFound",
		attrs: attrSet("network_id ip_version cidr gateway_ip allocation_pools dns_nameservers host_routes enable_dhcp " +
			"subnetpool_id ipv6_ra_mode ipv6_address_mode segment_id service_types"),
	}
	d.visible = func(rc *reqCtx, r model.Record) bool {
		s := r.(*model.Subnet)
		if rc.owns(s.ProjectID) {
			return true
		}
		// A shared network's subnets are everyone's to see; an external
		// network's are not (recorded: sub-list-p1).
		n, _, err := getT[*model.Network](h, rc, model.KindNetwork, s.NetworkID)
		return err == nil && n != nil && n.Shared
	}
	d.views = viewsOf(func(rc *reqCtx, r *model.Subnet) map[string]any {
		v := baseView(r, "gateway_ip")
		for _, k := range []string{"allocation_pools", "dns_nameservers", "host_routes"} {
			if v[k] == nil {
				v[k] = []any{}
			}
		}
		v["subnetpool_id"] = nil
		for _, k := range []string{"ipv6_ra_mode", "ipv6_address_mode"} {
			if v[k] == nil {
				v[k] = nil
			}
		}
		v["service_types"] = []any{}
		zeroBasedRevision(v)
		return v
	})
	d.create = h.createSubnet
	d.update = h.updateSubnet
	d.del = h.deleteSubnet
	return d
}

func parsePools(o oRaw, c cidr4) ([]model.Pool, error) {
	var raw []map[string]any
	if err := decodeRaw("allocation_pools", o, &raw); err != nil {
		return nil, err
	}
	var out []model.Pool
	var rs []ipRange
	for _, m := range raw {
		if err := onlyKeys(m, "allocation_pools", "pool", "start", "end"); err != nil {
			return nil, err
		}
		ss, _ := m["start"].(string)
		es, _ := m["end"].(string)
		a, ok1 := ip4(ss)
		b, ok2 := ip4(es)
		if !ok1 || !ok2 {
			return nil, invalidInput("allocation_pools", "pool start and end must be IPv4 addresses")
		}
		if a > b {
			return nil, errf(400, "InvalidAllocationPool", "The allocation pool %s-%s is not valid.", ss, es)
		}
		if !c.host(a) || !c.host(b) {
			return nil, errf(400, "OutOfBoundsAllocationPool", "The allocation pool %s-%s spans beyond the subnet cidr %s.", ss, es, ipString(c.first)+"/"+strconv.Itoa(c.bits))
		}
		for _, r := range rs {
			if a <= r.end && r.start <= b {
				return nil, conflict("OverlappingAllocationPools", "Found overlapping allocation pools: %s-%s overlaps another pool.", ss, es)
			}
		}
		rs = append(rs, ipRange{a, b})
		out = append(out, model.Pool{Start: ipString(a), End: ipString(b)})
	}
	return out, nil
}

// parseNameservers reads dns_nameservers, at most max of them (Neutron's
// max_dns_nameservers); subnet names the subnet in the error.
func parseNameservers(o oRaw, max int, subnet string) ([]string, error) {
	var ns []string
	if err := decodeRaw("dns_nameservers", o, &ns); err != nil {
		return nil, err
	}
	if len(ns) > max {
		return nil, errf(400, "DNSNameServersExhausted", "Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.", subnet, max)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, s := range ns {
		u, ok := ip4(s)
		if !ok {
			return nil, invalidInput("dns_nameservers", "'%[1]s' is not a valid nameserver. '%[1]s' is not a valid IP address", s)
		}
		if seen[s] {
			return nil, invalidInput("dns_nameservers", "Duplicate nameserver '%s'", s)
		}
		seen[s] = true
		out = append(out, ipString(u))
	}
	return out, nil
}

// parseHostRoutes reads host_routes, at most max of them (Neutron's
// max_subnet_host_routes); subnet names the subnet in the error.
func parseHostRoutes(o oRaw, max int, subnet string) ([]model.HostRoute, error) {
	var raw []map[string]any
	if err := decodeRaw("host_routes", o, &raw); err != nil {
		return nil, err
	}
	if len(raw) > max {
		return nil, errf(400, "HostRoutesExhausted", "Unable to complete operation for %s. The number of host routes exceeds the limit %d.", subnet, max)
	}
	out := []model.HostRoute{}
	for _, m := range raw {
		if err := onlyKeys(m, "host_routes", "route", "destination", "nexthop"); err != nil {
			return nil, err
		}
		d, _ := m["destination"].(string)
		nh, _ := m["nexthop"].(string)
		if _, ok := parseCIDR(d); !ok {
			return nil, invalidInput("host_routes", "'%s' is not a valid IPv4 destination", d)
		}
		if _, ok := ip4(nh); !ok {
			return nil, invalidInput("host_routes", "'%s' is not a valid nexthop", nh)
		}
		out = append(out, model.HostRoute{Destination: d, NextHop: nh})
	}
	return out, nil
}

var ipv6ModeValues = map[string]bool{"slaac": true, "dhcpv6-stateful": true, "dhcpv6-stateless": true}

// ipv6Modes checks ipv6_ra_mode and ipv6_address_mode as Neutron does
// (recorded: sub-create-v6-bad-mode, sub-create-v6-mode-mismatch).
func ipv6Modes(req subnetReq) (string, string, error) {
	var ra, am string
	for _, m := range []struct {
		attr string
		o    oStr
		dst  *string
	}{{"ipv6_ra_mode", req.IPv6RAMode, &ra}, {"ipv6_address_mode", req.IPv6AddressMode, &am}} {
		if !m.o.Set || m.o.Null {
			continue
		}
		if !ipv6ModeValues[m.o.V] {
			return "", "", invalidInput(m.attr, "%s is not in valid_values", m.o.V)
		}
		*m.dst = m.o.V
	}
	if ra != "" && am != "" && ra != am {
		return "", "", invalidOp("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value", ra, am)
	}
	return ra, am, nil
}

// createSubnet6 stores an IPv6 subnet as Neutron does (recorded:
// sub-create-v6-*): the prefix masked, the gateway by default the
// prefix's first address (the subnet-router anycast address), one pool
// of the rest. Only the API carries IPv6 so far: ports get no IPv6
// addresses, and the data plane skips these subnets.
func (h *handler) createSubnet6(rc *reqCtx, req *subnetReq, project, ra, am string) (model.Record, error) {
	pfx, err := netip.ParsePrefix(strings.TrimSpace(req.CIDR.V))
	if err != nil || !pfx.Addr().Is6() {
		return nil, invalidOp("%s is not in a CIDR format", req.CIDR.V)
	}
	pfx = pfx.Masked()
	if pfx.Bits() > 126 {
		return nil, invalidInput("cidr", "prefix length of '%s' must be at most 126", req.CIDR.V)
	}
	if req.AllocationPools.Set && !req.AllocationPools.Null {
		return nil, badRequest("allocation_pools are not supported on IPv6 subnets yet.")
	}
	first := pfx.Addr()
	last := lastAddr(pfx)
	s := &model.Subnet{NetworkID: req.NetworkID.V, IPVersion: 6, CIDR: pfx.String(), EnableDHCP: true,
		DNSNameservers: []string{}, HostRoutes: []model.HostRoute{}, IPv6RAMode: ra, IPv6AddressMode: am}
	stamp(&s.Base, newID(), project, req.Name, req.Description)
	if req.EnableDHCP.Set && !req.EnableDHCP.Null {
		s.EnableDHCP = req.EnableDHCP.V
	}
	switch {
	case !req.GatewayIP.Set:
		s.GatewayIP = first.String()
	case req.GatewayIP.Null || req.GatewayIP.V == "":
	default:
		gw, err := netip.ParseAddr(strings.TrimSpace(req.GatewayIP.V))
		if err != nil || !gw.Is6() {
			return nil, invalidInput("gateway_ip", "'%s' is not a valid IP address", req.GatewayIP.V)
		}
		s.GatewayIP = gw.String()
	}
	start := first.Next()
	if s.GatewayIP != "" && s.GatewayIP != first.String() {
		start = first
	}
	s.AllocationPools = []model.Pool{{Start: start.String(), End: last.String()}}
	if req.DNSNameservers.Set && !req.DNSNameservers.Null {
		var ns []string
		if err := decodeRaw("dns_nameservers", req.DNSNameservers, &ns); err != nil {
			return nil, err
		}
		for _, d := range ns {
			if _, err := netip.ParseAddr(d); err != nil {
				return nil, invalidInput("dns_nameservers", "'%[1]s' is not a valid nameserver. '%[1]s' is not a valid IP address", d)
			}
		}
		if len(ns) > h.cfg.MaxDNSNameservers {
			return nil, invalidInput("dns_nameservers", "more than %d nameservers", h.cfg.MaxDNSNameservers)
		}
		s.DNSNameservers = append(s.DNSNameservers, ns...)
	}
	if req.HostRoutes.Set && !req.HostRoutes.Null {
		return nil, badRequest("host_routes are not supported on IPv6 subnets yet.")
	}
	return h.putNewSubnet(rc, s, project, req.CIDR.V, func(cidr string) bool {
		op, err := netip.ParsePrefix(cidr)
		return err == nil && op.Overlaps(pfx)
	})
}

// lastAddr is the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}

func (h *handler) createSubnet(rc *reqCtx) (model.Record, error) {
	var req subnetReq
	project, err := readCreate(rc, "subnet", &req)
	if err != nil {
		return nil, err
	}
	if req.IPVersion.Set && !req.IPVersion.Null && req.IPVersion.V != 4 && req.IPVersion.V != 6 {
		return nil, invalidInput("ip_version", "%d is not in valid_values", req.IPVersion.V)
	}
	ra, am, err := ipv6Modes(req)
	if err != nil {
		return nil, err
	}
	version := 4
	if req.IPVersion.Set && !req.IPVersion.Null {
		version = req.IPVersion.V
	}
	if version == 4 && (ra != "" || am != "") {
		attr := "ipv6_ra_mode"
		if ra == "" {
			attr = "ipv6_address_mode"
		}
		return nil, invalidOp("%s is not valid when ip_version is 4", attr)
	}
	if req.SubnetpoolID.Set && !req.SubnetpoolID.Null || req.UseDefaultPool.V || req.PrefixLen.Set && !req.PrefixLen.Null {
		return nil, badRequest("Subnet pools are not supported: give a cidr.")
	}
	if req.SegmentID.Set && !req.SegmentID.Null {
		return nil, badRequest("Routed network segments are not supported.")
	}
	if req.ServiceTypes.Set && !req.ServiceTypes.Null {
		var st []string
		if err := decodeRaw("service_types", req.ServiceTypes, &st); err != nil {
			return nil, err
		}
		if len(st) > 0 {
			return nil, badRequest("Subnet service types are not supported.")
		}
	}
	if !req.NetworkID.Set || req.NetworkID.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'network_id' not specified")
	}
	if !req.CIDR.Set || req.CIDR.V == "" {
		return nil, badRequest("Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
	}
	if pfx, err := netip.ParsePrefix(strings.TrimSpace(req.CIDR.V)); err == nil && (pfx.Addr().Is6() != (version == 6)) {
		return nil, invalidOp("cidr '%s' does not match the ip_version '%d'", req.CIDR.V, version)
	}
	if version == 6 {
		return h.createSubnet6(rc, &req, project, ra, am)
	}
	c, ok := parseCIDR(req.CIDR.V)
	if !ok || !strings.Contains(req.CIDR.V, "/") {
		return nil, invalidOp("%s is not in a CIDR format", req.CIDR.V)
	}
	// Host bits are dropped (recorded: sub-create-hostbits).
	canon := ipString(c.first) + "/" + strconv.Itoa(c.bits)
	if c.bits > 30 || c.bits < 8 {
		return nil, invalidInput("cidr", "prefix length of '%s' must be between 8 and 30", req.CIDR.V)
	}
	s := &model.Subnet{NetworkID: req.NetworkID.V, IPVersion: 4, CIDR: canon, EnableDHCP: true,
		DNSNameservers: []string{}, HostRoutes: []model.HostRoute{}}
	stamp(&s.Base, newID(), project, req.Name, req.Description)
	if req.EnableDHCP.Set && !req.EnableDHCP.Null {
		s.EnableDHCP = req.EnableDHCP.V
	}
	var gw uint32
	hasGW := true
	switch {
	case !req.GatewayIP.Set:
		gw = c.first + 1
	case req.GatewayIP.Null || req.GatewayIP.V == "":
		hasGW = false
	default:
		var ok bool
		if gw, ok = ip4(req.GatewayIP.V); !ok {
			return nil, invalidInput("gateway_ip", "'%s' is not a valid IP address", req.GatewayIP.V)
		}
		// A gateway outside the CIDR is accepted (recorded:
		// sub-create-gw-outside); the network or broadcast address is not.
		if c.contains(gw) && !c.host(gw) {
			return nil, errf(400, "InvalidIpForSubnet", "Gateway IP %s is not a valid IP for subnet %s.", req.GatewayIP.V, canon)
		}
	}
	if hasGW {
		s.GatewayIP = ipString(gw)
	}
	if req.AllocationPools.Set && !req.AllocationPools.Null {
		if s.AllocationPools, err = parsePools(req.AllocationPools, c); err != nil {
			return nil, err
		}
		for _, r := range subnetPools(s) {
			if hasGW && gw >= r.start && gw <= r.end {
				return nil, conflict("GatewayConflictWithAllocationPools", "Gateway ip %s conflicts with allocation pool %s-%s.", s.GatewayIP, ipString(r.start), ipString(r.end))
			}
		}
	} else {
		s.AllocationPools = defaultPools(c, gw, hasGW)
	}
	if s.AllocationPools == nil {
		s.AllocationPools = []model.Pool{}
	}
	if req.DNSNameservers.Set && !req.DNSNameservers.Null {
		if s.DNSNameservers, err = parseNameservers(req.DNSNameservers, h.cfg.MaxDNSNameservers, "new subnet"); err != nil {
			return nil, err
		}
	}
	if req.HostRoutes.Set && !req.HostRoutes.Null {
		if s.HostRoutes, err = parseHostRoutes(req.HostRoutes, h.cfg.MaxSubnetHostRoutes, "new subnet"); err != nil {
			return nil, err
		}
	}
	return h.putNewSubnet(rc, s, project, req.CIDR.V, func(cidr string) bool {
		oc, ok := parseCIDR(cidr)
		return ok && oc.overlaps(c)
	})
}

func (h *handler) updateSubnet(rc *reqCtx, id string) (model.Record, error) {
	var req subnetReq
	if err := readNamed(rc, "subnet", &req, "tenant_id", "project_id", "network_id", "ip_version", "cidr",
		"subnetpool_id", "prefixlen", "use_default_subnetpool", "ipv6_ra_mode", "ipv6_address_mode"); err != nil {
		return nil, err
	}
	if req.SegmentID.Set && !req.SegmentID.Null {
		return nil, badRequest("Routed network segments are not supported.")
	}
	s, err := ownedUpdate(h, rc, "subnets", id, func(tx *store.Tx, s *model.Subnet) error {
		if s.IPVersion == 6 && (req.GatewayIP.Set || req.AllocationPools.Set || req.HostRoutes.Set) {
			return badRequest("gateway_ip, allocation_pools and host_routes of IPv6 subnets cannot be changed yet.")
		}
		var err error
		c, _ := parseCIDR(s.CIDR)
		setNameDesc(&s.Base, req.Name, req.Description)
		if req.EnableDHCP.Set && !req.EnableDHCP.Null {
			s.EnableDHCP = req.EnableDHCP.V
		}
		if req.GatewayIP.Set {
			if req.GatewayIP.Null || req.GatewayIP.V == "" {
				s.GatewayIP = ""
			} else {
				gw, ok := ip4(req.GatewayIP.V)
				if !ok {
					return invalidInput("gateway_ip", "'%s' is not a valid IP address", req.GatewayIP.V)
				}
				if !c.host(gw) {
					return errf(400, "InvalidIpForSubnet", "Gateway IP %s is not a valid IP for subnet %s.", req.GatewayIP.V, s.CIDR)
				}
				if owner := tx.GetRaw(ipamKey(s.ID, ipString(gw))); owner != "" {
					return conflict("IpAddressInUse", "Unable to complete operation for network %s. The IP address %s is in use.", s.NetworkID, ipString(gw))
				}
				s.GatewayIP = ipString(gw)
			}
		}
		if req.AllocationPools.Set && !req.AllocationPools.Null {
			pools, err := parsePools(req.AllocationPools, c)
			if err != nil {
				return err
			}
			s.AllocationPools = pools
		}
		if gw, ok := ip4(s.GatewayIP); ok {
			for _, r := range subnetPools(s) {
				if gw >= r.start && gw <= r.end {
					return conflict("GatewayConflictWithAllocationPools", "Gateway ip %s conflicts with allocation pool %s-%s.", s.GatewayIP, ipString(r.start), ipString(r.end))
				}
			}
		}
		if req.DNSNameservers.Set {
			s.DNSNameservers = []string{}
			if !req.DNSNameservers.Null {
				if s.DNSNameservers, err = parseNameservers(req.DNSNameservers, h.cfg.MaxDNSNameservers, s.ID); err != nil {
					return err
				}
			}
		}
		if req.HostRoutes.Set {
			s.HostRoutes = []model.HostRoute{}
			if !req.HostRoutes.Null {
				if s.HostRoutes, err = parseHostRoutes(req.HostRoutes, h.cfg.MaxSubnetHostRoutes, s.ID); err != nil {
					return err
				}
			}
		}
		touch(&s.Base)
		return tx.Put(s)
	})
	return s, err
}

func (h *handler) deleteSubnet(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "subnets", id, func(s *model.Subnet, rev int64) (*plan, error) {
		ips, _, err := h.listRaw(rc, ipamPrefix(id))
		if err != nil {
			return nil, err
		}
		pools, _, err := h.listRaw(rc, refPrefix(refSubnetPools, id))
		if err != nil {
			return nil, err
		}
		if len(ips) > 0 {
			return nil, conflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
		}
		if len(pools) > 0 {
			return nil, conflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more load balancer pools use this subnet.", id)
		}
		p := &plan{}
		p.delRecord(model.KindSubnet, id, rev)
		p.release(s.ProjectID, "subnet")
		p.empty(ipamPrefix(id))
		p.empty(refPrefix(refSubnetPools, id))
		p.del(refKey(refNetSubnets, s.NetworkID, id))
		return p, nil
	})
}

// networkSubnets reads a network's subnets inside tx (ordered by
// creation), from the reference index.
func (h *handler) networkSubnets(rc *reqCtx, tx *store.Tx, netID string) ([]*model.Subnet, error) {
	kvs, _, err := h.listRaw(rc, refPrefix(refNetSubnets, netID))
	if err != nil {
		return nil, err
	}
	var out []*model.Subnet
	for _, kv := range kvs {
		s, err := txGet[*model.Subnet](tx, model.KindSubnet, kv.key[strings.LastIndex(kv.key, "/")+1:])
		if err != nil {
			return nil, err
		}
		if s != nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt < out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// putNewSubnet writes a new subnet on its network in one transaction: the
// network must be visible and (for a non-admin) the caller's, no subnet
// already on it may overlap (overlaps tells, by the other subnet's CIDR),
// and the subnet quota is claimed. Rewriting the network serializes
// subnet creates on it, which makes the overlap check race-free, and a
// new subnet bumps its network's revision, as in Neutron (recorded:
// rev-net-after-sub).
func (h *handler) putNewSubnet(rc *reqCtx, s *model.Subnet, project, cidr string, overlaps func(cidr string) bool) (model.Record, error) {
	nd := h.defs["networks"]
	err := h.txn(rc, func(tx *store.Tx) error {
		n, err := txGet[*model.Network](tx, model.KindNetwork, s.NetworkID)
		if err != nil {
			return err
		}
		if n == nil || !nd.isVisible(rc, n) {
			return notFound("NetworkNotFound", "Network", s.NetworkID)
		}
		if !rc.admin && n.ProjectID != project {
			return forbidden("(rule:create_subnet) is disallowed by policy: network %s belongs to another project", n.ID)
		}
		subs, _, err := h.listRaw(rc, refPrefix(refNetSubnets, n.ID))
		if err != nil {
			return err
		}
		for _, kv := range subs {
			o, err := txGet[*model.Subnet](tx, model.KindSubnet, kv.key[strings.LastIndex(kv.key, "/")+1:])
			if err != nil {
				return err
			}
			if o != nil && overlaps(o.CIDR) {
				return invalidOp("Requested subnet with cidr: %s for network: %s overlaps with another subnet", cidr, n.ID)
			}
		}
		touch(&n.Base)
		if err := tx.Put(n); err != nil {
			return err
		}
		if err := claimQuota(tx, project, "subnet"); err != nil {
			return err
		}
		tx.PutRaw(refKey(refNetSubnets, n.ID, s.ID), s.ID)
		return tx.Put(s)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}
