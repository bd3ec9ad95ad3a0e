package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// physnet is the physical network the VLAN lab maps to hvlab.PhysnetBridge.
const physnet = "physnet1"

// overlayEnv is a running overlay lab: hypervisors with node agents, one
// controller on a real etcd, and a Neutron client for its API.
type overlayEnv struct {
	l   *hvlab.Lab
	hvs []*hvlab.Hypervisor
	c   *controller
	nb  neutron
}

// startOverlay builds a 3-hypervisor lab (with opts), starts etcd, the
// controller and one node agent per hypervisor (with nodeArgs added), and
// waits until every br-int has its GRE mesh (and the patch port of every
// physnet in physnets) and talks to the controller. Everything goes in
// t.Cleanup, agents first, the lab last.
func startOverlay(t *testing.T, opts hvlab.Options, physnets []string, nodeArgs ...string) *overlayEnv {
	t.Helper()
	opts.Hypervisors = 3
	l := hvlab.New(t, opts)
	hvs := l.Hypervisors()
	etcd := etcdtest.Start(t, 1)
	endpoints := strings.Join(etcd.Endpoints(), ",")
	ofPort := ovslab.FreePort(t)
	c := &controller{t: t, OF: fmt.Sprintf("127.0.0.1:%d", ofPort), API: fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))}
	c.args = []string{"serve", "--openflow-listen", fmt.Sprintf("0.0.0.0:%d", ofPort), "--api-listen", c.API,
		"--log-level", "debug", "--etcd-endpoints", endpoints, "--replica-id", "r1"}
	c.start()
	l.StartAgents(t, controllerBin, ofPort, endpoints, physnets, append([]string{"--resync", "5s", "--log-level", "debug"}, nodeArgs...)...)
	waitFor(t, 30*time.Second, "3 switches connected", func() bool {
		var h struct{ Switches []string }
		return getJSON("http://"+c.API+"/healthz", &h) == nil && len(h.Switches) == 3
	})
	return &overlayEnv{l: l, hvs: hvs, c: c, nb: neutron{t: t, api: c.API}}
}

// vlanTag finds the 802.1Q tag in a tcpdump -e line.
var vlanTag = regexp.MustCompile(`vlan (\d+),`)

// TestOverlayVLAN is TestOverlayIsolation for VLAN provider networks: the
// hypervisors share a physical L2 segment (hvlab Options.Physnet: br-vlan
// on each, joined by a Linux bridge), the node agents patch br-int to it
// (--bridge-mappings physnet1:br-vlan), and two tenants get VLAN networks
// 101 and 102 on physnet1, both 10.0.0.0/24, with VMs on all 3 chassis.
// It checks DHCP (address and MTU 1500), same-tenant pings across chassis,
// cross-tenant isolation with overlapping addresses, anti-spoofing, that
// the physical segment carries only frames tagged with their network's VLAN
// and no VM ARP, and the MTU boundary with the DF bit. VM a3's interface
// has an arbitrary name: it is bound by external_ids:iface-id alone, which
// its node agent publishes in the chassis record.
func TestOverlayVLAN(t *testing.T) {
	hvlab.RequireE2E(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	env := startOverlay(t, hvlab.Options{Physnet: true}, []string{physnet},
		"--bridge-mappings", physnet+":"+hvlab.PhysnetBridge)
	l, hvs, nb := env.l, env.hvs, env.nb
	t.Logf("timing: lab, controller, agents %v", time.Since(start).Round(time.Millisecond))
	for _, hv := range hvs {
		peer := strings.Trim(hv.Vsctl("get", "interface", names.PhysPortName(physnet), "options:peer"), `"`)
		if want := names.IntPortName(physnet); peer != want {
			t.Errorf("%s: %s peer %s, want %s", hv.Name(), names.PhysPortName(physnet), peer, want)
		}
	}

	type tenant struct {
		project, net, subnet string
		vlan                 int
	}
	mk := func(project string, vlan int) *tenant {
		n := nb.post("networks", map[string]any{"network": map[string]any{"name": "vlan-" + project, "project_id": project,
			"provider:network_type": "vlan", "provider:physical_network": physnet, "provider:segmentation_id": vlan}})
		if got, _ := n["provider:segmentation_id"].(float64); int(got) != vlan {
			t.Fatalf("network %s: segmentation id %v, want %d", n["id"], n["provider:segmentation_id"], vlan)
		}
		s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
			"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
		tn := &tenant{project: project, net: n["id"].(string), subnet: s["id"].(string), vlan: vlan}
		t.Logf("tenant %s: network %s (vlan %d on %s, mtu %v), subnet %s", project, tn.net, vlan, physnet, n["mtu"], tn.subnet)
		return tn
	}
	ta, tb := mk("tenant-a", 101), mk("tenant-b", 102)
	specs := []struct {
		name string
		tn   *tenant
		hv   *hvlab.Hypervisor
		ip   string
		tap  string // "": Neutron's tap<port id[:11]>
	}{
		{"a1", ta, hvs[0], "10.0.0.11", ""},
		{"a2", ta, hvs[1], "10.0.0.12", ""},
		{"b1", tb, hvs[0], "10.0.0.11", ""}, // overlaps a1, same chassis
		{"b2", tb, hvs[2], "10.0.0.13", ""},
		// Bound only by external_ids:iface-id, which the node agent
		// publishes in its chassis record: the name says nothing.
		{"a3", ta, hvs[2], "10.0.0.14", "vm-a3-odd"},
	}
	vms := map[string]*hvlab.VM{}
	for _, s := range specs {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": s.tn.net, "project_id": s.tn.project,
			"name": s.name, "binding:host_id": s.hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s.tn.subnet, "ip_address": s.ip}}}})
		vms[s.name] = l.AddVMWith(t, s.hv, hvlab.VMOptions{PortID: p["id"].(string), MAC: p["mac_address"].(string), Tap: s.tap})
	}
	a1, a2, b1, b2 := vms["a1"], vms["a2"], vms["b1"], vms["b2"]

	ok := t.Run("dhcp", func(t *testing.T) {
		dir := t.TempDir()
		for _, s := range specs {
			ip, mtu := hvlab.Lease(t, vms[s.name].For(t).NS(), "eth0", dir)
			if ip != s.ip {
				t.Errorf("%s leased %s, want %s", s.name, ip, s.ip)
			}
			if mtu != "1500" {
				t.Errorf("%s: DHCP MTU %s, want 1500 (VLAN on a 1500-byte physical network)", s.name, mtu)
			}
		}
	})
	if !ok {
		dumpHVs(t, hvs)
		t.FailNow()
	}

	t.Run("same tenant across chassis", func(t *testing.T) {
		for _, p := range []struct{ from, to string }{
			{"a1", "10.0.0.12"}, {"a2", "10.0.0.11"}, {"b1", "10.0.0.13"}, {"b2", "10.0.0.11"},
			{"a3", "10.0.0.11"}, {"a3", "10.0.0.12"}, {"a2", "10.0.0.14"}} {
			if s, r := vms[p.from].For(t).Ping(p.to, 3, 0, false); r != s {
				t.Errorf("%s -> %s: %d/%d answered", p.from, p.to, r, s)
			}
		}
	})

	t.Run("tenants isolated", func(t *testing.T) { checkTenantsIsolated(t, a1, a2, b1) })

	t.Run("spoofed source dropped", func(t *testing.T) {
		a1 := a1.For(t)
		if s, r := a1.Ping("10.0.0.12", 1, 0, false); r != s {
			t.Fatalf("a1 -> a2 before spoofing: %d/%d", r, s)
		}
		a1.Exec("ip", "addr", "add", "10.0.0.99/32", "dev", "eth0")
		defer a1.Exec("ip", "addr", "del", "10.0.0.99/32", "dev", "eth0")
		capt := hvlab.Tcpdump(t, a2.NS(), "eth0", "icmp and src host 10.0.0.99")
		seg := hvlab.Tcpdump(t, l.UnderlayNS(), hvlab.PhysnetSegment, "vlan and icmp and src host 10.0.0.99")
		out, _ := a1.ExecErr("ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.0.0.99", "10.0.0.12")
		if lines := capt.Stop(); len(lines) != 0 {
			t.Errorf("a2 received spoofed packets:\n%s", strings.Join(lines, "\n"))
		}
		if lines := seg.Stop(); len(lines) != 0 {
			t.Errorf("spoofed packets reached the physical network:\n%s", strings.Join(lines, "\n"))
		}
		if strings.Contains(out, " 0% packet loss") {
			t.Errorf("spoofed ping answered:\n%s", out)
		}
	})

	t.Run("physical segment tagged, no ARP", func(t *testing.T) {
		for _, vm := range []*hvlab.VM{a1, a2, b1, b2} {
			vm.For(t).Exec("ip", "neigh", "flush", "dev", "eth0")
		}
		capt := hvlab.Tcpdump(t, l.UnderlayNS(), hvlab.PhysnetSegment, "")
		if s, r := a1.For(t).Ping("10.0.0.12", 2, 0, false); r != s {
			t.Errorf("a1 -> a2: %d/%d", r, s)
		}
		if s, r := b2.For(t).Ping("10.0.0.11", 2, 0, false); r != s {
			t.Errorf("b2 -> b1: %d/%d", r, s)
		}
		lines := capt.Stop()
		tags := map[string]int{}
		for _, line := range lines {
			m := vlanTag.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("untagged frame on the physical network: %s", line)
				continue
			}
			tags[m[1]]++
			if strings.Contains(line, "ARP") {
				t.Errorf("ARP crossed the physical network: %s", line)
			}
			// a1/a2 talk on 101 only, b1/b2 on 102 only.
			if strings.Contains(line, "10.0.0.12") && m[1] != "101" || strings.Contains(line, "10.0.0.13") && m[1] != "102" {
				t.Errorf("frame on the wrong VLAN: %s", line)
			}
		}
		if tags["101"] < 4 || tags["102"] < 4 || len(tags) != 2 {
			t.Errorf("tags seen %v, want >= 4 frames on each of 101 and 102 and nothing else:\n%s", tags, strings.Join(lines, "\n"))
		}
		t.Logf("physical segment: %d frames, by VLAN %v", len(lines), tags)
	})

	t.Run("mtu", func(t *testing.T) {
		a1 := a1.For(t)
		if got := a1.Exec("cat", "/sys/class/net/eth0/mtu"); got != "1500" {
			t.Errorf("a1 eth0 mtu %s after DHCP, want 1500", got)
		}
		// 1472 + 28 = 1500 bytes of IP: a 1518-byte tagged frame on the wire.
		seg := hvlab.Tcpdump(t, l.UnderlayNS(), hvlab.PhysnetSegment, "vlan 101 and icmp")
		if s, r := a1.Ping("10.0.0.12", 2, 1472, true); r != s {
			t.Errorf("1472-byte DF ping (1500-byte packet): %d/%d", r, s)
		}
		full := 0
		lines := seg.Stop()
		for _, line := range lines {
			if strings.Contains(line, "length 1518:") {
				full++
			}
		}
		if full < 4 {
			t.Errorf("physical network saw %d 1518-byte tagged frames, want 4:\n%s", full, strings.Join(lines, "\n"))
		}
		if _, r := a1.Ping("10.0.0.12", 1, 1473, true); r != 0 {
			t.Errorf("1473-byte DF ping passed")
		}
	})
	if t.Failed() {
		dumpHVs(t, hvs)
	}
	t.Logf("timing: total %v", time.Since(start).Round(time.Millisecond))
}
