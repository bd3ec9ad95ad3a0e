package isolation

import (
	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// scenario is the golden topology: two chassis, two tenants that both use
// 10.0.0.0/24, GRE and VLAN networks, ports spread over the chassis.
//
//	tenant A: net-a GRE 100  (a1 on hv1, a2 on hv2, DHCP port 10.0.0.2)
//	          net-c GRE 102  (c1 on hv2 only: hv1 gets nothing of it)
//	tenant B: net-b GRE 101  (b1 on hv1 by binding:profile port_name, b2 on hv2)
//	          net-v VLAN 200 on physnet1 (v1 on hv1, v2 on hv2)
type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port // chassis -> ports
}

const (
	idA1 = "a1000000-0000-4000-8000-000000000001"
	idA2 = "a2000000-0000-4000-8000-000000000002"
	idA3 = "a3000000-0000-4000-8000-000000000003"
	idB1 = "b1000000-0000-4000-8000-000000000001"
	idB2 = "b2000000-0000-4000-8000-000000000002"
	idV1 = "f1000000-0000-4000-8000-000000000001"
	idV2 = "f2000000-0000-4000-8000-000000000002"
	idC1 = "c1000000-0000-4000-8000-000000000001"
	idDA = "da000000-0000-4000-8000-00000000000d"
)

var dpids = map[string]uint64{"hv1": 0x1, "hv2": 0x2}

func newScenario() *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{"hv1": {}, "hv2": {}}}
	put := func(r model.Record) {
		if s.recs[r.Kind()] == nil {
			s.recs[r.Kind()] = map[string]model.Record{}
		}
		s.recs[r.Kind()][r.Key()] = r
	}
	put(&model.Chassis{Name: "hv1", TunnelIP: "172.16.0.1", DPID: "0000000000000001", Mappings: map[string]string{"physnet1": "br-phy"}})
	put(&model.Chassis{Name: "hv2", TunnelIP: "172.16.0.2", DPID: "0000000000000002", Mappings: map[string]string{"physnet1": "br-phy"}})
	net := func(id, proj, typ string, seg int, physnet string) {
		put(&model.Network{Base: model.Base{ID: id, ProjectID: proj}, AdminStateUp: true, NetworkType: typ, SegmentationID: seg,
			PhysicalNetwork: physnet, MTU: map[string]int{model.NetGRE: 1458, model.NetVLAN: 1500}[typ], PortSecurity: true})
	}
	net("net-a", "tenant-a", model.NetGRE, 100, "")
	net("net-c", "tenant-a", model.NetGRE, 102, "")
	net("net-b", "tenant-b", model.NetGRE, 101, "")
	net("net-v", "tenant-b", model.NetVLAN, 200, "physnet1")
	sub := func(id, netID, gw string, dns []string, routes []model.HostRoute) {
		put(&model.Subnet{Base: model.Base{ID: id}, NetworkID: netID, IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: gw,
			DNSNameservers: dns, HostRoutes: routes, EnableDHCP: true})
	}
	sub("sub-a", "net-a", "10.0.0.1", []string{"10.0.0.53", "8.8.8.8"}, []model.HostRoute{{Destination: "192.168.0.0/16", NextHop: "10.0.0.254"}})
	sub("sub-b", "net-b", "10.0.0.1", nil, nil)
	sub("sub-c", "net-c", "10.0.0.1", nil, nil)
	sub("sub-v", "net-v", "", nil, nil)
	s.port(&model.Port{Base: model.Base{ID: idDA}, NetworkID: "net-a", MACAddress: "fa:16:3e:00:00:0d", DeviceOwner: "network:dhcp",
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.2"}}}, "", 0, "")
	s.port(&model.Port{Base: model.Base{ID: idA1}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:01", PortSecurity: true,
		FixedIPs:            []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.11"}},
		AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.100"}, {IPAddress: "10.0.1.0/24", MACAddress: "fa:16:3e:0a:ff:ff"}}}, "hv1", 1, "")
	s.port(&model.Port{Base: model.Base{ID: idA2}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:02", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.12"}}}, "hv2", 1, "")
	s.port(&model.Port{Base: model.Base{ID: idB1}, NetworkID: "net-b", MACAddress: "fa:16:3e:0b:00:01", PortSecurity: false,
		Profile:  map[string]any{"port_name": "vm-b1"},
		FixedIPs: []model.FixedIP{{SubnetID: "sub-b", IPAddress: "10.0.0.11"}}}, "hv1", 2, "vm-b1")
	s.port(&model.Port{Base: model.Base{ID: idB2}, NetworkID: "net-b", MACAddress: "fa:16:3e:0b:00:02", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-b", IPAddress: "10.0.0.12"}}}, "hv2", 2, "")
	s.port(&model.Port{Base: model.Base{ID: idV1}, NetworkID: "net-v", MACAddress: "fa:16:3e:0f:00:01", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-v", IPAddress: "10.0.0.21"}}}, "hv1", 3, "")
	s.port(&model.Port{Base: model.Base{ID: idV2}, NetworkID: "net-v", MACAddress: "fa:16:3e:0f:00:02", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-v", IPAddress: "10.0.0.22"}}}, "hv2", 3, "")
	s.port(&model.Port{Base: model.Base{ID: idC1}, NetworkID: "net-c", MACAddress: "fa:16:3e:0c:00:01", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-c", IPAddress: "10.0.0.31"}}}, "hv2", 4, "")
	s.sw["hv1"][10] = topology.Port{No: 10, Name: names.TunnelPortName("hv2"), Up: true}
	s.sw["hv2"][10] = topology.Port{No: 10, Name: names.TunnelPortName("hv1"), Up: true}
	s.sw["hv1"][20] = topology.Port{No: 20, Name: names.PhysPortName("physnet1"), Up: true}
	s.sw["hv2"][20] = topology.Port{No: 20, Name: names.PhysPortName("physnet1"), Up: true}
	s.sw["hv1"][0xfffffffe] = topology.Port{No: 0xfffffffe, Name: "br-int", Up: true}
	return s
}

// port adds a Neutron port and, with a chassis, its OVS port (tap name
// unless ifname is given).
func (s *scenario) port(p *model.Port, chassis string, ofport uint32, ifname string) {
	if s.recs[model.KindPort] == nil {
		s.recs[model.KindPort] = map[string]model.Record{}
	}
	s.recs[model.KindPort][p.ID] = p
	if chassis == "" {
		return
	}
	if ifname == "" {
		ifname = names.VMPortName(p.ID)
	}
	s.sw[chassis][ofport] = topology.Port{No: ofport, Name: ifname, Up: true}
}

func (s *scenario) input(chassis string) app.Input {
	recs := map[model.Kind]map[string]model.Record{}
	for k, m := range s.recs {
		cp := map[string]model.Record{}
		for id, r := range m {
			cp[id] = r
		}
		recs[k] = cp
	}
	topo := &topology.Snapshot{Switches: map[uint64]*topology.Switch{}}
	for c, ports := range s.sw {
		pm := map[uint32]topology.Port{}
		for n, p := range ports {
			pm[n] = p
		}
		topo.Switches[dpids[c]] = &topology.Switch{DPID: dpids[c], Ports: pm}
	}
	return app.Input{Model: model.NewSnapshot(1, recs), Topology: topo, Switch: topo.Switches[dpids[chassis]]}
}
