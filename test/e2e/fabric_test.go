package e2e

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/topology"
)

// fabricLab is a running test/mininet/fabric.py.
type fabricLab struct {
	Prefix string `json:"prefix"`
	Hosts  map[string]struct {
		PID    int    `json:"pid"`
		NetNS  string `json:"netns"`
		Intf   string `json:"intf"`
		MAC    string `json:"mac"`
		Port   string `json:"port"`
		Switch string `json:"switch"`
	} `json:"hosts"`
	Switches map[string]string `json:"switches"`
	Links    [][2]string       `json:"links"`
}

// startFabric runs the Mininet fabric lab against controllers and waits
// for its description. The lab is torn down when the test ends.
func startFabric(t *testing.T, topo string, dpidBase uint64, controllers ...string) *fabricLab {
	t.Helper()
	root, err := ovslab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join(root, "test/mininet/fabric.py"), "--topo", topo, "--dpid-base", fmt.Sprintf("0x%x", dpidBase)}
	for _, c := range controllers {
		args = append(args, "--controller", c)
	}
	cmd := exec.Command("/usr/bin/python3", args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("fabric.py stderr:\n%s", stderr.String())
		}
	})
	timeout := time.After(120 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fabric.py exited before the lab was up:\n%s", stderr.String())
			}
			if rest, ok := strings.CutPrefix(l, "FABRIC {"); ok {
				lab := &fabricLab{}
				if err := json.Unmarshal([]byte("{"+rest), lab); err != nil {
					t.Fatalf("fabric.py: %v: %s", err, l)
				}
				go func() {
					for range lines {
					}
				}()
				return lab
			}
		case <-timeout:
			t.Fatalf("fabric.py: no lab after 120s:\n%s", stderr.String())
		}
	}
}

// host is a Mininet host reached through its named netns.
type fabricHost struct {
	t    *testing.T
	name string
	ns   string
	intf string
	mac  string
	port string
	sw   string
}

func (l *fabricLab) host(t *testing.T, short string) *fabricHost {
	h, ok := l.Hosts[l.Prefix+short]
	if !ok {
		t.Fatalf("no host %s in the lab", short)
	}
	return &fabricHost{t: t, name: short, ns: h.NetNS, intf: h.Intf, mac: h.MAC, port: h.Port, sw: h.Switch}
}

func (h *fabricHost) execErr(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.ns}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (h *fabricHost) exec(args ...string) string {
	h.t.Helper()
	out, err := h.execErr(args...)
	if err != nil {
		h.t.Fatalf("%s: %v: %v\n%s", h.name, args, err, out)
	}
	return out
}

var fabricPingRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

func (h *fabricHost) ping(dst string, count int, extra ...string) (sent, received int, out string) {
	args := append([]string{"ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2"}, extra...)
	out, _ = h.execErr(append(args, dst)...)
	if m := fabricPingRE.FindStringSubmatch(out); m != nil {
		sent, _ = strconv.Atoi(m[1])
		received, _ = strconv.Atoi(m[2])
	}
	return sent, received, out
}

// dhcp runs a real DHCP client (busybox udhcpc) on the host's interface
// and returns the leased address and MTU option.
func (h *fabricHost) dhcp(dir string) (ip, mtu string) {
	h.t.Helper()
	return hvlab.Lease(h.t, h.ns, h.intf, dir)
}

// Datapath ids of fabric lab switches: base+1, base+2, ...
const fabricDPIDBase = 0xfab000

// fabricDump logs every switch's flows (for failures).
func fabricDump(t *testing.T, lab *fabricLab) {
	for name := range lab.Switches {
		out, _ := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", name).CombinedOutput()
		t.Logf("flows of %s:\n%s", name, out)
	}
}

// TestFabricIsolation runs the controller against plain Mininet switches
// (fabric mode): links found by LLDP, two tenants' VLAN networks on the
// same 10.0.0.0/24 created through the API, ports bound by
// binding:profile port_name. It checks DHCP, same-tenant pings, tenant
// isolation, a broadcast reaching each same-tenant host exactly once (no
// loop even on a ring) and no other tenant, ARP answered on the ingress
// switch (no ARP on fabric links, which carry only the network's tag),
// anti-spoofing, the DHCP MTU, and on the ring a link cut while pinging.
func TestFabricIsolation(t *testing.T) {
	ovslab.RequireE2E(t)
	ovslab.RequireMininet(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topo string
		// hosts: tenant A's pair and tenant B's pair
		a1, a2, b1, b2 string
		links          int
		cut            bool
	}{
		// tree,2,2: s1 root, h1 h2 on s2, h3 h4 on s3.
		{topo: "tree,2,2", a1: "h1", a2: "h3", b1: "h2", b2: "h4", links: 2},
		// ring,4: s1..s4 in a loop, hN on sN; h1 and h3 are two equal
		// paths apart.
		{topo: "ring,4", a1: "h1", a2: "h3", b1: "h2", b2: "h4", links: 4, cut: true},
	} {
		t.Run(tc.topo, func(t *testing.T) {
			c := startController(t, "--lldp-interval", "250ms")
			lab := startFabric(t, tc.topo, fabricDPIDBase, c.OF)
			waitFor(t, 30*time.Second, "LLDP links in the store", func() bool {
				return c.metric("nimbus_fabric_links", "") == float64(2*tc.links)
			})
			nb := neutron{t: t, api: c.API}
			type tenant struct{ project, net, subnet string }
			mk := func(project string, vlan int) tenant {
				n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-" + project, "project_id": project,
					"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": vlan}})
				s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
					"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
				if mtu, _ := n["mtu"].(float64); mtu != 1500 {
					t.Errorf("VLAN network mtu %v, want 1500", n["mtu"])
				}
				return tenant{project, n["id"].(string), s["id"].(string)}
			}
			ta, tb := mk("tenant-a", 101), mk("tenant-b", 102)
			hosts := map[string]*fabricHost{}
			ips := map[string]string{tc.a1: "10.0.0.11", tc.a2: "10.0.0.13", tc.b1: "10.0.0.11", tc.b2: "10.0.0.14"}
			for name, tn := range map[string]tenant{tc.a1: ta, tc.a2: ta, tc.b1: tb, tc.b2: tb} {
				h := lab.host(t, name)
				nb.post("ports", map[string]any{"port": map[string]any{"network_id": tn.net, "project_id": tn.project,
					"name": name, "mac_address": h.mac, "binding:profile": map[string]any{"port_name": h.port},
					"fixed_ips": []any{map[string]any{"subnet_id": tn.subnet, "ip_address": ips[name]}}}})
				hosts[name] = h
			}
			a1, a2, b1, b2 := hosts[tc.a1], hosts[tc.a2], hosts[tc.b1], hosts[tc.b2]

			if !t.Run("dhcp", func(t *testing.T) {
				dir := t.TempDir()
				for name, h := range hosts {
					h.t = t
					ip, mtu := h.dhcp(dir)
					if ip != ips[name] || mtu != "1500" {
						t.Errorf("%s (%s on %s) leased %s mtu %s, want %s mtu 1500", name, h.port, h.sw, ip, mtu, ips[name])
					}
				}
			}) {
				fabricDump(t, lab)
				t.FailNow()
			}
			for _, h := range hosts {
				h.t = t
			}

			t.Run("same tenant", func(t *testing.T) {
				for _, p := range []struct {
					h  *fabricHost
					to string
				}{{a1, "10.0.0.13"}, {a2, "10.0.0.11"}, {b1, "10.0.0.14"}, {b2, "10.0.0.11"}} {
					if s, r, out := p.h.ping(p.to, 3); s == 0 || r != s {
						t.Errorf("%s -> %s: %d/%d\n%s", p.h.name, p.to, r, s, out)
					}
				}
				if neigh := a2.exec("ip", "neigh", "show", "10.0.0.11"); !strings.Contains(neigh, a1.mac) {
					t.Errorf("%s resolved 10.0.0.11 to %q, want %s's %s (not the other tenant's)", a2.name, neigh, a1.name, a1.mac)
				}
			})
			t.Run("tenants isolated", func(t *testing.T) {
				if _, r, _ := a1.ping("10.0.0.14", 2); r != 0 {
					t.Errorf("tenant A reached tenant B's 10.0.0.14")
				}
				if _, r, _ := b1.ping("10.0.0.13", 2); r != 0 {
					t.Errorf("tenant B reached tenant A's 10.0.0.13")
				}
			})
			t.Run("broadcast once, own tenant only", func(t *testing.T) {
				// An ARP for an address nobody has floods: it must reach
				// a2 exactly as often as a1 sent it (once per request,
				// even on a ring) and never tenant B.
				sent := hvlab.Tcpdump(t, a1.ns, a1.intf, "arp and arp[24:4] = 0x0a0000c8")
				got := hvlab.Tcpdump(t, a2.ns, a2.intf, "arp and arp[24:4] = 0x0a0000c8")
				other := hvlab.Tcpdump(t, b2.ns, b2.intf, "arp")
				a1.ping("10.0.0.200", 1, "-W", "1")
				time.Sleep(300 * time.Millisecond)
				ns, ng, no := len(sent.Stop()), len(got.Stop()), len(other.Stop())
				if ns == 0 || ng != ns {
					t.Errorf("%s sent %d ARP requests for 10.0.0.200, %s received %d (want the same, > 0)", a1.name, ns, a2.name, ng)
				}
				if no != 0 {
					t.Errorf("tenant B's %s saw %d ARP frames", b2.name, no)
				}
			})
			t.Run("ARP answered locally, links tagged", func(t *testing.T) {
				a1.exec("ip", "neigh", "flush", "dev", a1.intf)
				var caps []*hvlab.Capture
				for _, l := range lab.Links {
					caps = append(caps, hvlab.Tcpdump(t, "", l[0], ""))
				}
				if s, r, out := a1.ping("10.0.0.13", 2); s == 0 || r != s {
					t.Errorf("%s -> 10.0.0.13: %d/%d\n%s", a1.name, r, s, out)
				}
				var icmp int
				for _, c := range caps {
					for _, line := range c.Stop() {
						if strings.Contains(line, "ARP") && strings.Contains(line, "10.0.0.") {
							t.Errorf("VM ARP on a fabric link: %s", line)
						}
						if strings.Contains(line, "ICMP") {
							icmp++
							if !strings.Contains(line, "vlan 101") {
								t.Errorf("tenant A's ICMP on a fabric link without tag 101: %s", line)
							}
						}
					}
				}
				if icmp == 0 {
					t.Errorf("no ICMP seen on any fabric link (the capture saw nothing)")
				}
			})
			t.Run("spoofed source dropped", func(t *testing.T) {
				a1.exec("ip", "addr", "add", "10.0.0.99/32", "dev", a1.intf)
				defer a1.execErr("ip", "addr", "del", "10.0.0.99/32", "dev", a1.intf)
				capt := hvlab.Tcpdump(t, a2.ns, a2.intf, "icmp and src host 10.0.0.99")
				_, r, _ := a1.ping("10.0.0.13", 3, "-I", "10.0.0.99")
				if lines := capt.Stop(); len(lines) != 0 || r != 0 {
					t.Errorf("spoofed packets reached %s (%d answered):\n%s", a2.name, r, strings.Join(lines, "\n"))
				}
			})
			t.Run("mtu", func(t *testing.T) {
				if s, r, out := a1.ping("10.0.0.13", 2, "-M", "do", "-s", "1472"); s == 0 || r != s {
					t.Errorf("1500-byte packets (DHCP MTU) with DF: %d/%d\n%s", r, s, out)
				}
				if _, r, _ := a1.ping("10.0.0.13", 2, "-M", "do", "-s", "1473"); r != 0 {
					t.Errorf("1501-byte packets with DF got through")
				}
			})
			t.Run("forged LLDP from a tenant ignored", func(t *testing.T) {
				// a1 claims, by LLDP, that its port is linked to b2's
				// switch port: discovery must not record it.
				var other uint64
				for name, d := range lab.Switches {
					if name != a1.sw {
						other, _ = strconv.ParseUint(d, 16, 64)
						break
					}
				}
				frame := hex.EncodeToString(topology.LLDPFrame(other, 1, 0x02000000beef, nil))
				py := fmt.Sprintf("import socket,binascii,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((%q,0))\n"+
					"for _ in range(5):\n    s.send(binascii.unhexlify(%q)); time.sleep(0.1)\n", a1.intf, frame)
				a1.exec("python3", "-c", py)
				time.Sleep(time.Second)
				if got := c.metric("nimbus_fabric_links", ""); got != float64(2*tc.links) {
					t.Errorf("links in the store after a forged LLDP: %v, want %d", got, 2*tc.links)
				}
			})
			if tc.cut {
				var cut [2]string
				t.Run("link cut while pinging", func(t *testing.T) { cut = fabricCut(t, lab, a1, "10.0.0.13") })
				t.Run("switch removed", func(t *testing.T) { fabricRemoveSwitch(t, lab, c, a1, cut) })
			}
			if t.Failed() {
				fabricDump(t, lab)
			}
		})
	}
}

// fabricCut pings dst from h every 10 ms, cuts the first link on the
// path in the middle, and checks that replies resume on another path.
func fabricCut(t *testing.T, lab *fabricLab, h *fabricHost, dst string) (cut [2]string) {
	// The path's first hop: where h's switch sends frames for dst's MAC.
	mac := ""
	if out, err := h.execErr("ip", "neigh", "show", dst); err == nil {
		if f := strings.Fields(out); len(f) >= 5 {
			mac = f[4]
		}
	}
	if mac == "" {
		t.Fatalf("%s has no neighbour entry for %s", h.name, dst)
	}
	out, _ := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", h.sw, "dl_dst="+mac).CombinedOutput()
	m := regexp.MustCompile(`push_vlan.*output:(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no tagged unicast flow toward %s on %s:\n%s", mac, h.sw, out)
	}
	egress := fmt.Sprintf("%s-eth%s", h.sw, m[1])
	var peer string
	for _, l := range lab.Links {
		if l[0] == egress {
			peer = l[1]
		} else if l[1] == egress {
			peer = l[0]
		}
	}
	if peer == "" {
		t.Fatalf("%s is not a fabric link (links %v)", egress, lab.Links)
	}
	cut = [2]string{egress, peer}
	cmd := exec.Command("ip", "netns", "exec", h.ns, "ping", "-n", "-i", "0.01", "-c", "500", "-W", "1", dst)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "set", egress, "up").Run()
		exec.Command("ip", "link", "set", peer, "up").Run()
	})
	var replies []int
	lines := make(chan int, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`icmp_seq=(\d+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				lines <- n
			}
		}
	}()
	cutAt := -1
	for n := range lines {
		replies = append(replies, n)
		if cutAt < 0 && n >= 100 {
			cutAt = n
			exec.Command("ip", "link", "set", egress, "down").Run()
			exec.Command("ip", "link", "set", peer, "down").Run()
			t.Logf("cut %s <-> %s after reply %d", egress, peer, n)
		}
	}
	cmd.Wait()
	after := 0
	for _, n := range replies {
		if n > cutAt {
			after++
		}
	}
	lost := 500 - len(replies)
	t.Logf("link cut: %d of 500 answered, %d lost (%.0f ms at 10 ms per ping), %d answered after the cut", len(replies), lost, float64(lost)*10, after)
	if cutAt < 0 {
		t.Fatalf("never reached 100 replies before the cut (%d replies)", len(replies))
	}
	if after == 0 || replies[len(replies)-1] < 480 {
		t.Errorf("pings did not resume after the cut: %d replies after seq %d, last seq %d", after, cutAt, replies[len(replies)-1])
	}
	out, _ = exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", h.sw, "dl_dst="+mac).CombinedOutput()
	if m2 := regexp.MustCompile(`push_vlan.*output:(\d+)`).FindStringSubmatch(string(out)); m2 == nil || m2[1] == m[1] {
		t.Errorf("after the cut %s does not send %s another way (was %s):\n%s", h.sw, mac, egress, out)
	}
	return cut
}

// fabricRemoveSwitch deletes the switch at the far end of the cut link
// (off the rerouted path): the links into it, which no master sweeps any
// more, are collected from the store, and h still reaches 10.0.0.13.
func fabricRemoveSwitch(t *testing.T, lab *fabricLab, c *controller, h *fabricHost, cut [2]string) {
	if cut[1] == "" {
		t.Skip("no link was cut")
	}
	sw, _, _ := strings.Cut(cut[1], "-eth")
	if sw == h.sw {
		t.Fatalf("the cut link's far end %s is the pinging host's switch", cut[1])
	}
	want := 0
	for _, l := range lab.Links {
		if (l[0] == cut[0] && l[1] == cut[1]) || (l[0] == cut[1] && l[1] == cut[0]) ||
			strings.HasPrefix(l[0], sw+"-") || strings.HasPrefix(l[1], sw+"-") {
			continue
		}
		want += 2
	}
	if out, err := exec.Command("ovs-vsctl", "del-br", sw).CombinedOutput(); err != nil {
		t.Fatalf("del-br %s: %v %s", sw, err, out)
	}
	// Links from the removed switch expire at their receiving switches
	// (one link timeout); links into it are collected by the sending side
	// after ten.
	waitFor(t, 60*time.Second, fmt.Sprintf("%d link records after removing %s", want, sw), func() bool {
		return c.metric("nimbus_fabric_links", "") == float64(want)
	})
	if s, r, out := h.ping("10.0.0.13", 3); s == 0 || r != s {
		t.Errorf("%s -> 10.0.0.13 after removing %s: %d/%d\n%s", h.name, sw, r, s, out)
	}
}

// TestFabricFailover runs three replicas on a ring,4 fabric, pings
// between two tenant hosts every 10 ms and kill -9s the replica that
// masters the first host's switch: no ping is lost, the links stay in
// etcd (the new master counts them as just seen), and no flow on that
// switch is re-added.
func TestFabricFailover(t *testing.T) {
	ovslab.RequireE2E(t)
	ovslab.RequireMininet(t)
	etcd := etcdtest.Start(t, 1)
	var cs []*controller
	var targets []string
	for i := 1; i <= 3; i++ {
		c := startController(t, "--etcd-endpoints", strings.Join(etcd.Endpoints(), ","), "--replica-id", fmt.Sprintf("r%d", i),
			"--lldp-interval", "250ms")
		cs = append(cs, c)
		targets = append(targets, c.OF)
	}
	lab := startFabric(t, "ring,4", fabricDPIDBase, targets...)
	dpids := labDPIDs(fabricDPIDBase, 4)
	waitSettled(t, cs, dpids)
	waitFor(t, 30*time.Second, "8 link records", func() bool { return cs[0].metric("nimbus_fabric_links", "") == 8 })

	nb := neutron{t: t, api: cs[0].API}
	n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-a", "project_id": "tenant-a",
		"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 101}})
	sub := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": "tenant-a",
		"cidr": "10.0.0.0/24", "ip_version": 4}})
	h1, h3 := lab.host(t, "h1"), lab.host(t, "h3")
	for _, h := range []*fabricHost{h1, h3} {
		nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": "tenant-a",
			"mac_address": h.mac, "binding:profile": map[string]any{"port_name": h.port},
			"fixed_ips": []any{map[string]any{"subnet_id": sub["id"]}}}})
	}
	dir := t.TempDir()
	h1.dhcp(dir)
	ip3, _ := h3.dhcp(dir)
	if s, r, out := h1.ping(ip3, 2); s == 0 || r != s {
		fabricDump(t, lab)
		t.Fatalf("h1 -> h3 before the failover: %d/%d\n%s", r, s, out)
	}

	t.Run("forged LLDP flood from an unbound port", func(t *testing.T) {
		// h2 is bound to no Neutron port, so its port has no guard: its
		// frames reach the discovery punt. They carry no valid
		// authenticator (the key is the cluster's secret in etcd), so no
		// link appears, and the punt's meter (1000 pkt/s per switch) lets
		// only part of a burst reach the controller.
		h2 := lab.host(t, "h2")
		malformed := func() float64 {
			var n float64
			for _, c := range cs {
				n += c.metric("nimbus_lldp_malformed_total", "")
			}
			return n
		}
		before := malformed()
		const burst = 3000
		frame := hex.EncodeToString(topology.LLDPFrame(fabricDPIDBase+3, 2, 0x02000000beef, nil))
		py := fmt.Sprintf("import socket,binascii\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((%q,0))\n"+
			"f=binascii.unhexlify(%q)\nfor _ in range(%d):\n    s.send(f)\n", h2.intf, frame, burst)
		h2.exec("python3", "-c", py)
		time.Sleep(time.Second)
		got := malformed() - before
		t.Logf("%d forged LLDP frames sent from %s: %v reached the controller", burst, h2.name, got)
		if got == 0 || got > burst/2 {
			t.Errorf("%v of %d forged frames reached the controller: want some (the punt works) and well under half (the meter)", got, burst)
		}
		if n := cs[0].metric("nimbus_fabric_links", ""); n != 8 {
			t.Errorf("links after forged frames: %v, want 8", n)
		}
	})

	dpid := fmt.Sprintf("%016x", fabricDPIDBase+1) // h1's switch
	old, gen := masterOf(t, cs, dpid)
	if old == nil {
		t.Fatalf("no master for %s", dpid)
	}
	br := bridgeByDPID(t, dpid)
	before := durations(t, br)
	cmd := exec.Command("ip", "netns", "exec", h1.ns, "ping", "-n", "-q", "-i", "0.01", "-c", "600", "-W", "1", ip3)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	old.Signal(syscall.SIGKILL)
	cmd.Wait()
	m := fabricPingRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("ping output: %s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	t.Logf("killed %s (master of %s, generation %d): %d sent, %d received", old.id(), dpid, gen, sent, recv)
	if sent == 0 || recv != sent {
		t.Errorf("pings lost across the failover: sent %d received %d", sent, recv)
	}
	nm, ngen := masterOf(t, cs, dpid)
	if nm == nil || nm == old || ngen <= gen {
		t.Errorf("after the failover master=%v generation %d (was %d)", nm, ngen, gen)
	}
	var survivor *controller
	for _, c := range cs {
		if c != old {
			survivor = c
		}
	}
	if got := survivor.metric("nimbus_fabric_links", ""); got != 8 {
		t.Errorf("links in the store after the failover: %v, want 8", got)
	}
	checkNotReadded(t, br, before, time.Since(t0))
	if t.Failed() {
		fabricDump(t, lab)
	}
}
