package hvlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// GREOFPortBase is the ofport_request base of GRE ports: the port to
// hypervisor M is GREOFPortBase+M on every hypervisor.
const GREOFPortBase = 100

// Hypervisor is one network namespace with its own OVS.
type Hypervisor struct {
	t      testing.TB
	lab    *Lab
	index  int
	ns     string
	rundir string
	tunnel netip.Addr
	procs  []*ovslab.Proc
}

func (l *Lab) newHypervisor(n int) *Hypervisor {
	t := l.t
	t.Helper()
	hv := &Hypervisor{t: t, lab: l, index: n, ns: fmt.Sprintf("%s-hv%d", l.prefix, n),
		rundir: filepath.Join(l.dir, fmt.Sprintf("hv%d", n))}
	u := l.ul.Addr().As4()
	u[3] += byte(10 + n)
	hv.tunnel = netip.AddrFrom4(u)
	if err := os.MkdirAll(hv.rundir, 0o755); err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	ns, ulns := hv.ns, l.UnderlayNS()
	l.mustRun("ip", "netns", "add", ns)
	l.mustRun("ip", "-n", ns, "link", "set", "lo", "up")
	// Underlay link, made directly in the two namespaces (no name clash in
	// the root namespace, even with concurrent labs).
	l.mustRun("ip", "link", "add", "name", hv.Name(), "netns", ulns, "type", "veth", "peer", "name", "eth-ul", "netns", ns)
	l.mustRun("ip", "-n", ulns, "link", "set", hv.Name(), "master", UnderlayBridge, "up")
	l.mustRun("ip", "-n", ns, "link", "set", "eth-ul", "up")
	if mtu := l.opts.UnderlayMTU; mtu > 0 {
		l.mustRun("ip", "-n", ulns, "link", "set", hv.Name(), "mtu", strconv.Itoa(mtu))
		l.mustRun("ip", "-n", ns, "link", "set", "eth-ul", "mtu", strconv.Itoa(mtu))
	}
	// Management link.
	root := hv.RootLink()
	l.mustRun("ip", "link", "add", "name", root, "type", "veth", "peer", "name", "mgmt0", "netns", ns)
	l.mustRun("ip", "addr", "add", hv.RootMgmtIP()+"/30", "dev", root)
	l.mustRun("ip", "link", "set", root, "up")
	l.mustRun("ip", "-n", ns, "addr", "add", hv.MgmtIP()+"/30", "dev", "mgmt0")
	l.mustRun("ip", "-n", ns, "link", "set", "mgmt0", "up")

	// Its own OVS, as child processes of the test binary.
	db := filepath.Join(hv.rundir, "conf.db")
	l.mustRun("ovsdb-tool", "create", db, Schema)
	sock := filepath.Join(hv.rundir, "db.sock")
	hv.procs = append(hv.procs, ovslab.StartProcess(t, "ip", []string{"netns", "exec", ns,
		"ovsdb-server", db, "--remote=punix:" + sock,
		"--pidfile=" + filepath.Join(hv.rundir, "ovsdb-server.pid"),
		"--log-file=" + filepath.Join(hv.rundir, "ovsdb-server.log"),
		"-vconsole:off", "--no-chdir"}, hv.Env()))
	waitFile(t, sock, 10*time.Second)
	hv.Vsctl("--no-wait", "init")
	hv.procs = append(hv.procs, ovslab.StartProcess(t, "ip", []string{"netns", "exec", ns,
		"ovs-vswitchd", "unix:" + sock,
		"--pidfile=" + filepath.Join(hv.rundir, "ovs-vswitchd.pid"),
		"--log-file=" + filepath.Join(hv.rundir, "ovs-vswitchd.log"),
		"-vconsole:off", "--no-chdir"}, hv.Env()))
	// br-phy: the underlay port plus the tunnel IP on its internal port.
	hv.Vsctl("--", "add-br", "br-phy",
		"--", "set", "bridge", "br-phy", "datapath_type=netdev", "fail_mode=standalone",
		"other_config:disable-in-band=true",
		"--", "add-port", "br-phy", "eth-ul")
	if mtu := l.opts.UnderlayMTU; mtu > 0 {
		hv.Vsctl("set", "interface", "br-phy", fmt.Sprintf("mtu_request=%d", mtu),
			"--", "set", "interface", "eth-ul", fmt.Sprintf("mtu_request=%d", mtu))
	}
	l.mustRun("ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", hv.tunnel, l.ul.Bits()), "dev", "br-phy")
	l.mustRun("ip", "-n", ns, "link", "set", "br-phy", "up")
	if l.opts.Physnet {
		hv.addPhysnet()
	}
	if l.opts.External {
		hv.addExternal()
	}
	return hv
}

// PhysnetLink is the name of a hypervisor's physical network link in the
// underlay namespace (a port of PhysnetSegment): "phN".
func (hv *Hypervisor) PhysnetLink() string { return fmt.Sprintf("ph%d", hv.index) }

// addPhysnet joins the hypervisor to the lab's physical network: veth
// eth-phys (a port of PhysnetBridge) <-> phN on PhysnetSegment. Neither end
// nor the bridge's internal port has an address or IPv6, and the internal
// port stays down, so the segment carries tenant frames only.
func (hv *Hypervisor) addPhysnet() {
	l, ns, ulns := hv.lab, hv.ns, hv.lab.UnderlayNS()
	l.mustRun("ip", "link", "add", "name", hv.PhysnetLink(), "netns", ulns, "type", "veth", "peer", "name", "eth-phys", "netns", ns)
	l.noIPv6(ulns, hv.PhysnetLink())
	l.noIPv6(ns, "eth-phys")
	l.mustRun("ip", "-n", ulns, "link", "set", hv.PhysnetLink(), "master", PhysnetSegment, "up")
	l.mustRun("ip", "-n", ns, "link", "set", "eth-phys", "up")
	hv.Vsctl("--", "add-br", PhysnetBridge,
		"--", "set", "bridge", PhysnetBridge, "datapath_type=netdev", "fail_mode=standalone",
		"other_config:disable-in-band=true",
		"--", "add-port", PhysnetBridge, "eth-phys")
}

func waitFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hvlab: %s did not appear within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// For returns a view of the hypervisor whose helpers report failures to t
// (for subtests: t.Fatal must run on the goroutine of its own test).
func (hv *Hypervisor) For(t testing.TB) *Hypervisor {
	c := *hv
	c.t = t
	return &c
}

// stopDaemons stops the hypervisor's OVS daemons (vswitchd first). Their
// t.Cleanup does it too; stopping twice is harmless.
func (hv *Hypervisor) stopDaemons() {
	for i := len(hv.procs) - 1; i >= 0; i-- {
		_ = hv.procs[i].Stop()
	}
}

// Name is "hv<N>".
func (hv *Hypervisor) Name() string { return fmt.Sprintf("hv%d", hv.index) }

// Index is N (1-based).
func (hv *Hypervisor) Index() int { return hv.index }

// NS is the hypervisor's network namespace.
func (hv *Hypervisor) NS() string { return hv.ns }

// RunDir is the hypervisor's OVS_RUNDIR (db, sockets, pidfiles, logs).
func (hv *Hypervisor) RunDir() string { return hv.rundir }

// TunnelIP is the hypervisor's underlay (GRE endpoint) address.
func (hv *Hypervisor) TunnelIP() string { return hv.tunnel.String() }

// RootLink is the name of the management veth end in the root namespace.
func (hv *Hypervisor) RootLink() string { return fmt.Sprintf("%sm%d", hv.lab.prefix, hv.index) }

// MgmtIP is the hypervisor's own address on its management link.
func (hv *Hypervisor) MgmtIP() string { return fmt.Sprintf("169.254.%d.%d", hv.lab.mgmt, 4*hv.index+2) }

// RootMgmtIP is the root namespace's address on the hypervisor's management
// link: where the hypervisor reaches a controller running in the root
// namespace (which must listen on 0.0.0.0 or on this address).
func (hv *Hypervisor) RootMgmtIP() string {
	return fmt.Sprintf("169.254.%d.%d", hv.lab.mgmt, 4*hv.index+1)
}

// ControllerTarget is the OVS target "tcp:<RootMgmtIP>:<port>".
func (hv *Hypervisor) ControllerTarget(port int) string {
	return fmt.Sprintf("tcp:%s:%d", hv.RootMgmtIP(), port)
}

// Target rewrites a controller target for this hypervisor: a host of
// 127.0.0.1, localhost or 0.0.0.0 becomes RootMgmtIP; others are kept.
func (hv *Hypervisor) Target(target string) string {
	parts := strings.Split(target, ":")
	if len(parts) == 3 {
		switch parts[1] {
		case "127.0.0.1", "localhost", "0.0.0.0":
			parts[1] = hv.RootMgmtIP()
		}
	}
	return strings.Join(parts, ":")
}

// Env is the environment that points the OVS tools (ovs-vsctl, ovs-ofctl,
// ovs-appctl, go-openvswitch) at this hypervisor's OVS. Start a node agent
// with it inside NS():
//
//	ip netns exec <NS()> env <Env()...> controller node ...
func (hv *Hypervisor) Env() []string {
	return []string{"OVS_RUNDIR=" + hv.rundir, "OVS_DBDIR=" + hv.rundir, "OVS_LOGDIR=" + hv.rundir}
}

// ExecErr runs a command inside the hypervisor's namespace with Env() and
// returns its stdout; the error carries stderr.
func (hv *Hypervisor) ExecErr(args ...string) (string, error) {
	return run(hv.Env(), "ip", append([]string{"netns", "exec", hv.ns}, args...)...)
}

// Exec is ExecErr that fails the test on error and trims the output.
func (hv *Hypervisor) Exec(args ...string) string {
	hv.t.Helper()
	out, err := hv.ExecErr(args...)
	if err != nil {
		hv.t.Fatalf("hvlab: %s: %v", hv.Name(), err)
	}
	return strings.TrimSpace(out)
}

// VsctlErr runs ovs-vsctl --timeout=20 against this hypervisor's OVS.
func (hv *Hypervisor) VsctlErr(args ...string) (string, error) {
	return hv.ExecErr(append([]string{"ovs-vsctl", "--timeout=20"}, args...)...)
}

// Vsctl is VsctlErr that fails the test on error and trims the output.
func (hv *Hypervisor) Vsctl(args ...string) string {
	hv.t.Helper()
	return hv.Exec(append([]string{"ovs-vsctl", "--timeout=20"}, args...)...)
}

// OfctlErr runs ovs-ofctl -O OpenFlow13 against this hypervisor's OVS.
func (hv *Hypervisor) OfctlErr(args ...string) (string, error) {
	return hv.ExecErr(append([]string{"ovs-ofctl", "-O", "OpenFlow13"}, args...)...)
}

// Ofctl is OfctlErr that fails the test on error and trims the output.
func (hv *Hypervisor) Ofctl(args ...string) string {
	hv.t.Helper()
	return hv.Exec(append([]string{"ovs-ofctl", "-O", "OpenFlow13"}, args...)...)
}

// Appctl runs ovs-appctl (target ovs-vswitchd unless args say -t) against
// this hypervisor's OVS, e.g. Appctl("ofproto/trace", "br-int", "in_port=1").
func (hv *Hypervisor) Appctl(args ...string) string {
	hv.t.Helper()
	return hv.Exec(append([]string{"ovs-appctl", "--timeout=20"}, args...)...)
}

// CreateBrInt creates br-int (netdev, fail_mode=secure, OpenFlow 1.3 only,
// in-band off) with the given controller targets (rewritten by Target; nil
// means Options.Controllers) and datapath ID (0: random). The real node
// agent will do this itself; this is for tests without it.
func (hv *Hypervisor) CreateBrInt(controllers []string, dpid uint64) {
	hv.t.Helper()
	if controllers == nil {
		controllers = hv.lab.opts.Controllers
	}
	if dpid == 0 {
		dpid = randomDPID()
	}
	args := []string{"--", "add-br", "br-int",
		"--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
		"protocols=OpenFlow13", "other_config:disable-in-band=true",
		fmt.Sprintf("other_config:datapath-id=%016x", dpid)}
	if len(controllers) > 0 {
		var ids []string
		for i, c := range controllers {
			id := fmt.Sprintf("@c%d", i)
			ids = append(ids, id)
			args = append(args, "--", "--id="+id, "create", "controller", fmt.Sprintf("target=%q", hv.Target(c)))
		}
		args = append(args, "--", "set", "bridge", "br-int", "controller=["+strings.Join(ids, ",")+"]")
	}
	hv.Vsctl(args...)
}

// GREPortName is the name of the GRE port towards peer: "gre-hv<M>".
func GREPortName(peer *Hypervisor) string { return "gre-" + peer.Name() }

// GREPort adds to br-int a GRE port towards peer (type=gre,
// options:remote_ip=<peer tunnel IP>, options:key=flow) with
// ofport_request GREOFPortBase+peer index, and returns its OpenFlow port
// number.
func (hv *Hypervisor) GREPort(peer *Hypervisor) int {
	hv.t.Helper()
	name := GREPortName(peer)
	hv.Vsctl("--may-exist", "add-port", "br-int", name, "--", "set", "interface", name,
		"type=gre", "options:remote_ip="+peer.TunnelIP(), "options:key=flow",
		fmt.Sprintf("ofport_request=%d", GREOFPortBase+peer.index))
	return hv.OFPort(name)
}

// OFPort returns the OpenFlow port number of an interface, waiting up to
// 10 s for OVS to assign one.
func (hv *Hypervisor) OFPort(iface string) int {
	hv.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := hv.VsctlErr("get", "interface", iface, "ofport")
		if err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && n > 0 {
				return n
			}
		}
		if time.Now().After(deadline) {
			hv.t.Fatalf("hvlab: %s: interface %s has no ofport (%q, %v)", hv.Name(), iface, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns ovs-vswitchd's log file of this hypervisor.
func (hv *Hypervisor) Log() string {
	b, _ := os.ReadFile(filepath.Join(hv.rundir, "ovs-vswitchd.log"))
	return string(b)
}
