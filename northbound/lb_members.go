package northbound

import (
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

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
