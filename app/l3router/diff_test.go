package l3router

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// diff returns the flows of after that are not in before (added), and
// the flows of before that after lacks or changes (removed or modified).
// onlyAdded fails unless going from before to after changed no flow and
// added at least one, each of which is what ok expects of adding what.
func onlyAdded(t *testing.T, before, after *flow.State, what string, ok func(*flow.Flow) bool) {
	t.Helper()
	added, changed := diff(before, after)
	if len(changed) != 0 {
		t.Fatalf("adding %s changed %d flows, first %s", what, len(changed), changed[0])
	}
	if len(added) == 0 {
		t.Fatalf("adding %s added no flow", what)
	}
	for _, f := range added {
		if !ok(f) {
			t.Errorf("added flow is not for %s: %s", what, f)
		}
	}
}

func diff(before, after *flow.State) (added []*flow.Flow, changed []*flow.Flow) {
	for k, f := range after.Flows {
		if b, ok := before.Flows[k]; !ok {
			added = append(added, f)
		} else if b.String() != f.String() {
			changed = append(changed, b)
		}
	}
	for k, f := range before.Flows {
		if _, ok := after.Flows[k]; !ok {
			changed = append(changed, f)
		}
	}
	return added, changed
}

// A new VM port behind a router adds its host routes (its own cookie) on
// every chassis that routes toward it, and changes nothing else.
func TestAddPortDiffIsLocal(t *testing.T) {
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			s := newScenario()
			before, _ := state(t, s.input(c), New())
			s.vm("a5", "net-a2", flow.MustMAC("fa:16:3e:0a:00:06"), "10.0.2.16", "hv2", 6)
			after, _ := state(t, s.input(c), New())
			onlyAdded(t, before, after, "a port", func(f *flow.Flow) bool {
				return f.Cookie == cookie(portID("a5")) && f.Table == pipeline.L3Routing.ID()
			})
		})
	}
}

// A new router interface only adds flows: nothing existing changes, and
// another tenant's router gets nothing.
func TestAddInterfaceOnlyAdds(t *testing.T) {
	s := newScenario()
	before, _ := state(t, s.input("hv1"), New())
	// net-ax (10.0.4.0/24, ax on hv2) joins rA, and a port of it on hv1.
	sub := s.recs[model.KindSubnet]["sub-net-ax"].(*model.Subnet)
	p := &model.Port{Base: model.Base{ID: portID("eax"), ProjectID: "ta"}, NetworkID: "net-ax", MACAddress: "fa:16:3e:aa:04:01",
		DeviceOwner: "network:router_interface_distributed", DeviceID: "rA", AdminStateUp: true,
		FixedIPs: []model.FixedIP{{SubnetID: sub.ID, IPAddress: sub.GatewayIP}}}
	s.put(p)
	rt := *s.recs[model.KindRouter]["rA"].(*model.Router)
	rt.Interfaces = append(append([]string{}, rt.Interfaces...), p.ID)
	s.put(&rt)
	after, _ := state(t, s.input("hv1"), New())
	added, changed := diff(before, after)
	if len(changed) != 0 {
		t.Fatalf("adding an interface changed %d flows, first %s", len(changed), changed[0])
	}
	routeToAX := false
	for _, f := range added {
		if v, _ := f.Match.Get(flow.Reg1); v.Value&0xffffff == 110 || v.Value&0xffffff == 111 {
			t.Errorf("tenant B got a flow for A's interface: %s", f)
		}
		if f.Cookie == cookie(portID("ax")) {
			routeToAX = true
		}
	}
	if !routeToAX {
		t.Error("no host route to ax after its subnet joined the router")
	}
}

// A new extra route only adds its own flows (one per ingress interface
// with a local port, the route's cookie), at 10000 + its prefix length.
func TestAddRouteOnlyAdds(t *testing.T) {
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			s := newScenario()
			before, _ := state(t, s.input(c), New())
			rt := *s.recs[model.KindRouter]["rA"].(*model.Router)
			rt.Routes = append(append([]model.Route{}, rt.Routes...), model.Route{Destination: "192.168.0.0/20", NextHop: "10.0.3.14"})
			s.put(&rt)
			after, _ := state(t, s.input(c), New())
			onlyAdded(t, before, after, "a route", func(f *flow.Flow) bool {
				return f.Priority == pipeline.PriorityNormal+20 && f.Table == pipeline.L3Routing.ID()
			})
		})
	}
}
