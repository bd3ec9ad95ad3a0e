package l3router

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// scaleScenario: routers routers, each its own tenant with 2 GRE subnets
// (10.R.1.0/24, 10.R.2.0/24) of vms VMs each, over chassis hypervisors;
// the VMs of a subnet go round-robin over the chassis (with 10 VMs on 10
// chassis every chassis hosts one VM of every subnet, the worst case:
// every router has flows everywhere).
func scaleScenario(routers, vms, chassis int) *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{}}
	for i := 1; i <= chassis; i++ {
		name := fmt.Sprintf("hv%d", i)
		dpids[name] = uint64(i)
		s.sw[name] = map[uint32]topology.Port{}
		s.put(&model.Chassis{Name: name, TunnelIP: fmt.Sprintf("172.16.0.%d", i), DPID: fmt.Sprintf("%016x", i)})
	}
	for i := 1; i <= chassis; i++ {
		for j := 1; j <= chassis; j++ {
			if i != j {
				peer := fmt.Sprintf("hv%d", j)
				s.sw[fmt.Sprintf("hv%d", i)][uint32(60000+j)] = topology.Port{No: uint32(60000 + j), Name: names.TunnelPortName(peer), Up: true}
			}
		}
	}
	ofport := map[string]uint32{}
	for r := 0; r < routers; r++ {
		proj := fmt.Sprintf("t%d", r)
		rt := &model.Router{Base: model.Base{ID: fmt.Sprintf("%08x-0000-4000-8000-930000000000", r), ProjectID: proj}, AdminStateUp: true}
		for k := 1; k <= 2; k++ {
			nid := fmt.Sprintf("%06x%02x-0000-4000-8000-940000000000", r, k)
			sid := fmt.Sprintf("%06x%02x-0000-4000-8000-950000000000", r, k)
			s.put(&model.Network{Base: model.Base{ID: nid, ProjectID: proj}, AdminStateUp: true, NetworkType: model.NetGRE,
				SegmentationID: 1000 + 2*r + k, MTU: 1450, PortSecurity: true})
			s.put(&model.Subnet{Base: model.Base{ID: sid, ProjectID: proj}, NetworkID: nid, IPVersion: 4,
				CIDR: fmt.Sprintf("10.%d.%d.0/24", r, k), GatewayIP: fmt.Sprintf("10.%d.%d.1", r, k)})
			ifp := &model.Port{Base: model.Base{ID: fmt.Sprintf("b%05x%02x-0000-4000-8000-960000000000", r, k), ProjectID: proj}, NetworkID: nid,
				MACAddress: fmt.Sprintf("fa:16:3f:%02x:%02x:%02x", r>>8, r&0xff, k), DeviceOwner: "network:router_interface_distributed",
				DeviceID: rt.ID, AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: sid, IPAddress: fmt.Sprintf("10.%d.%d.1", r, k)}}}
			s.put(ifp)
			rt.Interfaces = append(rt.Interfaces, ifp.ID)
			for v := 0; v < vms; v++ {
				hv := fmt.Sprintf("hv%d", v%chassis+1)
				p := &model.Port{Base: model.Base{ID: fmt.Sprintf("a%03x%02x%02x-0000-4000-8000-970000000000", r, k, v), ProjectID: proj}, NetworkID: nid,
					MACAddress: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", r, k, v), PortSecurity: true, AdminStateUp: true, DeviceOwner: "compute:nova",
					FixedIPs: []model.FixedIP{{SubnetID: sid, IPAddress: fmt.Sprintf("10.%d.%d.%d", r, k, v+10)}}}
				s.put(p)
				ofport[hv]++
				s.sw[hv][ofport[hv]] = topology.Port{No: ofport[hv], Name: names.VMPortName(p.ID), Up: true}
			}
		}
		s.put(rt)
	}
	return s
}

// TestFlowsPerHypervisor counts one hypervisor's l3_routing flows (and
// the isolation app's, for scale) for 100 routers x 2 subnets x 10 VMs
// on 10 chassis, and checks the count against the layout: per router and
// ingress interface with a local port, 2 echo + 2 TTL + one host route
// per VM of the router + 2 subnet drops + 1 no-route punt.
func TestFlowsPerHypervisor(t *testing.T) {
	for _, c := range []struct{ routers, vms, chassis int }{{10, 10, 10}, {100, 10, 10}, {100, 10, 3}} {
		s := scaleScenario(c.routers, c.vms, c.chassis)
		in := s.input("hv1")
		d, err := New().Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		iso, err := isolation.New(isolation.Config{}).Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		l3 := 0
		for _, f := range d.Flows {
			if f.Table == pipeline.L3Routing.ID() {
				l3++
			}
		}
		// Every subnet has a VM on hv1 (vms >= chassis), so both
		// interfaces of every router are ingresses here.
		want := c.routers * 2 * (2 + 2 + 2*c.vms + 2 + 1)
		t.Logf("%3d routers x 2 subnets x %d VMs on %2d chassis: hv1 has %5d l3_routing flows (%d per router), %5d isolation flows, %d router MACs in the handler",
			c.routers, c.vms, c.chassis, len(d.Flows), len(d.Flows)/c.routers, len(iso.Flows), len(d.Handler.(Gateways)))
		if len(d.Flows) != want || l3 != want {
			t.Errorf("%d routers: %d flows, want %d", c.routers, len(d.Flows), want)
		}
		if n := len(d.Handler.(Gateways)); n != 2*c.routers {
			t.Errorf("handler knows %d router MACs, want %d", n, 2*c.routers)
		}
	}
}

// BenchmarkDesired100Routers computes hv1's flows for 100 routers x 2
// subnets x 10 VMs on 10 chassis.
func BenchmarkDesired100Routers(b *testing.B) {
	in := scaleScenario(100, 10, 10).input("hv1")
	a := New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Desired(in); err != nil {
			b.Fatal(err)
		}
	}
}
