package isolation

import (
	"flag"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
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
		if !pipeline.OursGroup(g.ID) {
			t.Errorf("group %d outside nimbus range", g.ID)
		}
		if _, dup := st.Groups[g.ID]; dup {
			t.Errorf("group %d twice", g.ID)
		}
		st.Groups[g.ID] = g
	}
	for _, m := range d.Meters {
		if !pipeline.OursMeter(m.ID) {
			t.Errorf("meter %d outside nimbus range", m.ID)
		}
		st.Meters[m.ID] = m
	}
	for _, f := range st.Flows {
		if f.Meter != 0 && st.Meters[f.Meter] == nil {
			t.Errorf("flow %s uses meter %d the app did not declare", f.KeyText(), f.Meter)
		}
		if err := pipeline.CheckGroups(f, st.Groups); err != nil {
			t.Errorf("contract (groups): %v", err)
		}
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

// A switch that is no chassis is a fabric switch; with no fabric links
// and no ports of its own in the topology it gets nothing.
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
	if FloodGroupID(kv, false)&1 != 0 || FloodGroupID(kv, true) != FloodGroupID(kv, false)+1 || !pipeline.OursGroup(FloodGroupID(1<<23|4094, true)) {
		t.Fatal("group ids")
	}
}

type ifaceMap map[string]string

func (m ifaceMap) IfaceID(_ *model.Chassis, p topology.Port) string { return m[p.Name] }

// withIfaces binds with the given iface-ids instead of the chassis records'.
func withIfaces(in app.Input, m ifaceMap) app.Input {
	in.Bindings = binding.ComputeWith(in.Model, in.Topology, binding.Options{IfaceIDs: m})
	return in
}

func TestBindByIfaceID(t *testing.T) {
	s := newScenario()
	s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03",
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", 7, "veth-odd")
	without := state(t, New(Config{}), s.input("hv1"))
	with := state(t, New(Config{}), withIfaces(s.input("hv1"), ifaceMap{"veth-odd": idA3}))
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

// diffAfter returns the reconciler's diff on chassis c when mutate
// changes the scenario.
func diffAfter(t *testing.T, c string, setup, mutate func(s *scenario)) *reconcile.Ops {
	t.Helper()
	a := New(Config{})
	s := newScenario()
	if setup != nil {
		setup(s)
	}
	actual := reconcile.NewActual()
	actual.Apply(reconcile.Diff(state(t, a, s.input(c)), actual, true))
	mutate(s)
	return reconcile.Diff(state(t, a, s.input(c)), actual, true)
}

// onlyConcerns fails if the diff touches a flow whose cookie is not one
// of cookies or a group not in groups.
func onlyConcerns(t *testing.T, ops *reconcile.Ops, cookies []uint64, groups []uint32) {
	t.Helper()
	if len(ops.Conflicts) != 0 {
		t.Errorf("conflicts:\n%s", ops.Text())
	}
	for _, fs := range [][]*flow.Flow{ops.FlowAdds, ops.FlowMods, ops.FlowDels} {
		for _, f := range fs {
			if !slices.Contains(cookies, f.Cookie) {
				t.Errorf("flow of an unrelated object changed: %s", f)
			}
		}
	}
	for _, gs := range [][]*flow.Group{ops.GroupAdds, ops.GroupMods, ops.GroupDels} {
		for _, g := range gs {
			if !slices.Contains(groups, g.ID) {
				t.Errorf("unrelated group changed: %s", g)
			}
		}
	}
}

// Removing a port deletes its flows (and, on the peer, its remote
// unicast and ARP flows) and updates its network's flood groups only.
// (When the last port of a network leaves a chassis, the network's own
// flows leave with it: that is the network no longer being hosted there.)
func TestRemovePortDiffIsLocal(t *testing.T) {
	addA3 := func(s *scenario) {
		s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03", PortSecurity: true,
			FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", 5, "")
	}
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			ops := diffAfter(t, c, addA3, func(s *scenario) {
				delete(s.recs[model.KindPort], idA3)
				delete(s.sw["hv1"], 5)
			})
			if len(ops.FlowDels) == 0 || len(ops.FlowAdds) != 0 {
				t.Fatalf("want only deletions:\n%s", ops.Text())
			}
			onlyConcerns(t, ops, []uint64{portCookie(idA3)}, []uint32{FloodGroupID(100, false), FloodGroupID(100, true)})
			t.Logf("%s:\n%s", c, ops.Text())
		})
	}
}

// Adding a network with a port, then removing it again, touches only
// that network's and port's flows and its own flood groups.
func TestAddRemoveNetworkDiffIsLocal(t *testing.T) {
	const idN1 = "d1000000-0000-4000-8000-000000000001"
	addNet := func(s *scenario) {
		s.recs[model.KindNetwork]["net-d"] = &model.Network{Base: model.Base{ID: "net-d", ProjectID: "tenant-d"}, AdminStateUp: true,
			NetworkType: model.NetGRE, SegmentationID: 103, MTU: 1458, PortSecurity: true}
		s.recs[model.KindSubnet]["sub-d"] = &model.Subnet{Base: model.Base{ID: "sub-d"}, NetworkID: "net-d", IPVersion: 4,
			CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1", EnableDHCP: true}
		s.port(&model.Port{Base: model.Base{ID: idN1}, NetworkID: "net-d", MACAddress: "fa:16:3e:0d:00:01", PortSecurity: true,
			FixedIPs: []model.FixedIP{{SubnetID: "sub-d", IPAddress: "10.0.0.11"}}}, "hv1", 6, "")
	}
	concerned := []uint64{netCookie("net-d"), portCookie(idN1)}
	groups := []uint32{FloodGroupID(103, false), FloodGroupID(103, true)}
	ops := diffAfter(t, "hv1", nil, addNet)
	if len(ops.FlowAdds) == 0 || len(ops.GroupAdds) != 2 || len(ops.FlowDels)+len(ops.FlowMods) != 0 {
		t.Fatalf("adding net-d on hv1:\n%s", ops.Text())
	}
	onlyConcerns(t, ops, concerned, groups)
	// hv2 hosts none of net-d: nothing changes there.
	if ops := diffAfter(t, "hv2", nil, addNet); !ops.Empty() {
		t.Fatalf("hv2 changed for a network it does not host:\n%s", ops.Text())
	}
	// Removal: from the state with net-d back to the scenario.
	a := New(Config{})
	s := newScenario()
	addNet(s)
	actual := reconcile.NewActual()
	actual.Apply(reconcile.Diff(state(t, a, s.input("hv1")), actual, true))
	delete(s.recs[model.KindPort], idN1)
	delete(s.recs[model.KindNetwork], "net-d")
	delete(s.recs[model.KindSubnet], "sub-d")
	delete(s.sw["hv1"], 6)
	ops = reconcile.Diff(state(t, a, s.input("hv1")), actual, true)
	if len(ops.FlowDels) == 0 || len(ops.GroupDels) != 2 || len(ops.FlowAdds)+len(ops.FlowMods) != 0 {
		t.Fatalf("removing net-d on hv1:\n%s", ops.Text())
	}
	onlyConcerns(t, ops, concerned, groups)
}

// DHCP punts are per VM port, each through its port's project's meter
// (pipeline.MeterDHCP): a non-admin tenant flooding DHCP from its VM
// uses up its own meter, not the one of another tenant's VM on the same
// chassis (here both on net-a, a network they share).
func TestDHCPMeterPerProject(t *testing.T) {
	s := newScenario()
	a1 := *s.recs[model.KindPort][idA1].(*model.Port)
	a1.ProjectID = "victim"
	s.port(&a1, "hv1", 1, "")
	s.port(&model.Port{Base: model.Base{ID: "a0000009-0000-4000-8000-000000000000", ProjectID: "attacker"}, NetworkID: "net-a",
		MACAddress: "fa:16:3e:0a:00:09", PortSecurity: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.19"}}}, "hv1", 9, "")
	st := state(t, New(Config{}), s.input("hv1"))
	want := map[uint64]uint32{ // port cookie -> meter
		pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID(idA1)):                                   pipeline.MeterDHCP.ID("victim"),
		pipeline.Cookie(pipeline.AppIsolation, pipeline.ObjectID("a0000009-0000-4000-8000-000000000000")): pipeline.MeterDHCP.ID("attacker"),
	}
	if pipeline.MeterDHCP.ID("victim") == pipeline.MeterDHCP.ID("attacker") {
		t.Fatal("the two projects' meters collide")
	}
	seen := 0
	for _, f := range st.Flows {
		if f.Table != pipeline.DHCP.ID() || f.Meter == 0 {
			continue
		}
		if m, ok := want[f.Cookie]; ok {
			seen++
			if f.Meter != m {
				t.Errorf("DHCP punt %s: meter %#x, want its port's project's %#x", f, f.Meter, m)
			}
			if _, ok := st.Meters[m]; !ok {
				t.Errorf("meter %#x not in the desired state", m)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("want one DHCP punt per port (2), got %d", seen)
	}
}
