package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// iperf runs a 5 s iperf3 TCP test from client to an iperf3 server at ip
// and returns the received rate in Gbit/s.
func iperf(t *testing.T, client *hvlab.VM, ip string) float64 {
	t.Helper()
	out, err := client.ExecErr("iperf3", "-c", ip, "-t", "5", "-J")
	if err != nil {
		t.Fatalf("iperf3 -> %s: %v\n%s", ip, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9
}

// inNetns runs fn on an OS thread moved into the network namespace ns
// (an `ip netns` name). Sockets fn opens belong to that namespace and
// work from any goroutine afterwards. The thread is moved back before it
// is unlocked: a locked thread that ends is terminated by Go, and the
// lab's daemons (started with Pdeathsig from whichever thread forked
// them) would be killed with it.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("e2e: setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// Neither reuse this thread nor let it end: park it.
			errc <- errors.Join(ferr, fmt.Errorf("e2e: setns back from %s: %w", ns, err))
			select {}
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// probe is a UDP stream from a client VM to a server VM's port, one
// datagram every 2 ms, and the server-side socket that notes when the
// first datagram arrives.
type probe struct {
	what  string
	send  *net.UDPConn
	recv  *net.UDPConn
	first chan time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startProbe(t *testing.T, what string, client, server *hvlab.VM, serverIP string, port int) *probe {
	t.Helper()
	p := &probe{what: what, first: make(chan time.Time, 1), stop: make(chan struct{})}
	if err := inNetns(server.NS(), func() (err error) {
		p.recv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := inNetns(client.NS(), func() (err error) {
		p.send, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(serverIP), Port: port})
		return err
	}); err != nil {
		p.recv.Close()
		t.Fatal(err)
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 64)
		for {
			if _, _, err := p.recv.ReadFromUDP(buf); err != nil {
				return
			}
			select {
			case p.first <- time.Now():
			default:
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
				_, _ = p.send.Write([]byte("probe"))
			}
		}
	}()
	return p
}

func (p *probe) close() {
	close(p.stop)
	p.send.Close()
	p.recv.Close()
	p.wg.Wait()
}

// TestSecurityGroupPerformance is a benchmark (NIMBUS_BENCH=1 with
// NIMBUS_E2E=1; figures in docs/benchmarks.md, logged, never judged). In
// one 3-hypervisor GRE lab:
//
//   - TCP throughput hv0 -> hv1 between two VMs in a group of 100 rules
//     against two VMs with port security off (and two in a group of 3
//     rules, to tell rules from conntrack), 7 alternating 5 s iperf3
//     runs each: medians, their ratios, and the spread.
//   - Rule add -> enforced on every hypervisor holding the group, by
//     traffic: UDP probes (one datagram every 5 ms) to a fresh port of
//     the group's VMs on hv0, hv1 and hv2 are dropped until the rule
//     allowing that port is posted; the latency of a hypervisor is the
//     first datagram that arrives. 25 rules, p50 and p99 of the slowest
//     hypervisor.
func TestSecurityGroupPerformance(t *testing.T) {
	hvlab.RequireE2E(t)
	if os.Getenv("NIMBUS_BENCH") != "1" {
		t.Skip("benchmark: set NIMBUS_BENCH=1 (with NIMBUS_E2E=1) to run it")
	}
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"ethtool", "iperf3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not installed: run scripts/deps.sh", bin)
		}
	}
	env := startOverlay(t, hvlab.Options{}, nil)
	l, hvs, c, nb := env.l, env.hvs, env.c, env.nb
	t.Cleanup(func() {
		if t.Failed() {
			for _, hv := range hvs {
				out, _ := exec.Command("sh", "-c", "tail -n 20 "+l.Dir()+"/"+hv.Name()+"/ovs-vswitchd.log").CombinedOutput()
				t.Logf("%s ovs-vswitchd.log:\n%s", hv.Name(), out)
				ns := "OVS_RUNDIR=" + l.Dir() + "/" + hv.Name() + " ip netns exec " + l.Prefix() + "-" + hv.Name() + " "
				dp, _ := exec.Command("sh", "-c", ns+"ovs-appctl dpctl/dump-flows 2>&1 | head -40").CombinedOutput()
				t.Logf("%s dpctl/dump-flows:\n%s", hv.Name(), dp)
				of, _ := exec.Command("sh", "-c", ns+"ovs-ofctl -O OpenFlow13 dump-flows br-int 2>&1 | grep -v n_packets=0, | head -60").CombinedOutput()
				t.Logf("%s ofctl dump-flows (hit):\n%s", hv.Name(), of)
			}
		}
	})
	const project = "sg-perf"
	nbPut(t, c.API, "quotas/"+project, map[string]any{"quota": map[string]any{"security_group_rule": 1000}})
	n := nb.post("networks", map[string]any{"network": map[string]any{"name": "perf-net", "project_id": project, "provider:network_type": "gre"}})
	s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
		"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
	g := nb.post("security-groups", map[string]any{"security_group": map[string]any{"name": "perf", "project_id": project}})
	gid := g["id"].(string)
	// A second group with only iperf3's rule (and the 2 egress rules every
	// group starts with): separates the cost of 100 rules from the cost of
	// conntrack itself.
	g1 := nb.post("security-groups", map[string]any{"security_group": map[string]any{"name": "perf-1", "project_id": project}})
	nb.post("security-group-rules", map[string]any{"security_group_rule": map[string]any{"security_group_id": g1["id"],
		"project_id": project, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 5201, "port_range_max": 5201}})
	rule := func(proto string, min, max int) string {
		r := nb.post("security-group-rules", map[string]any{"security_group_rule": map[string]any{"security_group_id": gid,
			"project_id": project, "direction": "ingress", "ethertype": "IPv4", "protocol": proto, "port_range_min": min, "port_range_max": max}})
		return r["id"].(string)
	}
	// 2 egress rules come with the group; iperf3's port and 97 others
	// (ranges of 2: several port masks each).
	rule("tcp", 5201, 5201)
	for i := 0; i < 97; i++ {
		rule("tcp", 10000+3*i, 10001+3*i)
	}
	type spec struct {
		name, ip string
		hv       *hvlab.Hypervisor
		extra    map[string]any
	}
	specs := []spec{
		{"f1", "10.0.0.11", hvs[0], map[string]any{"security_groups": []string{gid}}},
		{"f2", "10.0.0.12", hvs[1], map[string]any{"security_groups": []string{gid}}},
		{"f3", "10.0.0.13", hvs[2], map[string]any{"security_groups": []string{gid}}},
		{"u1", "10.0.0.21", hvs[0], map[string]any{"port_security_enabled": false}},
		{"u2", "10.0.0.22", hvs[1], map[string]any{"port_security_enabled": false}},
		{"c1", "10.0.0.31", hvs[0], map[string]any{"security_groups": []any{g1["id"]}}},
		{"c2", "10.0.0.32", hvs[1], map[string]any{"security_groups": []any{g1["id"]}}},
	}
	vms := map[string]*hvlab.VM{}
	for _, sp := range specs {
		body := map[string]any{"network_id": n["id"], "project_id": project, "name": sp.name, "binding:host_id": sp.hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": sp.ip}}}
		for k, v := range sp.extra {
			body[k] = v
		}
		p := nb.post("ports", map[string]any{"port": body})
		vms[sp.name] = l.AddVM(t, sp.hv, p["id"].(string), p["mac_address"].(string), "")
	}
	dir := t.TempDir()
	for _, sp := range specs {
		vm := vms[sp.name].For(t)
		if ip, _ := hvlab.Lease(t, vm.NS(), "eth0", dir); ip != sp.ip {
			t.Fatalf("%s leased %s, want %s", sp.name, ip, sp.ip)
		}
		vm.Exec("ethtool", "-K", "eth0", "tx", "off")
	}
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	for _, hv := range hvs {
		out := hv.Ofctl("dump-flows", "br-int")
		t.Logf("%s: %d flows in br-int, %d conjunction actions (group of 100 rules)", hv.Name(),
			strings.Count(out, "\n")-1, strings.Count(out, "conjunction("))
	}

	// Rule add -> enforced on hv0, hv1 and hv2, by traffic.
	const adds = 25
	var worst []time.Duration
	perHV := map[string][]time.Duration{}
	for i := 0; i < adds; i++ {
		port := 30000 + i
		probes := []*probe{
			startProbe(t, "hv0 (u2 -> f1)", vms["u2"], vms["f1"], "10.0.0.11", port),
			startProbe(t, "hv1 (u1 -> f2)", vms["u1"], vms["f2"], "10.0.0.12", port),
			startProbe(t, "hv2 (u1 -> f3)", vms["u1"], vms["f3"], "10.0.0.13", port),
		}
		// Blocked before the rule.
		time.Sleep(300 * time.Millisecond)
		for _, p := range probes {
			select {
			case at := <-p.first:
				t.Fatalf("%s: udp/%d arrived at %v before its rule", p.what, port, at)
			default:
			}
		}
		start := time.Now()
		id := rule("udp", port, port)
		var slowest time.Duration
		for _, p := range probes {
			select {
			case at := <-p.first:
				d := at.Sub(start)
				perHV[p.what] = append(perHV[p.what], d)
				slowest = max(slowest, d)
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: udp/%d still blocked 30 s after its rule", p.what, port)
			}
		}
		worst = append(worst, slowest)
		for _, p := range probes {
			p.close()
		}
		nbDelete(t, c.API, "security-group-rules/"+id)
	}
	pct := func(v []time.Duration, q float64) time.Duration {
		w := append([]time.Duration{}, v...)
		sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
		k := int(q*float64(len(w))+0.5) - 1
		return w[max(0, min(k, len(w)-1))].Round(time.Millisecond)
	}
	var b strings.Builder
	for _, what := range []string{"hv0 (u2 -> f1)", "hv1 (u1 -> f2)", "hv2 (u1 -> f3)"} {
		fmt.Fprintf(&b, "  %s: p50 %v, p99 %v\n", what, pct(perHV[what], 0.5), pct(perHV[what], 0.99))
	}
	t.Logf("rule add (clock started just before the POST) -> first probe datagram through, %d rules:\n%s"+
		"  every hypervisor (the slowest of the 3 per rule): p50 %v, p99 %v (p99 of %d = the maximum)",
		adds, b.String(), pct(worst, 0.5), pct(worst, 0.99), adds)

	// Throughput: alternating runs, medians; the machine is shared.
	for _, name := range []string{"f2", "u2", "c2"} {
		srv := exec.Command("ip", "netns", "exec", vms[name].NS(), "iperf3", "-s")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	}
	time.Sleep(500 * time.Millisecond)
	const runs = 7
	var filtered, one, open, ratios []float64
	for i := 0; i < runs; i++ {
		o := iperf(t, vms["u1"].For(t), "10.0.0.22")
		f := iperf(t, vms["f1"].For(t), "10.0.0.12")
		c := iperf(t, vms["c1"].For(t), "10.0.0.32")
		open, filtered, one, ratios = append(open, o), append(filtered, f), append(one, c), append(ratios, f/o)
	}
	sorted := func(v []float64) []float64 { w := append([]float64{}, v...); sort.Float64s(w); return w }
	so, sf, s1, sr := sorted(open), sorted(filtered), sorted(one), sorted(ratios)
	t.Logf("throughput hv0 -> hv1 (GRE, userspace OVS), %d alternating 5 s iperf3 runs each:\n"+
		"  no security groups:     median %.2f Gbit/s (min %.2f, max %.2f) %.2f\n"+
		"  group of 100 rules:     median %.2f Gbit/s (min %.2f, max %.2f) %.2f\n"+
		"  group of 3 rules:       median %.2f Gbit/s (min %.2f, max %.2f) %.2f\n"+
		"  100 rules / no groups: ratio of medians %.3f; per-pair ratios min %.2f median %.2f max %.2f\n"+
		"  100 rules / 3 rules: ratio of medians %.3f; 3 rules / no groups: %.3f",
		runs, so[runs/2], so[0], so[runs-1], open, sf[runs/2], sf[0], sf[runs-1], filtered,
		s1[runs/2], s1[0], s1[runs-1], one,
		sf[runs/2]/so[runs/2], sr[0], sr[runs/2], sr[runs-1], sf[runs/2]/s1[runs/2], s1[runs/2]/so[runs/2])
}
