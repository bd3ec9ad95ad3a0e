package northbound_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/store"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// openEmbedded starts a store on its own embedded etcd.
func openEmbedded(t testing.TB) *store.Store { return etcdtest.Embedded(t) }

// api is a test client of one handler.
type api struct {
	t       testing.TB
	url     string
	headers map[string]string
}

func newAPI(t testing.TB, st *store.Store, cfg northbound.Config) *api {
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	srv := httptest.NewServer(northbound.NewHandler(st, cfg))
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL, headers: map[string]string{}}
}

// as returns a client with extra headers (X-Project-Id, X-Roles...).
func (a *api) as(h map[string]string) *api {
	b := &api{t: a.t, url: a.url, headers: map[string]string{}}
	for k, v := range a.headers {
		b.headers[k] = v
	}
	for k, v := range h {
		b.headers[k] = v
	}
	return b
}

// tenant is a non-admin caller of project p (noauth test headers).
func (a *api) tenant(p string) *api {
	return a.as(map[string]string{"X-Project-Id": p, "X-Roles": "member"})
}

type resp struct {
	code int
	body map[string]any
	raw  string
}

func (a *api) do(method, path string, body any) resp {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range a.headers {
		req.Header.Set(k, v)
	}
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := resp{code: hr.StatusCode, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			a.t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
		}
	}
	return r
}

// must asserts the status and returns the body.
func (r resp) must(t testing.TB, code int) map[string]any {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.raw)
	}
	return r.body
}

// errType asserts a NeutronError answer and returns its type.
func (r resp) err(t testing.TB, code int, typ string) string {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.raw)
	}
	ne, ok := r.body["NeutronError"].(map[string]any)
	if !ok {
		t.Fatalf("no NeutronError in %s", r.raw)
	}
	if typ != "" && ne["type"] != typ {
		t.Fatalf("error type %v, want %s: %s", ne["type"], typ, r.raw)
	}
	msg, _ := ne["message"].(string)
	return msg
}

func obj(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func list(m map[string]any, k string) []any {
	v, _ := m[k].([]any)
	return v
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// create POSTs {singular: attrs} and returns the created object.
func (a *api) create(t testing.TB, path, singular string, attrs map[string]any) map[string]any {
	t.Helper()
	r := a.do("POST", path, map[string]any{singular: attrs})
	return obj(r.must(t, 201), singular)
}

func (a *api) network(t testing.TB, project, name string, extra ...any) map[string]any {
	t.Helper()
	attrs := map[string]any{"name": name, "project_id": project}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i].(string)] = extra[i+1]
	}
	return a.create(t, "/v2.0/networks", "network", attrs)
}

func (a *api) subnet(t testing.TB, project, net, cidr string, extra ...any) map[string]any {
	t.Helper()
	attrs := map[string]any{"network_id": net, "cidr": cidr, "ip_version": 4, "project_id": project}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i].(string)] = extra[i+1]
	}
	return a.create(t, "/v2.0/subnets", "subnet", attrs)
}

func (a *api) port(t testing.TB, project, net string, extra ...any) map[string]any {
	t.Helper()
	attrs := map[string]any{"network_id": net, "project_id": project}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i].(string)] = extra[i+1]
	}
	return a.create(t, "/v2.0/ports", "port", attrs)
}

func fixedIP(p map[string]any) string {
	f := list(p, "fixed_ips")
	if len(f) == 0 {
		return ""
	}
	return str(f[0].(map[string]any), "ip_address")
}

func ids(items []any) []string {
	var out []string
	for _, i := range items {
		out = append(out, str(i.(map[string]any), "id"))
	}
	return out
}

func fmtJSON(v any) string { b, _ := json.MarshalIndent(v, "", " "); return fmt.Sprint(string(b)) }
