package lb

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

func sourceIPScenario() *scenario {
	s := newScenario("ROUND_ROBIN")
	v := *s.recs[model.KindVIP]["vip-1"].(*model.LBVIP)
	v.SessionPersistence = &model.SessionPersistence{Type: "SOURCE_IP"}
	s.put(&v)
	return s
}

// With SOURCE_IP persistence, or lb_method SOURCE_IP, every connection of c1 (30 source ports)
// reaches the same member, through the multipath flow and never the
// select group; each is DNATed (conntrack pinned) and its reply comes
// back from the VIP; established packets keep their member.
func TestWalkSourceIP(t *testing.T) {
	t.Run("session_persistence", func(t *testing.T) { walkSourceIP(t, sourceIPScenario()) })
	// lb_method SOURCE_IP, no persistence: the same.
	t.Run("lb_method", func(t *testing.T) { walkSourceIP(t, newScenario("SOURCE_IP")) })
}

func walkSourceIP(t *testing.T, s *scenario) {
	ct := fakeswitch.NewConnTable()
	sw := hv1(t, s, ct, nil)
	chosen := map[string]int{}
	for i := range 30 {
		syn := tcpPkt(macC1, macVIP, c1IP, vipIP, uint16(40000+i), 80)
		r, err := sw.Walk(portClient, syn)
		e := one(t, r, err)
		if usesGroup(r) || !strings.Contains(r.TraceText(), "multipath(nw_src") {
			t.Fatalf("SOURCE_IP connection: want the multipath flow, not the group:\n%s", r.TraceText())
		}
		if e.Packet.TPDst != 8080 {
			t.Fatalf("not DNATed: %s\n%s", e.Packet, r.TraceText())
		}
		chosen[e.Packet.IPv4Dst.String()]++
		// Established: same member.
		r, err = sw.Walk(portClient, syn)
		if e2 := one(t, r, err); e2.Packet.IPv4Dst != e.Packet.IPv4Dst {
			t.Fatalf("established packet moved from %s to %s", e.Packet.IPv4Dst, e2.Packet.IPv4Dst)
		}
	}
	if len(chosen) != 1 || ct.Len() != 30 {
		t.Fatalf("c1's 30 connections went to %v (%d committed), want one member", chosen, ct.Len())
	}
	// The reply of the local member m1, or of a remote one, is un-NATed.
	for ip := range chosen {
		b := map[string]int{mIP[0].String(): 0, mIP[1].String(): 1, mIP[2].String(): 2}[ip]
		reply := tcpPkt(mMAC[b], macC1, mIP[b], c1IP, 8080, 40000)
		in := uint32(portMember)
		if b > 0 {
			reply.TunnelID, in = seg, map[int]uint32{1: tunA, 2: tunB}[b]
		}
		r, err := sw.Walk(in, reply)
		if e := one(t, r, err); e.Port != portClient || e.Packet.IPv4Src != vipIP || e.Packet.TPSrc != 80 {
			t.Fatalf("reply: port %d %s\n%s", e.Port, e.Packet, r.TraceText())
		}
	}
	// Another source address hashes independently: over 60 sources
	// (walked as if from tunnel-less clients: the lb flows only), more
	// than one member is used.
	got := map[string]bool{}
	st := lbState(t, s.input("hv1"))
	st.AddFlow(&flow.Flow{Table: 0, Priority: 1, Actions: []flow.Action{pipeline.RegNetwork.Set(seg)}, Goto: pipeline.LB.ID()})
	lbOnly := fakeswitch.FromState(st, hv1Port...)
	lbOnly.Conntrack = fakeswitch.NewConnTable()
	for i := range 60 {
		src := c1IP + flow.IPv4(i+100)
		r, err := lbOnly.Walk(portClient, tcpPkt(macC1, macVIP, src, vipIP, 40000, 80))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range r.Trace {
			for _, m := range mIP {
				if strings.Contains(l, "nat(dst="+m.String()) {
					got[m.String()] = true
				}
			}
		}
	}
	if len(got) < 2 {
		t.Errorf("60 source addresses all chose %v", got)
	}
}

func TestGoldenSourceIP(t *testing.T) {
	got := lbState(t, sourceIPScenario().input("hv1")).Text()
	checkGolden(t, "hv1_source_ip.golden", got)
}
