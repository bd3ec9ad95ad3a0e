package secgroup

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/topology"
)

// scaleScenario is one group of n ports spread over 10 chassis (n/10 on
// hv1, at least 1) with 10 rules: the default group's 4 (one ingress
// rule with the group itself as remote group) and 6 more (TCP 22, TCP
// 8000-8010, UDP 53 from a prefix, ICMP echo, TCP 443 from the group, any
// from a /8).
func scaleScenario(n int) *scenario {
	s := &scenario{recs: map[model.Kind]map[string]model.Record{}, sw: map[string]map[uint32]topology.Port{}}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("hv%d", i)
		dpids[name] = uint64(i)
		s.sw[name] = map[uint32]topology.Port{}
		s.put(&model.Chassis{Name: name, TunnelIP: fmt.Sprintf("172.16.0.%d", i), DPID: fmt.Sprintf("%016x", i)})
	}
	s.put(&model.Network{Base: model.Base{ID: "net"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: 100, PortSecurity: true})
	const g = "90000000-0000-4000-8000-000000000000"
	s.put(&model.SecurityGroup{Base: model.Base{ID: g}})
	r := func(i int, dir, eth, proto string, min, max *int, pfx, rg string) {
		s.rule(fmt.Sprintf("91000000-0000-4000-8000-%012d", i), g, dir, eth, proto, min, max, pfx, rg)
	}
	r(1, "egress", "IPv4", "", nil, nil, "", "")
	r(2, "egress", "IPv6", "", nil, nil, "", "")
	r(3, "ingress", "IPv4", "", nil, nil, "", g)
	r(4, "ingress", "IPv6", "", nil, nil, "", g)
	r(5, "ingress", "IPv4", "tcp", intp(22), intp(22), "", "")
	r(6, "ingress", "IPv4", "tcp", intp(8000), intp(8010), "", "")
	r(7, "ingress", "IPv4", "udp", intp(53), intp(53), "192.168.0.0/16", "")
	r(8, "ingress", "IPv4", "icmp", intp(8), nil, "", "")
	r(9, "ingress", "IPv4", "tcp", intp(443), intp(443), "", g)
	r(10, "ingress", "IPv4", "", nil, nil, "10.0.0.0/8", "")
	for i := 0; i < n; i++ {
		hv := fmt.Sprintf("hv%d", i%10+1)
		s.port(&model.Port{Base: model.Base{ID: fmt.Sprintf("%08x-0000-4000-8000-920000000000", i)}, NetworkID: "net",
			MACAddress: fmt.Sprintf("fa:16:3e:00:%02x:%02x", i>>8, i&0xff), PortSecurity: true,
			FixedIPs:       []model.FixedIP{{IPAddress: fmt.Sprintf("10.1.%d.%d", i>>8, i&0xff+1)}},
			SecurityGroups: []string{g}}, hv, uint32(i/10+1))
	}
	return s
}

func flowsOnHV1(t testing.TB, n int) (flows, local int) {
	s := scaleScenario(n)
	in := s.input("hv1")
	d, err := New().Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	return len(d.Flows), len(localPorts(in))
}

// TestFlowsScaleLinearly counts hv1's flows for a group of 10, 100 and
// 1,000 ports with 10 rules, with remote group bits and with the
// per-address fallback (what a switch past 30 remote groups gets for the
// others): both grow linearly with the group (conjunctive matches: the
// fallback's remote addresses are one clause, not one flow per address
// per rule per port).
func TestFlowsScaleLinearly(t *testing.T) {
	defer func(old int) { groupBits = old }(groupBits)
	counts := map[int][2]int{}
	for _, n := range []int{10, 100, 1000} {
		groupBits = maxGroupBits
		bits, local := flowsOnHV1(t, n)
		groupBits = 0
		perAddr, _ := flowsOnHV1(t, n)
		counts[n] = [2]int{bits, perAddr}
		t.Logf("group of %4d ports, 10 rules, %3d local ports on hv1: %6d flows (remote group bits), %7d flows (remote addresses as a clause)", n, local, bits, perAddr)
	}
	// Linear: 10x the group (and 10x the local ports) is at most about
	// 10x the flows.
	for i, layout := range []string{"remote group bits", "remote addresses as a clause"} {
		if r := float64(counts[1000][i]) / float64(counts[100][i]); r > 11 {
			t.Errorf("%s: flows grow %.1fx from 100 to 1,000 ports: not linear", layout, r)
		}
	}
}

// TestRuleCostIsASum adds to the 1,000-port group one rule whose every
// dimension is wide (TCP 1-1023: 10 port masks; the group itself as
// remote: 1,000 addresses; 100 local ports) and counts what it costs on
// hv1. Egress (no other egress rule has a remote group): 1,000 flows for
// the addresses (classification with a bit, a clause without), one
// clause flow per port mask and one conj_id flow. Ingress: the
// addresses are already there (the group's "any from the group" rule has
// them), so 10 + 1. The ports' clause flows exist already (they carry
// one more conjunction action). A product would be 100 x 10 (bits) or
// 100 x 10 x 1,000 (addresses).
func TestRuleCostIsASum(t *testing.T) {
	defer func(old int) { groupBits = old }(groupBits)
	const g = "90000000-0000-4000-8000-000000000000"
	for _, c := range []struct {
		dir        string
		bits, want int
	}{{"ingress", maxGroupBits, 10 + 1}, {"ingress", 0, 10 + 1}, {"egress", maxGroupBits, 10 + 1}, {"egress", 0, 10 + 1}} {
		groupBits = c.bits
		s := scaleScenario(1000)
		if c.dir == "egress" {
			c.want += len(index(s.input("hv1").Model).addrs[g]) // 997: 3 of the scenario's addresses do not parse
		}
		count := func() int {
			d, err := New().Desired(s.input("hv1"))
			if err != nil {
				t.Fatal(err)
			}
			return len(d.Flows)
		}
		before := count()
		s.rule("91000000-0000-4000-8000-000000000099", g, c.dir, "IPv4", "tcp", intp(1), intp(1023), "", g)
		cost := count() - before
		t.Logf("%s, group bits %2d: TCP 1-1023 with the group of 1,000 as remote, 100 local ports: %d flows (%d -> %d)", c.dir, c.bits, cost, before, before+cost)
		if cost != c.want {
			t.Errorf("%s, group bits %d: the rule costs %d flows, want %d", c.dir, c.bits, cost, c.want)
		}
	}
}

// BenchmarkDesired1000 computes hv1's flows for a group of 1,000 ports
// (100 local) with 10 rules.
func BenchmarkDesired1000(b *testing.B) {
	in := scaleScenario(1000).input("hv1")
	a := New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Desired(in); err != nil {
			b.Fatal(err)
		}
	}
}
