package lb

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The scenario: GRE network net-a (key 100, 10.0.0.0/24) on three
// chassis, a client on hv1 and hv2, one member on each chassis, a VIP
// 10.0.0.100:80 (its port is unbound, as a VIP's port is) on pool-1:
//
//	hv1: 1 client c1 10.0.0.11   2 member m1 10.0.0.21   10 gre->hv2  11 gre->hv3
//	hv2: 1 client c2 10.0.0.12   2 member m2 10.0.0.22   10 gre->hv1  11 gre->hv3
//	hv3:                         2 member m3 10.0.0.23   10 gre->hv1  11 gre->hv2
const (
	idC1, idC2, idVIPPort  = "c1000000-0000-4000-8000-000000000001", "c2000000-0000-4000-8000-000000000002", "ffff0000-0000-4000-8000-000000000100"
	seg                    = 100
	portClient, portMember = 1, 2
	tunA, tunB             = 10, 11
)

var (
	dpids   = map[string]uint64{"hv1": 1, "hv2": 2, "hv3": 3}
	macC1   = flow.MustMAC("fa:16:3e:0c:00:01")
	macVIP  = flow.MustMAC("fa:16:3e:ff:01:00")
	vipIP   = flow.MustIPv4("10.0.0.100")
	c1IP    = flow.MustIPv4("10.0.0.11")
	mIP     = []flow.IPv4{flow.MustIPv4("10.0.0.21"), flow.MustIPv4("10.0.0.22"), flow.MustIPv4("10.0.0.23")}
	mMAC    = []flow.MAC{flow.MustMAC("fa:16:3e:0d:00:01"), flow.MustMAC("fa:16:3e:0d:00:02"), flow.MustMAC("fa:16:3e:0d:00:03")}
	mHost   = []string{"hv1", "hv2", "hv3"}
	hv1Port = []uint32{portClient, portMember, tunA, tunB}
)

type scenario struct {
	recs map[model.Kind]map[string]model.Record
	sw   map[string]map[uint32]topology.Port
}

func (s *scenario) put(r model.Record) {
	if s.recs[r.Kind()] == nil {
		s.recs[r.Kind()] = map[string]model.Record{}
	}
	s.recs[r.Kind()][r.Key()] = r
}

func (s *scenario) port(id, mac, ip, chassis string, ofport uint32) {
	s.put(&model.Port{Base: model.Base{ID: id}, NetworkID: "net-a", MACAddress: mac, AdminStateUp: true,
		FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: ip}}})
	if chassis != "" {
		s.sw[chassis][ofport] = topology.Port{No: ofport, Name: names.VMPortName(id), Up: true}
	}
}

func memberID(i int) string { return fmt.Sprintf("e%07d-0000-4000-8000-000000000000", i) }

func (s *scenario) member(i int, status string, weight int) {
	s.put(&model.LBMember{Base: model.Base{ID: memberID(i)}, PoolID: "pool-1", Address: mIP[i].String(), ProtocolPort: 8080,
		Weight: weight, AdminStateUp: true, Status: status})
}

func newScenario(method string) *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{}}
	for i, c := range []string{"hv1", "hv2", "hv3"} {
		s.sw[c] = map[uint32]topology.Port{}
		s.put(&model.Chassis{Name: c, TunnelIP: fmt.Sprintf("172.16.0.%d", i+1), DPID: fmt.Sprintf("%016x", dpids[c])})
	}
	for _, c := range []string{"hv1", "hv2", "hv3"} {
		n := uint32(tunA)
		for _, peer := range []string{"hv1", "hv2", "hv3"} {
			if peer != c {
				s.sw[c][n] = topology.Port{No: n, Name: names.TunnelPortName(peer), Up: true}
				n++
			}
		}
	}
	s.put(&model.Network{Base: model.Base{ID: "net-a", ProjectID: "t"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: seg, MTU: 1458})
	s.put(&model.Subnet{Base: model.Base{ID: "sub-a"}, NetworkID: "net-a", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1"})
	s.port(idC1, macC1.String(), c1IP.String(), "hv1", portClient)
	s.port(idC2, "fa:16:3e:0c:00:02", "10.0.0.12", "hv2", portClient)
	for i := range mIP {
		s.port(fmt.Sprintf("d%07d-0000-4000-8000-000000000000", i), mMAC[i].String(), mIP[i].String(), mHost[i], portMember)
	}
	s.port(idVIPPort, macVIP.String(), vipIP.String(), "", 0)
	s.put(&model.LBPool{Base: model.Base{ID: "pool-1"}, SubnetID: "sub-a", Protocol: "HTTP", LBMethod: method, AdminStateUp: true, VIPID: "vip-1"})
	s.put(&model.LBVIP{Base: model.Base{ID: "vip-1", ProjectID: "t"}, SubnetID: "sub-a", Address: vipIP.String(), PortID: idVIPPort, ProtocolPort: 80,
		Protocol: "HTTP", PoolID: "pool-1", AdminStateUp: true})
	for i := range mIP {
		s.member(i, "ACTIVE", i+1)
	}
	return s
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

// lbState is the lb app's own state for a chassis, every flow checked
// against its table's contract and its groups.
func lbState(t *testing.T, in app.Input) *flow.State {
	t.Helper()
	d, err := New(Config{}).Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	st := flow.NewState()
	for _, m := range d.Meters {
		st.Meters[m.ID] = m
	}
	for _, g := range d.Groups {
		if pipeline.GroupOwner(g.ID) != pipeline.AppLB {
			t.Errorf("group 0x%x outside lb's range", g.ID)
		}
		st.Groups[g.ID] = g
	}
	for _, f := range d.Flows {
		if err := pipeline.Check(f); err != nil {
			t.Errorf("contract: %v", err)
		}
		if err := pipeline.CheckGroups(f, st.Groups); err != nil {
			t.Errorf("contract: %v", err)
		}
		if st.AddFlow(f) {
			t.Errorf("two flows share a key: %s", f.KeyText())
		}
	}
	return st
}

// fullState is the chassis's whole pipeline: miss flows, isolation, lb.
func fullState(t *testing.T, in app.Input) *flow.State {
	t.Helper()
	st := lbState(t, in)
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	d, err := isolation.New(isolation.Config{}).Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Flows {
		if st.AddFlow(f) {
			t.Errorf("lb and isolation share a key: %s", f.KeyText())
		}
	}
	for _, g := range d.Groups {
		st.Groups[g.ID] = g
	}
	for _, m := range d.Meters {
		st.Meters[m.ID] = m
	}
	return st
}

func TestGolden(t *testing.T) {
	for _, c := range []struct{ name, method, chassis string }{
		{"hv1_round_robin", "ROUND_ROBIN", "hv1"},
		{"hv1_least_connections", "LEAST_CONNECTIONS", "hv1"},
		{"hv3_member_only", "ROUND_ROBIN", "hv3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lbState(t, newScenario(c.method).input(c.chassis)).Text()
			checkGolden(t, c.name+".golden", got)
		})
	}
}

// checkGolden compares got with testdata/<name> (rewritten first with
// -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("flows differ from %s (rerun with -update and review the diff):\ngot:\n%s", golden, got)
	}
}

func tcpPkt(src, dst flow.MAC, nwSrc, nwDst flow.IPv4, sport, dport uint16) fakeswitch.Packet {
	return fakeswitch.Packet{EthSrc: src, EthDst: dst, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP,
		IPv4Src: nwSrc, IPv4Dst: nwDst, TTL: 64, TPSrc: sport, TPDst: dport}
}

// hv1 is hv1's switch with a real connection table; pick, when not nil,
// forces the select group's bucket.
func hv1(t *testing.T, s *scenario, ct *fakeswitch.ConnTable, pick *int) *fakeswitch.Switch {
	t.Helper()
	sw := fakeswitch.FromState(fullState(t, s.input("hv1")), hv1Port...)
	sw.Conntrack = ct
	if pick != nil {
		sw.SelectBucket = func(*flow.Group, fakeswitch.Packet) int { return *pick }
	}
	return sw
}

// one expects exactly one emitted copy and returns it.
func one(t *testing.T, r *fakeswitch.Result, err error) fakeswitch.Emit {
	t.Helper()
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, r.TraceText())
	}
	if len(r.Emits) != 1 {
		t.Fatalf("want one copy out, got %s\n%s", r, r.TraceText())
	}
	return r.Emits[0]
}

func usesGroup(r *fakeswitch.Result) bool {
	for _, l := range r.Trace {
		if strings.Contains(l, "(select)") {
			return true
		}
	}
	return false
}

// A new connection from c1 to the VIP goes through the select group;
// the chosen bucket DNATs it to its member and sets the member's MAC;
// the member's reply is un-NATed back to the VIP; later packets of the
// connection skip the group and keep their member even when the group
// would now choose another one.
func TestWalkNAT(t *testing.T) {
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d", b), func(t *testing.T) {
			s := newScenario("ROUND_ROBIN")
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := hv1(t, s, ct, &pick)
			syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
			r, err := sw.Walk(portClient, syn)
			e := one(t, r, err)
			if !usesGroup(r) {
				t.Fatalf("new connection did not go through the select group:\n%s", r.TraceText())
			}
			wantPort := map[int]uint32{0: portMember, 1: tunA, 2: tunB}[b]
			if e.Port != wantPort || e.Packet.IPv4Dst != mIP[b] || e.Packet.TPDst != 8080 || e.Packet.EthDst != mMAC[b] {
				t.Fatalf("SYN to the VIP: got port %d %s, want port %d to %s:8080 (dl_dst %s)\n%s", e.Port, e.Packet, wantPort, mIP[b], mMAC[b], r.TraceText())
			}
			if ct.Len() != 1 {
				t.Fatalf("want 1 committed connection, got %d", ct.Len())
			}
			// The member's reply: from its VM port on hv1, or from the
			// tunnel of its chassis.
			reply := tcpPkt(mMAC[b], macC1, mIP[b], c1IP, 8080, 40000)
			in := uint32(portMember)
			if b > 0 {
				reply.TunnelID = seg
				in = wantPort
			}
			r, err = sw.Walk(in, reply)
			e = one(t, r, err)
			if e.Port != portClient || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 || e.Packet.IPv4Dst != c1IP {
				t.Fatalf("reply: got port %d %s, want port %d from %s:80\n%s", e.Port, e.Packet, portClient, vipIP, r.TraceText())
			}
			// The group now prefers another member: the established
			// connection must neither use the group nor move.
			pick = (b + 1) % len(mIP)
			ack := syn
			r, err = sw.Walk(portClient, ack)
			e = one(t, r, err)
			if usesGroup(r) {
				t.Fatalf("established packet went through the select group:\n%s", r.TraceText())
			}
			if e.Port != wantPort || e.Packet.IPv4Dst != mIP[b] || e.Packet.EthDst != mMAC[b] {
				t.Fatalf("established packet moved: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
			}
			// A second connection takes the group's new choice.
			r, err = sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, 40001, 80))
			e = one(t, r, err)
			if e.Packet.IPv4Dst != mIP[pick] {
				t.Fatalf("second connection: got %s, want member %s", e.Packet, mIP[pick])
			}
		})
	}
}

// Without a forced choice, the fake switch's own hash spreads new
// connections over all three members.
func TestWalkSpread(t *testing.T) {
	sw := hv1(t, newScenario("ROUND_ROBIN"), fakeswitch.NewConnTable(), nil)
	seen := map[flow.IPv4]int{}
	for sport := uint16(30000); sport < 30300; sport++ {
		r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, sport, 80))
		seen[one(t, r, err).Packet.IPv4Dst]++
	}
	for _, ip := range mIP {
		if seen[ip] == 0 {
			t.Errorf("member %s got no connection of 300: %v", ip, seen)
		}
	}
}

// A member whose status is INACTIVE (or admin down) leaves the group; a
// connection already established to it ends (its packets no longer
// reach it), the others keep theirs.
func TestWalkMemberDown(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	ct := fakeswitch.NewConnTable()
	pick := 0
	sw := hv1(t, s, ct, &pick)
	toM := func(sport uint16, want int) {
		t.Helper()
		r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, sport, 80))
		if e := one(t, r, err); e.Packet.IPv4Dst != mIP[want] {
			t.Fatalf("sport %d: got %s, want member %s", sport, e.Packet, mIP[want])
		}
	}
	toM(40000, 0)
	pick = 1
	toM(40001, 1)
	s.member(0, "INACTIVE", 1)
	st := lbState(t, s.input("hv1"))
	for _, g := range st.Groups {
		if len(groupMembers(g)) != 2 {
			t.Fatalf("group with m1 INACTIVE: want 2 members, got %s", g)
		}
		for _, b := range g.Buckets {
			if strings.Contains(flow.ActionsString(b.Actions), mIP[0].String()) {
				t.Fatalf("INACTIVE member still in %s", g)
			}
		}
	}
	sw = hv1(t, s, ct, &pick)
	r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Dropped() {
		t.Fatalf("connection to the INACTIVE member: want drop, got %s\n%s", r, r.TraceText())
	}
	toM(40001, 1) // the other member's connection survives
	pick = 0      // bucket 0 is now m2
	toM(40002, 1)
}

// With every member down a new connection to the VIP is punted, through
// the lb_reject meter, to the handler, which answers with a RST from
// the VIP out of the client's port; no group.
func TestWalkAllDown(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	for i := range mIP {
		s.member(i, "INACTIVE", 1)
	}
	st := lbState(t, s.input("hv1"))
	if len(st.Groups) != 0 {
		t.Fatalf("all members down: want no group, got %d", len(st.Groups))
	}
	sw := hv1(t, s, fakeswitch.NewConnTable(), nil)
	syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
	r, err := sw.Walk(portClient, syn)
	if err != nil {
		t.Fatal(err)
	}
	punts := r.Punts()
	if len(punts) != 1 || len(r.Ports()) != 0 {
		t.Fatalf("all members down: want one punt, got %s\n%s", r, r.TraceText())
	}
	// The punt goes through the VIP's project's meter (pipeline.MeterLBReject,
	// one per project: another tenant's flood cannot use it up).
	if _, ok := st.Meters[pipeline.MeterLBReject.ID("t")]; !ok || len(st.Meters) != 1 {
		t.Fatalf("the punt's meter (project t's, %#x) is not lb's only desired meter: %v", pipeline.MeterLBReject.ID("t"), st.Meters)
	}
	for _, f := range st.Flows {
		if f.Meter != 0 && f.Meter != pipeline.MeterLBReject.ID("t") {
			t.Fatalf("punt flow with meter %#x, want project t's %#x: %s", f.Meter, pipeline.MeterLBReject.ID("t"), f)
		}
	}
	if app := pipeline.CookieApp(punts[0].Cookie); app != pipeline.AppLB {
		t.Fatalf("punt cookie of app %s, want lb", app)
	}
	var out app.Out
	New(Config{}).NewSwitchHandler(1).PacketIn(&app.PacketIn{InPort: portClient, Data: synFrame(t, 1000), BufferID: app.NoBuffer}, &out)
	if len(out.PacketOuts) != 1 || flow.ActionsString(out.PacketOuts[0].Actions) != "output:1" {
		t.Fatalf("handler: want one RST out of port 1, got %+v", out.PacketOuts)
	}
	// An established connection to the VIP (not new) is dropped.
	sw.Conntrack = estTracker{}
	if r, err := sw.Walk(portClient, syn); err != nil || !r.Dropped() {
		t.Fatalf("established to a VIP without members: want drop, got %v %v", r, err)
	}
}

// Weights: ROUND_ROBIN gives every member weight 1, other methods the
// member's weight; BucketWeights then scales them (x85 and x42 here) and
// adds a weight-1 copy of the first member's bucket, so that OVS's
// dp_hash table spreads them evenly.
func TestWeights(t *testing.T) {
	for method, want := range map[string][]uint16{"ROUND_ROBIN": {85, 85, 85, 1}, "LEAST_CONNECTIONS": {42, 84, 126, 1}} {
		st := lbState(t, newScenario(method).input("hv1"))
		if len(st.Groups) != 1 {
			t.Fatalf("%s: want one group, got %d", method, len(st.Groups))
		}
		for _, g := range st.Groups {
			if g.Type != flow.GroupSelect || len(g.Buckets) != 4 {
				t.Fatalf("%s: %s", method, g)
			}
			for i, b := range g.Buckets {
				if b.Weight != want[i] {
					t.Errorf("%s: bucket %d weight %d, want %d", method, i, b.Weight, want[i])
				}
			}
			if fmt.Sprint(g.Buckets[3].Actions) != fmt.Sprint(g.Buckets[0].Actions) {
				t.Errorf("%s: the pad bucket %v is not a copy of the first %v", method, g.Buckets[3].Actions, g.Buckets[0].Actions)
			}
		}
	}
	for _, c := range []struct {
		in   []uint16
		want string
	}{{[]uint16{1}, "[1] false"}, {[]uint16{1, 1}, "[127 127] true"}, {[]uint16{200, 56}, "[200 56] false"}, {[]uint16{0, 5}, "[0 255] true"}} {
		out, pad := BucketWeights(c.in)
		if got := fmt.Sprint(out, pad); got != c.want {
			t.Errorf("BucketWeights(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

// A chassis with no port of the VIP's network gets nothing.
func TestNoPortNoFlows(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	delete(s.sw["hv3"], portMember)
	st := lbState(t, s.input("hv3"))
	if len(st.Flows) != 0 || len(st.Groups) != 0 {
		t.Fatalf("hv3 without ports of net-a: want nothing, got:\n%s", st.Text())
	}
}

// ARP for the VIP is answered on the client's chassis with the VIP
// port's MAC: by isolation's responder, which answers every port of the
// network, the unbound VIP port too (lb adds nothing for it).
func TestWalkARPForVIP(t *testing.T) {
	sw := hv1(t, newScenario("ROUND_ROBIN"), fakeswitch.NewConnTable(), nil)
	req := fakeswitch.Packet{EthSrc: macC1, EthDst: flow.MustMAC("ff:ff:ff:ff:ff:ff"), EthType: flow.EthTypeARP, ARPOp: 1,
		ARPSha: macC1, ARPSpa: c1IP, ARPTpa: vipIP}
	r, err := sw.Walk(portClient, req)
	e := one(t, r, err)
	if e.Port != portClient || e.Packet.ARPOp != 2 || e.Packet.ARPSha != macVIP || e.Packet.ARPSpa != vipIP || e.Packet.EthDst != macC1 {
		t.Fatalf("ARP for the VIP: got port %d %s\n%s", e.Port, e.Packet, r.TraceText())
	}
}

// groupMembers is the set of member addresses a select group's buckets
// DNAT to (BucketWeights may add a pad bucket, a copy of another).
func groupMembers(g *flow.Group) map[string]bool {
	out := map[string]bool{}
	for _, b := range g.Buckets {
		for _, a := range b.Actions {
			if c, ok := a.(flow.CT); ok && c.NAT != nil {
				out[c.NAT.IPMin.String()] = true
			}
		}
	}
	return out
}

// A member whose hypervisor's switch is not connected to this replica
// is left out of the group (its hypervisor is taken for dead), except
// while the topology is Settling (the replica just started and the
// switches are still coming back): a controller restart must not shrink
// the groups and drop the remote members' connections as the switches
// reconnect one by one.
func TestMemberOfDisconnectedChassis(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	for c, ports := range s.sw { // the agents' published port lists: bindings do not need the live switch
		ch := *s.recs[model.KindChassis][c].(*model.Chassis)
		ch.Ports = map[string]uint32{}
		for n, p := range ports {
			ch.Ports[p.Name] = n
		}
		s.put(&ch)
	}
	in := s.input("hv1")
	delete(in.Topology.Switches, dpids["hv3"])
	members := func(in app.Input) int {
		st := lbState(t, in)
		if len(st.Groups) != 1 {
			t.Fatalf("want one group, got %d", len(st.Groups))
		}
		for _, g := range st.Groups {
			return len(groupMembers(g))
		}
		return 0
	}
	if n := members(in); n != 2 {
		t.Fatalf("hv3's switch gone: %d members in the group, want 2", n)
	}
	in.Topology.Settling = true
	if n := members(in); n != 3 {
		t.Fatalf("settling: %d members in the group, want all 3", n)
	}
}

// A client's ping to the VIP is answered in place by lb (E1), from the
// VIP port's MAC, in NAT and DSR mode and with every member down; a
// routed client's, from the router's MAC it sent to.
func TestWalkVIPEcho(t *testing.T) {
	ping := func(src flow.MAC, dst flow.MAC, ip flow.IPv4) fakeswitch.Packet {
		return fakeswitch.Packet{EthSrc: src, EthDst: dst, EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP,
			IPv4Src: ip, IPv4Dst: vipIP, TTL: 64, ICMPType: 8}
	}
	for _, c := range []struct {
		name string
		s    func() *scenario
	}{
		{"nat", func() *scenario { return newScenario("ROUND_ROBIN") }},
		{"dsr", func() *scenario { return makeDSR(newScenario("ROUND_ROBIN")) }},
		{"all_down", func() *scenario {
			s := newScenario("ROUND_ROBIN")
			for i := range mIP {
				s.member(i, "INACTIVE", 1)
			}
			return s
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sw := hv1(t, c.s(), fakeswitch.NewConnTable(), nil)
			r, err := sw.Walk(portClient, ping(macC1, macVIP, c1IP))
			e := one(t, r, err)
			p := e.Packet
			if e.Port != portClient || p.IPv4Src != vipIP || p.IPv4Dst != c1IP || p.ICMPType != 0 || p.EthSrc != macVIP || p.EthDst != macC1 {
				t.Fatalf("c1's ping to the VIP: out %d %s, want the echo reply from %s (%s) back to c1\n%s", e.Port, p, vipIP, macVIP, r.TraceText())
			}
		})
	}
	t.Run("routed", func(t *testing.T) {
		sw := routedSwitch(t, newRoutedScenario("ROUND_ROBIN"), fakeswitch.NewConnTable(), nil)
		r, err := sw.Walk(portCB1, ping(macCB1, rB, cb1IP))
		e := one(t, r, err)
		p := e.Packet
		if e.Port != portCB1 || p.IPv4Src != vipIP || p.IPv4Dst != cb1IP || p.ICMPType != 0 || p.EthSrc != rB || p.EthDst != macCB1 {
			t.Fatalf("cb1's ping to the VIP: out %d %s, want the echo reply from %s (%s)\n%s", e.Port, p, vipIP, rB, r.TraceText())
		}
	})
}

// Two tenants' VIPs on one network, every member of both down: each
// VIP's RST punt goes through its own project's meter, so a non-admin
// tenant flooding SYNs at its dead VIP (its punts dropped by its meter
// once over the rate) leaves the other tenant's RSTs their whole rate.
// Walks: the attacker's SYN and the victim's SYN are punted under
// different meters.
func TestRejectMeterPerProject(t *testing.T) {
	s := newScenario("ROUND_ROBIN")
	for i := range mIP {
		s.member(i, "INACTIVE", 1)
	}
	vip2 := flow.MustIPv4("10.0.0.101")
	s.port("a0000002-0000-4000-8000-000000000000", "fa:16:3e:ff:01:02", vip2.String(), "", 0)
	s.put(&model.LBPool{Base: model.Base{ID: "pool-2", ProjectID: "attacker"}, SubnetID: "sub-a", Protocol: "HTTP", LBMethod: "ROUND_ROBIN", AdminStateUp: true, VIPID: "vip-2"})
	s.put(&model.LBVIP{Base: model.Base{ID: "vip-2", ProjectID: "attacker"}, SubnetID: "sub-a", Address: vip2.String(),
		PortID: "a0000002-0000-4000-8000-000000000000", ProtocolPort: 80, Protocol: "HTTP", PoolID: "pool-2", AdminStateUp: true})
	st := lbState(t, s.input("hv1"))
	victim, attacker := pipeline.MeterLBReject.ID("t"), pipeline.MeterLBReject.ID("attacker")
	if victim == attacker {
		t.Fatalf("the two projects' meters collide (%#x)", victim)
	}
	for _, id := range []uint32{victim, attacker} {
		if _, ok := st.Meters[id]; !ok {
			t.Fatalf("meter %#x missing from lb's desired state: %v", id, st.Meters)
		}
	}
	sw := hv1(t, s, fakeswitch.NewConnTable(), nil)
	for _, c := range []struct {
		dst   flow.IPv4
		meter uint32
	}{{vipIP, victim}, {vip2, attacker}} {
		r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, c.dst, 40000, 80))
		if err != nil {
			t.Fatal(err)
		}
		punts := r.Punts()
		if len(punts) != 1 {
			t.Fatalf("SYN to %s with every member down: %s\n%s", c.dst, r, r.TraceText())
		}
		// the punting flow: the emit's table and cookie, with a meter
		var used []uint32
		for _, f := range st.Flows {
			if f.Table == punts[0].Table && f.Cookie == punts[0].Cookie && f.Meter != 0 {
				used = append(used, f.Meter)
			}
		}
		if len(used) == 0 || slices.ContainsFunc(used, func(m uint32) bool { return m != c.meter }) {
			t.Errorf("SYN to %s punted through meters %#x, want only its VIP's project's %#x", c.dst, used, c.meter)
		}
	}
}
