package isolation

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// boundAt returns the in_port of port id's classifier flow on st (0: not
// bound there).
func boundAt(st *flow.State, id string) uint32 {
	for _, f := range st.Flows {
		if f.Table == pipeline.Classifier.ID() && f.Cookie == portCookie(id) {
			if v, ok := f.Match.Get(flow.InPort); ok {
				return uint32(v.Value)
			}
		}
	}
	return 0
}

const idX = "e1000000-0000-4000-8000-0000000000e1"

// A Neutron port is never bound to the switch's own ports, whether
// binding:profile port_name or external_ids:iface-id names them.
func TestNeverBindInfrastructurePorts(t *testing.T) {
	for _, c := range []struct {
		name    string
		profile string // binding:profile port_name
		iface   string // interface whose iface-id is the port's id
		ofport  uint32
	}{
		{"uplink by port_name", names.PhysPortName("physnet1"), "", 20},
		{"tunnel by port_name", names.TunnelPortName("hv2"), "", 10},
		{"LOCAL by port_name", "br-int", "", flow.PortLocal},
		{"uplink by iface-id", "", names.PhysPortName("physnet1"), 20},
		{"tunnel by iface-id", "", names.TunnelPortName("hv2"), 10},
		{"LOCAL by iface-id", "", "br-int", flow.PortLocal},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newScenario()
			p := &model.Port{Base: model.Base{ID: idX, ProjectID: "tenant-x"}, NetworkID: "net-b", MACAddress: "fa:16:3e:e1:00:01",
				FixedIPs: []model.FixedIP{{SubnetID: "sub-b", IPAddress: "10.0.0.66"}}}
			if c.profile != "" {
				p.Profile = map[string]any{"port_name": c.profile}
			}
			s.port(p, "", 0, "")
			a := New(Config{})
			st := state(t, a, withIfaces(s.input("hv1"), ifaceMap{c.iface: idX}))
			if got := boundAt(st, idX); got != 0 {
				t.Fatalf("port bound to ofport %d (%s)", got, c.name)
			}
			for _, f := range st.Flows {
				if f.Cookie == portCookie(idX) && f.Table != pipeline.ARPResponder.ID() {
					t.Errorf("flow for the port: %s", f)
				}
			}
			// The tunnel and uplink keep their own classification.
			if in := s.input("hv1"); in.Switch.Ports[c.ofport].No != c.ofport {
				t.Fatalf("scenario lacks ofport %d", c.ofport)
			}
		})
	}
}

// Two Neutron ports that resolve to the same interface: the stronger
// claim keeps it (iface-id, then tap name, then port_name; then the older
// port, then the smaller id), the other is unbound.
func TestOneInterfaceOneNeutronPort(t *testing.T) {
	const older, newer = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"
	thief := func(created string, profile string) *model.Port {
		return &model.Port{Base: model.Base{ID: idX, ProjectID: "tenant-x", CreatedAt: created}, NetworkID: "net-b",
			MACAddress: "fa:16:3e:e1:00:01", Profile: map[string]any{"port_name": profile},
			FixedIPs: []model.FixedIP{{SubnetID: "sub-b", IPAddress: "10.0.0.66"}}}
	}
	t.Run("port_name of another port's tap", func(t *testing.T) {
		s := newScenario()
		// Older than a1, yet a1's tap is a1's: the tap name beats port_name.
		s.port(thief(older, names.VMPortName(idA1)), "", 0, "")
		st := state(t, New(Config{}), s.input("hv1"))
		if boundAt(st, idA1) != 1 || boundAt(st, idX) != 0 {
			t.Fatalf("a1 at %d, thief at %d", boundAt(st, idA1), boundAt(st, idX))
		}
	})
	t.Run("port_name of another port's port_name", func(t *testing.T) {
		// b1 binds by port_name vm-b1; a newer port naming vm-b1 loses,
		// an older one wins.
		for _, c := range []struct {
			created string
			winner  string
		}{{newer, idB1}, {older, idX}} {
			s := newScenario()
			b1 := *s.recs[model.KindPort][idB1].(*model.Port)
			b1.CreatedAt = "2026-03-01T00:00:00Z"
			s.recs[model.KindPort][idB1] = &b1
			s.port(thief(c.created, "vm-b1"), "", 0, "")
			st := state(t, New(Config{}), s.input("hv1"))
			loser := map[string]string{idB1: idX, idX: idB1}[c.winner]
			if boundAt(st, c.winner) != 2 || boundAt(st, loser) != 0 {
				t.Errorf("created %s: winner %s at %d, loser %s at %d", c.created, c.winner, boundAt(st, c.winner), loser, boundAt(st, loser))
			}
		}
	})
	t.Run("iface-id beats the tap name", func(t *testing.T) {
		s := newScenario()
		s.port(thief(newer, ""), "", 0, "")
		st := state(t, New(Config{}), withIfaces(s.input("hv1"), ifaceMap{names.VMPortName(idA1): idX}))
		if boundAt(st, idX) != 1 || boundAt(st, idA1) != 0 {
			t.Fatalf("iface-id owner at %d, tap-name port at %d", boundAt(st, idX), boundAt(st, idA1))
		}
	})
	t.Run("same time: smaller id", func(t *testing.T) {
		s := newScenario()
		s.port(thief("", "vm-b1"), "", 0, "") // idX (e1...) > idB1 (b1...)
		st := state(t, New(Config{}), s.input("hv1"))
		if boundAt(st, idB1) != 2 || boundAt(st, idX) != 0 {
			t.Fatalf("b1 at %d, other at %d", boundAt(st, idB1), boundAt(st, idX))
		}
	})
}

// On a fabric switch too: never the LOCAL port, and one port per interface.
func TestFabricBindingRules(t *testing.T) {
	f := newFabric3(true)
	f.recs[model.KindPort]["hx"] = &model.Port{Base: model.Base{ID: "hx", CreatedAt: "2030-01-01T00:00:00Z"}, NetworkID: "net-w",
		MACAddress: "fa:16:3e:00:00:0e", Profile: map[string]any{"port_name": "s1-eth1"}}
	f.recs[model.KindPort]["hl"] = &model.Port{Base: model.Base{ID: "hl"}, NetworkID: "net-w",
		MACAddress: "fa:16:3e:00:00:0f", Profile: map[string]any{"port_name": "s1"}}
	in := f.input(1)
	in.Switch.Ports[flow.PortLocal] = topology.Port{No: flow.PortLocal, Name: "s1", Up: true}
	st := state(t, New(Config{}), in)
	if boundAt(st, "h1") != 1 || boundAt(st, "hx") != 0 || boundAt(st, "hl") != 0 {
		t.Fatalf("h1 at %d, newer claimant at %d, LOCAL claimant at %d", boundAt(st, "h1"), boundAt(st, "hx"), boundAt(st, "hl"))
	}
}
