package northbound

import (
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

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
		v["status"] = h.vipStatus(rc, vp)
		v["status_description"] = nil
		return v
	})
	d.create = h.createVIP
	d.update = h.updateVIP
	d.del = h.deleteVIP
	return d
}

// maxCookieName bounds session_persistence's cookie_name (Neutron
// LBaaS's column is 1024 characters).
const maxCookieName = 1024

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
	if c, ok := m["cookie_name"]; ok && c != nil {
		if s, isStr := c.(string); !isStr || len(s) > maxCookieName {
			return nil, invalidInput("session_persistence", "cookie_name must be a string of at most %d characters", maxCookieName)
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

// persistenceModel is the model's copy of a parsed session_persistence
// (what app/lb reads; the API view keeps the extra attribute).
func persistenceModel(sp any) *model.SessionPersistence {
	m, ok := sp.(map[string]any)
	if !ok || m == nil {
		return nil
	}
	t, _ := m["type"].(string)
	c, _ := m["cookie_name"].(string)
	return &model.SessionPersistence{Type: t, CookieName: c}
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
	v.SessionPersistence = persistenceModel(extra["session_persistence"])
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
			v.SessionPersistence = persistenceModel(sp)
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
