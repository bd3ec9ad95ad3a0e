package northbound

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// Keys the API keeps beside the model records, all under store.Prefix:
//
//	nb/ipam/<subnet>/<ip>          owner port id (one key per allocated IP)
//	nb/mac/<mac>                   owner port id
//	nb/seg/<type>/<physnet>/<id>   owner network id
//	nb/ref/<parent kind>/<parent>/<child>   reference index (in-use checks)
//	nb/fipassoc/<port>             {fixed ip: floating ip id}
//	nb/defaultsg/<project>         id of the project's default group
//	nb/extra/<kind>/<id>           attributes the model has no field for
//	nb/quota/<project>             quota overrides
//	nb/usage/<project>/<resource>/<k|over>  records counted against the quota, sharded (quota.go)
const nbPrefix = "nb/"

func ipamKey(subnet, ip string) string         { return nbPrefix + "ipam/" + subnet + "/" + ip }
func ipamPrefix(subnet string) string          { return nbPrefix + "ipam/" + subnet + "/" }
func macKey(mac string) string                 { return nbPrefix + "mac/" + mac }
func refPrefix(kind, parent string) string     { return nbPrefix + "ref/" + kind + "/" + parent + "/" }
func refKey(kind, parent, child string) string { return refPrefix(kind, parent) + child }
func fipAssocKey(port string) string           { return nbPrefix + "fipassoc/" + port }
func defaultSGKey(project string) string       { return nbPrefix + "defaultsg/" + project }
func extraKey(k model.Kind, id string) string  { return nbPrefix + "extra/" + string(k) + "/" + id }
func quotaKey(project string) string           { return nbPrefix + "quota/" + project }
func segKey(typ, physnet string, id int) string {
	if physnet == "" {
		physnet = "-"
	}
	return fmt.Sprintf("%sseg/%s/%s/%d", nbPrefix, typ, physnet, id)
}

// vlanIDKey reserves a VLAN id across every physical network: the data
// plane keys a VLAN network by its id alone (the fabric carries every
// physnet's tags on the same links), so one id serves one network.
func vlanIDKey(id int) string { return fmt.Sprintf("%sseg/vlan-id/%d", nbPrefix, id) }

func segPrefix(typ, physnet string) string {
	if physnet == "" {
		physnet = "-"
	}
	return fmt.Sprintf("%sseg/%s/%s/", nbPrefix, typ, physnet)
}

// Reference kinds.
const (
	refNetPorts    = "net"    // network -> ports
	refNetSubnets  = "netsub" // network -> subnets
	refSGPorts     = "sg"     // security group -> ports
	refSGRules     = "sgrule" // security group -> its rules
	refSubnetPools = "subnet" // subnet -> LB pools
	refRouterFIPs  = "router" // router -> floating IPs
	refPoolMembers = "pool"   // pool -> members
	refHMPools     = "hm"     // health monitor -> pools
)

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }

// errAbort carries an API error out of a store transaction without
// letting the store classify its text.
var errAbort = errors.New("northbound: transaction aborted")

// txn runs fn in a serializable store transaction; an error fn returns
// (an *apiError) is returned as is. In a bulk create fn runs in the
// bulk's transaction (rc.bulk), which commits after the last item.
func (h *handler) txn(rc *reqCtx, fn func(tx *store.Tx) error) error {
	if rc.bulk != nil {
		return fn(rc.bulk)
	}
	var fnErr error
	_, err := h.st.Txn(rc, func(tx *store.Tx) error {
		fnErr = nil
		if e := fn(tx); e != nil {
			fnErr = e
			return errAbort
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// txGet reads a typed record in a transaction (nil, nil if absent).
func txGet[T model.Record](tx *store.Tx, k model.Kind, id string) (T, error) {
	var zero T
	if id == "" || strings.Contains(id, "/") {
		return zero, nil
	}
	r, err := tx.Get(k, id)
	if err != nil || r == nil {
		return zero, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("northbound: %s %s has an unexpected type", k, id)
	}
	return t, nil
}

// get reads one record with its modification revision (nil if absent).
func (h *handler) get(rc *reqCtx, k model.Kind, id string) (model.Record, int64, error) {
	if id == "" || strings.Contains(id, "/") {
		return nil, 0, nil
	}
	r, rev, err := h.st.Get(rc, k, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	return r, rev, err
}

func getT[T model.Record](h *handler, rc *reqCtx, k model.Kind, id string) (T, int64, error) {
	var zero T
	r, rev, err := h.get(rc, k, id)
	if err != nil || r == nil {
		return zero, 0, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, 0, fmt.Errorf("northbound: %s %s has an unexpected type", k, id)
	}
	return t, rev, nil
}

// listKind reads every record of a kind straight from etcd.
func (h *handler) listKind(rc *reqCtx, k model.Kind) ([]model.Record, error) {
	rs, err := h.st.List(rc, k)
	if err != nil {
		return nil, fmt.Errorf("northbound: %w", err)
	}
	return rs, nil
}

func listT[T model.Record](h *handler, rc *reqCtx, k model.Kind) ([]T, error) {
	rs, err := h.listKind(rc, k)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.(T))
	}
	return out, nil
}

// rawKV is one raw key read outside a transaction.
type rawKV struct {
	key    string // without store.Prefix
	val    string
	modRev int64
}

// listRaw reads the raw keys under prefix (relative to store.Prefix).
func (h *handler) listRaw(rc *reqCtx, prefix string) ([]rawKV, int64, error) {
	kvs, rev, err := h.st.ListRaw(rc, prefix)
	if err != nil {
		return nil, 0, fmt.Errorf("northbound: %w", err)
	}
	out := make([]rawKV, 0, len(kvs))
	if rc.bulk == nil {
		for _, kv := range kvs {
			out = append(out, rawKV{key: kv.Key, val: kv.Val, modRev: kv.ModRev})
		}
		return out, rev, nil
	}
	// In a bulk create, what the earlier items wrote counts: a subnet's
	// overlap check sees the batch's other subnets, a rule's duplicate
	// check its other rules.
	puts, dels := rc.bulk.Pending(prefix)
	for _, kv := range kvs {
		if dels[kv.Key] {
			continue
		}
		if v, ok := puts[kv.Key]; ok {
			out = append(out, rawKV{key: kv.Key, val: v})
			delete(puts, kv.Key)
			continue
		}
		out = append(out, rawKV{key: kv.Key, val: kv.Val, modRev: kv.ModRev})
	}
	for k, v := range puts {
		out = append(out, rawKV{key: k, val: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, rev, nil
}

func (h *handler) getRaw(rc *reqCtx, key string) (string, error) {
	v, err := h.st.GetRaw(rc, key)
	if err != nil {
		return "", fmt.Errorf("northbound: %w", err)
	}
	return v, nil
}

// plan is a guarded multi-key store.Plan for deletes whose in-use
// checks need "no key under this prefix", which a store.Tx cannot
// express: it commits only if every key read is unchanged and every
// guarded prefix is as observed.
type plan struct {
	store.Plan
	usage map[string]int // usage counter key -> records released (release)
}

// delRecord deletes a record last seen at modRev.
func (p *plan) delRecord(k model.Kind, id string, modRev int64) {
	p.Guard(store.RecordAt(k, id, modRev))
	p.DeleteRecord(k, id)
}

// putRecord replaces a record last seen at modRev.
func (p *plan) putRecord(r model.Record, modRev int64) error {
	p.Guard(store.RecordAt(r.Kind(), r.Key(), modRev))
	return p.PutRecord(r)
}

// del deletes a raw key unconditionally.
func (p *plan) del(key string) { p.DelRaw(key) }

// delPrefix deletes every raw key under prefix.
func (p *plan) delPrefix(prefix string) { p.DelPrefix(prefix) }

// empty guards that no key exists under prefix.
func (p *plan) empty(prefix string) { p.Guard(store.PrefixEmpty(prefix)) }

// unchangedSince guards that no key under prefix was created or changed
// after rev (deletions are caught by the per-key guards of the caller).
func (p *plan) unchangedSince(prefix string, rev int64) {
	p.Guard(store.PrefixUnchangedSince(prefix, rev))
}

// commit runs the plan; false means a guard failed (re-read and retry).
func (h *handler) commit(rc *reqCtx, p *plan) (bool, error) {
	if err := h.resolveUsage(rc, p); err != nil {
		return false, err
	}
	if _, err := h.st.Commit(rc, &p.Plan); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, nil
		}
		return false, fmt.Errorf("northbound: %w", err)
	}
	return true, nil
}

// noRefs refuses a delete with inUse (a 409) while any reference key
// exists under prefix, and guards plan p against one appearing before
// it commits.
func (h *handler) noRefs(rc *reqCtx, p *plan, prefix string, inUse error) error {
	kvs, _, err := h.listRaw(rc, prefix)
	if err != nil {
		return err
	}
	if len(kvs) > 0 {
		return inUse
	}
	p.empty(prefix)
	return nil
}

// delChildren deletes, in plan p, the records of kind k indexed under
// the reference prefix (their ids are the values) and the index itself;
// p fails if a child is added meanwhile. A child already gone is skipped.
// With a quota resource name, each deleted child is released from its
// project's usage.
func (h *handler) delChildren(rc *reqCtx, p *plan, prefix string, k model.Kind, resource ...string) error {
	kvs, rev, err := h.listRaw(rc, prefix)
	if err != nil {
		return err
	}
	p.unchangedSince(prefix, rev)
	for _, kv := range kvs {
		c, crev, err := h.get(rc, k, kv.val)
		if err != nil {
			return err
		}
		if crev > 0 {
			p.delRecord(k, kv.val, crev)
			for _, res := range resource {
				p.release(projectOfRecord(c), res)
			}
		}
	}
	p.delPrefix(prefix)
	return nil
}

// retryPlan builds and commits a plan until it succeeds or build fails.
func (h *handler) retryPlan(rc *reqCtx, build func() (*plan, error)) error {
	for i := 0; ; i++ {
		p, err := build()
		if err != nil {
			return err
		}
		ok, err := h.commit(rc, p)
		if err != nil || ok {
			return err
		}
		if i >= 50 {
			return errf(409, "Conflict", "The resource changed too often while the request ran; retry.")
		}
		if err := rc.Err(); err != nil {
			return fmt.Errorf("northbound: %w: %w", store.ErrUnavailable, err)
		}
	}
}

// Extra attributes the model has no field for.
func txGetExtra(tx *store.Tx, k model.Kind, id string) map[string]any {
	m := map[string]any{}
	if v := tx.GetRaw(extraKey(k, id)); v != "" {
		json.Unmarshal([]byte(v), &m)
	}
	return m
}

func txPutExtra(tx *store.Tx, k model.Kind, id string, m map[string]any) {
	b, _ := json.Marshal(m)
	tx.PutRaw(extraKey(k, id), string(b))
}

func (h *handler) extras(rc *reqCtx, k model.Kind) (map[string]map[string]any, error) {
	kvs, _, err := h.listRaw(rc, nbPrefix+"extra/"+string(k)+"/")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]any{}
	for _, kv := range kvs {
		m := map[string]any{}
		if json.Unmarshal([]byte(kv.val), &m) == nil {
			out[kv.key[strings.LastIndex(kv.key, "/")+1:]] = m
		}
	}
	return out, nil
}
