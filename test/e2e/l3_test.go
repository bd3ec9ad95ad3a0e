package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// get reads one object (GET /v2.0/<path>) and fails the test on an error
// status.
func (n neutron) get(path string) map[string]any {
	n.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + n.api + "/v2.0/" + path)
	if err != nil {
		n.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil {
		n.t.Fatalf("GET %s: %s: %s", path, resp.Status, raw)
	}
	for _, v := range out {
		if m, ok := v.(map[string]any); ok {
			return m
		}
	}
	n.t.Fatalf("GET %s: unexpected answer %s", path, raw)
	return nil
}

// put sends a PUT to the Neutron API and fails the test on an error status.
func (n neutron) put(path string, body any) map[string]any {
	n.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, "http://"+n.api+"/v2.0/"+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		n.t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		n.t.Fatalf("PUT %s %s: %s: %s", path, b, resp.Status, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// traceroute runs `traceroute -n -q 1 -w 5 -m 4 [mode] target` in vm and
// checks that hop 1 is gw and hop 2 the target (which ends the trace). A
// run with a lost probe ("*") is retried, up to 3 runs: the punted time
// exceeded goes through the controller, on a loaded machine.
func traceroute(t *testing.T, vm *hvlab.VM, mode, gw, target string) {
	t.Helper()
	var out string
	var err error
	var hops []string
	for try := 0; try < 3; try++ {
		out, err = vm.For(t).ExecErr("traceroute", "-n", "-q", "1", "-w", "5", "-m", "4", mode, target)
		hops = nil
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] != "traceroute" {
				hops = append(hops, f[1])
			}
		}
		t.Logf("traceroute %s to %s:\n%s", mode, target, out)
		if !strings.Contains(strings.Join(hops, " "), "*") {
			break
		}
	}
	if err != nil || len(hops) != 2 || hops[0] != gw || hops[1] != target {
		t.Errorf("traceroute %s to %s: hops %v, want [%s %s] (%v)\n%s", mode, target, hops, gw, target, err, out)
	}
}

// openstackCLIErr runs the openstack CLI and returns its combined output
// and error (for calls that must fail).
func openstackCLIErr(api string, args ...string) (string, error) {
	full := append([]string{"--os-auth-type", "none", "--os-endpoint", "http://" + api}, args...)
	cmd := exec.Command("openstack", full...)
	cmd.Env = append(os.Environ(), "OS_CLOUD=", "OS_AUTH_URL=", "HOME="+os.TempDir())
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// TestL3EastWest: one tenant, a router with two GRE subnets
// (10.0.1.0/24, 10.0.2.0/24) and a VLAN subnet (10.0.5.0/24, VLAN 301 on
// physnet1), a third GRE subnet not on the router, VMs on
// three hypervisors that get the router as their default gateway by DHCP,
// and a second tenant with the same subnets behind its own router. VMs
// ping the gateway, each other across the router (on another hypervisor
// and on their own), with the TTL decremented once; the subnet not on the
// router is unreachable both ways (net unreachable from the gateway); the
// tenants never see each other's packets; TTL 1 gives time exceeded from
// the gateway; traceroute (ICMP and UDP) shows the gateway, then the
// target. Tenant A's router, its interfaces and an extra route (to an
// address held by a VM on another hypervisor) are made with the real
// openstack CLI; the route carries pings and traceroute, and an
// overlapping route is refused.
func TestL3EastWest(t *testing.T) {
	hvlab.RequireE2E(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	env := startOverlay(t, hvlab.Options{Physnet: true}, []string{physnet},
		"--bridge-mappings", physnet+":"+hvlab.PhysnetBridge)
	l, hvs, nb := env.l, env.hvs, env.nb
	const projA, projB = "tenant-l3a", "tenant-l3b"
	subnetOn := func(project, cidr, gw string, provider map[string]any) (netID, subID string) {
		net := map[string]any{"name": "net-" + cidr, "project_id": project, "provider:network_type": "gre"}
		for k, v := range provider {
			net[k] = v
		}
		n := nb.post("networks", map[string]any{"network": net})
		s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
			"cidr": cidr, "ip_version": 4, "gateway_ip": gw}})
		return n["id"].(string), s["id"].(string)
	}
	subnet := func(project, cidr, gw string) (netID, subID string) { return subnetOn(project, cidr, gw, nil) }
	router := func(project string, subs ...string) string {
		rt := nb.post("routers", map[string]any{"router": map[string]any{"name": "r-" + project, "project_id": project}})
		for _, s := range subs {
			nb.put("routers/"+rt["id"].(string)+"/add_router_interface", map[string]any{"subnet_id": s})
		}
		return rt["id"].(string)
	}
	// Tenant A's router is made with the real openstack CLI.
	cliRouter := func(project string, subs ...string) string {
		rt := openstackJSON(t, env.c.API, "router", "create", "--project", project, "r-"+project)
		id, _ := rt["id"].(string)
		for _, s := range subs {
			openstackCLI(t, env.c.API, "router", "add", "subnet", id, s)
		}
		return id
	}
	n1, s1 := subnet(projA, "10.0.1.0/24", "10.0.1.1")
	n2, s2 := subnet(projA, "10.0.2.0/24", "10.0.2.1")
	n3, s3 := subnet(projA, "10.0.3.0/24", "10.0.3.1")
	// A VLAN provider subnet on the same router.
	n5, s5 := subnetOn(projA, "10.0.5.0/24", "10.0.5.1", map[string]any{"provider:network_type": "vlan",
		"provider:physical_network": physnet, "provider:segmentation_id": 301})
	ridA := cliRouter(projA, s1, s2, s5)
	// Tenant B: the same subnets behind its own router.
	m1, t1 := subnet(projB, "10.0.1.0/24", "10.0.1.1")
	m2, t2 := subnet(projB, "10.0.2.0/24", "10.0.2.1")
	router(projB, t1, t2)
	type vmSpec struct {
		project, name, net, sub, ip string
		hv                          *hvlab.Hypervisor
	}
	specs := []vmSpec{
		{projA, "v1", n1, s1, "10.0.1.11", hvs[0]},
		{projA, "v2", n2, s2, "10.0.2.12", hvs[1]},
		{projA, "v4", n2, s2, "10.0.2.14", hvs[0]}, // v1's hypervisor: routed locally
		{projA, "v3", n3, s3, "10.0.3.13", hvs[2]}, // not on the router
		{projA, "v5", n5, s5, "10.0.5.15", hvs[2]}, // VLAN 301
		{projB, "w1", m1, t1, "10.0.1.11", hvs[0]}, // v1's twin in tenant B, same hypervisor
		{projB, "w2", m2, t2, "10.0.2.12", hvs[2]}, // v2's twin, another hypervisor
	}
	vms := map[string]*hvlab.VM{}
	portIDs := map[string]string{}
	for _, s := range specs {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": s.net, "project_id": s.project,
			"name": s.name, "binding:host_id": s.hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s.sub, "ip_address": s.ip}}}})
		vms[s.name] = l.AddVM(t, s.hv, p["id"].(string), p["mac_address"].(string), "")
		portIDs[s.name] = p["id"].(string)
	}
	dir := t.TempDir()
	for _, s := range specs {
		if ip, _ := hvlab.Lease(t, vms[s.name].NS(), "eth0", dir); ip != s.ip {
			t.Fatalf("%s leased %s, want %s", s.name, ip, s.ip)
		}
		// The veth's TCP checksums are left to offload, which OVS's
		// userspace conntrack (security groups) counts as invalid: off,
		// as in the secgroup tests.
		vms[s.name].Exec("ethtool", "-K", "eth0", "tx", "off")
		if r := vms[s.name].Exec("ip", "route", "show", "default"); !strings.Contains(r, "via "+s.ip[:len("10.0.x.")]+"1") {
			t.Fatalf("%s: default route %q, want via its gateway", s.name, r)
		}
	}
	// Seed the underlay neighbour caches (see TestOverlayIsolation).
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	v1, v2, v3, v4, v5, w1, w2 := vms["v1"], vms["v2"], vms["v3"], vms["v4"], vms["v5"], vms["w1"], vms["w2"]
	name := map[*hvlab.VM]string{}
	for n, vm := range vms {
		name[vm] = n
	}
	defer func() {
		if t.Failed() {
			dumpHVs(t, hvs)
		}
	}()

	t.Run("gateway answers ping", func(t *testing.T) {
		for _, c := range []struct {
			vm *hvlab.VM
			gw string
		}{{v1, "10.0.1.1"}, {v2, "10.0.2.1"}, {v1, "10.0.2.1"}} {
			if s, r := c.vm.For(t).Ping(c.gw, 3, 0, false); r != s {
				t.Errorf("%s -> gateway %s: %d/%d", name[c.vm], c.gw, r, s)
			}
		}
	})
	t.Run("routed across hypervisors", func(t *testing.T) {
		for _, c := range []struct {
			from *hvlab.VM
			to   string
		}{{v1, "10.0.2.12"}, {v2, "10.0.1.11"}, {v1, "10.0.2.14"}, {v4, "10.0.1.11"},
			{v1, "10.0.5.15"}, {v5, "10.0.1.11"}, {v5, "10.0.2.12"}} { // GRE <-> VLAN
			out, err := c.from.For(t).ExecErr("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", c.to)
			if err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Errorf("%s -> %s: %v\n%s", name[c.from], c.to, err, out)
				continue
			}
			// One hop: the request and the reply each cross the router once.
			if !strings.Contains(out, "ttl=63") {
				t.Errorf("%s -> %s: reply TTL is not 63 (one routed hop):\n%s", name[c.from], c.to, out)
			}
		}
	})
	t.Run("TCP across the router", func(t *testing.T) {
		// v2 serves 300 kB (full-size segments at the GRE MTU); v1, on
		// another hypervisor and subnet, fetches it through the router.
		srv := ovslab.StartProcess(t, "ip", []string{"netns", "exec", v2.NS(), "socat", "-d", "-d",
			"TCP-LISTEN:8080,reuseaddr,fork", "SYSTEM:head -c 300000 /dev/zero"}, nil)
		defer srv.Kill()
		srv.WaitLog("listening on", 10*time.Second)
		out, err := v1.For(t).ExecErr("sh", "-c", "socat -T 10 -u TCP:10.0.2.12:8080,connect-timeout=5 - | wc -c")
		if err != nil || strings.TrimSpace(out) != "300000" {
			t.Errorf("v1 fetched %q bytes from v2 over TCP through the router, want 300000 (%v)", strings.TrimSpace(out), err)
		}
	})
	t.Run("subnet not on the router is unreachable", func(t *testing.T) {
		capt := hvlab.Tcpdump(t, v3.NS(), "eth0", "icmp")
		if _, r := v1.For(t).Ping("10.0.3.13", 2, 0, false); r != 0 {
			t.Errorf("v1 reached 10.0.3.13 on a subnet not on the router")
		}
		if lines := capt.Stop(); len(lines) != 0 {
			t.Errorf("v3 received:\n%s", strings.Join(lines, "\n"))
		}
		if _, r := v3.For(t).Ping("10.0.1.11", 2, 0, false); r != 0 {
			t.Errorf("v3 (no router on its subnet) reached 10.0.1.11")
		}
		// No route on the router: ICMP net unreachable from the gateway.
		out, _ := v1.For(t).ExecErr("ping", "-n", "-c", "1", "-W", "2", "10.0.3.13")
		if !strings.Contains(out, "From 10.0.1.1") || !strings.Contains(out, "Unreachable") {
			t.Errorf("v1 -> 10.0.3.13: want net unreachable from 10.0.1.1:\n%s", out)
		}
	})
	t.Run("tenants with identical subnets stay apart", func(t *testing.T) {
		capA := hvlab.Tcpdump(t, v2.NS(), "eth0", "icmp")
		if s, r := w1.For(t).Ping("10.0.2.12", 3, 0, false); r != s {
			t.Errorf("w1 -> 10.0.2.12 (w2, tenant B): %d/%d", r, s)
		}
		if lines := capA.Stop(); len(lines) != 0 {
			t.Errorf("tenant A's v2 saw tenant B's traffic:\n%s", strings.Join(lines, "\n"))
		}
		capB := hvlab.Tcpdump(t, w2.NS(), "eth0", "icmp")
		if s, r := v1.For(t).Ping("10.0.2.12", 3, 0, false); r != s {
			t.Errorf("v1 -> 10.0.2.12 (v2, tenant A): %d/%d", r, s)
		}
		if lines := capB.Stop(); len(lines) != 0 {
			t.Errorf("tenant B's w2 saw tenant A's traffic:\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("traceroute shows the gateway, then the target", func(t *testing.T) {
		// ICMP probes (-I) and UDP probes (the target's kernel answers
		// port unreachable): hop 1 is the gateway (time exceeded from the
		// router's punt), hop 2 the target on the other subnet and
		// hypervisor.
		for _, mode := range []string{"-I", "-U"} {
			traceroute(t, v1, mode, "10.0.1.1", "10.0.2.12")
		}
	})
	t.Run("extra route via a VM on another hypervisor", func(t *testing.T) {
		// v2 (10.0.2.12, hypervisor 2) holds 10.0.9.9 on its loopback and
		// may send from 10.0.9.0/24 (allowed address pair, as Neutron
		// needs for a VM acting as a router); tenant A's router gets
		// 10.0.9.0/24 via 10.0.2.12 with the openstack CLI.
		v2.Exec("ip", "addr", "add", "10.0.9.9/32", "dev", "lo")
		nb.put("ports/"+portIDs["v2"], map[string]any{"port": map[string]any{
			"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.9.0/24"}}}})
		openstackCLI(t, env.c.API, "router", "set", "--route", "destination=10.0.9.0/24,gateway=10.0.2.12", ridA)
		rt := openstackJSON(t, env.c.API, "router", "show", ridA)
		if b, _ := json.Marshal(rt["routes"]); !strings.Contains(string(b), "10.0.9.0/24") {
			t.Fatalf("router routes after openstack router set --route: %s", b)
		}
		var out string
		var err error
		waitFor(t, 30*time.Second, "v1 reaches 10.0.9.9 through the extra route", func() bool {
			out, err = v1.ExecErr("ping", "-n", "-c", "1", "-W", "1", "10.0.9.9")
			return err == nil
		})
		for _, from := range []*hvlab.VM{v1, v5} {
			out, err = from.For(t).ExecErr("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.0.9.9")
			if err != nil || !strings.Contains(out, " 0% packet loss") || !strings.Contains(out, "ttl=63") {
				t.Errorf("%s -> 10.0.9.9 via the extra route: %v (want no loss, TTL 63)\n%s", name[from], err, out)
			}
		}
		traceroute(t, v1, "-I", "10.0.1.1", "10.0.9.9")
		// Tenant B's router has no such route: net unreachable.
		out, _ = w1.For(t).ExecErr("ping", "-n", "-c", "1", "-W", "2", "10.0.9.9")
		if !strings.Contains(out, "From 10.0.1.1") || !strings.Contains(out, "Unreachable") {
			t.Errorf("w1 (tenant B) -> 10.0.9.9: want net unreachable from its gateway:\n%s", out)
		}
		// A route that overlaps a connected subnet is refused by the CLI's
		// API call, and the routes stay as they were.
		if out, err := openstackCLIErr(env.c.API, "router", "set", "--route", "destination=10.0.1.0/25,gateway=10.0.2.12", ridA); err == nil ||
			!strings.Contains(out, "InvalidRoutes") && !strings.Contains(out, "overlaps") {
			t.Errorf("overlapping route: %v\n%s", err, out)
		}
		rt = openstackJSON(t, env.c.API, "router", "show", ridA)
		if b, _ := json.Marshal(rt["routes"]); strings.Contains(string(b), "10.0.1.0/25") {
			t.Errorf("a refused route was stored: %s", b)
		}
	})
	t.Run("TTL 1 gives time exceeded from the gateway", func(t *testing.T) {
		capt := hvlab.Tcpdump(t, v2.NS(), "eth0", "icmp")
		out, _ := v1.For(t).ExecErr("ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-t", "1", "10.0.2.12")
		if lines := capt.Stop(); len(lines) != 0 {
			t.Errorf("a TTL-1 packet was routed to v2:\n%s", strings.Join(lines, "\n"))
		}
		if !strings.Contains(out, "From 10.0.1.1") || !strings.Contains(out, "Time to live exceeded") {
			t.Errorf("ping -t 1 across the router: want time exceeded from 10.0.1.1:\n%s", out)
		}
		// TTL 2 crosses the one hop.
		if out, err := v1.For(t).ExecErr("ping", "-n", "-c", "1", "-W", "2", "-t", "2", "10.0.2.12"); err != nil {
			t.Errorf("ping -t 2 across the router: %v\n%s", err, out)
		}
	})
}
