package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// startReplicas runs n controller replicas on one etcd cluster.
func startReplicas(t *testing.T, endpoints []string, n int) []*controller {
	var cs []*controller
	for i := 1; i <= n; i++ {
		cs = append(cs, startController(t, "--etcd-endpoints", strings.Join(endpoints, ","), "--replica-id", fmt.Sprintf("r%d", i)))
	}
	return cs
}

func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if strings.Contains(url, "/cluster/") {
		cluster.Authorize(req, []byte(e2eClusterSecret))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *controller) status() (*cluster.Status, error) {
	var st cluster.Status
	return &st, getJSON("http://"+c.API+cluster.StatusPath, &st)
}

// localMaster reports whether replica c masters dpid, and since when.
func (c *controller) localMaster(dpid string) (bool, time.Time) {
	var l struct {
		Switches map[string]struct {
			Master bool   `json:"master"`
			Since  string `json:"since"`
		} `json:"switches"`
	}
	if getJSON("http://"+c.API+"/cluster/v1/local", &l) != nil {
		return false, time.Time{}
	}
	s, ok := l.Switches[dpid]
	if !ok || !s.Master {
		return false, time.Time{}
	}
	ts, _ := time.Parse(time.RFC3339Nano, s.Since)
	return true, ts
}

// masterOf finds the replica mastering dpid (from a live replica's status).
func masterOf(t *testing.T, cs []*controller, dpid string) (*controller, int64) {
	t.Helper()
	for _, c := range cs {
		if c.Exited() {
			continue
		}
		st, err := c.status()
		if err != nil {
			continue
		}
		for _, s := range st.Switches {
			if s.DPID == dpid && s.Master != "" {
				for _, cc := range cs {
					if cc.id() == s.Master {
						return cc, s.Generation
					}
				}
			}
		}
	}
	return nil, 0
}

// waitSettled waits until every listed switch has a master and the
// assignment stayed the same for two seconds (startup rebalancing done).
func waitSettled(t *testing.T, cs []*controller, dpids []string) {
	t.Helper()
	var last string
	stable := time.Time{}
	waitFor(t, 30*time.Second, "settled mastership", func() bool {
		var parts []string
		for _, d := range dpids {
			m, g := masterOf(t, cs, d)
			if m == nil {
				last, stable = "", time.Time{}
				return false
			}
			parts = append(parts, fmt.Sprintf("%s=%s/%d", d, m.id(), g))
		}
		cur := strings.Join(parts, ",")
		if cur != last {
			last, stable = cur, time.Now()
			return false
		}
		return time.Since(stable) >= 2*time.Second
	})
}

func labDPIDs(base uint64, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("%016x", base+uint64(i)))
	}
	return out
}

func (c *controller) id() string {
	for i, a := range c.args {
		if a == "--replica-id" {
			return c.args[i+1]
		}
	}
	return ""
}

// lab is a Mininet topology run by test/mininet/pingall.py --hold.
type lab struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
	out   strings.Builder
}

func startLab(t *testing.T, topo string, cs []*controller, dpidBase uint64, hold time.Duration) *lab {
	t.Helper()
	ovslab.RequireMininet(t)
	root, _ := ovslab.RepoRoot()
	args := []string{filepath.Join(root, "test/mininet/pingall.py"), "--topo", topo, "--all-controllers",
		"--dpid-base", fmt.Sprintf("0x%x", dpidBase), "--hold", fmt.Sprint(int(hold.Seconds())), "--timeout", "60"}
	for _, c := range cs {
		args = append(args, "--controller", c.OF)
	}
	l := &lab{cmd: exec.Command("/usr/bin/python3", args...), lines: make(chan string, 100), done: make(chan error, 1)}
	stdout, _ := l.cmd.StdoutPipe()
	l.cmd.Stderr = &l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			l.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-l.done:
			case <-time.After(15 * time.Second):
				l.cmd.Process.Kill()
			}
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
		l.done <- l.cmd.Wait()
	}()
	return l
}

// expect waits for a stdout line with the prefix.
func (l *lab) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				t.Fatalf("lab ended before %q:\n%s", prefix, l.out.String())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			if strings.HasPrefix(line, "PINGALL") && !strings.Contains(line, "loss=0 ") {
				t.Fatalf("lab pingall failed: %s\n%s", line, l.out.String())
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q:\n%s", prefix, l.out.String())
		}
	}
}

var holdRe = regexp.MustCompile(`HOLD sent=(\d+) received=(\d+)`)

func (l *lab) holdResult(t *testing.T, timeout time.Duration) (int, int) {
	t.Helper()
	line := l.expect(t, "HOLD sent=", timeout)
	m := holdRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("bad hold line %q", line)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return sent, recv
}

func bridgeByDPID(t *testing.T, dpid string) string {
	t.Helper()
	out, err := exec.Command("ovs-vsctl", "--bare", "--columns=name", "find", "bridge", "other_config:datapath-id="+dpid).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("no bridge with dpid %s: %v", dpid, err)
	}
	return strings.TrimSpace(string(out))
}

func durations(t *testing.T, br string) map[string]float64 {
	t.Helper()
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", br).Output()
	if err != nil {
		t.Fatalf("dump-flows %s: %v", br, err)
	}
	fs, err := ovslab.ParseDumpFlows(string(out))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, f := range fs {
		m[f.Key()] = f.DurationSec
	}
	return m
}

// checkNotReadded asserts every flow present before is still there and
// aged by at least elapsed: none was deleted and re-added.
func checkNotReadded(t *testing.T, br string, before map[string]float64, elapsed time.Duration) {
	t.Helper()
	after := durations(t, br)
	for k, d := range before {
		a, ok := after[k]
		if !ok {
			t.Errorf("%s: flow %s disappeared", br, k)
			continue
		}
		if a+0.01 < d+elapsed.Seconds() {
			t.Errorf("%s: flow %s re-added (duration %.3f before, %.3f after %.1fs)", br, k, d, a, elapsed.Seconds())
		}
	}
}

const labDPIDBase = 0x4e00

func dpidHex(n int) string { return fmt.Sprintf("%016x", labDPIDBase+n) }

// Kill -9 the master of a switch while a host pings another every 10 ms:
// no ping is lost, another replica takes over, no flow is re-added.
func TestFailoverKillMasterLosesNoPackets(t *testing.T) {
	ovslab.RequireE2E(t)
	etcd := etcdtest.Start(t, 3)
	cs := startReplicas(t, etcd.Endpoints(), 3)
	l := startLab(t, "linear,4", cs, labDPIDBase, 20*time.Second)
	l.expect(t, "HOLD start", 90*time.Second)
	dpid := dpidHex(1)
	waitSettled(t, cs, labDPIDs(labDPIDBase, 4))
	old, gen := masterOf(t, cs, dpid)
	br := bridgeByDPID(t, dpid)
	before := durations(t, br)
	t0 := time.Now()
	old.Signal(syscall.SIGKILL)
	var took time.Duration
	waitFor(t, 10*time.Second, "a new master", func() bool {
		for _, c := range cs {
			if c == old {
				continue
			}
			if ok, since := c.localMaster(dpid); ok && since.After(t0) {
				took = since.Sub(t0)
				return true
			}
		}
		return false
	})
	t.Logf("killed %s; new master after %s", old.id(), took.Round(time.Microsecond))
	sent, recv := l.holdResult(t, 90*time.Second)
	if sent == 0 || recv != sent {
		t.Fatalf("pings lost across failover: sent %d received %d", sent, recv)
	}
	t.Logf("pings: %d sent, %d received", sent, recv)
	checkNotReadded(t, br, before, time.Since(t0))
	nm, ngen := masterOf(t, cs, dpid)
	if nm == nil || nm == old || ngen <= gen {
		t.Fatalf("after failover master=%v generation %d (was %d)", nm, ngen, gen)
	}
	// `controller status` shows the survivors and who masters what.
	out, err := exec.Command(controllerBin, "status", "--api", nm.API, "--cluster-secret", e2eClusterSecret).CombinedOutput()
	if err != nil {
		t.Fatalf("controller status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), dpid+"\t"+nm.id()) || strings.Contains(string(out), old.id()+"\thealthy") {
		t.Fatalf("controller status does not show %s mastering %s without %s:\n%s", nm.id(), dpid, old.id(), out)
	}
	t.Logf("controller status:\n%s", out)
}

// SIGSTOP a master: another replica takes over; after SIGCONT the old
// master is fenced: the switch holds it as slave and it gave up.
func TestFencingFrozenMaster(t *testing.T) {
	ovslab.RequireE2E(t)
	etcd := etcdtest.Start(t, 1)
	cs := startReplicas(t, etcd.Endpoints(), 3)
	l := startLab(t, "linear,4", cs, labDPIDBase+0x100, 25*time.Second)
	l.expect(t, "HOLD start", 90*time.Second)
	dpid := fmt.Sprintf("%016x", labDPIDBase+0x100+1)
	waitSettled(t, cs, labDPIDs(labDPIDBase+0x100, 4))
	old, gen := masterOf(t, cs, dpid)
	br := bridgeByDPID(t, dpid)
	before := durations(t, br)
	t0 := time.Now()
	old.Signal(syscall.SIGSTOP)
	var nm *controller
	var ngen int64
	waitFor(t, 15*time.Second, "takeover from the frozen master", func() bool {
		nm, ngen = masterOf(t, cs, dpid)
		return nm != nil && nm != old && ngen > gen
	})
	t.Logf("froze %s; %s took over (generation %d > %d) after %s", old.id(), nm.id(), ngen, gen, time.Since(t0).Round(time.Millisecond))
	mark := len(nm.Log())
	old.Signal(syscall.SIGCONT)
	old.WaitLog("lost mastership", 10*time.Second)
	// The switch has exactly one master, and it is not the thawed replica
	// holding its old generation. Only this bridge's controller rows: the
	// thawed replica may be master of another bridge by now, and its
	// target is the same on every bridge.
	waitFor(t, 10*time.Second, "the thawed replica to be a slave or re-elected", func() bool {
		roles := map[string]string{}
		ids, _ := exec.Command("ovs-vsctl", "--bare", "get", "bridge", br, "controller").Output()
		uuids := strings.FieldsFunc(string(ids), func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' || r == '\n' })
		if len(uuids) == 0 {
			return false
		}
		out, _ := exec.Command("ovs-vsctl", append([]string{"--bare", "--columns=target,role", "list", "controller"}, uuids...)...).Output()
		f := strings.Fields(string(out))
		for i := 0; i+1 < len(f); i += 2 {
			roles[strings.Trim(f[i], `"`)] = f[i+1]
		}
		m, g := masterOf(t, cs, dpid)
		return roles["tcp:"+old.OF] == "slave" || (m == old && g > ngen)
	})
	// The thawed replica must not fence the healthy ones: its own stall
	// is not theirs.
	if after := nm.Log()[mark:]; strings.Contains(after, "session lease lost") {
		t.Fatalf("the thawed replica fenced healthy %s:\n%s", nm.id(), after)
	}
	if strings.Contains(old.Log(), "IS_SLAVE") {
		t.Logf("the switch refused the thawed replica's messages (expected if it tried)")
	}
	sent, recv := l.holdResult(t, 90*time.Second)
	if recv != sent {
		t.Fatalf("pings lost: sent %d received %d", sent, recv)
	}
	checkNotReadded(t, br, before, time.Since(t0))
}

// Restart every replica in turn while pinging: nothing is lost.
func TestRollingRestartLosesNoPackets(t *testing.T) {
	ovslab.RequireE2E(t)
	etcd := etcdtest.Start(t, 1)
	cs := startReplicas(t, etcd.Endpoints(), 3)
	l := startLab(t, "linear,4", cs, labDPIDBase+0x200, 30*time.Second)
	l.expect(t, "HOLD start", 90*time.Second)
	holdStart := time.Now()
	for _, c := range cs {
		c.restart()
		time.Sleep(3 * time.Second)
	}
	// Check mastership while the lab is still up.
	waitFor(t, 20*time.Second, "masters after the rolling restart", func() bool {
		for _, d := range labDPIDs(labDPIDBase+0x200, 4) {
			if m, _ := masterOf(t, cs, d); m == nil {
				return false
			}
		}
		return true
	})
	if time.Since(holdStart) > 28*time.Second {
		t.Fatal("the rolling restart outlasted the ping hold; the check above saw no traffic")
	}
	sent, recv := l.holdResult(t, 90*time.Second)
	if sent == 0 || recv != sent {
		t.Fatalf("pings lost during rolling restart: sent %d received %d", sent, recv)
	}
	t.Logf("pings: %d sent, %d received", sent, recv)
}

// etcd down for 30 s: pings flow, the API says 503, and everything
// resumes by itself.
func TestEtcdOutage(t *testing.T) {
	ovslab.RequireE2E(t)
	etcd := etcdtest.Start(t, 1)
	cs := startReplicas(t, etcd.Endpoints(), 2)
	l := startLab(t, "linear,4", cs, labDPIDBase+0x300, 55*time.Second)
	l.expect(t, "HOLD start", 90*time.Second)
	etcd.Members[0].Stop()
	waitFor(t, 10*time.Second, "503 from /healthz", func() bool {
		resp, err := http.Get("http://" + cs[0].API + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	sreq, _ := http.NewRequest(http.MethodGet, "http://"+cs[0].API+cluster.StatusPath, nil)
	cluster.Authorize(sreq, []byte(e2eClusterSecret))
	resp, err := http.DefaultClient.Do(sreq)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status during outage: %v %v", resp, err)
	}
	resp.Body.Close()
	time.Sleep(30 * time.Second)
	etcd.Members[0].Restart()
	etcd.Members[0].WaitHealthy(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		ok := true
		for i := 1; i <= 4; i++ {
			if m, _ := masterOf(t, cs, fmt.Sprintf("%016x", labDPIDBase+0x300+i)); m == nil {
				ok = false
			}
		}
		if ok {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("switches did not get masters again after etcd returned")
	}
	resp, err = http.Get("http://" + cs[0].API + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after recovery: %v %v", resp, err)
	}
	resp.Body.Close()
	sent, recv := l.holdResult(t, 90*time.Second)
	if sent == 0 || recv != sent {
		t.Fatalf("pings lost during the etcd outage: sent %d received %d", sent, recv)
	}
	t.Logf("pings: %d sent, %d received", sent, recv)
}
