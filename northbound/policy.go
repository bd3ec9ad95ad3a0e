package northbound

import (
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/store"
)

// Port policy: the attribute rules of Neutron's default policy
// (neutron/conf/policies/port.py), with PolicyNotAuthorized (403)
// answers named after the rule, as Neutron words them. docs/api.md has
// the table.
//
//	binding:host_id, binding:profile        admin only (create, update, and shown only to admins)
//	binding:vif_type, binding:vif_details   read-only, shown only to admins
//	device_owner "network:*"                admin or network owner
//	mac_address                             create: admin or network owner; update: admin only
//	fixed_ips with ip_address               admin or network owner (subnet_id alone: anyone on a shared network)
//	port_security_enabled                   admin or network owner
//	allowed_address_pairs                   admin or network owner

// netOwner is rule:network_owner or admin: the caller's project owns n.
func (rc *reqCtx) netOwner(n *model.Network) bool {
	return rc.exempt() || (rc.project != "" && n.ProjectID == rc.project)
}

// policyBypass turns off the policy checks of a port create (network and
// port visibility, the port attribute rules, the security group owner
// check, hiding the binding): the baseline of the policy cost benchmark
// (TestPortCreatePolicyCost), which runs the same requests with and
// without them. Tests only; never set in production.
var policyBypass atomic.Bool

// exempt: no policy check applies to the caller (an admin, or the
// benchmark's bypass).
func (rc *reqCtx) exempt() bool { return rc.admin || policyBypass.Load() }

// given reports whether a request gives an attribute: on create, a
// value other than null or the default (Neutron's "explicitly set"); on
// update, any value.
func given(create, set, null, dflt bool) bool {
	if create {
		return set && !null && !dflt
	}
	return set
}

// portPolicy checks a port create or update (action "create_port" or
// "update_port") on network n against the rules above.
func (rc *reqCtx) portPolicy(action string, n *model.Network, req *portReq, fixed []fixedReq) error {
	if rc.exempt() {
		return nil
	}
	deny := func(attr string) error {
		return forbidden("(rule:%s:%s) is disallowed by policy", action, attr)
	}
	create := action == "create_port"
	if given(create, req.HostID.Set, req.HostID.Null, req.HostID.V == "") {
		return deny("binding:host_id")
	}
	if given(create, req.Profile.Set, req.Profile.Null, strings.TrimSpace(string(req.Profile.V)) == "{}") {
		return deny("binding:profile")
	}
	mac := given(create, req.MACAddress.Set, req.MACAddress.Null, req.MACAddress.V == "")
	owner := rc.netOwner(n)
	if req.DeviceOwner.Set && strings.HasPrefix(req.DeviceOwner.V, "network:") && !owner {
		return deny("device_owner")
	}
	if mac && (!create || !owner) {
		return deny("mac_address")
	}
	if owner {
		return nil
	}
	for _, f := range fixed {
		if f.IPAddress != "" {
			return deny("fixed_ips:ip_address")
		}
	}
	if req.PortSecurity.Set && !req.PortSecurity.Null {
		return deny("port_security_enabled")
	}
	if req.AddrPairs.Set && !req.AddrPairs.Null {
		return deny("allowed_address_pairs")
	}
	return nil
}

// hideBinding removes from a port's view what Neutron shows only to
// admins (get_port:binding:* rules).
func hideBinding(rc *reqCtx, v map[string]any) {
	if rc.exempt() {
		return
	}
	for _, k := range []string{"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"} {
		delete(v, k)
	}
}

// parseMAC validates and normalizes a MAC address attribute. Besides
// what neutron-lib refuses (malformed, all-zero, broadcast), every
// multicast address is refused: a port's MAC becomes a unicast
// forwarding entry, which would outrank the network's flooding.
func parseMAC(attr, s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", invalidInput(attr, "'%s' is not a valid MAC address", s)
	}
	if hw[0]&1 != 0 {
		return "", invalidInput(attr, "'%s' is not a valid MAC address: it is a multicast or broadcast address", s)
	}
	if string(hw) == "\x00\x00\x00\x00\x00\x00" {
		return "", invalidInput(attr, "'%s' is not a valid MAC address: it is all zeros", s)
	}
	return hw.String(), nil
}

// maxProfile bounds binding:profile's JSON (Neutron's column holds 4095
// characters).
const maxProfile = 4095

// portNameOf is the switch interface a port's binding:profile names.
func portNameOf(p *model.Port) string {
	s, _ := p.Profile["port_name"].(string)
	return s
}

// checkProfile validates a binding:profile: its size, and its port_name
// (a string naming no uplink, tunnel, patch or bridge port).
func (h *handler) checkProfile(rc *reqCtx, o oRaw) error {
	if !o.Set || o.Null {
		return nil
	}
	if len(o.V) > maxProfile {
		return invalidInput("binding:profile", "the profile exceeds maximum length of %d", maxProfile)
	}
	var m map[string]any
	if err := decodeRaw("binding:profile", o, &m); err != nil {
		return err
	}
	v, ok := m["port_name"]
	if !ok {
		return nil
	}
	name, ok := v.(string)
	if !ok || name == "" || len(name) > 255 || strings.ContainsAny(name, "/ \t\r\n\x00") {
		return invalidInput("binding:profile", "port_name %s is not a valid interface name", trimJSON([]byte(fmtAny(v))))
	}
	if why, err := h.reservedIface(rc, name); err != nil {
		return err
	} else if why != "" {
		return invalidInput("binding:profile", "port_name '%s' is %s; a Neutron port never binds to it", name, why)
	}
	return nil
}

func fmtAny(v any) string { b, _ := json.Marshal(v); return string(b) }

// reservedIface says what infrastructure interface name is (empty: none
// Nimbus knows of): the node agent's GRE tunnels (gre-*), the patch
// pair of a physical network (phy-*, int-*), Neutron-style patch ports
// (patch-*), and bridges' own internal ports (br-*, LOCAL, and every
// bridge a chassis maps a physical network to).
func (h *handler) reservedIface(rc *reqCtx, name string) (string, error) {
	switch {
	case strings.HasPrefix(name, names.TunnelPrefix):
		return "a tunnel port name", nil
	case strings.HasPrefix(name, names.PhysPrefix), strings.HasPrefix(name, names.IntPrefix):
		return "a physical network uplink (patch) port name", nil
	case strings.HasPrefix(name, "patch-"):
		return "a patch port name", nil
	case strings.HasPrefix(name, "br-"), strings.EqualFold(name, "LOCAL"):
		return "a bridge's internal port name", nil
	}
	chassis, err := listT[*model.Chassis](h, rc, model.KindChassis)
	if err != nil {
		return "", err
	}
	for _, c := range chassis {
		for _, br := range c.Mappings {
			if br == name {
				return "the bridge of a physical network on chassis " + c.Name, nil
			}
		}
	}
	return "", nil
}

// Interface claims: nb/portname/<name> holds {port id: host} for every
// port whose binding:profile names interface <name> (host: its
// binding:host_id, "" for any host). Claims are read and written in the
// port's own transaction, so two replicas can never both bind one
// interface.
func portNameKey(name string) string { return nbPrefix + "portname/" + name }

// claimPortName claims p's interface in tx: 409 if another port holds
// it on the same host, or either claim names no host.
func claimPortName(tx *store.Tx, p *model.Port) error {
	name := portNameOf(p)
	if name == "" {
		return nil
	}
	m := map[string]string{}
	if v := tx.GetRaw(portNameKey(name)); v != "" {
		json.Unmarshal([]byte(v), &m)
	}
	for other, host := range m {
		if other == p.ID {
			continue
		}
		if host == "" || p.HostID == "" || host == p.HostID {
			where := "host " + host
			if host == "" {
				where = "any host"
			}
			return conflict("PortBindingConflict", "Interface %s is already bound to port %s on %s: two ports never bind the same interface.", name, other, where)
		}
	}
	m[p.ID] = p.HostID
	b, _ := json.Marshal(m)
	tx.PutRaw(portNameKey(name), string(b))
	return nil
}

// releasePortName drops p's interface claim in tx.
func releasePortName(tx *store.Tx, p *model.Port) {
	name := portNameOf(p)
	if name == "" {
		return
	}
	m := map[string]string{}
	if v := tx.GetRaw(portNameKey(name)); v != "" {
		json.Unmarshal([]byte(v), &m)
	}
	if _, ok := m[p.ID]; !ok {
		return
	}
	delete(m, p.ID)
	if len(m) == 0 {
		tx.DelRaw(portNameKey(name))
		return
	}
	b, _ := json.Marshal(m)
	tx.PutRaw(portNameKey(name), string(b))
}

// serviceOwned is true for ports Nimbus makes and manages itself.
func serviceOwned(owner string) bool {
	switch owner {
	case ownerRouterIface, ownerRouterGW, ownerFloatingIP, ownerLBVIP:
		return true
	}
	return false
}

// serviceInUse reports whether the service object a service-owned port
// belongs to still exists and holds it (Neutron's
// prevent_l3_port_deletion: a port whose router is gone may be deleted).
func serviceInUse(tx *store.Tx, p *model.Port) (bool, error) {
	switch p.DeviceOwner {
	case ownerRouterIface:
		rt, err := txGet[*model.Router](tx, model.KindRouter, p.DeviceID)
		if err != nil || rt == nil {
			return false, err
		}
		for _, id := range rt.Interfaces {
			if id == p.ID {
				return true, nil
			}
		}
	case ownerRouterGW:
		rt, err := txGet[*model.Router](tx, model.KindRouter, p.DeviceID)
		return rt != nil && gwPortID(rt.ID) == p.ID, err
	case ownerFloatingIP:
		f, err := txGet[*model.FloatingIP](tx, model.KindFloatingIP, p.DeviceID)
		return f != nil && f.FloatingPortID == p.ID, err
	case ownerLBVIP:
		v, err := txGet[*model.LBVIP](tx, model.KindVIP, p.DeviceID)
		return v != nil && v.PortID == p.ID, err
	}
	return false, nil
}

// checkGatewayHolder refuses a port that holds a subnet's gateway IP
// unless it is a router interface: the gateway address answers for the
// router (ARP responder, DHCP router option).
func checkGatewayHolder(tx *store.Tx, p *model.Port) error {
	if p.DeviceOwner == ownerRouterIface {
		return nil
	}
	for _, f := range p.FixedIPs {
		s, err := txGet[*model.Subnet](tx, model.KindSubnet, f.SubnetID)
		if err != nil {
			return err
		}
		if s != nil && s.GatewayIP != "" && s.GatewayIP == f.IPAddress {
			return conflict("IpAddressInUse", "Unable to complete operation for network %s. The IP address %s is the gateway of subnet %s: only a router interface may hold it.", p.NetworkID, f.IPAddress, s.ID)
		}
	}
	return nil
}
