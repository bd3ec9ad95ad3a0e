package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// TestRestartHitless kills the controller (SIGKILL) and restarts it 2 s
// later under 10 ms pings between VMs on different hypervisors, with a GRE
// tenant and a VLAN tenant spanning all three. The controller keeps its
// etcd (an external one), the node agents keep running. Two variants of 10
// rounds each: every hypervisor reconnects as soon as the controller is
// back ("together"), or hv3's route to the controller's OpenFlow port is
// blackholed (an ip rule in its namespace; etcd stays reachable) for 3 s
// after the restart ("late"). Every round must lose no ping, send no
// flow-mod, group-mod or meter-mod (the restarted controller's reconcile
// counter and log), and keep every Nimbus flow in place (its OVS duration
// keeps growing across the restart).
func TestRestartHitless(t *testing.T) {
	hvlab.RequireE2E(t)
	rounds := 10
	if v, err := strconv.Atoi(os.Getenv("NIMBUS_RESTART_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	start := time.Now()
	env := startOverlay(t, hvlab.Options{Physnet: true}, []string{physnet},
		"--bridge-mappings", physnet+":"+hvlab.PhysnetBridge)
	l, hvs, nb, c := env.l, env.hvs, env.nb, env.c
	// The agents set the controller rows once: cap OVS's reconnect backoff
	// at 1 s so a restarted controller is found fast, and pin the tunnel
	// neighbours so the underlay's ARP never shows up as loss.
	for _, hv := range hvs {
		hv.Vsctl("set", "controller", "br-int", "max_backoff=1000")
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}

	// A GRE tenant and a VLAN tenant, one VM of each on every hypervisor
	// (static addresses: no DHCP needed). The GRE ports have no
	// binding:host_id: they are bound by their interface alone (the tap's
	// name and external_ids:iface-id), as a port plugged before Nova
	// reports the host is; the VLAN ports have one.
	type tenant struct{ project, net, subnet string }
	mk := func(project string, net map[string]any) *tenant {
		net["name"], net["project_id"] = "net-"+project, project
		n := nb.post("networks", map[string]any{"network": net})
		s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": project,
			"cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1"}})
		return &tenant{project: project, net: n["id"].(string), subnet: s["id"].(string)}
	}
	tg := mk("tenant-gre", map[string]any{"provider:network_type": "gre"})
	tv := mk("tenant-vlan", map[string]any{"provider:network_type": "vlan", "provider:physical_network": physnet,
		"provider:segmentation_id": 101})
	vms := map[string]*hvlab.VM{}
	for _, tn := range []struct {
		prefix string
		tn     *tenant
	}{{"g", tg}, {"v", tv}} {
		for i, hv := range hvs {
			name, ip := fmt.Sprintf("%s%d", tn.prefix, i+1), fmt.Sprintf("10.0.0.%d", 11+i)
			port := map[string]any{"network_id": tn.tn.net, "project_id": tn.tn.project, "name": name,
				"fixed_ips": []any{map[string]any{"subnet_id": tn.tn.subnet, "ip_address": ip}}}
			if tn.prefix == "v" {
				port["binding:host_id"] = hv.Name()
			}
			p := nb.post("ports", map[string]any{"port": port})
			vms[name] = l.AddVM(t, hv, p["id"].(string), p["mac_address"].(string), ip+"/24")
		}
	}
	// Pairs that cross hypervisors, each tenant reaching hv3 (the late one).
	pairs := []struct{ from, to string }{{"g1", "g3"}, {"g2", "g1"}, {"v1", "v3"}, {"v3", "v2"}}
	waitFor(t, 30*time.Second, "every pair pings", func() bool {
		for _, p := range pairs {
			if s, r := vms[p.from].For(t).Ping(vms[p.to].IP(), 1, 0, false); r != s {
				return false
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "flows settled", func() bool {
		a := nimbusFlows(t, hvs)
		time.Sleep(time.Second)
		b := nimbusFlows(t, hvs)
		return sameKeys(a, b)
	})
	t.Logf("timing: lab, tenants, VMs %v", time.Since(start).Round(time.Millisecond))

	ofPort := c.OF[strings.LastIndex(c.OF, ":")+1:]
	late := hvs[2]
	// hold blackholes late's TCP to the controller's OpenFlow port (etcd,
	// on another port, stays reachable).
	rule := []string{"ipproto", "tcp", "dport", ofPort, "blackhole"}
	hold := func() { late.Exec(append([]string{"ip", "rule", "add"}, rule...)...) }
	release := func() { late.Exec(append([]string{"ip", "rule", "del"}, rule...)...) }
	held := false
	t.Cleanup(func() {
		if held {
			late.ExecErr(append([]string{"ip", "rule", "del"}, rule...)...)
		}
	})

	type result struct {
		lost, sent []int
		flowMods   float64
		reconciled int
		readded    int
		converge   time.Duration // restart to every switch converged
	}
	round := func(t *testing.T, lateBy time.Duration) result {
		before, beforeAt := nimbusFlows(t, hvs), time.Now()
		// 10 ms pings for 1 s before the kill, 2 s down, the hold, and
		// about 2 s for the reconnect and first reconcile (checked below).
		count := int((5*time.Second + lateBy) / (10 * time.Millisecond))
		pings := make([]*pinger, len(pairs))
		for i, p := range pairs {
			pings[i] = startPing(t, vms[p.from], vms[p.to].IP(), count)
		}
		time.Sleep(time.Second)
		c.Kill()
		if lateBy > 0 {
			hold()
			held = true
		}
		time.Sleep(2 * time.Second)
		c.start()
		restarted := time.Now()
		if lateBy > 0 {
			time.Sleep(lateBy)
			var h struct{ Switches []string }
			if err := getJSON("http://"+c.API+"/healthz", &h); err != nil || len(h.Switches) != 2 {
				t.Errorf("%v after the restart, the controller has switches %v (err %v), want the 2 not held back", lateBy, h.Switches, err)
			}
			release()
			held = false
		}
		waitFor(t, 20*time.Second, "3 switches mastered and converged", func() bool {
			n, err := ovslab.Metric(c.API, "nimbus_switches_mastered", "")
			return err == nil && n == 3 && strings.Count(c.Log(), "msg=converged") >= 3
		})
		converged := time.Now()
		res := result{converge: converged.Sub(restarted)}
		for i, p := range pings {
			s, r, running := p.wait(t)
			if running.Before(converged) {
				t.Errorf("ping %s -> %s ended %v before the controller converged; raise its count",
					pairs[i].from, pairs[i].to, converged.Sub(running).Round(time.Millisecond))
			}
			res.sent = append(res.sent, s)
			res.lost = append(res.lost, s-r)
		}
		after, elapsed := nimbusFlows(t, hvs), time.Since(beforeAt).Seconds()
		for k, d := range before {
			// A flow that stayed aged by the time between the dumps (less
			// the dumps' own duration); one re-added is younger.
			if d2, ok := after[k]; !ok || d2 < d+elapsed-1 {
				res.readded++
				t.Logf("flow re-added or removed (duration %.3fs -> %.3fs over %.3fs, present %v): %s", d, d2, elapsed, ok, k)
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				res.readded++
				t.Logf("flow new after the restart: %s", k)
			}
		}
		var err error
		if res.flowMods, err = ovslab.Metric(c.API, "nimbus_flow_mods_total", `source="reconcile"`); err != nil {
			t.Fatal(err)
		}
		res.reconciled = strings.Count(c.Log(), "msg=reconciled")
		return res
	}
	for _, v := range []struct {
		name   string
		lateBy time.Duration
	}{{"together", 0}, {"late", 3 * time.Second}} {
		t.Run(v.name, func(t *testing.T) {
			for i := 1; i <= rounds; i++ {
				r := round(t, v.lateBy)
				total := 0
				for _, n := range r.lost {
					total += n
				}
				t.Logf("round %d: pings lost %v of %v (%s), flow-mods %v, reconcile passes with changes %d, flows re-added %d, converged %v after the restart",
					i, r.lost, r.sent, pairsText(pairs), r.flowMods, r.reconciled, r.readded, r.converge.Round(time.Millisecond))
				if total != 0 || r.flowMods != 0 || r.reconciled != 0 || r.readded != 0 {
					t.Errorf("round %d: %d pings lost, %v flow-mods, %d reconcile passes with changes, %d flows re-added; want none",
						i, total, r.flowMods, r.reconciled, r.readded)
					for _, line := range strings.Split(c.Log(), "\n") {
						if strings.Contains(line, "msg=reconciled") {
							t.Log(line)
						}
					}
				}
			}
		})
	}
	if t.Failed() {
		dumpHVs(t, hvs)
	}
	t.Logf("timing: total %v", time.Since(start).Round(time.Millisecond))
}

func pairsText[T any](pairs []T) string {
	var b []string
	for _, p := range pairs {
		b = append(b, strings.Trim(fmt.Sprint(p), "{}"))
	}
	return strings.Join(b, ", ")
}

// nimbusFlows dumps every hypervisor's Nimbus-owned static flows: key
// (hypervisor and flow without counters) -> duration in seconds.
func nimbusFlows(t *testing.T, hvs []*hvlab.Hypervisor) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, hv := range hvs {
		text := hv.For(t).Ofctl("dump-flows", "br-int")
		flows, err := ovslab.ParseDumpFlows(text)
		if err != nil {
			t.Fatalf("%s: %v", hv.Name(), err)
		}
		for _, f := range flows {
			if pipeline.IsOurs(f.Cookie) && !pipeline.IsDynamic(f.Cookie) {
				out[hv.Name()+" "+f.Key()] = f.DurationSec
			}
		}
	}
	return out
}

func sameKeys(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// pinger is a ping -i 0.01 running in a VM.
type pinger struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done chan struct{}
	end  time.Time
}

func startPing(t *testing.T, vm *hvlab.VM, dst string, count int) *pinger {
	t.Helper()
	p := &pinger{done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", vm.NS(), "ping", "-n", "-q", "-i", "0.01", "-W", "1",
		"-c", strconv.Itoa(count), dst)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	go func() { p.cmd.Wait(); p.end = time.Now(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

// wait returns how many echo requests were sent and answered, and when
// the ping ended.
func (p *pinger) wait(t *testing.T) (sent, received int, end time.Time) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Signal(syscall.SIGINT)
		<-p.done
	}
	m := pingSummary.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("ping: no summary:\n%s", p.out.String())
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received, p.end
}
