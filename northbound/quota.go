package northbound

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/store"
)

// Quota enforcement. Each project keeps one counter per resource,
// nb/usage/<project>/<resource>, moved in the same transaction that
// creates or deletes a record, so the count and the records never
// disagree and two replicas cannot both take the last unit: creates are
// serializable STM transactions that read the counter (a conflicting
// commit retries them), and plan-based deletes guard the counter's
// revision (release, resolved in commit).
//
// As in Neutron, a create the caller asks for (claimQuota) is refused
// at the limit, while records made on the caller's behalf (the default
// security group and its rules, a new group's egress rules, router
// interface and VIP ports) are counted (countUsage) but never refused.
// Records of no project (router gateway and floating IP ports) are not
// counted.

func usageKey(project, resource string) string { return nbPrefix + "usage/" + project + "/" + resource }
func usagePrefix(project string) string        { return nbPrefix + "usage/" + project + "/" }

func txUsage(tx *store.Tx, project, resource string) int {
	n, _ := strconv.Atoi(tx.GetRaw(usageKey(project, resource)))
	return n
}

// quotaLimit is project's limit for resource (-1: unlimited), read in tx
// so a concurrent quota change also conflicts.
func quotaLimit(tx *store.Tx, project, resource string) int {
	lim := defaultQuotas[resource]
	if v := tx.GetRaw(quotaKey(project)); v != "" {
		cur := map[string]int{}
		if json.Unmarshal([]byte(v), &cur) == nil {
			if l, ok := cur[resource]; ok {
				lim = l
			}
		}
	}
	return lim
}

func overQuota(resource string) *apiError {
	return errf(http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['%s'].", resource)
}

// claimQuota counts one more resource for project in tx, refusing with
// 409 OverQuota when the project already has its limit.
func claimQuota(tx *store.Tx, project, resource string) error {
	if err := checkQuota(tx, project, resource); err != nil {
		return err
	}
	countUsage(tx, project, resource, 1)
	return nil
}

// checkQuota is claimQuota for a caller whose write counts the record
// itself (putRuleTx).
func checkQuota(tx *store.Tx, project, resource string) error {
	if project == "" {
		return nil
	}
	if lim := quotaLimit(tx, project, resource); lim >= 0 && txUsage(tx, project, resource) >= lim {
		return overQuota(resource)
	}
	return nil
}

// countUsage moves project's counter for resource by delta in tx,
// without refusing (never below zero).
func countUsage(tx *store.Tx, project, resource string, delta int) {
	if project == "" {
		return
	}
	tx.PutRaw(usageKey(project, resource), strconv.Itoa(max(0, txUsage(tx, project, resource)+delta)))
}

// release counts, in plan p, one resource of project as deleted.
func (p *plan) release(project, resource string) {
	if project == "" {
		return
	}
	if p.usage == nil {
		p.usage = map[string]int{}
	}
	p.usage[usageKey(project, resource)]++
}

// resolveUsage turns p's releases into guarded counter writes: each
// counter is read now and the plan commits only if it is unchanged.
func (h *handler) resolveUsage(rc *reqCtx, p *plan) error {
	for key, n := range p.usage {
		resp, err := h.st.Client().Get(rc, store.Prefix+key)
		if err != nil {
			return fmt.Errorf("northbound: %w: %w", store.ErrUnavailable, err)
		}
		cur, rev := 0, int64(0)
		if len(resp.Kvs) > 0 {
			cur, _ = strconv.Atoi(string(resp.Kvs[0].Value))
			rev = resp.Kvs[0].ModRevision
		}
		p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(store.Prefix+key), "=", rev))
		p.ops = append(p.ops, clientv3.OpPut(store.Prefix+key, strconv.Itoa(max(0, cur-n))))
	}
	return nil
}

// usage reads project's counters (resource -> used).
func (h *handler) usage(rc *reqCtx, project string) (map[string]int, error) {
	kvs, _, err := h.listRaw(rc, usagePrefix(project))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, kv := range kvs {
		n, _ := strconv.Atoi(kv.val)
		out[kv.key[len(usagePrefix(project)):]] = n
	}
	return out, nil
}
