package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerRouted: a client on another subnet behind the router
// of the VIP's subnet (issue 12, "clients behind a router"). The lb lab
// (VIP 10.0.0.100:80, members m1..m3 on the three hypervisors, NAT mode)
// gets a second GRE network 10.0.1.0/24 and a router with an interface
// on both subnets; a client rc 10.0.1.11 on hv2, default route via
// 10.0.1.1, fetches from the VIP. Its hypervisor balances the connection
// (the select group, DNAT), l3_routing routes it to the member (m2 on
// the same hypervisor, m1 and m3 through tunnels), and the members'
// routed replies are un-NATed on hv2: 150 requests all answered and
// spread over the three members, and a capture on rc shows the answer
// coming from 10.0.0.100.80, never from a member's address or port 8080.
func TestLoadBalancerRouted(t *testing.T) {
	lab := newLBLab(t)
	rc := lab.routedClient(t)
	lab.routedRequests(t, rc, "NAT")
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}

// TestLoadBalancerDSRRouted: the same routed client rc (10.0.1.11 on
// hv2, behind the router of the VIP's subnet) with the pool in DSR mode
// (the member-side setup of TestLoadBalancerDSR). hv2 routes and
// balances rc's connection in lb (only the MACs and the TTL change, the
// destination stays 10.0.0.100:80) and the member answers from the VIP
// through its default gateway, routed on its own hypervisor: 150
// requests all answered and spread over the three members, rc sees the
// answer from 10.0.0.100.80, and a capture on m1 (on hv1, reached
// through the tunnel) shows rc's request arriving addressed to
// 10.0.0.100.80 and the reply leaving from it, never m1's own address or
// port 8080. With every member deleted, rc's request is refused at once
// (RST).
func TestLoadBalancerDSRRouted(t *testing.T) {
	lab := newLBLab(t)
	rc := lab.routedClient(t)
	lab.toDSR(t)
	lab.routedRequests(t, rc, "DSR")
	got := lab.memberCapture(t, 0, rc)
	if !strings.Contains(got, "10.0.1.11.") || !strings.Contains(got, "> 10.0.0.100.80:") {
		t.Errorf("m1 did not receive rc's request addressed to the VIP 10.0.0.100:80")
	}
	if !strings.Contains(got, "10.0.0.100.80 > 10.0.1.11.") {
		t.Errorf("m1's reply to rc does not leave from the VIP 10.0.0.100:80")
	}
	if strings.Contains(got, "10.0.0.21.8080") {
		t.Errorf("m1 saw NAT traffic (its own address and port) in DSR mode")
	}
	// Every member gone: rc's request is refused at once (the lb app's
	// RST, from the router's MAC), curl exit 7, not a timeout (28).
	for _, id := range lab.memberIDs {
		lab.nb.del("lb/members/" + id)
	}
	code := -1
	deadline := time.Now().Add(20 * time.Second)
	for code != 7 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		err := exec.Command("ip", "netns", "exec", rc.NS(), "curl", "-s", "-m", "5", "http://10.0.0.100/").Run()
		code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	t.Logf("DSR, no member: rc's curl exit %d", code)
	if code != 7 {
		t.Errorf("DSR, no member: rc's curl exit %d, want 7 (connection refused by a RST)", code)
	}
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}

// routedClient adds to the lab a second GRE network 10.0.1.0/24 and a
// router with an interface on both subnets (Neutron API), a client rc
// 10.0.1.11 on hv2 (default route via 10.0.1.1) and on each member a
// route to 10.0.1.0/24 via 10.0.0.1; it returns rc once it reaches
// every member directly (routed, port 8080).
func (lab *lbLab) routedClient(t *testing.T) *hvlab.VM {
	t.Helper()
	nb, project, hvs := lab.nb, lab.project, lab.hvs
	n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-lb-b", "project_id": project,
		"provider:network_type": "gre"}})
	s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
		"cidr": "10.0.1.0/24", "ip_version": 4, "gateway_ip": "10.0.1.1"}})
	rt := nb.post("routers", map[string]any{"router": map[string]any{"name": "r-lb", "project_id": project}})
	for _, sub := range []any{lab.subnet["id"], s["id"]} {
		nb.put("routers/"+rt["id"].(string)+"/add_router_interface", map[string]any{"subnet_id": sub})
	}
	p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": project,
		"name": "rc", "binding:host_id": hvs[1].Name(),
		"fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": "10.0.1.11"}}}})
	rc := lab.env.l.AddVM(t, hvs[1], p["id"].(string), p["mac_address"].(string), "10.0.1.11/24")
	rc.Exec("ethtool", "-K", "eth0", "tx", "off")
	rc.Exec("ip", "link", "set", "eth0", "mtu", "1458")
	rc.Exec("ip", "route", "add", "default", "via", "10.0.1.1")
	for _, m := range lab.members {
		m.Exec("ip", "route", "add", "10.0.1.0/24", "via", "10.0.0.1")
	}
	for i, m := range lab.members {
		want := fmt.Sprintf("m%d", i+1)
		routedWait(t, lab, rc, "http://"+m.IP()+":8080/", "routed fetch from "+want, func(s string) bool { return s == want })
	}
	return rc
}

// routedWait retries rc's fetch of url until ok accepts the answer (30 s).
func routedWait(t *testing.T, lab *lbLab, rc *hvlab.VM, url, what string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := rc.ExecErr("curl", "-s", "-m", "2", url)
		if ok(strings.TrimSpace(out)) {
			return
		}
		if time.Now().After(deadline) {
			dumpHVs(t, lab.hvs)
			t.Fatalf("rc: %s: last answer %q", what, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// routedRequests: rc reaches the VIP, then 150 requests from rc are all
// answered and spread over the three members (each at least 20), and a
// capture on rc shows its request to 10.0.0.100.80 and the answer from
// 10.0.0.100.80, never a member's address or port 8080.
func (lab *lbLab) routedRequests(t *testing.T, rc *hvlab.VM, mode string) {
	t.Helper()
	routedWait(t, lab, rc, "http://10.0.0.100/", "the VIP does not answer the routed client", func(s string) bool { return strings.HasPrefix(s, "m") })

	out, _ := rc.ExecErr("sh", "-c", "for i in $(seq 150); do curl -s -m 3 http://10.0.0.100/ || echo FAIL; done")
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		counts[strings.TrimSpace(line)]++
	}
	t.Logf("%s: 150 requests from the routed client through the VIP: %v", mode, counts)
	if counts["FAIL"] != 0 {
		t.Errorf("%d of 150 requests failed", counts["FAIL"])
	}
	for i := range lab.members {
		// 50 expected each; 20 is over 5 standard deviations below.
		if got := counts[fmt.Sprintf("m%d", i+1)]; got < 20 {
			t.Errorf("member m%d got %d of 150 requests", i+1, got)
		}
	}

	// What rc sees: its request to the VIP, the answer from the VIP.
	capture := exec.Command("ip", "netns", "exec", rc.NS(), "tcpdump", "-i", "eth0", "-nn", "-l", "--immediate-mode", "-c", "40", "tcp")
	var capOut bytes.Buffer
	capture.Stdout = &capOut
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = capture.Process.Kill(); _ = capture.Wait() })
	time.Sleep(time.Second)
	got := ""
	for i := 0; i < 5 && !strings.HasPrefix(got, "m"); i++ {
		out, _ := rc.ExecErr("curl", "-s", "-m", "3", "http://10.0.0.100/")
		got = strings.TrimSpace(out)
	}
	time.Sleep(500 * time.Millisecond)
	_ = capture.Process.Signal(syscall.SIGINT)
	_ = capture.Wait()
	cap := capOut.String()
	t.Logf("rc's capture (answered by %q):\n%s", got, cap)
	if !strings.Contains(cap, "10.0.1.11.") || !strings.Contains(cap, "> 10.0.0.100.80:") {
		t.Errorf("rc's capture has no request to the VIP 10.0.0.100:80")
	}
	if !strings.Contains(cap, "10.0.0.100.80 > 10.0.1.11.") {
		t.Errorf("rc's capture has no answer from the VIP 10.0.0.100:80")
	}
	// (".8080" followed by a digit is a timestamp's fraction, not a port)
	if regexp.MustCompile(`\.8080[ :]`).MatchString(cap) || strings.Contains(cap, "10.0.0.2") {
		t.Errorf("rc saw a member's address or port: the reply was not from the VIP")
	}
}
