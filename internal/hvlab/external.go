package hvlab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// ExternalSegment is the Linux bridge, in the lab's underlay namespace,
// of the external network (Options.External): every hypervisor's
// ExternalBridge and the Internet namespace are plugged into it. Capture
// on it to see what leaves the cloud.
const ExternalSegment = "br2"

// ExternalBridge is the OVS bridge (netdev, fail_mode=standalone) of every
// hypervisor that carries the external network when Options.External is
// set; map the external physical network to it with
// `controller node --bridge-mappings extnet:br-ex`.
const ExternalBridge = "br-ex"

// ExternalPhysnet is the physical network name the lab's tests give the
// external network (provider:physical_network, and the bridge mapping
// ExternalPhysnet:ExternalBridge).
const ExternalPhysnet = "extnet"

// DefaultExternal is the external subnet when Options.ExternalCIDR is
// empty (TEST-NET-2: it exists only inside the lab's namespaces).
const DefaultExternal = "198.51.100.0/24"

// Internet is the "internet" namespace of a lab with Options.External: one
// interface, inet0, on ExternalSegment with the external subnet's first
// host address (the external subnet's gateway_ip: the upstream router),
// plus RemoteIP, an address outside the external subnet on its loopback
// (a host "behind" the upstream router). IPv6 is off on inet0.
type Internet struct {
	t    testing.TB
	lab  *Lab
	ns   string
	ip   netip.Addr
	cidr netip.Prefix
}

// RemoteIP is the Internet namespace's address outside the external
// subnet (TEST-NET-3), reached through the external gateway.
const RemoteIP = "203.0.113.80"

// Internet returns the lab's internet namespace (Options.External only).
func (l *Lab) Internet() *Internet {
	l.t.Helper()
	if l.inet == nil {
		l.t.Fatalf("hvlab: the lab has no external network (Options.External)")
	}
	return l.inet
}

// newInternet makes the external segment and the internet namespace.
func (l *Lab) newInternet() {
	cidr := l.opts.ExternalCIDR
	if cidr == "" {
		cidr = DefaultExternal
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		l.t.Fatalf("hvlab: external subnet %q: want an IPv4 /29 or larger", cidr)
	}
	p = p.Masked()
	in := &Internet{t: l.t, lab: l, ns: l.prefix + "-inet", ip: p.Addr().Next(), cidr: p}
	ulns := l.UnderlayNS()
	l.mustRun("ip", "-n", ulns, "link", "add", ExternalSegment, "type", "bridge")
	l.noIPv6(ulns, ExternalSegment)
	l.mustRun("ip", "-n", ulns, "link", "set", ExternalSegment, "up")
	l.mustRun("ip", "netns", "add", in.ns)
	l.mustRun("ip", "-n", in.ns, "link", "set", "lo", "up")
	l.mustRun("ip", "link", "add", "name", "inet", "netns", ulns, "type", "veth", "peer", "name", "inet0", "netns", in.ns)
	l.noIPv6(ulns, "inet")
	l.noIPv6(in.ns, "inet0")
	l.mustRun("ip", "-n", ulns, "link", "set", "inet", "master", ExternalSegment, "up")
	l.mustRun("ip", "-n", in.ns, "addr", "add", fmt.Sprintf("%s/%d", in.ip, p.Bits()), "dev", "inet0")
	l.mustRun("ip", "-n", in.ns, "addr", "add", RemoteIP+"/32", "dev", "lo")
	l.mustRun("ip", "-n", in.ns, "link", "set", "inet0", "up")
	// Checksums finished in software (see LAB.md: userspace datapath).
	_, _ = run(nil, "ip", "netns", "exec", in.ns, "ethtool", "-K", "inet0", "tx", "off")
	l.inet = in
}

// addExternal joins a hypervisor to the external network: veth eth-ex (a
// port of ExternalBridge) <-> exN on ExternalSegment, no addresses.
func (hv *Hypervisor) addExternal() {
	l, ns, ulns := hv.lab, hv.ns, hv.lab.UnderlayNS()
	link := fmt.Sprintf("ex%d", hv.index)
	l.mustRun("ip", "link", "add", "name", link, "netns", ulns, "type", "veth", "peer", "name", "eth-ex", "netns", ns)
	l.noIPv6(ulns, link)
	l.noIPv6(ns, "eth-ex")
	l.mustRun("ip", "-n", ulns, "link", "set", link, "master", ExternalSegment, "up")
	l.mustRun("ip", "-n", ns, "link", "set", "eth-ex", "up")
	hv.Vsctl("--", "add-br", ExternalBridge,
		"--", "set", "bridge", ExternalBridge, "datapath_type=netdev", "fail_mode=standalone",
		"other_config:disable-in-band=true",
		"--", "add-port", ExternalBridge, "eth-ex")
}

// For returns a view whose helpers report failures to t.
func (in *Internet) For(t testing.TB) *Internet {
	c := *in
	c.t = t
	return &c
}

// NS is the internet namespace.
func (in *Internet) NS() string { return in.ns }

// IP is the internet host's address on the external subnet (use it as
// the external subnet's gateway_ip).
func (in *Internet) IP() string { return in.ip.String() }

// CIDR is the external subnet.
func (in *Internet) CIDR() string { return in.cidr.String() }

// Addr returns host number n of the external subnet (e.g. 10: x.y.z.10),
// for allocation pools and fixed floating IPs.
func (in *Internet) Addr(n int) string {
	a := in.cidr.Addr()
	for ; n > 0; n-- {
		a = a.Next()
	}
	return a.String()
}

// MAC is inet0's MAC address.
func (in *Internet) MAC() string {
	in.t.Helper()
	return in.Exec("cat", "/sys/class/net/inet0/address")
}

// ExecErr runs a command in the internet namespace.
func (in *Internet) ExecErr(args ...string) (string, error) {
	return run(nil, "ip", append([]string{"netns", "exec", in.ns}, args...)...)
}

// Exec is ExecErr that fails the test on error and trims the output.
func (in *Internet) Exec(args ...string) string {
	in.t.Helper()
	out, err := in.ExecErr(args...)
	if err != nil {
		in.t.Fatalf("hvlab: internet: %v", err)
	}
	return strings.TrimSpace(out)
}

// HTTPPage is the body of the internet's index page (ServeHTTP).
const HTTPPage = "hello from the nimbus lab internet\n"

// ServeHTTP starts busybox httpd in the internet namespace on port 80 of
// every address (IP and RemoteIP), serving /index.html (HTTPPage) and
// /cgi-bin/ip, which answers the client's address as the server sees it
// (REMOTE_ADDR): what a NAT test checks. It stops in t.Cleanup.
func (in *Internet) ServeHTTP(t testing.TB) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "www")
	if err := os.MkdirAll(filepath.Join(root, "cgi-bin"), 0o755); err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(HTTPPage), 0o644); err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	// busybox httpd listens dual-stack: REMOTE_ADDR is [::ffff:a.b.c.d].
	cgi := "#!/bin/sh\na=${REMOTE_ADDR#[}; a=${a%]}; a=${a#::ffff:}\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$a\"\n"
	if err := os.WriteFile(filepath.Join(root, "cgi-bin", "ip"), []byte(cgi), 0o755); err != nil {
		t.Fatalf("hvlab: %v", err)
	}
	ovslab.StartProcess(t, "ip", []string{"netns", "exec", in.ns, "busybox", "httpd", "-f", "-p", "80", "-h", root}, nil)
	ovslab.WaitFor(t, 10*time.Second, "busybox httpd in the internet namespace", func() bool {
		out, err := in.ExecErr("curl", "-s", "-m", "2", "http://127.0.0.1/")
		return err == nil && out == HTTPPage
	})
}
