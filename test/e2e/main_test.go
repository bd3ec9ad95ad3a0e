// Package e2e runs the controller binary against real Open vSwitch
// bridges (userspace datapath) and Mininet. Gated by NIMBUS_E2E=1, which
// `make test` sets after installing and starting what these tests need.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

var controllerBin string

// e2eClusterSecret is the cluster.secret of the controllers tests start.
const e2eClusterSecret = "e2e-cluster-secret-0123456789"

func TestMain(m *testing.M) {
	if os.Getenv(ovslab.EnvE2E) == "1" {
		dir, err := os.MkdirTemp("", "nimbus-e2e")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		controllerBin = filepath.Join(dir, "controller")
		root, err := ovslab.RepoRoot()
		if err == nil {
			cmd := exec.Command("go", "build", "-o", controllerBin, "./cmd/controller")
			cmd.Dir = root
			out, berr := cmd.CombinedOutput()
			err = berr
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "building controller:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// controller is one running controller process.
type controller struct {
	*ovslab.Proc
	OF, API string
	args    []string
	t       *testing.T
}

func startController(t *testing.T, extra ...string) *controller {
	t.Helper()
	c := &controller{t: t,
		OF:  fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t)),
		API: fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))}
	c.args = append([]string{"serve", "--openflow-listen", c.OF, "--api-listen", c.API, "--log-level", "debug"}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--cluster-secret") {
		// Every replica of a test shares it; getJSON signs /cluster/v1
		// requests with it.
		c.args = append(c.args, "--cluster-secret", e2eClusterSecret)
	}
	if !strings.Contains(strings.Join(extra, " "), "--etcd-endpoints") {
		// Embedded etcd: its own data dir and ports, kept across restarts.
		c.args = append(c.args, "--etcd-data-dir", filepath.Join(t.TempDir(), "etcd"),
			"--etcd-embed-client-url", fmt.Sprintf("http://127.0.0.1:%d", ovslab.FreePort(t)),
			"--etcd-embed-peer-url", fmt.Sprintf("http://127.0.0.1:%d", ovslab.FreePort(t)))
	}
	c.start()
	return c
}

func (c *controller) start() {
	c.t.Helper()
	c.Proc = ovslab.StartProcess(c.t, controllerBin, c.args, nil)
	ovslab.WaitListening(c.t, c.OF, 10*time.Second)
}

// restart stops the process (SIGTERM) and starts a new one on the same ports.
func (c *controller) restart() {
	c.t.Helper()
	if err := c.Stop(); err != nil {
		c.t.Logf("controller stop: %v", err)
	}
	c.start()
}

func (c *controller) target() string { return "tcp:" + c.OF }

// metric reads one sample from /metrics (sum over label sets matching
// the given label fragment).
func (c *controller) metric(name, labels string) float64 {
	c.t.Helper()
	v, err := ovslab.Metric(c.API, name, labels)
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// waitFor polls cond until it holds or the timeout passes.
var waitFor = ovslab.WaitFor
