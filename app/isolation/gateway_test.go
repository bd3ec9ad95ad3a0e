package isolation

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
)

const idGW = "99000000-0000-4000-8000-000000000099"

// grepFlows renders the state of hv1 and returns the lines of one table
// that mention s.
func grepFlows(t *testing.T, s *scenario, table, sub string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(state(t, New(Config{}), s.input("hv1")).Text(), "\n") {
		if strings.Contains(l, "table="+table+",") && strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// A port holding net-a's gateway 10.0.0.1 gets the ARP responder and
// port security for it only as an interface a router lists; what its
// device_owner claims does not count.
func TestGatewayAddressOnlyForListedRouterInterface(t *testing.T) {
	gwPort := func(owner, deviceID string) *scenario {
		s := newScenario()
		s.port(&model.Port{Base: model.Base{ID: idGW, ProjectID: "tenant-x"}, NetworkID: "net-a", MACAddress: "fa:16:3e:99:00:01",
			PortSecurity: true, DeviceOwner: owner, DeviceID: deviceID,
			FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.1"}}}, "hv1", 9, "")
		return s
	}
	listed := func(s *scenario, rtID string) {
		s.recs[model.KindRouter] = map[string]model.Record{rtID: &model.Router{Base: model.Base{ID: rtID}, Interfaces: []string{idGW}}}
	}
	const arpTable, psTable = "3", "1"
	for _, c := range []struct {
		name  string
		s     *scenario
		allow bool
	}{
		{"owner changed to compute", gwPort("compute:nova", "vm-1"), false},
		{"claims router_interface, no router lists it", gwPort("network:router_interface", "r-1"), false},
		{"listed but device_owner changed", func() *scenario { s := gwPort("compute:nova", "r-1"); listed(s, "r-1"); return s }(), false},
		{"listed by a router it does not belong to", func() *scenario { s := gwPort("network:router_interface", "r-2"); listed(s, "r-1"); return s }(), false},
		{"router interface listed by its router", func() *scenario { s := gwPort("network:router_interface", "r-1"); listed(s, "r-1"); return s }(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			arp := grepFlows(t, c.s, arpTable, "arp_tpa=10.0.0.1 ")
			ps := grepFlows(t, c.s, psTable, "in_port=9,dl_src=fa:16:3e:99:00:01,arp_spa=10.0.0.1 ")
			ps = append(ps, grepFlows(t, c.s, psTable, "in_port=9,dl_src=fa:16:3e:99:00:01,nw_src=10.0.0.1 ")...)
			if c.allow && (len(arp) != 1 || len(ps) != 2) {
				t.Errorf("router interface: want the ARP answer and port security for the gateway, got %q %q", arp, ps)
			}
			if !c.allow && (len(arp) != 0 || len(ps) != 0) {
				t.Errorf("ordinary port holds the gateway: ARP %q port security %q", arp, ps)
			}
		})
	}
}

// An allowed address pair covering the gateway does not let an ordinary
// port send as the gateway.
func TestAddressPairCoveringGatewayIsGuarded(t *testing.T) {
	s := newScenario()
	s.port(&model.Port{Base: model.Base{ID: idGW}, NetworkID: "net-a", MACAddress: "fa:16:3e:99:00:01", PortSecurity: true,
		FixedIPs:            []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.99"}},
		AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.0/24"}}}, "hv1", 9, "")
	got := grepFlows(t, s, "1", "priority=20000")
	want := []string{"ip,in_port=9,nw_src=10.0.0.1 actions=drop", "arp,in_port=9,arp_spa=10.0.0.1 actions=drop"}
	if len(got) != len(want) {
		t.Fatalf("guards %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("guard %q, want ...%s", got[i], want[i])
		}
	}
	// a1's pair 10.0.1.0/24 does not cover 10.0.0.1: no guard for port 1.
	if g := grepFlows(t, s, "1", "priority=20000,ip,in_port=1,"); len(g) != 0 {
		t.Errorf("unexpected guard %q", g)
	}
}
