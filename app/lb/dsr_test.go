package lb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
)

// dsrScenario: pool-1 tagged DSR; every member port may send from the
// VIP (allowed_address_pairs), as the member-side setup requires.
func dsrScenario() *scenario { return makeDSR(newScenario("ROUND_ROBIN")) }

// makeDSR tags s's pool DSR and lets every member port send from the VIP.
func makeDSR(s *scenario) *scenario {
	p := *s.recs[model.KindPool]["pool-1"].(*model.LBPool)
	p.Description = "web " + DSRTag
	s.put(&p)
	for i := range mIP {
		id := fmt.Sprintf("d%07d-0000-4000-8000-000000000000", i)
		mp := *s.recs[model.KindPort][id].(*model.Port)
		mp.AllowedAddressPairs = []model.AddressPair{{IPAddress: vipIP.String()}}
		s.put(&mp)
	}
	return s
}

// DSR: a new connection from c1 to the VIP leaves through the select
// group with only its destination MAC rewritten (still addressed to the
// VIP), towards each bucket's member, and is committed with the member's
// mark; the member's reply, from the VIP, reaches c1 unchanged (looked
// up in the zone, not NATed), from a tunnel as from m1's local port; the
// connection's next packets follow the mark, not the group.
func TestWalkDSR(t *testing.T) {
	marks := DSRMarks(dsrScenario().members())
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d", b), func(t *testing.T) {
			s := dsrScenario()
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := hv1(t, s, ct, &pick)
			syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
			r, err := sw.Walk(portClient, syn)
			e := one(t, r, err)
			wantPort := map[int]uint32{0: portMember, 1: tunA, 2: tunB}[b]
			if !usesGroup(r) || e.Port != wantPort || e.Packet.EthDst != mMAC[b] || e.Packet.IPv4Dst != vipIP || e.Packet.TPDst != 80 {
				t.Fatalf("DSR SYN: port %d %s, want port %d to %s with dl_dst %s, nw_dst the VIP\n%s", e.Port, e.Packet, wantPort, vipIP, mMAC[b], r.TraceText())
			}
			if ct.Len() != 1 {
				t.Fatalf("DSR committed %d connections, want 1", ct.Len())
			}
			if want := fmt.Sprintf("0x%x->ct_mark", marks[memberID(b)]); !strings.Contains(r.TraceText(), want) {
				t.Fatalf("the SYN's commit does not pin member %d (%s):\n%s", b, want, r.TraceText())
			}
			reply := tcpPkt(mMAC[b], macC1, vipIP, c1IP, 80, 40000)
			in := uint32(portMember)
			if b > 0 {
				reply.TunnelID, in = seg, wantPort
			}
			r, err = sw.Walk(in, reply)
			e = one(t, r, err)
			if e.Port != portClient || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 || e.Packet.EthSrc != mMAC[b] {
				t.Fatalf("DSR reply: port %d %s\n%s", e.Port, e.Packet, r.TraceText())
			}
			if !strings.Contains(r.TraceText(), "ct(zone=") || strings.Contains(r.TraceText(), "nat") {
				t.Errorf("the DSR reply must be looked up in the zone (so conntrack sees both ways) and never NATed:\n%s", r.TraceText())
			}
			// The group now prefers another member: the established
			// connection follows its mark.
			pick = (b + 1) % len(mIP)
			r, err = sw.Walk(portClient, syn)
			e = one(t, r, err)
			if usesGroup(r) || e.Port != wantPort || e.Packet.EthDst != mMAC[b] {
				t.Fatalf("established DSR packet moved or used the group: port %d %s\n%s", e.Port, e.Packet, r.TraceText())
			}
			// A second connection takes the group's new choice.
			r, err = sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, 40001, 80))
			if e = one(t, r, err); e.Packet.EthDst != mMAC[pick] {
				t.Fatalf("second connection: got %s, want member %d", e.Packet, pick)
			}
		})
	}
}

// members lists the scenario's pool members.
func (s *scenario) members() []*model.LBMember {
	var out []*model.LBMember
	for _, r := range s.recs[model.KindMember] {
		out = append(out, r.(*model.LBMember))
	}
	return out
}

// Deliverable 3 in DSR mode: adding, removing and re-weighting members
// (each a new desired state, the connection table kept, as OVS keeps
// conntrack across flow and group changes) never moves a live connection
// to another member; only the connections of a removed or failed member
// end.
func TestWalkDSRPoolChanges(t *testing.T) {
	s := dsrScenario()
	ct := fakeswitch.NewConnTable()
	pick := 0
	sw := hv1(t, s, ct, &pick)
	// One established connection per member (sports 40000+b).
	for b := range mIP {
		pick = b
		r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, uint16(40000+b), 80))
		if e := one(t, r, err); e.Packet.EthDst != mMAC[b] {
			t.Fatalf("setup: connection %d went to %s", b, e.Packet.EthDst)
		}
		reply := tcpPkt(mMAC[b], macC1, vipIP, c1IP, 80, uint16(40000+b))
		in := uint32(portMember)
		if b > 0 {
			reply.TunnelID, in = seg, map[int]uint32{1: tunA, 2: tunB}[b]
		}
		if _, err := sw.Walk(in, reply); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, gone int) {
		t.Helper()
		for b := range mIP {
			for _, p := range []int{0, 1, 2} { // whatever the group would pick now
				pick = p
				r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, uint16(40000+b), 80))
				if err != nil {
					t.Fatal(err)
				}
				if b == gone {
					if !r.Dropped() {
						t.Fatalf("%s: the connection of the member that left: want drop, got %s\n%s", step, r, r.TraceText())
					}
					continue
				}
				e := one(t, r, err)
				if usesGroup(r) || e.Packet.EthDst != mMAC[b] {
					t.Fatalf("%s: connection %d moved to %s (group used: %v)\n%s", step, b, e.Packet.EthDst, usesGroup(r), r.TraceText())
				}
			}
		}
	}
	// Re-weight m2 (a weighted method), then add a member with a port on
	// hv1, then fail m3.
	p := *s.recs[model.KindPool]["pool-1"].(*model.LBPool)
	p.LBMethod = "LEAST_CONNECTIONS" // weights count (README.md)
	s.put(&p)
	s.member(1, "ACTIVE", 7)
	sw = hv1(t, s, ct, &pick)
	check("re-weighted", -1)
	s.port("d0000009-0000-4000-8000-000000000000", "fa:16:3e:0d:00:09", "10.0.0.29", "hv1", 9)
	s.put(&model.LBMember{Base: model.Base{ID: memberID(9)}, PoolID: "pool-1", Address: "10.0.0.29", ProtocolPort: 8080, Weight: 1, AdminStateUp: true, Status: "ACTIVE"})
	sw = hv1(t, s, ct, &pick)
	check("member added", -1)
	s.member(2, "INACTIVE", 1)
	sw = hv1(t, s, ct, &pick)
	check("member failed", 2)
}

func TestGoldenDSR(t *testing.T) {
	got := lbState(t, dsrScenario().input("hv1")).Text()
	checkGolden(t, "hv1_dsr.golden", got)
}
