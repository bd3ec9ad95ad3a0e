package northbound

import (
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

type networkReq struct {
	nameAttrs
	ownerAttrs
	AdminStateUp oBool `json:"admin_state_up"`
	Shared       oBool `json:"shared"`
	External     oBool `json:"router:external"`
	NetworkType  oStr  `json:"provider:network_type"`
	PhysNet      oStr  `json:"provider:physical_network"`
	SegID        oInt  `json:"provider:segmentation_id"`
	MTU          oInt  `json:"mtu"`
	PortSecurity oBool `json:"port_security_enabled"`
	AZHints      oRaw  `json:"availability_zone_hints"`
}

func (h *handler) networkDef() *resDef {
	d := &resDef{singular: "network", plural: "networks", path: "networks", kind: model.KindNetwork,
		what: "Network", notFoundType: "NetworkNotFound",
		attrs: attrSet("admin_state_up shared router:external provider:network_type provider:physical_network " +
			"provider:segmentation_id mtu port_security_enabled status subnets availability_zones availability_zone_hints " +
			"ipv4_address_scope ipv6_address_scope is_default"),
	}
	d.visible = func(rc *reqCtx, r model.Record) bool {
		n := r.(*model.Network)
		return rc.owns(n.ProjectID) || n.Shared || n.External
	}
	// network.is_default (auto-allocated-topology) is shown in a create's
	// answer and for external networks only (recorded: net-create-*,
	// net-list-p1; not net-show-*, net-update-*).
	d.views = viewsWith(func(rc *reqCtx) (map[string][]any, error) {
		subnets, err := listT[*model.Subnet](h, rc, model.KindSubnet)
		if err != nil {
			return nil, err
		}
		byNet := map[string][]any{}
		for _, s := range subnets {
			byNet[s.NetworkID] = append(byNet[s.NetworkID], s.ID)
		}
		return byNet, nil
	}, func(rc *reqCtx, byNet map[string][]any, n *model.Network) map[string]any {
		v := baseView(n, "provider:physical_network", "provider:segmentation_id")
		if !rc.admin {
			delete(v, "provider:network_type")
			delete(v, "provider:physical_network")
			delete(v, "provider:segmentation_id")
		}
		v["status"] = "ACTIVE"
		if !n.AdminStateUp {
			v["status"] = "DOWN"
		}
		v["subnets"] = append([]any{}, byNet[n.ID]...)
		v["availability_zones"] = []any{}
		v["availability_zone_hints"] = []any{}
		v["ipv4_address_scope"] = nil
		v["ipv6_address_scope"] = nil
		if rc.r.Method == http.MethodPost || n.External {
			v["is_default"] = false
		}
		return v
	})
	d.create = h.createNetwork
	d.update = h.updateNetwork
	d.del = h.deleteNetwork
	return d
}

// maxMTU is the largest MTU a network of this type can carry.
func (h *handler) maxMTU(typ, physnet string) int {
	m := h.cfg.GlobalMTU
	if typ == model.NetVLAN || typ == model.NetFlat {
		if v, ok := h.cfg.PhysicalNetMTUs[physnet]; ok && v > 0 {
			m = v
		}
	}
	if typ == model.NetGRE {
		m -= GREOverhead
	}
	return m
}

func (h *handler) createNetwork(rc *reqCtx) (model.Record, error) {
	var req networkReq
	project, err := readCreate(rc, "network", &req)
	if err != nil {
		return nil, err
	}
	if !rc.admin && (req.NetworkType.Set || req.PhysNet.Set || req.SegID.Set) {
		return nil, forbidden("(rule:create_network:provider:network_type) is disallowed by policy")
	}
	if !rc.admin && req.External.Set && req.External.V {
		return nil, forbidden("(rule:create_network:router:external) is disallowed by policy")
	}
	if !rc.admin && req.Shared.Set && req.Shared.V {
		return nil, forbidden("(rule:create_network:shared) is disallowed by policy")
	}
	if req.AZHints.Set && !req.AZHints.Null {
		var hints []string
		if err := decodeRaw("availability_zone_hints", req.AZHints, &hints); err != nil {
			return nil, err
		}
	}
	n := &model.Network{AdminStateUp: true, PortSecurity: true}
	stamp(&n.Base, newID(), project, req.Name, req.Description)
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		n.AdminStateUp = req.AdminStateUp.V
	}
	n.Shared = req.Shared.V
	n.External = req.External.V
	if req.PortSecurity.Set && !req.PortSecurity.Null {
		n.PortSecurity = req.PortSecurity.V
	}
	typ := strings.ToLower(req.NetworkType.V)
	if typ == "" {
		typ = h.cfg.TenantNetworkType
	}
	switch typ {
	case model.NetVLAN, model.NetGRE, model.NetFlat, model.NetLocal:
	default:
		return nil, invalidOp("network_type value '%s' not supported", req.NetworkType.V)
	}
	n.NetworkType = typ
	n.PhysicalNetwork = req.PhysNet.V
	if len(n.PhysicalNetwork) > 64 || strings.Contains(n.PhysicalNetwork, "/") {
		return nil, invalidInput("provider:physical_network", "'%.20s' is not a valid physical network name", n.PhysicalNetwork)
	}
	segSet := req.SegID.Set && !req.SegID.Null
	switch typ {
	case model.NetLocal:
		if n.PhysicalNetwork != "" || segSet {
			return nil, invalidInput("provider:network_type", "physical_network and segmentation_id are not allowed for local provider network")
		}
	case model.NetFlat:
		if segSet {
			return nil, invalidInput("provider:segmentation_id", "segmentation_id is not allowed for flat provider network")
		}
		if n.PhysicalNetwork == "" {
			if len(h.cfg.VLANRanges) == 0 {
				return nil, invalidInput("provider:physical_network", "physical_network required for flat provider network")
			}
			n.PhysicalNetwork = h.cfg.VLANRanges[0].PhysicalNetwork
		}
	case model.NetVLAN:
		if segSet && (req.SegID.V < 1 || req.SegID.V > 4094) {
			return nil, invalidInput("provider:segmentation_id", "segmentation_id out of range (1 through 4094)")
		}
		if segSet && n.PhysicalNetwork == "" {
			return nil, invalidInput("provider:physical_network", "physical_network required for VLAN provider network")
		}
	case model.NetGRE:
		if n.PhysicalNetwork != "" {
			return nil, invalidInput("provider:physical_network", "provider:physical_network specified for GRE network")
		}
		if segSet && req.SegID.V < 1 {
			return nil, invalidInput("provider:segmentation_id", "segmentation_id out of range (1 through 4294967295)")
		}
	}
	max := h.maxMTU(typ, n.PhysicalNetwork)
	n.MTU = max
	if req.MTU.Set && !req.MTU.Null {
		if req.MTU.V > max {
			return nil, invalidOp("Requested MTU is too big, maximum is %d", max)
		}
		if req.MTU.V < 68 {
			return nil, invalidInput("mtu", "'%d' is too small - must be at least '68'", req.MTU.V)
		}
		n.MTU = req.MTU.V
	}
	err = h.txn(rc, func(tx *store.Tx) error {
		if err := claimQuota(tx, project, "network"); err != nil {
			return err
		}
		// The project gets its default group with its first network,
		// as in Neutron (recorded: sg-list-sort).
		if _, err := h.ensureDefaultSG(tx, project); err != nil {
			return err
		}
		n.SegmentationID = 0
		switch typ {
		case model.NetFlat:
			if tx.GetRaw(segKey("flat", n.PhysicalNetwork, 0)) != "" {
				return conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", n.PhysicalNetwork)
			}
			tx.PutRaw(segKey("flat", n.PhysicalNetwork, 0), n.ID)
		case model.NetVLAN, model.NetGRE:
			if segSet {
				if tx.GetRaw(segKey(typ, n.PhysicalNetwork, req.SegID.V)) != "" {
					if typ == model.NetVLAN {
						return conflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", req.SegID.V, n.PhysicalNetwork)
					}
					return conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", req.SegID.V)
				}
				if typ == model.NetVLAN && tx.GetRaw(vlanIDKey(req.SegID.V)) != "" {
					return conflict("VlanIdInUse", "Unable to create the network. The VLAN %d is in use on another physical network; "+
						"Nimbus keeps VLAN ids unique across physical networks.", req.SegID.V)
				}
				n.SegmentationID = req.SegID.V
			} else {
				physnet, id, err := h.allocateSegment(rc, tx, typ, n.PhysicalNetwork)
				if err != nil {
					return err
				}
				n.PhysicalNetwork, n.SegmentationID = physnet, id
			}
			tx.PutRaw(segKey(typ, n.PhysicalNetwork, n.SegmentationID), n.ID)
			if typ == model.NetVLAN {
				tx.PutRaw(vlanIDKey(n.SegmentationID), n.ID)
			}
		}
		return tx.Put(n)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// allocateSegment picks the lowest free id of the configured ranges; the
// claim is a tracked read and write of the id's key, so it is unique
// across replicas.
func (h *handler) allocateSegment(rc *reqCtx, tx *store.Tx, typ, physnet string) (string, int, error) {
	type rng struct {
		physnet  string
		min, max int
	}
	var rs []rng
	if typ == model.NetVLAN {
		for _, r := range h.cfg.VLANRanges {
			if physnet == "" || r.PhysicalNetwork == physnet {
				rs = append(rs, rng{r.PhysicalNetwork, r.Min, r.Max})
			}
		}
	} else {
		for _, r := range h.cfg.GRERanges {
			rs = append(rs, rng{"", r.Min, r.Max})
		}
	}
	for _, r := range rs {
		kvs, _, err := h.listRaw(rc, segPrefix(typ, r.physnet))
		if err != nil {
			return "", 0, err
		}
		used := map[int]bool{}
		for _, kv := range kvs {
			if n, err := strconv.Atoi(kv.key[strings.LastIndex(kv.key, "/")+1:]); err == nil {
				used[n] = true
			}
		}
		for id := r.min; id <= r.max; id++ {
			if used[id] {
				continue
			}
			if tx.GetRaw(segKey(typ, r.physnet, id)) == "" && (typ != model.NetVLAN || tx.GetRaw(vlanIDKey(id)) == "") {
				return r.physnet, id, nil
			}
		}
	}
	return "", 0, errf(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation.")
}

func (h *handler) updateNetwork(rc *reqCtx, id string) (model.Record, error) {
	var req networkReq
	if err := readNamed(rc, "network", &req, "tenant_id", "project_id", "availability_zone_hints"); err != nil {
		return nil, err
	}
	if req.NetworkType.Set || req.PhysNet.Set || req.SegID.Set {
		if !rc.admin {
			return nil, forbidden("(rule:update_network and rule:update_network:provider:network_type) is disallowed by policy")
		}
		// Neutron's answer for a non-VLAN network (recorded:
		// net-update-provider); Nimbus changes no segment in place.
		return nil, invalidOp("Only VLAN type networks can be updated.")
	}
	if !rc.admin && (req.External.Set || req.Shared.Set) {
		return nil, forbidden("(rule:update_network:shared) is disallowed by policy")
	}
	n, err := ownedTxn(h, rc, "networks", id, func(tx *store.Tx, n *model.Network) error {
		setNameDesc(&n.Base, req.Name, req.Description)
		if req.AdminStateUp.Set && !req.AdminStateUp.Null {
			n.AdminStateUp = req.AdminStateUp.V
		}
		if req.Shared.Set && !req.Shared.Null {
			n.Shared = req.Shared.V
		}
		if req.External.Set && !req.External.Null {
			n.External = req.External.V
		}
		if req.PortSecurity.Set && !req.PortSecurity.Null {
			n.PortSecurity = req.PortSecurity.V
		}
		if req.MTU.Set && !req.MTU.Null {
			max := h.maxMTU(n.NetworkType, n.PhysicalNetwork)
			if req.MTU.V < 68 || req.MTU.V > max {
				return invalidInput("mtu", "Requested MTU %d is out of range: a %s network carries 68 to %d", req.MTU.V, n.NetworkType, max)
			}
			n.MTU = req.MTU.V
		}
		touch(&n.Base)
		return tx.Put(n)
	})
	return n, err
}

func (h *handler) deleteNetwork(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "networks", id, func(n *model.Network, rev int64) (*plan, error) {
		p := &plan{}
		p.delRecord(model.KindNetwork, id, rev)
		p.release(n.ProjectID, "network")
		if err := h.noRefs(rc, p, refPrefix(refNetPorts, id), conflict("NetworkInUse",
			"Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)); err != nil {
			return nil, err
		}
		subs, srev, err := h.listRaw(rc, refPrefix(refNetSubnets, id))
		if err != nil {
			return nil, err
		}
		p.unchangedSince(refPrefix(refNetSubnets, id), srev)
		for _, kv := range subs {
			sid := kv.key[strings.LastIndex(kv.key, "/")+1:]
			s, rev, err := h.get(rc, model.KindSubnet, sid)
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			if err := h.noRefs(rc, p, refPrefix(refSubnetPools, sid), conflict("NetworkInUse",
				"Unable to complete operation on network %s. Subnet %s is used by load balancer pools.", id, sid)); err != nil {
				return nil, err
			}
			p.delRecord(model.KindSubnet, sid, rev)
			p.release(projectOfRecord(s), "subnet")
			p.empty(ipamPrefix(sid))
		}
		p.delPrefix(refPrefix(refNetSubnets, id))
		switch n.NetworkType {
		case model.NetFlat:
			p.del(segKey("flat", n.PhysicalNetwork, 0))
		case model.NetVLAN, model.NetGRE:
			p.del(segKey(n.NetworkType, n.PhysicalNetwork, n.SegmentationID))
			if n.NetworkType == model.NetVLAN {
				p.del(vlanIDKey(n.SegmentationID))
			}
		}
		return p, nil
	})
}

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
		for k := range m {
			if k != "start" && k != "end" {
				return nil, invalidInput("allocation_pools", "Unrecognized key '%s' in pool", k)
			}
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
		for k := range m {
			if k != "destination" && k != "nexthop" {
				return nil, invalidInput("host_routes", "Unrecognized key '%s' in route", k)
			}
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
	nd := h.defs["networks"]
	err = h.txn(rc, func(tx *store.Tx) error {
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
			if o == nil {
				continue
			}
			if op, err := netip.ParsePrefix(o.CIDR); err == nil && op.Overlaps(pfx) {
				return invalidOp("Requested subnet with cidr: %s for network: %s overlaps with another subnet", req.CIDR.V, n.ID)
			}
		}
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
	nd := h.defs["networks"]
	err = h.txn(rc, func(tx *store.Tx) error {
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
			if o == nil {
				continue
			}
			if oc, ok := parseCIDR(o.CIDR); ok && oc.overlaps(c) {
				return invalidOp("Requested subnet with cidr: %s for network: %s overlaps with another subnet", req.CIDR.V, n.ID)
			}
		}
		// Rewriting the network serializes subnet creates on it, which
		// makes the overlap check race-free; its revision stays, as in
		// Neutron (recorded: net-update-empty).
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

func (h *handler) updateSubnet(rc *reqCtx, id string) (model.Record, error) {
	var req subnetReq
	if err := readNamed(rc, "subnet", &req, "tenant_id", "project_id", "network_id", "ip_version", "cidr",
		"subnetpool_id", "prefixlen", "use_default_subnetpool", "ipv6_ra_mode", "ipv6_address_mode"); err != nil {
		return nil, err
	}
	if req.SegmentID.Set && !req.SegmentID.Null {
		return nil, badRequest("Routed network segments are not supported.")
	}
	s, err := ownedTxn(h, rc, "subnets", id, func(tx *store.Tx, s *model.Subnet) error {
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
