package isolation

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// TestFlatNetwork: a flat provider network (e.g. an external network on
// br-ex) is carried untagged on its physical network's patch port: the
// classifier takes frames without a VLAN header from it, and remote ports
// and floods leave on it without a push_vlan.
func TestFlatNetwork(t *testing.T) {
	flat := &model.Network{NetworkType: model.NetFlat, PhysicalNetwork: "extnet"}
	k, ok := NetworkKey(flat)
	if !ok || k != binding.FlatKey("extnet") || k&(1<<23) == 0 || k&0x7ff000 != 1<<12 {
		t.Fatalf("flat key %x %v", k, ok)
	}
	if k2, _ := NetworkKey(&model.Network{NetworkType: model.NetVLAN, SegmentationID: 4094, PhysicalNetwork: "extnet"}); k2 == k {
		t.Fatal("flat key equals a VLAN key")
	}
	if FloodGroupID(k, true) >= binding.ChainGroupBase {
		t.Fatalf("flat flood group %x reaches the chained groups", FloodGroupID(k, true))
	}
	s := newScenario()
	for _, c := range []string{"hv1", "hv2"} {
		ch := s.recs[model.KindChassis][c].(*model.Chassis)
		ch.Mappings = map[string]string{"physnet1": "br-phy", "extnet": "br-ex"}
		s.sw[c][30] = topology.Port{No: 30, Name: names.PhysPortName("extnet"), Up: true}
	}
	s.recs[model.KindNetwork]["net-x"] = &model.Network{Base: model.Base{ID: "net-x"}, AdminStateUp: true, External: true,
		NetworkType: model.NetFlat, PhysicalNetwork: "extnet", MTU: 1500}
	s.recs[model.KindSubnet]["sub-x"] = &model.Subnet{Base: model.Base{ID: "sub-x"}, NetworkID: "net-x", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: "198.51.100.1"}
	const x1, x2 = "e1000000-0000-4000-8000-000000000001", "e2000000-0000-4000-8000-000000000002"
	s.port(&model.Port{Base: model.Base{ID: x1}, NetworkID: "net-x", MACAddress: "fa:16:3e:0e:00:01", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-x", IPAddress: "198.51.100.21"}}}, "hv1", 5, "")
	s.port(&model.Port{Base: model.Base{ID: x2}, NetworkID: "net-x", MACAddress: "fa:16:3e:0e:00:02", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-x", IPAddress: "198.51.100.22"}}}, "hv2", 5, "")
	st := state(t, New(Config{}), s.input("hv1"))
	var in, remote, flood bool
	get := func(m flow.Match, f flow.Field) (uint64, bool) {
		mf, ok := m.Get(f)
		return mf.Value, ok
	}
	for _, f := range st.Flows {
		txt := f.String()
		if f.Table == pipeline.Classifier.ID() && func() bool { v, ok := get(f.Match, flow.InPort); return ok && v == 30 }() && f.Priority == pipeline.PriorityNormal {
			if v, ok := get(f.Match, flow.VlanVID); !ok || v != 0 || strings.Contains(txt, "pop_vlan") {
				t.Errorf("flat classifier flow %s: want vlan_vid=none, no pop", txt)
			}
			in = true
		}
		if f.Table == pipeline.L2Forward.ID() && func() bool {
			v, ok := get(f.Match, flow.EthDst)
			return ok && v == uint64(flow.MustMAC("fa:16:3e:0e:00:02"))
		}() {
			if strings.Contains(txt, "push_vlan") || !strings.Contains(txt, "output:30") {
				t.Errorf("remote port on the flat network: %s, want output:30 untagged", txt)
			}
			remote = true
		}
	}
	for _, g := range st.Groups {
		if g.ID == FloodGroupID(k, false) {
			flood = strings.Contains(g.String(), "output:30") && !strings.Contains(g.String(), "push_vlan")
		}
	}
	if !in || !remote || !flood {
		t.Errorf("flat network: classifier %v, remote port %v, flood to the uplink untagged %v", in, remote, flood)
	}
}
