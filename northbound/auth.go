package northbound

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// authenticate turns a request into the caller's identity.
//
// noauth, exactly Neutron's (recorded: net-create-noproject,
// net-create-project-header): a request without identity headers is
// admin of the project "fake_project_id" (Config.DefaultProject
// overrides the name), so its creates succeed without project_id in the
// body. A request with X-Project-Id but no X-Roles is admin without a
// project: its creates must name one.
//
// Trusted identity headers (the lab mode, in noauth): a request that
// carries X-Roles is taken as keystonemiddleware would have set its
// headers: X-Project-Id is the caller's project and it is admin only
// with an admin role; Neutron's default policies apply.
//
// keystone: X-Auth-Token is validated against Keystone v3.
func (h *handler) authenticate(r *http.Request) (*reqCtx, error) {
	rc := &reqCtx{h: h, r: r}
	if h.ks == nil {
		rc.admin = true
		rc.project = strings.TrimSpace(r.Header.Get("X-Project-Id"))
		if rc.project == "" {
			rc.project = strings.TrimSpace(r.Header.Get("X-Tenant-Id"))
		}
		if roles := r.Header.Get("X-Roles"); roles != "" {
			rc.admin = false
			for _, role := range strings.Split(roles, ",") {
				if h.isAdminRole(strings.TrimSpace(role)) {
					rc.admin = true
				}
			}
			if !rc.admin && rc.project == "" {
				return nil, errf(http.StatusUnauthorized, "HTTPUnauthorized", "A non-admin caller needs X-Project-Id.")
			}
		}
		if r.Header.Get("X-Roles") == "" {
			if rc.project != "" {
				rc.project = ""
			} else if rc.project = h.cfg.DefaultProject; rc.project == "" {
				rc.project = NoauthProject
			}
		}
		if len(rc.project) > 255 || strings.Contains(rc.project, "/") {
			return nil, badRequest("Invalid X-Project-Id")
		}
		return rc, nil
	}
	tok := r.Header.Get("X-Auth-Token")
	if tok == "" {
		return nil, errf(http.StatusUnauthorized, "HTTPUnauthorized", "Authentication required: no X-Auth-Token.")
	}
	id, err := h.ks.validate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if id.project == "" {
		return nil, errf(http.StatusUnauthorized, "HTTPUnauthorized", "The token is not scoped to a project.")
	}
	rc.project = id.project
	for _, role := range id.roles {
		if h.isAdminRole(role) {
			rc.admin = true
		}
	}
	return rc, nil
}

// NoauthProject is the project Neutron's noauth gives a caller that
// sends no identity headers.
const NoauthProject = "fake_project_id"

func (h *handler) isAdminRole(role string) bool {
	for _, a := range h.cfg.AdminRoles {
		if strings.EqualFold(a, role) {
			return true
		}
	}
	return false
}

type identity struct {
	project string
	roles   []string
	expires time.Time
}

type keystone struct {
	url     string
	service string
	ttl     time.Duration
	client  *http.Client

	mu    sync.Mutex
	cache map[string]identity
}

func newKeystone(cfg Config) *keystone {
	return &keystone{url: strings.TrimRight(cfg.KeystoneURL, "/"), service: cfg.ServiceToken, ttl: cfg.TokenCacheTTL,
		client: &http.Client{Timeout: 10 * time.Second}, cache: map[string]identity{}}
}

// validate asks Keystone who a token belongs to: GET /v3/auth/tokens
// with X-Subject-Token. Validated identities are kept for TokenCacheTTL
// at most (never past the token's expiry).
func (k *keystone) validate(ctx context.Context, tok string) (identity, error) {
	now := time.Now()
	if k.ttl > 0 {
		k.mu.Lock()
		id, ok := k.cache[tok]
		k.mu.Unlock()
		if ok && now.Before(id.expires) {
			return id, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url+"/v3/auth/tokens", nil)
	if err != nil {
		return identity{}, errf(http.StatusServiceUnavailable, "ServiceUnavailable", "Keystone URL is not usable: %v", err)
	}
	svc := k.service
	if svc == "" {
		svc = tok
	}
	req.Header.Set("X-Auth-Token", svc)
	req.Header.Set("X-Subject-Token", tok)
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return identity{}, errf(http.StatusServiceUnavailable, "ServiceUnavailable", "The identity service (Keystone) is unavailable: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
		return identity{}, errf(http.StatusUnauthorized, "HTTPUnauthorized", "Authentication required: the token is invalid or expired.")
	case resp.StatusCode == http.StatusForbidden:
		return identity{}, errf(http.StatusServiceUnavailable, "ServiceUnavailable", "Keystone refused to validate tokens for this service (check the service token).")
	default:
		return identity{}, errf(http.StatusServiceUnavailable, "ServiceUnavailable", "Keystone answered %d while validating a token.", resp.StatusCode)
	}
	var v struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			Project   struct {
				ID string `json:"id"`
			} `json:"project"`
			Roles []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return identity{}, errf(http.StatusServiceUnavailable, "ServiceUnavailable", "Keystone's token answer is not understood: %v", err)
	}
	id := identity{project: v.Token.Project.ID, expires: now.Add(k.ttl)}
	for _, r := range v.Token.Roles {
		id.roles = append(id.roles, r.Name)
	}
	if exp, err := time.Parse(time.RFC3339, v.Token.ExpiresAt); err == nil {
		if !exp.After(now) {
			return identity{}, errf(http.StatusUnauthorized, "HTTPUnauthorized", "Authentication required: the token expired.")
		}
		if exp.Before(id.expires) {
			id.expires = exp
		}
	}
	if k.ttl > 0 {
		k.mu.Lock()
		if len(k.cache) > 10000 {
			k.cache = map[string]identity{}
		}
		k.cache[tok] = id
		k.mu.Unlock()
	}
	return id, nil
}
