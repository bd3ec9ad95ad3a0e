package cluster_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
)

// TestClusterEndpointsNeedSecret: /cluster/v1/heartbeat and
// /cluster/v1/status answer 401 to a request without a signature, with a
// signature made with another secret, or with a stale timestamp, and
// serve a request signed with the cluster secret.
func TestClusterEndpointsNeedSecret(t *testing.T) {
	st := etcdtest.Embedded(t)
	cl := cluster.New(st.Client(), cluster.Config{ReplicaID: "a", Secret: testSecret, Logger: quiet,
		HeartbeatInterval: 50 * time.Millisecond})
	mux := http.NewServeMux()
	mux.HandleFunc(cluster.HeartbeatPath, cl.HeartbeatHandler())
	mux.HandleFunc(cluster.StatusPath, cl.StatusHandler())
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(func() { cancel(); srv.Close() })

	do := func(path string, sign func(*http.Request)) int {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+path, nil)
		sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK && path == cluster.HeartbeatPath {
			b := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, b); err != nil || b[0] != '.' {
				t.Fatalf("heartbeat stream: %q %v", b, err)
			}
		}
		return resp.StatusCode
	}
	for _, path := range []string{cluster.HeartbeatPath, cluster.StatusPath} {
		cases := []struct {
			name string
			sign func(*http.Request)
			want int
		}{
			{"no signature", func(*http.Request) {}, http.StatusUnauthorized},
			{"garbage", func(r *http.Request) { r.Header.Set(cluster.AuthHeader, "x") }, http.StatusUnauthorized},
			{"other secret", func(r *http.Request) { cluster.Authorize(r, []byte("not-the-cluster-secret-000000000")) }, http.StatusUnauthorized},
			{"stale", func(r *http.Request) {
				r.Header.Set(cluster.AuthHeader, cluster.Sign(testSecret, r.Method, r.URL.Path, time.Now().Add(-time.Hour)))
			}, http.StatusUnauthorized},
			{"other path", func(r *http.Request) {
				r.Header.Set(cluster.AuthHeader, cluster.Sign(testSecret, r.Method, "/cluster/v1/other", time.Now()))
			}, http.StatusUnauthorized},
			{"signed", func(r *http.Request) { cluster.Authorize(r, testSecret) }, http.StatusOK},
		}
		for _, c := range cases {
			if got := do(path, c.sign); got != c.want {
				t.Errorf("%s %s: status %d, want %d", path, c.name, got, c.want)
			}
		}
	}
	// A replica with no secret configured refuses everything.
	open := cluster.New(st.Client(), cluster.Config{ReplicaID: "b", Logger: quiet})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, cluster.StatusPath, nil)
	cluster.Authorize(req, nil)
	open.StatusHandler()(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("replica without a secret: status %d, want 401", rec.Code)
	}
}

// TestHeartbeatOutlivesServerTimeouts: the API server bounds every
// request with ReadTimeout and WriteTimeout; the heartbeat stream, served
// by the same kind of server, must keep beating well past both, or the
// peer would fence this replica after one timeout.
func TestHeartbeatOutlivesServerTimeouts(t *testing.T) {
	cl := cluster.New(nil, cluster.Config{ReplicaID: "a", Secret: testSecret, Logger: quiet,
		HeartbeatInterval: 50 * time.Millisecond})
	mux := http.NewServeMux()
	mux.HandleFunc(cluster.HeartbeatPath, cl.HeartbeatHandler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 200 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+cluster.HeartbeatPath, nil)
	cluster.Authorize(req, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("heartbeat: %s", resp.Status)
	}
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	beats := 0
	for time.Since(start) < 2*time.Second { // > 6 x ReadTimeout and WriteTimeout
		if _, err := r.ReadByte(); err != nil {
			t.Fatalf("heartbeat stream cut after %s and %d beats: %v", time.Since(start).Round(time.Millisecond), beats, err)
		}
		beats++
	}
	t.Logf("%d beats in %s through a server with 300ms read and write timeouts", beats, time.Since(start).Round(time.Millisecond))
}
