package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLoadBalancerHealth: an HTTP health monitor (delay 1 s, timeout 1 s,
// max_retries 2, url_path /, expected_codes 200) on the lab's pool, run
// by each member's node agent (lbprobe). All three members stay ACTIVE
// while their httpd serves (the probes pass through the probe namespace
// and app/lb's probe flows). m2's httpd killed: m2 INACTIVE in the API
// (measured time logged; delay x max_retries = 2 s), then 300 requests
// from the three clients all succeed, none on m2. Restarted: ACTIVE
// again and serving. Every httpd killed: every member INACTIVE and a
// request is refused at once (RST, curl exit 7).
func TestLoadBalancerHealth(t *testing.T) {
	lab := newLBLab(t)
	nb := lab.nb
	lab.monitor(t)
	status := func(i int) string {
		var v struct {
			Member struct {
				Status string `json:"status"`
			} `json:"member"`
		}
		if err := getJSON("http://"+nb.api+"/v2.0/lb/members/"+lab.memberIDs[i], &v); err != nil {
			return "error: " + err.Error()
		}
		return v.Member.Status
	}
	statuses := func() []string {
		var s []string
		for i := range lab.memberIDs {
			s = append(s, status(i))
		}
		return s
	}
	// The probes pass: after several delay x max_retries, all still
	// ACTIVE.
	time.Sleep(5 * time.Second)
	if got := statuses(); fmt.Sprint(got) != "[ACTIVE ACTIVE ACTIVE]" {
		dumpHVs(t, lab.hvs)
		t.Fatalf("members with their httpd up: %v, want all ACTIVE (the probes do not reach them)", got)
	}

	// SOURCE_IP persistence (the VIP's session_persistence, through the
	// API): each client's 20 requests all reach one member.
	vipPath := "lb/vips/" + lab.vip["id"].(string)
	nb.put(vipPath, map[string]any{"vip": map[string]any{"session_persistence": map[string]any{"type": "SOURCE_IP"}}})
	waitFor(t, 30*time.Second, "SOURCE_IP flows on every chassis", func() bool {
		for _, hv := range lab.hvs {
			if out, err := hv.OfctlErr("dump-flows", "br-int"); err != nil || !strings.Contains(out, "multipath(") {
				return false
			}
		}
		return true
	})
	for _, c := range lab.clients {
		out, _ := c.ExecErr("sh", "-c", "for i in $(seq 20); do curl -s -m 3 http://10.0.0.100/ || echo FAIL; done")
		got := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			got[strings.TrimSpace(l)]++
		}
		t.Logf("SOURCE_IP: client %s: %v", c.IP(), got)
		if len(got) != 1 || got["FAIL"] != 0 {
			t.Errorf("SOURCE_IP: client %s reached %v, want one member for all 20", c.IP(), got)
		}
	}
	nb.put(vipPath, map[string]any{"vip": map[string]any{"session_persistence": nil}})
	waitFor(t, 30*time.Second, "SOURCE_IP flows gone", func() bool {
		for _, hv := range lab.hvs {
			if out, err := hv.OfctlErr("dump-flows", "br-int"); err != nil || strings.Contains(out, "multipath(") {
				return false
			}
		}
		return true
	})

	lab.stopHTTPD(1, nil)
	killed := time.Now()
	waitFor(t, 30*time.Second, "m2 INACTIVE", func() bool { return status(1) == "INACTIVE" })
	t.Logf("m2 INACTIVE %v after its httpd was killed (delay x max_retries = 2s)", time.Since(killed).Round(10*time.Millisecond))
	if got := statuses(); got[0] != "ACTIVE" || got[2] != "ACTIVE" {
		t.Errorf("after m2's kill: %v, want m1 and m3 ACTIVE", got)
	}
	// The status reaches the switches through the snapshot; then no request fails.
	time.Sleep(2 * time.Second)
	counts := lab.requests(100)
	t.Logf("300 requests with m2 down: %v", counts)
	if counts["FAIL"] != 0 || counts["m2"] != 0 || counts["m1"]+counts["m3"] != 300 {
		t.Errorf("with m2 down: %v, want 300 answers from m1 and m3 and no failure", counts)
	}

	lab.startHTTPD(t, 1)
	back := time.Now()
	waitFor(t, 30*time.Second, "m2 ACTIVE again", func() bool { return status(1) == "ACTIVE" })
	t.Logf("m2 ACTIVE %v after its httpd restarted", time.Since(back).Round(10*time.Millisecond))
	waitFor(t, 30*time.Second, "m2 serving through the VIP again", func() bool {
		return lab.requests(10)["m2"] > 0
	})

	for i := range lab.members {
		lab.stopHTTPD(i, nil)
	}
	waitFor(t, 30*time.Second, "every member INACTIVE", func() bool {
		return fmt.Sprint(statuses()) == "[INACTIVE INACTIVE INACTIVE]"
	})
	var code int
	deadline := time.Now().Add(20 * time.Second)
	for {
		start := time.Now()
		err := exec.Command("ip", "netns", "exec", lab.clients[0].NS(), "curl", "-s", "-m", "5", "http://10.0.0.100/").Run()
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code == 7 {
			t.Logf("all members down: refused in %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != 7 {
		t.Errorf("all members down: curl exit %d, want 7 (connection refused by a RST)", code)
	}
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}

func containsPrefix(lines, prefix string) bool {
	for _, l := range strings.Split(lines, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}
