package ovslab_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestBridgeE2E proves the harness against the real OVS: bridge creation,
// ports, flows (add, dump, trace, strict delete, bundle re-add from Spec),
// groups and meters.
func TestBridgeE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{DPID: 0xabcdef0123456789})
	if len(br.Name) > 15 || !strings.HasPrefix(br.Name, "nb") {
		t.Fatalf("bad bridge name %q", br.Name)
	}
	// ovs-vsctl quotes a string only when it could be misread (as a number).
	got := strings.ReplaceAll(ovslab.Vsctl(t, "get", "bridge", br.Name, "datapath_type", "fail_mode", "protocols", "other_config:datapath-id"), `"`, "")
	if got != "netdev\nsecure\n[OpenFlow13]\nabcdef0123456789" {
		t.Fatalf("bridge config:\n%s", got)
	}
	p1 := br.AddPort("", 1)
	p2 := br.AddPort("", 2)
	if br.PortNo(p1) != 1 || br.PortNo(p2) != 2 {
		t.Fatalf("ports: %s=%d %s=%d", p1, br.PortNo(p1), p2, br.PortNo(p2))
	}
	// A secure bridge without controller starts with no flows at all.
	if flows := br.DumpFlows(); len(flows) != 0 {
		t.Fatalf("fresh bridge has flows: %v", ovslab.FlowKeys(flows))
	}

	br.AddFlow("table=0,priority=100,cookie=0x1234,in_port=1,ip,nw_dst=10.0.0.2,idle_timeout=60,actions=output:2")
	br.AddFlow("table=0,priority=0,actions=drop")
	flows := br.DumpFlows()
	if len(flows) != 2 {
		t.Fatalf("got %d flows: %v", len(flows), ovslab.FlowKeys(flows))
	}
	f := flows[0]
	if f.Cookie != 0x1234 || f.Table != 0 || f.Priority != 100 || f.IdleTimeout != 60 ||
		f.Match != "ip,in_port=1,nw_dst=10.0.0.2" || f.Actions != "output:2" {
		t.Fatalf("dumped flow: %+v", f)
	}
	t.Logf("dumped: %s", f.Raw)

	trace := br.Trace("in_port=1,ip,nw_dst=10.0.0.2")
	if !strings.Contains(trace, "cookie 0x1234") {
		t.Errorf("trace does not show the flow:\n%s", trace)
	}
	if got := ovslab.DatapathActions(trace); got == "" || got == "drop" {
		t.Errorf("datapath actions %q, want an output:\n%s", got, trace)
	}
	if got := br.TraceDatapathActions("in_port=1,ip,nw_dst=10.0.0.3"); got != "drop" {
		t.Errorf("unmatched packet: datapath actions %q, want drop", got)
	}

	// Strict delete of exactly that flow.
	br.DelFlows(f.MatchSpec())
	after := br.DumpFlows()
	if len(after) != 1 || after[0].Priority != 0 {
		t.Fatalf("after strict delete: %v", ovslab.FlowKeys(after))
	}
	// Re-adding from Spec() gives the same Key (stats aside).
	br.AddFlows(f.Spec())
	again := br.DumpFlows()
	if len(again) != 2 || again[0].Key() != f.Key() {
		t.Fatalf("re-added from Spec:\n got %v\nwant %s", ovslab.FlowKeys(again), f.Key())
	}

	br.Ofctl("add-group", br.Name, "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2")
	br.Ofctl("add-meter", br.Name, "meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100")
	if g := br.DumpGroups(); len(g) != 1 || !strings.HasPrefix(g[0], "group_id=1,type=select") {
		t.Errorf("groups: %q", g)
	}
	if m := br.DumpMeters(); len(m) != 1 || !strings.Contains(m[0], "meter=1") || !strings.Contains(m[0], "rate=1000") {
		t.Errorf("meters: %q", m)
	}
	br.DelAllFlows()
	if n := len(br.DumpFlows()); n != 0 {
		t.Errorf("%d flows left after DelAllFlows", n)
	}
}

func TestVethE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	port, peer := br.AddVeth("", 7)
	if br.PortNo(port) != 7 {
		t.Fatalf("veth port %s: ofport %d", port, br.PortNo(port))
	}
	if out, err := exec.Command("ip", "link", "show", "dev", peer).CombinedOutput(); err != nil {
		t.Fatalf("peer %s: %v %s", peer, err, out)
	}
}

// TestControllerE2E runs ovs-testcontroller (OpenFlow 1.3) as a controller
// and checks connection, role and disconnection tracking and Proc.
func TestControllerE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	tc, err := exec.LookPath("ovs-testcontroller")
	if err != nil {
		t.Fatal("ovs-testcontroller not found: run scripts/deps.sh (or make test)")
	}
	port := ovslab.FreePort(t)
	target := fmt.Sprintf("tcp:127.0.0.1:%d", port)
	proc := ovslab.StartProcess(t, tc, []string{"-O", "OpenFlow13", "--unixctl=" + t.TempDir() + "/tc.ctl",
		fmt.Sprintf("ptcp:%d:127.0.0.1", port)}, nil)

	// Two bridges: one OpenFlow13-only, one that also allows OpenFlow10.
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{target}, MaxBackoff: time.Second})
	br10 := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{target}, AllowOF10: true, InactivityProbe: 5 * time.Second})
	start := time.Now()
	br.WaitConnected(10 * time.Second)
	br10.WaitConnected(10 * time.Second)
	t.Logf("both bridges connected after %v", time.Since(start))
	if !br.ControllerConnected() {
		t.Error("ControllerConnected false after WaitConnected")
	}
	if got := ovslab.Vsctl(t, "get", "bridge", br10.Name, "protocols"); got != "[OpenFlow10, OpenFlow13]" {
		t.Errorf("protocols %s", got)
	}
	if got := ovslab.Vsctl(t, "get", "controller", br10.Controllers()[0].UUID, "inactivity_probe"); got != "5000" {
		t.Errorf("inactivity_probe %s", got)
	}
	// Roles come from OVSDB (every 5 s); an OpenFlow 1.3 controller that
	// sends no role request is "other".
	br.WaitRole(target, "other", 8*time.Second)
	if roles := br.ControllerRoles(); roles[target] != "other" {
		t.Errorf("roles: %v", roles)
	}

	// The learning controller installs the table-miss flow.
	flows := br.DumpFlows()
	if len(flows) == 0 {
		t.Errorf("no flows from ovs-testcontroller")
	}

	proc.Signal(syscall.SIGTERM)
	if exited, _ := proc.Wait(5 * time.Second); !exited {
		t.Fatal("ovs-testcontroller ignored SIGTERM")
	}
	start = time.Now()
	br.WaitDisconnected(10 * time.Second)
	t.Logf("disconnect seen after %v", time.Since(start))

	// Controllers can be replaced.
	br.SetControllers()
	if cs := br.Controllers(); len(cs) != 0 {
		t.Errorf("controllers after SetControllers(): %v", cs)
	}
}

func TestProcE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	// A process that ignores SIGTERM is SIGKILLed after StopGrace by Stop.
	p := ovslab.StartProcess(t, "bash", []string{"-c", "trap '' TERM; echo ready $FOO; while :; do sleep 0.1; done"}, []string{"FOO=bar"})
	p.WaitLog("ready bar", 5*time.Second)
	start := time.Now()
	err := p.Stop()
	if d := time.Since(start); d < ovslab.StopGrace-500*time.Millisecond || d > ovslab.StopGrace+3*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("exit error %v, want killed", err)
	}
	q := ovslab.StartProcess(t, "sleep", []string{"30"}, nil)
	q.Kill()
	if !q.Exited() {
		t.Error("Kill did not reap")
	}
}

// TestSweepStaleE2E: a bridge owned by a dead PID is removed, one owned by
// a live PID and one without owner are kept.
func TestSweepStaleE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := dead.Process.Pid
	stale := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	live := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	ovslab.Vsctl(t, "set", "bridge", stale.Name, fmt.Sprintf("external_ids:%s=%d", ovslab.OwnerKey, deadPID))
	if err := ovslab.SweepStale(); err != nil {
		t.Fatal(err)
	}
	brs := ovslab.Vsctl(t, "list-br")
	if strings.Contains(brs, stale.Name) {
		t.Errorf("stale bridge %s survived", stale.Name)
	}
	if !strings.Contains(brs, live.Name) {
		t.Errorf("live bridge %s was deleted", live.Name)
	}
	if got := ovslab.Vsctl(t, "get", "bridge", live.Name, "external_ids:"+ovslab.OwnerKey); got != fmt.Sprintf("\"%d\"", os.Getpid()) {
		t.Errorf("owner of live bridge: %s", got)
	}
}

// ofp13FlowMod builds an OpenFlow 1.3 FLOW_MOD (empty match, priority 100)
// with one apply-actions instruction holding actions.
func ofp13FlowMod(xid uint32, actions []byte) []byte {
	body := make([]byte, 40)                          // cookie..pad after flags
	binary.BigEndian.PutUint16(body[22:], 100)        // priority
	binary.BigEndian.PutUint32(body[24:], 0xffffffff) // buffer_id
	binary.BigEndian.PutUint32(body[28:], 0xffffffff) // out_port
	binary.BigEndian.PutUint32(body[32:], 0xffffffff) // out_group
	match := []byte{0, 1, 0, 4, 0, 0, 0, 0}
	inst := make([]byte, 8, 8+len(actions))
	binary.BigEndian.PutUint16(inst[0:], 4) // OFPIT_APPLY_ACTIONS
	binary.BigEndian.PutUint16(inst[2:], uint16(8+len(actions)))
	inst = append(inst, actions...)
	msg := []byte{4, 14, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[4:], xid)
	msg = append(append(append(msg, body...), match...), inst...)
	binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
	return msg
}

func TestOfpPrintE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	hello, _ := hex.DecodeString("0400000800000001")
	if got := ovslab.OfpPrint(t, hello); !strings.HasPrefix(got, "OFPT_HELLO (OF1.3) (xid=0x1)") {
		t.Errorf("hello: %q", got)
	}
	output1 := []byte{0, 0, 0, 16, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0}
	fm := ofp13FlowMod(7, output1)
	if got := ovslab.OfpPrint(t, fm); !strings.Contains(got, "OFPT_FLOW_MOD (OF1.3) (xid=0x7): ADD priority=100 actions=output:1") {
		t.Errorf("flow mod: %q", got)
	}
	// Two messages back to back.
	if got := ovslab.OfpPrint(t, append(append([]byte{}, hello...), fm...)); strings.Count(got, "OF1.3") != 2 {
		t.Errorf("two messages: %q", got)
	}
	// A message too big for a command-line argument goes through a file.
	big := ofp13FlowMod(8, []byte(strings.Repeat(string(output1), 4000)))
	if got := ovslab.OfpPrint(t, big); !strings.Contains(got, "xid=0x8") {
		t.Errorf("big flow mod: %.200q", got)
	}

	bad := map[string][]byte{
		"bad action type": ofp13FlowMod(9, []byte{0x77, 0x77, 0, 8, 0, 0, 0, 0}),
		"bad length":      {4, 14, 0, 8, 0, 0, 0, 1},
		"truncated":       fm[:20],
		"short":           hello[:6],
		"trailing bytes":  append(append([]byte{}, hello...), 1, 2, 3),
	}
	for name, msg := range bad {
		text, err := ovslab.OfpDecode(msg)
		if err == nil {
			t.Errorf("%s: no error; ovs-ofctl said %q", name, text)
		} else {
			t.Logf("%s: %v", name, firstLine(err.Error()))
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestMininetPingallE2E runs test/mininet/pingall.py against
// ovs-testcontroller speaking OpenFlow 1.3.
func TestMininetPingallE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	ovslab.RequireMininet(t)
	tc, err := exec.LookPath("ovs-testcontroller")
	if err != nil {
		t.Fatal("ovs-testcontroller not found: run scripts/deps.sh (or make test)")
	}
	port := ovslab.FreePort(t)
	ovslab.StartProcess(t, tc, []string{"-O", "OpenFlow13", "--unixctl=" + t.TempDir() + "/tc.ctl",
		fmt.Sprintf("ptcp:%d:127.0.0.1", port)}, nil)
	for _, topo := range []string{"linear,4", "tree,2,2"} {
		res := ovslab.Pingall(t, ovslab.PingallOptions{
			Topo:        topo,
			Controllers: []string{fmt.Sprintf("127.0.0.1:%d", port)},
			Timeout:     30 * time.Second,
		})
		t.Logf("%s: loss=%v%% sent=%d received=%d in %v", topo, res.LossPct, res.Sent, res.Received, res.Duration)
		if !res.OK() {
			t.Errorf("%s: pingall failed:\n%s", topo, res.Output)
		}
	}
}
