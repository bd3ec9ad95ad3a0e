package northbound

import (
	"net/http"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// LBaaS v1 (the Grizzly API of the neutron CLI's lb-* commands).

var lbProtocols = map[string]bool{"TCP": true, "HTTP": true, "HTTPS": true}
var lbMethods = map[string]bool{"ROUND_ROBIN": true, "LEAST_CONNECTIONS": true, "SOURCE_IP": true}

type poolReq struct {
	nameAttrs
	ownerAttrs
	SubnetID     oStr  `json:"subnet_id"`
	Protocol     oStr  `json:"protocol"`
	LBMethod     oStr  `json:"lb_method"`
	AdminStateUp oBool `json:"admin_state_up"`
	Provider     oStr  `json:"provider"`
}

const lbProvider = "nimbus"

func (h *handler) poolDef() *resDef {
	d := &resDef{singular: "pool", plural: "pools", path: "lb/pools", kind: model.KindPool,
		what: "Pool", notFoundType: "PoolNotFound",
		attrs: attrSet("subnet_id protocol lb_method admin_state_up health_monitors health_monitors_status members vip_id provider status status_description"),
	}
	d.views = viewsWith(func(rc *reqCtx) (map[string][]any, error) {
		members, err := listT[*model.LBMember](h, rc, model.KindMember)
		if err != nil {
			return nil, err
		}
		byPool := map[string][]any{}
		for _, m := range members {
			byPool[m.PoolID] = append(byPool[m.PoolID], m.ID)
		}
		return byPool, nil
	}, func(rc *reqCtx, byPool map[string][]any, p *model.LBPool) map[string]any {
		v := baseView(p, "vip_id")
		hms := []any{}
		st := []any{}
		for _, hm := range p.HealthMonitorIDs {
			hms = append(hms, hm)
			st = append(st, map[string]any{"monitor_id": hm, "status": "ACTIVE", "status_description": nil})
		}
		v["health_monitors"] = hms
		v["health_monitors_status"] = st
		v["members"] = append([]any{}, byPool[p.ID]...)
		v["provider"] = lbProvider
		v["status"] = "ACTIVE"
		v["status_description"] = nil
		return v
	})
	d.create = h.createPool
	d.update = h.updatePool
	d.del = h.deletePool
	d.action = h.poolAction
	return d
}

func (h *handler) createPool(rc *reqCtx) (model.Record, error) {
	var req poolReq
	project, err := readCreate(rc, "pool", &req)
	if err != nil {
		return nil, err
	}
	if req.SubnetID.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'subnet_id' not specified")
	}
	if !lbProtocols[req.Protocol.V] {
		return nil, invalidInput("protocol", "'%s' is not in ['TCP', 'HTTP', 'HTTPS']", req.Protocol.V)
	}
	if !lbMethods[req.LBMethod.V] {
		return nil, invalidInput("lb_method", "'%s' is not in ['ROUND_ROBIN', 'LEAST_CONNECTIONS', 'SOURCE_IP']", req.LBMethod.V)
	}
	if req.Provider.Set && !req.Provider.Null && req.Provider.V != "" && req.Provider.V != lbProvider {
		return nil, invalidInput("provider", "provider '%s' is not available (only '%s')", req.Provider.V, lbProvider)
	}
	p := &model.LBPool{SubnetID: req.SubnetID.V, Protocol: req.Protocol.V, LBMethod: req.LBMethod.V, AdminStateUp: true,
		HealthMonitorIDs: []string{}}
	stamp(&p.Base, newID(), project, req.Name, req.Description)
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		p.AdminStateUp = req.AdminStateUp.V
	}
	err = h.txn(rc, func(tx *store.Tx) error {
		s, err := txGet[*model.Subnet](tx, model.KindSubnet, p.SubnetID)
		if err != nil {
			return err
		}
		if s == nil || !h.defs["subnets"].isVisible(rc, s) {
			return notFound("SubnetNotFound", "Subnet", p.SubnetID)
		}
		tx.PutRaw(refKey(refSubnetPools, s.ID, p.ID), p.ID)
		return tx.Put(p)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (h *handler) updatePool(rc *reqCtx, id string) (model.Record, error) {
	var req poolReq
	if err := readNamed(rc, "pool", &req, "tenant_id", "project_id", "subnet_id", "protocol", "provider"); err != nil {
		return nil, err
	}
	if req.LBMethod.Set && !lbMethods[req.LBMethod.V] {
		return nil, invalidInput("lb_method", "'%s' is not in ['ROUND_ROBIN', 'LEAST_CONNECTIONS', 'SOURCE_IP']", req.LBMethod.V)
	}
	p, err := ownedTxn(h, rc, "lb/pools", id, func(tx *store.Tx, p *model.LBPool) error {
		setNameDesc(&p.Base, req.Name, req.Description)
		if req.LBMethod.Set {
			p.LBMethod = req.LBMethod.V
		}
		if req.AdminStateUp.Set && !req.AdminStateUp.Null {
			p.AdminStateUp = req.AdminStateUp.V
		}
		touch(&p.Base)
		return tx.Put(p)
	})
	return p, err
}

func (h *handler) deletePool(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "lb/pools", id, func(p *model.LBPool, rev int64) (*plan, error) {
		if p.VIPID != "" {
			return nil, conflict("PoolInUse", "Pool %s is still in use", id)
		}
		pl := &plan{}
		pl.delRecord(model.KindPool, id, rev)
		if err := h.delChildren(rc, pl, refPrefix(refPoolMembers, id), model.KindMember); err != nil {
			return nil, err
		}
		for _, hm := range p.HealthMonitorIDs {
			pl.del(refKey(refHMPools, hm, id))
		}
		pl.del(refKey(refSubnetPools, p.SubnetID, id))
		return pl, nil
	})
}

// poolAction serves /lb/pools/{id}/health_monitors[/{hm}] and /stats.
func (h *handler) poolAction(rc *reqCtx, id string, rest []string) (int, any, error) {
	d := h.defs["lb/pools"]
	switch {
	case len(rest) == 1 && rest[0] == "stats" && rc.r.Method == http.MethodGet:
		if _, err := h.lookup(rc, d, id); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"stats": map[string]any{"bytes_in": 0, "bytes_out": 0,
			"active_connections": 0, "total_connections": 0}}, nil
	case len(rest) == 1 && rest[0] == "health_monitors" && rc.r.Method == http.MethodPost:
		var req struct {
			ID        oStr `json:"id"`
			TenantID  oStr `json:"tenant_id"`
			ProjectID oStr `json:"project_id"`
		}
		if _, err := readBody(rc, "health_monitor", &req); err != nil {
			return 0, nil, err
		}
		if req.ID.V == "" {
			return 0, nil, badRequest("Failed to parse request. Required attribute 'id' not specified")
		}
		hmd := h.defs["lb/health_monitors"]
		_, err := ownedTxn(h, rc, "lb/pools", id, func(tx *store.Tx, p *model.LBPool) error {
			hm, err := txGet[*model.LBHealthMonitor](tx, model.KindHealthMonitor, req.ID.V)
			if err != nil {
				return err
			}
			if err := rc.checkOwner(hmd, hm, req.ID.V); err != nil {
				return err
			}
			for _, x := range p.HealthMonitorIDs {
				if x == hm.ID {
					return conflict("PoolMonitorAssociationExists", "health_monitor %s is already associated with pool %s", hm.ID, p.ID)
				}
			}
			p.HealthMonitorIDs = append(p.HealthMonitorIDs, hm.ID)
			touch(&p.Base)
			tx.PutRaw(refKey(refHMPools, hm.ID, p.ID), p.ID)
			return tx.Put(p)
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, map[string]any{"health_monitor": map[string]any{"id": req.ID.V}}, nil
	case len(rest) == 2 && rest[0] == "health_monitors" && rc.r.Method == http.MethodDelete:
		hmID := rest[1]
		_, err := ownedTxn(h, rc, "lb/pools", id, func(tx *store.Tx, p *model.LBPool) error {
			var keep []string
			found := false
			for _, x := range p.HealthMonitorIDs {
				if x == hmID {
					found = true
				} else {
					keep = append(keep, x)
				}
			}
			if !found {
				return errf(404, "PoolMonitorAssociationNotFound", "Monitor %s is not associated with Pool %s", hmID, id)
			}
			if keep == nil {
				keep = []string{}
			}
			p.HealthMonitorIDs = keep
			touch(&p.Base)
			tx.DelRaw(refKey(refHMPools, hmID, p.ID))
			return tx.Put(p)
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusNoContent, nil, nil
	case len(rest) <= 2 && len(rest) >= 1 && (rest[0] == "health_monitors" || rest[0] == "stats"):
		return 0, nil, methodNotAllowed()
	}
	return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
}

// ---- VIPs ----

type vipReq struct {
	nameAttrs
	ownerAttrs
	SubnetID           oStr  `json:"subnet_id"`
	Address            oStr  `json:"address"`
	ProtocolPort       oInt  `json:"protocol_port"`
	Protocol           oStr  `json:"protocol"`
	PoolID             oStr  `json:"pool_id"`
	AdminStateUp       oBool `json:"admin_state_up"`
	ConnectionLimit    oInt  `json:"connection_limit"`
	SessionPersistence oRaw  `json:"session_persistence"`
}

func (h *handler) vipDef() *resDef {
	d := &resDef{singular: "vip", plural: "vips", path: "lb/vips", kind: model.KindVIP,
		what: "Vip", notFoundType: "VipNotFound",
		attrs: attrSet("subnet_id address port_id protocol_port protocol pool_id admin_state_up connection_limit " +
			"session_persistence status status_description"),
	}
	d.views = viewsWith(func(rc *reqCtx) (map[string]map[string]any, error) {
		return h.extras(rc, model.KindVIP)
	}, func(rc *reqCtx, ex map[string]map[string]any, vp *model.LBVIP) map[string]any {
		v := baseView(vp)
		v["connection_limit"] = -1
		v["session_persistence"] = nil
		for k, x := range ex[vp.ID] {
			v[k] = x
		}
		v["status"] = "ACTIVE"
		v["status_description"] = nil
		return v
	})
	d.create = h.createVIP
	d.update = h.updateVIP
	d.del = h.deleteVIP
	return d
}

func parsePersistence(o oRaw) (any, error) {
	if o.Null {
		return nil, nil
	}
	var m map[string]any
	if err := decodeRaw("session_persistence", o, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if k != "type" && k != "cookie_name" {
			return nil, invalidInput("session_persistence", "Unrecognized key '%s'", k)
		}
	}
	t, _ := m["type"].(string)
	switch t {
	case "SOURCE_IP", "HTTP_COOKIE":
	case "APP_COOKIE":
		if c, _ := m["cookie_name"].(string); c == "" {
			return nil, invalidInput("session_persistence", "APP_COOKIE needs a cookie_name")
		}
	default:
		return nil, invalidInput("session_persistence", "type '%s' is not in ['SOURCE_IP', 'HTTP_COOKIE', 'APP_COOKIE']", t)
	}
	return m, nil
}

func (h *handler) createVIP(rc *reqCtx) (model.Record, error) {
	var req vipReq
	project, err := readCreate(rc, "vip", &req)
	if err != nil {
		return nil, err
	}
	for _, x := range []struct {
		name string
		o    oStr
	}{{"subnet_id", req.SubnetID}, {"pool_id", req.PoolID}} {
		if x.o.V == "" {
			return nil, badRequest("Failed to parse request. Required attribute '%s' not specified", x.name)
		}
	}
	if !lbProtocols[req.Protocol.V] {
		return nil, invalidInput("protocol", "'%s' is not in ['TCP', 'HTTP', 'HTTPS']", req.Protocol.V)
	}
	if !req.ProtocolPort.Set || req.ProtocolPort.V < 1 || req.ProtocolPort.V > 65535 {
		return nil, invalidInput("protocol_port", "'%d' is not a valid port number (1-65535)", req.ProtocolPort.V)
	}
	extra := map[string]any{"connection_limit": -1, "session_persistence": nil}
	if req.ConnectionLimit.Set && !req.ConnectionLimit.Null {
		if req.ConnectionLimit.V < -1 {
			return nil, invalidInput("connection_limit", "'%d' is too small - must be at least '-1'", req.ConnectionLimit.V)
		}
		extra["connection_limit"] = req.ConnectionLimit.V
	}
	if req.SessionPersistence.Set {
		sp, err := parsePersistence(req.SessionPersistence)
		if err != nil {
			return nil, err
		}
		extra["session_persistence"] = sp
	}
	var addr string
	if req.Address.Set && !req.Address.Null && req.Address.V != "" {
		u, ok := ip4(req.Address.V)
		if !ok {
			return nil, invalidInput("address", "'%s' is not a valid IP address", req.Address.V)
		}
		addr = ipString(u)
	}
	v := &model.LBVIP{SubnetID: req.SubnetID.V, ProtocolPort: req.ProtocolPort.V, Protocol: req.Protocol.V,
		PoolID: req.PoolID.V, AdminStateUp: true}
	stamp(&v.Base, newID(), project, req.Name, req.Description)
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		v.AdminStateUp = req.AdminStateUp.V
	}
	pd := h.defs["lb/pools"]
	err = h.txn(rc, func(tx *store.Tx) error {
		p, err := txGet[*model.LBPool](tx, model.KindPool, v.PoolID)
		if err != nil {
			return err
		}
		if p == nil || !pd.isVisible(rc, p) || (p.ProjectID != project && !rc.admin) {
			return notFound("PoolNotFound", "Pool", v.PoolID)
		}
		if p.VIPID != "" {
			return conflict("VipExists", "Another Vip already exists for pool %s", p.ID)
		}
		if p.Protocol != v.Protocol {
			return badRequest("Protocol %s does not match pool protocol %s", v.Protocol, p.Protocol)
		}
		s, err := txGet[*model.Subnet](tx, model.KindSubnet, v.SubnetID)
		if err != nil {
			return err
		}
		if s == nil || !h.defs["subnets"].isVisible(rc, s) {
			return notFound("SubnetNotFound", "Subnet", v.SubnetID)
		}
		// A chosen address is create_port:fixed_ips:ip_address: the
		// network's owner's (or an admin's) on a shared network.
		if addr != "" {
			if err := h.ownsNetworkTx(rc, tx, s.NetworkID, "create_port:fixed_ips:ip_address"); err != nil {
				return err
			}
		}
		reqs := []fixedReq{{SubnetID: s.ID, IPAddress: addr}}
		port, err := h.newInternalPort(rc, tx, project, s.NetworkID, ownerLBVIP, v.ID, reqs)
		if err != nil {
			return err
		}
		v.PortID, v.Address = port.ID, port.FixedIPs[0].IPAddress
		p.VIPID = v.ID
		touch(&p.Base)
		if err := tx.Put(p); err != nil {
			return err
		}
		txPutExtra(tx, model.KindVIP, v.ID, extra)
		return tx.Put(v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (h *handler) updateVIP(rc *reqCtx, id string) (model.Record, error) {
	var req vipReq
	if err := readNamed(rc, "vip", &req, "tenant_id", "project_id", "subnet_id", "address", "protocol_port", "protocol"); err != nil {
		return nil, err
	}
	if req.ConnectionLimit.Set && !req.ConnectionLimit.Null && req.ConnectionLimit.V < -1 {
		return nil, invalidInput("connection_limit", "'%d' is too small - must be at least '-1'", req.ConnectionLimit.V)
	}
	var sp any
	if req.SessionPersistence.Set {
		var err error
		if sp, err = parsePersistence(req.SessionPersistence); err != nil {
			return nil, err
		}
	}
	v, err := ownedTxn(h, rc, "lb/vips", id, func(tx *store.Tx, v *model.LBVIP) error {
		setNameDesc(&v.Base, req.Name, req.Description)
		if req.AdminStateUp.Set && !req.AdminStateUp.Null {
			v.AdminStateUp = req.AdminStateUp.V
		}
		if req.PoolID.Set && req.PoolID.V != v.PoolID {
			np, err := txGet[*model.LBPool](tx, model.KindPool, req.PoolID.V)
			if err != nil {
				return err
			}
			if np == nil || !rc.owns(np.ProjectID) {
				return notFound("PoolNotFound", "Pool", req.PoolID.V)
			}
			if np.VIPID != "" {
				return conflict("VipExists", "Another Vip already exists for pool %s", np.ID)
			}
			if np.Protocol != v.Protocol {
				return badRequest("Protocol %s does not match pool protocol %s", v.Protocol, np.Protocol)
			}
			if op, err := txGet[*model.LBPool](tx, model.KindPool, v.PoolID); err != nil {
				return err
			} else if op != nil {
				op.VIPID = ""
				touch(&op.Base)
				if err := tx.Put(op); err != nil {
					return err
				}
			}
			np.VIPID = v.ID
			touch(&np.Base)
			if err := tx.Put(np); err != nil {
				return err
			}
			v.PoolID = np.ID
		}
		ex := txGetExtra(tx, model.KindVIP, v.ID)
		if req.ConnectionLimit.Set && !req.ConnectionLimit.Null {
			ex["connection_limit"] = req.ConnectionLimit.V
		}
		if req.SessionPersistence.Set {
			ex["session_persistence"] = sp
		}
		txPutExtra(tx, model.KindVIP, v.ID, ex)
		touch(&v.Base)
		return tx.Put(v)
	})
	return v, err
}

func (h *handler) deleteVIP(rc *reqCtx, id string) error {
	_, err := ownedTxn(h, rc, "lb/vips", id, func(tx *store.Tx, v *model.LBVIP) error {
		if p, err := txGet[*model.Port](tx, model.KindPort, v.PortID); err != nil {
			return err
		} else if p != nil {
			if err := h.disassociatePortFIPs(tx, p.ID); err != nil {
				return err
			}
			releasePortTx(tx, p)
		}
		if p, err := txGet[*model.LBPool](tx, model.KindPool, v.PoolID); err != nil {
			return err
		} else if p != nil && p.VIPID == v.ID {
			p.VIPID = ""
			touch(&p.Base)
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		tx.DelRaw(extraKey(model.KindVIP, id))
		tx.Delete(model.KindVIP, id)
		return nil
	})
	return err
}

// ---- members ----

type memberReq struct {
	ownerAttrs
	PoolID       oStr  `json:"pool_id"`
	Address      oStr  `json:"address"`
	ProtocolPort oInt  `json:"protocol_port"`
	Weight       oInt  `json:"weight"`
	AdminStateUp oBool `json:"admin_state_up"`
}

func (h *handler) memberDef() *resDef {
	d := &resDef{singular: "member", plural: "members", path: "lb/members", kind: model.KindMember,
		what: "Member", notFoundType: "MemberNotFound",
		attrs: attrSet("pool_id address protocol_port weight admin_state_up status status_description"),
	}
	d.views = viewsOf(func(rc *reqCtx, r *model.LBMember) map[string]any {
		v := baseView(r)
		delete(v, "name")
		delete(v, "description")
		if v["status"] == nil {
			v["status"] = "ACTIVE"
		}
		v["status_description"] = nil
		return v
	})
	d.create = h.createMember
	d.update = h.updateMember
	d.del = h.deleteMember
	return d
}

func (h *handler) memberPoolTx(rc *reqCtx, tx *store.Tx, m *model.LBMember, pool string) error {
	p, err := txGet[*model.LBPool](tx, model.KindPool, pool)
	if err != nil {
		return err
	}
	if p == nil || !h.defs["lb/pools"].isVisible(rc, p) || (p.ProjectID != m.ProjectID && !rc.admin) {
		return notFound("PoolNotFound", "Pool", pool)
	}
	kvs, _, err := h.listRaw(rc, refPrefix(refPoolMembers, pool))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		o, err := txGet[*model.LBMember](tx, model.KindMember, kv.val)
		if err != nil {
			return err
		}
		if o != nil && o.ID != m.ID && o.Address == m.Address && o.ProtocolPort == m.ProtocolPort {
			return conflict("MemberExists", "Member with address %s and port %d already present in pool %s", m.Address, m.ProtocolPort, pool)
		}
	}
	if m.PoolID != "" && m.PoolID != pool {
		tx.DelRaw(refKey(refPoolMembers, m.PoolID, m.ID))
	}
	m.PoolID = pool
	tx.PutRaw(refKey(refPoolMembers, pool, m.ID), m.ID)
	// Bumping the pool serializes member changes on it (duplicate check).
	touch(&p.Base)
	return tx.Put(p)
}

func (h *handler) createMember(rc *reqCtx) (model.Record, error) {
	var req memberReq
	project, err := readCreate(rc, "member", &req)
	if err != nil {
		return nil, err
	}
	if req.PoolID.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'pool_id' not specified")
	}
	u, ok := ip4(req.Address.V)
	if !ok {
		return nil, invalidInput("address", "'%s' is not a valid IP address", req.Address.V)
	}
	if !req.ProtocolPort.Set || req.ProtocolPort.V < 1 || req.ProtocolPort.V > 65535 {
		return nil, invalidInput("protocol_port", "'%d' is not a valid port number (1-65535)", req.ProtocolPort.V)
	}
	m := &model.LBMember{Address: ipString(u), ProtocolPort: req.ProtocolPort.V, Weight: 1, AdminStateUp: true, Status: "ACTIVE"}
	if req.Weight.Set && !req.Weight.Null {
		if req.Weight.V < 0 || req.Weight.V > 256 {
			return nil, invalidInput("weight", "'%d' is not in the range 0-256", req.Weight.V)
		}
		m.Weight = req.Weight.V
	}
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		m.AdminStateUp = req.AdminStateUp.V
	}
	stamp(&m.Base, newID(), project, oStr{}, oStr{})
	err = h.txn(rc, func(tx *store.Tx) error {
		m.PoolID = ""
		if err := h.memberPoolTx(rc, tx, m, req.PoolID.V); err != nil {
			return err
		}
		return tx.Put(m)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (h *handler) updateMember(rc *reqCtx, id string) (model.Record, error) {
	var req memberReq
	if err := readNamed(rc, "member", &req, "tenant_id", "project_id", "address", "protocol_port"); err != nil {
		return nil, err
	}
	if req.Weight.Set && (req.Weight.V < 0 || req.Weight.V > 256) {
		return nil, invalidInput("weight", "'%d' is not in the range 0-256", req.Weight.V)
	}
	m, err := ownedTxn(h, rc, "lb/members", id, func(tx *store.Tx, m *model.LBMember) error {
		if req.Weight.Set && !req.Weight.Null {
			m.Weight = req.Weight.V
		}
		if req.AdminStateUp.Set && !req.AdminStateUp.Null {
			m.AdminStateUp = req.AdminStateUp.V
		}
		if req.PoolID.Set && req.PoolID.V != m.PoolID {
			if err := h.memberPoolTx(rc, tx, m, req.PoolID.V); err != nil {
				return err
			}
		}
		touch(&m.Base)
		return tx.Put(m)
	})
	return m, err
}

func (h *handler) deleteMember(rc *reqCtx, id string) error {
	_, err := ownedTxn(h, rc, "lb/members", id, func(tx *store.Tx, m *model.LBMember) error {
		tx.DelRaw(refKey(refPoolMembers, m.PoolID, m.ID))
		tx.Delete(model.KindMember, id)
		return nil
	})
	return err
}

// ---- health monitors ----

type hmReq struct {
	ownerAttrs
	Type          oStr  `json:"type"`
	Delay         oInt  `json:"delay"`
	Timeout       oInt  `json:"timeout"`
	MaxRetries    oInt  `json:"max_retries"`
	HTTPMethod    oStr  `json:"http_method"`
	URLPath       oStr  `json:"url_path"`
	ExpectedCodes oStr  `json:"expected_codes"`
	AdminStateUp  oBool `json:"admin_state_up"`
}

func (h *handler) healthMonitorDef() *resDef {
	d := &resDef{singular: "health_monitor", plural: "health_monitors", path: "lb/health_monitors",
		kind: model.KindHealthMonitor, what: "Health_monitor", notFoundType: "HealthMonitorNotFound",
		attrs: attrSet("type delay timeout max_retries http_method url_path expected_codes admin_state_up pools status status_description"),
	}
	d.views = viewsWith(func(rc *reqCtx) (map[string][]any, error) {
		pools, err := listT[*model.LBPool](h, rc, model.KindPool)
		if err != nil {
			return nil, err
		}
		byHM := map[string][]any{}
		for _, p := range pools {
			for _, hm := range p.HealthMonitorIDs {
				byHM[hm] = append(byHM[hm], map[string]any{"pool_id": p.ID, "status": "ACTIVE", "status_description": nil})
			}
		}
		return byHM, nil
	}, func(rc *reqCtx, byHM map[string][]any, hm *model.LBHealthMonitor) map[string]any {
		v := baseView(hm)
		delete(v, "name")
		delete(v, "description")
		v["pools"] = append([]any{}, byHM[hm.ID]...)
		v["status"] = "ACTIVE"
		v["status_description"] = nil
		if hm.Type == "PING" || hm.Type == "TCP" {
			delete(v, "http_method")
			delete(v, "url_path")
			delete(v, "expected_codes")
		}
		return v
	})
	d.create = h.createHM
	d.update = h.updateHM
	d.del = h.deleteHM
	return d
}

func (req *hmReq) apply(hm *model.LBHealthMonitor) error {
	if req.Delay.Set && !req.Delay.Null {
		if req.Delay.V < 0 {
			return invalidInput("delay", "'%d' should be non-negative", req.Delay.V)
		}
		hm.Delay = req.Delay.V
	}
	if req.Timeout.Set && !req.Timeout.Null {
		if req.Timeout.V < 0 {
			return invalidInput("timeout", "'%d' should be non-negative", req.Timeout.V)
		}
		hm.Timeout = req.Timeout.V
	}
	if req.MaxRetries.Set && !req.MaxRetries.Null {
		if req.MaxRetries.V < 1 || req.MaxRetries.V > 10 {
			return invalidInput("max_retries", "'%d' is not in range 1 through 10", req.MaxRetries.V)
		}
		hm.MaxRetries = req.MaxRetries.V
	}
	if req.HTTPMethod.Set && !req.HTTPMethod.Null {
		m := strings.ToUpper(req.HTTPMethod.V)
		switch m {
		case "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH":
		default:
			return invalidInput("http_method", "'%s' is not a valid HTTP method", req.HTTPMethod.V)
		}
		hm.HTTPMethod = m
	}
	if req.URLPath.Set && !req.URLPath.Null {
		if !strings.HasPrefix(req.URLPath.V, "/") || len(req.URLPath.V) > 255 {
			return invalidInput("url_path", "'%.40s' is not a valid URL path", req.URLPath.V)
		}
		hm.URLPath = req.URLPath.V
	}
	if req.ExpectedCodes.Set && !req.ExpectedCodes.Null {
		if !validCodes(req.ExpectedCodes.V) {
			return invalidInput("expected_codes", "'%.40s' is not a valid list or range of HTTP codes", req.ExpectedCodes.V)
		}
		hm.ExpectedCodes = req.ExpectedCodes.V
	}
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		hm.AdminStateUp = req.AdminStateUp.V
	}
	if hm.Delay < hm.Timeout {
		return invalidInput("delay", "delay must be greater than or equal to timeout")
	}
	return nil
}

func validCodes(s string) bool {
	if s == "" {
		return false
	}
	code := func(c string) bool {
		if len(c) != 3 {
			return false
		}
		for _, r := range c {
			if r < '0' || r > '9' {
				return false
			}
		}
		return c[0] >= '1' && c[0] <= '5'
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		return code(a) && code(b) && a <= b
	}
	for _, c := range strings.Split(s, ",") {
		if !code(strings.TrimSpace(c)) {
			return false
		}
	}
	return true
}

func (h *handler) createHM(rc *reqCtx) (model.Record, error) {
	var req hmReq
	project, err := readCreate(rc, "health_monitor", &req)
	if err != nil {
		return nil, err
	}
	switch req.Type.V {
	case "PING", "TCP", "HTTP", "HTTPS":
	default:
		return nil, invalidInput("type", "'%s' is not in ['PING', 'TCP', 'HTTP', 'HTTPS']", req.Type.V)
	}
	for _, x := range []struct {
		n string
		o oInt
	}{{"delay", req.Delay}, {"timeout", req.Timeout}, {"max_retries", req.MaxRetries}} {
		if !x.o.Set || x.o.Null {
			return nil, badRequest("Failed to parse request. Required attribute '%s' not specified", x.n)
		}
	}
	hm := &model.LBHealthMonitor{Type: req.Type.V, AdminStateUp: true, HTTPMethod: "GET", URLPath: "/", ExpectedCodes: "200"}
	if err := req.apply(hm); err != nil {
		return nil, err
	}
	stamp(&hm.Base, newID(), project, oStr{}, oStr{})
	err = h.txn(rc, func(tx *store.Tx) error { return tx.Put(hm) })
	if err != nil {
		return nil, err
	}
	return hm, nil
}

func (h *handler) updateHM(rc *reqCtx, id string) (model.Record, error) {
	var req hmReq
	if err := readNamed(rc, "health_monitor", &req, "tenant_id", "project_id", "type"); err != nil {
		return nil, err
	}
	hm, err := ownedTxn(h, rc, "lb/health_monitors", id, func(tx *store.Tx, hm *model.LBHealthMonitor) error {
		if err := req.apply(hm); err != nil {
			return err
		}
		touch(&hm.Base)
		return tx.Put(hm)
	})
	return hm, err
}

func (h *handler) deleteHM(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "lb/health_monitors", id, func(hm *model.LBHealthMonitor, rev int64) (*plan, error) {
		pools, prev, err := h.listRaw(rc, refPrefix(refHMPools, id))
		if err != nil {
			return nil, err
		}
		pl := &plan{}
		pl.delRecord(model.KindHealthMonitor, id, rev)
		pl.unchangedSince(refPrefix(refHMPools, id), prev)
		for _, kv := range pools {
			p, rev, err := getT[*model.LBPool](h, rc, model.KindPool, kv.val)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			keep := []string{}
			for _, x := range p.HealthMonitorIDs {
				if x != id {
					keep = append(keep, x)
				}
			}
			p.HealthMonitorIDs = keep
			touch(&p.Base)
			if err := pl.putRecord(p, rev); err != nil {
				return nil, err
			}
		}
		pl.delPrefix(refPrefix(refHMPools, id))
		return pl, nil
	})
}
