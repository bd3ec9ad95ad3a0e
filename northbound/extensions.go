package northbound

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/nimbus-sdn/nimbus/store"
)

type extension struct{ alias, name, desc string }

var extensionList = []extension{
	{"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."},
	{"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"},
	{"extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side by atomically adding/removing extra routes"},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"},
	{"external-net", "Neutron external network", "Adds external network attribute to network resource."},
	{"security-group", "security-group", "The security groups extension."},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
	{"port-security", "Port Security", "Provides port security"},
	{"quotas", "Quota management support", "Expose functions for quotas management per project"},
	{"lbaas", "LoadBalancing service", "Extension for LoadBalancing service (LBaaS v1)"},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
	{"filter-validation", "Filter parameters validation", "Provides validation on filter parameters."},
	{"dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."},
	{"fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"},
	{"security-groups-normalized-cidr", "Normalized CIDR field for security group rules", "Add new field with normalized remote_ip_prefix cidr in SG rule"},
}

func extView(e extension) map[string]any {
	return map[string]any{"alias": e.alias, "name": e.name, "description": e.desc,
		"updated": "2013-01-01T00:00:00-00:00", "links": []any{}}
}

func (h *handler) extensionsAPI(rest []string) (int, any, error) {
	if len(rest) == 0 {
		out := []any{}
		for _, e := range extensionList {
			out = append(out, extView(e))
		}
		return http.StatusOK, map[string]any{"extensions": out}, nil
	}
	if len(rest) == 1 {
		for _, e := range extensionList {
			if e.alias == rest[0] {
				return http.StatusOK, map[string]any{"extension": extView(e)}, nil
			}
		}
		return 0, nil, plainNotFound("Extension with alias " + rest[0] + " does not exist")
	}
	return 0, nil, plainNotFound("The resource could not be found.")
}

// ---- quotas ----

// Quotas are enforced on create for network, subnet, port, router,
// floatingip, security_group and security_group_rule (quota.go: a
// per-project usage counter, sharded, moved in the create and delete
// transactions); the LBaaS and other limits are stored and reported
// only. -1 is unlimited.

var defaultQuotas = map[string]int{"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
	"security_group": 10, "security_group_rule": 100, "pool": 10, "vip": 10, "member": -1, "health_monitor": -1,
	"subnetpool": -1, "rbac_policy": 10}

func (h *handler) quotasAPI(rc *reqCtx, rest []string) (int, any, error) {
	m := rc.r.Method
	switch {
	case len(rest) == 0 && m == http.MethodGet:
		if !rc.admin {
			return 0, nil, forbidden("(rule:get_quota) is disallowed by policy")
		}
		kvs, _, err := h.listRaw(rc, nbPrefix+"quota/")
		if err != nil {
			return 0, nil, err
		}
		out := []any{}
		for _, kv := range kvs {
			p := kv.key[strings.LastIndex(kv.key, "/")+1:]
			q := h.mergedQuota(kv.val)
			q["project_id"], q["tenant_id"] = p, p
			out = append(out, q)
		}
		return http.StatusOK, map[string]any{"quotas": out}, nil
	case len(rest) == 0:
		return 0, nil, methodNotAllowed()
	}
	project := rest[0]
	if project == "tenant" || project == "project" {
		// GET /v2.0/quotas/tenant: the caller's own project.
		return http.StatusOK, map[string]any{"tenant": map[string]any{"tenant_id": rc.project}}, nil
	}
	if !rc.admin && project != rc.project {
		return 0, nil, forbidden("(rule:get_quota) is disallowed by policy")
	}
	switch {
	case len(rest) == 2 && rest[1] == "default" && m == http.MethodGet:
		return http.StatusOK, map[string]any{"quota": h.mergedQuota("")}, nil
	case len(rest) == 2 && rest[1] == "details" && m == http.MethodGet:
		v, err := h.getRaw(rc, quotaKey(project))
		if err != nil {
			return 0, nil, err
		}
		used, err := h.usage(rc, project)
		if err != nil {
			return 0, nil, err
		}
		det := map[string]any{}
		for k, lim := range h.mergedQuota(v) {
			det[k] = map[string]any{"limit": lim, "used": used[k], "reserved": 0}
		}
		return http.StatusOK, map[string]any{"quota": det}, nil
	case len(rest) != 1:
		return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	case m == http.MethodGet:
		v, err := h.getRaw(rc, quotaKey(project))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"quota": h.mergedQuota(v)}, nil
	case m == http.MethodPut:
		if !rc.admin {
			return 0, nil, forbidden("(rule:update_quota) is disallowed by policy")
		}
		b, err := readRawBody(rc)
		if err != nil {
			return 0, nil, err
		}
		var body map[string]map[string]json.RawMessage
		if err := json.Unmarshal(b, &body); err != nil || body["quota"] == nil {
			return 0, nil, badRequest("Unable to find 'quota' in request body")
		}
		set := map[string]int{}
		keys := make([]string, 0, len(body["quota"]))
		for k := range body["quota"] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := defaultQuotas[k]; !ok {
				return 0, nil, badRequest("Unrecognized attribute(s) '%s'", k)
			}
			var n oInt
			if err := json.Unmarshal(body["quota"][k], &n); err != nil || n.Null {
				// Recorded: quota-update-bad.
				return 0, nil, invalidOp("'%s' is not an integer", trimJSON(body["quota"][k]))
			}
			if n.V < -1 {
				// Recorded: quota-update-below.
				return 0, nil, invalidInput(k, "'%d' is too small - must be at least '-1'", n.V)
			}
			set[k] = n.V
		}
		var merged map[string]any
		err = h.txn(rc, func(tx *store.Tx) error {
			cur := map[string]int{}
			if v := tx.GetRaw(quotaKey(project)); v != "" {
				json.Unmarshal([]byte(v), &cur)
			}
			for k, v := range set {
				cur[k] = v
			}
			nb, _ := json.Marshal(cur)
			tx.PutRaw(quotaKey(project), string(nb))
			// The usage counters' capacities follow the limit.
			for _, k := range keys {
				rebalanceUsage(tx, project, k, cur[k])
			}
			merged = h.mergedQuota(string(nb))
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{"quota": merged}, nil
	case m == http.MethodDelete:
		if !rc.admin {
			return 0, nil, forbidden("(rule:delete_quota) is disallowed by policy")
		}
		err := h.txn(rc, func(tx *store.Tx) error {
			cur := map[string]int{}
			if v := tx.GetRaw(quotaKey(project)); v != "" {
				json.Unmarshal([]byte(v), &cur)
			}
			tx.DelRaw(quotaKey(project))
			// Back to the defaults: the counters' capacities follow.
			for k := range cur {
				if _, ok := defaultQuotas[k]; ok {
					rebalanceUsage(tx, project, k, defaultQuotas[k])
				}
			}
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusNoContent, nil, nil
	}
	return 0, nil, methodNotAllowed()
}

func (h *handler) mergedQuota(stored string) map[string]any {
	out := map[string]any{}
	for k, v := range defaultQuotas {
		out[k] = v
	}
	cur := map[string]int{}
	if stored != "" {
		json.Unmarshal([]byte(stored), &cur)
	}
	for k, v := range cur {
		out[k] = v
	}
	return out
}
