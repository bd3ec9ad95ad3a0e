// Package northbound serves the OpenStack Networking (Neutron v2.0) API
// over the etcd model: networks, subnets, ports, routers, floating IPs,
// security groups and LBaaS v1, with Neutron's project scoping, filters,
// sorting, pagination and NeutronError bodies. Every request reads etcd
// (no in-process model cache), so any replica can serve any request, and
// every write returns only once committed. IP, MAC and segmentation-id
// allocation happen inside serializable store transactions.
package northbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/store"
)

// Auth modes.
const (
	AuthNoauth   = "noauth"
	AuthKeystone = "keystone"
)

// VLANRange is a range of VLAN ids on one physical network.
type VLANRange struct {
	PhysicalNetwork string
	Min, Max        int
}

// IDRange is a range of tunnel ids.
type IDRange struct{ Min, Max int }

// Config configures the API.
type Config struct {
	// Auth is noauth (default: every caller is admin) or keystone.
	Auth string
	// KeystoneURL is the Keystone base URL (without /v3) in keystone mode.
	KeystoneURL string
	// ServiceToken is sent as X-Auth-Token when validating a caller's
	// token; empty means the caller's token validates itself.
	ServiceToken string
	// AdminRoles are the Keystone role names that make a caller admin
	// (default: admin).
	AdminRoles []string
	// TokenCacheTTL bounds how long a validated token is trusted without
	// asking Keystone again (default 30s; negative disables the cache).
	TokenCacheTTL time.Duration
	// DefaultProject is the project of a noauth caller that sends no
	// identity headers (default "fake_project_id", Neutron's noauth).
	DefaultProject string
	// VLANRanges and GRERanges are the tenant segmentation pools
	// (defaults: physnet1 1000-2999 and 1-65535).
	VLANRanges []VLANRange
	GRERanges  []IDRange
	// TenantNetworkType is the type of networks created without
	// provider:network_type (default gre, or vlan when no GRE ranges).
	TenantNetworkType string
	// GlobalMTU is the underlay MTU (default 1500); PhysicalNetMTUs
	// overrides it per physical network for vlan and flat networks.
	GlobalMTU       int
	PhysicalNetMTUs map[string]int
	// RequestTimeout bounds each request's etcd work (default 10s); past
	// it the answer is 503.
	RequestTimeout time.Duration
	// StatusCacheTTL is how long the switches' data-plane status records
	// read for a port, router or floating IP status are reused by later
	// requests (default 250ms; negative: read on every request). Status
	// is asynchronous anyway (published after a reconcile pass); the
	// cache bounds how often a busy API reads every switch's record.
	StatusCacheTTL time.Duration
	// Per-object list bounds, Neutron's options of the same names and
	// defaults: host routes and DNS servers per subnet (20, 5), fixed
	// IPs per port (5), allowed address pairs per port (10). Zero means
	// the default.
	MaxSubnetHostRoutes    int
	MaxDNSNameservers      int
	MaxFixedIPsPerPort     int
	MaxAllowedAddressPairs int
	Logger                 *slog.Logger
}

// GREOverhead is what a GRE-over-IPv4 encapsulation takes from the
// underlay MTU (Neutron's value: 20 IP + 22 GRE/Ethernet).
const GREOverhead = 42

func (c *Config) setDefaults() {
	if c.Auth == "" {
		c.Auth = AuthNoauth
	}
	if len(c.AdminRoles) == 0 {
		c.AdminRoles = []string{"admin"}
	}
	if c.TokenCacheTTL == 0 {
		c.TokenCacheTTL = 30 * time.Second
	}
	if c.VLANRanges == nil {
		c.VLANRanges = []VLANRange{{PhysicalNetwork: "physnet1", Min: 1000, Max: 2999}}
	}
	if c.GRERanges == nil {
		c.GRERanges = []IDRange{{Min: 1, Max: 65535}}
	}
	if c.TenantNetworkType == "" {
		c.TenantNetworkType = "gre"
		if len(c.GRERanges) == 0 {
			c.TenantNetworkType = "vlan"
		}
	}
	if c.GlobalMTU == 0 {
		c.GlobalMTU = 1500
	}
	if c.StatusCacheTTL == 0 {
		c.StatusCacheTTL = 250 * time.Millisecond
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxSubnetHostRoutes <= 0 {
		c.MaxSubnetHostRoutes = 20
	}
	if c.MaxDNSNameservers <= 0 {
		c.MaxDNSNameservers = 5
	}
	if c.MaxFixedIPsPerPort <= 0 {
		c.MaxFixedIPsPerPort = 5
	}
	if c.MaxAllowedAddressPairs <= 0 {
		c.MaxAllowedAddressPairs = 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

type handler struct {
	st   *store.Store
	cfg  Config
	log  *slog.Logger
	ks   *keystone
	defs map[string]*resDef // by collection path ("networks", "lb/pools")
	ipam ipamHints
	dp   dataPlaneCache
}

// NewHandler returns the Neutron API handler. Mount it for "/" and
// "/v2.0/"; it does not serve /healthz or /metrics.
func NewHandler(st *store.Store, cfg Config) http.Handler {
	cfg.setDefaults()
	h := &handler{st: st, cfg: cfg, log: cfg.Logger}
	if cfg.Auth == AuthKeystone {
		h.ks = newKeystone(cfg)
	}
	h.defs = map[string]*resDef{}
	for _, d := range h.resources() {
		h.defs[d.path] = d
	}
	return h
}

// reqCtx is one request's identity and context.
type reqCtx struct {
	context.Context
	h       *handler
	r       *http.Request
	admin   bool
	project string // the caller's project ("" for noauth without one)
	// netOwners caches network owners for this request's visibility
	// checks (ports on a caller's network).
	netOwners map[string]string
	// noAttrs: the body read last named no attribute ({"network": {}}).
	noAttrs bool
	// dp caches the data-plane status for this request (status.go).
	dp *dataPlane
	// bulk is the store transaction of a bulk create: every item's
	// create runs in it (handler.txn), so the batch commits whole or not
	// at all.
	bulk *store.Tx
}

// apiError is a Neutron error answer.
type apiError struct {
	status int
	typ    string
	msg    string
	plain  bool // webob's plain error body (code, message, title)
}

// plainNotFound is the 404 Neutron's extension controller answers in
// webob's format, not as a NeutronError (recorded: disc-ext-unknown,
// disc-ext-post).
func plainNotFound(detail string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "Not Found", plain: true,
		msg: "The resource could not be found.<br /><br />\n" + detail + "\n\n"}
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errf(status int, typ, format string, args ...any) *apiError {
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

// badRequest is Neutron's HTTPBadRequest (body parse and attribute
// validation), or its BadRequest for the "Bad <resource> request: ..."
// answers of the plugins (recorded: rtr-if-add-*, fip-create-not-ext).
func badRequest(format string, args ...any) *apiError {
	e := errf(http.StatusBadRequest, "HTTPBadRequest", format, args...)
	if strings.HasPrefix(e.msg, "Bad ") && strings.Contains(e.msg, " request: ") {
		e.typ = "BadRequest"
	}
	return e
}

// invalidInput is an attribute that fails validation: Neutron answers
// HTTPBadRequest "Invalid input for <attr>. Reason: ..." (recorded:
// net-create-long-name, sub-create-bad-dns, port-create-mac-bad).
func invalidInput(attr, format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "HTTPBadRequest", "Invalid input for %s. Reason: %s.", attr, fmt.Sprintf(format, args...))
}

// invalidOp is Neutron's InvalidInput: "Invalid input for operation:
// ..." (recorded: net-create-bad-type, sub-create-overlap).
func invalidOp(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: %s.", fmt.Sprintf(format, args...))
}

// notFound words the 404 as Neutron does for each type (recorded:
// rtr-show-p2, fip-show-p2, sg-show-p2, sgr-delete-again).
func notFound(typ, what, id string) *apiError {
	switch typ {
	case "RouterNotFound", "FloatingIPNotFound":
		return errf(http.StatusNotFound, typ, "%s %s could not be found", what, id)
	case "SecurityGroupNotFound", "SecurityGroupRuleNotFound":
		return errf(http.StatusNotFound, typ, "%s %s does not exist", what, id)
	}
	return errf(http.StatusNotFound, typ, "%s %s could not be found.", what, id)
}

func conflict(typ, format string, args ...any) *apiError {
	return errf(http.StatusConflict, typ, format, args...)
}

var (
	oneRule  = regexp.MustCompile(`^\(rule:([a-z_]+)\) is disallowed by policy$`)
	attrRule = regexp.MustCompile(`^\(rule:([a-z_]+):([a-z_:]+)\) is disallowed by policy$`)
)

// forbidden is a 403 PolicyNotAuthorized. A refusal written as one rule,
// "(rule:create_port:binding:host_id) is disallowed by policy", is given
// Neutron's wording of the whole check (recorded: net-create-shared-p1,
// port-create-binding-host-p1, port-create-shared-p2-ip,
// rtr-create-snat-p1, quota-show-other).
func forbidden(format string, args ...any) *apiError {
	e := errf(http.StatusForbidden, "PolicyNotAuthorized", format, args...)
	if m := oneRule.FindStringSubmatch(e.msg); m != nil {
		e.msg = "rule:" + m[1] + " is disallowed by policy"
	} else if m := attrRule.FindStringSubmatch(e.msg); m != nil {
		act, attr := m[1], m[2]
		parent, sub, nested := strings.Cut(attr, ":")
		switch {
		case nested && parent == "external_gateway_info":
			e.msg = fmt.Sprintf("(rule:%[1]s and (rule:%[1]s:%[2]s and (rule:%[1]s:%[2]s:network_id and rule:%[1]s:%[2]s:%[3]s))) is disallowed by policy", act, parent, sub)
		case nested && parent != "binding" && parent != "provider" && parent != "router":
			e.msg = fmt.Sprintf("(rule:%[1]s and (rule:%[1]s:%[2]s and (rule:%[1]s:%[2]s:%[3]s))) is disallowed by policy", act, parent, sub)
		default:
			e.msg = fmt.Sprintf("(rule:%[1]s and rule:%[1]s:%[2]s) is disallowed by policy", act, attr)
		}
	}
	return e
}

// toAPIError maps any error to the answer it deserves: store
// unavailability is 503, everything unexpected 500 (logged).
func (h *handler) toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if store.IsUnavailable(err) {
		return errf(http.StatusServiceUnavailable, "ServiceUnavailable",
			"The backing store (etcd) is unavailable; retry later: %v", err)
	}
	h.log.Error("northbound: internal error", "err", err)
	return errf(http.StatusInternalServerError, "HTTPInternalServerError", "Request failed: internal server error while processing your request.")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(`{"NeutronError": {"type": "HTTPInternalServerError", "message": "encoding failed", "detail": ""}}`)
		}
		w.Write(b)
	}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.plain {
		writeJSON(w, e.status, map[string]any{"code": fmt.Sprintf("%d %s", e.status, http.StatusText(e.status)), "message": e.msg, "title": e.typ})
		return
	}
	writeJSON(w, e.status, map[string]any{"NeutronError": map[string]any{"type": e.typ, "message": e.msg, "detail": ""}})
}

// ServeHTTP routes a request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := 0
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("northbound: panic", "panic", p, "method", r.Method, "path", r.URL.Path, "stack", string(debug.Stack()))
			writeError(w, errf(http.StatusInternalServerError, "HTTPInternalServerError", "Request failed: internal server error while processing your request."))
			return
		}
		h.log.Debug("northbound request", "method", r.Method, "path", r.URL.Path, "status", status, "dur", time.Since(start))
	}()
	code, body, err := h.serve(r)
	if err != nil {
		ae := h.toAPIError(err)
		status = ae.status
		writeError(w, ae)
		return
	}
	status = code
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, body)
}

func (h *handler) serve(r *http.Request) (int, any, error) {
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	if p == "/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return 0, nil, methodNotAllowed()
		}
		return 200, h.versions(r), nil
	}
	if strings.HasPrefix(p, "/projects") {
		// Identity look-ups the openstack CLI sends to the network
		// endpoint with --os-auth-type none (`--project X`): there is no
		// identity service here. A 403 makes the client use the name it
		// was given as the project id.
		return 0, nil, forbidden("There is no identity service at this endpoint; use the project id itself.")
	}
	rest, ok := strings.CutPrefix(p, "/v2.0")
	// "/v2.0" itself is 404 in Neutron (recorded: disc-v2-noslash).
	if !ok || rest == "" || rest[0] != '/' {
		return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	}
	rest = strings.Trim(rest, "/")
	rest = strings.TrimSuffix(rest, ".json")
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return 0, nil, methodNotAllowed()
		}
		return 200, h.resourceIndex(r), nil
	}
	parts := strings.Split(rest, "/")
	if parts[0] == "extensions" {
		// The extension controller answers every miss under its own
		// subtree in webob's plain format, not as a NeutronError
		// (recorded: disc-ext-unknown, disc-ext-post).
		if r.Method != http.MethodGet {
			return 0, nil, plainNotFound("Resource not found.")
		}
		return h.extensionsAPI(parts[1:])
	}
	for _, s := range parts {
		if s == "" {
			return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		}
		if _, err := url.PathUnescape(s); err != nil {
			return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
		}
	}

	rc, err := h.authenticate(r)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
	defer cancel()
	rc.Context = ctx

	if parts[0] == "quotas" {
		return h.quotasAPI(rc, parts[1:])
	}
	// Collection path: "networks" or "lb/pools".
	coll := parts[0]
	sub := parts[1:]
	if coll == "lb" && len(parts) >= 2 {
		coll = "lb/" + parts[1]
		sub = parts[2:]
	}
	d := h.defs[coll]
	if d == nil {
		return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	}
	switch len(sub) {
	case 0:
		switch r.Method {
		case http.MethodGet:
			return h.list(rc, d)
		case http.MethodPost:
			return h.create(rc, d)
		}
		return 0, nil, methodNotAllowed()
	case 1:
		id := sub[0]
		switch r.Method {
		case http.MethodGet:
			return h.show(rc, d, id)
		case http.MethodPut:
			return h.update(rc, d, id)
		case http.MethodDelete:
			return h.delete(rc, d, id)
		}
		return 0, nil, methodNotAllowed()
	default:
		if d.action != nil {
			return d.action(rc, sub[0], sub[1:])
		}
	}
	return 0, nil, errf(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
}

func methodNotAllowed() *apiError {
	return errf(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed", "The server could not comply with the request since it is either malformed or otherwise incorrect.")
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if host == "" {
		host = "localhost:9696"
	}
	return scheme + "://" + host
}

func (h *handler) versions(r *http.Request) any {
	return map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/", "rel": "self"}},
	}}}
}

func (h *handler) resourceIndex(r *http.Request) any {
	// Neutron lists its core resources only (recorded: disc-v2-slash).
	var res []any
	for _, d := range h.resources() {
		if d.path != "networks" && d.path != "subnets" && d.path != "ports" {
			continue
		}
		res = append(res, map[string]any{"name": d.singular, "collection": d.plural,
			"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/" + d.path, "rel": "self"}}})
	}
	return map[string]any{"resources": res}
}
