package isolation

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

func TestChassisIfaceIDs(t *testing.T) {
	var c binding.ChassisIfaceIDs
	ch := &model.Chassis{Name: "hv1", Interfaces: map[string]string{"vm-odd": idA3}}
	if got := c.IfaceID(ch, topology.Port{Name: "vm-odd"}); got != idA3 {
		t.Fatalf("IfaceID(vm-odd) = %q, want %s", got, idA3)
	}
	if got := c.IfaceID(ch, topology.Port{Name: "other"}); got != "" {
		t.Fatalf("IfaceID(other) = %q", got)
	}
	if got := c.IfaceID(nil, topology.Port{Name: "vm-odd"}); got != "" {
		t.Fatalf("IfaceID(nil chassis) = %q", got)
	}
}

// The default binding reads the iface-ids the node agents publish in their
// chassis records: for a port on this chassis (classifier flow on its
// OpenFlow port) and on a peer (known-unicast flow towards the peer).
func TestDefaultBindsByChassisInterfaces(t *testing.T) {
	s := newScenario()
	s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03",
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv2", 7, "vm-odd")
	remote := func(st *flow.State) bool {
		for _, f := range st.Flows {
			if f.Table == pipeline.L2Forward.ID() && f.Cookie == portCookie(idA3) {
				return true
			}
		}
		return false
	}
	local := func(st *flow.State) bool {
		for _, f := range st.Flows {
			if f.Table == pipeline.Classifier.ID() && f.Cookie == portCookie(idA3) {
				return true
			}
		}
		return false
	}
	if st := state(t, New(Config{}), s.input("hv2")); local(st) {
		t.Fatal("bound on hv2 before hv2 published vm-odd's iface-id")
	}
	if st := state(t, New(Config{}), s.input("hv1")); remote(st) {
		t.Fatal("hv1 forwards to the port before hv2 published its iface-id")
	}
	hv2 := *s.recs[model.KindChassis]["hv2"].(*model.Chassis)
	hv2.Interfaces = map[string]string{"vm-odd": idA3}
	s.recs[model.KindChassis]["hv2"] = &hv2
	if st := state(t, New(Config{}), s.input("hv2")); !local(st) {
		t.Fatal("hv2: published iface-id did not bind vm-odd")
	}
	if st := state(t, New(Config{}), s.input("hv1")); !remote(st) {
		t.Fatal("hv1: no forwarding to the port hv2 published")
	}
}
