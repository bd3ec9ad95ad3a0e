package snat

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

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
	s.put(&model.SNATOwner{ExternalIP: "172.24.4.10", Chassis: "hv1"})
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
	st, _ := stateH(t, in, apps...)
	return st
}

// stateH is state plus the snat app's handler state.
func stateH(t *testing.T, in app.Input, apps ...app.App) (*flow.State, State) {
	t.Helper()
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	var hs State
	for _, a := range apps {
		d, err := a.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID() == pipeline.AppSNAT {
			hs, _ = d.Handler.(State)
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
	return st, hs
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
	h  map[string]app.SwitchHandler
	st map[string]State
}

func newLab(t *testing.T, s *scenario) *lab {
	t.Helper()
	l := &lab{sw: map[string]*fakeswitch.Switch{}, ct: map[string]*fakeswitch.ConnTable{}, h: map[string]app.SwitchHandler{}, st: map[string]State{}}
	for _, c := range chassis {
		st, hs := stateH(t, s.input(c), isolation.New(isolation.Config{}), l3router.New(), nat.New(), New())
		l.st[c], l.h[c] = hs, New().NewSwitchHandler(dpids[c])
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

// newResolvedLab is newLab after every chassis learned the next hop.
func newResolvedLab(t *testing.T, s *scenario) *lab {
	t.Helper()
	l := newLab(t, s)
	for _, c := range chassis {
		if out := l.resolve(t, c); len(out.Flows) == 0 {
			t.Fatalf("%s: the handler installed nothing for the next hop's answer", c)
		}
	}
	return l
}

// answer is the next hop's answer to chassis c's probe (to its MAC for
// router rA, sender the next hop, target 0.0.0.0), as it arrives on c's
// uplink.
func answer(c string) fakeswitch.Packet {
	m := ChassisMAC(c, "rA")
	return fakeswitch.Packet{EthSrc: nhMAC, EthDst: m, EthType: flow.EthTypeARP, ARPOp: 2,
		ARPSha: nhMAC, ARPSpa: flow.MustIPv4("172.24.4.1"), ARPTha: m}
}

// resolve takes the next hop's answer on c through the switch (a
// metered punt) and the handler, and installs what the handler adds;
// it returns the handler's output.
func (l *lab) resolve(t *testing.T, c string) app.Out {
	t.Helper()
	r, err := l.sw[c].Walk(uplink, answer(c))
	if err != nil {
		t.Fatal(err)
	}
	ps := r.Punts()
	if len(ps) != 1 || ps[0].Table != pipeline.Classifier.ID() || pipeline.CookieApp(ps[0].Cookie) != pipeline.AppSNAT {
		t.Fatalf("%s: next hop's answer %s, want one snat punt\n%s", c, r, r.TraceText())
	}
	return l.punt(t, c, ps[0])
}

// punt hands a punted packet to c's handler and installs its flows.
func (l *lab) punt(t *testing.T, c string, e fakeswitch.Emit) app.Out {
	t.Helper()
	var out app.Out
	in := e.Packet.InPort
	if e.Packet.EthType == flow.EthTypeARP {
		in = uplink
	}
	l.h[c].PacketIn(&app.PacketIn{DPID: dpids[c], InPort: in, Table: e.Table, Cookie: e.Cookie, Data: wire(t, e.Packet), State: l.st[c]}, &out)
	for _, f := range out.Flows {
		if err := pipeline.Check(&f.Flow); err != nil {
			t.Fatalf("handler flow: %v", err)
		}
		ff := f.Flow
		l.sw[c].Install(&ff)
	}
	return out
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

// garps are the gratuitous ARPs for the external IP among d's
// announcements (the others are next-hop probes).
func garps(t *testing.T, d app.Desired) []app.Announcement {
	t.Helper()
	var out []app.Announcement
	for _, a := range d.Announce {
		p, err := fakeswitch.Parse(a.Data)
		if err != nil {
			t.Fatal(err)
		}
		if p.EthType == flow.EthTypeARP && p.ARPSpa == extIP {
			out = append(out, a)
		}
	}
	return out
}

// The ARP owner, and only it, announces the external IP (gratuitous ARP
// from the gateway port's MAC out of its uplink); every chassis with an
// egress probes for the next hop from its own MAC.
func TestAnnounce(t *testing.T) {
	s := newScenario()
	for _, c := range chassis {
		d, err := New().Desired(s.input(c))
		if err != nil {
			t.Fatal(err)
		}
		probes := 0
		for _, a := range d.Announce {
			p, _ := fakeswitch.Parse(a.Data)
			if p.ARPOp == 1 && p.ARPSpa == 0 && p.ARPTpa == flow.MustIPv4("172.24.4.1") && p.EthSrc == ChassisMAC(c, "rA") && p.ARPSha == p.EthSrc && a.Port == uplink {
				probes++
			}
		}
		if probes != 1 {
			t.Fatalf("%s: %d next-hop probes in %+v, want 1", c, probes, d.Announce)
		}
		g := garps(t, d)
		if c != "hv1" {
			if len(g) != 0 {
				t.Fatalf("%s (not the owner) announces the external IP", c)
			}
			continue
		}
		if len(g) != 1 || g[0].Port != uplink {
			t.Fatalf("owner announces %+v", g)
		}
		p, _ := fakeswitch.Parse(g[0].Data)
		if p.ARPOp != 1 || p.EthSrc != gwMAC || p.ARPSha != gwMAC || p.ARPTpa != extIP ||
			p.EthDst != flow.MustMAC("ff:ff:ff:ff:ff:ff") || len(g[0].Data) != 60 {
			t.Fatalf("gratuitous ARP %s (%d bytes)", p, len(g[0].Data))
		}
	}
	// Ownership moves: the new owner announces.
	s.put(&model.SNATOwner{ExternalIP: "172.24.4.10", Chassis: "hv3"})
	if d, _ := New().Desired(s.input("hv3")); len(garps(t, d)) != 1 {
		t.Fatalf("new owner hv3 does not announce the external IP")
	}
}

// Before a chassis knows the next hop's MAC, NATed egress is punted
// (metered) to the resolver, which probes and holds the packet; the
// next hop's answer installs the dynamic flow and releases the packet
// to that MAC; later egress leaves in the switch.
func TestResolver(t *testing.T) {
	l := newLab(t, newScenario())
	r := walk0(t, l.sw["hv2"], 1, tcp("v2", 40000, flow.ProtoTCP))
	ps := r.Punts()
	if len(ps) != 1 || ps[0].Table != pipeline.SNAT.ID() || ps[0].Packet.IPv4Src != extIP {
		t.Fatalf("egress before resolution: %s\n%s", r, r.TraceText())
	}
	if !meteredBy(l.sw["hv2"], ps[0], pipeline.MeterSNAT.ID) {
		t.Fatal("the egress punt is not metered by snat_punt")
	}
	out := l.punt(t, "hv2", ps[0])
	if len(out.Flows) != 0 || len(out.PacketOuts) != 1 {
		t.Fatalf("handler on unresolved egress: %+v", out)
	}
	probe, _ := fakeswitch.Parse(out.PacketOuts[0].Data)
	if probe.ARPOp != 1 || probe.ARPTpa != flow.MustIPv4("172.24.4.1") || probe.ARPSpa != 0 || probe.EthSrc != ChassisMAC("hv2", "rA") ||
		out.PacketOuts[0].Actions[0] != (flow.Output{Port: uplink}) {
		t.Fatalf("probe %s out %v", probe, out.PacketOuts[0].Actions)
	}
	// An answer to another chassis's MAC teaches nothing.
	wrong := answer("hv3")
	var none app.Out
	l.h["hv2"].PacketIn(&app.PacketIn{InPort: uplink, Data: wire(t, wrong), State: l.st["hv2"]}, &none)
	if len(none.Flows)+len(none.PacketOuts) != 0 {
		t.Fatalf("learned from an answer to another chassis: %+v", none)
	}
	out = l.resolve(t, "hv2")
	if len(out.Flows) != 2 || len(out.PacketOuts) != 1 {
		t.Fatalf("handler on the answer: %d flows (one per egress of hv2), %d packet-outs (the held packet)", len(out.Flows), len(out.PacketOuts))
	}
	if po := out.PacketOuts[0]; po.Actions[0] != (flow.SetField{F: flow.EthDst, Value: uint64(nhMAC)}) || po.Actions[len(po.Actions)-1] != (flow.Output{Port: uplink}) {
		t.Fatalf("held packet released with %v", po.Actions)
	}
	e := only(t, walk(t, l.sw["hv2"], 1, tcp("v2", 40001, flow.ProtoTCP)))
	if e.Port != uplink || e.Packet.EthDst != nhMAC || e.Packet.IPv4Src != extIP {
		t.Fatalf("after resolution: %s out %d", e.Packet, e.Port)
	}
}

func walk0(t *testing.T, sw *fakeswitch.Switch, in uint32, p fakeswitch.Packet) *fakeswitch.Result {
	t.Helper()
	r, err := sw.Walk(in, p)
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	return r
}

func meteredBy(sw *fakeswitch.Switch, e fakeswitch.Emit, meter uint32) bool {
	for _, x := range sw.Entries() {
		if x.Flow.Cookie == e.Cookie && x.Flow.Table == e.Table && x.Flow.Meter == meter {
			return true
		}
	}
	return false
}

func hw(m flow.MAC) net.HardwareAddr {
	return net.HardwareAddr{byte(m >> 40), byte(m >> 32), byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

func ip4(v flow.IPv4) net.IP { return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4() }

// wire serializes a fake-switch packet (untagged ARP, TCP, UDP or ICMP).
func wire(t *testing.T, p fakeswitch.Packet) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: hw(p.EthSrc), DstMAC: hw(p.EthDst), EthernetType: layers.EthernetType(p.EthType)}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	switch p.EthType {
	case flow.EthTypeARP:
		err = gopacket.SerializeLayers(buf, opts, eth, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: p.ARPOp, SourceHwAddress: hw(p.ARPSha), SourceProtAddress: ip4(p.ARPSpa),
			DstHwAddress: hw(p.ARPTha), DstProtAddress: ip4(p.ARPTpa)})
	default:
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: p.TTL, Protocol: layers.IPProtocol(p.IPProto), SrcIP: ip4(p.IPv4Src), DstIP: ip4(p.IPv4Dst)}
		switch p.IPProto {
		case flow.ProtoTCP:
			tcp := &layers.TCP{SrcPort: layers.TCPPort(p.TPSrc), DstPort: layers.TCPPort(p.TPDst), SYN: true}
			_ = tcp.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, opts, eth, ip, tcp)
		case flow.ProtoUDP:
			udp := &layers.UDP{SrcPort: layers.UDPPort(p.TPSrc), DstPort: layers.UDPPort(p.TPDst)}
			_ = udp.SetNetworkLayerForChecksum(ip)
			err = gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("x"))
		default:
			err = gopacket.SerializeLayers(buf, opts, eth, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.ICMPType, p.ICMPCode)})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
