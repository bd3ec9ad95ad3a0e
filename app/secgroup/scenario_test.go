package secgroup

import (
	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// scenario is the test topology: net-a (GRE 100, 10.0.0.0/24) across hv1
// and hv2, net-v (VLAN 200) on hv1.
//
//	hv1: 1 a1 (web)   2 a3 (no group)   3 a4 (port security off)
//	     4 a5 (default, pair 10.0.5.0/24)   5 v1 net-v (default)
//	     6 r1 router interface (network:router_interface, web)
//	     10 GRE tunnel to hv2   20 physnet1 uplink
//	hv2: 1 a2 (web)   2 a6 (default)
type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port
}

const (
	idA1 = "a1000000-0000-4000-8000-000000000001"
	idA2 = "a2000000-0000-4000-8000-000000000002"
	idA3 = "a3000000-0000-4000-8000-000000000003"
	idA4 = "a4000000-0000-4000-8000-000000000004"
	idA5 = "a5000000-0000-4000-8000-000000000005"
	idA6 = "a6000000-0000-4000-8000-000000000006"
	idV1 = "f1000000-0000-4000-8000-000000000001"
	idR1 = "e1000000-0000-4000-8000-000000000001"

	sgDefault = "5d000000-0000-4000-8000-00000000000d"
	sgWeb     = "5e000000-0000-4000-8000-00000000000e"
)

var dpids = map[string]uint64{"hv1": 0x1, "hv2": 0x2}

func intp(v int) *int { return &v }

func newScenario() *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{"hv1": {}, "hv2": {}}}
	s.put(&model.Chassis{Name: "hv1", TunnelIP: "172.16.0.1", DPID: "0000000000000001", Mappings: map[string]string{"physnet1": "br-phy"}})
	s.put(&model.Chassis{Name: "hv2", TunnelIP: "172.16.0.2", DPID: "0000000000000002", Mappings: map[string]string{"physnet1": "br-phy"}})
	s.put(&model.Network{Base: model.Base{ID: "net-a", ProjectID: "p"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: 100, PortSecurity: true})
	s.put(&model.Network{Base: model.Base{ID: "net-v", ProjectID: "p"}, AdminStateUp: true, NetworkType: model.NetVLAN, SegmentationID: 200, PhysicalNetwork: "physnet1", PortSecurity: true})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-a"}, NetworkID: "net-a", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1", EnableDHCP: true})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-v"}, NetworkID: "net-v", IPVersion: 4, CIDR: "10.1.0.0/24", EnableDHCP: true})
	s.put(&model.SecurityGroup{Base: model.Base{ID: sgDefault, Name: "default", ProjectID: "p"}})
	s.put(&model.SecurityGroup{Base: model.Base{ID: sgWeb, Name: "web", ProjectID: "p"}})
	// The default group's four rules.
	s.rule("d0000000-0000-4000-8000-000000000001", sgDefault, "egress", "IPv4", "", nil, nil, "", "")
	s.rule("d0000000-0000-4000-8000-000000000002", sgDefault, "egress", "IPv6", "", nil, nil, "", "")
	s.rule("d0000000-0000-4000-8000-000000000003", sgDefault, "ingress", "IPv4", "", nil, nil, "", sgDefault)
	s.rule("d0000000-0000-4000-8000-000000000004", sgDefault, "ingress", "IPv6", "", nil, nil, "", sgDefault)
	// web: egress anywhere; TCP 8000-8010 from anywhere; UDP 53 from
	// 192.168.0.0/16; ICMP echo request from the default group; GRE (by
	// number) from anywhere; an IPv6 rule (stored, not enforced).
	s.rule("e0000000-0000-4000-8000-000000000001", sgWeb, "egress", "IPv4", "", nil, nil, "", "")
	s.rule("e0000000-0000-4000-8000-000000000002", sgWeb, "ingress", "IPv4", "tcp", intp(8000), intp(8010), "0.0.0.0/0", "")
	s.rule("e0000000-0000-4000-8000-000000000003", sgWeb, "ingress", "IPv4", "udp", intp(53), intp(53), "192.168.0.0/16", "")
	s.rule("e0000000-0000-4000-8000-000000000004", sgWeb, "ingress", "IPv4", "icmp", intp(8), intp(0), "", sgDefault)
	s.rule("e0000000-0000-4000-8000-000000000005", sgWeb, "ingress", "IPv4", "47", nil, nil, "", "")
	s.rule("e0000000-0000-4000-8000-000000000006", sgWeb, "ingress", "IPv6", "tcp", intp(22), intp(22), "::/0", "")

	s.port(&model.Port{Base: model.Base{ID: idA1}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:01", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.11"}}, SecurityGroups: []string{sgWeb}}, "hv1", 1)
	s.port(&model.Port{Base: model.Base{ID: idA2}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:02", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.12"}}, SecurityGroups: []string{sgWeb}}, "hv2", 1)
	s.port(&model.Port{Base: model.Base{ID: idA3}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:03", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.13"}}}, "hv1", 2)
	s.port(&model.Port{Base: model.Base{ID: idA4}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:04", PortSecurity: false,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.14"}}, SecurityGroups: []string{sgDefault}}, "hv1", 3)
	s.port(&model.Port{Base: model.Base{ID: idA5}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:05", PortSecurity: true,
		FixedIPs:            []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.15"}},
		AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.5.0/24"}}, SecurityGroups: []string{sgDefault}}, "hv1", 4)
	s.port(&model.Port{Base: model.Base{ID: idA6}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:06", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.16"}}, SecurityGroups: []string{sgDefault}}, "hv2", 2)
	s.port(&model.Port{Base: model.Base{ID: idV1}, NetworkID: "net-v", MACAddress: "fa:16:3e:0f:00:01", PortSecurity: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-v", IPAddress: "10.1.0.11"}}, SecurityGroups: []string{sgDefault}}, "hv1", 5)
	s.port(&model.Port{Base: model.Base{ID: idR1}, NetworkID: "net-a", MACAddress: "fa:16:3e:0a:00:fe", PortSecurity: true,
		DeviceOwner: "network:router_interface", FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.0.1"}},
		SecurityGroups: []string{sgWeb}}, "hv1", 6)
	s.sw["hv1"][10] = topology.Port{No: 10, Name: names.TunnelPortName("hv2"), Up: true}
	s.sw["hv2"][10] = topology.Port{No: 10, Name: names.TunnelPortName("hv1"), Up: true}
	s.sw["hv1"][20] = topology.Port{No: 20, Name: names.PhysPortName("physnet1"), Up: true}
	return s
}

func (s *scenario) put(r model.Record) {
	if s.recs[r.Kind()] == nil {
		s.recs[r.Kind()] = map[string]model.Record{}
	}
	s.recs[r.Kind()][r.Key()] = r
}

func (s *scenario) rule(id, group, direction, ethertype, proto string, min, max *int, prefix, remoteGroup string) {
	s.put(&model.SGRule{Base: model.Base{ID: id}, SecurityGroupID: group, Direction: direction, EtherType: ethertype,
		Protocol: proto, PortRangeMin: min, PortRangeMax: max, RemoteIPPrefix: prefix, RemoteGroupID: remoteGroup})
}

func (s *scenario) del(k model.Kind, id string) { delete(s.recs[k], id) }

func (s *scenario) port(p *model.Port, chassis string, ofport uint32) {
	s.put(p)
	s.sw[chassis][ofport] = topology.Port{No: ofport, Name: names.VMPortName(p.ID), Up: true}
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
