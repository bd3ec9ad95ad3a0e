package northbound

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

func ruleView(r *model.SGRule) map[string]any {
	v := baseView(r, "protocol", "remote_ip_prefix", "remote_group_id")
	v["remote_address_group_id"] = nil
	v["normalized_cidr"] = nil
	if r.RemoteIPPrefix != "" {
		v["normalized_cidr"] = maskedCIDR(r.RemoteIPPrefix)
	}
	if r.Name == systemRule && r.Description == "" {
		v["description"] = nil
	}
	delete(v, "name")
	delete(v, "tags")
	zeroBasedRevision(v)
	return v
}

// neutronProtocols is the list Neutron's message names (recorded:
// sgr-create-bad-proto).
const neutronProtocols = "[None, 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', 'ipv6-encap', " +
	"'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', " +
	"'udp', 'udplite', 'vrrp']"

// maskedCIDR is a prefix without host bits (itself when unparsable).
func maskedCIDR(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	return p.Masked().String()
}

// systemRule marks (in the otherwise unused name) a rule Nimbus made
// itself: a default group's rules and a new group's egress rules show
// description null, as Neutron's do (recorded: sg-show, sgr-list-direction).
const systemRule = "nimbus:system-rule"

func newRule(project, sg, dir, eth, remoteGroup string) *model.SGRule {
	r := &model.SGRule{SecurityGroupID: sg, Direction: dir, EtherType: eth, RemoteGroupID: remoteGroup}
	stamp(&r.Base, newID(), project, oStr{}, oStr{})
	r.Name = systemRule
	return r
}

// putRuleTx writes a new rule made on the caller's behalf and counts it
// toward its project's usage, never refusing it.
func putRuleTx(tx *store.Tx, r *model.SGRule) error {
	countUsage(tx, r.ProjectID, "security_group_rule", 1)
	return storeRuleTx(tx, r)
}

// storeRuleTx writes a new rule without counting it (createRule claims
// it first).
func storeRuleTx(tx *store.Tx, r *model.SGRule) error {
	tx.PutRaw(refKey(refSGRules, r.SecurityGroupID, r.ID), r.ID)
	return tx.Put(r)
}

// ---- rules ----

type ruleReq struct {
	ownerAttrs
	Description    oStr `json:"description"`
	SecurityGroup  oStr `json:"security_group_id"`
	Direction      oStr `json:"direction"`
	EtherType      oStr `json:"ethertype"`
	Protocol       oRaw `json:"protocol"`
	PortRangeMin   oInt `json:"port_range_min"`
	PortRangeMax   oInt `json:"port_range_max"`
	RemoteIPPrefix oStr `json:"remote_ip_prefix"`
	RemoteGroupID  oStr `json:"remote_group_id"`
	RemoteAddrGrp  oStr `json:"remote_address_group_id"`
}

func (r *ruleReq) nameDesc() (oStr, oStr) { return oStr{}, r.Description }

func (h *handler) sgRuleDef() *resDef {
	d := &resDef{singular: "security_group_rule", plural: "security_group_rules", path: "security-group-rules",
		kind: model.KindSGRule, what: "Security group rule", notFoundType: "SecurityGroupRuleNotFound",
		attrs: attrSet("security_group_id direction ethertype protocol port_range_min port_range_max remote_ip_prefix " +
			"remote_group_id remote_address_group_id normalized_cidr"),
		// Recorded: sgr-delete-again, sgr-show-p2.
		notFoundMsg:    "Security group rule %s does not exist",
		hiddenNotFound: errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found."),
	}
	d.views = viewsOf(func(_ *reqCtx, r *model.SGRule) map[string]any { return ruleView(r) })
	d.create = h.createRule
	d.update = h.updateRule
	d.del = h.deleteRule
	return d
}

var protoNames = map[string]int{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "gre": 47,
	"ah": 51, "esp": 50, "igmp": 2, "ospf": 89, "pgm": 113, "rsvp": 46, "udplite": 136, "vrrp": 112, "dccp": 33, "egp": 8,
	"encap": 98, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43}

func (h *handler) createRule(rc *reqCtx) (model.Record, error) {
	var req ruleReq
	if err := readNamed(rc, "security_group_rule", &req); err != nil {
		return nil, err
	}
	r := &model.SGRule{}
	if req.RemoteAddrGrp.Set && !req.RemoteAddrGrp.Null {
		return nil, badRequest("Address groups are not supported.")
	}
	if !req.SecurityGroup.Set || req.SecurityGroup.V == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'security_group_id' not specified")
	}
	switch req.Direction.V {
	case "ingress", "egress":
		r.Direction = req.Direction.V
	default:
		if !req.Direction.Set {
			return nil, badRequest("Failed to parse request. Required attribute 'direction' not specified")
		}
		return nil, invalidInput("direction", "%s is not in valid_values", req.Direction.V)
	}
	r.EtherType = "IPv4"
	if req.EtherType.Set && !req.EtherType.Null {
		switch strings.ToLower(req.EtherType.V) {
		case "ipv4":
			r.EtherType = "IPv4"
		case "ipv6":
			r.EtherType = "IPv6"
		default:
			return nil, errf(400, "SecurityGroupRuleInvalidEtherType", "Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", req.EtherType.V)
		}
	}
	proto := -1
	if req.Protocol.Set && !req.Protocol.Null {
		var v any
		if err := decodeRaw("protocol", req.Protocol, &v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case string:
			x = strings.ToLower(x)
			if n, ok := protoNames[x]; ok {
				proto, r.Protocol = n, x
			} else if n, err := strconv.Atoi(x); err == nil && n >= 0 && n <= 255 {
				proto, r.Protocol = n, x
			} else if x != "" && x != "any" {
				return nil, errf(400, "SecurityGroupRuleInvalidProtocol", "Security group rule protocol %s not supported. Only protocol values %s and integer representations [0 to 255] are supported.", x, neutronProtocols)
			}
		case float64:
			if x != float64(int(x)) || x < 0 || x > 255 {
				return nil, errf(400, "SecurityGroupRuleInvalidProtocol", "Security group rule protocol %v not supported.", x)
			}
			proto, r.Protocol = int(x), strconv.Itoa(int(x))
		default:
			return nil, invalidInput("protocol", "'%v' is not a valid protocol", v)
		}
	}
	if req.PortRangeMin.Set && !req.PortRangeMin.Null {
		v := req.PortRangeMin.V
		r.PortRangeMin = &v
	}
	if req.PortRangeMax.Set && !req.PortRangeMax.Null {
		v := req.PortRangeMax.V
		r.PortRangeMax = &v
	}
	if (r.PortRangeMin != nil || r.PortRangeMax != nil) && proto < 0 {
		return nil, errf(400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
	}
	if r.PortRangeMin != nil || r.PortRangeMax != nil {
		switch proto {
		case 6, 17, 132, 33, 136:
			// Neutron's order and types (recorded: sgr-create-bad-port,
			// sgr-create-port-zero, sgr-create-bad-range).
			for _, v := range []*int{r.PortRangeMin, r.PortRangeMax} {
				if v != nil && (*v < 1 || *v > 65535) {
					return nil, errf(400, "SecurityGroupInvalidPortValue", "Invalid value for port %d", *v)
				}
			}
			if r.PortRangeMin == nil || r.PortRangeMax == nil || *r.PortRangeMin > *r.PortRangeMax {
				return nil, errf(400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
			}
		case 1, 58:
			if r.PortRangeMin != nil && (*r.PortRangeMin < 0 || *r.PortRangeMin > 255) {
				return nil, errf(400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP type (port_range_min) %d. It must be 0 to 255.", *r.PortRangeMin)
			}
			if r.PortRangeMax != nil && (*r.PortRangeMax < 0 || *r.PortRangeMax > 255) {
				return nil, errf(400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP code (port_range_max) %d. It must be 0 to 255.", *r.PortRangeMax)
			}
			if r.PortRangeMax != nil && r.PortRangeMin == nil {
				return nil, errf(400, "SecurityGroupMissingIcmpType", "ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *r.PortRangeMax)
			}
		default:
			return nil, errf(400, "SecurityGroupInvalidPortRange", "Port ranges are only valid for TCP, UDP, SCTP, DCCP, UDP-Lite and ICMP protocols (protocol %s)", r.Protocol)
		}
	}
	if req.RemoteIPPrefix.Set && !req.RemoteIPPrefix.Null && req.RemoteIPPrefix.V != "" {
		s := req.RemoteIPPrefix.V
		if strings.Contains(s, ":") {
			if r.EtherType != "IPv6" {
				return nil, errf(400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype %s for CIDR %s", r.EtherType, s)
			}
			r.RemoteIPPrefix = s
		} else {
			if !strings.Contains(s, "/") {
				s += "/32"
			}
			if _, ok := parseCIDR(s); !ok {
				return nil, invalidInput("remote_ip_prefix", "'%s' is not a valid IP prefix", req.RemoteIPPrefix.V)
			}
			if r.EtherType != "IPv4" {
				return nil, errf(400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype %s for CIDR %s", r.EtherType, s)
			}
			// Kept as given, host bits and all; normalized_cidr shows
			// it masked (recorded: sgr-create-prefix-hostbits).
			r.RemoteIPPrefix = strings.TrimSpace(s)
		}
	}
	if req.RemoteGroupID.Set && !req.RemoteGroupID.Null && req.RemoteGroupID.V != "" {
		if r.RemoteIPPrefix != "" {
			return nil, errf(400, "SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
		}
		r.RemoteGroupID = req.RemoteGroupID.V
	}
	sgd := h.defs["security-groups"]
	err := h.txn(rc, func(tx *store.Tx) error {
		sg, err := txGet[*model.SecurityGroup](tx, model.KindSecurityGroup, req.SecurityGroup.V)
		if err != nil {
			return err
		}
		if sg == nil || !sgd.isVisible(rc, sg) {
			return notFound("SecurityGroupNotFound", "Security group", req.SecurityGroup.V)
		}
		// The rule is the caller's, as in Neutron: an admin's rule in
		// another project's group is the admin's (recorded: rev-sgr,
		// made by the noauth admin of fake_project_id).
		project := sg.ProjectID
		if rc.project != "" {
			project = rc.project
		}
		if req.TenantID.Set || req.ProjectID.Set {
			if project, err = projectOf(rc, req.TenantID, req.ProjectID); err != nil {
				return err
			}
		}
		if !rc.admin && project != sg.ProjectID {
			return notFound("SecurityGroupNotFound", "Security group", sg.ID)
		}
		if r.RemoteGroupID != "" {
			rg, err := txGet[*model.SecurityGroup](tx, model.KindSecurityGroup, r.RemoteGroupID)
			if err != nil {
				return err
			}
			if rg == nil || !sgd.isVisible(rc, rg) {
				return notFound("SecurityGroupNotFound", "Security group", r.RemoteGroupID)
			}
		}
		r.SecurityGroupID = sg.ID
		stamp(&r.Base, newID(), project, oStr{}, req.Description)
		rules, _, err := h.listRaw(rc, refPrefix(refSGRules, sg.ID))
		if err != nil {
			return err
		}
		for _, kv := range rules {
			o, err := txGet[*model.SGRule](tx, model.KindSGRule, kv.val)
			if err != nil {
				return err
			}
			if o != nil && sameRule(o, r) {
				return conflict("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", o.ID)
			}
		}
		if err := claimQuota(tx, r.ProjectID, "security_group_rule"); err != nil {
			return err
		}
		// A rule change bumps its group's revision, as in Neutron
		// (recorded: sg-show-with-rules); the write also serializes rule
		// creates on one group, which makes the duplicate check race-free.
		touch(&sg.Base)
		if err := tx.Put(sg); err != nil {
			return err
		}
		return storeRuleTx(tx, r)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func intp(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func sameRule(a, b *model.SGRule) bool {
	norm := func(p string) string {
		if n, ok := protoNames[p]; ok {
			return strconv.Itoa(n)
		}
		return p
	}
	pfx := func(r *model.SGRule) string {
		m := maskedCIDR(r.RemoteIPPrefix)
		if m == "0.0.0.0/0" || m == "::/0" {
			return ""
		}
		return m
	}
	return a.Direction == b.Direction && a.EtherType == b.EtherType && norm(a.Protocol) == norm(b.Protocol) &&
		intp(a.PortRangeMin) == intp(b.PortRangeMin) && intp(a.PortRangeMax) == intp(b.PortRangeMax) &&
		pfx(a) == pfx(b) && a.RemoteGroupID == b.RemoteGroupID
}

func (h *handler) updateRule(rc *reqCtx, id string) (model.Record, error) {
	var req ruleReq
	if err := readNamed(rc, "security_group_rule", &req, "tenant_id", "project_id", "security_group_id", "direction",
		"ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "remote_address_group_id"); err != nil {
		return nil, err
	}
	r, err := ownedUpdate(h, rc, "security-group-rules", id, func(tx *store.Tx, r *model.SGRule) error {
		setNameDesc(&r.Base, oStr{}, req.Description)
		touch(&r.Base)
		return tx.Put(r)
	})
	return r, err
}

func (h *handler) deleteRule(rc *reqCtx, id string) error {
	_, err := ownedTxn(h, rc, "security-group-rules", id, func(tx *store.Tx, r *model.SGRule) error {
		tx.DelRaw(refKey(refSGRules, r.SecurityGroupID, r.ID))
		tx.Delete(model.KindSGRule, id)
		countUsage(tx, r.ProjectID, "security_group_rule", -1)
		sg, err := txGet[*model.SecurityGroup](tx, model.KindSecurityGroup, r.SecurityGroupID)
		if err != nil || sg == nil {
			return err
		}
		touch(&sg.Base)
		return tx.Put(sg)
	})
	return err
}
