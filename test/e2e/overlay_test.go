package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// neutron is a tiny Neutron API client for the controller's API port.
type neutron struct {
	t   *testing.T
	api string
}

func (n neutron) post(path string, body any) map[string]any {
	n.t.Helper()
	b, _ := json.Marshal(body)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post("http://"+n.api+"/v2.0/"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		n.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		n.t.Fatalf("POST %s %s: %s: %s", path, b, resp.Status, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		n.t.Fatalf("POST %s: %v: %s", path, err, raw)
	}
	for _, v := range out {
		if m, ok := v.(map[string]any); ok {
			return m
		}
	}
	n.t.Fatalf("POST %s: unexpected answer %s", path, raw)
	return nil
}

// TestOverlayIsolation runs the controller (real etcd) and one node agent
// per hypervisor of a 3-hypervisor GRE lab, creates two tenants' networks
// on the same 10.0.0.0/24 through the Neutron API, plugs VMs on different
// chassis, and checks DHCP, same-tenant pings across chassis, cross-tenant
// isolation, anti-spoofing, the local ARP responder (no ARP on the
// underlay) and the GRE MTU handed out by DHCP.
func TestOverlayIsolation(t *testing.T) {
	hvlab.RequireE2E(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	phase := start
	lap := func(what string) {
		t.Logf("timing: %s %v", what, time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
	}

	env := startOverlay(t, hvlab.Options{}, nil)
	l, hvs, c := env.l, env.hvs, env.c
	for _, hv := range hvs[1:] {
		if typ := hv.Vsctl("get", "interface", names.TunnelPortName(hvs[0].Name()), "type"); typ != "gre" {
			t.Errorf("%s: tunnel type %s", hv.Name(), typ)
		}
	}
	lap("lab, etcd, controller, agents (br-int, chassis, GRE mesh, switches connected)")

	// Two tenants, same CIDR.
	nb := neutron{t: t, api: c.API}
	type tenant struct {
		project, net, subnet string
		seg                  float64
		mtu                  float64
	}
	mk := func(project string) *tenant {
		n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-" + project, "project_id": project,
			"provider:network_type": "gre"}})
		s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
			"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
		tn := &tenant{project: project, net: n["id"].(string), subnet: s["id"].(string)}
		tn.seg, _ = n["provider:segmentation_id"].(float64)
		tn.mtu, _ = n["mtu"].(float64)
		t.Logf("tenant %s: network %s (gre key %v, mtu %v), subnet %s", project, tn.net, tn.seg, tn.mtu, tn.subnet)
		return tn
	}
	ta, tb := mk("tenant-a"), mk("tenant-b")
	if ta.seg == tb.seg {
		t.Fatalf("both networks got GRE key %v", ta.seg)
	}
	type vmSpec struct {
		name string
		tn   *tenant
		hv   *hvlab.Hypervisor
		ip   string
	}
	specs := []vmSpec{
		{"a1", ta, hvs[0], "10.0.0.11"},
		{"a2", ta, hvs[1], "10.0.0.12"},
		{"b1", tb, hvs[0], "10.0.0.11"}, // overlaps a1, same chassis
		{"b2", tb, hvs[2], "10.0.0.13"},
	}
	vms := map[string]*hvlab.VM{}
	portIDs := map[string]string{}
	for _, s := range specs {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": s.tn.net, "project_id": s.tn.project,
			"name": s.name, "binding:host_id": s.hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s.tn.subnet, "ip_address": s.ip}}}})
		id, mac := p["id"].(string), p["mac_address"].(string)
		portIDs[s.name] = id
		vms[s.name] = l.AddVM(t, s.hv, id, mac, "")
		t.Logf("%s: port %s mac %s on %s (%s)", s.name, id, mac, s.hv.Name(), vms[s.name].Tap())
	}
	a1, a2, b1 := vms["a1"], vms["a2"], vms["b1"]
	lap("neutron networks, subnets, ports, VMs")

	// Flows for the taps arrive asynchronously (port status -> refresh).
	ok := t.Run("dhcp", func(t *testing.T) {
		dir := t.TempDir()
		for _, s := range specs {
			vm := vms[s.name].For(t)
			ip, mtu := hvlab.Lease(t, vm.NS(), "eth0", dir)
			if ip != s.ip {
				t.Errorf("%s leased %s, want %s", s.name, ip, s.ip)
			}
			if mtu != "1458" {
				t.Errorf("%s: DHCP MTU %s, want 1458 (GRE on a 1500-byte underlay)", s.name, mtu)
			}
			t.Logf("%s on %s leased %s mtu %s", s.name, s.hv.Name(), ip, mtu)
		}
	})
	lap("DHCP x4")
	if !ok {
		dumpHVs(t, hvs)
		t.FailNow()
	}

	// OVS's userspace tunnels drop a packet whose underlay next hop is not
	// in their own neighbour cache yet (tnl/neigh, filled by snooping ARP
	// on br-phy) and send an ARP instead: the first VM packet to a new peer
	// is lost when, as here, the VM's own ARP was answered locally and
	// never crossed the tunnel. Seed the caches with the peers' br-phy MACs.
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				mac := peer.Exec("cat", "/sys/class/net/br-phy/address")
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), mac)
			}
		}
	}
	lap("underlay neighbour warm-up")
	t.Run("same tenant across chassis", func(t *testing.T) {
		for _, p := range []struct{ from, to string }{
			{"a1", "10.0.0.12"}, {"a2", "10.0.0.11"}, {"b1", "10.0.0.13"}, {"b2", "10.0.0.11"}} {
			if s, r := vms[p.from].For(t).Ping(p.to, 3, 0, false); r != s {
				t.Errorf("%s -> %s: %d/%d answered", p.from, p.to, r, s)
			}
		}
	})
	lap("same-tenant pings")

	t.Run("tenants isolated", func(t *testing.T) { checkTenantsIsolated(t, a1, a2, b1) })
	lap("cross-tenant pings")

	t.Run("spoofed source dropped", func(t *testing.T) {
		a1 := a1.For(t)
		// Neighbour resolved with the real address first, so only the IP
		// packet carries the spoofed source.
		if s, r := a1.Ping("10.0.0.12", 1, 0, false); r != s {
			t.Fatalf("a1 -> a2 before spoofing: %d/%d", r, s)
		}
		a1.Exec("ip", "addr", "add", "10.0.0.99/32", "dev", "eth0")
		defer a1.Exec("ip", "addr", "del", "10.0.0.99/32", "dev", "eth0")
		capt := hvlab.Tcpdump(t, a2.NS(), "eth0", "icmp and src host 10.0.0.99")
		out, _ := a1.ExecErr("ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.0.0.99", "10.0.0.12")
		if lines := capt.Stop(); len(lines) != 0 {
			t.Errorf("a2 received spoofed packets:\n%s", strings.Join(lines, "\n"))
		}
		if strings.Contains(out, " 0% packet loss") {
			t.Errorf("spoofed ping answered:\n%s", out)
		}
		// A spoofed source MAC (with the right IP) is dropped too.
		a1.Exec("ip", "neigh", "replace", "10.0.0.12", "lladdr", a2.MAC(), "dev", "eth0", "nud", "permanent")
		a1.Exec("ip", "link", "set", "eth0", "address", "fa:16:3e:ee:ee:ee")
		defer a1.Exec("ip", "link", "set", "eth0", "address", a1.MAC())
		defer a1.Exec("ip", "neigh", "del", "10.0.0.12", "dev", "eth0")
		capt = hvlab.Tcpdump(t, a2.NS(), "eth0", "icmp or arp")
		if _, r := a1.Ping("10.0.0.12", 2, 0, false); r != 0 {
			t.Errorf("ping from a spoofed MAC answered")
		}
		if lines := capt.Stop(); len(lines) != 0 {
			t.Errorf("a2 received packets from a spoofed MAC:\n%s", strings.Join(lines, "\n"))
		}
	})
	lap("spoofing")

	t.Run("no ARP on the underlay", func(t *testing.T) {
		a1, a2 := a1.For(t), a2.For(t)
		a1.Exec("ip", "neigh", "flush", "dev", "eth0")
		a2.Exec("ip", "neigh", "flush", "dev", "eth0")
		capt := hvlab.Tcpdump(t, l.UnderlayNS(), hvlab.UnderlayBridge, "")
		if s, r := a1.Ping("10.0.0.12", 2, 0, false); r != s {
			t.Errorf("a1 -> a2: %d/%d", r, s)
		}
		lines := capt.Stop()
		var gre, arp int
		for _, line := range lines {
			if strings.Contains(line, "GRE") {
				gre++
			}
			if strings.Contains(line, "ARP") && strings.Contains(line, "10.0.0.") {
				arp++
				t.Errorf("VM ARP crossed the underlay: %s", line)
			}
		}
		if gre < 4 {
			t.Errorf("underlay saw %d GRE packets, want >= 4:\n%s", gre, strings.Join(lines, "\n"))
		}
		t.Logf("underlay: %d packets, %d GRE, %d VM ARP", len(lines), gre, arp)
		if neigh := a1.Exec("ip", "neigh", "show", "10.0.0.12"); !strings.Contains(neigh, a2.MAC()) {
			t.Errorf("a1 neighbour 10.0.0.12: %q, want %s", neigh, a2.MAC())
		}
	})
	lap("underlay ARP check")

	t.Run("mtu", func(t *testing.T) {
		a1 := a1.For(t)
		if got := a1.Exec("cat", "/sys/class/net/eth0/mtu"); got != "1458" {
			t.Errorf("a1 eth0 mtu %s after DHCP, want 1458", got)
		}
		if s, r := a1.Ping("10.0.0.12", 2, 1430, true); r != s {
			t.Errorf("1430-byte DF ping (1458-byte packet): %d/%d", r, s)
		}
		if _, r := a1.Ping("10.0.0.12", 1, 1431, true); r != 0 {
			t.Errorf("1431-byte DF ping passed")
		}
		// Without the DHCP MTU the VM would send 1459 bytes and OVS would
		// drop them silently; with it the kernel refuses locally.
	})
	lap("MTU")

	// Port status from the data plane (issue 11): ACTIVE once the VM's
	// chassis holds its flows, DOWN when its interface leaves br-int.
	t.Run("port status", func(t *testing.T) {
		status := func(name string) string {
			r, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + c.API + "/v2.0/ports/" + portIDs[name] + "?fields=status")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Body.Close()
			var out struct {
				Port struct {
					Status string `json:"status"`
				} `json:"port"`
			}
			json.NewDecoder(r.Body).Decode(&out)
			return out.Port.Status
		}
		waitStatus := func(name, want string) {
			deadline := time.Now().Add(30 * time.Second)
			for {
				got := status(name)
				if got == want {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("port %s status %s, want %s", name, got, want)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		for _, s := range specs {
			waitStatus(s.name, "ACTIVE")
		}
		hvs[2].Vsctl("del-port", "br-int", vms["b2"].Tap())
		waitStatus("b2", "DOWN")
		if got := status("a1"); got != "ACTIVE" {
			t.Errorf("a1 status %s after b2's interface went, want ACTIVE", got)
		}
	})
	lap("port status")
	if t.Failed() {
		dumpHVs(t, hvs)
	}
	t.Logf("timing: total %v", time.Since(start).Round(time.Millisecond))
}

func dumpHVs(t *testing.T, hvs []*hvlab.Hypervisor) {
	for _, hv := range hvs {
		hv := hv.For(t)
		ports, _ := hv.OfctlErr("show", "br-int")
		flows, _ := hv.OfctlErr("dump-flows", "br-int")
		groups, _ := hv.OfctlErr("dump-groups", "br-int")
		t.Logf("%s br-int:\n%s\n%s\n%s", hv.Name(), ports, flows, groups)
	}
}

// checkTenantsIsolated checks the overlay labs' two tenants: a1 and a2
// (tenant A: 10.0.0.11, 10.0.0.12) and b1 (tenant B: 10.0.0.11, the same
// address as a1, on a1's chassis) with b2 at 10.0.0.13. 10.0.0.12 exists
// only in A and 10.0.0.13 only in B; a2 reaches 10.0.0.11 in its own
// tenant (a1), never b1.
func checkTenantsIsolated(t *testing.T, a1, a2, b1 *hvlab.VM) {
	t.Helper()
	if _, r := b1.For(t).Ping("10.0.0.12", 2, 0, false); r != 0 {
		t.Errorf("b1 (tenant B) reached a2's 10.0.0.12 in tenant A")
	}
	if _, r := a1.For(t).Ping("10.0.0.13", 2, 0, false); r != 0 {
		t.Errorf("a1 (tenant A) reached b2's 10.0.0.13 in tenant B")
	}
	capt := hvlab.Tcpdump(t, b1.NS(), "eth0", "icmp")
	if s, r := a2.For(t).Ping("10.0.0.11", 3, 0, false); r != s {
		t.Errorf("a2 -> 10.0.0.11 (a1): %d/%d", r, s)
	}
	if n := len(capt.Stop()); n != 0 {
		t.Errorf("b1 saw %d ICMP packets of tenant A", n)
	}
	if neigh := a2.For(t).Exec("ip", "neigh", "show", "10.0.0.11"); !strings.Contains(neigh, a1.MAC()) {
		t.Errorf("a2 resolved 10.0.0.11 to %q, want a1's %s", neigh, a1.MAC())
	}
}
