package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/store"
)

// apiCall sends one Neutron API request with an optional Keystone token
// and returns the status and body.
func apiCall(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// inner returns the single object of a Neutron answer ({"network": {...}}).
func inner(m map[string]any) map[string]any {
	for _, v := range m {
		if o, ok := v.(map[string]any); ok {
			return o
		}
	}
	return nil
}

// slowloris opens a connection to addr and sends a request's headers one
// line every 200ms without ever finishing them; it returns how long until
// the server hung up, or budget if it never did.
func slowloris(addr string, budget time.Duration) (time.Duration, bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(closed) }()
	io.WriteString(c, "GET /v2.0/networks HTTP/1.1\r\nHost: x\r\n")
	for time.Since(start) < budget {
		select {
		case <-closed:
			return time.Since(start), true
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
			return time.Since(start), true
		}
	}
	return budget, false
}

// fakeKeystone is a minimal Keystone v3 token-validation endpoint served
// in-process over TLS: there is no Keystone on this machine. It answers
// GET /v3/auth/tokens (X-Auth-Token: the service token, X-Subject-Token:
// the caller's) the way Keystone does, for a fixed set of tokens; the
// controller's side (northbound's Keystone client, over HTTPS with a
// private CA) is the real one.
func fakeKeystone(t *testing.T, pki *etcdtest.PKI, service string) string {
	t.Helper()
	tokens := map[string]map[string]any{
		"admin-tok": {"project": map[string]any{"id": "admin-project"}, "roles": []any{map[string]any{"name": "admin"}}},
		"alice-tok": {"project": map[string]any{"id": "alice"}, "roles": []any{map[string]any{"name": "member"}}},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v3/auth/tokens" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("X-Auth-Token") != service {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tok, ok := tokens[r.Header.Get("X-Subject-Token")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		body := map[string]any{"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
		for k, v := range tok {
			body[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": body})
	}))
	cert, key := pki.Issue("keystone")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSecureDeployment runs the secure deployment of the README once, end
// to end, on two hypervisors (hvlab: each its own OVS in a namespace):
//   - etcd (the real Debian etcd 3.4) serves TLS only, requires client
//     certificates, and has auth on, with the users and roles made by
//     `controller etcd-roles`: the controller and each node agent log in
//     by certificate CN, and each chassis may write only its own record;
//   - the controller speaks OpenFlow over TLS; each hypervisor's OVS has
//     `ovs-vsctl set-ssl` and the node agent points br-int at ssl: targets;
//   - api.auth=keystone against a minimal in-process Keystone v3 token
//     endpoint (HTTPS, private CA): there is no Keystone server here;
//   - the cluster secret is generated and kept in etcd; /metrics is off;
//     the API's read-header timeout is 1s.
//
// A network, subnet and two ports created by a member token end up as
// flows on both bridges and VMs on the two hypervisors ping each other;
// requests without a token or with a wrong one get 401, unsigned
// /cluster/v1 requests get 401, and a slowloris client is cut off.
func TestSecureDeployment(t *testing.T) {
	hvlab.RequireE2E(t)
	l := hvlab.New(t, hvlab.Options{Hypervisors: 2})
	hvs := l.Hypervisors()
	pki := etcdtest.NewPKI(t)

	// etcd: TLS with client certificates; roles; auth on.
	etcd := etcdtest.StartTLS(t, pki, "127.0.0.1")
	ep := etcd.Endpoints()[0]
	rootCert, rootKey := pki.Issue("root")
	args := []string{"etcd-roles", "--etcd-endpoints", ep, "--etcd-tls-ca", pki.CA, "--etcd-tls-cert", rootCert, "--etcd-tls-key", rootKey,
		"--chassis", hvs[0].Name() + "," + hvs[1].Name(), "--enable-auth"}
	if out, err := exec.Command(controllerBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("controller etcd-roles: %v\n%s", err, out)
	}
	root, err := store.Open(context.Background(), store.Config{Endpoints: []string{ep}, CertFile: rootCert, KeyFile: rootKey, CAFile: pki.CA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	// Auth is on: a certificate from the CA whose CN is no etcd user
	// reads nothing (etcd 3.4 has no AuthStatus call to ask).
	nbCert, nbKey := pki.Issue("nobody")
	nobody, err := store.Open(context.Background(), store.Config{Endpoints: []string{ep}, CertFile: nbCert, KeyFile: nbKey, CAFile: pki.CA})
	if err != nil {
		t.Fatal(err)
	}
	_, err = nobody.Client().Get(context.Background(), store.Prefix, clientv3.WithPrefix())
	nobody.Close()
	if err == nil {
		t.Fatal("etcd auth is not on: an unknown certificate CN read the Nimbus prefix")
	}

	// Controller: OpenFlow TLS, etcd TLS (CN nimbus-controller), Keystone.
	ksURL := fakeKeystone(t, pki, "svc-token")
	var mgmtIPs []string
	for _, hv := range hvs {
		mgmtIPs = append(mgmtIPs, hv.RootMgmtIP())
	}
	ofCert, ofKey := pki.Issue("nimbus-openflow", mgmtIPs...)
	etcdCert, etcdKey := pki.Issue("nimbus-controller")
	ofPort := ovslab.FreePort(t)
	c := &controller{t: t, OF: fmt.Sprintf("127.0.0.1:%d", ofPort), API: fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))}
	clusterAddr := fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))
	c.args = []string{"serve", "--openflow-listen", fmt.Sprintf("0.0.0.0:%d", ofPort), "--api-listen", c.API, "--replica-id", "r1",
		"--log-level", "debug",
		"--openflow-tls-cert", ofCert, "--openflow-tls-key", ofKey, "--openflow-tls-ca", pki.CA, "--openflow-tls-bind-dpid",
		"--etcd-endpoints", ep, "--etcd-tls-cert", etcdCert, "--etcd-tls-key", etcdKey, "--etcd-tls-ca", pki.CA,
		"--api-auth", "keystone", "--api-keystone-url", ksURL, "--api-service-token", "svc-token",
		"--api-metrics", "off", "--api-read-header-timeout", "1s", "--cluster-listen", clusterAddr}
	// SSL_CERT_FILE: the controller trusts the test CA for Keystone's HTTPS.
	c.Proc = ovslab.StartProcess(t, controllerBin, c.args, []string{"SSL_CERT_FILE=" + pki.CA})
	ovslab.WaitListening(t, c.OF, 20*time.Second)

	// Node agents: etcd over TLS as their chassis user, br-int to ssl:.
	for _, hv := range hvs {
		// openflow.tls.bind_dpid: br-int's datapath id belongs to the
		// chassis, so its certificate must name the chassis (CN).
		swCert, swKey := pki.Issue(hv.Name())
		hv.Vsctl("set-ssl", swKey, swCert, pki.CA)
		agCert, agKey := pki.Issue("nimbus-chassis-" + hv.Name())
		ovslab.StartProcess(t, controllerBin, []string{"node", "--chassis", hv.Name(), "--tunnel-ip", hv.TunnelIP(),
			"--datapath-type", "netdev", "--controllers", fmt.Sprintf("ssl:%s:%d", hv.RootMgmtIP(), ofPort),
			"--etcd-endpoints", ep, "--etcd-tls-cert", agCert, "--etcd-tls-key", agKey, "--etcd-tls-ca", pki.CA,
			"--resync", "5s", "--log-level", "debug"}, hv.Env())
	}
	waitFor(t, 60*time.Second, "both bridges connected over TLS and the GRE mesh up", func() bool {
		var h struct{ Switches []string }
		if getJSON("http://"+c.API+"/healthz", &h) != nil || len(h.Switches) != 2 {
			return false
		}
		for i, hv := range hvs {
			ports, err := hv.VsctlErr("list-ports", "br-int")
			if err != nil || !strings.Contains(ports, names.TunnelPortName(hvs[1-i].Name())) {
				return false
			}
		}
		return true
	})
	for _, hv := range hvs {
		if target := strings.Trim(hv.Vsctl("get", "controller", "br-int", "target"), `"`); !strings.HasPrefix(target, "ssl:") {
			t.Fatalf("%s: br-int controller target %s is not ssl:", hv.Name(), target)
		}
		// OVS writes is_connected to its database lazily (up to ~5 s).
		waitFor(t, 15*time.Second, hv.Name()+" OVS reports its ssl: controller connected", func() bool {
			out, err := hv.VsctlErr("get", "controller", "br-int", "is_connected")
			return err == nil && strings.TrimSpace(out) == "true"
		})
	}

	// The API: no token, a bad token -> 401; a member token creates.
	api := "http://" + c.API + "/v2.0/"
	if code, _ := apiCall(t, "GET", api+"networks", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET networks without a token: %d, want 401", code)
	}
	if code, _ := apiCall(t, "POST", api+"networks", "", map[string]any{"network": map[string]any{"name": "x"}}); code != http.StatusUnauthorized {
		t.Errorf("POST networks without a token: %d, want 401", code)
	}
	if code, _ := apiCall(t, "POST", api+"networks", "forged-tok", map[string]any{"network": map[string]any{"name": "x"}}); code != http.StatusUnauthorized {
		t.Errorf("POST networks with an unknown token: %d, want 401", code)
	}
	mustCreate := func(path string, body map[string]any) map[string]any {
		t.Helper()
		code, out := apiCall(t, "POST", api+path, "alice-tok", body)
		if code != http.StatusCreated {
			t.Fatalf("POST %s as alice: %d %v", path, code, out)
		}
		return inner(out)
	}
	n := mustCreate("networks", map[string]any{"network": map[string]any{"name": "alice-net"}})
	if n["project_id"] != "alice" {
		t.Errorf("network project %v, want alice (from the token)", n["project_id"])
	}
	s := mustCreate("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "cidr": "10.9.0.0/24", "ip_version": 4}})
	var vms []*hvlab.VM
	for i, hv := range hvs {
		ip := fmt.Sprintf("10.9.0.%d", 11+i)
		p := mustCreate("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "name": "vm-" + hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": ip}}}})
		vms = append(vms, l.AddVM(t, hv, p["id"].(string), p["mac_address"].(string), ip+"/24"))
	}
	waitFor(t, 30*time.Second, "each VM's MAC in flows on both bridges", func() bool {
		for _, hv := range hvs {
			flows, err := hv.OfctlErr("dump-flows", "br-int")
			if err != nil {
				return false
			}
			for _, vm := range vms {
				if !strings.Contains(flows, vm.MAC()) {
					return false
				}
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "VM on hv1 pings VM on hv2 through the TLS-managed overlay", func() bool {
		_, recv := vms[0].Ping(strings.Split(vms[1].IP(), "/")[0], 1, 56, false)
		return recv == 1
	})

	// /cluster/v1: unsigned -> 401 on both listeners; signed with the
	// secret the controller generated in etcd -> 200.
	sec, err := root.Client().Get(context.Background(), store.Prefix+"secrets/cluster")
	if err != nil || len(sec.Kvs) != 1 {
		t.Fatalf("cluster secret in etcd: %v", err)
	}
	for _, addr := range []string{c.API, clusterAddr} {
		for _, path := range []string{cluster.StatusPath, cluster.HeartbeatPath, "/cluster/v1/local"} {
			code, _ := apiCall(t, "GET", "http://"+addr+path, "admin-tok", nil)
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s%s unsigned (a Keystone token is not the cluster's): %d, want 401", addr, path, code)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+cluster.StatusPath, nil)
		cluster.Authorize(req, sec.Kvs[0].Value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("signed GET %s%s: %v %v", addr, cluster.StatusPath, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	out, err := exec.Command(controllerBin, "status", "--api", clusterAddr, "--etcd-endpoints", ep,
		"--etcd-tls-cert", etcdCert, "--etcd-tls-key", etcdKey, "--etcd-tls-ca", pki.CA).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "r1\thealthy") {
		t.Errorf("controller status (secret read from etcd): %v\n%s", err, out)
	}
	// /metrics is off: the path is no Prometheus endpoint.
	if resp, err := http.Get("http://" + c.API + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "nimbus_") {
			t.Errorf("/metrics served with api.metrics=off: %d", resp.StatusCode)
		}
	}
	// A slowloris client on the API port is cut off after the 1s read
	// header timeout.
	d, cut := slowloris(c.API, 10*time.Second)
	if !cut {
		t.Errorf("slowloris connection still open after %s", d)
	}
	t.Logf("slowloris cut after %s (api.read_header_timeout 1s)", d.Round(time.Millisecond))
	if t.Failed() {
		dumpHVs(t, hvs)
	}
}

// TestHeartbeatsUnderAPILoad: two replicas on a real etcd, heartbeats on
// their own listener (cluster.listen), four bridges mastered across them.
// One replica's API takes a burst of concurrent expensive requests
// (creates and full lists) plus slowloris connections, bounded in count
// and time, all on loopback. Its peer must not fence it: every replica
// keeps its lease and every switch its master and generation.
func TestHeartbeatsUnderAPILoad(t *testing.T) {
	ovslab.RequireE2E(t)
	etcd := etcdtest.Start(t, 1)
	ep := strings.Join(etcd.Endpoints(), ",")
	var cs []*controller
	for i := 1; i <= 2; i++ {
		cs = append(cs, startController(t, "--etcd-endpoints", ep, "--replica-id", fmt.Sprintf("r%d", i),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t)), "--settle", "1s"))
	}
	var dpids []string
	for i := 0; i < 4; i++ {
		br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{cs[0].target(), cs[1].target()}, MaxBackoff: time.Second})
		dpids = append(dpids, br.DPIDHex())
	}
	type view struct {
		leases  map[string]int64
		masters map[string]string
		gens    map[string]int64
	}
	look := func() (view, bool) {
		st, err := cs[1].status()
		if err != nil {
			return view{}, false
		}
		v := view{leases: map[string]int64{}, masters: map[string]string{}, gens: map[string]int64{}}
		for _, r := range st.Replicas {
			v.leases[r.ID] = r.Lease
		}
		for _, s := range st.Switches {
			v.masters[s.DPID], v.gens[s.DPID] = s.Master, s.Generation
		}
		return v, true
	}
	waitFor(t, 60*time.Second, "4 switches mastered, 2 by each replica", func() bool {
		v, ok := look()
		if !ok || len(v.leases) != 2 {
			return false
		}
		per := map[string]int{}
		for _, d := range dpids {
			if v.masters[d] == "" {
				return false
			}
			per[v.masters[d]]++
		}
		// Assign spreads evenly: 2 each is the settled state, so no
		// rebalance is due while the load runs.
		return per["r1"] == 2 && per["r2"] == 2
	})
	// Let a rebalance in progress finish before taking the reference.
	time.Sleep(3 * time.Second)
	before, ok := look()
	if !ok {
		t.Fatal("no cluster status from r2")
	}
	t.Logf("before load: leases %v masters %v", before.leases, before.masters)

	// Load on r1: 48 workers for 12 s, each creating networks in its own
	// project (at most 40) and listing all networks and ports; plus 200
	// slowloris connections.
	const workers, dur = 48, 12 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var req *http.Request
				switch {
				case i%3 == 0 && i < 120:
					b, _ := json.Marshal(map[string]any{"network": map[string]any{"name": fmt.Sprintf("load-%d-%d", w, i), "project_id": fmt.Sprintf("load%d", w)}})
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cs[0].API+"/v2.0/networks", bytes.NewReader(b))
					req.Header.Set("Content-Type", "application/json")
				case i%2 == 0:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cs[0].API+"/v2.0/networks", nil)
				default:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cs[0].API+"/v2.0/ports", nil)
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					failed.Add(1)
				}
				done.Add(1)
			}
		}(w)
	}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slowloris(cs[0].API, dur)
		}()
	}
	// Watch from the peer while the load runs.
	var changes []string
	tick := time.NewTicker(250 * time.Millisecond)
	for ctx.Err() == nil {
		<-tick.C
		v, ok := look()
		if !ok {
			continue
		}
		for id, lease := range before.leases {
			if v.leases[id] != lease {
				changes = append(changes, fmt.Sprintf("replica %s lease %x -> %x", id, lease, v.leases[id]))
			}
		}
		for _, d := range dpids {
			if v.masters[d] != before.masters[d] || v.gens[d] != before.gens[d] {
				changes = append(changes, fmt.Sprintf("switch %s master %s/%d -> %s/%d", d, before.masters[d], before.gens[d], v.masters[d], v.gens[d]))
			}
		}
		if len(changes) > 0 {
			break
		}
	}
	tick.Stop()
	cancel()
	wg.Wait()
	t.Logf("load on r1: %d API requests answered (%d failed or refused) in %s by %d workers, plus 200 slowloris connections", done.Load(), failed.Load(), dur, workers)
	if len(changes) > 0 {
		t.Fatalf("r1 under API load was fenced or lost switches: %v", changes)
	}
	for _, c := range cs {
		if strings.Contains(c.Log(), "peer lost; revoked its lease") {
			t.Errorf("%s fenced a peer during the load", c.id())
		}
	}
	if done.Load() < workers {
		t.Errorf("only %d API requests answered: the load did not run", done.Load())
	}
}
