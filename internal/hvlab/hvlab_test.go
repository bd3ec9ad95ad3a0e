package hvlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestThreeHypervisorGRE builds 3 hypervisors with a GRE mesh, plugs a VM
// into hv1 and one into hv2, carries their traffic in tun_id 5 with static
// flows, pings both ways, checks the underlay sees only GRE for it, gets a
// DHCP lease across the tunnel, connects hv3 to a controller in the root
// namespace, and finally checks that teardown left nothing behind.
func TestThreeHypervisorGRE(t *testing.T) {
	RequireE2E(t)
	var prefix, dir string
	var setup, total time.Duration
	start := time.Now()
	t.Run("lab", func(t *testing.T) {
		l := New(t, Options{Hypervisors: 3, BrInt: true})
		setup = time.Since(start)
		prefix, dir = l.Prefix(), l.Dir()
		hv1, hv2, hv3 := l.HV(1), l.HV(2), l.HV(3)
		vm1 := l.AddVMWith(t, hv1, VMOptions{PortID: "11111111-aaaa-4000-8000-000000000001", MAC: "fa:16:3e:00:00:01", CIDR: "10.0.0.1/24", OFPort: 1})
		vm2 := l.AddVMWith(t, hv2, VMOptions{PortID: "22222222-bbbb-4000-8000-000000000002", MAC: "fa:16:3e:00:00:02", CIDR: "10.0.0.2/24", OFPort: 1})
		if vm1.Tap() != "tap11111111-aa" {
			t.Errorf("tap name %q, want Neutron's tap11111111-aa", vm1.Tap())
		}
		if got := hv1.Vsctl("get", "interface", vm1.Tap(), "external_ids:iface-id"); strings.Trim(got, `"`) != vm1.Name() {
			t.Errorf("iface-id %s, want %s", got, vm1.Name())
		}
		g12, g21 := hv1.OFPort(GREPortName(hv2)), hv2.OFPort(GREPortName(hv1))
		if g12 != GREOFPortBase+2 || g21 != GREOFPortBase+1 {
			t.Errorf("GRE ofports %d, %d", g12, g21)
		}
		for _, f := range []struct {
			hv      *Hypervisor
			vm, gre int
		}{{hv1, vm1.OFPort(), g12}, {hv2, vm2.OFPort(), g21}} {
			f.hv.Ofctl("add-flow", "br-int", fmt.Sprintf("in_port=%d,actions=set_field:5->tun_id,output:%d", f.vm, f.gre))
			f.hv.Ofctl("add-flow", "br-int", fmt.Sprintf("tun_id=5,in_port=%d,actions=output:%d", f.gre, f.vm))
		}

		capt := Tcpdump(t, l.UnderlayNS(), UnderlayBridge, "")
		if s, r := vm1.Ping(vm2.IP(), 3, 0, false); r != s || s != 3 {
			t.Fatalf("vm1 -> vm2: %d/%d answered", r, s)
		}
		if s, r := vm2.Ping(vm1.IP(), 3, 1000, true); r != s || s != 3 {
			t.Fatalf("vm2 -> vm1 (1000 bytes, DF): %d/%d answered", r, s)
		}
		// GRE costs 42 bytes of the 1500-byte underlay: 1430 bytes of ICMP
		// payload (a 1458-byte IP packet) is the most that passes with DF.
		if s, r := vm1.Ping(vm2.IP(), 1, 1430, true); r != s {
			t.Errorf("1430-byte DF ping: %d/%d answered", r, s)
		}
		if _, r := vm1.Ping(vm2.IP(), 1, 1431, true); r != 0 {
			t.Errorf("1431-byte DF ping crossed a 1500-byte underlay")
		}
		lines := capt.Stop()
		var gre int
		for _, line := range lines {
			if strings.Contains(line, "GRE") && strings.Contains(line, "key=0x5") {
				gre++
			}
			// An outer (underlay) ARP for a VM address would mean the VM's
			// broadcast leaked out of the tunnel.
			if i := strings.Index(line, "ARP"); i >= 0 && !strings.Contains(line[:i], "GRE") && strings.Contains(line, "10.0.0.") {
				t.Errorf("VM ARP on the underlay: %s", line)
			}
		}
		if gre < 12 {
			t.Errorf("underlay capture saw %d GRE key=5 packets, want >= 12:\n%s", gre, strings.Join(lines, "\n"))
		}
		t.Logf("underlay saw %d GRE key=5 packets, %d packets in all", gre, len(lines))
		// Flows counted the traffic on both sides.
		if dump := hv2.Ofctl("dump-flows", "br-int"); !strings.Contains(dump, "tun_id=0x5") {
			t.Errorf("hv2 flows:\n%s", dump)
		}

		// DHCP across the tunnel: a busybox udhcpd in vm2 serves vm1.
		if _, err := DHCPClient(); err != nil {
			t.Logf("skipping DHCP check: %v", err)
		} else {
			conf := filepath.Join(t.TempDir(), "udhcpd.conf")
			leases := filepath.Join(filepath.Dir(conf), "leases")
			if err := os.WriteFile(conf, []byte(fmt.Sprintf("start 10.0.0.100\nend 10.0.0.110\ninterface eth0\n"+
				"lease_file %s\npidfile %s.pid\noption subnet 255.255.255.0\n", leases, conf)), 0o644); err != nil {
				t.Fatal(err)
			}
			srv := ovslab.StartProcess(t, "ip", []string{"netns", "exec", vm2.NS(), "busybox", "udhcpd", "-f", conf}, nil)
			time.Sleep(200 * time.Millisecond)
			vm1.Exec("ip", "-4", "addr", "flush", "dev", "eth0")
			ip := vm1.DHCP()
			t.Logf("vm1 leased %s from udhcpd in vm2 across GRE", ip)
			if !strings.HasPrefix(ip, "10.0.0.1") || ip == "10.0.0.1" {
				t.Errorf("DHCP gave %q, want 10.0.0.100-110", ip)
			}
			if s, r := vm1.Ping(vm2.IP(), 2, 0, false); r != s {
				t.Errorf("after DHCP, vm1 (%s) -> vm2: %d/%d", ip, r, s)
			}
			_ = srv.Stop()
		}

		// A controller in the root namespace, reached over the management
		// link (it listens on all addresses; loopback is per namespace).
		port := ovslab.FreePort(t)
		ovslab.StartProcess(t, "ovs-testcontroller", []string{"-O", "OpenFlow13", fmt.Sprintf("ptcp:%d", port)}, nil)
		ovslab.WaitListening(t, fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		hv3.Vsctl("set-controller", "br-int", hv3.Target(fmt.Sprintf("tcp:127.0.0.1:%d", port)))
		want := fmt.Sprintf("%s: connected", hv3.ControllerTarget(port))
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(hv3.Log(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("hv3 never logged %q:\n%s", want, hv3.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("hv3 connected to ovs-testcontroller at %s", hv3.ControllerTarget(port))
		total = time.Since(start)
	})
	teardown := time.Since(start) - total
	t.Logf("setup %v (3 hypervisors, br-int, GRE mesh), whole lab test %v, teardown ~%v",
		setup.Round(time.Millisecond), total.Round(time.Millisecond), teardown.Round(time.Millisecond))
	if prefix == "" {
		t.Fatal("lab was not built")
	}

	// Nothing left: namespaces, root links, daemons, state directory.
	if out, _ := run(nil, "ip", "netns", "list"); strings.Contains(out, prefix+"-") {
		t.Errorf("namespaces left:\n%s", out)
	}
	if out, _ := run(nil, "ip", "-o", "link", "show"); strings.Contains(out, " "+prefix+"m") {
		t.Errorf("links left:\n%s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left (%v)", dir, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), dir+"/") {
			t.Errorf("process left: %s: %q", p, b)
		}
	}
}

// TestSweepStale checks that SweepStale removes a lab whose owner is dead
// and keeps one whose owner lives.
func TestSweepStale(t *testing.T) {
	RequireE2E(t)
	mk := func(prefix, owner string) string {
		dir := filepath.Join(BaseDir(), prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run(nil, "ip", "netns", "add", prefix+"-hv1"); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	// PID 0x7ffffffe is never a live process.
	dead := mk("nhzz", "2147483646")
	live := mk("nhzy", fmt.Sprint(os.Getpid()))
	t.Cleanup(func() { _ = removeLab("nhzy", live); _ = removeLab("nhzz", dead) })
	if err := SweepStale(); err != nil {
		t.Fatal(err)
	}
	out, _ := run(nil, "ip", "netns", "list")
	if _, err := os.Stat(dead); !os.IsNotExist(err) || strings.Contains(out, "nhzz-hv1") {
		t.Errorf("stale lab not swept (%v):\n%s", err, out)
	}
	if _, err := os.Stat(live); err != nil || !strings.Contains(out, "nhzy-hv1") {
		t.Errorf("live lab swept (%v):\n%s", err, out)
	}
}

// TestExternalNetwork builds a one-hypervisor lab with the external
// network, serves HTTP from the internet namespace, and fetches it from
// an address on hv1's br-ex: the page, and the client address as the
// server saw it.
func TestExternalNetwork(t *testing.T) {
	RequireE2E(t)
	l := New(t, Options{Hypervisors: 1, External: true})
	in := l.Internet()
	if in.IP() != "198.51.100.1" || in.CIDR() != DefaultExternal || in.Addr(10) != "198.51.100.10" {
		t.Fatalf("internet %s in %s, Addr(10) %s", in.IP(), in.CIDR(), in.Addr(10))
	}
	in.ServeHTTP(t)
	hv := l.HV(1)
	// A host on the external network: br-ex's internal port.
	hv.Exec("ip", "addr", "add", in.Addr(9)+"/24", "dev", ExternalBridge)
	hv.Exec("ip", "link", "set", ExternalBridge, "up")
	hv.Exec("ip", "route", "add", RemoteIP+"/32", "via", in.IP())
	hv.Exec("ethtool", "-K", ExternalBridge, "tx", "off")
	for _, u := range []string{"http://" + in.IP() + "/", "http://" + RemoteIP + "/"} {
		var out string
		ovslab.WaitFor(t, 20*time.Second, "fetch "+u, func() bool {
			out, _ = hv.ExecErr("curl", "-s", "-m", "2", u)
			return out == HTTPPage
		})
	}
	if got, _ := hv.ExecErr("curl", "-s", "-m", "2", "http://"+in.IP()+"/cgi-bin/ip"); strings.TrimSpace(got) != in.Addr(9) {
		t.Errorf("cgi-bin/ip answered %q, want %s", got, in.Addr(9))
	}
}
