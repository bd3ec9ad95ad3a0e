package ovslab

import (
	"crypto/rand"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TunnelUnderlay makes what OVS's native tunnelling needs to emit a GRE
// packet in a test: a bridge whose LOCAL port holds a random free /30 of
// 198.18.0.0/15 (OVS learns the route), GRE out of its port 1, and a
// neighbour entry for the far end. It returns the bridge and the far
// end's address (a tunnel port's remote_ip). It skips the test when the
// /24 it drew is in use on this machine. The bridge goes with the test.
func TunnelUnderlay(t testing.TB) (under *Bridge, remote string) {
	t.Helper()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ovslab: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	under = NewBridge(t, BridgeOptions{})
	under.AddPort("", 1)
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	net := fmt.Sprintf("198.%d.%d.", 18+int(b[0]&1), b[1]&^3)
	local, remote := net+strconv.Itoa(int(b[1]&^3)+1), net+strconv.Itoa(int(b[1]&^3)+2)
	if strings.Contains(run("ip", "-4", "addr"), net) {
		t.Skipf("%s0/24 is in use on this machine", net)
	}
	run("ip", "link", "set", "dev", under.Name, "up")
	run("ip", "addr", "add", local+"/30", "dev", under.Name)
	under.AddFlow("table=0,priority=1,in_port=LOCAL,ip,nw_proto=47,actions=output:1")
	WaitFor(t, 10*time.Second, "OVS learns the underlay route", func() bool {
		return strings.Contains(run("ovs-appctl", "ovs/route/show"), "dev "+under.Name)
	})
	run("ovs-appctl", "tnl/neigh/set", under.Name, remote, "02:00:00:00:00:fe")
	return under, remote
}
