package lb

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// counted tallies the walk's hits on counted flows by Counter, checking
// each is the VIP's (its cookie names the VIP, which the API sums by).
func counted(t *testing.T, r *fakeswitch.Result) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range r.Hits {
		if f.Counter == "" {
			continue
		}
		if f.Cookie != pipeline.Cookie(pipeline.AppLB, pipeline.ObjectID("vip-1")) {
			t.Fatalf("counted flow %s does not carry the VIP's cookie", f)
		}
		out[f.Counter]++
	}
	return out
}

// The pool statistics' flows: each client packet to the VIP passes one
// "in" flow, a new connection one "new" flow (an established one none),
// and each reply one "out" flow on one chassis only: NAT, where it is
// un-NATed (the client's); DSR, where it leaves its member (a reply
// that comes in from a tunnel counts nothing here: its member's chassis
// counted it). Persistence (SOURCE_IP) counts its hash as "new".
func TestCountedFlows(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "source_ip"} {
		for b := range mIP {
			t.Run(fmt.Sprintf("%s/bucket%d", mode, b), func(t *testing.T) {
				s := newScenario("ROUND_ROBIN")
				switch mode {
				case "dsr":
					s = makeDSR(s)
				case "source_ip":
					s = newScenario("SOURCE_IP")
				}
				pick := b
				sw := hv1(t, s, fakeswitch.NewConnTable(), &pick)
				syn := tcpPkt(macC1, macVIP, c1IP, vipIP, 40000, 80)
				r, err := sw.Walk(portClient, syn)
				e := one(t, r, err)
				if got := counted(t, r); got["in"] != 1 || got["new"] != 1 || got["out"] != 0 {
					t.Fatalf("new connection counted %v, want in 1, new 1\n%s", got, r.TraceText())
				}
				src, sport := e.Packet.IPv4Dst, e.Packet.TPDst // the member (NAT) or the VIP (DSR)
				reply := tcpPkt(e.Packet.EthDst, macC1, src, c1IP, sport, 40000)
				in := uint32(portMember)
				if e.Port != portMember {
					reply.TunnelID, in = seg, e.Port
				}
				r, err = sw.Walk(in, reply)
				if e := one(t, r, err); e.Port != portClient || e.Packet.IPv4Src != vipIP {
					t.Fatalf("reply: %s out %d\n%s", e.Packet, e.Port, r.TraceText())
				}
				want := 1
				if mode == "dsr" && in != portMember {
					want = 0
				}
				if got := counted(t, r); got["out"] != want || got["in"] != 0 || got["new"] != 0 {
					t.Fatalf("reply from port %d counted %v, want out %d\n%s", in, got, want, r.TraceText())
				}
				r, err = sw.Walk(portClient, syn)
				one(t, r, err)
				if got := counted(t, r); got["in"] != 1 || got["new"] != 0 {
					t.Fatalf("established packet counted %v, want in 1, new 0\n%s", got, r.TraceText())
				}
			})
		}
	}
}
