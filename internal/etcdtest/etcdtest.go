// Package etcdtest starts real etcd servers for tests: the Debian etcd
// binary as a single member or a 3-member cluster, with their own data
// directories and loopback ports, stopped by PID in t.Cleanup.
package etcdtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/testport"
)

// Member is one running etcd process.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	cmd       *exec.Cmd
	args      []string
	dir       string
	log       *os.File
	t         testing.TB
	done      chan struct{}
	http      *http.Client // nil: http.DefaultClient
}

// Cluster is a set of members.
type Cluster struct {
	Members []*Member
}

// Endpoints lists client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

func freePort(t testing.TB) int {
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Require fails (under NIMBUS_E2E=1) or skips when the etcd binary is absent.
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("NIMBUS_E2E") == "1" {
			t.Fatal("etcd binary not found: run scripts/deps.sh (make test does)")
		}
		t.Skip("etcd binary not installed (make test installs it)")
	}
	return path
}

// Start runs a cluster of n members and waits until it is healthy.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Require(t)
	c := &Cluster{}
	var initial []string
	for i := 0; i < n; i++ {
		m := &Member{Name: fmt.Sprintf("m%d", i), t: t,
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), dir: t.TempDir()}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.args = []string{"--name", m.Name, "--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "nimbus-test", "--heartbeat-interval", "100", "--election-timeout", "1000",
			"--log-level", "error"}
		m.start(bin)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Stop()
		}
	})
	for _, m := range c.Members {
		m.WaitHealthy(30 * time.Second)
	}
	return c
}

func (m *Member) start(bin string) {
	m.t.Helper()
	f, err := os.OpenFile(filepath.Join(m.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	m.log = f
	m.cmd = exec.Command(bin, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = f, f
	m.cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("starting etcd: %v", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(m.cmd, m.done)
}

// WaitHealthy polls /health.
func (m *Member) WaitHealthy(d time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(d)
	hc := m.http
	if hc == nil {
		hc = http.DefaultClient
	}
	for time.Now().Before(deadline) {
		resp, err := hc.Get(m.ClientURL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(m.dir, "etcd.log"))
	m.t.Fatalf("etcd %s not healthy after %s:\n%s", m.Name, d, b)
}

// Stop kills the member (by its own PID) and waits for it.
func (m *Member) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
	default:
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
	}
	m.log.Close()
	m.cmd = nil
}

// Restart starts a stopped member again with its data.
func (m *Member) Restart() {
	m.t.Helper()
	bin := Require(m.t)
	args := append([]string{}, m.args...)
	for i, a := range args {
		if a == "new" {
			args[i] = "existing"
		}
	}
	m.args = args
	m.start(bin)
}
