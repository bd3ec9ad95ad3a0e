package northbound

import (
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

type sgReq struct {
	nameAttrs
	ownerAttrs
	Stateful oBool `json:"stateful"`
}

func (h *handler) secGroupDef() *resDef {
	d := &resDef{singular: "security_group", plural: "security_groups", path: "security-groups",
		kind: model.KindSecurityGroup, what: "Security group", notFoundType: "SecurityGroupNotFound",
		attrs: attrSet("security_group_rules stateful shared"),
	}
	d.beforeList = func(rc *reqCtx) error {
		// Each project gets its default group on first use; listing
		// counts as use (as in Neutron).
		projects := map[string]bool{}
		if rc.project != "" {
			projects[rc.project] = true
		}
		if rc.admin {
			for _, k := range []string{"project_id", "tenant_id"} {
				for _, p := range rc.r.URL.Query()[k] {
					if p != "" && len(p) <= 255 && !strings.Contains(p, "/") {
						projects[p] = true
					}
				}
			}
		}
		for p := range projects {
			if err := h.ensureDefaultSGOutside(rc, p); err != nil {
				return err
			}
		}
		return nil
	}
	d.views = viewsWith(func(rc *reqCtx) (map[string][]any, error) {
		rules, err := listT[*model.SGRule](h, rc, model.KindSGRule)
		if err != nil {
			return nil, err
		}
		bySG := map[string][]any{}
		for _, r := range rules {
			// Rules inside a group carry tags and standard_attr_id;
			// a rule shown alone does not (recorded: sg-show, sgr-show).
			rv := ruleView(r)
			rv["tags"] = []any{}
			rv["standard_attr_id"] = standardAttrID(r.ID)
			bySG[r.SecurityGroupID] = append(bySG[r.SecurityGroupID], rv)
		}
		return bySG, nil
	}, func(rc *reqCtx, bySG map[string][]any, sg *model.SecurityGroup) map[string]any {
		v := baseView(sg)
		v["security_group_rules"] = append([]any{}, bySG[sg.ID]...)
		v["stateful"] = true
		v["shared"] = false
		return v
	})
	d.create = h.createSG
	d.update = h.updateSG
	d.del = h.deleteSG
	return d
}

// standardAttrID stands in for Neutron's standard attribute row id: a
// stable number derived from the resource id.
func standardAttrID(id string) int {
	n := 0
	for _, c := range strings.ReplaceAll(id, "-", "")[:min(7, len(strings.ReplaceAll(id, "-", "")))] {
		n = n*16 + int(hexVal(c))
	}
	return n + 1
}

func hexVal(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return 0
}

// ensureDefaultSG returns the project's default group, creating it with
// Neutron's default rules inside tx if it does not exist yet. The
// nb/defaultsg/<project> key makes concurrent first uses agree.
func (h *handler) ensureDefaultSG(tx *store.Tx, project string) (string, error) {
	if id := tx.GetRaw(defaultSGKey(project)); id != "" {
		return id, nil
	}
	sg := &model.SecurityGroup{}
	stamp(&sg.Base, newID(), project, oStr{Set: true, V: "default"}, oStr{Set: true, V: "Default security group"})
	// Counted, never refused, with its rules (as in Neutron).
	countUsage(tx, project, "security_group", 1)
	if err := tx.Put(sg); err != nil {
		return "", err
	}
	for _, r := range []*model.SGRule{
		newRule(project, sg.ID, "egress", "IPv4", ""),
		newRule(project, sg.ID, "egress", "IPv6", ""),
		newRule(project, sg.ID, "ingress", "IPv4", sg.ID),
		newRule(project, sg.ID, "ingress", "IPv6", sg.ID),
	} {
		if err := putRuleTx(tx, r); err != nil {
			return "", err
		}
	}
	tx.PutRaw(defaultSGKey(project), sg.ID)
	return sg.ID, nil
}

// ensureDefaultSGOutside creates the default group if a plain read says
// it is missing.
func (h *handler) ensureDefaultSGOutside(rc *reqCtx, project string) error {
	v, err := h.getRaw(rc, defaultSGKey(project))
	if err != nil || v != "" {
		return err
	}
	return h.txn(rc, func(tx *store.Tx) error {
		_, err := h.ensureDefaultSG(tx, project)
		return err
	})
}

func (h *handler) createSG(rc *reqCtx) (model.Record, error) {
	var req sgReq
	project, err := readCreate(rc, "security_group", &req)
	if err != nil {
		return nil, err
	}
	if req.Stateful.Set && !req.Stateful.Null && !req.Stateful.V {
		return nil, badRequest("Stateless security groups are not supported.")
	}
	if req.Name.V == "default" {
		return nil, conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
	}
	sg := &model.SecurityGroup{}
	stamp(&sg.Base, newID(), project, req.Name, req.Description)
	err = h.txn(rc, func(tx *store.Tx) error {
		// The claim comes before the default group is made, as Neutron
		// checks the quota before its plugin adds the default group.
		if err := claimQuota(tx, project, "security_group"); err != nil {
			return err
		}
		if _, err := h.ensureDefaultSG(tx, project); err != nil {
			return err
		}
		for _, eth := range []string{"IPv4", "IPv6"} {
			r := newRule(project, sg.ID, "egress", eth, "")
			if err := putRuleTx(tx, r); err != nil {
				return err
			}
		}
		return tx.Put(sg)
	})
	if err != nil {
		return nil, err
	}
	return sg, nil
}

func (h *handler) updateSG(rc *reqCtx, id string) (model.Record, error) {
	var req sgReq
	if err := readNamed(rc, "security_group", &req, "tenant_id", "project_id"); err != nil {
		return nil, err
	}
	if req.Stateful.Set && !req.Stateful.Null && !req.Stateful.V {
		return nil, badRequest("Stateless security groups are not supported.")
	}
	sg, err := ownedUpdate(h, rc, "security-groups", id, func(tx *store.Tx, sg *model.SecurityGroup) error {
		isDefault := tx.GetRaw(defaultSGKey(sg.ProjectID)) == sg.ID
		if req.Name.Set && req.Name.V != sg.Name && (isDefault || req.Name.V == "default") {
			return conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
		}
		setNameDesc(&sg.Base, req.Name, req.Description)
		touch(&sg.Base)
		return tx.Put(sg)
	})
	return sg, err
}

func (h *handler) deleteSG(rc *reqCtx, id string) error {
	return ownedPlan(h, rc, "security-groups", id, func(sg *model.SecurityGroup, rev int64) (*plan, error) {
		def, err := h.getRaw(rc, defaultSGKey(sg.ProjectID))
		if err != nil {
			return nil, err
		}
		if def == id && !rc.admin {
			return nil, conflict("SecurityGroupInUse", "Security Group %s in use.", id)
		}
		p := &plan{}
		p.delRecord(model.KindSecurityGroup, id, rev)
		p.release(sg.ProjectID, "security_group")
		if err := h.noRefs(rc, p, refPrefix(refSGPorts, id), conflict("SecurityGroupInUse", "Security Group %s in use.", id)); err != nil {
			return nil, err
		}
		if err := h.delChildren(rc, p, refPrefix(refSGRules, id), model.KindSGRule, "security_group_rule"); err != nil {
			return nil, err
		}
		if def == id {
			p.del(defaultSGKey(sg.ProjectID))
		}
		return p, nil
	})
}
