package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestLoadBalancerCLI drives the load balancer with the real neutron CLI
// (LBaaS v1: lb-pool-create, lb-member-create, lb-vip-create,
// lb-healthmonitor-create and -associate, lb-member-show) in the overlay
// lab, with traffic: 3,000 requests through the VIP (1,000 from the
// client on each hypervisor, 8 at a time) all answered and spread within
// ±15% of even over the three members; then one member's httpd killed,
// `neutron lb-member-show` reports it INACTIVE and no request fails.
func TestLoadBalancerCLI(t *testing.T) {
	if _, err := exec.LookPath("neutron"); err != nil {
		t.Fatalf("the neutron CLI is needed (apt-get install python3-neutronclient): %v", err)
	}
	var api string
	neutronCmd := func(args ...string) (string, error) {
		cmd := exec.Command("neutron", append([]string{"--os-auth-strategy", "noauth", "--os-token", "noauth",
			"--os-url", "http://" + api}, args...)...)
		cmd.Env = append(os.Environ(), "OS_CLOUD=", "OS_AUTH_URL=", "HOME="+t.TempDir(), "OS_AUTH_TYPE=admin_token")
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return string(out), err
	}
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, err := neutronCmd(append(args, "-f", "json")...)
		if err != nil {
			t.Fatalf("neutron %v: %v", args, err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("neutron %v: not JSON: %v\n%s", args, err, out)
		}
		t.Logf("neutron %s", strings.Join(args, " "))
		return v
	}
	lab := newLBLabCLI(t, func(a string, args ...string) map[string]any {
		api = a
		return cli(args...)
	}, "--lb-conn-interval", "1s")

	counts := lab.parallel(t, 1000, 8)
	answered := lab.even(t, "NAT", counts)
	// The VIP's status comes from the data plane: its flows are in.
	if st := cli("lb-vip-show", lab.vip["id"].(string))["status"]; st != "ACTIVE" {
		t.Errorf("lb-vip-show: status %v while serving, want ACTIVE", st)
	}
	// The pool's stats come from the VIP's flow counters on every
	// chassis, as of each switch's last full reconcile pass (30 s): the
	// 3,000 connections balanced (and the setup's requests to the VIP),
	// and bytes both ways.
	stats := lab.statsCover(t, "lb-pool-stats", func() map[string]any { return cli("lb-pool-stats", "web") }, answered, answered+3)
	if n := stats["total_connections"].(float64); int(n) > 3000+lab.warmups {
		t.Errorf("total_connections %v, but the clients opened %d (3,000 and %d in the setup)", n, 3000+lab.warmups, lab.warmups)
	}
	// active_connections: the node agents' count of the VIP's
	// ESTABLISHED connections in their conntrack (here every second).
	// Each client holds one connection open (nc sending nothing: httpd
	// waits for the request); the count follows them up and back down.
	if n := stats["active_connections"].(float64); n != 0 {
		t.Errorf("active_connections %v with every request answered", n)
	}
	// (nc's input is a FIFO it holds open itself: no EOF, nothing sent;
	// exec: the process started is nc, which Kill ends.)
	fifo := filepath.Join(t.TempDir(), "hold")
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Fatal(err)
	}
	var holds []*ovslab.Proc
	for _, c := range lab.clients {
		holds = append(holds, ovslab.StartProcess(t, "ip", []string{"netns", "exec", c.NS(), "sh", "-c", "exec busybox nc 10.0.0.100 80 <>" + fifo}, nil))
	}
	active := func(want func(float64) bool) func() bool {
		return func() bool {
			stats = cli("lb-pool-stats", "web")
			n, _ := stats["active_connections"].(float64)
			return want(n)
		}
	}
	waitFor(t, 30*time.Second, "lb-pool-stats active_connections 3 with 3 connections held", active(func(n float64) bool { return n == 3 }))
	for _, p := range holds {
		p.Kill()
	}
	waitFor(t, 30*time.Second, "lb-pool-stats active_connections 0 once they closed", active(func(n float64) bool { return n == 0 }))

	hm := cli("lb-healthmonitor-create", "--tenant-id", lab.project, "--delay", "1", "--timeout", "1", "--max-retries", "2",
		"--type", "HTTP", "--url-path", "/", "--expected-codes", "200")
	if _, err := neutronCmd("lb-healthmonitor-associate", hm["id"].(string), "web"); err != nil {
		t.Fatalf("neutron lb-healthmonitor-associate: %v", err)
	}
	waitFor(t, 30*time.Second, "a probe port on each chassis", func() bool {
		for _, hv := range lab.hvs {
			if out, err := hv.VsctlErr("list-ports", "br-int"); err != nil || !containsPrefix(out, "lbp-") {
				return false
			}
		}
		return true
	})
	lab.stopHTTPD(2, nil)
	killed := time.Now()
	waitFor(t, 30*time.Second, "m3 INACTIVE in lb-member-show", func() bool {
		return cli("lb-member-show", lab.memberIDs[2])["status"] == "INACTIVE"
	})
	t.Logf("m3 INACTIVE (seen by the CLI) %v after its httpd was killed", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)
	counts = lab.parallel(t, 100, 8)
	t.Logf("300 requests with m3 down: %v", counts)
	if counts["m1"]+counts["m2"] != 300 || counts["m3"] != 0 {
		t.Errorf("with m3 down: %v, want 300 answers from m1 and m2", counts)
	}
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}

// parallel sends n requests to the VIP from every client at once, each
// client running `curl --parallel` (at most par connections at a time),
// and counts the answers by member name.
func (lab *lbLab) parallel(t *testing.T, n, par int) map[string]int {
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	urls := strings.TrimSpace(strings.Repeat("http://10.0.0.100/ ", n))
	for _, c := range lab.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// --parallel-immediate: without it curl holds a few of the
			// first transfers back to see whether they can be
			// multiplexed, and they end only with the whole batch (about
			// 3 s for 1,000 here; past -m 5 on a loaded machine, 4 per
			// client failed). -m 15, not 5: a request whose SYN is lost
			// twice on a loaded machine (CI, 2026-12-03: 1 of 3,000)
			// is answered after its third try at 3 s, past 5 s with the
			// queueing; a request that hangs still fails.
			out, _ := c.ExecErr("sh", "-c", fmt.Sprintf("curl -s -m 15 --parallel --parallel-immediate --parallel-max %d %s", par, urls))
			mu.Lock()
			defer mu.Unlock()
			for _, l := range strings.Split(out, "\n") {
				if l = strings.TrimSpace(l); l != "" {
					counts[l]++
				}
			}
		}()
	}
	wg.Wait()
	return counts
}
