package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/store"
)

func TestNames(t *testing.T) {
	a, b := TunnelPortName("hv1"), TunnelPortName("hv2")
	if len(a) != 15 || !strings.HasPrefix(a, "gre-") || a == b || a != TunnelPortName("hv1") {
		t.Fatalf("tunnel names %q %q", a, b)
	}
	if got := names.TunnelPortName("compute-0042.example.org"); len(got) != 15 {
		t.Fatalf("long chassis name gives %q", got)
	}
	if names.PhysPortName("physnet1") != "phy-physnet1" || names.IntPortName("physnet1") != "int-physnet1" {
		t.Fatal("short physnet names")
	}
	if l := names.PhysPortName("a-very-long-physical-network"); len(l) != 15 || !strings.HasPrefix(l, "phy-") {
		t.Fatalf("long physnet gives %q", l)
	}
	if names.VMPortName("4e8e5957-649f-477b-9e5b-f1f75b21c03c") != "tap4e8e5957-64" {
		t.Fatal("tap name")
	}
}

func TestDesiredAndDiffTunnels(t *testing.T) {
	ch := []*model.Chassis{{Name: "hv3", TunnelIP: "10.0.0.3"}, {Name: "hv1", TunnelIP: "10.0.0.1"}, {Name: "hv2", TunnelIP: "10.0.0.2"}, {Name: "hv4"}}
	d := DesiredTunnels("hv1", ch)
	if len(d) != 2 || d[0].Port > d[1].Port {
		t.Fatalf("desired %+v", d)
	}
	for _, tn := range d {
		if tn.Peer == "hv1" || tn.Peer == "hv4" || tn.Port != TunnelPortName(tn.Peer) {
			t.Fatalf("desired %+v", d)
		}
	}
	cur := map[string]string{
		TunnelPortName("hv2"):  "10.9.9.9", // moved
		TunnelPortName("gone"): "10.0.0.7", // chassis deleted
	}
	ops := DiffTunnels(d, cur, true)
	if len(ops.Add) != 1 || ops.Add[0].Peer != "hv3" || len(ops.Update) != 1 || ops.Update[0].RemoteIP != "10.0.0.2" ||
		!reflect.DeepEqual(ops.Delete, []string{TunnelPortName("gone")}) {
		t.Fatalf("ops %+v", ops)
	}
	if ops := DiffTunnels(d, cur, false); len(ops.Delete) != 0 {
		t.Fatal("pruned before the chassis list was complete")
	}
	if !DiffTunnels(d, map[string]string{d[0].Port: d[0].RemoteIP, d[1].Port: d[1].RemoteIP}, true).Empty() {
		t.Fatal("in sync but not empty")
	}
}

// fakeOVS is an in-memory OVS database.
type fakeOVS struct {
	mu      sync.Mutex
	bridges map[string]map[string]map[string]string // bridge -> port -> column -> value
	dptype  map[string]string
	ctl     map[string][]string
	fail    error
	ofports int // OpenFlow port numbers handed out so far
}

func newFakeOVS() *fakeOVS {
	return &fakeOVS{bridges: map[string]map[string]map[string]string{}, dptype: map[string]string{}, ctl: map[string][]string{}}
}

func (f *fakeOVS) EnsureBridge(_ context.Context, b Bridge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.bridges[b.Name] == nil {
		f.bridges[b.Name] = map[string]map[string]string{}
	}
	f.dptype[b.Name], f.ctl[b.Name] = b.DatapathType, b.Controllers
	return nil
}

func (f *fakeOVS) EnsurePlainBridge(_ context.Context, name, dt string) error {
	return f.EnsureBridge(context.Background(), Bridge{Name: name, DatapathType: dt})
}

func (f *fakeOVS) DatapathID(_ context.Context, bridge string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bridges[bridge] == nil {
		return "", errors.New("no bridge")
	}
	return "00000000000000" + fmt.Sprintf("%02x", len(bridge)), nil
}

func (f *fakeOVS) Tunnels(_ context.Context, bridge string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for p, cols := range f.bridges[bridge] {
		if cols["type"] == "gre" {
			out[p] = cols["remote_ip"]
		}
	}
	return out, nil
}

func (f *fakeOVS) setPort(bridge, port string, cols map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bridges[bridge] == nil {
		return errors.New("no bridge " + bridge)
	}
	// Like OVS: a port keeps its OpenFlow number while it exists.
	if old := f.bridges[bridge][port]; old != nil && old["ofport"] != "" {
		cols["ofport"] = old["ofport"]
	} else {
		f.ofports++
		cols["ofport"] = strconv.Itoa(f.ofports)
	}
	f.bridges[bridge][port] = cols
	return nil
}

func (f *fakeOVS) SetGRE(_ context.Context, bridge, port, ip string) error {
	return f.setPort(bridge, port, map[string]string{"type": "gre", "remote_ip": ip, "key": "flow"})
}

func (f *fakeOVS) SetPatch(_ context.Context, bridge, port, peer string) error {
	return f.setPort(bridge, port, map[string]string{"type": "patch", "peer": peer})
}

func (f *fakeOVS) DeletePort(_ context.Context, bridge, port string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.bridges[bridge], port)
	return nil
}

func (f *fakeOVS) Interfaces(_ context.Context, bridge string) (map[string]Iface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Iface{}
	for p, cols := range f.bridges[bridge] {
		n, _ := strconv.Atoi(cols["ofport"])
		out[p] = Iface{OFPort: uint32(n), IfaceID: cols["iface-id"]}
	}
	return out, nil
}

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func openStore(t *testing.T) *store.Store { return etcdtest.Embedded(t) }

// backends runs body against the fake OVS and, with NIMBUS_E2E=1, the
// system's Open vSwitch (userspace datapath, a uniquely named bridge).
func backends(t *testing.T, body func(t *testing.T, o OVS, bridge, suffix string)) {
	suffix := fmt.Sprintf("%05d", os.Getpid()%100000)
	t.Run("fake", func(t *testing.T) { body(t, newFakeOVS(), "br-int", suffix) })
	t.Run("ovs", func(t *testing.T) {
		if os.Getenv("NIMBUS_E2E") != "1" {
			t.Skip("set NIMBUS_E2E=1 to run against the system Open vSwitch")
		}
		if _, err := exec.LookPath("ovs-vsctl"); err != nil {
			t.Skip("no ovs-vsctl")
		}
		body(t, Vswitch{}, "nbti"+suffix, suffix)
	})
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentFollowsChassis(t *testing.T) {
	backends(t, func(t *testing.T, o OVS, bridge, sfx string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openStore(t)
		physnet, phyBr := "pn"+sfx, "nbtp"+sfx
		if v, ok := o.(Vswitch); ok {
			t.Cleanup(func() {
				c := context.Background()
				v.run(c, "--if-exists", "del-br", bridge)
				v.run(c, "--if-exists", "del-br", phyBr)
			})
		}
		a, err := New(Config{Chassis: "self" + sfx, TunnelIP: "127.0.0.1", Bridge: bridge, DatapathType: "netdev",
			Controllers: []string{"tcp:127.0.0.1:1"}, Mappings: map[string]string{physnet: phyBr}, OVS: o, Store: st,
			Resync: 200 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		waitFor(t, "chassis registration", func() (bool, string) {
			r, _, err := st.Get(ctx, model.KindChassis, "self"+sfx)
			if err != nil {
				return false, err.Error()
			}
			c := r.(*model.Chassis)
			return c.DPID != "" && c.DPID == a.DPID() && c.TunnelIP == "127.0.0.1" && c.Mappings[physnet] == phyBr, fmt.Sprintf("%+v", c)
		})
		want := func(exp map[string]string) func() (bool, string) {
			return func() (bool, string) {
				got, err := o.Tunnels(ctx, bridge)
				if err != nil {
					return false, err.Error()
				}
				return maps.Equal(got, exp), fmt.Sprint(got)
			}
		}
		p1, p2 := "peer1-"+sfx, "peer2-"+sfx
		for i, p := range []string{p1, p2} {
			if _, err := st.Create(ctx, &model.Chassis{Name: p, TunnelIP: fmt.Sprintf("127.0.0.%d", 11+i), DPID: "00000000000000a" + fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "two tunnel ports", want(map[string]string{TunnelPortName(p1): "127.0.0.11", TunnelPortName(p2): "127.0.0.12"}))

		r, rev, err := st.Get(ctx, model.KindChassis, p1)
		if err != nil {
			t.Fatal(err)
		}
		moved := *r.(*model.Chassis)
		moved.TunnelIP = "127.0.0.21"
		if _, err := st.Update(ctx, &moved, rev); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "peer1 re-pointed", want(map[string]string{TunnelPortName(p1): "127.0.0.21", TunnelPortName(p2): "127.0.0.12"}))

		_, rev, _ = st.Get(ctx, model.KindChassis, p2)
		if err := st.Delete(ctx, model.KindChassis, p2, rev); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "peer2's port removed", want(map[string]string{TunnelPortName(p1): "127.0.0.21"}))

		// An operator deletes our record: the agent puts it back.
		_, rev, _ = st.Get(ctx, model.KindChassis, "self"+sfx)
		if err := st.Delete(ctx, model.KindChassis, "self"+sfx, rev); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "re-registration", func() (bool, string) {
			_, _, err := st.Get(ctx, model.KindChassis, "self"+sfx)
			return err == nil, fmt.Sprint(err)
		})
		if f, ok := o.(*fakeOVS); ok {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.dptype[bridge] != "netdev" || !reflect.DeepEqual(f.ctl[bridge], []string{"tcp:127.0.0.1:1"}) ||
				f.bridges[bridge][names.PhysPortName(physnet)]["peer"] != names.IntPortName(physnet) ||
				f.bridges[phyBr][names.IntPortName(physnet)]["peer"] != names.PhysPortName(physnet) {
				t.Fatalf("bridge setup: %+v %+v", f.bridges, f.ctl)
			}
		}
		if v, ok := o.(Vswitch); ok {
			for col, exp := range map[string]string{"fail_mode": "secure", "datapath_type": "netdev", "protocols": "[OpenFlow13]"} {
				got, err := v.run(ctx, "get", "Bridge", bridge, col)
				if err != nil || strings.Trim(got, `"`) != exp {
					t.Errorf("bridge %s = %q (%v), want %q", col, got, err, exp)
				}
			}
			if got, _ := v.run(ctx, "get", "Interface", names.PhysPortName(physnet), "options:peer"); strings.Trim(got, `"`) != names.IntPortName(physnet) {
				t.Errorf("patch peer %q", got)
			}
		}
	})
}

func TestSetupFailureIsRetried(t *testing.T) {
	f := newFakeOVS()
	f.fail = errors.New("ovsdb down")
	st := openStore(t)
	a, _ := New(Config{Chassis: "hv", TunnelIP: "127.0.0.1", OVS: f, Store: st, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	time.Sleep(300 * time.Millisecond)
	if _, _, err := st.Get(ctx, model.KindChassis, "hv"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("registered while OVS was down: %v", err)
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	waitFor(t, "registration after OVS came back", func() (bool, string) {
		_, _, err := st.Get(ctx, model.KindChassis, "hv")
		return err == nil, fmt.Sprint(err)
	})
}

func TestNewRequiresIdentity(t *testing.T) {
	if _, err := New(Config{TunnelIP: "1.2.3.4"}); err == nil {
		t.Fatal("accepted a config without chassis name and store")
	}
}

func TestParseMappings(t *testing.T) {
	m, err := ParseMappings(" physnet1:br-phy, physnet2:br-ex ,")
	if err != nil || !maps.Equal(m, map[string]string{"physnet1": "br-phy", "physnet2": "br-ex"}) {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"physnet1", "physnet1:", ":br", "a:b,a:c", "p:a-bridge-name-too-long"} {
		if _, err := ParseMappings(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m, err := ParseMappings(""); err != nil || len(m) != 0 {
		t.Fatal("empty mappings")
	}
}

// The agent publishes its bridge's interfaces (external_ids:iface-id and
// OpenFlow port numbers) in the chassis record, and follows changes within
// a few polls.
func TestAgentPublishesInterfaces(t *testing.T) {
	backends(t, func(t *testing.T, o OVS, bridge, sfx string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openStore(t)
		vm := "nbtv" + sfx
		setIface := func(id string) {
			t.Helper()
			switch o := o.(type) {
			case *fakeOVS:
				if err := o.setPort(bridge, vm, map[string]string{"iface-id": id}); err != nil {
					t.Fatal(err)
				}
			case Vswitch:
				if _, err := o.run(ctx, "--may-exist", "add-port", bridge, vm, "--", "set", "Interface", vm, "type=internal",
					"external_ids:iface-id="+id); err != nil {
					t.Fatal(err)
				}
			}
		}
		if v, ok := o.(Vswitch); ok {
			t.Cleanup(func() { v.run(context.Background(), "--if-exists", "del-br", bridge) })
		}
		a, err := New(Config{Chassis: "self" + sfx, TunnelIP: "127.0.0.1", Bridge: bridge, DatapathType: "netdev",
			OVS: o, Store: st, Resync: time.Hour, IfacePoll: 50 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		// The bridge has no other port: the VM's is the only one
		// published, with the OpenFlow number OVS gave it.
		published := func(want map[string]string) func() (bool, string) {
			return func() (bool, string) {
				r, _, err := st.Get(ctx, model.KindChassis, "self"+sfx)
				if err != nil {
					return false, err.Error()
				}
				c := r.(*model.Chassis)
				ports := len(c.Ports) == 0
				if want != nil {
					ifaces, _ := o.Interfaces(ctx, bridge)
					ports = len(c.Ports) == 1 && c.Ports[vm] != 0 && c.Ports[vm] == ifaces[vm].OFPort
				}
				return c.DPID != "" && maps.Equal(c.Interfaces, want) && ports, fmt.Sprintf("%+v", c)
			}
		}
		waitFor(t, "registration without interfaces", published(nil))
		setIface("port-1")
		waitFor(t, "iface-id published", published(map[string]string{vm: "port-1"}))
		setIface("port-2")
		waitFor(t, "iface-id change published", published(map[string]string{vm: "port-2"}))
		if err := o.DeletePort(ctx, bridge, vm); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "interface removal published", published(nil))
	})
}

func TestParseInterfaces(t *testing.T) {
	js := `{"data":[["tapa",3,["map",[["attached-mac","fa:16:3e:00:00:01"],["iface-id","p1"]]]],` +
		`["other",4,["map",[["iface-id","p2"]]]],["nomap",5,["map",[]]],["new",["set",[]],["map",[]]],` +
		`["failed",-1,["map",[["iface-id","p3"]]]]],"headings":["name","ofport","external_ids"]}`
	got, err := parseInterfaces(js, map[string]bool{"tapa": true, "nomap": true, "new": true, "failed": true})
	want := map[string]Iface{"tapa": {3, "p1"}, "nomap": {OFPort: 5}, "new": {}, "failed": {IfaceID: "p3"}}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("parseInterfaces = %v, %v; want %v", got, err, want)
	}
	if _, err := parseInterfaces("not json", nil); err == nil {
		t.Fatal("no error for bad input")
	}
}

// Vswitch talks to the Open vSwitch that OVS_RUNDIR names, through
// go-openvswitch and through its ovs-vsctl fallback alike.
func TestVswitchHonoursOVSRundir(t *testing.T) {
	if _, err := exec.LookPath("ovs-vsctl"); err != nil {
		t.Skip("no ovs-vsctl")
	}
	dir := t.TempDir()
	t.Setenv("OVS_RUNDIR", dir)
	v := Vswitch{Timeout: time.Second}
	ctx := context.Background()
	for what, err := range map[string]error{
		"library (del-port)":     v.DeletePort(ctx, "br-nope", "p"),
		"fallback (datapath_id)": func() error { _, err := v.DatapathID(ctx, "br-nope"); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.HasPrefix(err.Error(), "node: ") {
			t.Errorf("%s: error %v, want one naming %s/db.sock", what, err, dir)
		}
	}
}
