package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerDSR: the lab's pool switched to DSR (description tag
// nimbus:dsr) with the member-side setup of app/lb/README.md: the VIP on
// each member's loopback (arp_ignore=1, arp_announce=2), an httpd on the
// VIP's port 80, and the VIP in the member ports' allowed_address_pairs.
// 3,000 requests (1,000 from each client) all answered within ±15% of
// even. A capture on m2's interface during a request from c1 shows the
// request arriving addressed to the VIP:80 (only the MAC rewritten) and
// the reply leaving from VIP:80: the member answers the client directly,
// with no un-NAT on the client's chassis (in NAT mode m2 would see and
// send 10.0.0.22:8080). A long download from each client survives a
// member added and removed (the member pinned in conntrack). An HTTP
// health monitor then keeps all three ACTIVE, takes m2 out (INACTIVE, no
// request fails) when its httpd is killed and back when restarted.
func TestLoadBalancerDSR(t *testing.T) {
	lab := newLBLab(t)
	lab.toDSR(t)

	counts := lab.parallel(t, 1000, 8)
	answered := lab.even(t, "DSR", counts)
	// DSR's stats: the replies counted as they leave their members.
	lab.statsCover(t, "DSR", lab.poolStats, answered, answered)

	// Deliverable 3 in DSR mode: a long download (1 MB at 200 kB/s) from
	// each client goes on unbroken while a member is added (one that
	// serves nothing on the VIP: the group changes, which without the
	// pinning in conntrack moves most connections to other members) and
	// removed again.
	lab.downloadsAcross(t, "DSR, a member added and removed", func() {
		time.Sleep(500 * time.Millisecond)
		extra := lab.nb.post("lb/members", map[string]any{"member": map[string]any{"project_id": lab.project, "pool_id": lab.pool["id"],
			"address": lab.clients[2].IP(), "protocol_port": 80}})
		time.Sleep(1500 * time.Millisecond)
		lab.nb.del("lb/members/" + extra["id"].(string))
	})

	// What m2 sees and sends, while c1 asks until one request lands on m2.
	got := lab.memberCapture(t, 1, lab.clients[0])
	if !strings.Contains(got, "10.0.0.11.") || !strings.Contains(got, "> 10.0.0.100.80:") {
		t.Errorf("m2 did not receive c1's request addressed to the VIP 10.0.0.100:80")
	}
	if !strings.Contains(got, "10.0.0.100.80 > 10.0.0.11.") {
		t.Errorf("m2's reply does not leave from the VIP 10.0.0.100:80")
	}
	if strings.Contains(got, "10.0.0.22.8080") {
		t.Errorf("m2 saw NAT traffic (its own address and port) in DSR mode")
	}

	// Health monitors of a DSR pool: probed from the subnet's gateway
	// address (a DSR member drops packets from the VIP, its own address,
	// as martians) at port 80 of the member's own address. All ACTIVE
	// while served; m2's DSR httpd killed: INACTIVE, and no request
	// fails or reaches m2; restarted: ACTIVE and serving again.
	nb := lab.nb
	lab.monitor(t)
	status := func(i int) string {
		return fmt.Sprint(nb.get("lb/members/" + lab.memberIDs[i])["status"])
	}
	statuses := func() string { return fmt.Sprint(status(0), " ", status(1), " ", status(2)) }
	time.Sleep(5 * time.Second)
	if got := statuses(); got != "ACTIVE ACTIVE ACTIVE" {
		dumpHVs(t, lab.hvs)
		t.Fatalf("DSR members with their httpd up, monitored: %s, want all ACTIVE (the probes do not reach them)", got)
	}
	lab.stopHTTPD(1, lab.dsrHTTPD[1])
	killed := time.Now()
	waitFor(t, 30*time.Second, "m2 INACTIVE", func() bool { return status(1) == "INACTIVE" })
	t.Logf("DSR: m2 INACTIVE %v after its httpd was killed (delay x max_retries = 2s)", time.Since(killed).Round(10*time.Millisecond))
	if got := statuses(); got != "ACTIVE INACTIVE ACTIVE" {
		t.Errorf("DSR, after m2's kill: %s, want m1 and m3 ACTIVE", got)
	}
	time.Sleep(2 * time.Second)
	counts = lab.requests(100)
	t.Logf("DSR: 300 requests with m2 down: %v", counts)
	if counts["FAIL"] != 0 || counts["m2"] != 0 || counts["m1"]+counts["m3"] != 300 {
		t.Errorf("DSR, m2 down: %v, want 300 answers from m1 and m3 and no failure", counts)
	}
	lab.startDSRHTTPD(t, 1)
	back := time.Now()
	waitFor(t, 30*time.Second, "m2 ACTIVE again", func() bool { return status(1) == "ACTIVE" })
	t.Logf("DSR: m2 ACTIVE %v after its httpd restarted", time.Since(back).Round(10*time.Millisecond))
	waitFor(t, 30*time.Second, "m2 serving through the VIP again", func() bool { return lab.requests(10)["m2"] > 0 })
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}

// toDSR switches the lab's pool to DSR (description tag nimbus:dsr) with
// the member-side setup of app/lb/README.md: the VIP on each member's
// loopback (arp_ignore=1, arp_announce=2), an httpd on the VIP's port 80,
// and the VIP in the member ports' allowed_address_pairs; then waits for
// the DSR groups on every chassis and for every client to be answered.
func (lab *lbLab) toDSR(t *testing.T) {
	t.Helper()
	nb := lab.nb
	for _, m := range lab.members {
		m.Exec("ip", "addr", "add", "10.0.0.100/32", "dev", "lo")
		m.Exec("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
		nb.put("ports/"+m.Name(), map[string]any{"port": map[string]any{
			"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.100"}}}})
	}
	lab.dsrHTTPD = make([]*exec.Cmd, len(lab.members))
	for i := range lab.members {
		lab.startDSRHTTPD(t, i)
	}
	nb.put("lb/pools/"+lab.pool["id"].(string), map[string]any{"pool": map[string]any{"description": "web nimbus:dsr"}})
	waitFor(t, 30*time.Second, "DSR groups on every chassis", func() bool {
		for _, hv := range lab.hvs {
			out, err := hv.OfctlErr("-O", "OpenFlow13", "dump-groups", "br-int")
			if err != nil || !strings.Contains(out, "type=select") || strings.Contains(out, "nat(dst=10.0.0.2") {
				return false
			}
			out, err = hv.OfctlErr("-O", "OpenFlow13", "dump-flows", "br-int", "table=5")
			if err != nil || !strings.Contains(out, "->ct_mark") {
				return false
			}
		}
		return true
	})
	waitFor(t, 20*time.Second, "every client answered in DSR mode", func() bool {
		for _, c := range lab.clients {
			if !strings.HasPrefix(lab.get(c), "m") {
				return false
			}
		}
		return true
	})
}

// memberCapture is what member i's interface sees and sends (tcpdump,
// 40 TCP packets at most) while client c asks the VIP until one request
// lands on that member (30 tries; the test fails if none does).
func (lab *lbLab) memberCapture(t *testing.T, i int, c *hvlab.VM) string {
	t.Helper()
	cap := exec.Command("ip", "netns", "exec", lab.members[i].NS(), "tcpdump", "-i", "eth0", "-nn", "-l", "--immediate-mode", "-c", "40", "tcp")
	var capOut bytes.Buffer
	cap.Stdout = &capOut
	if err := cap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cap.Process.Kill(); _ = cap.Wait() })
	time.Sleep(time.Second)
	want := fmt.Sprintf("m%d", i+1)
	hit := false
	for n := 0; n < 30 && !hit; n++ {
		hit = lab.get(c) == want
	}
	time.Sleep(500 * time.Millisecond)
	_ = cap.Process.Signal(syscall.SIGINT)
	_ = cap.Wait()
	got := capOut.String()
	t.Logf("%s's capture:\n%s", want, got)
	if !hit {
		t.Fatalf("no request from %s reached %s in 30", c.IP(), want)
	}
	return got
}

// startDSRHTTPD starts member i's DSR httpd: port 80 of every address,
// the VIP's (on lo) for the clients and the member's own for the health
// monitors (app/lb/README.md, "Health monitors of DSR pools").
func (lab *lbLab) startDSRHTTPD(t *testing.T, i int) {
	cmd := exec.Command("ip", "netns", "exec", lab.members[i].NS(), "busybox", "httpd", "-f", "-p", "80", "-h", lab.dirs[i])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lab.dsrHTTPD[i] = cmd
	t.Cleanup(func() { lab.stopHTTPD(i, cmd) })
}
