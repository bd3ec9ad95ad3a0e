package l3router

import (
	"flag"
	"net"
	"os"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

var update = flag.Bool("update", false, "rewrite golden files")

// scenario: two chassis, two tenants with identical subnets behind their
// own routers.
//
//	tenant A, router rA:
//	  net-a1 GRE 100  10.0.1.0/24 gw 10.0.1.1 (fa:16:3e:aa:01:01)  a1 hv1:1 10.0.1.11
//	  net-a2 GRE 101  10.0.2.0/24 gw 10.0.2.1 (fa:16:3e:aa:02:01)  a2 hv2:1 10.0.2.12, a3 hv1:5 10.0.2.13
//	  net-av VLAN 200 10.0.3.0/24 gw 10.0.3.1 (fa:16:3e:aa:03:01)  av hv2:3 10.0.3.14
//	  net-ax GRE 103  10.0.4.0/24, on no router                    ax hv2:4 10.0.4.15
//	  extra routes of rA: 10.9.0.0/16 via a2, 10.9.1.0/24 via a3 (longer:
//	  wins for 10.9.1.x), 10.7.0.0/16 via 10.0.1.99 (no such port),
//	  10.0.2.0/25 via a3 (overlaps net-a2: the connected subnet wins)
//	tenant B, router rB:
//	  net-b1 GRE 110  10.0.1.0/24 gw 10.0.1.1 (fa:16:3e:bb:01:01)  b1 hv1:2 10.0.1.11
//	  net-b2 GRE 111  10.0.2.0/24 gw 10.0.2.1 (fa:16:3e:bb:02:01)  b2 hv2:2 10.0.2.12
//
// Ports 10: the GRE tunnel to the other chassis; 20: the physnet1 uplink.
type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port
}

var dpids = map[string]uint64{"hv1": 1, "hv2": 2}

var (
	macA1, macA2, macA3, macAV = flow.MustMAC("fa:16:3e:0a:00:01"), flow.MustMAC("fa:16:3e:0a:00:02"), flow.MustMAC("fa:16:3e:0a:00:03"), flow.MustMAC("fa:16:3e:0a:00:04")
	macB1, macB2               = flow.MustMAC("fa:16:3e:0b:00:01"), flow.MustMAC("fa:16:3e:0b:00:02")
	rA1, rA2, rAV              = flow.MustMAC("fa:16:3e:aa:01:01"), flow.MustMAC("fa:16:3e:aa:02:01"), flow.MustMAC("fa:16:3e:aa:03:01")
	rB1, rB2                   = flow.MustMAC("fa:16:3e:bb:01:01"), flow.MustMAC("fa:16:3e:bb:02:01")
)

func (s *scenario) put(r model.Record) {
	if s.recs[r.Kind()] == nil {
		s.recs[r.Kind()] = map[string]model.Record{}
	}
	s.recs[r.Kind()][r.Key()] = r
}

func newScenario() *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{"hv1": {}, "hv2": {}}}
	s.put(&model.Chassis{Name: "hv1", TunnelIP: "172.16.0.1", DPID: "0000000000000001", Mappings: map[string]string{"physnet1": "br-phy"}})
	s.put(&model.Chassis{Name: "hv2", TunnelIP: "172.16.0.2", DPID: "0000000000000002", Mappings: map[string]string{"physnet1": "br-phy"}})
	net := func(id, proj, typ string, seg int, cidr, gw string) {
		physnet := ""
		if typ == model.NetVLAN {
			physnet = "physnet1"
		}
		s.put(&model.Network{Base: model.Base{ID: id, ProjectID: proj}, AdminStateUp: true, NetworkType: typ, SegmentationID: seg,
			PhysicalNetwork: physnet, MTU: 1450, PortSecurity: true})
		s.put(&model.Subnet{Base: model.Base{ID: "sub-" + id, ProjectID: proj}, NetworkID: id, IPVersion: 4, CIDR: cidr, GatewayIP: gw})
	}
	net("net-a1", "ta", model.NetGRE, 100, "10.0.1.0/24", "10.0.1.1")
	net("net-a2", "ta", model.NetGRE, 101, "10.0.2.0/24", "10.0.2.1")
	net("net-av", "ta", model.NetVLAN, 200, "10.0.3.0/24", "10.0.3.1")
	net("net-ax", "ta", model.NetGRE, 103, "10.0.4.0/24", "10.0.4.1")
	net("net-b1", "tb", model.NetGRE, 110, "10.0.1.0/24", "10.0.1.1")
	net("net-b2", "tb", model.NetGRE, 111, "10.0.2.0/24", "10.0.2.1")
	s.router("rA", "ta", map[string]string{"net-a1": "fa:16:3e:aa:01:01", "net-a2": "fa:16:3e:aa:02:01", "net-av": "fa:16:3e:aa:03:01"})
	rt := s.recs[model.KindRouter]["rA"].(*model.Router)
	rt.Routes = []model.Route{{Destination: "10.9.0.0/16", NextHop: "10.0.2.12"}, {Destination: "10.9.1.0/24", NextHop: "10.0.2.13"},
		{Destination: "10.7.0.0/16", NextHop: "10.0.1.99"}, {Destination: "10.0.2.0/25", NextHop: "10.0.2.13"}}
	s.router("rB", "tb", map[string]string{"net-b1": "fa:16:3e:bb:01:01", "net-b2": "fa:16:3e:bb:02:01"})
	s.vm("a1", "net-a1", macA1, "10.0.1.11", "hv1", 1)
	s.vm("a2", "net-a2", macA2, "10.0.2.12", "hv2", 1)
	s.vm("a3", "net-a2", macA3, "10.0.2.13", "hv1", 5)
	s.vm("av", "net-av", macAV, "10.0.3.14", "hv2", 3)
	s.vm("ax", "net-ax", flow.MustMAC("fa:16:3e:0a:00:05"), "10.0.4.15", "hv2", 4)
	s.vm("b1", "net-b1", macB1, "10.0.1.11", "hv1", 2)
	s.vm("b2", "net-b2", macB2, "10.0.2.12", "hv2", 2)
	for _, c := range []string{"hv1", "hv2"} {
		peer := map[string]string{"hv1": "hv2", "hv2": "hv1"}[c]
		s.sw[c][10] = topology.Port{No: 10, Name: names.TunnelPortName(peer), Up: true}
		s.sw[c][20] = topology.Port{No: 20, Name: names.PhysPortName("physnet1"), Up: true}
	}
	return s
}

func portID(name string) string { return name + "000000-0000-4000-8000-000000000000"[len(name):] }

// router adds a router with one interface per network (gateway address,
// given MAC), listed in its interfaces.
func (s *scenario) router(id, proj string, ifs map[string]string) {
	rt := &model.Router{Base: model.Base{ID: id, ProjectID: proj}, AdminStateUp: true}
	for _, n := range []string{"net-a1", "net-a2", "net-av", "net-b1", "net-b2"} {
		mac, ok := ifs[n]
		if !ok {
			continue
		}
		sub := s.recs[model.KindSubnet]["sub-"+n].(*model.Subnet)
		p := &model.Port{Base: model.Base{ID: portID("e" + n[len(n)-2:]), ProjectID: proj}, NetworkID: n, MACAddress: mac,
			DeviceOwner: "network:router_interface_distributed", DeviceID: id, AdminStateUp: true,
			FixedIPs: []model.FixedIP{{SubnetID: sub.ID, IPAddress: sub.GatewayIP}}}
		s.put(p)
		rt.Interfaces = append(rt.Interfaces, p.ID)
	}
	s.put(rt)
}

func (s *scenario) vm(name, netID string, mac flow.MAC, ip, chassis string, ofport uint32) {
	p := &model.Port{Base: model.Base{ID: portID(name)}, NetworkID: netID, MACAddress: mac.String(), PortSecurity: true, AdminStateUp: true,
		DeviceOwner: "compute:nova", FixedIPs: []model.FixedIP{{SubnetID: "sub-" + netID, IPAddress: ip}}}
	s.put(p)
	s.sw[chassis][ofport] = topology.Port{No: ofport, Name: names.VMPortName(p.ID), Up: true}
}

func (s *scenario) input(chassis string) app.Input {
	topo := &topology.Snapshot{Switches: map[uint64]*topology.Switch{}}
	for c, ports := range s.sw {
		pm := map[uint32]topology.Port{}
		for n, p := range ports {
			pm[n] = p
		}
		topo.Switches[dpids[c]] = &topology.Switch{DPID: dpids[c], Ports: pm}
	}
	recs := map[model.Kind]map[string]model.Record{}
	for k, m := range s.recs {
		cp := map[string]model.Record{}
		for id, r := range m {
			cp[id] = r
		}
		recs[k] = cp
	}
	return app.Input{Model: model.NewSnapshot(1, recs), Topology: topo, Switch: topo.Switches[dpids[chassis]]}
}

// state is the switch's full state as switches.Manager builds it: the
// pipeline's miss flows plus each app's flows, groups and meters, every
// flow checked against its table's contract.
func state(t *testing.T, in app.Input, apps ...app.App) (*flow.State, map[pipeline.AppID]any) {
	t.Helper()
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	handlers := map[pipeline.AppID]any{}
	for _, a := range apps {
		d, err := a.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		handlers[a.ID()] = d.Handler
		for _, f := range d.Flows {
			if err := pipeline.Check(f); err != nil {
				t.Errorf("contract: %v", err)
			}
			if st.AddFlow(f) {
				t.Errorf("two flows share a key: %s", f.KeyText())
			}
		}
		for _, g := range d.Groups {
			st.Groups[g.ID] = g
		}
		for _, m := range d.Meters {
			st.Meters[m.ID] = m
		}
	}
	for _, f := range st.Flows {
		if f.Meter != 0 && st.Meters[f.Meter] == nil {
			t.Errorf("flow %s uses meter %d no app declared", f.KeyText(), f.Meter)
		}
		if err := pipeline.CheckGroups(f, st.Groups); err != nil {
			t.Errorf("contract (groups): %v", err)
		}
	}
	return st, handlers
}

func TestGolden(t *testing.T) {
	s := newScenario()
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			st, _ := state(t, s.input(c), New())
			got := st.Text()
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
			if string(want) != got {
				t.Fatalf("flows differ from %s (rerun with -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

// frame builds an Ethernet/IPv4 frame: UDP 1000->2000, or an ICMP echo
// request when icmp.
func frame(t *testing.T, src, dst flow.MAC, nwSrc, nwDst string, ttl uint8, icmp bool) []byte {
	t.Helper()
	hw := func(m flow.MAC) net.HardwareAddr {
		return net.HardwareAddr{byte(m >> 40), byte(m >> 32), byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	}
	eth := &layers.Ethernet{SrcMAC: hw(src), DstMAC: hw(dst), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(nwSrc).To4(), DstIP: net.ParseIP(nwDst).To4()}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if icmp {
		ip.Protocol = layers.IPProtocolICMPv4
		err = gopacket.SerializeLayers(buf, opts, eth, ip,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, gopacket.Payload("ping"))
	} else {
		udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
		_ = udp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("data"))
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pkt(t *testing.T, src, dst flow.MAC, nwSrc, nwDst string, ttl uint8, icmp bool) fakeswitch.Packet {
	t.Helper()
	p, err := fakeswitch.Parse(frame(t, src, dst, nwSrc, nwDst, ttl, icmp))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
