package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerNAT is app/lb's first slice in the overlay lab: a GRE
// network on 3 hypervisors, one busybox httpd member on each (serving its
// own name on 8080), one client on each, an LBaaS v1 pool, members and a
// VIP 10.0.0.100:80 created through the Neutron API. 300 requests (100
// from each client) all succeed and reach all three members, the
// balancing done on each client's own chassis (NAT mode); a long
// download survives a member added and removed around it; with every
// member deleted, a request is refused at once by a RST.
func TestLoadBalancerNAT(t *testing.T) {
	hvlab.RequireE2E(t)
	env := startOverlay(t, hvlab.Options{}, nil)
	l, hvs, nb := env.l, env.hvs, env.nb
	const project = "tenant-lb"
	n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-lb", "project_id": project,
		"provider:network_type": "gre"}})
	s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
		"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
	vm := func(name, ip string, hv *hvlab.Hypervisor) *hvlab.VM {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": project,
			"name": name, "binding:host_id": hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": ip}}}})
		v := l.AddVM(t, hv, p["id"].(string), p["mac_address"].(string), ip+"/24")
		v.Exec("ethtool", "-K", "eth0", "tx", "off")       // TCP through the userspace datapath (LAB.md)
		v.Exec("ip", "link", "set", "eth0", "mtu", "1458") // the GRE network's MTU (no DHCP here)
		return v
	}
	var members, clients []*hvlab.VM
	for i, hv := range hvs {
		members = append(members, vm(fmt.Sprintf("m%d", i+1), fmt.Sprintf("10.0.0.%d", 21+i), hv))
		clients = append(clients, vm(fmt.Sprintf("c%d", i+1), fmt.Sprintf("10.0.0.%d", 11+i), hv))
	}
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	for i, m := range members {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("www%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(fmt.Sprintf("m%d\n", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		big := append([]byte(fmt.Sprintf("m%d\n", i+1)), bytes.Repeat([]byte("x"), bigSize-3)...)
		if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", m.NS(), "busybox", "httpd", "-f", "-p", "8080", "-h", dir)
		// Its own process group: httpd forks a child per connection, and
		// the cleanup ends them all (only the processes this test started).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	}
	pool := nb.post("lb/pools", map[string]any{"pool": map[string]any{"name": "web", "project_id": project, "subnet_id": s["id"],
		"protocol": "HTTP", "lb_method": "ROUND_ROBIN"}})
	var memberIDs []string
	for i := range members {
		mm := nb.post("lb/members", map[string]any{"member": map[string]any{"project_id": project, "pool_id": pool["id"],
			"address": fmt.Sprintf("10.0.0.%d", 21+i), "protocol_port": 8080}})
		memberIDs = append(memberIDs, mm["id"].(string))
	}
	vip := nb.post("lb/vips", map[string]any{"vip": map[string]any{"name": "web-vip", "project_id": project, "subnet_id": s["id"],
		"address": "10.0.0.100", "protocol": "HTTP", "protocol_port": 80, "pool_id": pool["id"]}})
	t.Logf("vip %v port %v", vip["id"], vip["port_id"])
	get := func(c *hvlab.VM) string {
		out, _ := c.ExecErr("curl", "-s", "-m", "2", "http://10.0.0.100/")
		return strings.TrimSpace(out)
	}
	// Straight to the members first: the lab carries TCP.
	for i, m := range members {
		want := fmt.Sprintf("m%d", i+1)
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := clients[0].ExecErr("curl", "-s", "-m", "2", "http://"+m.IP()+":8080/")
			if strings.TrimSpace(out) == want {
				break
			}
			if time.Now().After(deadline) {
				dumpHVs(t, hvs)
				t.Fatalf("c1 cannot fetch from %s directly: %q %v", want, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, c := range clients {
		deadline := time.Now().Add(30 * time.Second)
		for !strings.HasPrefix(get(c), "m") {
			if time.Now().After(deadline) {
				dumpHVs(t, hvs)
				t.Fatalf("%s: the VIP does not answer", c.IP())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	counts := map[string]int{}
	for _, c := range clients {
		out, _ := c.ExecErr("sh", "-c", "for i in $(seq 100); do curl -s -m 3 http://10.0.0.100/ || echo FAIL; done")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			counts[strings.TrimSpace(line)]++
		}
	}
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
