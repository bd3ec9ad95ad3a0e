package northbound

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// Device owners Nimbus creates itself.
const (
	ownerRouterIface = "network:router_interface"
	ownerRouterGW    = "network:router_gateway"
	ownerFloatingIP  = "network:floatingip"
	ownerLBVIP       = "neutron:LOADBALANCER"
)

type portReq struct {
	nameAttrs
	ownerAttrs
	NetworkID    oStr  `json:"network_id"`
	AdminStateUp oBool `json:"admin_state_up"`
	MACAddress   oStr  `json:"mac_address"`
	FixedIPs     oRaw  `json:"fixed_ips"`
	DeviceID     oStr  `json:"device_id"`
	DeviceOwner  oStr  `json:"device_owner"`
	HostID       oStr  `json:"binding:host_id"`
	Profile      oRaw  `json:"binding:profile"`
	VNICType     oStr  `json:"binding:vnic_type"`
	PortSecurity oBool `json:"port_security_enabled"`
	AddrPairs    oRaw  `json:"allowed_address_pairs"`
	SecGroups    oRaw  `json:"security_groups"`
}

func (h *handler) portDef() *resDef {
	d := &resDef{singular: "port", plural: "ports", path: "ports", kind: model.KindPort,
		what: "Port", notFoundType: "PortNotFound",
		attrs: attrSet("network_id mac_address fixed_ips device_id device_owner admin_state_up status binding:host_id " +
			"binding:profile binding:vif_type binding:vif_details binding:vnic_type port_security_enabled " +
			"allowed_address_pairs security_groups extra_dhcp_opts"),
	}
	// A network's owner sees every port on it, as in Neutron (recorded:
	// port-show-bound-p1, port-list-net).
	d.visible = func(rc *reqCtx, r model.Record) bool {
		p := r.(*model.Port)
		if rc.exempt() || rc.owns(p.ProjectID) {
			return true
		}
		if rc.project == "" {
			return false
		}
		if rc.netOwners == nil {
			rc.netOwners = map[string]string{}
		}
		owner, ok := rc.netOwners[p.NetworkID]
		if !ok {
			n, _, err := getT[*model.Network](h, rc, model.KindNetwork, p.NetworkID)
			if err == nil && !isNil(n) {
				owner = n.ProjectID
			}
			rc.netOwners[p.NetworkID] = owner
		}
		return owner == rc.project
	}
	d.views = viewsOf(func(rc *reqCtx, p *model.Port) map[string]any {
		v := baseView(p, "binding:host_id")
		if v["binding:host_id"] == nil {
			v["binding:host_id"] = ""
		}
		if v["binding:profile"] == nil {
			v["binding:profile"] = map[string]any{}
		}
		v["binding:vif_type"] = "unbound"
		if p.HostID != "" {
			v["binding:vif_type"] = "ovs"
		}
		if p.VIFType != "" {
			v["binding:vif_type"] = p.VIFType
		}
		v["binding:vif_details"] = map[string]any{}
		v["binding:vnic_type"] = "normal"
		if vt := p.Extra["binding:vnic_type"]; vt != "" {
			v["binding:vnic_type"] = vt
		}
		delete(v, "extra")
		if v["status"] == nil {
			v["status"] = "DOWN"
		}
		if st, ok := h.portStatus(rc, p); ok {
			v["status"] = st // from the data plane (status.go)
		}
		for _, k := range []string{"fixed_ips", "allowed_address_pairs", "security_groups"} {
			if v[k] == nil {
				v[k] = []any{}
			}
		}
		v["extra_dhcp_opts"] = []any{}
		hideBinding(rc, v)
		return v
	})
	d.create = h.createPort
	d.update = h.updatePort
	d.del = h.deletePort
	return d
}

// fixedReq is one requested fixed IP.
type fixedReq struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// parseFixedIPs reads a fixed_ips list of at most max entries (Neutron's
// max_fixed_ips_per_port).
func parseFixedIPs(o oRaw, max int) ([]fixedReq, error) {
	var raw []map[string]any
	if err := decodeRaw("fixed_ips", o, &raw); err != nil {
		return nil, err
	}
	if len(raw) > max {
		return nil, errf(400, "InvalidInput", "Invalid input for operation: Exceeded maximum amount of fixed ips per port (%d).", max)
	}
	out := make([]fixedReq, 0, len(raw))
	for _, m := range raw {
		var f fixedReq
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, invalidInput("fixed_ips", "'%v' is not a valid string for %s", v, k)
			}
			switch k {
			case "subnet_id":
				f.SubnetID = s
			case "ip_address":
				f.IPAddress = s
			default:
				return nil, invalidInput("fixed_ips", "Unrecognized key '%s' in fixed_ips", k)
			}
		}
		if f.SubnetID == "" && f.IPAddress == "" {
			return nil, invalidInput("fixed_ips", "each fixed IP needs a subnet_id or an ip_address")
		}
		if f.IPAddress != "" {
			if strings.Contains(f.IPAddress, ":") {
				return nil, badRequest("IPv6 is not supported: Nimbus subnets are IPv4 only (ip_version 4).")
			}
			if _, ok := ip4(f.IPAddress); !ok {
				return nil, invalidInput("fixed_ips", "'%s' is not a valid IP address", f.IPAddress)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// parseAddrPairs reads allowed_address_pairs, at most max of them
// (Neutron's max_allowed_address_pair).
func parseAddrPairs(o oRaw, max int) ([]model.AddressPair, error) {
	var raw []map[string]any
	if err := decodeRaw("allowed_address_pairs", o, &raw); err != nil {
		return nil, err
	}
	if len(raw) > max {
		return nil, errf(400, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum %d.", max)
	}
	out := []model.AddressPair{}
	seen := map[string]bool{}
	for _, m := range raw {
		var ap model.AddressPair
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, invalidInput("allowed_address_pairs", "'%v' is not a valid string for %s", v, k)
			}
			switch k {
			case "ip_address":
				ap.IPAddress = s
			case "mac_address":
				ap.MACAddress = s
			default:
				return nil, invalidInput("allowed_address_pairs", "Unrecognized attribute '%s'", k)
			}
		}
		if ap.IPAddress == "" {
			return nil, errf(400, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
		}
		if _, ok := ip4(ap.IPAddress); !ok {
			if _, ok := parseCIDR(ap.IPAddress); !ok {
				return nil, invalidInput("allowed_address_pairs", "'%s' is not a valid IPv4 address or CIDR", ap.IPAddress)
			}
		}
		if ap.MACAddress != "" {
			mac, err := parseMAC("allowed_address_pairs", ap.MACAddress)
			if err != nil {
				return nil, err
			}
			ap.MACAddress = mac
		}
		k := ap.IPAddress + "|" + ap.MACAddress
		if seen[k] {
			return nil, invalidInput("allowed_address_pairs", "Duplicate address pair %s", ap.IPAddress)
		}
		seen[k] = true
		out = append(out, ap)
	}
	return out, nil
}

func randomMAC() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
}

// claimMAC takes a MAC for port inside tx: the given one, or a random
// fa:16:3e one whose key is free.
func claimMAC(tx *store.Tx, mac, port, network string) (string, error) {
	if mac != "" {
		if cur := tx.GetRaw(macKey(mac)); cur != "" && cur != port {
			return "", conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", network, mac)
		}
		tx.PutRaw(macKey(mac), port)
		return mac, nil
	}
	for i := 0; i < 32; i++ {
		m := randomMAC()
		if tx.GetRaw(macKey(m)) == "" {
			tx.PutRaw(macKey(m), port)
			return m, nil
		}
	}
	return "", errf(503, "MacAddressGenerationFailure", "Unable to generate unique mac.")
}

// assignIPs gives port p the requested fixed IPs (nil: the default, one
// address from the network's first IPv4 subnet with room); keep lists
// addresses p already holds that may be kept.
func (h *handler) assignIPs(rc *reqCtx, tx *store.Tx, p *model.Port, reqs []fixedReq, dflt bool, keep []model.FixedIP) ([]model.FixedIP, error) {
	subs, err := h.networkSubnets(rc, tx, p.NetworkID)
	if err != nil {
		return nil, err
	}
	var v4, v6 []*model.Subnet
	for _, s := range subs {
		if s.IPVersion == 6 {
			v6 = append(v6, s)
		} else {
			v4 = append(v4, s)
		}
	}
	out, err := h.assignIPs4(rc, tx, p, reqs, dflt, keep, subs, v4)
	if err != nil || len(v6) == 0 {
		return out, err
	}
	return h.assignIPs6(rc, tx, p, reqs, dflt, out, v6)
}

// assignIPs6 adds a port's IPv6 addresses as Neutron does (recorded:
// port-create, port-create-ip, port-create-no-subnet, port-update-ip):
// an address on every SLAAC or DHCPv6-stateless subnet (EUI-64 of the
// port's MAC), unless the port is a router's or DHCP's, and, for a port
// without fixed_ips, one address from the first other IPv6 subnet
// (lowest free). Only the API carries IPv6: the data plane skips these.
func (h *handler) assignIPs6(rc *reqCtx, tx *store.Tx, p *model.Port, reqs []fixedReq, dflt bool, out []model.FixedIP, v6 []*model.Subnet) ([]model.FixedIP, error) {
	named := map[string]bool{}
	for _, f := range reqs {
		named[f.SubnetID] = true
	}
	service := strings.HasPrefix(p.DeviceOwner, "network:router") || p.DeviceOwner == "network:dhcp"
	stateful := false
	for _, s := range v6 {
		auto := s.IPv6AddressMode == "slaac" || s.IPv6AddressMode == "dhcpv6-stateless"
		switch {
		case auto && !service && !named[s.ID]:
			ip, ok := eui64(s.CIDR, p.MACAddress)
			if !ok {
				continue
			}
			if cur := tx.GetRaw(ipamKey(s.ID, ip)); cur != "" && cur != p.ID {
				return nil, ipAllocated(ip, s.ID)
			}
			tx.PutRaw(ipamKey(s.ID, ip), p.ID)
			out = append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip})
		case !auto && dflt && !stateful:
			ip, err := h.allocateIP6(rc, tx, s, p.ID)
			if err != nil {
				return nil, err
			}
			stateful = true
			out = append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip})
		}
	}
	return out, nil
}

// eui64 is the SLAAC address of mac in a /64.
func eui64(cidr, mac string) (string, bool) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is6() || pfx.Bits() != 64 {
		return "", false
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", false
	}
	b := pfx.Masked().Addr().As16()
	b[8], b[9], b[10], b[11] = hw[0]^0x02, hw[1], hw[2], 0xff
	b[12], b[13], b[14], b[15] = 0xfe, hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b).String(), true
}

// allocateIP6 claims the lowest free address of an IPv6 subnet's pool.
func (h *handler) allocateIP6(rc *reqCtx, tx *store.Tx, s *model.Subnet, owner string) (string, error) {
	for _, pl := range s.AllocationPools {
		a, err1 := netip.ParseAddr(pl.Start)
		end, err2 := netip.ParseAddr(pl.End)
		if err1 != nil || err2 != nil {
			continue
		}
		for i := 0; i < 4096 && a.Compare(end) <= 0; i, a = i+1, a.Next() {
			if a.String() == s.GatewayIP {
				continue
			}
			if tx.GetRaw(ipamKey(s.ID, a.String())) == "" {
				tx.PutRaw(ipamKey(s.ID, a.String()), owner)
				return a.String(), nil
			}
		}
	}
	return "", conflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", s.ID)
}

func (h *handler) assignIPs4(rc *reqCtx, tx *store.Tx, p *model.Port, reqs []fixedReq, dflt bool, keep []model.FixedIP, all, subs []*model.Subnet) ([]model.FixedIP, error) {
	byID := map[string]*model.Subnet{}
	for _, s := range all {
		byID[s.ID] = s
	}
	out := []model.FixedIP{}
	taken := map[string]bool{}
	if dflt {
		if len(subs) == 0 {
			return out, nil
		}
		var last error
		for _, s := range subs {
			ip, err := h.allocateIP(rc, tx, s, p.ID, nil)
			if err == nil {
				return append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip}), nil
			}
			last = err
		}
		return nil, last
	}
	kept := map[string]bool{}
	for _, f := range reqs {
		var s *model.Subnet
		if f.SubnetID != "" {
			s = byID[f.SubnetID]
			if s == nil {
				if o, _ := txGet[*model.Subnet](tx, model.KindSubnet, f.SubnetID); o == nil {
					return nil, notFound("SubnetNotFound", "Subnet", f.SubnetID)
				}
				return nil, invalidOp("Failed to create port on network %s, because fixed_ips included invalid subnet %s", p.NetworkID, f.SubnetID)
			}
			if s.IPVersion == 6 {
				if f.IPAddress != "" {
					return nil, badRequest("Fixed IPv6 addresses are not supported yet: subnet %s is IPv6.", s.ID)
				}
				ip, err := h.allocateIP6(rc, tx, s, p.ID)
				if err != nil {
					return nil, err
				}
				out = append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip})
				continue
			}
		}
		if f.IPAddress != "" {
			u, _ := ip4(f.IPAddress)
			if s == nil {
				for _, c := range subs {
					if cc, _ := parseCIDR(c.CIDR); cc.contains(u) {
						s = c
						break
					}
				}
				if s == nil {
					return nil, errf(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", f.IPAddress)
				}
			}
			ip := ipString(u)
			if taken[s.ID+"/"+ip] {
				return nil, invalidInput("fixed_ips", "Duplicate IP address '%s'", ip)
			}
			ip, err := claimIP(tx, s, ip, p.ID)
			if err != nil {
				return nil, err
			}
			taken[s.ID+"/"+ip] = true
			out = append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip})
			continue
		}
		// Subnet only: keep an address the port already has there.
		reused := false
		for _, k := range keep {
			if k.SubnetID == s.ID && !kept[k.IPAddress] && !taken[s.ID+"/"+k.IPAddress] {
				kept[k.IPAddress] = true
				taken[s.ID+"/"+k.IPAddress] = true
				out = append(out, k)
				reused = true
				break
			}
		}
		if reused {
			continue
		}
		tk := map[string]bool{}
		for k := range taken {
			if sid, ip, _ := strings.Cut(k, "/"); sid == s.ID {
				tk[ip] = true
			}
		}
		ip, err := h.allocateIP(rc, tx, s, p.ID, tk)
		if err != nil {
			return nil, err
		}
		taken[s.ID+"/"+ip] = true
		out = append(out, model.FixedIP{SubnetID: s.ID, IPAddress: ip})
	}
	return out, nil
}

// putPortTx writes port p and its index keys.
func putPortTx(tx *store.Tx, p *model.Port) error {
	tx.PutRaw(refKey(refNetPorts, p.NetworkID, p.ID), p.ID)
	for _, sg := range p.SecurityGroups {
		tx.PutRaw(refKey(refSGPorts, sg, p.ID), p.ID)
	}
	return tx.Put(p)
}

// releasePortTx deletes port p, its addresses and index keys, and
// releases it from its project's port usage. Every port delete but the
// router gateway port's in deleteRouter (a port of no project) goes
// through here.
func releasePortTx(tx *store.Tx, p *model.Port) {
	countUsage(tx, p.ProjectID, "port", -1)
	releasePortName(tx, p)
	for _, f := range p.FixedIPs {
		if tx.GetRaw(ipamKey(f.SubnetID, f.IPAddress)) == p.ID {
			tx.DelRaw(ipamKey(f.SubnetID, f.IPAddress))
		}
	}
	if tx.GetRaw(macKey(p.MACAddress)) == p.ID {
		tx.DelRaw(macKey(p.MACAddress))
	}
	tx.DelRaw(refKey(refNetPorts, p.NetworkID, p.ID))
	for _, sg := range p.SecurityGroups {
		tx.DelRaw(refKey(refSGPorts, sg, p.ID))
	}
	tx.Delete(model.KindPort, p.ID)
}

// newInternalPort creates a port Nimbus owns (router, floating IP, VIP).
// It counts toward project's port usage but is never refused for it.
func (h *handler) newInternalPort(rc *reqCtx, tx *store.Tx, project, network, owner, device string, reqs []fixedReq) (*model.Port, error) {
	p := &model.Port{NetworkID: network, DeviceOwner: owner, DeviceID: device, AdminStateUp: true, Status: "ACTIVE",
		FixedIPs: []model.FixedIP{}, AllowedAddressPairs: []model.AddressPair{}, SecurityGroups: []string{}}
	stamp(&p.Base, newID(), project, oStr{}, oStr{})
	var err error
	if p.MACAddress, err = claimMAC(tx, "", p.ID, p.NetworkID); err != nil {
		return nil, err
	}
	if p.FixedIPs, err = h.assignIPs(rc, tx, p, reqs, reqs == nil, nil); err != nil {
		return nil, err
	}
	if len(p.FixedIPs) == 0 {
		return nil, badRequest("Network %s has no IPv4 subnet to allocate an address from.", network)
	}
	countUsage(tx, project, "port", 1)
	return p, putPortTx(tx, p)
}

// resolveSGs checks security group ids for a port of project.
func (h *handler) resolveSGs(rc *reqCtx, tx *store.Tx, project string, o oRaw) ([]string, error) {
	var ids []string
	if !o.Null {
		if err := decodeRaw("security_groups", o, &ids); err != nil {
			return nil, err
		}
	}
	out := []string{}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		sg, err := txGet[*model.SecurityGroup](tx, model.KindSecurityGroup, id)
		if err != nil {
			return nil, err
		}
		if sg == nil || (!rc.exempt() && (sg.ProjectID != rc.project || sg.ProjectID != project)) {
			return nil, notFound("SecurityGroupNotFound", "Security group", id)
		}
		out = append(out, id)
	}
	return out, nil
}

func (h *handler) createPort(rc *reqCtx) (model.Record, error) {
	var req portReq
	project, err := readCreate(rc, "port", &req)
	if err != nil {
		return nil, err
	}
	if !req.NetworkID.Set || req.NetworkID.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'network_id' not specified")
	}
	p := &model.Port{NetworkID: req.NetworkID.V, AdminStateUp: true, Status: "DOWN",
		AllowedAddressPairs: []model.AddressPair{}, SecurityGroups: []string{}, FixedIPs: []model.FixedIP{}}
	stamp(&p.Base, newID(), project, req.Name, req.Description)
	if err := h.portAttrs(rc, p, &req); err != nil {
		return nil, err
	}
	mac := ""
	if req.MACAddress.Set && !req.MACAddress.Null {
		if mac, err = parseMAC("mac_address", req.MACAddress.V); err != nil {
			return nil, err
		}
	}
	var fixed []fixedReq
	dflt := !req.FixedIPs.Set || req.FixedIPs.Null
	if !dflt {
		if fixed, err = parseFixedIPs(req.FixedIPs, h.cfg.MaxFixedIPsPerPort); err != nil {
			return nil, err
		}
	}
	var pairs []model.AddressPair
	if req.AddrPairs.Set && !req.AddrPairs.Null {
		if pairs, err = parseAddrPairs(req.AddrPairs, h.cfg.MaxAllowedAddressPairs); err != nil {
			return nil, err
		}
	}
	if rc.admin {
		if err := h.checkProfile(rc, req.Profile); err != nil {
			return nil, err
		}
	}
	nd := h.defs["networks"]
	err = h.txn(rc, func(tx *store.Tx) error {
		n, err := txGet[*model.Network](tx, model.KindNetwork, p.NetworkID)
		if err != nil {
			return err
		}
		if n == nil || !nd.isVisible(rc, n) {
			return notFound("NetworkNotFound", "Network", p.NetworkID)
		}
		if !rc.exempt() && n.ProjectID != project && !n.Shared {
			return forbidden("(rule:create_port:network) is disallowed by policy")
		}
		if err := rc.portPolicy("create_port", n, &req, fixed); err != nil {
			return err
		}
		p.PortSecurity = n.PortSecurity
		if strings.HasPrefix(p.DeviceOwner, "network:") {
			// Recorded: port-create-router-owner-p1.
			p.PortSecurity = false
		}
		if req.PortSecurity.Set && !req.PortSecurity.Null {
			p.PortSecurity = req.PortSecurity.V
		}
		if !p.PortSecurity && req.SecGroups.Set && !req.SecGroups.Null && string(req.SecGroups.V) != "[]" {
			return checkPortSecurity(&model.Port{SecurityGroups: []string{""}}, false)
		}
		p.AllowedAddressPairs = []model.AddressPair{}
		for _, ap := range pairs {
			p.AllowedAddressPairs = append(p.AllowedAddressPairs, ap)
		}
		if p.MACAddress, err = claimMAC(tx, mac, p.ID, p.NetworkID); err != nil {
			return err
		}
		for i := range p.AllowedAddressPairs {
			if p.AllowedAddressPairs[i].MACAddress == "" {
				p.AllowedAddressPairs[i].MACAddress = p.MACAddress
			}
		}
		if p.FixedIPs, err = h.assignIPs(rc, tx, p, fixed, dflt, nil); err != nil {
			return err
		}
		p.SecurityGroups = []string{}
		switch {
		case req.SecGroups.Set:
			if p.SecurityGroups, err = h.resolveSGs(rc, tx, project, req.SecGroups); err != nil {
				return err
			}
		case p.PortSecurity && !strings.HasPrefix(p.DeviceOwner, "network:"):
			sg, err := h.ensureDefaultSG(tx, project)
			if err != nil {
				return err
			}
			p.SecurityGroups = []string{sg}
		}
		if err := checkPortSecurity(p, false); err != nil {
			return err
		}
		if err := claimQuota(tx, project, "port"); err != nil {
			return err
		}
		if err := claimPortName(tx, p); err != nil {
			return err
		}
		p.RevisionNo = 1 + bindingStep(p)
		return putPortTx(tx, p)
	})
	if err != nil {
		return nil, err
	}
	p.RevisionNo = 1
	return p, nil
}

// bindingStep is the revision a port's binding adds after the answer to
// its create or update: Neutron commits the port, answers, and its
// binding step then bumps the port once more whenever the port has a
// host (recorded: port-create-binding-admin then port-show-admin,
// rev-port-22 then rev-port-bound-show, rev-port-bound-rename then
// rev-port-bound-show-renamed, rev-port-bind then rev-port-bind-show).
// The stored revision includes it; the write's own answer does not.
func bindingStep(p *model.Port) int64 {
	if p.HostID != "" {
		return 1
	}
	return 0
}

// checkPortSecurity: security groups need port security. Neutron's
// answers differ on create (400) and update (409) (recorded:
// port-create-psec-off-sg, port-update-psec-off-with-sg).
func checkPortSecurity(p *model.Port, update bool) error {
	if !p.PortSecurity && len(p.SecurityGroups) > 0 {
		if update {
			return conflict("PortSecurityPortHasSecurityGroup", "Port has security group associated. Cannot disable port security or IP address until security group is removed.")
		}
		return errf(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups", "Port security must be enabled and port must have an IP address in order to use security groups.")
	}
	if !p.PortSecurity && len(p.AllowedAddressPairs) > 0 {
		return conflict("AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	return nil
}

// portAttrs applies the simple writable attributes.
func (h *handler) portAttrs(rc *reqCtx, p *model.Port, req *portReq) error {
	if req.AdminStateUp.Set && !req.AdminStateUp.Null {
		p.AdminStateUp = req.AdminStateUp.V
	}
	if err := checkLen("device_id", req.DeviceID, 255); err != nil {
		return err
	}
	if err := checkLen("device_owner", req.DeviceOwner, 255); err != nil {
		return err
	}
	if err := checkLen("binding:host_id", req.HostID, 255); err != nil {
		return err
	}
	if req.DeviceID.Set {
		p.DeviceID = req.DeviceID.V
	}
	if req.DeviceOwner.Set {
		p.DeviceOwner = req.DeviceOwner.V
	}
	if req.HostID.Set {
		p.HostID = req.HostID.V
	}
	if req.Profile.Set {
		p.Profile = nil
		if !req.Profile.Null {
			var m map[string]any
			if err := decodeRaw("binding:profile", req.Profile, &m); err != nil {
				return err
			}
			if len(m) > 0 {
				p.Profile = m
			}
		}
	}
	if req.VNICType.Set && !req.VNICType.Null {
		switch req.VNICType.V {
		case "normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "vdpa", "remote-managed":
		default:
			return invalidInput("binding:vnic_type", "'%s' is not in the valid vnic types", req.VNICType.V)
		}
		if req.VNICType.V != "normal" {
			if p.Extra == nil {
				p.Extra = map[string]string{}
			}
			p.Extra["binding:vnic_type"] = req.VNICType.V
		} else {
			delete(p.Extra, "binding:vnic_type")
		}
	}
	return nil
}

func (h *handler) updatePort(rc *reqCtx, id string) (model.Record, error) {
	var req portReq
	if err := readNamed(rc, "port", &req, "tenant_id", "project_id", "network_id"); err != nil {
		return nil, err
	}
	var fixed []fixedReq
	var err error
	if req.FixedIPs.Set {
		fixed = []fixedReq{}
		if !req.FixedIPs.Null {
			if fixed, err = parseFixedIPs(req.FixedIPs, h.cfg.MaxFixedIPsPerPort); err != nil {
				return nil, err
			}
		}
	}
	var pairs []model.AddressPair
	if req.AddrPairs.Set && !req.AddrPairs.Null {
		if pairs, err = parseAddrPairs(req.AddrPairs, h.cfg.MaxAllowedAddressPairs); err != nil {
			return nil, err
		}
	}
	mac := ""
	if req.MACAddress.Set {
		if req.MACAddress.Null {
			return nil, invalidInput("mac_address", "null is not a valid MAC address")
		}
		if mac, err = parseMAC("mac_address", req.MACAddress.V); err != nil {
			return nil, err
		}
	}
	if rc.admin {
		if err := h.checkProfile(rc, req.Profile); err != nil {
			return nil, err
		}
	}
	unbound := false // this update cleared the port's host
	p, err := ownedUpdate(h, rc, "ports", id, func(tx *store.Tx, p *model.Port) error {
		var err error
		unbound = p.HostID != "" && req.HostID.Set && req.HostID.V == ""
		n, err := txGet[*model.Network](tx, model.KindNetwork, p.NetworkID)
		if err != nil {
			return err
		}
		if n == nil {
			return notFound("NetworkNotFound", "Network", p.NetworkID)
		}
		if err := rc.portPolicy("update_port", n, &req, fixed); err != nil {
			return err
		}
		old := *p
		old.SecurityGroups = append([]string{}, p.SecurityGroups...)
		old.FixedIPs = append([]model.FixedIP{}, p.FixedIPs...)
		if !rc.admin && serviceOwned(p.DeviceOwner) &&
			(req.DeviceOwner.Set && req.DeviceOwner.V != p.DeviceOwner || req.DeviceID.Set && req.DeviceID.V != p.DeviceID) {
			return conflict("ServicePortInUse", "Port %s cannot be updated directly via the port API: has device owner %s; its device_owner and device_id are the service's.", p.ID, p.DeviceOwner)
		}
		setNameDesc(&p.Base, req.Name, req.Description)
		if err := h.portAttrs(rc, p, &req); err != nil {
			return err
		}
		if portNameOf(&old) != portNameOf(p) || old.HostID != p.HostID {
			releasePortName(tx, &old)
			if err := claimPortName(tx, p); err != nil {
				return err
			}
		}
		if mac != "" && mac != p.MACAddress {
			if _, err := claimMAC(tx, mac, p.ID, p.NetworkID); err != nil {
				return err
			}
			tx.DelRaw(macKey(p.MACAddress))
			for i := range p.AllowedAddressPairs {
				if p.AllowedAddressPairs[i].MACAddress == p.MACAddress {
					p.AllowedAddressPairs[i].MACAddress = mac
				}
			}
			p.MACAddress = mac
		}
		if req.PortSecurity.Set && !req.PortSecurity.Null {
			p.PortSecurity = req.PortSecurity.V
		}
		if req.AddrPairs.Set {
			p.AllowedAddressPairs = []model.AddressPair{}
			for _, ap := range pairs {
				if ap.MACAddress == "" {
					ap.MACAddress = p.MACAddress
				}
				p.AllowedAddressPairs = append(p.AllowedAddressPairs, ap)
			}
		}
		if req.SecGroups.Set {
			if p.SecurityGroups, err = h.resolveSGs(rc, tx, p.ProjectID, req.SecGroups); err != nil {
				return err
			}
		}
		if err := checkPortSecurity(p, true); err != nil {
			return err
		}
		if fixed != nil {
			// Release what is not kept, then claim the new set.
			for _, f := range old.FixedIPs {
				if tx.GetRaw(ipamKey(f.SubnetID, f.IPAddress)) == p.ID {
					tx.DelRaw(ipamKey(f.SubnetID, f.IPAddress))
				}
			}
			if p.FixedIPs, err = h.assignIPs(rc, tx, p, fixed, false, old.FixedIPs); err != nil {
				return err
			}
			if assoc := tx.GetRaw(fipAssocKey(p.ID)); assoc != "" {
				m := map[string]string{}
				json.Unmarshal([]byte(assoc), &m)
				for ip := range m {
					if !hasIP(p.FixedIPs, ip) {
						return conflict("PortInUse", "Fixed IP %s of port %s is associated with floating IP %s; disassociate it first.", ip, p.ID, m[ip])
					}
				}
			}
		}
		if p.DeviceOwner != old.DeviceOwner {
			if err := checkGatewayHolder(tx, p); err != nil {
				return err
			}
		}
		for _, sg := range old.SecurityGroups {
			tx.DelRaw(refKey(refSGPorts, sg, p.ID))
		}
		touch(&p.Base)
		p.RevisionNo += bindingStep(p)
		return putPortTx(tx, p)
	})
	if err == nil && !rc.noAttrs && (bindingStep(p) == 1 || unbound) {
		// The answer is the port before its binding step; clearing the
		// host shows the revision the port had, the step then bumps it
		// (recorded: rev-port-unbind, rev-port-unbind-show).
		p.RevisionNo--
	}
	return p, err
}

func hasIP(fs []model.FixedIP, ip string) bool {
	for _, f := range fs {
		if f.IPAddress == ip {
			return true
		}
	}
	return false
}

func (h *handler) deletePort(rc *reqCtx, id string) error {
	// The network's owner may delete any port on it (Neutron's
	// delete_port: admin, owner or network owner; recorded:
	// port-cleanup-portbound). Visibility is the same rule, so a caller
	// that sees the port acts on it as an admin would.
	del := rc
	if !rc.admin {
		if p, _, err := getT[*model.Port](h, rc, model.KindPort, id); err == nil && !isNil(p) &&
			!rc.owns(p.ProjectID) && h.defs["ports"].isVisible(rc, p) {
			cp := *rc
			cp.admin = true
			del = &cp
		}
	}
	_, err := ownedTxn(h, del, "ports", id, func(tx *store.Tx, p *model.Port) error {
		// A service's port goes with its router, floating IP or VIP; one
		// whose service object is gone (or does not hold it) is an
		// orphan and may be deleted, as in Neutron.
		if serviceOwned(p.DeviceOwner) {
			inUse, err := serviceInUse(tx, p)
			if err != nil {
				return err
			}
			if inUse {
				return conflict("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", id, p.DeviceOwner)
			}
		}
		if err := h.disassociatePortFIPs(tx, p.ID); err != nil {
			return err
		}
		releasePortTx(tx, p)
		return nil
	})
	return err
}

// disassociatePortFIPs clears every floating IP pointing at port.
func (h *handler) disassociatePortFIPs(tx *store.Tx, port string) error {
	assoc := tx.GetRaw(fipAssocKey(port))
	if assoc == "" {
		return nil
	}
	m := map[string]string{}
	json.Unmarshal([]byte(assoc), &m)
	ids := make([]string, 0, len(m))
	for _, f := range m {
		ids = append(ids, f)
	}
	sort.Strings(ids)
	for _, fid := range ids {
		f, err := txGet[*model.FloatingIP](tx, model.KindFloatingIP, fid)
		if err != nil {
			return err
		}
		if f == nil {
			continue
		}
		if f.RouterID != "" {
			tx.DelRaw(refKey(refRouterFIPs, f.RouterID, f.ID))
		}
		f.PortID, f.FixedIPAddress, f.RouterID = "", "", ""
		touch(&f.Base)
		if err := tx.Put(f); err != nil {
			return err
		}
	}
	tx.DelRaw(fipAssocKey(port))
	return nil
}
