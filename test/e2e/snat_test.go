package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// snatEnv is the SNAT lab: three hypervisors on the external network
// (hvlab Options.External, --bridge-mappings extnet:br-ex), node agents
// started here so the test can stop or kill one, a router with
// enable_snat and VMs v1, v2, v3 on hv1, hv2, hv3 behind it.
type snatEnv struct {
	l      *hvlab.Lab
	hvs    []*hvlab.Hypervisor
	c      *controller
	nb     neutron
	st     *store.Store
	in     *hvlab.Internet
	agents []*ovslab.Proc
	vms    []*hvlab.VM
	extIP  string
	// the tenant network and subnet
	netID, subnetID string
}

func startSNATLab(t *testing.T, agentArgs ...string) *snatEnv {
	t.Helper()
	hvlab.RequireE2E(t)
	if _, err := hvlab.DHCPClient(); err != nil {
		t.Fatal(err)
	}
	l := hvlab.New(t, hvlab.Options{Hypervisors: 3, External: true})
	hvs := l.Hypervisors()
	etcd := etcdtest.Start(t, 1)
	endpoints := strings.Join(etcd.Endpoints(), ",")
	ofPort := ovslab.FreePort(t)
	c := &controller{t: t, OF: fmt.Sprintf("127.0.0.1:%d", ofPort), API: fmt.Sprintf("127.0.0.1:%d", ovslab.FreePort(t))}
	c.args = []string{"serve", "--openflow-listen", fmt.Sprintf("0.0.0.0:%d", ofPort), "--api-listen", c.API,
		"--log-level", "debug", "--etcd-endpoints", endpoints, "--replica-id", "r1"}
	c.start()
	e := &snatEnv{l: l, hvs: hvs, c: c, nb: neutron{t: t, api: c.API}, in: l.Internet()}
	for _, hv := range hvs {
		e.agents = append(e.agents, ovslab.StartProcess(t, controllerBin, append([]string{"node", "--chassis", hv.Name(), "--tunnel-ip", hv.TunnelIP(),
			"--datapath-type", "netdev", "--controllers", hv.ControllerTarget(ofPort), "--etcd-endpoints", endpoints,
			"--resync", "5s", "--log-level", "debug", "--bridge-mappings", hvlab.ExternalPhysnet + ":" + hvlab.ExternalBridge}, agentArgs...), hv.Env()))
	}
	waitFor(t, 30*time.Second, "3 switches connected", func() bool {
		var h struct{ Switches []string }
		return getJSON("http://"+c.API+"/healthz", &h) == nil && len(h.Switches) == 3
	})
	st, err := store.Open(context.Background(), store.Config{Endpoints: etcd.Endpoints(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	e.in.ServeHTTP(t)
	nb := e.nb
	x := nb.post("networks", map[string]any{"network": map[string]any{"name": "ext", "project_id": "admin", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": hvlab.ExternalPhysnet}})
	nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": x["id"], "project_id": "admin", "cidr": e.in.CIDR(),
		"ip_version": 4, "gateway_ip": e.in.IP(), "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": e.in.Addr(10), "end": e.in.Addr(99)}}}})
	const proj = "tenant-snat"
	n := nb.post("networks", map[string]any{"network": map[string]any{"name": "snat-net", "project_id": proj, "provider:network_type": "gre"}})
	s := nb.post("subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "project_id": proj,
		"cidr": "10.0.1.0/24", "ip_version": 4, "gateway_ip": "10.0.1.1"}})
	rt := nb.post("routers", map[string]any{"router": map[string]any{"name": "r-snat", "project_id": proj,
		"external_gateway_info": map[string]any{"network_id": x["id"], "enable_snat": true}}})
	gw, _ := rt["external_gateway_info"].(map[string]any)
	fips, _ := gw["external_fixed_ips"].([]any)
	if len(fips) == 0 {
		t.Fatalf("router gateway has no external IP: %v", rt)
	}
	e.extIP = fips[0].(map[string]any)["ip_address"].(string)
	nb.put("routers/"+rt["id"].(string)+"/add_router_interface", map[string]any{"subnet_id": s["id"]})
	e.netID, e.subnetID = n["id"].(string), s["id"].(string)
	dir := t.TempDir()
	for i, hv := range hvs {
		ip := fmt.Sprintf("10.0.1.%d", 11+i)
		p := nb.post("ports", map[string]any{"port": map[string]any{"network_id": n["id"], "project_id": proj, "name": fmt.Sprintf("v%d", i+1),
			"binding:host_id": hv.Name(), "fixed_ips": []any{map[string]any{"subnet_id": s["id"], "ip_address": ip}}}})
		vm := l.AddVM(t, hv, p["id"].(string), p["mac_address"].(string), "")
		if got, _ := hvlab.Lease(t, vm.NS(), "eth0", dir); got != ip {
			t.Fatalf("v%d leased %s, want %s", i+1, got, ip)
		}
		vm.Exec("ethtool", "-K", "eth0", "tx", "off")
		e.vms = append(e.vms, vm)
	}
	for _, hv := range hvs {
		for _, peer := range hvs {
			if peer != hv {
				hv.Appctl("tnl/neigh/set", "br-phy", peer.TunnelIP(), peer.Exec("cat", "/sys/class/net/br-phy/address"))
			}
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpHVs(t, hvs)
		}
	})
	return e
}

// leases reads the SNAT blocks (chassis -> block indexes) and the ARP
// owner of the external IP from etcd.
func (e *snatEnv) leases(t *testing.T) (map[string][]int, *model.SNATOwner) {
	t.Helper()
	rs, err := e.st.List(context.Background(), model.KindSNATBlock)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, r := range rs {
		b := r.(*model.SNATBlock)
		if b.ExternalIP == e.extIP {
			out[b.Chassis] = append(out[b.Chassis], b.Index)
		}
	}
	var o *model.SNATOwner
	if r, _, err := e.st.Get(context.Background(), model.KindSNATOwner, e.extIP); err == nil {
		o = r.(*model.SNATOwner)
	}
	return out, o
}

// fetch is what vm sees as its address from the internet ("" on failure).
func fetchIP(vm *hvlab.VM, timeout string) string {
	out, err := vm.ExecErr("curl", "-s", "-m", timeout, "http://"+hvlab.RemoteIP+"/cgi-bin/ip")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

var tcpdumpSrc = regexp.MustCompile(`length \d+: (\d+\.\d+\.\d+\.\d+)\.(\d+) > `)

// packetIns sums the controller's packet-ins of the apps a return packet
// could reach (every app but isolation, whose DHCP answers the VMs'
// renewals).
func (e *snatEnv) packetIns() float64 {
	n := 0.0
	for _, a := range []string{"learning", "l3router", "nat", "snat", "lb", "secgroup", "pipeline", "topology"} {
		n += e.c.metric("nimbus_packet_ins_total", `app="`+a+`"`)
	}
	return n
}

// TestDistributedSNAT: VMs on all three hypervisors fetch from the
// internet at the same time through a router with enable_snat; the
// internet sees only the router's external IP, each hypervisor's
// connections leave from its own external link with source ports in its
// own leased blocks (tcpdump), no return packet reaches the controller,
// and ICMP echo works. Then a hypervisor's agent is stopped and its
// chassis removed (its blocks return to the pool), and the ARP owner's
// hypervisor is killed (agent SIGKILLed, external link down): the
// remaining hypervisor takes the external IP and its VM's SNAT resumes
// (time logged).
func TestDistributedSNAT(t *testing.T) {
	e := startSNATLab(t)
	var blocks map[string][]int
	var owner *model.SNATOwner
	waitFor(t, 30*time.Second, "a block per hypervisor and an ARP owner", func() bool {
		blocks, owner = e.leases(t)
		return len(blocks) == 3 && owner != nil
	})
	t.Logf("external IP %s: blocks %v, ARP owner %s", e.extIP, blocks, owner.Chassis)

	// Warm up (first packets may race the flows), then measure.
	for _, vm := range e.vms {
		waitFor(t, 30*time.Second, vm.HV().Name()+"'s VM reaches the internet through SNAT", func() bool { return fetchIP(vm, "1") != "" })
	}
	var caps []*hvlab.Capture
	for i := range e.hvs {
		caps = append(caps, hvlab.Tcpdump(t, e.l.UnderlayNS(), fmt.Sprintf("ex%d", i+1), "tcp and dst port 80 and src host "+e.extIP))
	}
	// Quiet first: the switch agent repeats announcements (a new owner's
	// gratuitous ARP, each chassis's next-hop probe) up to 3 s after they
	// appear, and the probes' answers are punted (ARP, metered): wait
	// until no packet-in arrives for 4 s, so what is counted below is
	// what the fetches caused.
	before := e.packetIns()
	for quiet := time.Now(); time.Since(quiet) < 4*time.Second; {
		time.Sleep(500 * time.Millisecond)
		if n := e.packetIns(); n != before {
			before, quiet = n, time.Now()
		}
	}
	var wg sync.WaitGroup
	seen := make([][]string, len(e.vms))
	for i, vm := range e.vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 5; k++ {
				seen[i] = append(seen[i], fetchIP(vm, "3"))
			}
		}()
	}
	wg.Wait()
	for i, got := range seen {
		for _, ip := range got {
			if ip != e.extIP {
				t.Errorf("v%d on hv%d: the internet saw %q, want only the router's external IP %s (all: %v)", i+1, i+1, ip, e.extIP, got)
				break
			}
		}
	}
	if d := e.packetIns() - before; d != 0 {
		t.Errorf("%v packet-ins during the SNAT fetches: a return packet reached the controller", d)
	}
	used := map[int]string{}
	for i, c := range caps {
		hv := e.hvs[i].Name()
		ports := map[int]bool{}
		for _, line := range c.Stop() {
			m := tcpdumpSrc.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			p, _ := strconv.Atoi(m[2])
			blk := p >> 10
			ports[blk] = true
			if !contains(blocks[hv], blk) {
				t.Errorf("%s sent from %s:%d, block %d, not one of its blocks %v", hv, m[1], p, blk, blocks[hv])
			}
			if o, ok := used[blk]; ok && o != hv {
				t.Errorf("block %d used by %s and %s", blk, o, hv)
			}
			used[blk] = hv
		}
		if len(ports) == 0 {
			t.Errorf("no SNATed TCP from %s on its external link ex%d", hv, i+1)
		}
		t.Logf("%s: source port blocks seen on ex%d: %v (leased %v)", hv, i+1, keys(ports), blocks[hv])
	}

	t.Run("ICMP echo through SNAT", func(t *testing.T) {
		for _, vm := range e.vms {
			if out, err := vm.ExecErr("ping", "-n", "-c", "2", "-i", "0.3", "-W", "2", hvlab.RemoteIP); err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Errorf("%s: ping %s through SNAT: %v\n%s", vm.HV().Name(), hvlab.RemoteIP, err, out)
			}
		}
	})

	// The hypervisors other than the owner: one is stopped, one survives.
	var oi, si, ri = -1, -1, -1
	for i, hv := range e.hvs {
		switch {
		case hv.Name() == owner.Chassis:
			oi = i
		case si < 0:
			si = i
		default:
			ri = i
		}
	}
	stopped, survivor := e.hvs[si].Name(), e.hvs[ri].Name()

	t.Run("stopped agent, chassis removed: its blocks return", func(t *testing.T) {
		if err := e.agents[si].Stop(); err != nil {
			t.Logf("agent stop: %v", err)
		}
		if err := e.st.Remove(context.Background(), model.KindChassis, stopped); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, stopped+"'s blocks back in the pool", func() bool {
			b, _ := e.leases(t)
			return len(b[stopped]) == 0
		})
		waitFor(t, 10*time.Second, "the free-block gauge to count them", func() bool {
			return e.c.metric("nimbus_snat_blocks_leased", `external_ip="`+e.extIP+`"`) == 2
		})
	})

	t.Run("the ARP owner's hypervisor dies: SNAT resumes", func(t *testing.T) {
		ovm := e.vms[ri]
		if got := fetchIP(ovm, "2"); got != e.extIP {
			t.Fatalf("%s before the failure: %q", survivor, got)
		}
		e.agents[oi].Signal(syscall.SIGKILL)
		if out, err := exec.Command("ip", "-n", e.l.UnderlayNS(), "link", "set", fmt.Sprintf("ex%d", oi+1), "down").CombinedOutput(); err != nil {
			t.Fatalf("external link down: %v: %s", err, out)
		}
		start := time.Now()
		waitFor(t, 30*time.Second, survivor+"'s VM reaches the internet again", func() bool { return fetchIP(ovm, "0.5") == e.extIP })
		took := time.Since(start)
		_, o := e.leases(t)
		if o == nil || o.Chassis != survivor {
			t.Errorf("ARP owner after the failure: %+v, want %s", o, survivor)
		}
		t.Logf("ARP owner %s killed: %s's SNAT resumed after %v (new owner %+v)", owner.Chassis, survivor, took.Round(time.Millisecond), o)
	})
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// iperfAll runs one iperf3 client per VM at the same time (5 s, to the
// internet namespace's servers on 5201..5203) and returns the sum of
// what the servers received, in Gbit/s.
func iperfAll(t *testing.T, vms []*hvlab.VM, secs int) float64 {
	t.Helper()
	var wg sync.WaitGroup
	got := make([]float64, len(vms))
	for i, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := vm.ExecErr("iperf3", "-c", hvlab.RemoteIP, "-p", strconv.Itoa(5201+i), "-t", strconv.Itoa(secs), "-J")
			if err != nil {
				t.Errorf("%s: iperf3: %v\n%s", vm.HV().Name(), err, out)
				return
			}
			var r struct {
				End struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Errorf("%s: iperf3 output: %v", vm.HV().Name(), err)
				return
			}
			got[i] = r.End.SumReceived.BitsPerSecond / 1e9
		}()
	}
	wg.Wait()
	sum := 0.0
	for i, g := range got {
		t.Logf("  %s: %.3f Gbit/s", vms[i].HV().Name(), g)
		sum += g
	}
	return sum
}

// TestSNATBench (NIMBUS_BENCH=1, make bench-snat): TCP throughput from
// VMs on all three hypervisors at once to the internet namespace,
// through distributed SNAT, against the same traffic through one Linux
// network-node namespace doing iptables MASQUERADE (Neutron's L3 agent
// design: a port on the tenant network on hv1, a leg on the external
// segment, the VMs routed to it). Logs both sums and their ratio.
func TestSNATBench(t *testing.T) {
	if os.Getenv("NIMBUS_BENCH") != "1" {
		t.Skip("benchmark: set NIMBUS_BENCH=1 (make bench-snat)")
	}
	e := startSNATLab(t)
	for i := range e.vms {
		ovslab.StartProcess(t, "ip", []string{"netns", "exec", e.in.NS(), "iperf3", "-s", "-p", strconv.Itoa(5201 + i)}, nil)
	}
	for _, vm := range e.vms {
		waitFor(t, 30*time.Second, vm.HV().Name()+"'s VM reaches the internet through SNAT", func() bool { return fetchIP(vm, "1") == e.extIP })
	}
	secs := 5
	t.Logf("distributed SNAT (each hypervisor's own external link), %d s:", secs)
	dist := iperfAll(t, e.vms, secs)

	// The network node: a port on the tenant network (hv1, no port
	// security: it forwards), a leg on the external segment, MASQUERADE.
	hv1 := e.hvs[0]
	netID, subnetID := e.netID, e.subnetID
	p := e.nb.post("ports", map[string]any{"port": map[string]any{"network_id": netID, "project_id": "tenant-snat", "name": "network-node",
		"binding:host_id": hv1.Name(), "port_security_enabled": false, "security_groups": []any{},
		"fixed_ips": []any{map[string]any{"subnet_id": subnetID, "ip_address": "10.0.1.254"}}}})
	nn := e.l.AddVM(t, hv1, p["id"].(string), p["mac_address"].(string), "10.0.1.254/24")
	ul := e.l.UnderlayNS()
	extAddr := e.in.Addr(200)
	for _, c := range [][]string{
		{"ip", "link", "add", "nnx", "netns", ul, "type", "veth", "peer", "name", "ext0", "netns", nn.NS()},
		{"ip", "-n", ul, "link", "set", "nnx", "master", hvlab.ExternalSegment, "up"},
		{"ip", "-n", nn.NS(), "addr", "add", extAddr + "/24", "dev", "ext0"},
		{"ip", "-n", nn.NS(), "link", "set", "ext0", "up"},
		{"ip", "-n", nn.NS(), "route", "add", "default", "via", e.in.IP()},
		{"ip", "netns", "exec", nn.NS(), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", nn.NS(), "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "ext0", "-j", "MASQUERADE"},
		{"ip", "netns", "exec", nn.NS(), "ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "netns", "exec", nn.NS(), "ethtool", "-K", "ext0", "tx", "off"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("network node: %v: %v: %s", c, err, out)
		}
	}
	for _, vm := range e.vms {
		vm.Exec("ip", "route", "add", hvlab.RemoteIP+"/32", "via", "10.0.1.254")
	}
	for _, vm := range e.vms {
		waitFor(t, 30*time.Second, vm.HV().Name()+"'s VM reaches the internet through the network node", func() bool { return fetchIP(vm, "1") == extAddr })
	}
	t.Logf("one network node (Linux namespace on hv1, iptables MASQUERADE), %d s:", secs)
	gw := iperfAll(t, e.vms, secs)
	t.Logf("SNAT throughput, 3 hypervisors at once: distributed %.3f Gbit/s, network node %.3f Gbit/s, ratio %.2f", dist, gw, dist/gw)
}

// TestSNATBlockGrowth: with 64-port blocks, one VM opens more connections
// (100, one after the other) than its block holds (each stays in conntrack in TIME_WAIT): its
// hypervisor leases more blocks as it runs short, and every fetch gets
// through (retried while a block is being added).
func TestSNATBlockGrowth(t *testing.T) {
	e := startSNATLab(t, "--snat-block-bits", "6")
	vm := e.vms[0]
	hv := vm.HV().Name()
	waitFor(t, 30*time.Second, hv+"'s VM reaches the internet through SNAT", func() bool { return fetchIP(vm, "1") == e.extIP })
	failed := 0
	for i := 0; i < 100; i++ {
		ok := false
		for try := 0; try < 20 && !ok; try++ {
			ok = fetchIP(vm, "1") == e.extIP
			if !ok {
				failed++
			}
		}
		if !ok {
			b, _ := e.leases(t)
			t.Fatalf("fetch %d never got through (blocks %v)", i, b)
		}
	}
	b, _ := e.leases(t)
	t.Logf("%s after 100 connections in 64-port blocks: blocks %v (%d fetches retried)", hv, b[hv], failed)
	for _, line := range strings.Split(e.agents[0].Log(), "\n") {
		if strings.Contains(line, "exhausted") {
			t.Log(line)
		}
	}
	if len(b[hv]) < 2 {
		t.Errorf("%s holds %d blocks after 100 connections, want at least 2", hv, len(b[hv]))
	}
	for _, i := range b[hv] {
		if i<<6 < 1024 || (i+1)<<6 > 1<<16 {
			t.Errorf("block %d out of range", i)
		}
	}
}
