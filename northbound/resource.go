package northbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// resDef describes one Neutron collection.
type resDef struct {
	singular, plural string
	path             string // under /v2.0/
	kind             model.Kind
	what             string // "Network", for messages
	notFoundType     string // "NetworkNotFound"
	attrs            map[string]bool
	views            func(rc *reqCtx, recs []model.Record) ([]map[string]any, error)
	visible          func(rc *reqCtx, r model.Record) bool
	beforeList       func(rc *reqCtx) error
	create           func(rc *reqCtx) (model.Record, error)
	update           func(rc *reqCtx, id string) (model.Record, error)
	del              func(rc *reqCtx, id string) error
	action           func(rc *reqCtx, id string, rest []string) (int, any, error)
	// notFoundMsg overrides the not-found message (Neutron's wording
	// differs per resource); hiddenNotFound is the answer for a record
	// that exists but the caller may not see, when Neutron's differs.
	notFoundMsg    string
	hiddenNotFound *apiError
}

func attrSet(s string) map[string]bool {
	m := map[string]bool{"id": true, "name": true, "description": true, "tenant_id": true, "project_id": true,
		"created_at": true, "updated_at": true, "revision_number": true, "tags": true}
	for _, f := range strings.Fields(s) {
		m[f] = true
	}
	return m
}

func (h *handler) resources() []*resDef {
	return []*resDef{h.networkDef(), h.subnetDef(), h.portDef(), h.routerDef(), h.floatingIPDef(),
		h.secGroupDef(), h.sgRuleDef(), h.poolDef(), h.vipDef(), h.memberDef(), h.healthMonitorDef()}
}

// owns reports whether the caller may modify a resource of project p.
func (rc *reqCtx) owns(p string) bool { return rc.admin || (p != "" && p == rc.project) }

func projectOfRecord(r model.Record) string {
	b, _ := json.Marshal(r)
	var x struct {
		ProjectID string `json:"project_id"`
	}
	json.Unmarshal(b, &x)
	return x.ProjectID
}

func defaultVisible(rc *reqCtx, r model.Record) bool { return rc.owns(projectOfRecord(r)) }

func (d *resDef) isVisible(rc *reqCtx, r model.Record) bool {
	if d.visible != nil {
		return d.visible(rc, r)
	}
	return defaultVisible(rc, r)
}

func (d *resDef) notFound(id string) *apiError {
	if d.notFoundMsg != "" {
		return errf(http.StatusNotFound, d.notFoundType, d.notFoundMsg, id)
	}
	return notFound(d.notFoundType, d.what, id)
}

// invisible is the answer for a record the caller may not see.
func (d *resDef) invisible(r model.Record, id string) *apiError {
	if d.hiddenNotFound != nil && !isNil(r) {
		return d.hiddenNotFound
	}
	return d.notFound(id)
}

// toMap renders a record as its JSON object.
func toMap(r any) map[string]any {
	b, _ := json.Marshal(r)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	return m
}

// zeroBasedRevision shows a revision counted from 0 at create, as
// Neutron's subnets, security group rules and floating IPs are
// (recorded: sub-create, sgr-create-tcp, fip-create); the stored counter
// starts at 1 for every kind.
func zeroBasedRevision(v map[string]any) {
	if n, ok := v["revision_number"].(float64); ok && n > 0 {
		v["revision_number"] = n - 1
	}
}

// baseView adds what every Neutron resource shows.
func baseView(r model.Record, nullable ...string) map[string]any {
	m := toMap(r)
	if _, ok := m["project_id"]; !ok {
		m["project_id"] = ""
	}
	m["tenant_id"] = m["project_id"]
	for _, k := range []string{"name", "description", "created_at", "updated_at"} {
		if _, ok := m[k]; !ok {
			m[k] = ""
		}
	}
	if _, ok := m["revision_number"]; !ok {
		m["revision_number"] = 0
	}
	m["tags"] = []any{}
	for _, k := range nullable {
		if v, ok := m[k]; !ok || v == "" {
			m[k] = nil
		}
	}
	return m
}

func (h *handler) list(rc *reqCtx, d *resDef) (int, any, error) {
	if d.beforeList != nil {
		if err := d.beforeList(rc); err != nil {
			return 0, nil, err
		}
	}
	lq, err := parseListQuery(rc.r.URL.Query(), d.attrs)
	if err != nil {
		return 0, nil, err
	}
	recs, err := h.listKind(rc, d.kind)
	if err != nil {
		return 0, nil, err
	}
	vis := recs[:0]
	for _, r := range recs {
		if d.isVisible(rc, r) {
			vis = append(vis, r)
		}
	}
	views, err := d.views(rc, vis)
	if err != nil {
		return 0, nil, err
	}
	page, links, err := lq.apply(views, baseURL(rc.r)+"/v2.0/"+d.path, rc.r.URL.Query(), func(id string) error { return d.notFound(id) })
	if err != nil {
		return 0, nil, err
	}
	out := make([]any, 0, len(page))
	for _, v := range page {
		out = append(out, project(v, lq.fields))
	}
	body := map[string]any{d.plural: out}
	if links != nil {
		body[d.plural+"_links"] = links
	}
	return http.StatusOK, body, nil
}

func (h *handler) lookup(rc *reqCtx, d *resDef, id string) (model.Record, error) {
	r, _, err := h.get(rc, d.kind, id)
	if err != nil {
		return nil, err
	}
	if r == nil || !d.isVisible(rc, r) {
		return nil, d.invisible(r, id)
	}
	return r, nil
}

func (h *handler) viewOne(rc *reqCtx, d *resDef, r model.Record) (map[string]any, error) {
	vs, err := d.views(rc, []model.Record{r})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

func (h *handler) show(rc *reqCtx, d *resDef, id string) (int, any, error) {
	r, err := h.lookup(rc, d, id)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.viewOne(rc, d, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{d.singular: project(v, parseFields(rc.r.URL.Query()["fields"]))}, nil
}

func (h *handler) create(rc *reqCtx, d *resDef) (int, any, error) {
	if d.create == nil {
		return 0, nil, methodNotAllowed()
	}
	if items, ok, err := bulkItems(rc, d); err != nil {
		return 0, nil, err
	} else if ok {
		return h.bulkCreate(rc, d, items)
	}
	r, err := d.create(rc)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.viewOne(rc, d, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]any{d.singular: v}, nil
}

// maxBulk bounds the items of one bulk create: they are one etcd
// transaction, whose reads and writes grow with the batch (and some
// kinds, LB members and health monitors, have no quota to stop it).
const maxBulk = 1000

// bulkItems reads a bulk create body ({"networks": [{...}, ...]}, the
// plural key and a list); ok is false for any other body, which is left
// for the single create to read.
func bulkItems(rc *reqCtx, d *resDef) ([]json.RawMessage, bool, error) {
	b, err := io.ReadAll(io.LimitReader(rc.r.Body, maxBody+1))
	if err != nil {
		return nil, false, badRequest("Unable to read the request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, false, errf(413, "HTTPRequestEntityTooLarge", "Request body too large.")
	}
	rc.r.Body = io.NopCloser(bytes.NewReader(b))
	var outer map[string]json.RawMessage
	if json.Unmarshal(b, &outer) != nil || len(outer) != 1 {
		return nil, false, nil
	}
	raw, ok := outer[d.plural]
	if !ok {
		return nil, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false, badRequest("Invalid input for %s. Reason: a list of objects is required.", d.plural)
	}
	if len(items) == 0 {
		return nil, false, badRequest("Resources required")
	}
	if len(items) > maxBulk {
		return nil, false, badRequest("A bulk request takes at most %d %s.", maxBulk, d.plural)
	}
	return items, true, nil
}

// bulkCreate creates every item of a bulk request, all or none, in one
// store transaction (as Neutron answers, recorded: net-bulk*, sub-bulk*,
// port-bulk*, sgr-bulk*, rev-sub-bulk-overlap): each item's create runs
// in order inside it (handler.txn joins rc.bulk), sees what the earlier
// items wrote (Tx.Pending through listRaw, and the transaction's own
// reads), and the first item that fails aborts the whole transaction, so
// no other client ever sees part of a batch. Quotas count the whole
// batch: every item claims its unit in the same transaction. A
// conflicting concurrent write retries the whole batch.
func (h *handler) bulkCreate(rc *reqCtx, d *resDef, items []json.RawMessage) (int, any, error) {
	var made []model.Record
	var itemErr error
	_, err := h.st.Txn(rc, func(tx *store.Tx) error {
		rc.bulk = tx
		defer func() { rc.bulk = nil }()
		made, itemErr = made[:0], nil
		for i, it := range items {
			b, _ := json.Marshal(map[string]json.RawMessage{d.singular: it})
			rc.r.Body = io.NopCloser(bytes.NewReader(b))
			r, err := d.create(rc)
			if err == nil && bulkItemHook != nil {
				err = bulkItemHook(d.plural, i)
			}
			if err != nil {
				itemErr = err
				return errAbort
			}
			made = append(made, r)
		}
		return nil
	})
	if itemErr != nil {
		return 0, nil, itemErr
	}
	if errors.Is(err, store.ErrTooLarge) {
		return 0, nil, badRequest("Bulk request of %d %s is too large for one store transaction; send it in smaller batches.", len(items), d.plural)
	}
	if err != nil {
		return 0, nil, err
	}
	out := make([]any, 0, len(made))
	for _, r := range made {
		v, err := h.viewOne(rc, d, r)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, v)
	}
	return http.StatusCreated, map[string]any{d.plural: out}, nil
}

// bulkItemHook, when set (tests only), runs after each bulk item is
// made inside the bulk's transaction; an error fails that item.
var bulkItemHook func(plural string, i int) error

func (h *handler) update(rc *reqCtx, d *resDef, id string) (int, any, error) {
	if d.update == nil {
		return 0, nil, methodNotAllowed()
	}
	r, err := d.update(rc, id)
	if err != nil {
		return 0, nil, err
	}
	v, err := h.viewOne(rc, d, r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{d.singular: v}, nil
}

func (h *handler) delete(rc *reqCtx, d *resDef, id string) (int, any, error) {
	if d.del == nil {
		return 0, nil, methodNotAllowed()
	}
	if err := d.del(rc, id); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// checkOwner is the answer for a record the caller may not modify: 404
// when it cannot even see it, 403 when it can.
func (rc *reqCtx) checkOwner(d *resDef, r model.Record, id string) error {
	if isNil(r) || !d.isVisible(rc, r) {
		return d.invisible(r, id)
	}
	if !rc.owns(projectOfRecord(r)) {
		act := "update"
		if rc.r.Method == http.MethodDelete {
			act = "delete"
		}
		return forbidden("(rule:%s_%s) is disallowed by policy", act, d.singular)
	}
	return nil
}

// touch bumps a record's revision and update time.
func touch(b *model.Base) {
	b.RevisionNo++
	b.UpdatedAt = now()
}

func stamp(b *model.Base, id, project string, name, desc oStr) {
	b.ID = id
	b.ProjectID = project
	if name.Set && !name.Null {
		b.Name = name.V
	}
	if desc.Set && !desc.Null {
		b.Description = desc.V
	}
	b.CreatedAt = now()
	b.UpdatedAt = b.CreatedAt
	b.RevisionNo = 1
}

func setNameDesc(b *model.Base, name, desc oStr) {
	if name.Set {
		b.Name = name.V
	}
	if desc.Set {
		b.Description = desc.V
	}
}

func checkLen(attr string, o oStr, max int) error {
	if o.Set && len(o.V) > max {
		// Neutron quotes the value whole (recorded: net-create-long-name);
		// bodies are bounded (1 MiB), so is the message.
		return invalidInput(attr, "'%s' exceeds maximum length of %d", o.V, max)
	}
	return nil
}

func checkNameDesc(name, desc oStr) error {
	if err := checkLen("name", name, 255); err != nil {
		return err
	}
	return checkLen("description", desc, 255)
}

// isNil is true for a nil record, typed or not.
func isNil(r model.Record) bool {
	if r == nil {
		return true
	}
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// viewsOf makes a resDef.views from the view of one record.
func viewsOf[T model.Record](view func(rc *reqCtx, r T) map[string]any) func(*reqCtx, []model.Record) ([]map[string]any, error) {
	return viewsWith(func(*reqCtx) (struct{}, error) { return struct{}{}, nil },
		func(rc *reqCtx, _ struct{}, r T) map[string]any { return view(rc, r) })
}

// viewsWith is viewsOf for views that share what load reads once per
// call (an index of child ids, say); load runs even for no records.
func viewsWith[T model.Record, C any](load func(rc *reqCtx) (C, error), view func(rc *reqCtx, c C, r T) map[string]any) func(*reqCtx, []model.Record) ([]map[string]any, error) {
	return func(rc *reqCtx, recs []model.Record) ([]map[string]any, error) {
		c, err := load(rc)
		if err != nil {
			return nil, err
		}
		out := make([]map[string]any, 0, len(recs))
		for _, r := range recs {
			out = append(out, view(rc, c, r.(T)))
		}
		return out, nil
	}
}
