package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AuthHeader carries a /cluster/v1 request's signature:
// "<unix seconds>:<hex HMAC-SHA256>" over the method, the path and the
// timestamp, keyed with the cluster secret. The secret itself never
// crosses the wire, and a captured header is only good for MaxSkew on
// that one method and path.
const AuthHeader = "X-Nimbus-Cluster-Auth"

// MaxSkew is how far a signature's timestamp may be from this replica's
// clock.
const MaxSkew = 5 * time.Minute

// ErrUnauthorized is returned by Verify.
var ErrUnauthorized = errors.New("cluster: request not authenticated with the cluster secret")

func mac(secret []byte, method, path string, ts int64) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "nimbus-cluster-v1\n%s\n%s\n%d", method, path, ts)
	return hex.EncodeToString(m.Sum(nil))
}

// Sign is the AuthHeader value for a request.
func Sign(secret []byte, method, path string, now time.Time) string {
	ts := now.Unix()
	return strconv.FormatInt(ts, 10) + ":" + mac(secret, method, path, ts)
}

// Authorize signs req with secret (for clients of /cluster/v1: peers,
// `controller status`, tests).
func Authorize(req *http.Request, secret []byte) {
	req.Header.Set(AuthHeader, Sign(secret, req.Method, req.URL.Path, time.Now()))
}

// Verify checks r's signature. An empty secret verifies nothing.
func Verify(secret []byte, r *http.Request, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: this replica has no cluster secret", ErrUnauthorized)
	}
	tsStr, sig, ok := strings.Cut(r.Header.Get(AuthHeader), ":")
	if !ok {
		return ErrUnauthorized
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil {
		return ErrUnauthorized
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: timestamp %s off by %s (clocks out of step?)", ErrUnauthorized, tsStr, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(sig), []byte(mac(secret, r.Method, r.URL.Path, ts))) {
		return ErrUnauthorized
	}
	return nil
}

// Protect answers 401 to requests that Verify refuses and passes the
// others to h.
func (cl *Cluster) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := Verify(cl.cfg.Secret, r, time.Now()); err != nil {
			cl.log.Debug("refused unauthenticated cluster request", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", "Nimbus-Cluster")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"cluster: authentication required"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
