package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// fipEnv is the floating IP lab: three hypervisors with the external
// network (hvlab Options.External, --bridge-mappings extnet:br-ex), an
// external flat network with the internet namespace's address as its
// gateway, one tenant network behind a router with its gateway on it,
// VMs v1 on hv1 and v2 on hv2 each serving HTTP (their name), and a
// floating IP not yet associated.
type fipEnv struct {
	*overlayEnv
	in     *hvlab.Internet
	vm     map[string]*hvlab.VM
	port   map[string]string // VM name -> Neutron port id
	fipID  string
	fip    string
	extNet string
	router string
}

const fipProject = "tenant-fip"

// bigFile is the size of each VM's /big (fetched slowly across a
// controller restart).
const bigFile = 100000

func startFIPLab(t *testing.T) *fipEnv {
	t.Helper()
	hvlab.RequireE2E(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	env := startOverlay(t, hvlab.Options{External: true}, []string{hvlab.ExternalPhysnet},
		"--bridge-mappings", hvlab.ExternalPhysnet+":"+hvlab.ExternalBridge)
	l, hvs, nb := env.l, env.hvs, env.nb
	e := &fipEnv{overlayEnv: env, in: l.Internet(), vm: map[string]*hvlab.VM{}, port: map[string]string{}}
	e.in.ServeHTTP(t)
	// The external network (admin), its gateway the internet namespace,
	// then the tenant's network behind a router with its gateway on it:
	// all made with the real openstack CLI (as the floating IP below).
	api := env.c.API
	x := openstackJSON(t, api, "network", "create", "--project", "admin", "--external", "--provider-network-type", "flat",
		"--provider-physical-network", hvlab.ExternalPhysnet, "ext")
	e.extNet = x["id"].(string)
	openstackJSON(t, api, "subnet", "create", "--project", "admin", "--network", e.extNet, "--subnet-range", e.in.CIDR(),
		"--gateway", e.in.IP(), "--no-dhcp", "--allocation-pool", "start="+e.in.Addr(10)+",end="+e.in.Addr(99), "ext-sub")
	n := openstackJSON(t, api, "network", "create", "--project", fipProject, "--provider-network-type", "gre", "fip-net")
	s := openstackJSON(t, api, "subnet", "create", "--project", fipProject, "--network", n["id"].(string),
		"--subnet-range", "10.0.1.0/24", "--gateway", "10.0.1.1", "fip-sub")
	rt := openstackJSON(t, api, "router", "create", "--project", fipProject, "--external-gateway", e.extNet, "r-fip")
	e.router = rt["id"].(string)
	openstackCLI(t, api, "router", "add", "subnet", e.router, s["id"].(string))
	if got := nb.get("routers/" + e.router); got["external_gateway_info"] == nil {
		t.Fatalf("router made by the CLI has no gateway: %v", got)
	}
	dir := t.TempDir()
	var sg string
	for i, name := range []string{"v1", "v2"} {
		ip := fmt.Sprintf("10.0.1.%d", 11+i)
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": fipProject, "name": name,
			"binding:host_id": hvs[i].Name(), "fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": ip}}}})
		e.port[name] = p["id"].(string)
		sg, _ = p["security_groups"].([]any)[0].(string)
		vm := l.AddVM(t, hvs[i], p["id"].(string), p["mac_address"].(string), "")
		if got, _ := hvlab.Lease(t, vm.NS(), "eth0", dir); got != ip {
			t.Fatalf("%s leased %s, want %s", name, got, ip)
		}
		vm.Exec("ethtool", "-K", "eth0", "tx", "off")
		root := filepath.Join(dir, "www-"+name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, bigFile), 0o644); err != nil {
			t.Fatal(err)
		}
		ovslab.StartProcess(t, "ip", []string{"netns", "exec", vm.NS(), "busybox", "httpd", "-f", "-p", "80", "-h", root}, nil)
		e.vm[name] = vm
	}
	// The default group lets in ICMP and HTTP from anywhere.
	for _, r := range []map[string]any{{"protocol": "icmp"}, {"protocol": "tcp", "port_range_min": 80, "port_range_max": 80}} {
		r["security_group_id"], r["project_id"], r["direction"], r["ethertype"], r["remote_ip_prefix"] = sg, fipProject, "ingress", "IPv4", "0.0.0.0/0"
		nb.post("security-group-rules", map[string]any{"security_group_rule": r})
	}
	// Seed the underlay neighbour caches (see TestOverlayIsolation).
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	// The floating IP, with the real openstack client.
	f := openstackJSON(t, env.c.API, "floating ip", "create", "--project", fipProject, e.extNet)
	e.fipID, e.fip = f["id"].(string), f["floating_ip_address"].(string)
	t.Cleanup(func() {
		if t.Failed() {
			dumpHVs(t, hvs)
		}
	})
	return e
}

// associate points the floating IP at a VM (or nowhere: "").
func (e *fipEnv) associate(vm string) {
	var port any
	if vm != "" {
		port = e.port[vm]
	}
	e.nb.put("floatingips/"+e.fipID, map[string]any{"floatingip": map[string]any{"port_id": port}})
}

// fetch is what the internet gets from url ("" on failure), giving up
// after 0.5 s (a SYN lost before the flows are in place would otherwise
// wait for TCP's 1 s retransmission: polling again is faster).
func (e *fipEnv) fetch(url string) string {
	out, err := e.in.ExecErr("curl", "-s", "-m", "0.5", url)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// TestFloatingIP: the internet reaches a VM by its floating IP (HTTP and
// ping), the VM's own traffic to the internet arrives from the floating
// IP (the server's view of the client address) and leaves through its
// own hypervisor's external bridge; moving the floating IP to a VM on
// another hypervisor: the internet reaches the new VM (time logged);
// disassociated, nothing answers.
func TestFloatingIP(t *testing.T) {
	e := startFIPLab(t)
	v1 := e.vm["v1"]
	start := time.Now()
	openstackCLI(t, e.c.API, "floating ip", "set", "--port", e.port["v1"], e.fipID)
	url := "http://" + e.fip + "/"
	waitFor(t, 30*time.Second, "the internet fetches from v1 by its floating IP", func() bool { return e.fetch(url) == "v1" })
	t.Logf("associate (openstack CLI, about 2 s of it the client itself) -> first HTTP answer from the internet: %v", time.Since(start).Round(time.Millisecond))
	if out, err := e.in.ExecErr("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", e.fip); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("internet -> floating IP ping: %v\n%s", err, out)
	}

	t.Run("status from the data plane", func(t *testing.T) {
		// The floating IP and the router are ACTIVE once their flows are
		// on the switches (published by the switches' masters), and the
		// floating IP's port_details names v1's port.
		var f map[string]any
		waitFor(t, 30*time.Second, "floating IP ACTIVE", func() bool {
			f = e.nb.get("floatingips/" + e.fipID)
			return f["status"] == "ACTIVE"
		})
		if pd, _ := f["port_details"].(map[string]any); pd == nil || pd["name"] != "v1" || pd["mac_address"] == nil {
			t.Errorf("port_details %v, want v1's port", f["port_details"])
		}
		waitFor(t, 30*time.Second, "router ACTIVE", func() bool { return e.nb.get("routers/" + e.router)["status"] == "ACTIVE" })
	})

	t.Run("the VM's own traffic leaves from the floating IP, on its own hypervisor", func(t *testing.T) {
		capt := hvlab.Tcpdump(t, e.l.UnderlayNS(), "ex1", "tcp and src host "+e.fip)
		for _, dst := range []string{hvlab.RemoteIP, e.in.IP()} {
			var got string
			waitFor(t, 20*time.Second, "v1 fetches http://"+dst+"/cgi-bin/ip", func() bool {
				out, err := v1.ExecErr("curl", "-s", "-m", "2", "http://"+dst+"/cgi-bin/ip")
				got = strings.TrimSpace(out)
				return err == nil && got != ""
			})
			if got != e.fip {
				t.Errorf("the internet saw v1 as %q, want its floating IP %s", got, e.fip)
			}
		}
		if out, err := v1.For(t).ExecErr("curl", "-s", "-m", "2", "http://"+hvlab.RemoteIP+"/"); err != nil || out != hvlab.HTTPPage {
			t.Errorf("v1 fetched %q (%v), want the internet's page", out, err)
		}
		if lines := capt.Stop(); len(lines) == 0 {
			t.Errorf("no TCP from %s on hv1's external link ex1", e.fip)
		}
	})

	t.Run("a connection through the floating IP survives a controller restart", func(t *testing.T) {
		// 100 kB at 20 kB/s: about 5 s, across the restart.
		cmd := exec.Command("ip", "netns", "exec", e.in.NS(), "curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
			"--limit-rate", "20k", "-m", "60", url+"big")
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(time.Second)
		if err := e.c.Stop(); err != nil {
			t.Logf("controller stop: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("the download ended (%v) before the controller was down: nothing tested", err)
		default:
		}
		e.c.start()
		err := <-done
		if got := strings.TrimSpace(out.String()); err != nil || got != fmt.Sprint(bigFile) {
			t.Errorf("download across the restart: %q bytes, %v; want %d", got, err, bigFile)
		}
		waitFor(t, 30*time.Second, "3 switches connected again", func() bool {
			var h struct{ Switches []string }
			return getJSON("http://"+e.c.API+"/healthz", &h) == nil && len(h.Switches) == 3
		})
		if got := e.fetch(url); got != "v1" {
			t.Errorf("after the restart the internet fetched %q, want v1", got)
		}
	})

	t.Run("moved to v2 on another hypervisor", func(t *testing.T) {
		start := time.Now()
		e.associate("v2")
		waitFor(t, 30*time.Second, "the internet fetches from v2 by the floating IP", func() bool { return e.fetch(url) == "v2" })
		t.Logf("floating IP moved hv1 -> hv2: the internet reached the new VM after %v", time.Since(start).Round(time.Millisecond))
		out, err := e.vm["v2"].For(t).ExecErr("curl", "-s", "-m", "2", "http://"+hvlab.RemoteIP+"/cgi-bin/ip")
		if err != nil || strings.TrimSpace(out) != e.fip {
			t.Errorf("v2 seen as %q (%v), want %s", strings.TrimSpace(out), err, e.fip)
		}
		// v1 has no floating IP any more: it reaches nothing outside
		// (no SNAT without a floating IP in this slice).
		if out, err := v1.For(t).ExecErr("curl", "-s", "-m", "2", "http://"+hvlab.RemoteIP+"/cgi-bin/ip"); err == nil && strings.TrimSpace(out) == e.fip {
			t.Errorf("v1 still leaves from the floating IP after the move")
		}
	})

	t.Run("disassociated: the floating IP answers nothing", func(t *testing.T) {
		e.associate("")
		waitFor(t, 30*time.Second, "the floating IP stops answering", func() bool {
			_, err := e.in.ExecErr("ping", "-n", "-c", "1", "-W", "1", e.fip)
			return err != nil
		})
		if f := e.nb.get("floatingips/" + e.fipID); f["status"] != "DOWN" || f["port_details"] != nil {
			t.Errorf("disassociated floating IP: status %v, port_details %v; want DOWN and null", f["status"], f["port_details"])
		}
	})
}

// TestFloatingIPBench (NIMBUS_BENCH=1): floating IP associate -> first
// ping answered from the internet (pinging every 10 ms from before the
// association), alternately to v1 (hv1) and v2 (hv2),
// with the internet's neighbour cache flushed before each association
// (so the ARP answer from the new hypervisor is part of it; with
// NIMBUS_FIP_FLUSH=0 it is kept: the floating IP's MAC does not change, so
// only the flows and the upstream bridge's forwarding entry matter).
// Reports p50 and p99 over NIMBUS_FIP_SAMPLES (default 30) samples.
func TestFloatingIPBench(t *testing.T) {
	if os.Getenv("NIMBUS_BENCH") != "1" {
		t.Skip("benchmark: set NIMBUS_BENCH=1 (make bench-fip)")
	}
	n := 30
	if v := os.Getenv("NIMBUS_FIP_SAMPLES"); v != "" {
		fmt.Sscan(v, &n)
	}
	e := startFIPLab(t)
	var samples []time.Duration
	for i := 0; i < n; i++ {
		vm := []string{"v1", "v2"}[i%2]
		e.associate("")
		waitFor(t, 30*time.Second, "the floating IP stops answering", func() bool {
			_, err := e.in.ExecErr("ping", "-n", "-c", "1", "-W", "0.3", e.fip)
			return err != nil
		})
		if os.Getenv("NIMBUS_FIP_FLUSH") != "0" {
			e.in.Exec("ip", "neigh", "flush", "dev", "inet0")
		}
		// ping every 10 ms from before the association until the first
		// reply (-c 1 with a deadline waits for one reply).
		ping := exec.Command("ip", "netns", "exec", e.in.NS(), "ping", "-n", "-q", "-i", "0.01", "-c", "1", "-w", "30", e.fip)
		if err := ping.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		e.associate(vm)
		if err := ping.Wait(); err != nil {
			t.Fatalf("sample %d: no ping answered within 30 s: %v", i, err)
		}
		samples = append(samples, time.Since(start))
		t.Logf("sample %d (%s): %v", i, vm, samples[i].Round(time.Millisecond))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) time.Duration { return samples[int(p*float64(len(samples)-1)+0.5)] }
	t.Logf("floating IP associate -> first ping from the internet, %d samples: min %v p50 %v p99 %v max %v",
		len(samples), samples[0].Round(time.Millisecond), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		samples[len(samples)-1].Round(time.Millisecond))
}
