package binding

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

type world struct {
	recs map[model.Kind]map[string]model.Record
	topo *topology.Snapshot
}

func newWorld() *world {
	return &world{recs: map[model.Kind]map[string]model.Record{}, topo: &topology.Snapshot{Switches: map[uint64]*topology.Switch{}}}
}

func (w *world) put(r model.Record) {
	if w.recs[r.Kind()] == nil {
		w.recs[r.Kind()] = map[string]model.Record{}
	}
	w.recs[r.Kind()][r.Key()] = r
}

func (w *world) port(dpid uint64, no uint32, name string) {
	sw := w.topo.Switches[dpid]
	if sw == nil {
		sw = &topology.Switch{DPID: dpid, Ports: map[uint32]topology.Port{}}
		w.topo.Switches[dpid] = sw
	}
	sw.Ports[no] = topology.Port{No: no, Name: name, Up: true}
}

func (w *world) table(o Options) *Table { return ComputeWith(model.NewSnapshot(1, w.recs), w.topo, o) }

const (
	pA = "a0000000-0000-4000-8000-00000000000a" // tap on hv1
	pB = "b0000000-0000-4000-8000-00000000000b" // profile port_name on hv2
	pC = "c0000000-0000-4000-8000-00000000000c" // iface-id on hv2
	pD = "d0000000-0000-4000-8000-00000000000d" // no interface, host_id hv2
	pE = "e0000000-0000-4000-8000-00000000000e" // names an uplink: never bound
	pV = "f0000000-0000-4000-8000-00000000000f" // VLAN network, tap on hv1
)

// overlay: two chassis, a GRE and a VLAN network.
func overlay() *world {
	w := newWorld()
	w.put(&model.Chassis{Name: "hv1", DPID: "0000000000000001", Mappings: map[string]string{"physnet1": "br-phy"}})
	w.put(&model.Chassis{Name: "hv2", DPID: "0000000000000002", Interfaces: map[string]string{"veth-c": pC}})
	w.put(&model.Network{Base: model.Base{ID: "net-g"}, NetworkType: model.NetGRE, SegmentationID: 100})
	w.put(&model.Network{Base: model.Base{ID: "net-v"}, NetworkType: model.NetVLAN, SegmentationID: 200, PhysicalNetwork: "physnet1"})
	w.put(&model.Network{Base: model.Base{ID: "net-flat"}, NetworkType: "flat"})
	w.put(&model.Subnet{Base: model.Base{ID: "sub-g"}, NetworkID: "net-g", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1"})
	for _, p := range []*model.Port{
		{Base: model.Base{ID: pA}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:0a"},
		{Base: model.Base{ID: pB}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:0b", Profile: map[string]any{"port_name": "vm-b"}},
		{Base: model.Base{ID: pC}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:0c"},
		{Base: model.Base{ID: pD}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:0d", HostID: "hv2"},
		{Base: model.Base{ID: pE}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:0e", Profile: map[string]any{"port_name": names.PhysPortName("physnet1")}},
		{Base: model.Base{ID: pV}, NetworkID: "net-v", MACAddress: "fa:16:3e:00:00:0f"},
	} {
		w.put(p)
	}
	w.port(1, 1, names.VMPortName(pA))
	w.port(1, 3, names.VMPortName(pV))
	w.port(1, 10, names.TunnelPortName("hv2"))
	w.port(1, 20, names.PhysPortName("physnet1"))
	w.port(1, flow.PortLocal, "br-int")
	w.port(2, 1, "vm-b")
	w.port(2, 2, "veth-c")
	w.port(2, 10, names.TunnelPortName("hv1"))
	return w
}

func TestOverlayBindings(t *testing.T) {
	w := overlay()
	tb := w.table(Options{})
	if len(tb.NetworkIDs) != 2 || tb.Networks["net-g"].Key != 100 || tb.Networks["net-v"].Key != 1<<23|200 {
		t.Fatalf("networks %v", tb.NetworkIDs)
	}
	if g := tb.Networks["net-g"]; !g.IsGateway(flow.MustIPv4("10.0.0.1")) || g.FloodGroup(false)+1 != g.FloodGroup(true) {
		t.Fatalf("net-g: gateways %v, groups %x %x", g.Gateways, g.FloodGroup(false), g.FloodGroup(true))
	}
	for _, sw := range []uint64{1, 2} {
		v := tb.Switch(w.topo.Switches[sw])
		for id, want := range map[string]Port{
			pA: {Chassis: "hv1", DPID: 1, OFPort: 1, How: ClaimTapName},
			pB: {Chassis: "hv2", DPID: 2, OFPort: 1, How: ClaimProfile},
			pC: {Chassis: "hv2", DPID: 2, OFPort: 2, How: ClaimIfaceID},
			pD: {Chassis: "hv2", How: ClaimHostID},
			pE: {},
			pV: {Chassis: "hv1", DPID: 1, OFPort: 3, How: ClaimTapName},
		} {
			got := v.Ports[id]
			if got == nil || got.Chassis != want.Chassis || got.DPID != want.DPID || got.OFPort != want.OFPort || (want.Chassis != "" && got.How != want.How) {
				t.Errorf("switch %d: port %s bound %+v, want %+v", sw, id[:1], got, want)
			}
		}
	}
	v1 := tb.Switch(w.topo.Switches[1])
	if v1.Chassis.Name != "hv1" || v1.Tunnels["hv2"] != 10 || len(v1.TunnelPorts) != 1 || v1.Uplink(tb.Networks["net-v"]) != 20 || v1.Uplink(tb.Networks["net-g"]) != 0 {
		t.Fatalf("hv1 view: tunnels %v uplinks %v", v1.Tunnels, v1.Uplinks)
	}
	if !v1.Local(v1.Ports[pA]) || v1.Remote(v1.Ports[pA]) || !v1.Remote(v1.Ports[pD]) || v1.Local(v1.Ports[pD]) {
		t.Fatal("local/remote")
	}
	v2 := tb.Switch(w.topo.Switches[2])
	if v2.Local(v2.Ports[pD]) {
		t.Fatal("a port known only by host_id is never local")
	}
	if n := len(v1.ByNetwork["net-g"]); n != 5 {
		t.Fatalf("net-g has %d ports with a MAC, want 5", n)
	}
}

// One interface, one port: the iface-id beats the tap name; the loser is
// a failure, reported once.
func TestSettlement(t *testing.T) {
	w := overlay()
	tb := w.table(Options{IfaceIDs: ifaces{names.VMPortName(pA): pB}})
	v := tb.Switch(w.topo.Switches[1])
	if got := v.Ports[pB]; got.DPID != 1 || got.OFPort != 1 || got.How != ClaimIfaceID {
		t.Fatalf("iface-id claim lost: %+v", got)
	}
	if got := v.Ports[pA]; got.Chassis != "" {
		t.Fatalf("tap claim kept: %+v", got)
	}
	if len(tb.Failures) != 1 || tb.Failures[0].Port != pA || tb.Failures[0].BoundPort != pB {
		t.Fatalf("failures %+v", tb.Failures)
	}
}

type ifaces map[string]string

func (m ifaces) IfaceID(_ *model.Chassis, p topology.Port) string { return m[p.Name] }

// Other chassis bind from their records; a chassis whose live port list
// differs from its record sees its own live ports (and only it).
func TestRecordsAndLivePorts(t *testing.T) {
	w := overlay()
	hv1 := *w.recs[model.KindChassis]["hv1"].(*model.Chassis)
	hv1.Ports = map[string]uint32{names.TunnelPortName("hv2"): 10} // published before pA's tap appeared
	w.put(&hv1)
	tb := w.table(Options{})
	if tb.own[1] == nil || tb.own[2] != nil {
		t.Fatalf("own resolutions: %v", tb.own)
	}
	if got := tb.Switch(w.topo.Switches[1]).Ports[pA]; got.OFPort != 1 {
		t.Fatalf("hv1 does not see its live tap: %+v", got)
	}
	if got := tb.Switch(w.topo.Switches[2]).Ports[pA]; got.Chassis != "" {
		t.Fatalf("hv2 binds pA from hv1's live ports, not its record: %+v", got)
	}
	// Whether hv1 is connected does not change hv2's view.
	delete(w.topo.Switches, 1)
	if got := w.table(Options{}).Switch(w.topo.Switches[2]).Ports[pA]; got.Chassis != "" {
		t.Fatalf("hv2's view changed with hv1 gone: %+v", got)
	}
}

// Fabric mode: switches no chassis owns; VLAN networks only; never a
// link port or LOCAL.
func TestFabricBindings(t *testing.T) {
	w := newWorld()
	w.put(&model.Network{Base: model.Base{ID: "net-v"}, NetworkType: model.NetVLAN, SegmentationID: 200, PhysicalNetwork: "physnet1"})
	w.put(&model.Network{Base: model.Base{ID: "net-g"}, NetworkType: model.NetGRE, SegmentationID: 100})
	w.put(&model.Port{Base: model.Base{ID: "h1"}, NetworkID: "net-v", MACAddress: "fa:16:3e:00:00:01", Profile: map[string]any{"port_name": "s1-eth1"}})
	w.put(&model.Port{Base: model.Base{ID: "h2"}, NetworkID: "net-v", MACAddress: "fa:16:3e:00:00:02", Profile: map[string]any{"port_name": "s2-eth1"}})
	w.put(&model.Port{Base: model.Base{ID: "hl"}, NetworkID: "net-v", MACAddress: "fa:16:3e:00:00:03", Profile: map[string]any{"port_name": "s1-eth2"}})
	w.put(&model.Port{Base: model.Base{ID: "hg"}, NetworkID: "net-g", MACAddress: "fa:16:3e:00:00:04", Profile: map[string]any{"port_name": "s2-eth3"}})
	w.put(&model.Link{SrcDPID: 1, SrcPort: 2, DstDPID: 2, DstPort: 2})
	w.put(&model.Link{SrcDPID: 2, SrcPort: 2, DstDPID: 1, DstPort: 2})
	w.port(1, 1, "s1-eth1")
	w.port(1, 2, "s1-eth2")
	w.port(2, 1, "s2-eth1")
	w.port(2, 2, "s2-eth2")
	w.port(2, 3, "s2-eth3")
	tb := w.table(Options{})
	if tb.Fabric == nil || len(tb.FabricSwitches) != 2 {
		t.Fatalf("fabric %v", tb.FabricSwitches)
	}
	v := tb.Switch(w.topo.Switches[1])
	if v.Chassis != nil || len(v.LinkPorts) != 1 || v.LinkPorts[0] != 2 {
		t.Fatalf("s1 view: chassis %v, link ports %v", v.Chassis, v.LinkPorts)
	}
	if p := v.Ports["h1"]; p == nil || !v.Local(p) || p.OFPort != 1 {
		t.Fatalf("h1: %+v", p)
	}
	if p := v.Ports["h2"]; p == nil || !v.Remote(p) || p.DPID != 2 {
		t.Fatalf("h2: %+v", p)
	}
	if v.Ports["hl"] != nil || v.Ports["hg"] != nil {
		t.Fatalf("bound a link port (%v) or a GRE network's port (%v)", v.Ports["hl"], v.Ports["hg"])
	}
	if got := tb.ClaimedPorts(w.topo.Switches[2]); !got[1] || !got[3] || got[2] {
		t.Fatalf("claimed ports of s2: %v", got)
	}
}

// Only a router's own interface may hold the gateway address.
func TestRouterInterfaces(t *testing.T) {
	w := overlay()
	w.put(&model.Port{Base: model.Base{ID: "rif"}, NetworkID: "net-g", DeviceID: "r1", DeviceOwner: "network:router_interface_distributed"})
	w.put(&model.Port{Base: model.Base{ID: "fake"}, NetworkID: "net-g", DeviceID: "r1", DeviceOwner: "network:router_interface"})
	w.put(&model.Router{Base: model.Base{ID: "r1"}, Interfaces: []string{"rif"}})
	n := w.table(Options{}).Networks["net-g"]
	if !n.MayHoldGateway(&model.Port{Base: model.Base{ID: "rif"}}) || n.MayHoldGateway(&model.Port{Base: model.Base{ID: "fake"}}) {
		t.Fatal("gateway holders")
	}
}

func TestNilModel(t *testing.T) {
	tb := Compute(nil, nil)
	if v := tb.Switch(&topology.Switch{DPID: 1}); v.Chassis != nil || v.Ports != nil {
		t.Fatalf("view of an empty table: %+v", v)
	}
}

// Steady state: a chassis's record (as the node agent publishes it: every
// interface, the bridge's own at 65534) matches its live ports, so no
// switch needs its own resolution; a record lagging its live ports does.
func TestRecordMatchingLivePortsSharesTheResolution(t *testing.T) {
	w := overlay()
	for _, name := range []string{"hv1", "hv2"} {
		c := *w.recs[model.KindChassis][name].(*model.Chassis)
		dp, _ := c.DatapathID()
		c.Ports = map[string]uint32{}
		for no, p := range w.topo.Switches[dp].Ports {
			if no == flow.PortLocal {
				no = 65534
			}
			c.Ports[p.Name] = no
		}
		c.Ports["br-int"] = 65534
		w.put(&c)
	}
	if tb := w.table(Options{}); len(tb.own) != 0 {
		t.Fatalf("own resolutions in steady state: %v", tb.own)
	}
	w.port(2, 5, "late-tap")
	if tb := w.table(Options{}); tb.own[2] == nil || len(tb.own) != 1 {
		t.Fatalf("hv2's new port: own resolutions %v", tb.own)
	}
}
