package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestLoadBalancerRestart: the controller is killed (SIGKILL) and
// started again 2 s later while every client downloads 1 MB at 200 kB/s
// through the VIP, first in NAT mode, then in DSR mode. Every download
// completes unbroken (the connections live in OVS's conntrack and the
// flows and groups stay in br-int, fail_mode secure), and the restarted
// controller, once it has mastered and converged every switch, has sent
// no flow-mod and made no reconcile pass with a change (no flow, group
// or meter re-sent: the load balancer's select groups and conntrack
// flows are found as desired).
func TestLoadBalancerRestart(t *testing.T) {
	lab := newLBLab(t)
	c := lab.env.c
	for _, mode := range []string{"NAT", "DSR"} {
		if mode == "DSR" {
			lab.toDSR(t)
		}
		lab.downloadsAcross(t, mode+", the controller killed and restarted", func() {
			c.Kill()
			time.Sleep(2 * time.Second)
			c.start()
		})
		waitFor(t, 30*time.Second, "3 switches mastered and converged", func() bool {
			n, err := ovslab.Metric(c.API, "nimbus_switches_mastered", "")
			return err == nil && n == 3 && strings.Count(c.Log(), "msg=converged") >= 3
		})
		mods, err := ovslab.Metric(c.API, "nimbus_flow_mods_total", `source="reconcile"`)
		if err != nil {
			t.Fatal(err)
		}
		passes := strings.Count(c.Log(), "msg=reconciled")
		t.Logf("%s: after the restart: %v flow-mods, %d reconcile passes with changes", mode, mods, passes)
		if mods != 0 || passes != 0 {
			for _, l := range strings.Split(c.Log(), "\n") {
				if strings.Contains(l, "msg=reconciled") {
					t.Log(l)
				}
			}
			t.Errorf("%s: the restarted controller re-sent state: %v flow-mods, %d passes with changes", mode, mods, passes)
		}
	}
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}
