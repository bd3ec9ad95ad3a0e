package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestOverlayLabScript runs `make lab`'s script (test/mininet/overlay/
// lab.sh) the way a person would: up, the demo VMs ping over GRE and over
// VLAN 100 on physnet1, the internet namespace of the external network
// serves HTTP, down, and nothing of it is left. Its own prefix
// and a free management subnet keep it clear of a lab someone has up.
func TestOverlayLabScript(t *testing.T) {
	hvlab.RequireE2E(t)
	root, err := ovslab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "test/mininet/overlay/lab.sh")
	addrs, _ := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	mgmt := ""
	for k := 0; k < 50; k++ {
		x := 200 + rand.IntN(50)
		if !strings.Contains(string(addrs), fmt.Sprintf("169.254.%d.", x)) {
			mgmt = fmt.Sprintf("169.254.%d", x)
			break
		}
	}
	if mgmt == "" {
		t.Fatal("no free management subnet")
	}
	prefix := fmt.Sprintf("tl%03x", rand.IntN(0xfff))
	dir := t.TempDir()
	env := append(os.Environ(), "LAB_PREFIX="+prefix, "LAB_DIR="+filepath.Join(dir, "lab"), "LAB_MGMT="+mgmt)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := run("down"); err != nil {
			t.Logf("lab.sh down: %v\n%s", err, out)
		}
	})
	if out, err := run("up"); err != nil {
		t.Fatalf("lab.sh up: %v\n%s", err, out)
	}
	ping := func(vm, dst string) {
		out, err := exec.Command("ip", "netns", "exec", prefix+"-"+vm, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst).CombinedOutput()
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Errorf("%s -> %s: %v\n%s", vm, dst, err, out)
		}
	}
	ping("vm1", "10.0.0.2") // GRE between hv1 and hv2
	ping("vm3", "10.0.1.4") // VLAN 100 on physnet1
	// The external network's internet namespace serves HTTP, and br-ex
	// is on every hypervisor.
	if out, err := exec.Command("ip", "netns", "exec", prefix+"-inet", "curl", "-s", "-m", "5", "http://198.51.100.1/cgi-bin/ip").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "198.51.100.1" {
		t.Errorf("internet HTTP /cgi-bin/ip: %v %q", err, out)
	}
	for n := 1; n <= 3; n++ {
		rd := filepath.Join(dir, "lab", fmt.Sprintf("hv%d", n))
		cmd := exec.Command("ip", "netns", "exec", fmt.Sprintf("%s-hv%d", prefix, n), "ovs-vsctl", "list-ports", "br-ex")
		cmd.Env = append(os.Environ(), "OVS_RUNDIR="+rd)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "eth-ex" {
			t.Errorf("hv%d br-ex ports: %v %q", n, err, out)
		}
	}
	if out, err := run("status"); err != nil || !strings.Contains(out, prefix) {
		t.Errorf("lab.sh status: %v\n%s", err, out)
	}
	if out, err := run("down"); err != nil {
		t.Fatalf("lab.sh down: %v\n%s", err, out)
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(ns), prefix) || strings.Contains(string(links), prefix) {
		t.Errorf("lab.sh down left %s behind:\n%s\n%s", prefix, ns, links)
	}
	if ps, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "lab", "www")).Output(); len(strings.TrimSpace(string(ps))) != 0 {
		t.Errorf("lab.sh down left the internet's httpd running: %s", ps)
	}
}
