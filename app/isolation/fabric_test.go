package isolation

import (
	"fmt"
	"github.com/nimbus-sdn/nimbus/flow"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// fabric3 is a triangle of plain switches s1..s3 (dpids 0x11..0x13):
// port 1 is a host port (sN-eth1), port 2 goes to the next switch, port 3
// to the previous one. VLAN network v (101) has h1 on s1 and h3 on s3;
// network w (102, another tenant, same addresses) has h2 on s2.
type fabric3 struct {
	recs map[model.Kind]map[string]model.Record
	down map[topology.End]bool
}

func newFabric3(withNets bool) *fabric3 {
	f := &fabric3{recs: map[model.Kind]map[string]model.Record{}, down: map[topology.End]bool{}}
	put := func(r model.Record) {
		if f.recs[r.Kind()] == nil {
			f.recs[r.Kind()] = map[string]model.Record{}
		}
		f.recs[r.Kind()][r.Key()] = r
	}
	for i := uint64(1); i <= 3; i++ {
		next := i%3 + 1
		put(&model.Link{SrcDPID: 0x10 + i, SrcPort: 2, DstDPID: 0x10 + next, DstPort: 3})
		put(&model.Link{SrcDPID: 0x10 + next, SrcPort: 3, DstDPID: 0x10 + i, DstPort: 2})
	}
	if !withNets {
		return f
	}
	for i, n := range []string{"v", "w"} {
		put(&model.Network{Base: model.Base{ID: "net-" + n, ProjectID: "tenant-" + n}, NetworkType: model.NetVLAN,
			PhysicalNetwork: "physnet1", SegmentationID: 101 + i, MTU: 1500, PortSecurity: true})
		put(&model.Subnet{Base: model.Base{ID: "sub-" + n}, NetworkID: "net-" + n, IPVersion: 4, CIDR: "10.0.0.0/24", EnableDHCP: true})
	}
	host := func(n int, net string) {
		put(&model.Port{Base: model.Base{ID: fmt.Sprintf("h%d", n)}, NetworkID: "net-" + net, PortSecurity: true,
			MACAddress: fmt.Sprintf("fa:16:3e:00:00:0%d", n), Profile: map[string]any{"port_name": fmt.Sprintf("s%d-eth1", n)},
			FixedIPs: []model.FixedIP{{SubnetID: "sub-" + net, IPAddress: fmt.Sprintf("10.0.0.%d", 10+n)}}})
	}
	host(1, "v")
	host(2, "w")
	host(3, "v")
	return f
}

func (f *fabric3) input(sw int) app.Input {
	topo := &topology.Snapshot{Switches: map[uint64]*topology.Switch{}}
	for i := uint64(1); i <= 3; i++ {
		pm := map[uint32]topology.Port{}
		for p := uint32(1); p <= 3; p++ {
			pm[p] = topology.Port{No: p, Name: fmt.Sprintf("s%d-eth%d", i, p), Up: !f.down[topology.End{DPID: 0x10 + i, Port: p}]}
		}
		topo.Switches[0x10+i] = &topology.Switch{DPID: 0x10 + i, Ports: pm}
	}
	return app.Input{Model: model.NewSnapshot(1, f.recs), Topology: topo, Switch: topo.Switches[0x10+uint64(sw)]}
}

func fabricFlows(t *testing.T, in app.Input) (string, app.Desired) {
	t.Helper()
	d, err := New(Config{}).Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	groups := map[uint32]*flow.Group{}
	for _, g := range d.Groups {
		groups[g.ID] = g
	}
	for _, f := range d.Flows {
		if err := pipeline.Check(f); err != nil {
			t.Errorf("contract: %v", err)
		}
		if err := pipeline.CheckGroups(f, groups); err != nil {
			t.Errorf("contract (groups): %v", err)
		}
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String(), d
}

// unicastTo returns the L2 forwarding flow for a MAC.
func unicastTo(flows, mac string) string {
	for _, l := range strings.Split(flows, "\n") {
		if strings.Contains(l, "table=9") && strings.Contains(l, "dl_dst="+mac) {
			return l
		}
	}
	return ""
}

func TestFabricShortestPathAndReroute(t *testing.T) {
	f := newFabric3(true)
	flows, d := fabricFlows(t, f.input(1))
	// s1 reaches h3 (on s3) over its direct link, port 3, tagged 101.
	if u := unicastTo(flows, "fa:16:3e:00:00:03"); !strings.Contains(u, "set_field:4197->vlan_vid,output:3") {
		t.Errorf("s1 -> h3: %q\n%s", u, flows)
	}
	// h2 is another tenant's: reached tagged 102, never 101.
	if u := unicastTo(flows, "fa:16:3e:00:00:02"); !strings.Contains(u, "set_field:4198->vlan_vid,output:2") {
		t.Errorf("s1 -> h2: %q", u)
	}
	// LLDP from the tenant's port is dropped above the discovery punt.
	if !strings.Contains(flows, "table=0, priority=30000,in_port=1,dl_type=0x88cc actions=drop") {
		t.Errorf("no guard against LLDP from h1's port:\n%s", flows)
	}
	// Tagged frames from both links join the network; untagged ones drop.
	for _, want := range []string{"in_port=2,dl_vlan=101", "in_port=3,dl_vlan=101", "in_port=2,dl_vlan=102"} {
		if !strings.Contains(flows, want) {
			t.Errorf("no classifier flow %q", want)
		}
	}
	// Flood group of v on s1: h1 plus the tree link toward s3 only.
	var found bool
	for _, g := range d.Groups {
		if g.ID == FloodGroupID(1<<23|101, false) {
			found = true
			if len(g.Buckets) != 2 {
				t.Errorf("flood group of v on s1 has %d buckets, want 2 (h1, tree link to s3)", len(g.Buckets))
			}
		}
	}
	if !found {
		t.Error("no flood group for v on s1")
	}

	// Cut s1-s3: s1 now reaches h3 through s2.
	f.down[topology.End{DPID: 0x11, Port: 3}] = true
	f.down[topology.End{DPID: 0x13, Port: 2}] = true
	flows, _ = fabricFlows(t, f.input(1))
	if u := unicastTo(flows, "fa:16:3e:00:00:03"); !strings.Contains(u, "set_field:4197->vlan_vid,output:2") {
		t.Errorf("after the cut, s1 -> h3: %q", u)
	}
	if strings.Contains(flows, "in_port=3,dl_vlan") {
		t.Error("the cut link still classifies frames")
	}
	// s2 is now on the tree between s1 and s3: it floods v between them.
	flows2, d2 := fabricFlows(t, f.input(2))
	if u := unicastTo(flows2, "fa:16:3e:00:00:03"); !strings.Contains(u, "output:2") {
		t.Errorf("transit s2 -> h3: %q", u)
	}
	for _, g := range d2.Groups {
		if g.ID == FloodGroupID(1<<23|101, false) && len(g.Buckets) != 2 {
			t.Errorf("s2's flood group of v has %d buckets, want 2 (both tree links)", len(g.Buckets))
		}
	}
}

func TestFabricWithoutNetworksLeavesLearningAlone(t *testing.T) {
	flows, d := fabricFlows(t, newFabric3(false).input(1))
	if flows != "" || len(d.Groups) != 0 {
		t.Fatalf("a fabric without tenant networks got flows:\n%s", flows)
	}
}

func TestFabricLocalARPAndDHCP(t *testing.T) {
	flows, _ := fabricFlows(t, newFabric3(true).input(3))
	// h3's switch answers ARP for h1 and punts DHCP; it does not answer
	// for the other tenant's h2.
	if !strings.Contains(flows, "arp_tpa=10.0.0.11") || strings.Contains(flows, "arp_tpa=10.0.0.12") {
		t.Errorf("ARP responder on s3:\n%s", flows)
	}
	if !strings.Contains(flows, "tp_dst=67") && !strings.Contains(flows, "udp_dst=67") {
		t.Errorf("no DHCP punt on s3")
	}
}
