package snat

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/app/nat"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

var update = flag.Bool("update", false, "rewrite golden files")

// scenario: three chassis, external flat network "ext" (physnet extnet,
// mapped on all three, uplink port 30), router rA with enable_snat and
// external IP 172.24.4.10 (gateway port MAC fa:16:3e:ee:00:01; next hop
// 172.24.4.1 = 52:54:00:00:00:01, resolved by the owner).
//
//	net-a1 GRE 100 10.0.1.0/24 gw 10.0.1.1 (fa:16:3e:aa:01:01): v1 hv1:1 .11, v2 hv2:1 .12, v3 hv3:1 .13
//	net-a2 GRE 101 10.0.2.0/24 gw 10.0.2.1 (fa:16:3e:aa:02:01): w2 hv2:2 10.0.2.12
//
// Blocks of 172.24.4.10 (1024 ports): hv1/net-a1 1 (1024-2047); hv2/net-a1
// 5 and 6; hv2/net-a2 9; hv3/net-a1 20. ARP owner: hv1.
// Tunnel ports: 10+n toward hvn.
type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port
}

var (
	chassis  = []string{"hv1", "hv2", "hv3"}
	dpids    = map[string]uint64{"hv1": 1, "hv2": 2, "hv3": 3}
	extIP    = flow.MustIPv4("172.24.4.10")
	gwMAC    = flow.MustMAC("fa:16:3e:ee:00:01")
	nhMAC    = flow.MustMAC("52:54:00:00:00:01")
	rA1, rA2 = flow.MustMAC("fa:16:3e:aa:01:01"), flow.MustMAC("fa:16:3e:aa:02:01")
	vmMAC    = map[string]flow.MAC{"v1": flow.MustMAC("fa:16:3e:00:00:01"), "v2": flow.MustMAC("fa:16:3e:00:00:02"),
		"v3": flow.MustMAC("fa:16:3e:00:00:03"), "w2": flow.MustMAC("fa:16:3e:00:00:12")}
	vmIP = map[string]string{"v1": "10.0.1.11", "v2": "10.0.1.12", "v3": "10.0.1.13", "w2": "10.0.2.12"}
)

const uplink, extPhys = 30, "extnet"

func (s *scenario) put(r model.Record) {
	if s.recs[r.Kind()] == nil {
		s.recs[r.Kind()] = map[string]model.Record{}
	}
	s.recs[r.Kind()][r.Key()] = r
}

func portID(name string) string { return name + "000000-0000-4000-8000-000000000000"[len(name):] }

func newScenario() *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{}}
	for i, c := range chassis {
		s.put(&model.Chassis{Name: c, TunnelIP: fmt.Sprintf("172.16.0.%d", i+1), DPID: fmt.Sprintf("%016x", dpids[c]), Mappings: map[string]string{extPhys: "br-ex"}})
		s.sw[c] = map[uint32]topology.Port{uplink: {No: uplink, Name: names.PhysPortName(extPhys), Up: true}}
		for j, peer := range chassis {
			if peer != c {
				s.sw[c][uint32(11+j)] = topology.Port{No: uint32(11 + j), Name: names.TunnelPortName(peer), Up: true}
			}
		}
	}
	s.put(&model.Network{Base: model.Base{ID: "ext", ProjectID: "admin"}, AdminStateUp: true, External: true, NetworkType: model.NetFlat, PhysicalNetwork: extPhys, MTU: 1500})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-ext"}, NetworkID: "ext", IPVersion: 4, CIDR: "172.24.4.0/24", GatewayIP: "172.24.4.1"})
	net := func(id string, seg int, cidr, gw string) {
		s.put(&model.Network{Base: model.Base{ID: id, ProjectID: "ta"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: seg, MTU: 1450, PortSecurity: true})
		s.put(&model.Subnet{Base: model.Base{ID: "sub-" + id, ProjectID: "ta"}, NetworkID: id, IPVersion: 4, CIDR: cidr, GatewayIP: gw})
	}
	net("net-a1", 100, "10.0.1.0/24", "10.0.1.1")
	net("net-a2", 101, "10.0.2.0/24", "10.0.2.1")
	rt := &model.Router{Base: model.Base{ID: "rA", ProjectID: "ta"}, AdminStateUp: true,
		Gateway: &model.ExternalGateway{NetworkID: "ext", EnableSNAT: true, ExternalFixedIPs: []model.FixedIP{{SubnetID: "sub-ext", IPAddress: "172.24.4.10"}}}}
	for n, mac := range map[string]flow.MAC{"net-a1": rA1, "net-a2": rA2} {
		sub := s.recs[model.KindSubnet]["sub-"+n].(*model.Subnet)
		p := &model.Port{Base: model.Base{ID: portID("i" + n[len(n)-2:]), ProjectID: "ta"}, NetworkID: n, MACAddress: mac.String(),
			DeviceOwner: "network:router_interface_distributed", DeviceID: "rA", AdminStateUp: true,
			FixedIPs: []model.FixedIP{{SubnetID: sub.ID, IPAddress: sub.GatewayIP}}}
		s.put(p)
	}
	rt.Interfaces = []string{portID("ia1"), portID("ia2")}
	s.put(rt)
	s.put(&model.Port{Base: model.Base{ID: portID("gw")}, NetworkID: "ext", MACAddress: gwMAC.String(), DeviceOwner: OwnerGateway, DeviceID: "rA",
		AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-ext", IPAddress: "172.24.4.10"}}})
	s.vm("v1", "net-a1", "hv1", 1)
	s.vm("v2", "net-a1", "hv2", 1)
	s.vm("v3", "net-a1", "hv3", 1)
	s.vm("w2", "net-a2", "hv2", 2)
	for _, b := range []struct {
		c, n string
		idx  int
	}{{"hv1", "net-a1", 1}, {"hv2", "net-a1", 5}, {"hv2", "net-a1", 6}, {"hv2", "net-a2", 9}, {"hv3", "net-a1", 20}} {
		s.put(&model.SNATBlock{ExternalIP: "172.24.4.10", Index: b.idx, Bits: 10, Chassis: b.c, NetworkID: b.n})
	}
	s.put(&model.SNATOwner{ExternalIP: "172.24.4.10", Chassis: "hv1", NextHop: "172.24.4.1", NextHopMAC: nhMAC.String()})
	return s
}

func (s *scenario) vm(name, netID, chassis string, ofport uint32) {
	p := &model.Port{Base: model.Base{ID: portID(name)}, NetworkID: netID, MACAddress: vmMAC[name].String(), PortSecurity: true, AdminStateUp: true,
		DeviceOwner: "compute:nova", FixedIPs: []model.FixedIP{{SubnetID: "sub-" + netID, IPAddress: vmIP[name]}}}
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

// state is the switch's state as switches.Manager builds it, every flow
// checked against its table's contract.
func state(t *testing.T, in app.Input, apps ...app.App) *flow.State {
	t.Helper()
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for _, a := range apps {
		d, err := a.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
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
	return st
}

func TestGolden(t *testing.T) {
	s := newScenario()
	for _, c := range chassis {
		t.Run(c, func(t *testing.T) {
			got := state(t, s.input(c), New()).Text()
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

// lab is the three chassis's switches with isolation, l3router and snat,
// each with its own conntrack.
type lab struct {
	sw map[string]*fakeswitch.Switch
	ct map[string]*fakeswitch.ConnTable
}

func newLab(t *testing.T, s *scenario) *lab {
	t.Helper()
	l := &lab{sw: map[string]*fakeswitch.Switch{}, ct: map[string]*fakeswitch.ConnTable{}}
	for _, c := range chassis {
		st := state(t, s.input(c), isolation.New(isolation.Config{}), l3router.New(), nat.New(), New())
		ports := []uint32{flow.PortLocal}
		for no := range s.sw[c] {
			ports = append(ports, no)
		}
		sw := fakeswitch.FromState(st, ports...)
		l.ct[c] = fakeswitch.NewConnTable()
		sw.Conntrack = l.ct[c]
		l.sw[c] = sw
	}
	return l
}

func model_KindSNATBlock() model.Kind { return model.KindSNATBlock }

func snatBlock(c, n string, idx, bits int) *model.SNATBlock {
	return &model.SNATBlock{ExternalIP: "172.24.4.10", Index: idx, Bits: bits, Chassis: c, NetworkID: n}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func cookieText(c uint64) string { return fmt.Sprintf("%#x", c) }

func TestPool(t *testing.T) {
	in := newScenario().input("hv1")
	got := Pool(in.Model, 10)
	if lf := got["172.24.4.10"]; len(got) != 1 || lf != [2]int{5, 58} {
		t.Fatalf("pool %v, want 5 leased and 58 free of 63", got)
	}
}

// The ARP owner, and only it, announces the external IP (gratuitous ARP
// from the gateway port's MAC out of its uplink).
func TestAnnounce(t *testing.T) {
	s := newScenario()
	for _, c := range chassis {
		d, err := New().Desired(s.input(c))
		if err != nil {
			t.Fatal(err)
		}
		if c != "hv1" {
			if len(d.Announce) != 0 {
				t.Fatalf("%s (not the owner) announces %d frames", c, len(d.Announce))
			}
			continue
		}
		if len(d.Announce) != 1 || d.Announce[0].Port != uplink {
			t.Fatalf("owner announces %+v", d.Announce)
		}
		p, err := fakeswitch.Parse(d.Announce[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if p.EthType != flow.EthTypeARP || p.ARPOp != 1 || p.EthSrc != gwMAC || p.ARPSha != gwMAC || p.ARPSpa != extIP || p.ARPTpa != extIP ||
			p.EthDst != flow.MustMAC("ff:ff:ff:ff:ff:ff") || len(d.Announce[0].Data) != 60 {
			t.Fatalf("gratuitous ARP %s (%d bytes)", p, len(d.Announce[0].Data))
		}
	}
	// Ownership moves: the new owner announces.
	s.put(&model.SNATOwner{ExternalIP: "172.24.4.10", Chassis: "hv3", NextHop: "172.24.4.1", NextHopMAC: nhMAC.String()})
	if d, _ := New().Desired(s.input("hv3")); len(d.Announce) != 1 {
		t.Fatalf("new owner hv3 announces %d frames", len(d.Announce))
	}
}
