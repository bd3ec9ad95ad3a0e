package northbound

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nimbus-sdn/nimbus/store"
)

// Quota enforcement. A project's usage of a resource is split over
// usageShards counters, nb/usage/<project>/<resource>/<k>, plus an
// overflow counter nb/usage/<project>/<resource>/over, moved in the same
// transaction that creates or deletes a record, so the count and the
// records never disagree.
//
// The limit L is divided over the shards (shardCap: the capacities sum to
// exactly L; -1, unlimited, bounds no shard). A create (claimQuota)
// starts at a random shard and takes a unit in the first one below its
// capacity, reading only the shards it probes in its serializable STM
// transaction: concurrent creates of one project mostly touch different
// shards and do not conflict, and no shard passes its capacity, so the
// project never passes L. With every shard full the create is refused.
//
// Records made on the caller's behalf (countUsage) are never refused: at
// the limit they go to the overflow counter. Invariant: the overflow is
// non-zero only while every shard is full. Claims read it (it rarely
// changes, so this costs no conflicts) and refuse while it is non-zero;
// deletes drain it before any shard; a quota change (rebalanceUsage)
// redistributes the counters for the new capacities. Plan-based deletes
// (release, resolved in commit) guard the overflow and each shard they
// decrement.
//
// As in Neutron, a create the caller asks for (claimQuota) is refused
// at the limit, while records made on the caller's behalf (the default
// security group and its rules, a new group's egress rules, router
// interface and VIP ports) are counted (countUsage) but never refused.
// Records of no project (router gateway and floating IP ports) are not
// counted.

const usageShards = 16

func usagePrefix(project string) string { return nbPrefix + "usage/" + project + "/" }

// usageBase is the prefix of project's counters for resource.
func usageBase(project, resource string) string { return usagePrefix(project) + resource + "/" }

func shardKey(base string, k int) string { return base + strconv.Itoa(k) }
func overKey(base string) string         { return base + "over" }

// shardCap is shard k's capacity under limit lim (-1: unbounded).
func shardCap(lim, k int) int {
	if lim < 0 {
		return -1
	}
	c := lim / usageShards
	if k < lim%usageShards {
		c++
	}
	return c
}

func txCount(tx *store.Tx, key string) int {
	n, _ := strconv.Atoi(tx.GetRaw(key))
	return n
}

// quotaLimit is project's limit for resource (-1: unlimited), read in tx
// so a concurrent quota change also conflicts.
func quotaLimit(tx *store.Tx, project, resource string) int {
	return limitOf(tx.GetRaw(quotaKey(project)), resource)
}

// limitOf is resource's limit under the stored overrides v.
func limitOf(v, resource string) int {
	lim := defaultQuotas[resource]
	if v != "" {
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
	if project == "" {
		return nil
	}
	if !takeShard(tx, usageBase(project, resource), quotaLimit(tx, project, resource)) {
		return overQuota(resource)
	}
	return nil
}

// nextShard spreads the start shards of concurrent claims: a process
// hands them out in turn from a random offset, so its in-flight claims
// start on different shards (a random pick per claim collides often: 16
// concurrent claims on 16 shards rarely all differ).
var nextShard atomic.Uint32

func init() { nextShard.Store(rand.Uint32()) }

// takeShard adds one unit to a shard of base below its capacity under
// lim, probing from the next start shard; false if every shard is full
// (or the overflow is in use, which means the same).
func takeShard(tx *store.Tx, base string, lim int) bool {
	start := int(nextShard.Add(1) % usageShards)
	if lim < 0 {
		key := shardKey(base, start)
		tx.PutRaw(key, strconv.Itoa(txCount(tx, key)+1))
		return true
	}
	if txCount(tx, overKey(base)) > 0 {
		return false
	}
	for i := range usageShards {
		k := (start + i) % usageShards
		c := shardCap(lim, k)
		if c == 0 {
			continue
		}
		key := shardKey(base, k)
		if n := txCount(tx, key); n < c {
			tx.PutRaw(key, strconv.Itoa(n+1))
			return true
		}
	}
	return false
}

// countUsage moves project's usage of resource by delta in tx, without
// refusing (never below zero).
func countUsage(tx *store.Tx, project, resource string, delta int) {
	if project == "" || delta == 0 {
		return
	}
	base := usageBase(project, resource)
	if delta > 0 {
		lim := quotaLimit(tx, project, resource)
		for range delta {
			if !takeShard(tx, base, lim) {
				tx.PutRaw(overKey(base), strconv.Itoa(txCount(tx, overKey(base))+1))
			}
		}
		return
	}
	for range -delta {
		dropUsage(tx, base)
	}
}

// dropUsage takes one unit off base's counters in tx: the overflow
// first, else a non-empty shard probed from a random start.
func dropUsage(tx *store.Tx, base string) {
	if n := txCount(tx, overKey(base)); n > 0 {
		tx.PutRaw(overKey(base), strconv.Itoa(n-1))
		return
	}
	start := rand.IntN(usageShards)
	for i := range usageShards {
		key := shardKey(base, (start+i)%usageShards)
		if n := txCount(tx, key); n > 0 {
			tx.PutRaw(key, strconv.Itoa(n-1))
			return
		}
	}
}

// rebalanceUsage redistributes, in tx, project's counters for resource
// for the limit lim: shards are filled up to their capacities in order
// and the rest goes to the overflow (unlimited: spread evenly, no
// overflow). It restores the invariant after a quota change.
func rebalanceUsage(tx *store.Tx, project, resource string, lim int) {
	base := usageBase(project, resource)
	cur := make([]int, usageShards)
	total := txCount(tx, overKey(base))
	oldOver := total
	for k := range cur {
		cur[k] = txCount(tx, shardKey(base, k))
		total += cur[k]
	}
	rest := total
	for k := range cur {
		n := total / usageShards
		if k < total%usageShards {
			n++
		}
		if lim >= 0 {
			n = min(rest, shardCap(lim, k))
		}
		rest -= n
		if n != cur[k] {
			tx.PutRaw(shardKey(base, k), strconv.Itoa(n))
		}
	}
	if rest != oldOver {
		tx.PutRaw(overKey(base), strconv.Itoa(rest))
	}
}

// release counts, in plan p, one resource of project as deleted.
func (p *plan) release(project, resource string) {
	if project == "" {
		return
	}
	if p.usage == nil {
		p.usage = map[string]int{}
	}
	p.usage[usageBase(project, resource)]++
}

// resolveUsage turns p's releases into guarded counter writes: the
// counters are read now, the overflow is drained first, then non-empty
// shards from a random start; the plan commits only if the overflow and
// every shard it decrements are unchanged.
func (h *handler) resolveUsage(rc *reqCtx, p *plan) error {
	for base, n := range p.usage {
		kvs, _, err := h.listRaw(rc, base)
		if err != nil {
			return err
		}
		type counter struct {
			n   int
			rev int64
		}
		shards := make([]counter, usageShards)
		var over counter
		for _, kv := range kvs {
			v, _ := strconv.Atoi(kv.val)
			switch s := kv.key[len(base):]; s {
			case "over":
				over = counter{v, kv.modRev}
			default:
				if k, err := strconv.Atoi(s); err == nil && k >= 0 && k < usageShards {
					shards[k] = counter{v, kv.modRev}
				}
			}
		}
		key := overKey(base)
		p.Guard(store.RawAt(key, over.rev))
		if d := min(n, over.n); d > 0 {
			p.PutRaw(key, strconv.Itoa(over.n-d))
			n -= d
		}
		start := rand.IntN(usageShards)
		for i := 0; i < usageShards && n > 0; i++ {
			k := (start + i) % usageShards
			if d := min(n, shards[k].n); d > 0 {
				key := shardKey(base, k)
				p.Guard(store.RawAt(key, shards[k].rev))
				p.PutRaw(key, strconv.Itoa(shards[k].n-d))
				n -= d
			}
		}
	}
	return nil
}

// usage reads project's counters (resource -> used, the sum of its
// shards and overflow).
func (h *handler) usage(rc *reqCtx, project string) (map[string]int, error) {
	kvs, _, err := h.listRaw(rc, usagePrefix(project))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, kv := range kvs {
		res, _, ok := strings.Cut(kv.key[len(usagePrefix(project)):], "/")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(kv.val)
		out[res] += n
	}
	return out, nil
}
