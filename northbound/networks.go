package northbound

import (
	"net/http"
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
		return rc.exempt() || rc.owns(n.ProjectID) || n.Shared || n.External
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
	n, err := ownedUpdate(h, rc, "networks", id, func(tx *store.Tx, n *model.Network) error {
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
		inUse, err := h.networkInUse(rc, id)
		if err != nil {
			return nil, err
		}
		if inUse == nil { // a port came after the listing: the same answer, unnamed
			inUse = conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
		if err := h.noRefs(rc, p, refPrefix(refNetPorts, id), inUse); err != nil {
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

// networkInUse is Neutron's NetworkInUse answer for a network that still
// has ports: it names them, ordered by MAC address (Neutron reads them
// through its network_id+mac_address index; recorded:
// rev-net-delete-in-use, ports made with MACs ...33, ...11, ...22 are
// listed 11, 22, 33). nil when the network has no port.
func (h *handler) networkInUse(rc *reqCtx, id string) (*apiError, error) {
	kvs, _, err := h.listRaw(rc, refPrefix(refNetPorts, id))
	if err != nil || len(kvs) == 0 {
		return nil, err
	}
	type pm struct{ id, mac string }
	ps := make([]pm, 0, len(kvs))
	for _, kv := range kvs {
		pid := kv.key[strings.LastIndex(kv.key, "/")+1:]
		p, _, err := getT[*model.Port](h, rc, model.KindPort, pid)
		if err != nil {
			return nil, err
		}
		mac := ""
		if !isNil(p) {
			mac = p.MACAddress
		}
		ps = append(ps, pm{pid, mac})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].mac != ps[j].mac {
			return ps[i].mac < ps[j].mac
		}
		return ps[i].id < ps[j].id
	})
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.id
	}
	return conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network, id for these ports is: %s.",
		id, strings.Join(ids, ",")), nil
}
