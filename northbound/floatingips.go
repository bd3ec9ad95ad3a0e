package northbound

import (
	"encoding/json"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// ---- floating IPs ----

type fipReq struct {
	ownerAttrs
	Description oStr `json:"description"`
	NetworkID   oStr `json:"floating_network_id"`
	Address     oStr `json:"floating_ip_address"`
	SubnetID    oStr `json:"subnet_id"`
	PortID      oStr `json:"port_id"`
	FixedIP     oStr `json:"fixed_ip_address"`
}

func (r *fipReq) nameDesc() (oStr, oStr) { return oStr{}, r.Description }

func (h *handler) floatingIPDef() *resDef {
	d := &resDef{singular: "floatingip", plural: "floatingips", path: "floatingips", kind: model.KindFloatingIP,
		what: "Floating IP", notFoundType: "FloatingIPNotFound",
		attrs: attrSet("floating_network_id floating_ip_address floating_port_id port_id fixed_ip_address router_id status"),
	}
	d.views = viewsOf(func(rc *reqCtx, f *model.FloatingIP) map[string]any {
		v := baseView(f, "port_id", "fixed_ip_address", "router_id", "floating_port_id")
		v["status"] = h.fipStatus(rc, f) // from the data plane (status.go)
		delete(v, "name")
		delete(v, "floating_port_id")
		zeroBasedRevision(v)
		// port_details: the associated port's summary (recorded: fip-show).
		v["port_details"] = nil
		if f.PortID != "" {
			if p, _, err := getT[*model.Port](h, rc, model.KindPort, f.PortID); err == nil && !isNil(p) {
				st := p.Status
				if s, ok := h.portStatus(rc, p); ok {
					st = s
				}
				if st == "" {
					st = "DOWN"
				}
				v["port_details"] = map[string]any{"admin_state_up": p.AdminStateUp, "device_id": p.DeviceID,
					"device_owner": p.DeviceOwner, "mac_address": p.MACAddress, "name": p.Name,
					"network_id": p.NetworkID, "status": st}
			}
		}
		return v
	})
	d.create = h.createFIP
	d.update = h.updateFIP
	d.del = h.deleteFIP
	return d
}

// associateTx points floating IP f at port portID (fixed address ip, or
// the port's first one) through a router that connects the two.
func (h *handler) associateTx(rc *reqCtx, tx *store.Tx, f *model.FloatingIP, portID, ip string) error {
	p, err := txGet[*model.Port](tx, model.KindPort, portID)
	if err != nil {
		return err
	}
	if p == nil || (!rc.admin && p.ProjectID != rc.project) || (p.ProjectID != f.ProjectID && !rc.admin) {
		return notFound("PortNotFound", "Port", portID)
	}
	if p.NetworkID == f.FloatingNetworkID {
		return badRequest("Bad floatingip request: Port %s is on the external network %s.", p.ID, f.FloatingNetworkID)
	}
	var fixed *model.FixedIP
	for i := range p.FixedIPs {
		if ip == "" || p.FixedIPs[i].IPAddress == ip {
			fixed = &p.FixedIPs[i]
			break
		}
	}
	if fixed == nil {
		if ip != "" {
			return badRequest("Bad floatingip request: Port %s does not have fixed ip %s.", p.ID, ip)
		}
		return badRequest("Bad floatingip request: Port %s does not have any IP addresses.", p.ID)
	}
	// A router with a gateway on the floating network and an interface
	// on the fixed address's subnet.
	routers, err := listT[*model.Router](h, rc, model.KindRouter)
	if err != nil {
		return err
	}
	routerID := ""
	for _, cand := range routers {
		if cand.Gateway == nil || cand.Gateway.NetworkID != f.FloatingNetworkID {
			continue
		}
		rt, err := txGet[*model.Router](tx, model.KindRouter, cand.ID)
		if err != nil {
			return err
		}
		if rt == nil || rt.Gateway == nil || rt.Gateway.NetworkID != f.FloatingNetworkID {
			continue
		}
		for ip, err := range routerPorts(tx, rt) {
			if err != nil {
				return err
			}
			for _, x := range ip.FixedIPs {
				if x.SubnetID == fixed.SubnetID {
					routerID = rt.ID
				}
			}
		}
		if routerID != "" {
			break
		}
	}
	if routerID == "" {
		return errf(404, "ExternalGatewayForFloatingIPNotFound", "External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.",
			f.FloatingNetworkID, fixed.SubnetID, p.ID)
	}
	m := map[string]string{}
	if v := tx.GetRaw(fipAssocKey(p.ID)); v != "" {
		json.Unmarshal([]byte(v), &m)
	}
	if other := m[fixed.IPAddress]; other != "" && other != f.ID {
		return conflict("FloatingIPPortAlreadyAssociated", "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
			f.FloatingIPAddress, f.ID, p.ID, fixed.IPAddress, f.FloatingNetworkID)
	}
	m[fixed.IPAddress] = f.ID
	b, _ := json.Marshal(m)
	tx.PutRaw(fipAssocKey(p.ID), string(b))
	tx.PutRaw(refKey(refRouterFIPs, routerID, f.ID), f.ID)
	f.PortID, f.FixedIPAddress, f.RouterID = p.ID, fixed.IPAddress, routerID
	return nil
}

func disassociateTx(tx *store.Tx, f *model.FloatingIP) {
	if f.PortID == "" {
		return
	}
	m := map[string]string{}
	if v := tx.GetRaw(fipAssocKey(f.PortID)); v != "" {
		json.Unmarshal([]byte(v), &m)
	}
	delete(m, f.FixedIPAddress)
	if len(m) == 0 {
		tx.DelRaw(fipAssocKey(f.PortID))
	} else {
		b, _ := json.Marshal(m)
		tx.PutRaw(fipAssocKey(f.PortID), string(b))
	}
	if f.RouterID != "" {
		tx.DelRaw(refKey(refRouterFIPs, f.RouterID, f.ID))
	}
	f.PortID, f.FixedIPAddress, f.RouterID = "", "", ""
}

func (h *handler) createFIP(rc *reqCtx) (model.Record, error) {
	var req fipReq
	project, err := readCreate(rc, "floatingip", &req)
	if err != nil {
		return nil, err
	}
	if !req.NetworkID.Set || req.NetworkID.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'floating_network_id' not specified")
	}
	if req.Address.Set && !req.Address.Null && req.Address.V != "" {
		if !rc.admin {
			return nil, forbidden("(rule:create_floatingip:floating_ip_address) is disallowed by policy")
		}
		if _, ok := ip4(req.Address.V); !ok {
			return nil, invalidInput("floating_ip_address", "'%s' is not a valid IP address", req.Address.V)
		}
	}
	if req.FixedIP.Set && !req.FixedIP.Null && req.FixedIP.V != "" {
		if _, ok := ip4(req.FixedIP.V); !ok {
			return nil, invalidInput("fixed_ip_address", "'%s' is not a valid IP address", req.FixedIP.V)
		}
	}
	f := &model.FloatingIP{FloatingNetworkID: req.NetworkID.V}
	stamp(&f.Base, newID(), project, oStr{}, req.Description)
	err = h.txn(rc, func(tx *store.Tx) error {
		if err := claimQuota(tx, project, "floatingip"); err != nil {
			return err
		}
		f.PortID, f.FixedIPAddress, f.RouterID = "", "", ""
		n, err := externalNetTx(tx, f.FloatingNetworkID, "Bad floatingip request: Network %s is not a valid external network.")
		if err != nil {
			return err
		}
		var reqs []fixedReq
		if req.SubnetID.V != "" || req.Address.V != "" {
			reqs = []fixedReq{{SubnetID: req.SubnetID.V, IPAddress: req.Address.V}}
		}
		fp, err := h.newInternalPort(rc, tx, "", n.ID, ownerFloatingIP, f.ID, reqs)
		if err != nil {
			return err
		}
		f.FloatingPortID = fp.ID
		f.FloatingIPAddress = fp.FixedIPs[0].IPAddress
		if req.PortID.V != "" {
			if err := h.associateTx(rc, tx, f, req.PortID.V, req.FixedIP.V); err != nil {
				return err
			}
		}
		return tx.Put(f)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (h *handler) updateFIP(rc *reqCtx, id string) (model.Record, error) {
	var req fipReq
	if err := readNamed(rc, "floatingip", &req, "tenant_id", "project_id", "floating_network_id", "floating_ip_address", "subnet_id"); err != nil {
		return nil, err
	}
	if req.FixedIP.Set && !req.FixedIP.Null && req.FixedIP.V != "" {
		if _, ok := ip4(req.FixedIP.V); !ok {
			return nil, invalidInput("fixed_ip_address", "'%s' is not a valid IP address", req.FixedIP.V)
		}
	}
	f, err := ownedUpdate(h, rc, "floatingips", id, func(tx *store.Tx, f *model.FloatingIP) error {
		setNameDesc(&f.Base, oStr{}, req.Description)
		if req.PortID.Set {
			if req.PortID.Null || req.PortID.V == "" {
				disassociateTx(tx, f)
			} else if req.PortID.V != f.PortID || (req.FixedIP.V != "" && req.FixedIP.V != f.FixedIPAddress) {
				disassociateTx(tx, f)
				if err := h.associateTx(rc, tx, f, req.PortID.V, req.FixedIP.V); err != nil {
					return err
				}
			}
		}
		touch(&f.Base)
		return tx.Put(f)
	})
	return f, err
}

func (h *handler) deleteFIP(rc *reqCtx, id string) error {
	_, err := ownedTxn(h, rc, "floatingips", id, func(tx *store.Tx, f *model.FloatingIP) error {
		disassociateTx(tx, f)
		if p, err := txGet[*model.Port](tx, model.KindPort, f.FloatingPortID); err != nil {
			return err
		} else if p != nil {
			releasePortTx(tx, p)
		}
		tx.Delete(model.KindFloatingIP, id)
		countUsage(tx, f.ProjectID, "floatingip", -1)
		return nil
	})
	return err
}
