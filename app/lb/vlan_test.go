package lb

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
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

// vlanFIPScenario is newFIPScenario with net-a (the VIP's network) a
// VLAN network (VLAN 300 on physnet1, each chassis's uplink port 20,
// beside the external network's port 30).
func vlanFIPScenario() *scenario {
	s := newFIPScenario()
	n := *s.recs[model.KindNetwork]["net-a"].(*model.Network)
	n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.MTU = model.NetVLAN, "physnet1", vlanID, 1500
	s.put(&n)
	for _, c := range []string{"hv1", "hv2", "hv3"} {
		ch := *s.recs[model.KindChassis][c].(*model.Chassis)
		ch.Mappings = map[string]string{"physnet1": "br-phy", "extnet": "br-ex"}
		s.put(&ch)
		s.sw[c][portUplink] = topology.Port{No: portUplink, Name: names.PhysPortName("physnet1"), Up: true}
	}
	return s
}

// A floating IP on a VIP of a VLAN network, both modes, each bucket: the
// home rewrites the outside SYN to the VIP and sends it to the member (a
// remote one out of the VLAN uplink, tagged); the remote member's reply
// is steered out of its chassis's VLAN uplink, tagged, addressed to the
// VIP port's MAC (which only the home claims), not the router's (which
// every chassis routes with); the home takes it (F4: the router's MAC
// back) and sends it out of the external uplink from FIP:80. Another
// chassis that gets the same frame (an upstream switch that floods it)
// sends nothing out of its external uplink.
func TestWalkFloatingIPVLANVIP(t *testing.T) {
	for _, mode := range []string{"NAT", "DSR"} {
		s := vlanFIPScenario()
		if mode == "DSR" {
			s = makeDSR(s)
		}
		home := s.home(t)
		for b := range mIP {
			t.Run(fmt.Sprintf("%s/bucket%d_%s", mode, b, mHost[b]), func(t *testing.T) {
				pick := b
				sw := fipSwitch(t, s, home, fakeswitch.NewConnTable(), &pick)
				syn := tcpPkt(gwMAC, fipMAC, inetIP, fipIP, inetSport, 80)
				r, err := sw.Walk(uplinkPort, syn)
				e := one(t, r, err)
				local := mHost[b] == home
				wantPort, dport, rsrc, rsport := uint32(portMember), uint16(memberTP), mIP[b], uint16(memberTP)
				if !local {
					wantPort = portUplink
				}
				if mode == "DSR" {
					dport, rsrc, rsport = 80, vipIP, 80
				}
				p := e.Packet
				if e.Port != wantPort || p.TPDst != dport || p.EthDst != mMAC[b] || p.IPv4Src != inetIP ||
					(!local && (len(p.VLANs) != 1 || p.VLANs[0].VID != vlanID)) || (local && len(p.VLANs) != 0) {
					t.Fatalf("SYN: got port %d %s, want port %d to %s (tagged %d when remote)\n%s", e.Port, p, wantPort, mMAC[b], vlanID, r.TraceText())
				}
				reply := tcpPkt(mMAC[b], rA, rsrc, inetIP, rsport, inetSport)
				in := uint32(portMember)
				if !local {
					msw := fipSwitch(t, s, mHost[b], fakeswitch.NewConnTable(), nil)
					arrive(t, msw, e, portUplink)
					r, err := msw.Walk(portMember, reply)
					e := one(t, r, err)
					if e.Port != portUplink || len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != vlanID ||
						e.Packet.EthDst != macVIP || e.Packet.IPv4Src != rsrc || e.Packet.TPSrc != rsport {
						t.Fatalf("reply on the member's chassis %s: got port %d %s, want the VLAN uplink tagged %d to the VIP port's MAC %s\n%s",
							mHost[b], e.Port, e.Packet, vlanID, macVIP, r.TraceText())
					}
					reply = tcpPkt(e.Packet.EthSrc, e.Packet.EthDst, e.Packet.IPv4Src, e.Packet.IPv4Dst, e.Packet.TPSrc, e.Packet.TPDst)
					reply.TTL, reply.VLANs, in = e.Packet.TTL, e.Packet.VLANs, portUplink
					for _, c := range []string{"hv1", "hv2", "hv3"} {
						if c == home {
							continue
						}
						osw := fipSwitch(t, s, c, fakeswitch.NewConnTable(), nil)
						r, err := osw.Walk(portUplink, reply)
						if err != nil {
							t.Fatal(err)
						}
						for _, e := range r.Emits {
							if e.Port == uplinkPort || e.Packet.IPv4Src == fipIP {
								t.Errorf("%s (not the home) sent the steered reply out: %s\n%s", c, e, r.TraceText())
							}
						}
					}
				}
				leavesHome(t, sw, in, reply, 0)
			})
		}
	}
}
