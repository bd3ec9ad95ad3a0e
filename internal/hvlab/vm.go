package hvlab

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// VMOptions configures Lab.AddVMWith.
type VMOptions struct {
	// PortID is the Neutron port ID, set as external_ids:iface-id on the
	// br-int interface. Required.
	PortID string
	// MAC of the VM's eth0; "" picks a random locally administered one.
	MAC string
	// CIDR is eth0's address, e.g. "10.0.0.5/24"; "" leaves eth0 without an
	// address (call VM.DHCP).
	CIDR string
	// Gateway, when set, becomes the VM's default route.
	Gateway string
	// Tap is the host-side interface name; default "tap" + the first 11
	// characters of PortID (Neutron's convention).
	Tap string
	// OFPort, when > 0, is requested as the interface's OpenFlow port.
	OFPort int
	// MTU of both veth ends; 0 keeps 1500.
	MTU int
}

// VM is a network namespace with one interface, eth0, whose peer is a port
// of a hypervisor's br-int.
type VM struct {
	t    testing.TB
	hv   *Hypervisor
	ns   string
	opts VMOptions
	ip   string
}

// AddVM adds a VM on hv: a namespace whose eth0 (mac, cidr; "" cidr for
// DHCP) is joined by a veth pair to hv's br-int, the host end named
// "tap"+portID[:11] and carrying external_ids:iface-id=portID. br-int must
// exist. The namespace goes with the lab.
func (l *Lab) AddVM(t testing.TB, hv *Hypervisor, portID, mac, cidr string) *VM {
	t.Helper()
	return l.AddVMWith(t, hv, VMOptions{PortID: portID, MAC: mac, CIDR: cidr})
}

// AddVMWith is AddVM with all options.
func (l *Lab) AddVMWith(t testing.TB, hv *Hypervisor, o VMOptions) *VM {
	t.Helper()
	if o.PortID == "" {
		t.Fatalf("hvlab: AddVM needs a port ID")
	}
	if o.Tap == "" {
		id := o.PortID
		if len(id) > 11 {
			id = id[:11]
		}
		o.Tap = "tap" + id
	}
	if len(o.Tap) > 15 {
		t.Fatalf("hvlab: interface name %q longer than 15 bytes", o.Tap)
	}
	if o.MAC == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		b[0] = b[0]&^1 | 2
		o.MAC = net.HardwareAddr(b).String()
	}
	hv = hv.For(t)
	vm := &VM{t: t, hv: hv, opts: o}
	vm.ns = l.prefix + "-vm-" + sanitize(o.PortID)
	l.mu.Lock()
	for _, other := range l.vms {
		if other.ns == vm.ns {
			l.mu.Unlock()
			t.Fatalf("hvlab: VM %s exists already", o.PortID)
		}
	}
	l.vms = append(l.vms, vm)
	l.mu.Unlock()

	must := func(args ...string) {
		t.Helper()
		if _, err := run(nil, args[0], args[1:]...); err != nil {
			t.Fatalf("hvlab: %v", err)
		}
	}
	must("ip", "netns", "add", vm.ns)
	must("ip", "-n", vm.ns, "link", "set", "lo", "up")
	must("ip", "link", "add", "name", "eth0", "netns", vm.ns, "address", o.MAC, "type", "veth",
		"peer", "name", o.Tap, "netns", hv.ns)
	if o.MTU > 0 {
		must("ip", "-n", vm.ns, "link", "set", "eth0", "mtu", strconv.Itoa(o.MTU))
		must("ip", "-n", hv.ns, "link", "set", o.Tap, "mtu", strconv.Itoa(o.MTU))
	}
	if o.CIDR != "" {
		must("ip", "-n", vm.ns, "addr", "add", o.CIDR, "dev", "eth0")
		vm.ip, _, _ = strings.Cut(o.CIDR, "/")
	}
	must("ip", "-n", vm.ns, "link", "set", "eth0", "up")
	if o.Gateway != "" {
		must("ip", "-n", vm.ns, "route", "add", "default", "via", o.Gateway, "dev", "eth0")
	}
	must("ip", "-n", hv.ns, "link", "set", o.Tap, "up")
	args := []string{"add-port", "br-int", o.Tap, "--", "set", "interface", o.Tap,
		"external_ids:iface-id=" + o.PortID, "external_ids:attached-mac=" + o.MAC,
		"external_ids:iface-status=active"}
	if o.OFPort > 0 {
		args = append(args, fmt.Sprintf("ofport_request=%d", o.OFPort))
	}
	hv.Vsctl(args...)
	return vm
}

func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// For returns a view of the VM whose helpers report failures to t.
func (vm *VM) For(t testing.TB) *VM {
	c := *vm
	c.t = t
	c.hv = vm.hv.For(t)
	return &c
}

// Name is the VM's port ID.
func (vm *VM) Name() string { return vm.opts.PortID }

// NS is the VM's network namespace.
func (vm *VM) NS() string { return vm.ns }

// HV is the hypervisor the VM is plugged into.
func (vm *VM) HV() *Hypervisor { return vm.hv }

// Tap is the host-side (br-int) interface name.
func (vm *VM) Tap() string { return vm.opts.Tap }

// MAC is eth0's MAC address.
func (vm *VM) MAC() string { return vm.opts.MAC }

// IP is eth0's IPv4 address without prefix length ("" before DHCP).
func (vm *VM) IP() string { return vm.ip }

// OFPort is the OpenFlow port of the VM's tap on br-int.
func (vm *VM) OFPort() int {
	vm.t.Helper()
	return vm.hv.OFPort(vm.opts.Tap)
}

// ExecErr runs a command inside the VM's namespace and returns its stdout.
func (vm *VM) ExecErr(args ...string) (string, error) {
	return run(nil, "ip", append([]string{"netns", "exec", vm.ns}, args...)...)
}

// Exec is ExecErr that fails the test on error and trims the output.
func (vm *VM) Exec(args ...string) string {
	vm.t.Helper()
	out, err := vm.ExecErr(args...)
	if err != nil {
		vm.t.Fatalf("hvlab: VM %s: %v", vm.Name(), err)
	}
	return strings.TrimSpace(out)
}

var pingRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

// Ping sends count ICMP echo requests of size payload bytes (0: ping's
// default 56) to dst, 0.2 s apart, with the DF bit set when dontFragment
// (ping -M do; -M dont otherwise), waiting up to 2 s for the last reply.
// It returns how many were sent and answered; no answer is not an error.
func (vm *VM) Ping(dst string, count, size int, dontFragment bool) (sent, received int) {
	vm.t.Helper()
	if count <= 0 {
		count = 1
	}
	args := []string{"ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2"}
	if size > 0 {
		args = append(args, "-s", strconv.Itoa(size))
	}
	if dontFragment {
		args = append(args, "-M", "do")
	} else {
		args = append(args, "-M", "dont")
	}
	out, err := vm.ExecErr(append(args, dst)...)
	m := pingRE.FindStringSubmatch(out)
	if m == nil {
		vm.t.Fatalf("hvlab: VM %s: ping %s: %v\n%s", vm.Name(), dst, err, out)
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received
}

// DHCPClient returns the argv prefix of the DHCP client (busybox udhcpc),
// or an error naming the package to install.
func DHCPClient() ([]string, error) {
	if p, err := exec.LookPath("udhcpc"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return []string{p, "udhcpc"}, nil
	}
	return nil, fmt.Errorf("no udhcpc: apt-get install busybox")
}

// DHCP runs a one-shot DHCP client (busybox udhcpc: 5 discovers 1 s apart)
// on eth0, configures the leased address (and default route) and returns
// the address. It fails the test when no lease is obtained.
func (vm *VM) DHCP() string {
	vm.t.Helper()
	vm.ip, _ = Lease(vm.t, vm.ns, "eth0", vm.hv.lab.dir)
	return vm.ip
}

// Lease runs a one-shot DHCP client (busybox udhcpc: 5 discovers 1 s
// apart, asking for the MTU option) on iface inside namespace ns, with the
// labs' event script test/mininet/udhcpc.sh, which configures the address,
// MTU and default route inside ns only (the stock scripts rewrite
// /etc/resolv.conf, which is the root namespace's file). It returns the
// leased address and the MTU option ("none" when absent), and fails the
// test when no lease is obtained. dir holds the lease file.
func Lease(t testing.TB, ns, iface, dir string) (ip, mtu string) {
	t.Helper()
	client, err := DHCPClient()
	if err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	root, err := ovslab.RepoRoot()
	if err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	outFile := filepath.Join(dir, "lease-"+sanitize(ns+"-"+iface))
	_ = os.Remove(outFile)
	args := append([]string{"netns", "exec", ns, "env", "OUT=" + outFile}, client...)
	args = append(args, "-i", iface, "-f", "-q", "-n", "-t", "5", "-T", "1", "-A", "1", "-O", "mtu",
		"-s", filepath.Join(root, "test/mininet/udhcpc.sh"))
	out, err := run(nil, "ip", args...)
	b, rerr := os.ReadFile(outFile)
	if err != nil || rerr != nil {
		t.Fatalf("hvlab: %s %s: DHCP failed: %v %v\n%s", ns, iface, err, rerr, out)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("hvlab: %s %s: lease file %q", ns, iface, b)
	}
	return f[0], f[1]
}

// Capture is a running tcpdump started by Tcpdump.
type Capture struct {
	t testing.TB
	p *ovslab.Proc
}

// Tcpdump starts `tcpdump -l -n -e -tt -i iface filter` inside namespace ns
// ("" for the root namespace) and waits until it listens. It is stopped in
// t.Cleanup if Stop is not called.
func Tcpdump(t testing.TB, ns, iface, filter string) *Capture {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("hvlab: tcpdump not found: apt-get install tcpdump")
	}
	args := []string{"-l", "-n", "-e", "-tt", "-i", iface}
	if filter != "" {
		args = append(args, filter)
	}
	name := "tcpdump"
	if ns != "" {
		args = append([]string{"netns", "exec", ns, "tcpdump"}, args...)
		name = "ip"
	}
	c := &Capture{t: t, p: ovslab.StartProcess(t, name, args, nil)}
	c.p.WaitLog("listening on", 10*time.Second)
	return c
}

// Stop stops the capture and returns the captured packet lines (tcpdump's
// own messages removed).
func (c *Capture) Stop() []string {
	// Give packets in flight a moment to be printed.
	time.Sleep(100 * time.Millisecond)
	_ = c.p.Stop()
	var lines []string
	for _, l := range strings.Split(c.p.Log(), "\n") {
		if l != "" && l[0] >= '0' && l[0] <= '9' && !strings.Contains(l, "packets captured") &&
			!strings.Contains(l, "received by filter") && !strings.Contains(l, "dropped by kernel") {
			lines = append(lines, l)
		}
	}
	return lines
}
