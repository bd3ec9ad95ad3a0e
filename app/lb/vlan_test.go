package lb

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/app/nat"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

const (
	vlanID     = 300
	portUplink = 20
)

// vlanScenario is the lab scenario with net-a a VLAN network (VLAN 300
// on physnet1), every chassis's physnet1 uplink on port 20.
func vlanScenario(s *scenario) *scenario {
	n := *s.recs[model.KindNetwork]["net-a"].(*model.Network)
	n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.MTU = model.NetVLAN, "physnet1", vlanID, 1500
	s.put(&n)
	for _, c := range []string{"hv1", "hv2", "hv3"} {
		ch := *s.recs[model.KindChassis][c].(*model.Chassis)
		ch.Mappings = map[string]string{"physnet1": "br-phy"}
		s.put(&ch)
		s.sw[c][portUplink] = topology.Port{No: portUplink, Name: names.PhysPortName("physnet1"), Up: true}
	}
	return s
}

func vlanSwitch(t *testing.T, s *scenario, ct *fakeswitch.ConnTable, pick *int) *fakeswitch.Switch {
	t.Helper()
	sw := fakeswitch.FromState(fullState(t, s.input("hv1")), append(hv1Port, portUplink)...)
	sw.Conntrack = ct
	if pick != nil {
		sw.SelectBucket = func(*flow.Group, fakeswitch.Packet) int { return *pick }
	}
	return sw
}

// A VIP on a VLAN network, both modes: c1's SYN through each bucket
// reaches its member (NAT: DNATed; DSR: only dl_dst rewritten), the
// remote ones out of the uplink tagged with the network's VLAN; the
// member's reply, from m1's port or from the uplink tagged, reaches c1
// from VIP:80 (NAT: un-NATed in the zone; DSR: looked up, unchanged);
// the connection's next packet goes to the same member when the group
// prefers another.
func TestWalkVLAN(t *testing.T) {
	for _, mode := range []string{"NAT", "DSR"} {
		for b := range mIP {
			t.Run(fmt.Sprintf("%s/bucket%d", mode, b), func(t *testing.T) {
				s := vlanScenario(newScenario("ROUND_ROBIN"))
				if mode == "DSR" {
					s = makeDSR(s)
				}
				ct := fakeswitch.NewConnTable()
				pick := b
				sw := vlanSwitch(t, s, ct, &pick)
				syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
				wantIP, wantPort := mIP[b], uint16(8080)
				if mode == "DSR" {
					wantIP, wantPort = vipIP, 80
				}
				check := func(what string, r *fakeswitch.Result, err error) {
					t.Helper()
					e := one(t, r, err)
					out := uint32(portMember)
					if b > 0 {
						out = portUplink
					}
					tagged := len(e.Packet.VLANs) == 1 && e.Packet.VLANs[0].VID == vlanID
					if e.Port != out || e.Packet.EthDst != mMAC[b] || e.Packet.IPv4Dst != wantIP || e.Packet.TPDst != wantPort || tagged != (b > 0) {
						t.Fatalf("%s: got port %d %s (tags %v), want port %d to %s:%d via %s\n%s", what, e.Port, e.Packet, e.Packet.VLANs, out, wantIP, wantPort, mMAC[b], r.TraceText())
					}
				}
				r, err := sw.Walk(portClient, syn)
				check("SYN", r, err)
				src := mIP[b]
				sport := uint16(8080)
				if mode == "DSR" {
					src, sport = vipIP, 80
				}
				reply := tcpPkt(mMAC[b], macC1, src, c1IP, sport, 40000)
				in := uint32(portMember)
				if b > 0 {
					reply.VLANs, in = []fakeswitch.VLAN{{VID: vlanID}}, portUplink
				}
				r, err = sw.Walk(in, reply)
				e := one(t, r, err)
				if e.Port != portClient || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 || len(e.Packet.VLANs) != 0 {
					t.Fatalf("reply: got port %d %s (tags %v), want port %d from %s:80 untagged\n%s", e.Port, e.Packet, e.Packet.VLANs, portClient, vipIP, r.TraceText())
				}
				pick = (b + 1) % len(mIP)
				r, err = sw.Walk(portClient, syn)
				check("established", r, err)
				if usesGroup(r) {
					t.Fatalf("the established packet used the group:\n%s", r.TraceText())
				}
			})
		}
	}
}

// A VLAN VIP's flows are accepted by the pipeline's table contracts and
// by the golden file.
func TestGoldenVLAN(t *testing.T) {
	checkGolden(t, "hv1_vlan.golden", lbState(t, vlanScenario(newScenario("ROUND_ROBIN")).input("hv1")).Text())
	checkGolden(t, "hv1_vlan_dsr.golden", lbState(t, makeDSR(vlanScenario(newScenario("ROUND_ROBIN"))).input("hv1")).Text())
}

// A floating IP on a VIP of a VLAN network is not served (README.md,
// "Not done"): neither nat (no ARP answer, no rewrite) nor lb (no
// steering, no home flows) gives it flows on any chassis.
func TestFloatingIPVLANVIPNotServed(t *testing.T) {
	s := newFIPScenario()
	n := *s.recs[model.KindNetwork]["net-a"].(*model.Network)
	n.NetworkType, n.PhysicalNetwork, n.SegmentationID = model.NetVLAN, "physnet1", vlanID
	s.put(&n)
	ck := pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID(idFIP))
	for _, c := range []string{"hv1", "hv2", "hv3"} {
		d, err := nat.New().Desired(s.input(c))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range d.Flows {
			if f.Cookie == pipeline.Cookie(pipeline.AppNAT, pipeline.ObjectID(idFIP)) {
				t.Errorf("%s: nat flow for a VLAN VIP's floating IP: %s", c, f.KeyText())
			}
		}
		for _, f := range lbState(t, s.input(c)).Flows {
			if f.Cookie == ck {
				t.Errorf("%s: lb flow for a VLAN VIP's floating IP: %s", c, f.KeyText())
			}
		}
	}
}
