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
// VIP), towards each bucket's member, and nothing is committed to
// conntrack; the member's reply, from the VIP, reaches c1 unchanged and
// never through lb (no conntrack, no un-NAT), from a tunnel as from m1's
// local port.
func TestWalkDSR(t *testing.T) {
	for b := range mIP {
		t.Run(fmt.Sprintf("bucket%d", b), func(t *testing.T) {
			s := dsrScenario()
			ct := fakeswitch.NewConnTable()
			pick := b
			sw := hv1(t, s, ct, &pick)
			r, err := sw.Walk(portClient, tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80))
			e := one(t, r, err)
			wantPort := map[int]uint32{0: portMember, 1: tunA, 2: tunB}[b]
			if !usesGroup(r) || e.Port != wantPort || e.Packet.EthDst != mMAC[b] || e.Packet.IPv4Dst != vipIP || e.Packet.TPDst != 80 {
				t.Fatalf("DSR SYN: port %d %s, want port %d to %s with dl_dst %s, nw_dst the VIP\n%s", e.Port, e.Packet, wantPort, vipIP, mMAC[b], r.TraceText())
			}
			if ct.Len() != 0 {
				t.Errorf("DSR committed %d connections", ct.Len())
			}
			reply := tcpPkt(mMAC[b], macC1, vipIP, c1IP, 80, 40000)
			in := uint32(portMember)
			if b > 0 {
				reply.TunnelID, in = seg, wantPort
			}
			r, err = sw.Walk(in, reply)
			e = one(t, r, err)
			if e.Port != portClient || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 {
				t.Fatalf("DSR reply: port %d %s\n%s", e.Port, e.Packet, r.TraceText())
			}
			if strings.Contains(r.TraceText(), "ct(") || strings.Contains(r.TraceText(), "nat") {
				t.Errorf("the DSR reply went through conntrack:\n%s", r.TraceText())
			}
		})
	}
}

func TestGoldenDSR(t *testing.T) {
	got := lbState(t, dsrScenario().input("hv1")).Text()
	checkGolden(t, "hv1_dsr.golden", got)
}
