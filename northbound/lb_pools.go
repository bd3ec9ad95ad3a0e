package northbound

import (
	"encoding/json"
	"net/http"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
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
		r, err := h.lookup(rc, d, id)
		if err != nil {
			return 0, nil, err
		}
		st, err := h.poolStats(rc, r.(*model.LBPool))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"stats": st}, nil
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

// poolStats are a pool's LBaaS v1 statistics, summed from every switch's
// published flow counters (store.SwitchCounters) of its VIP's counted
// flows (pipeline.CounterIn, CounterOut, CounterNew; app/lb names them):
// bytes_in from clients to the VIP, bytes_out from members back through
// it, total_connections the new connections balanced. As of each
// switch's master's last full reconcile pass (reconcile.interval, 30 s
// by default). active_connections is the sum of the VIP's ESTABLISHED
// connections each chassis's node agent counted in its conntrack
// (store.LBConns, every 10 s by default). A pool without a VIP has
// carried nothing: zeros.
func (h *handler) poolStats(rc *reqCtx, p *model.LBPool) (map[string]any, error) {
	st := map[string]any{"bytes_in": uint64(0), "bytes_out": uint64(0), "active_connections": 0, "total_connections": uint64(0)}
	if p.VIPID == "" {
		return st, nil
	}
	kvs, _, err := h.listRaw(rc, store.SwitchCountersPrefix)
	if err != nil {
		return nil, err
	}
	o := pipeline.ObjectID(p.VIPID)
	in, out, conns := pipeline.CounterKey(o, pipeline.CounterIn), pipeline.CounterKey(o, pipeline.CounterOut), pipeline.CounterKey(o, pipeline.CounterNew)
	var bin, bout, n uint64
	for _, kv := range kvs {
		var c store.SwitchCounters
		if err := json.Unmarshal([]byte(kv.val), &c); err != nil {
			h.log.Warn("northbound: unreadable switch counters", "key", kv.key, "err", err)
			continue
		}
		bin += c.Counters[in].Bytes
		bout += c.Counters[out].Bytes
		n += c.Counters[conns].Packets
	}
	st["bytes_in"], st["bytes_out"], st["total_connections"] = bin, bout, n
	kvs, _, err = h.listRaw(rc, store.LBConnsPrefix)
	if err != nil {
		return nil, err
	}
	active := 0
	for _, kv := range kvs {
		var c store.LBConns
		if err := json.Unmarshal([]byte(kv.val), &c); err != nil {
			h.log.Warn("northbound: unreadable load balancer connection counts", "key", kv.key, "err", err)
			continue
		}
		active += c.VIPs[p.VIPID]
	}
	st["active_connections"] = active
	return st, nil
}
