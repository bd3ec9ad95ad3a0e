package isolation

import (
	"github.com/nimbus-sdn/nimbus/binding"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
)

// publishPorts puts each chassis's switch ports in its record, as the node
// agent does (model.Chassis.Ports).
func (s *scenario) publishPorts() {
	for name, r := range s.recs[model.KindChassis] {
		c := *r.(*model.Chassis)
		c.Ports = map[string]uint32{}
		for no, p := range s.sw[name] {
			if no < 0xffffff00 {
				c.Ports[p.Name] = no
			}
		}
		s.recs[model.KindChassis][name] = &c
	}
}

// A switch's desired state does not depend on which other switches are
// connected: bindings to other chassis come from their records. After a
// controller restart, the first switch back computes the same flows as
// before, whether or not its peers have reconnected.
func TestDesiredIndependentOfConnectedPeers(t *testing.T) {
	s := newScenario()
	s.publishPorts()
	full := s.input("hv1")
	want := state(t, New(Config{}), full).Text()
	alone := s.input("hv1")
	delete(alone.Topology.Switches, dpids["hv2"])
	if got := state(t, New(Config{}), alone).Text(); got != want {
		t.Fatalf("hv1's flows change when hv2 is not connected:\nconnected:\n%s\nnot connected:\n%s", want, got)
	}
	// And they are the golden ones: hv2's VMs bound (a2 on hv2 has a
	// table-9 flow to the tunnel).
	if !strings.Contains(want, "fa:16:3e:0a:00:02") {
		t.Fatalf("no flow toward a2 on hv2:\n%s", want)
	}
}

// A chassis whose agent publishes no ports (an older agent) still binds
// from the live topology while its switch is connected.
func TestChassisSwitchFallsBackToTopology(t *testing.T) {
	s := newScenario()
	in := s.input("hv1")
	c := s.recs[model.KindChassis]["hv2"].(*model.Chassis)
	if sw := binding.ChassisSwitch(c, dpids["hv2"], in.Topology); sw != in.Topology.Switches[dpids["hv2"]] {
		t.Fatalf("no published ports: got %v, want the live switch", sw)
	}
	s.publishPorts()
	c = s.recs[model.KindChassis]["hv2"].(*model.Chassis)
	sw := binding.ChassisSwitch(c, dpids["hv2"], nil)
	if sw == nil || len(sw.Ports) != len(c.Ports) {
		t.Fatalf("published ports: got %v, want %v", sw, c.Ports)
	}
	for name, no := range c.Ports {
		if p := sw.Ports[no]; p.Name != name || !p.Up {
			t.Errorf("port %d: %+v, want %s up", no, p, name)
		}
	}
}
