package isolation

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/topology"
)

var update = flag.Bool("update", false, "rewrite golden files")

// state computes the switch's full state as switches.Manager would:
// the pipeline's miss flows plus the app's flows, each checked.
func state(t *testing.T, a *App, in app.Input) *flow.State {
	t.Helper()
	d, err := a.Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for _, f := range d.Flows {
		if err := pipeline.Check(f); err != nil {
			t.Errorf("contract: %v", err)
		}
		if st.AddFlow(f) {
			t.Errorf("two flows share a key: %s", f.KeyText())
		}
	}
	for _, g := range d.Groups {
		if !reconcile.OursGroup(g.ID) {
			t.Errorf("group %d outside nimbus range", g.ID)
		}
		if _, dup := st.Groups[g.ID]; dup {
			t.Errorf("group %d twice", g.ID)
		}
		st.Groups[g.ID] = g
	}
	return st
}

func TestGolden(t *testing.T) {
	s := newScenario()
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			got := state(t, New(Config{}), s.input(c)).Text()
			golden := "testdata/" + c + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("flows differ from %s (rerun with -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

func TestSwitchWithoutChassisGetsNothing(t *testing.T) {
	s := newScenario()
	in := s.input("hv1")
	in.Switch = &topology.Switch{DPID: 0x99, Ports: in.Switch.Ports}
	d, err := New(Config{}).Desired(in)
	if err != nil || len(d.Flows) != 0 || len(d.Groups) != 0 {
		t.Fatalf("got %d flows %d groups, %v", len(d.Flows), len(d.Groups), err)
	}
}

func TestNetworkOnlyWhereItHasPorts(t *testing.T) {
	s := newScenario()
	d, _ := New(Config{}).Desired(s.input("hv1"))
	keyC := uint32(102)
	for _, g := range d.Groups {
		if g.ID == FloodGroupID(keyC, false) || g.ID == FloodGroupID(keyC, true) {
			t.Fatal("hv1 has no port on net-c but got its flood group")
		}
	}
	for _, f := range d.Flows {
		if f.Cookie == netCookie("net-c") || f.Cookie == portCookie(idC1) {
			t.Fatalf("hv1 got a net-c flow: %s", f)
		}
	}
	// hv2 floods net-c locally only: no tunnel to hv1, which hosts none of it.
	d, _ = New(Config{}).Desired(s.input("hv2"))
	for _, g := range d.Groups {
		if g.ID == FloodGroupID(keyC, false) && strings.Contains(g.String(), "tun_id") {
			t.Fatalf("net-c flood group tunnels to a chassis without its ports: %s", g)
		}
	}
}

// Adding one port changes only that port's flows and its network's
// flood groups, on the port's chassis and on the peer.
func TestAddPortDiffIsLocal(t *testing.T) {
	a := New(Config{})
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			s := newScenario()
			before := state(t, a, s.input(c))
			actual := reconcile.NewActual()
			actual.Apply(reconcile.Diff(before, actual, true))
			s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03", PortSecurity: true,
				FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", 5, "")
			ops := reconcile.Diff(state(t, a, s.input(c)), actual, true)
			if len(ops.FlowDels)+len(ops.FlowMods)+len(ops.GroupAdds)+len(ops.GroupDels)+len(ops.Conflicts) != 0 {
				t.Fatalf("unexpected changes:\n%s", ops.Text())
			}
			if len(ops.FlowAdds) == 0 {
				t.Fatal("no flows for the new port")
			}
			for _, f := range ops.FlowAdds {
				if f.Cookie != portCookie(idA3) {
					t.Errorf("flow of another object changed: %s", f)
				}
			}
			for _, g := range ops.GroupMods {
				if g.ID != FloodGroupID(100, false) && g.ID != FloodGroupID(100, true) {
					t.Errorf("unrelated group changed: %s", g)
				}
			}
			if c == "hv1" && len(ops.GroupMods) != 2 {
				t.Errorf("hv1: want both net-a flood groups updated, got:\n%s", ops.Text())
			}
			if c == "hv2" && len(ops.GroupMods) != 0 {
				t.Errorf("hv2 already tunnels net-a to hv1; got:\n%s", ops.Text())
			}
			t.Logf("%s:\n%s", c, ops.Text())
		})
	}
}

func TestNetworkKeys(t *testing.T) {
	gre := &model.Network{NetworkType: model.NetGRE, SegmentationID: 200}
	vlan := &model.Network{NetworkType: model.NetVLAN, SegmentationID: 200, PhysicalNetwork: "physnet1"}
	kg, ok1 := NetworkKey(gre)
	kv, ok2 := NetworkKey(vlan)
	if !ok1 || !ok2 || kg == kv || kv&^(1<<23) != 200 {
		t.Fatalf("keys %x %x", kg, kv)
	}
	for _, n := range []*model.Network{{NetworkType: model.NetGRE}, {NetworkType: model.NetVLAN, SegmentationID: 5},
		{NetworkType: model.NetFlat}, {NetworkType: model.NetGRE, SegmentationID: 1 << 23}} {
		if _, ok := NetworkKey(n); ok {
			t.Errorf("%+v accepted", n)
		}
	}
	if FloodGroupID(kv, false)&1 != 0 || FloodGroupID(kv, true) != FloodGroupID(kv, false)+1 || !reconcile.OursGroup(FloodGroupID(1<<23|4094, true)) {
		t.Fatal("group ids")
	}
}

type ifaceMap map[string]string

func (m ifaceMap) IfaceID(_ *model.Chassis, p topology.Port) string { return m[p.Name] }

func TestBindByIfaceID(t *testing.T) {
	s := newScenario()
	s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03",
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", 7, "veth-odd")
	without := state(t, New(Config{}), s.input("hv1"))
	with := state(t, New(Config{IfaceIDs: ifaceMap{"veth-odd": idA3}}), s.input("hv1"))
	has := func(st *flow.State) bool {
		for _, f := range st.Flows {
			if f.Table == pipeline.Classifier.ID() && f.Cookie == portCookie(idA3) {
				return true
			}
		}
		return false
	}
	if has(without) || !has(with) {
		t.Fatalf("iface-id binding: without=%v with=%v", has(without), has(with))
	}
}
