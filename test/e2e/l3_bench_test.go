package e2e

import (
	"encoding/json"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestL3Bench measures, in the overlay lab, (1) routed TCP throughput
// (iperf3, two subnets of one router, two hypervisors) against
// same-subnet L2 throughput between the same two hypervisors, in
// alternating runs, as the ratio of the medians; (2) router interface add
// -> first routed ping, p50 and p99. It only reports figures (t.Logf);
// it fails on broken behaviour, never on a speed. Run it with
// `make bench-l3` (NIMBUS_E2E=1 NIMBUS_BENCH=1); NIMBUS_BENCH_ROUNDS
// (default 5) iperf3 runs of NIMBUS_BENCH_SECONDS (default 5) per path,
// NIMBUS_BENCH_SAMPLES (default 20) interface adds.
func TestL3Bench(t *testing.T) {
	hvlab.RequireE2E(t)
	if os.Getenv("NIMBUS_BENCH") != "1" {
		t.Skip("benchmark: set NIMBUS_BENCH=1 (make bench-l3)")
	}
	envInt := func(k string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
		return def
	}
	rounds, secs, samples := envInt("NIMBUS_BENCH_ROUNDS", 5), envInt("NIMBUS_BENCH_SECONDS", 5), envInt("NIMBUS_BENCH_SAMPLES", 20)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	env := startOverlay(t, hvlab.Options{}, nil)
	l, hvs, nb := env.l, env.hvs, env.nb
	const proj = "tenant-l3bench"
	subnet := func(cidr, gw string) (string, string) {
		n := nb.post("networks", map[string]any{"network": map[string]any{"name": "net-" + cidr, "project_id": proj, "provider:network_type": "gre"}})
		s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": proj,
			"cidr": cidr, "ip_version": 4, "gateway_ip": gw}})
		return n["id"].(string), s["id"].(string)
	}
	n1, s1 := subnet("10.0.1.0/24", "10.0.1.1")
	n2, s2 := subnet("10.0.2.0/24", "10.0.2.1")
	rid := nb.post("routers", map[string]any{"router": map[string]any{"name": "r-bench", "project_id": proj}})["id"].(string)
	for _, s := range []string{s1, s2} {
		nb.put("routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": s})
	}
	// a on hypervisor 1; c (same subnet) and b (the other subnet) on
	// hypervisor 2.
	specs := []struct {
		name, net, sub, ip string
		hv                 *hvlab.Hypervisor
	}{{"a", n1, s1, "10.0.1.11", hvs[0]}, {"c", n1, s1, "10.0.1.12", hvs[1]}, {"b", n2, s2, "10.0.2.12", hvs[1]}}
	vms := map[string]*hvlab.VM{}
	dir := t.TempDir()
	for _, s := range specs {
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": s.net, "project_id": proj,
			"name": s.name, "binding:host_id": s.hv.Name(),
			"fixed_ips": []any{map[string]any{"subnet_id": s.sub, "ip_address": s.ip}}}})
		vms[s.name] = l.AddVM(t, s.hv, p["id"].(string), p["mac_address"].(string), "")
	}
	for _, s := range specs {
		if ip, _ := hvlab.Lease(t, vms[s.name].NS(), "eth0", dir); ip != s.ip {
			t.Fatalf("%s leased %s, want %s", s.name, ip, s.ip)
		}
		vms[s.name].Exec("ethtool", "-K", "eth0", "tx", "off") // as TestL3EastWest (userspace conntrack)
	}
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	a, b, c := vms["a"], vms["b"], vms["c"]
	for _, dst := range []string{"10.0.1.12", "10.0.2.12"} {
		dst := dst
		waitFor(t, 30*time.Second, "a reaches "+dst, func() bool {
			_, err := a.ExecErr("ping", "-n", "-c", "1", "-W", "1", dst)
			return err == nil
		})
	}

	t.Run("throughput", func(t *testing.T) {
		for _, vm := range []*hvlab.VM{b, c} {
			srv := ovslab.StartProcess(t, "ip", []string{"netns", "exec", vm.NS(), "iperf3", "-s", "--forceflush"}, nil)
			srv.WaitLog("Server listening", 10*time.Second)
		}
		run := func(dst string) float64 {
			out, err := a.ExecErr("iperf3", "-c", dst, "-t", strconv.Itoa(secs), "-J")
			var r struct {
				End struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.End.SumReceived.BitsPerSecond == 0 {
				t.Fatalf("iperf3 -c %s: %v\n%s", dst, err, out)
			}
			return r.End.SumReceived.BitsPerSecond / 1e6
		}
		var l2, l3 []float64
		for i := 0; i < rounds; i++ {
			l2 = append(l2, run("10.0.1.12"))
			l3 = append(l3, run("10.0.2.12"))
		}
		ml2, ml3 := median(l2), median(l3)
		t.Logf("L2 same subnet (a hv1 -> c hv2), Mbit/s: %s; median %.0f", fmtList(l2), ml2)
		t.Logf("routed (a hv1 10.0.1.0/24 -> b hv2 10.0.2.0/24), Mbit/s: %s; median %.0f", fmtList(l3), ml3)
		t.Logf("routed / L2 = %.2f (%d alternating runs of %d s each)", ml3/ml2, rounds, secs)
	})

	t.Run("interface add to first routed ping", func(t *testing.T) {
		stamp := regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from 10\.0\.2\.12`)
		var lat []time.Duration
		arpRetried := map[time.Duration]bool{}
		for i := 0; i < samples; i++ {
			nb.put("routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": s2})
			waitFor(t, 30*time.Second, "10.0.2.12 unreachable after the interface went", func() bool {
				_, err := a.ExecErr("ping", "-n", "-c", "1", "-W", "1", "10.0.2.12")
				return err != nil
			})
			b.Exec("ip", "neigh", "flush", "dev", "eth0") // the new interface has a new MAC
			pinger := ovslab.StartProcess(t, "ip", []string{"netns", "exec", a.NS(), "stdbuf", "-oL",
				"ping", "-n", "-D", "-i", "0.005", "-W", "1", "10.0.2.12"}, nil)
			// b's ARP for its (new) gateway, to tell the samples where
			// b's first request went unanswered (the kernel retries
			// after 1 s).
			arp := hvlab.Tcpdump(t, b.NS(), "eth0", "arp")
			time.Sleep(100 * time.Millisecond)
			t0 := time.Now()
			nb.put("routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": s2})
			var first time.Time
			waitFor(t, 30*time.Second, "first routed reply", func() bool {
				for _, line := range strings.Split(pinger.Log(), "\n") {
					if m := stamp.FindStringSubmatch(line); m != nil {
						f, _ := strconv.ParseFloat(m[1], 64)
						if ts := time.Unix(0, int64(f*1e9)); ts.After(t0) {
							first = ts
							return true
						}
					}
				}
				return false
			})
			pinger.Kill()
			reqs := 0
			for _, line := range arp.Stop() {
				if strings.Contains(line, "Request who-has 10.0.2.1 tell 10.0.2.12") { // b's own, not the gratuitous ARPs
					reqs++
				}
			}
			lat = append(lat, first.Sub(t0))
			arpRetried[first.Sub(t0)] = reqs > 1
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p := func(q float64) time.Duration { return lat[int(math.Ceil(q*float64(len(lat))))-1] }
		t.Logf("router interface add -> first routed ping (%d samples, ping every 5 ms): p50 %v, p99 %v, min %v, max %v; all: %v",
			len(lat), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[0].Round(time.Millisecond),
			lat[len(lat)-1].Round(time.Millisecond), lat)
		var retried []time.Duration
		for _, d := range lat {
			if arpRetried[d] {
				retried = append(retried, d.Round(time.Millisecond))
			}
		}
		t.Logf("samples where b sent more than one ARP request for its gateway: %d: %v", len(retried), retried)
	})
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(xs []float64) string {
	var out []string
	for _, x := range xs {
		out = append(out, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(out, " ")
}
