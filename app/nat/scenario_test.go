package nat

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

// scenario: two chassis mapping extnet to br-ex (br-int port 30), a tunnel
// between them (port 10).
//
//	net-x   flat extnet, router:external, 198.51.100.0/24 gw 198.51.100.1
//	tenant A, router rA (gateway on net-x):
//	  net-a1 GRE 100 10.0.1.0/24 gw 10.0.1.1 (fa:16:3e:aa:01:01)  a1 hv1:1 10.0.1.11
//	  net-a2 GRE 101 10.0.2.0/24 gw 10.0.2.1 (fa:16:3e:aa:02:01)  a2 hv2:1 10.0.2.12
//	floating IPs: f1 198.51.100.50 (port MAC fa:16:3e:ff:00:50) -> a1
//	              f2 198.51.100.51 (fa:16:3e:ff:00:51), not associated
//	tenant B, router rB with no gateway:
//	  net-b1 GRE 110 10.0.1.0/24 (fa:16:3e:bb:01:01)  b1 hv1:2 10.0.1.11
//	  f3 198.51.100.52 names b1 through rB: no flows (rB has no gateway)
type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port
}

var dpids = map[string]uint64{"hv1": 1, "hv2": 2}

var (
	macA1, macA2, macB1 = flow.MustMAC("fa:16:3e:0a:00:01"), flow.MustMAC("fa:16:3e:0a:00:02"), flow.MustMAC("fa:16:3e:0b:00:01")
	rA1, rA2            = flow.MustMAC("fa:16:3e:aa:01:01"), flow.MustMAC("fa:16:3e:aa:02:01")
	fipMAC1, fipMAC3    = flow.MustMAC("fa:16:3e:ff:00:50"), flow.MustMAC("fa:16:3e:ff:00:52")
	inetMAC, gwMAC      = flow.MustMAC("02:00:00:00:99:01"), flow.MustMAC("02:00:00:00:99:01")
)

const uplink, tunnel = 30, 10

func (s *scenario) put(r model.Record) {
	if s.recs[r.Kind()] == nil {
		s.recs[r.Kind()] = map[string]model.Record{}
	}
	s.recs[r.Kind()][r.Key()] = r
}

func portID(name string) string { return name + "000000-0000-4000-8000-000000000000"[len(name):] }

func newScenario() *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{"hv1": {}, "hv2": {}}}
	s.put(&model.Chassis{Name: "hv1", TunnelIP: "172.16.0.1", DPID: "0000000000000001", Mappings: map[string]string{"extnet": "br-ex"}})
	s.put(&model.Chassis{Name: "hv2", TunnelIP: "172.16.0.2", DPID: "0000000000000002", Mappings: map[string]string{"extnet": "br-ex"}})
	s.put(&model.Network{Base: model.Base{ID: "net-x", ProjectID: "admin"}, AdminStateUp: true, External: true, NetworkType: model.NetFlat,
		PhysicalNetwork: "extnet", MTU: 1500})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-net-x"}, NetworkID: "net-x", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: "198.51.100.1"})
	net := func(id, proj string, seg int, cidr, gw string) {
		s.put(&model.Network{Base: model.Base{ID: id, ProjectID: proj}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: seg, MTU: 1450, PortSecurity: true})
		s.put(&model.Subnet{Base: model.Base{ID: "sub-" + id, ProjectID: proj}, NetworkID: id, IPVersion: 4, CIDR: cidr, GatewayIP: gw})
	}
	net("net-a1", "ta", 100, "10.0.1.0/24", "10.0.1.1")
	net("net-a2", "ta", 101, "10.0.2.0/24", "10.0.2.1")
	net("net-b1", "tb", 110, "10.0.1.0/24", "10.0.1.1")
	s.router("rA", "ta", true, map[string]string{"net-a1": "fa:16:3e:aa:01:01", "net-a2": "fa:16:3e:aa:02:01"})
	s.router("rB", "tb", false, map[string]string{"net-b1": "fa:16:3e:bb:01:01"})
	s.vm("a1", "net-a1", macA1, "10.0.1.11", "hv1", 1)
	s.vm("a2", "net-a2", macA2, "10.0.2.12", "hv2", 1)
	s.vm("b1", "net-b1", macB1, "10.0.1.11", "hv1", 2)
	s.fip("f1", "ta", "198.51.100.50", fipMAC1.String(), "a1", "10.0.1.11", "rA")
	s.fip("f2", "ta", "198.51.100.51", "fa:16:3e:ff:00:51", "", "", "")
	s.fip("f3", "tb", "198.51.100.52", fipMAC3.String(), "b1", "10.0.1.11", "rB")
	for _, c := range []string{"hv1", "hv2"} {
		peer := map[string]string{"hv1": "hv2", "hv2": "hv1"}[c]
		s.sw[c][tunnel] = topology.Port{No: tunnel, Name: names.TunnelPortName(peer), Up: true}
		s.sw[c][uplink] = topology.Port{No: uplink, Name: names.PhysPortName("extnet"), Up: true}
	}
	return s
}

// router adds a router with one interface per network (gateway address,
// given MAC), and with gw a gateway port on net-x.
func (s *scenario) router(id, proj string, gw bool, ifs map[string]string) {
	rt := &model.Router{Base: model.Base{ID: id, ProjectID: proj}, AdminStateUp: true}
	for _, n := range []string{"net-a1", "net-a2", "net-b1"} {
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
	if gw {
		gp := &model.Port{Base: model.Base{ID: portID("g" + id)}, NetworkID: "net-x", MACAddress: "fa:16:3e:99:00:01",
			DeviceOwner: "network:router_gateway", DeviceID: id, AdminStateUp: true,
			FixedIPs: []model.FixedIP{{SubnetID: "sub-net-x", IPAddress: "198.51.100.10"}}}
		s.put(gp)
		rt.Gateway = &model.ExternalGateway{NetworkID: "net-x", EnableSNAT: true, ExternalFixedIPs: gp.FixedIPs}
	}
	s.put(rt)
}

func (s *scenario) vm(name, netID string, mac flow.MAC, ip, chassis string, ofport uint32) {
	p := &model.Port{Base: model.Base{ID: portID(name)}, NetworkID: netID, MACAddress: mac.String(), PortSecurity: true, AdminStateUp: true,
		DeviceOwner: "compute:nova", FixedIPs: []model.FixedIP{{SubnetID: "sub-" + netID, IPAddress: ip}}}
	s.put(p)
	s.sw[chassis][ofport] = topology.Port{No: ofport, Name: names.VMPortName(p.ID), Up: true}
}

// fip adds a floating IP and its network:floatingip port on net-x.
func (s *scenario) fip(name, proj, addr, mac, vm, fixed, router string) {
	fp := &model.Port{Base: model.Base{ID: portID("p" + name)}, NetworkID: "net-x", MACAddress: mac, DeviceOwner: "network:floatingip",
		DeviceID: portID(name), AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-net-x", IPAddress: addr}}}
	s.put(fp)
	f := &model.FloatingIP{Base: model.Base{ID: portID(name), ProjectID: proj}, FloatingNetworkID: "net-x", FloatingIPAddress: addr,
		FloatingPortID: fp.ID, FixedIPAddress: fixed, RouterID: router}
	if vm != "" {
		f.PortID = portID(vm)
	}
	s.put(f)
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

// state is the switch's full state as switches.Manager builds it, every
// flow checked against its table's contract; also each app's Desired.
func state(t *testing.T, in app.Input, apps ...app.App) (*flow.State, map[pipeline.AppID]app.Desired) {
	t.Helper()
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	ds := map[pipeline.AppID]app.Desired{}
	for _, a := range apps {
		d, err := a.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		ds[a.ID()] = d
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
	return st, ds
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

func hw(m flow.MAC) net.HardwareAddr {
	return net.HardwareAddr{byte(m >> 40), byte(m >> 32), byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// ping builds an ICMP echo request frame.
func ping(t *testing.T, src, dst flow.MAC, nwSrc, nwDst string, ttl uint8) fakeswitch.Packet {
	t.Helper()
	return parse(t, pingFrame(t, src, dst, nwSrc, nwDst, ttl))
}

// pingFrame is ping's frame.
func pingFrame(t *testing.T, src, dst flow.MAC, nwSrc, nwDst string, ttl uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: hw(src), DstMAC: hw(dst), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(nwSrc).To4(), DstIP: net.ParseIP(nwDst).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, gopacket.Payload("ping")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parse(t *testing.T, b []byte) fakeswitch.Packet {
	t.Helper()
	p, err := fakeswitch.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// arpFrame builds an ARP frame (op 1 request, 2 reply).
func arpFrame(op uint16, sha flow.MAC, spa, tpa string, tha flow.MAC) []byte {
	s, _ := flow.ParseIPv4(spa)
	d, _ := flow.ParseIPv4(tpa)
	b := flow.ARPRequest(sha, s, d)
	b[21] = byte(op)
	if tha != 0 {
		copy(b[0:6], hw(tha))
		copy(b[32:38], hw(tha))
	}
	return b
}
