package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/lbprobe"
)

// lbLab is the overlay lab of the load-balancer tests: a GRE network on
// 3 hypervisors, one busybox httpd member on each (serving its own name,
// m1..m3, and a 1 MB file "big", on 8080), one client on each, an LBaaS
// v1 pool with the three members and a VIP 10.0.0.100:80, all created
// through the Neutron API, and the VIP answering every client.
type lbLab struct {
	env       *overlayEnv
	hvs       []*hvlab.Hypervisor
	nb        neutron
	project   string
	network   map[string]any
	subnet    map[string]any
	pool      map[string]any
	vip       map[string]any
	members   []*hvlab.VM
	clients   []*hvlab.VM
	memberIDs []string
	dirs      []string
	// warmups counts the requests to the VIP the setup sent (until each
	// client got an answer).
	warmups  int
	httpd    []*exec.Cmd
	dsrHTTPD []*exec.Cmd // toDSR's httpd on port 80 of each member
	vipFIPID string      // floatingIP's floating IP
}

func newLBLab(t *testing.T, nodeArgs ...string) *lbLab { return newLBLabCLI(t, nil, nodeArgs...) }

// newLBLabCLI is newLBLab with the pool, members and VIP created by
// cli (the real neutron CLI) when not nil.
func newLBLabCLI(t *testing.T, cli func(api string, args ...string) map[string]any, nodeArgs ...string) *lbLab {
	return newLBLabWith(t, hvlab.Options{}, nil, cli, nodeArgs...)
}

// newLBLabWith is newLBLabCLI on a lab made with opts, the agents
// mapping physnets (with Options.External: the external network, see
// TestLoadBalancerFloatingIP).
func newLBLabWith(t *testing.T, opts hvlab.Options, physnets []string, cli func(api string, args ...string) map[string]any, nodeArgs ...string) *lbLab {
	return newLBLabNet(t, opts, physnets, map[string]any{"provider:network_type": "gre"}, cli, nodeArgs...)
}

// newLBLabNet is newLBLabWith with the tenant network's provider
// attributes (TestLoadBalancerVLAN: a VLAN network).
func newLBLabNet(t *testing.T, opts hvlab.Options, physnets []string, provider map[string]any, cli func(api string, args ...string) map[string]any, nodeArgs ...string) *lbLab {
	hvlab.RequireE2E(t)
	lab := &lbLab{project: "tenant-lb"}
	// Registered first, so it runs last, once the node agents have
	// stopped: the health probe namespaces the agents made for our VIP
	// (lbprobe.NetnsName), which are not the lab's.
	t.Cleanup(func() {
		if lab.vip == nil {
			return
		}
		for _, hv := range lab.hvs {
			ns := lbprobe.NetnsName("", hv.Name(), lab.vip["id"].(string))
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				_ = exec.Command("ip", "netns", "del", ns).Run()
			}
		}
	})
	env := startOverlay(t, opts, physnets, nodeArgs...)
	lab.env, lab.hvs, lab.nb = env, env.hvs, env.nb
	l, hvs, nb, project := env.l, env.hvs, env.nb, lab.project
	spec := map[string]any{"name": "net-lb", "project_id": project}
	for k, v := range provider {
		spec[k] = v
	}
	n := nb.post("networks", map[string]any{"network": spec})
	s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
		"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
	lab.network, lab.subnet = n, s
	vm := func(name, ip string, hv *hvlab.Hypervisor) *hvlab.VM {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": project,
			"name": name, "binding:host_id": hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": ip}}}})
		v := l.AddVM(t, hv, p["id"].(string), p["mac_address"].(string), ip+"/24")
		v.Exec("ethtool", "-K", "eth0", "tx", "off")       // TCP through the userspace datapath (LAB.md)
		v.Exec("ip", "link", "set", "eth0", "mtu", "1458") // the GRE network's MTU (no DHCP here)
		return v
	}
	for i, hv := range hvs {
		lab.members = append(lab.members, vm(fmt.Sprintf("m%d", i+1), fmt.Sprintf("10.0.0.%d", 21+i), hv))
		lab.clients = append(lab.clients, vm(fmt.Sprintf("c%d", i+1), fmt.Sprintf("10.0.0.%d", 11+i), hv))
	}
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	for i := range lab.members {
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
		lab.dirs = append(lab.dirs, dir)
		lab.httpd = append(lab.httpd, nil)
		lab.startHTTPD(t, i)
	}
	if cli != nil {
		lab.cliLB(t, cli)
	} else {
		lab.pool = nb.post("lb/pools", map[string]any{"pool": map[string]any{"name": "web", "project_id": project, "subnet_id": s["id"],
			"protocol": "HTTP", "lb_method": "ROUND_ROBIN"}})
		for i := range lab.members {
			mm := nb.post("lb/members", map[string]any{"member": map[string]any{"project_id": project, "pool_id": lab.pool["id"],
				"address": fmt.Sprintf("10.0.0.%d", 21+i), "protocol_port": 8080}})
			lab.memberIDs = append(lab.memberIDs, mm["id"].(string))
		}
		lab.vip = nb.post("lb/vips", map[string]any{"vip": map[string]any{"name": "web-vip", "project_id": project, "subnet_id": s["id"],
			"address": "10.0.0.100", "protocol": "HTTP", "protocol_port": 80, "pool_id": lab.pool["id"]}})
	}
	t.Logf("vip %v port %v", lab.vip["id"], lab.vip["port_id"])
	// Straight to the members first: the lab carries TCP.
	for i, m := range lab.members {
		want := fmt.Sprintf("m%d", i+1)
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := lab.clients[0].ExecErr("curl", "-s", "-m", "2", "http://"+m.IP()+":8080/")
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
	for _, c := range lab.clients {
		deadline := time.Now().Add(30 * time.Second)
		for lab.warmups++; !strings.HasPrefix(lab.get(c), "m"); lab.warmups++ {
			if time.Now().After(deadline) {
				dumpHVs(t, hvs)
				t.Fatalf("%s: the VIP does not answer", c.IP())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return lab
}

// get is one request to the VIP from c: the member's name, "" on failure.
func (lab *lbLab) get(c *hvlab.VM) string {
	out, _ := c.ExecErr("curl", "-s", "-m", "2", "http://10.0.0.100/")
	return strings.TrimSpace(out)
}

// startHTTPD starts member i's busybox httpd on 8080 (its own process
// group: httpd forks a child per connection, and stopHTTPD and the
// cleanup end them all, only the processes this test started).
func (lab *lbLab) startHTTPD(t *testing.T, i int) {
	cmd := exec.Command("ip", "netns", "exec", lab.members[i].NS(), "busybox", "httpd", "-f", "-p", "8080", "-h", lab.dirs[i])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lab.httpd[i] = cmd
	t.Cleanup(func() { lab.stopHTTPD(i, cmd) })
}

// stopHTTPD kills member i's httpd (cmd: that start of it; nil = the
// current one).
func (lab *lbLab) stopHTTPD(i int, cmd *exec.Cmd) {
	if cmd == nil {
		cmd = lab.httpd[i]
	}
	if cmd == nil || cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// requests sends n requests to the VIP from every client at once
// (sequential within a client) and counts the answers by member name
// ("FAIL" for a failed request).
func (lab *lbLab) requests(n int) map[string]int {
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range lab.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _ := c.ExecErr("sh", "-c", fmt.Sprintf("for i in $(seq %d); do curl -s -m 3 http://10.0.0.100/ || echo FAIL; done", n))
			mu.Lock()
			defer mu.Unlock()
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				counts[strings.TrimSpace(line)]++
			}
		}()
	}
	wg.Wait()
	return counts
}

// cliLB creates the pool, the members and the VIP with the neutron CLI's
// LBaaS v1 commands (cli runs one and decodes its -f json output).
func (lab *lbLab) cliLB(t *testing.T, run func(api string, args ...string) map[string]any) {
	cli := func(args ...string) map[string]any { return run(lab.nb.api, args...) }
	sub := lab.subnet["id"].(string)
	lab.pool = cli("lb-pool-create", "--tenant-id", lab.project, "--lb-method", "ROUND_ROBIN", "--name", "web",
		"--protocol", "HTTP", "--subnet-id", sub)
	for i := range lab.members {
		m := cli("lb-member-create", "--tenant-id", lab.project, "--address", fmt.Sprintf("10.0.0.%d", 21+i),
			"--protocol-port", "8080", "web")
		lab.memberIDs = append(lab.memberIDs, m["id"].(string))
	}
	lab.vip = cli("lb-vip-create", "--tenant-id", lab.project, "--name", "web-vip", "--protocol-port", "80", "--protocol", "HTTP",
		"--subnet-id", sub, "--address", "10.0.0.100", "web")
}

// downloadsAcross runs a 1 MB download at 200 kB/s (about 5 s) through
// the VIP from every client while during runs (called 1 s after they
// start), and fails t for every download that does not come whole.
func (lab *lbLab) downloadsAcross(t *testing.T, what string, during func()) {
	t.Helper()
	dls := make([]*exec.Cmd, len(lab.clients))
	bodies := make([]*bytes.Buffer, len(lab.clients))
	for i, c := range lab.clients {
		dls[i] = exec.Command("ip", "netns", "exec", c.NS(), "curl", "-s", "-m", "60", "--limit-rate", "200k", "http://10.0.0.100/big")
		bodies[i] = &bytes.Buffer{}
		dls[i].Stdout = bodies[i]
		if err := dls[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	during()
	for i, dl := range dls {
		err := dl.Wait()
		first, _, _ := strings.Cut(bodies[i].String(), "\n")
		t.Logf("%s: c%d's download: %d bytes from %s, err %v", what, i+1, bodies[i].Len(), first, err)
		if err != nil || bodies[i].Len() != bigSize {
			t.Errorf("%s: c%d's long download broken: %d of %d bytes, curl: %v", what, i+1, bodies[i].Len(), bigSize, err)
		}
	}
}

// monitor puts an HTTP health monitor (delay 1 s, timeout 1 s,
// max_retries 2, GET / expecting 200) on the lab's pool and waits for a
// probe port on every chassis (one per VIP, made by the node agents).
func (lab *lbLab) monitor(t *testing.T) {
	t.Helper()
	hm := lab.nb.post("lb/health_monitors", map[string]any{"health_monitor": map[string]any{"project_id": lab.project,
		"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 2, "url_path": "/", "expected_codes": "200"}})
	lab.nb.post("lb/pools/"+lab.pool["id"].(string)+"/health_monitors", map[string]any{"health_monitor": map[string]any{"id": hm["id"]}})
	waitFor(t, 30*time.Second, "a probe port on each chassis", func() bool {
		for _, hv := range lab.hvs {
			out, err := hv.VsctlErr("list-ports", "br-int")
			if err != nil || !containsPrefix(out, "lbp-") {
				return false
			}
		}
		return true
	})
}

// lineCounts counts the lines of out (trimmed) by their text: the
// answers of a request loop, by member name, "FAIL" for a failure.
func lineCounts(out string) map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		counts[strings.TrimSpace(line)]++
	}
	return counts
}

// spread logs what's n requests' answers and checks that none failed and
// that each member answered at least least of them.
func (lab *lbLab) spread(t *testing.T, what string, n int, counts map[string]int, least int) {
	t.Helper()
	t.Logf("%s: %d requests: %v", what, n, counts)
	if counts["FAIL"] != 0 {
		t.Errorf("%s: %d of %d requests failed", what, counts["FAIL"], n)
	}
	for i := range lab.members {
		if got := counts[fmt.Sprintf("m%d", i+1)]; got < least {
			t.Errorf("%s: member m%d got %d of %d requests (want at least %d)", what, i+1, got, n, least)
		}
	}
}

// even checks the spread: 3,000 requests through the VIP all
// answered, each member within ±15% of 1,000.
// It returns the requests answered.
func (lab *lbLab) even(t *testing.T, mode string, counts map[string]int) int {
	t.Helper()
	t.Logf("%s: 3,000 requests through the VIP: %v", mode, counts)
	total := 0
	for i := range lab.members {
		n := counts[fmt.Sprintf("m%d", i+1)]
		total += n
		if n < 850 || n > 1150 {
			t.Errorf("%s: member m%d answered %d of 3,000 (want 1,000 ± 15%%)", mode, i+1, n)
		}
	}
	if total != 3000 {
		t.Errorf("%s: %d of 3,000 requests answered", mode, total)
	}
	return total
}

// poolStats reads the pool's stats from the API.
func (lab *lbLab) poolStats() map[string]any {
	return lab.nb.get("lb/pools/" + lab.pool["id"].(string) + "/stats")
}

// statsCover waits (up to 75 s: the counters are read on each switch's
// full reconcile pass, every 30 s) until the pool's stats (read by get:
// the API, or the neutron CLI) count at least conns connections, then
// checks that they carry bytes both ways: at least three segments of 54
// bytes or more per answered request each way (the handshake's and the
// request's or answer's).
func (lab *lbLab) statsCover(t *testing.T, what string, get func() map[string]any, answered, conns int) map[string]any {
	t.Helper()
	var st map[string]any
	waitFor(t, 75*time.Second, what+": the pool's stats counting the requests", func() bool {
		st = get()
		n, _ := st["total_connections"].(float64)
		return int(n) >= conns
	})
	t.Logf("%s: pool stats after %d answered requests: %v", what, answered, st)
	for _, k := range []string{"bytes_in", "bytes_out"} {
		if b, _ := st[k].(float64); b < float64(answered)*3*54 {
			t.Errorf("%s: pool stats %s %v for %d requests", what, k, st[k], answered)
		}
	}
	return st
}
