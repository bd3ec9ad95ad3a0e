// Package convbench measures issue 5's overlay figures on the 3-hypervisor
// GRE lab (internal/hvlab): port create to first ping, and convergence of
// 100 tenants x 10 ports over 3 chassis (cold start, controller restart,
// and ovs-ofctl --bundle as the practical limit).
//
// Gated by NIMBUS_BENCH=1 (root, OVS, etcd):
//
//	NIMBUS_BENCH=1 go test -run TestConvergence -v -timeout 20m ./cmd/convbench/
package convbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

func env(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type bench struct {
	t        *testing.T
	bin      string
	endpoint string
	ofPort   int
	hvs      []*hvlab.Hypervisor
}

type ctl struct {
	*ovslab.Proc
	api   string
	start time.Time
}

// startCtl starts a controller whose OpenFlow listener is on ofPort
// (all addresses) and whose API is on a fresh loopback port.
func (b *bench) startCtl(ofPort int) *ctl {
	t := b.t
	api := fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))
	c := &ctl{api: api, start: time.Now()}
	c.Proc = ovslab.StartProcess(t, b.bin, []string{"serve", "--openflow-listen", fmt.Sprintf("0.0.0.0:%d", ofPort),
		"--api-listen", api, "--log-level", "info", "--etcd-endpoints", b.endpoint, "--replica-id", "r1"}, nil)
	ovslab.WaitListening(t, api, 20*time.Second)
	return c
}

func (c *ctl) post(path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	cl := &http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Post("http://"+c.api+"/v2.0/"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	for _, v := range out {
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
	}
	return nil, fmt.Errorf("POST %s: %s", path, raw)
}

func (c *ctl) mustPost(t *testing.T, path string, body any) map[string]any {
	t.Helper()
	m, err := c.post(path, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *ctl) switchList() []string {
	var h struct{ Switches []string }
	resp, err := http.Get("http://" + c.api + "/healthz")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&h) != nil {
		return nil
	}
	return h.Switches
}

func (c *ctl) switches() int { return len(c.switchList()) }

// watchConns polls /healthz every 5 ms and returns, per hypervisor (by
// br-int datapath ID), when its switch first showed up, relative to the
// controller's start. The result is complete once every switch appeared.
func (c *ctl) watchConns(dpids []string) func() []time.Duration {
	out := make([]time.Duration, len(dpids))
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(60 * time.Second)
		left := len(dpids)
		for left > 0 && time.Now().Before(deadline) {
			sw := c.switchList()
			now := time.Since(c.start)
			for i, d := range dpids {
				if out[i] == 0 {
					for _, s := range sw {
						if s == d {
							out[i] = now
							left--
						}
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() []time.Duration { <-done; return out }
}

// metric sums a metric's samples whose labels contain labels (-1 when
// the controller does not answer).
func (c *ctl) metric(name, labels string) float64 {
	v, err := ovslab.Metric(c.api, name, labels)
	if err != nil {
		return -1
	}
	return v
}

var waitFor = ovslab.WaitFor

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(p*float64(len(s)) + 0.5)
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1]
}

var flowCountRE = regexp.MustCompile(`flow_count=(\d+)`)

func flowCount(hv *hvlab.Hypervisor, br string) int {
	out, err := hv.OfctlErr("dump-aggregate", br)
	if err != nil {
		return -1
	}
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func TestConvergence(t *testing.T) {
	if os.Getenv("NIMBUS_BENCH") != "1" {
		t.Skip("set NIMBUS_BENCH=1")
	}
	t.Setenv(hvlab.EnvE2E, "1")
	root, err := ovslab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "controller")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/controller")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	l := hvlab.New(t, hvlab.Options{Hypervisors: 3})
	hvs := l.Hypervisors()
	etcd := etcdtest.Start(t, 1)
	b := &bench{t: t, bin: bin, endpoint: strings.Join(etcd.Endpoints(), ","), ofPort: ovslab.FreePort(t), hvs: hvs}
	c1 := b.startCtl(b.ofPort)
	l.StartAgents(t, bin, b.ofPort, b.endpoint, nil, "--resync", "60s", "--log-level", "info")
	waitFor(t, 30*time.Second, "3 switches", func() bool { return c1.switches() == 3 })
	// The agents set the controller rows once at setup; cap OVS's
	// reconnect backoff at 1 s so a (re)started controller is found fast.
	for _, hv := range hvs {
		hv.Vsctl("set", "controller", "br-int", "max_backoff=1000")
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}

	if os.Getenv("CONVBENCH_SKIP_LATENCY") == "" {
		latency(t, b, l, c1)
	}
	convergence(t, b, c1)
}

// latency: port create -> VM on the port pings its neighbour.
func latency(t *testing.T, b *bench, l *hvlab.Lab, c *ctl) {
	hvs := b.hvs
	n := env("CONVBENCH_SAMPLES", 20)
	net := c.mustPost(t, "networks", map[string]any{"network": map[string]any{"name": "lat", "project_id": "lat",
		"provider:network_type": "gre"}})
	sub := c.mustPost(t, "subnets", map[string]any{"subnet": map[string]any{"network_id": net["id"], "project_id": "lat",
		"cidr": "10.9.0.0/24", "ip_version": 4, "gateway_ip": "10.9.0.1"}})
	port := func(hv *hvlab.Hypervisor, ip, mac string) (map[string]any, error) {
		return c.post("ports", map[string]any{"port": map[string]any{"network_id": net["id"], "project_id": "lat",
			"binding:host_id": hv.Name(), "mac_address": mac,
			"fixed_ips": []any{map[string]any{"subnet_id": sub["id"], "ip_address": ip}}}})
	}
	ap, err := port(hvs[0], "10.9.0.10", "fa:16:3e:09:00:0a")
	if err != nil {
		t.Fatal(err)
	}
	anchor := l.AddVM(t, hvs[0], ap["id"].(string), "fa:16:3e:09:00:0a", "10.9.0.10/24")
	var total, post, plug []time.Duration
	for i := 0; i <= n; i++ { // sample 0 is a warm-up
		hv := hvs[1+i%2]
		ip := fmt.Sprintf("10.9.0.%d", 20+i)
		mac := fmt.Sprintf("fa:16:3e:09:01:%02x", i)
		// Static neighbours both ways (set before the clock starts): the
		// figure is the controller's path, not the kernel's 1 s ARP retry.
		anchor.Exec("ip", "neigh", "replace", ip, "lladdr", mac, "dev", "eth0", "nud", "permanent")
		t0 := time.Now()
		p, err := port(hv, ip, mac)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		vm := l.AddVMWith(t, hv, hvlab.VMOptions{PortID: p["id"].(string), MAC: mac, CIDR: ip + "/24"})
		vm.Exec("ip", "neigh", "replace", "10.9.0.10", "lladdr", "fa:16:3e:09:00:0a", "dev", "eth0", "nud", "permanent")
		t2 := time.Now()
		// One echo request every 10 ms until the first reply (or 10 s).
		out, err := vm.ExecErr("ping", "-n", "-c", "1", "-w", "10", "-i", "0.01", "10.9.0.10")
		t3 := time.Now()
		if err != nil {
			t.Fatalf("sample %d (%s on %s): no ping within 10 s: %v\n%s", i, ip, hv.Name(), err, out)
		}
		tx := regexp.MustCompile(`(\d+) packets transmitted`).FindStringSubmatch(out)
		t.Logf("sample %d: %s on %s: total %s (POST %s, plug %s, ping %s, %s echo requests)", i, ip, hv.Name(),
			ms(t3.Sub(t0)), ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(t3.Sub(t2)), tx[1])
		if i == 0 {
			continue
		}
		total = append(total, t3.Sub(t0))
		post = append(post, t1.Sub(t0))
		plug = append(plug, t2.Sub(t1))
	}
	t.Logf("RESULT port-create->first-ping n=%d p50=%s p99=%s (POST p50 %s p99 %s; VM plumbing p50 %s p99 %s)",
		len(total), ms(pct(total, 0.5)), ms(pct(total, 0.99)), ms(pct(post, 0.5)), ms(pct(post, 0.99)),
		ms(pct(plug, 0.5)), ms(pct(plug, 0.99)))
}

// convergence: 100 tenants x 10 ports over 3 chassis.
func convergence(t *testing.T, b *bench, c1 *ctl) {
	hvs := b.hvs
	tenants, per := env("CONVBENCH_TENANTS", 100), env("CONVBENCH_PORTS", 10)
	// The API runs with no switch connected: c1 goes, c2 listens for
	// OpenFlow on a port nobody targets.
	c1.Kill()
	c2 := b.startCtl(ovslab.FreePort(t))
	start := time.Now()
	type portRec struct{ id, mac string }
	ports := make([][]portRec, len(hvs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, tenants)
	sem := make(chan struct{}, 8)
	for k := 0; k < tenants; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			proj := fmt.Sprintf("tenant-%03d", k)
			n, err := c2.post("networks", map[string]any{"network": map[string]any{"name": "net-" + proj, "project_id": proj,
				"provider:network_type": "gre"}})
			if err != nil {
				errs <- err
				return
			}
			s, err := c2.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": proj,
				"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < per; i++ {
				hv := (k*per + i) % len(hvs)
				p, err := c2.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": proj,
					"binding:host_id": hvs[hv].Name(),
					"fixed_ips":       []any{map[string]any{"subnet_id": s["id"], "ip_address": fmt.Sprintf("10.0.0.%d", 10+i)}}}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ports[hv] = append(ports[hv], portRec{p["id"].(string), p["mac_address"].(string)})
				mu.Unlock()
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("API: %d networks, %d ports created in %s", tenants, tenants*per, time.Since(start).Round(time.Millisecond))
	// One ovs-vsctl transaction per chassis: internal ports named like
	// Neutron taps, with iface-id.
	start = time.Now()
	for i, hv := range hvs {
		var args []string
		for _, p := range ports[i] {
			tap := "tap" + p.id[:11]
			args = append(args, "--", "add-port", "br-int", tap, "--", "set", "interface", tap, "type=internal",
				"external_ids:iface-id="+p.id, "external_ids:attached-mac="+p.mac, "external_ids:iface-status=active")
		}
		if out, err := hv.ExecErr(append([]string{"ovs-vsctl", "--timeout=120"}, args...)...); err != nil {
			t.Fatalf("%s: bulk add-port: %v %s", hv.Name(), err, out)
		}
	}
	t.Logf("OVS: %d internal ports added in %s", tenants*per, time.Since(start).Round(time.Millisecond))
	if err := c2.Stop(); err != nil {
		t.Logf("c2 stop: %v", err)
	}
	// Empty br-int (flows of the latency phase survive in secure mode).
	for _, hv := range hvs {
		hv.Ofctl("del-flows", "br-int")
		hv.Ofctl("del-groups", "br-int")
		if f := flowCount(hv, "br-int"); f != 0 {
			t.Fatalf("%s: %d flows after del-flows", hv.Name(), f)
		}
	}
	time.Sleep(3 * time.Second) // let vswitchd settle after the bulk add

	// (a) cold start.
	counts := func() []int {
		out := make([]int, len(hvs))
		var wg sync.WaitGroup
		for i, hv := range hvs {
			wg.Add(1)
			go func(i int, hv *hvlab.Hypervisor) { defer wg.Done(); out[i] = flowCount(hv, "br-int") }(i, hv)
		}
		wg.Wait()
		return out
	}
	type sample struct {
		at time.Duration
		n  []int
	}
	dpids := make([]string, len(hvs))
	for i, hv := range hvs {
		dpids[i] = strings.Trim(hv.Vsctl("get", "bridge", "br-int", "datapath_id"), `"`)
	}
	c3 := b.startCtl(b.ofPort)
	conns3 := c3.watchConns(dpids)
	t0 := c3.start
	var series []sample
	var last []int
	stableSince := time.Now()
	for {
		n := counts()
		now := time.Now()
		series = append(series, sample{now.Sub(t0), n})
		if fmt.Sprint(n) != fmt.Sprint(last) {
			last, stableSince = n, now
		}
		if now.Sub(stableSince) > 5*time.Second && n[0] > 0 && n[1] > 0 && n[2] > 0 {
			break
		}
		if now.Sub(t0) > 180*time.Second {
			t.Fatalf("no convergence in 180 s: %v", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var conv time.Duration
	for i := len(series) - 1; i >= 0; i-- {
		if fmt.Sprint(series[i].n) != fmt.Sprint(last) {
			conv = series[i+1].at
			break
		}
	}
	var perHV, fromConn []string
	var fromConnD []time.Duration
	cs := conns3()
	conn := cs[0]
	for h := range hvs {
		if cs[h] > conn {
			conn = cs[h]
		}
		for i := len(series) - 1; i >= 0; i-- {
			if series[i].n[h] != last[h] {
				perHV = append(perHV, ms(series[i+1].at))
				fromConn = append(fromConn, ms(series[i+1].at-cs[h]))
				fromConnD = append(fromConnD, series[i+1].at-cs[h])
				break
			}
		}
	}
	adds := c3.metric("nimbus_flow_mods_total", `source="reconcile"`)
	t.Logf("RESULT cold-start: flows per br-int %v (sum %d), all 3 switches connected at %s, converged at %s after controller start "+
		"(per chassis %v; each chassis from its own connection at %v: %v), %s after the last connection; reconcile flow-mods %v, reconcile errors %v",
		last, last[0]+last[1]+last[2], ms(conn), ms(conv), perHV, cs, fromConn, ms(conv-conn), adds, c3.metric("nimbus_reconcile_errors_total", ""))
	for _, line := range strings.Split(c3.Log(), "\n") {
		if strings.Contains(line, "reconciled") || strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") {
			t.Logf("c3: %s", line)
		}
	}
	// The controller's own view (log timestamps, no polling): switch
	// connected -> first full pass committed (bundle commit reply).
	connAt, doneAt := convergedFromLog(c3.Log())
	var fromLog []string
	for i, d := range dpids {
		fromLog = append(fromLog, fmt.Sprintf("%s connected +%s, committed +%s (%s after connection)", hvs[i].Name(),
			ms(connAt[d].Sub(c3.start)), ms(doneAt[d].Sub(c3.start)), ms(doneAt[d].Sub(connAt[d]))))
	}
	t.Logf("RESULT cold-start from the controller log: %s", strings.Join(fromLog, "; "))
	coldWorst := time.Duration(0)
	for _, d := range dpids {
		if v := doneAt[d].Sub(connAt[d]); v > coldWorst {
			coldWorst = v
		}
	}

	// (b) restart: kill -9, start at once, until the first pass of every
	// switch is observed.
	final := last
	c3.Kill()
	c4 := b.startCtl(b.ofPort)
	conns4 := c4.watchConns(dpids)
	var pass4 time.Duration
	for pass4 == 0 {
		now := time.Now()
		if c4.metric("nimbus_reconcile_duration_seconds_count", "") >= 3 {
			pass4 = now.Sub(c4.start)
		}
		if now.Sub(c4.start) > 60*time.Second {
			t.Fatalf("restart: no 3 passes in 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cs4 := conns4()
	conn4 := cs4[0]
	for _, c := range cs4 {
		if c > conn4 {
			conn4 = c
		}
	}
	t.Logf("restart: per-chassis connection %v", cs4)
	time.Sleep(3 * time.Second)
	after := counts()
	t.Logf("RESULT restart: 3 switches connected at %s, 3 reconcile passes done at %s after start (%s after connection); "+
		"reconcile flow-mods after 3 s: %v (adds %v, dels %v); passes %v; flows %v (before %v)",
		ms(conn4), ms(pass4), ms(pass4-conn4), c4.metric("nimbus_flow_mods_total", `source="reconcile"`),
		c4.metric("nimbus_flow_mods_total", `op="add"`), c4.metric("nimbus_flow_mods_total", `op="delete"`),
		c4.metric("nimbus_reconcile_duration_seconds_count", ""), after, final)
	connAt4, doneAt4 := convergedFromLog(c4.Log())
	var restartLog []string
	restartWorst := time.Duration(0)
	for i, d := range dpids {
		v := doneAt4[d].Sub(connAt4[d])
		if v > restartWorst {
			restartWorst = v
		}
		restartLog = append(restartLog, fmt.Sprintf("%s connected +%s, converged +%s (%s after connection)", hvs[i].Name(),
			ms(connAt4[d].Sub(c4.start)), ms(doneAt4[d].Sub(c4.start)), ms(v)))
	}
	t.Logf("RESULT restart from the controller log: %s", strings.Join(restartLog, "; "))
	for _, line := range strings.Split(c4.Log(), "\n") {
		for _, k := range []string{"started", "registered", "switch connected", "elected", "took mastership", "WARN", "ERROR", "reconciled", "converged"} {
			if strings.Contains(line, k) {
				t.Logf("c4: %s", line)
				break
			}
		}
	}

	// (a2, b2) the same cold start and restart with nothing polling the
	// switches or the controller while they run (the runs above poll
	// flow counts and /healthz every few ms, which takes CPU from the
	// three vswitchds): completion comes from the controller's own
	// "converged" log lines (bundle commit acknowledged by OVS), the flow
	// counts are checked once afterwards.
	cur := c4
	quiet := func(name string, clear bool) (time.Duration, []string) {
		cur.Kill()
		if clear {
			for _, hv := range hvs {
				hv.Ofctl("del-flows", "br-int")
				hv.Ofctl("del-groups", "br-int")
			}
		}
		time.Sleep(3 * time.Second)
		c := b.startCtl(b.ofPort)
		cur = c
		deadline := time.Now().Add(120 * time.Second)
		for strings.Count(c.Log(), "msg=converged") < len(hvs) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no convergence in 120 s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		connAt, doneAt := convergedFromLog(c.Log())
		var worst time.Duration
		var per []string
		for i, d := range dpids {
			v := doneAt[d].Sub(connAt[d])
			if v > worst {
				worst = v
			}
			per = append(per, fmt.Sprintf("%s %s", hvs[i].Name(), ms(v)))
		}
		time.Sleep(time.Second)
		if got := counts(); fmt.Sprint(got) != fmt.Sprint(final) {
			t.Errorf("%s: flows %v, want %v", name, got, final)
		}
		t.Logf("RESULT quiet %s, per chassis from its connection to converged: %s; changes sent: %v", name, strings.Join(per, ", "),
			c.metric("nimbus_flow_mods_total", `source="reconcile"`))
		return worst, per
	}
	quietCold, _ := quiet("cold start", true)
	quietRestart, _ := quiet("restart", false)

	// (c) ovs-ofctl --bundle on fresh bridges with the converged state.
	dir := t.TempDir()
	var sum, max, nmax time.Duration
	var ratios []string
	meters := make([][]string, len(hvs))
	// The flows use the controller's punt meters: ovs-ofctl adds them
	// first (one add-meter each; there is no bulk form), timed with the rest.
	addMeters := func(hv *hvlab.Hypervisor, specs []string) error {
		for _, m := range specs {
			if out, err := hv.OfctlErr("add-meter", "br-load", m); err != nil {
				return fmt.Errorf("add-meter %s: %v %s", m, err, out)
			}
		}
		return nil
	}
	for h, hv := range hvs {
		flows := hv.Ofctl("dump-flows", "--no-stats", "--no-names", "br-int")
		groups := hv.Ofctl("dump-groups", "--no-names", "br-int")
		var fl, gl []string
		for _, line := range strings.Split(flows, "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.Contains(s, "reply") {
				fl = append(fl, s)
			}
		}
		bid := regexp.MustCompile(`bucket_id:\d+,`)
		for _, line := range strings.Split(groups, "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.Contains(s, "reply") {
				gl = append(gl, bid.ReplaceAllString(s, ""))
			}
		}
		ff := filepath.Join(dir, hv.Name()+".flows")
		gf := filepath.Join(dir, hv.Name()+".groups")
		_ = os.WriteFile(ff, []byte(strings.Join(fl, "\n")+"\n"), 0o644)
		_ = os.WriteFile(gf, []byte(strings.Join(gl, "\n")+"\n"), 0o644)
		meters[h] = meterSpecs(hv.Ofctl("dump-meters", "br-int"))
		hv.Vsctl("--", "add-br", "br-load", "--", "set", "bridge", "br-load", "datapath_type=netdev",
			"fail_mode=secure", "protocols=OpenFlow13", "other_config:disable-in-band=true")
		time.Sleep(500 * time.Millisecond)
		s := time.Now()
		if err := addMeters(hv, meters[h]); err != nil {
			t.Fatalf("%s %v", hv.Name(), err)
		}
		if len(gl) > 0 {
			if out, err := hv.OfctlErr("--bundle", "add-groups", "br-load", gf); err != nil {
				t.Fatalf("%s add-groups: %v %s", hv.Name(), err, out)
			}
		}
		g := time.Since(s)
		if out, err := hv.OfctlErr("--bundle", "add-flows", "br-load", ff); err != nil {
			t.Fatalf("%s add-flows: %v %s", hv.Name(), err, out)
		}
		d := time.Since(s)
		got := flowCount(hv, "br-load")
		t.Logf("RESULT ovs-ofctl %s: %d groups + %d flows in %s (groups %s), br-load holds %d flows", hv.Name(),
			len(gl), len(fl), ms(d), ms(g), got)
		sum += d
		if h < len(fromConnD) {
			ratios = append(ratios, fmt.Sprintf("%s %.2f", hv.Name(), float64(fromConnD[h])/float64(d)))
			if fromConnD[h] > nmax {
				nmax = fromConnD[h]
			}
		}
		if d > max {
			max = d
		}
		hv.Vsctl("del-br", "br-load")
	}
	t.Logf("RESULT ovs-ofctl --bundle total (sequential) %s, slowest chassis %s; ratio Nimbus cold start (from start) / ovs-ofctl total = %.2f, "+
		"(from connection) / total = %.2f, slowest chassis from its connection (%s) / slowest ovs-ofctl = %.2f; per chassis (own connection -> converged) / ovs-ofctl: %s",
		ms(sum), ms(max), float64(conv)/float64(sum), float64(conv-conn)/float64(sum), ms(nmax), float64(nmax)/float64(max),
		strings.Join(ratios, ", "))
	t.Logf("RESULT ratio to the slowest ovs-ofctl --bundle load (%s), slowest chassis from its connection to converged (controller log): cold start %s = %.2f, after a restart %s = %.2f",
		ms(max), ms(coldWorst), float64(coldWorst)/float64(max), ms(restartWorst), float64(restartWorst)/float64(max))

	// (d) the same loads on all three chassis at once, as the controller
	// does at a cold start (three OVS instances and the loader share the
	// machine's CPUs).
	for _, hv := range hvs {
		hv.Vsctl("--", "add-br", "br-load", "--", "set", "bridge", "br-load", "datapath_type=netdev",
			"fail_mode=secure", "protocols=OpenFlow13", "other_config:disable-in-band=true")
	}
	time.Sleep(500 * time.Millisecond)
	durs := make([]time.Duration, len(hvs))
	var lwg sync.WaitGroup
	s0 := time.Now()
	for i, hv := range hvs {
		lwg.Add(1)
		go func(i int, hv *hvlab.Hypervisor) {
			defer lwg.Done()
			s := time.Now()
			gf, ff := filepath.Join(dir, hv.Name()+".groups"), filepath.Join(dir, hv.Name()+".flows")
			if err := addMeters(hv, meters[i]); err != nil {
				t.Errorf("%s %v", hv.Name(), err)
			}
			if out, err := hv.OfctlErr("--bundle", "add-groups", "br-load", gf); err != nil {
				t.Errorf("%s add-groups: %v %s", hv.Name(), err, out)
			}
			if out, err := hv.OfctlErr("--bundle", "add-flows", "br-load", ff); err != nil {
				t.Errorf("%s add-flows: %v %s", hv.Name(), err, out)
			}
			durs[i] = time.Since(s)
		}(i, hv)
	}
	lwg.Wait()
	wall := time.Since(s0)
	var cmax time.Duration
	var cper []string
	for i, d := range durs {
		cper = append(cper, fmt.Sprintf("%s %s", hvs[i].Name(), ms(d)))
		if d > cmax {
			cmax = d
		}
	}
	for _, hv := range hvs {
		hv.Vsctl("del-br", "br-load")
	}
	t.Logf("RESULT ovs-ofctl --bundle concurrent on 3 chassis: %s (wall %s); ratio, slowest chassis: cold start %s / %s = %.2f, after a restart %s / %s = %.2f",
		strings.Join(cper, ", "), ms(wall), ms(coldWorst), ms(cmax), float64(coldWorst)/float64(cmax), ms(restartWorst), ms(cmax), float64(restartWorst)/float64(cmax))
	t.Logf("RESULT quiet ratios, slowest chassis: cold start %s / sequential ovs-ofctl %s = %.2f, / concurrent ovs-ofctl %s = %.2f; restart %s = %.2f / %.2f",
		ms(quietCold), ms(max), float64(quietCold)/float64(max), ms(cmax), float64(quietCold)/float64(cmax),
		ms(quietRestart), float64(quietRestart)/float64(max), float64(quietRestart)/float64(cmax))
}

// convergedFromLog reads, per datapath id, when the controller logged the
// switch's connection and its first converged reconcile pass (the first
// pass on complete desired state, logged whatever it changed).
func convergedFromLog(log string) (connAt, doneAt map[string]time.Time) {
	logRE := regexp.MustCompile(`time=(\S+) .*msg=(?:"switch connected"|converged) .*dpid=([0-9a-f]+)`)
	connAt, doneAt = map[string]time.Time{}, map[string]time.Time{}
	for _, line := range strings.Split(log, "\n") {
		m := logRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if strings.Contains(line, "switch connected") {
			if _, ok := connAt[m[2]]; !ok {
				connAt[m[2]] = at
			}
		} else if _, ok := doneAt[m[2]]; !ok {
			doneAt[m[2]] = at
		}
	}
	return connAt, doneAt
}

// meterSpecs turns `ovs-ofctl dump-meters` output ("meter=N pktps bands="
// then one "type=drop rate=R" line per band) into add-meter arguments
// ("meter=N,pktps,band=type=drop,rate=R").
func meterSpecs(dump string) []string {
	var out []string
	for _, line := range strings.Split(dump, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "meter="):
			out = append(out, strings.Join(strings.Fields(strings.TrimSuffix(line, "bands=")), ","))
		case strings.HasPrefix(line, "type=") && len(out) > 0:
			out[len(out)-1] += ",band=" + strings.Join(strings.Fields(line), ",")
		}
	}
	return out
}
