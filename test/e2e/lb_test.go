package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLoadBalancerNAT is app/lb's first slice in the overlay lab: a GRE
// network on 3 hypervisors, one busybox httpd member on each (serving its
// own name on 8080), one client on each, an LBaaS v1 pool, members and a
// VIP 10.0.0.100:80 created through the Neutron API. 300 requests (100
// from each client) all succeed and reach all three members, the
// balancing done on each client's own chassis (NAT mode); a long
// download survives a member added and removed around it; with every
// member deleted, a request is refused at once by a RST, and the VIP
// still answers every client's ping.
func TestLoadBalancerNAT(t *testing.T) {
	lab := newLBLab(t)
	hvs, nb, project, pool := lab.hvs, lab.nb, lab.project, lab.pool
	members, clients, memberIDs := lab.members, lab.clients, lab.memberIDs
	counts := lab.requests(100)
	t.Logf("300 requests through the VIP: %v", counts)
	if counts["FAIL"] != 0 {
		t.Errorf("%d of 300 requests failed", counts["FAIL"])
	}
	for i := range members {
		// 100 expected each; 50 is over 6 standard deviations below.
		if got := counts[fmt.Sprintf("m%d", i+1)]; got < 50 {
			t.Errorf("member m%d got %d of 300 requests", i+1, got)
		}
	}

	// A long download (1 MB at 200 kB/s) from c1 through the VIP goes on
	// unbroken while a member is added (one no server listens on: the
	// group changes, the connection must not move) and removed again.
	dl := exec.Command("ip", "netns", "exec", clients[0].NS(), "curl", "-s", "-m", "30", "--limit-rate", "200k", "http://10.0.0.100/big")
	var body bytes.Buffer
	dl.Stdout = &body
	if err := dl.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	extra := nb.post("lb/members", map[string]any{"member": map[string]any{"project_id": project, "pool_id": pool["id"],
		"address": clients[2].IP(), "protocol_port": 8080}})
	time.Sleep(1500 * time.Millisecond)
	nb.del("lb/members/" + extra["id"].(string))
	err := dl.Wait()
	first, _, _ := strings.Cut(body.String(), "\n")
	t.Logf("download through the VIP while a member came and went: %d bytes from %s, err %v", body.Len(), first, err)
	if err != nil || body.Len() != bigSize {
		t.Errorf("long download broken by the pool change: %d of %d bytes, curl: %v", body.Len(), bigSize, err)
	}

	// Every member gone: a request is refused at once (the lb app's RST),
	// curl exit 7 "couldn't connect", not a timeout (28).
	for _, id := range memberIDs {
		nb.del("lb/members/" + id)
	}
	var code int
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := exec.Command("ip", "netns", "exec", clients[1].NS(), "curl", "-s", "-m", "5", "http://10.0.0.100/").Run()
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code == 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("no member: curl exit %d", code)
	if code != 7 {
		t.Errorf("no member: curl exit %d, want 7 (connection refused by a RST)", code)
	}
	// The VIP answers pings (lb's E1, in place on each client's chassis),
	// members or not.
	for _, c := range clients {
		out, err := c.ExecErr("ping", "-n", "-c", "2", "-W", "2", "10.0.0.100")
		if err != nil || !strings.Contains(out, "from 10.0.0.100") {
			t.Errorf("%s's ping to the VIP: %v\n%s", c.Name(), err, out)
		}
	}
	if t.Failed() {
		dumpHVs(t, hvs)
	}
}

const bigSize = 1 << 20

func (n neutron) del(path string) {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+n.api+"/v2.0/"+path, nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		n.t.Fatalf("DELETE %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		n.t.Fatalf("DELETE %s: %s", path, resp.Status)
	}
}
