package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerPortReuse reproduces a known limit (app/lb/README.md,
// "Port reuse stall"; not fixed, so not part of make test): a client that
// reuses its source ports quickly (its range cut to 32 ports,
// tcp_tw_reuse on, 4 connections at a time, for 75 s) gets every request
// answered straight from a member, but through a NAT VIP some requests
// stall past curl's 15 s once the lb zone's first entries have expired.
// Run: NIMBUS_REPRO=1 NIMBUS_E2E=1 go test -run 'TestLoadBalancerPortReuse$' -v ./test/e2e/
func TestLoadBalancerPortReuse(t *testing.T) {
	if os.Getenv("NIMBUS_REPRO") == "" {
		t.Skip("reproduction of a known limit; set NIMBUS_REPRO=1")
	}
	lab := newLBLab(t)
	c := lab.clients[0]
	c.Exec("sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40031")
	c.Exec("sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
	direct := reuseLoad(t, c, "http://10.0.0.21:8080/")
	time.Sleep(65 * time.Second) // the direct run's TIME_WAITs end
	vip := reuseLoad(t, c, "http://10.0.0.100/")
	if direct != 0 || vip != 0 {
		t.Errorf("requests not answered from 32 reused ports in 75 s: %d straight to m1, %d through the VIP", direct, vip)
	}
}

// reuseLoad sends batches of 200 requests to url from c for 75 s and
// returns how many were not answered.
func reuseLoad(t *testing.T, c *hvlab.VM, url string) int {
	const batch = 200
	urls := strings.TrimSpace(strings.Repeat(url+" ", batch))
	counts := map[string]int{}
	n, answered := 0, 0
	for end := time.Now().Add(75 * time.Second); time.Now().Before(end); {
		out, _ := c.ExecErr("sh", "-c", fmt.Sprintf("curl --no-progress-meter -m 15 --parallel --parallel-immediate --parallel-max 4 %s 2>&1", urls))
		n += batch
		for _, l := range strings.Split(out, "\n") {
			switch l = strings.TrimSpace(l); {
			case strings.HasPrefix(l, "curl:"):
				if i := strings.Index(l, " after"); i > 0 {
					l = l[:i]
				}
				counts[l]++
			case l != "":
				counts[l]++
				answered++
			}
		}
	}
	t.Logf("%s: %d requests from 32 ports in 75 s: %v", url, n, counts)
	return n - answered
}
