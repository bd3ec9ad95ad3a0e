package northbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Optional request attributes remember whether they were present and
// whether they were null. They accept what Neutron's converters accept:
// integers and booleans may arrive as strings (the neutron CLI sends
// "protocol_port": "80").

type oStr struct {
	Set, Null bool
	V         string
}

func (o *oStr) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	if err := json.Unmarshal(b, &o.V); err != nil {
		return fmt.Errorf("'%s' is not a valid string", trimJSON(b))
	}
	return nil
}

type oInt struct {
	Set, Null bool
	V         int
}

func (o *oInt) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
			return fmt.Errorf("'%s' is not an integer", s)
		}
		o.V = n
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return fmt.Errorf("'%s' is not an integer", trimJSON(b))
	}
	o.V = int(f)
	return nil
}

type oBool struct {
	Set, Null bool
	V         bool
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on", "t", "y":
		return true, true
	case "false", "0", "no", "off", "f", "n":
		return false, true
	}
	return false, false
}

func (o *oBool) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	if json.Unmarshal(b, &o.V) == nil {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if v, ok := parseBool(s); ok {
			o.V = v
			return nil
		}
	}
	var n float64
	if json.Unmarshal(b, &n) == nil && (n == 0 || n == 1) {
		o.V = n == 1
		return nil
	}
	return fmt.Errorf("'%s' cannot be converted to boolean", trimJSON(b))
}

// oRaw is any JSON value, decoded later by the resource.
type oRaw struct {
	Set, Null bool
	V         json.RawMessage
}

func (o *oRaw) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	o.V = append(json.RawMessage(nil), b...)
	return nil
}

func trimJSON(b []byte) string {
	s := strings.Trim(string(b), `"`)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// fieldIndexes maps a request struct's json names to field index paths.
var fieldIndexes sync.Map

// fieldsOf lists a request struct's attributes by json name. The fields
// of an embedded struct without a json name (ownerAttrs, nameAttrs)
// count as the outer struct's own, as in encoding/json.
func fieldsOf(t reflect.Type) map[string][]int {
	if v, ok := fieldIndexes.Load(t); ok {
		return v.(map[string][]int)
	}
	m := map[string][]int{}
	addFields(m, t, nil)
	fieldIndexes.Store(t, m)
	return m
}

func addFields(m map[string][]int, t reflect.Type, at []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int{}, at...), i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			addFields(m, f.Type, idx)
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			m[name] = idx
		}
	}
}

const maxBody = 1 << 20

// readBody reads {"<singular>": {...}} into dst (a pointer to a struct of
// o* fields). Unknown attributes are a 400 naming them. readonly, on
// update, lists attributes that may not be changed.
func readBody(rc *reqCtx, singular string, dst any, readonly ...string) (map[string]json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(rc.r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("Unable to read the request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, errf(413, "HTTPRequestEntityTooLarge", "Request body too large.")
	}
	attrs, err := decodeBody(b, singular, dst, readonly...)
	rc.noAttrs = err == nil && len(attrs) == 0
	return attrs, err
}

func decodeBody(b []byte, singular string, dst any, readonly ...string) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("Unable to find '%s' in request body", singular)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(b, &outer); err != nil || outer == nil {
		return nil, badRequest("Body contains invalid data")
	}
	inner, ok := outer[singular]
	if !ok {
		return nil, badRequest("Unable to find '%s' in request body", singular)
	}
	if len(outer) != 1 {
		var extra []string
		for k := range outer {
			if k != singular {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		return nil, badRequest("Unrecognized attribute(s) '%s'", strings.Join(extra, ", "))
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(inner, &attrs); err != nil || attrs == nil {
		return nil, badRequest("Malformed request body: '%s' must be an object", singular)
	}
	if len(readonly) > 0 {
		// An update: id and the listed attributes are read-only, and
		// Neutron says so before anything else (recorded: net-update-id,
		// net-update-project, which names tenant_id for project_id).
		ks := make([]string, 0, len(attrs))
		for k := range attrs {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			if k == "id" || slices.Contains(readonly, k) {
				if k == "project_id" {
					k = "tenant_id"
				}
				return nil, badRequest("Cannot update read-only attribute %s", k)
			}
		}
	}
	v := reflect.ValueOf(dst).Elem()
	fi := fieldsOf(v.Type())
	var unknown []string
	for k := range attrs {
		if _, ok := fi[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, badRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	for _, k := range readonly {
		if _, ok := attrs[k]; ok {
			return nil, badRequest("Cannot update read-only attribute %s", k)
		}
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := v.FieldByIndex(fi[k]).Addr().Interface()
		if err := json.Unmarshal(attrs[k], f); err != nil {
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			if errors.As(err, &se) || errors.As(err, &te) {
				return nil, invalidInput(k, "%s", jsonErr(err))
			}
			// A value the converter refuses ("maybe" for a boolean):
			// Neutron's InvalidInput (recorded: net-create-bad-bool).
			return nil, invalidOp("%s", jsonErr(err))
		}
	}
	return attrs, nil
}

func jsonErr(err error) string {
	if err == nil {
		return "not a JSON object"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// decodeRaw decodes a structured attribute (lists, dicts).
func decodeRaw(attr string, o oRaw, dst any) error {
	if err := json.Unmarshal(o.V, dst); err != nil {
		return invalidInput(attr, "%s", jsonErr(err))
	}
	return nil
}

// ownerAttrs are the owner attributes of a request body; a request
// struct embeds them (decodeBody counts their fields as its own).
type ownerAttrs struct {
	TenantID  oStr `json:"tenant_id"`
	ProjectID oStr `json:"project_id"`
}

func (a *ownerAttrs) owner() (oStr, oStr) { return a.TenantID, a.ProjectID }

// nameAttrs are the name and description of a request body.
type nameAttrs struct {
	Name        oStr `json:"name"`
	Description oStr `json:"description"`
}

func (a *nameAttrs) nameDesc() (oStr, oStr) { return a.Name, a.Description }

// ownedBody is a create body: it may name its owning project.
type ownedBody interface {
	owner() (tenant, project oStr)
}

// namedBody is a body whose name and description are length-checked
// (a body with only a description returns an unset name).
type namedBody interface {
	nameDesc() (name, desc oStr)
}

// readCreate reads a create body into req, checks its name and
// description and resolves the new resource's project (projectOf).
func readCreate(rc *reqCtx, singular string, req ownedBody) (string, error) {
	if err := readNamed(rc, singular, req); err != nil {
		return "", err
	}
	tenant, project := req.owner()
	return projectOf(rc, tenant, project)
}

// readNamed reads a body into req, refusing the readonly attributes
// (on update), and checks its name and description.
func readNamed(rc *reqCtx, singular string, req any, readonly ...string) error {
	if _, err := readBody(rc, singular, req, readonly...); err != nil {
		return err
	}
	if n, ok := req.(namedBody); ok {
		return checkNameDesc(n.nameDesc())
	}
	return nil
}

// projectOf resolves the owner of a new resource: tenant_id/project_id
// from the body, else the caller's project (X-Project-Id in noauth).
func projectOf(rc *reqCtx, tenant, project oStr) (string, error) {
	p := ""
	if tenant.Set && !tenant.Null {
		p = tenant.V
	}
	if project.Set && !project.Null {
		if p != "" && p != project.V {
			return "", badRequest("Both tenant_id and project_id passed as parameters, but they differ.")
		}
		p = project.V
	}
	if p != "" && len(p) > 255 {
		return "", invalidInput("project_id", "'%s' exceeds maximum length of 255", p[:32])
	}
	if p != "" && !rc.admin && p != rc.project {
		return "", badRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges")
	}
	if p == "" {
		p = rc.project
	}
	if p == "" {
		return "", badRequest("Running without keystone AuthN requires that tenant_id is specified")
	}
	return p, nil
}

// onlyKeys refuses a list item (a route, a pool) of attribute attr with a
// key other than allowed, as Neutron does ("Unrecognized key 'k' in
// noun").
func onlyKeys(m map[string]any, attr, noun string, allowed ...string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return invalidInput(attr, "Unrecognized key '%s' in %s", k, noun)
		}
	}
	return nil
}
