package northbound

import (
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

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
