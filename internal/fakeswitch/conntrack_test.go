package fakeswitch

import (
	"errors"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

func TestConnTableDNAT(t *testing.T) {
	c := NewConnTable()
	vip, m1, m2, cl := flow.MustIPv4("10.0.0.100"), flow.MustIPv4("10.0.0.21"), flow.MustIPv4("10.0.0.22"), flow.MustIPv4("10.0.0.11")
	syn := Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: cl, IPv4Dst: vip, TPSrc: 40000, TPDst: 80}
	// Lookup without commit: new, nothing changes, nothing stored.
	if p, st, _ := c.TrackNAT(syn, 1, false, &flow.NAT{}); st != flow.CTNew || p.IPv4Dst != vip || c.Len() != 0 {
		t.Fatalf("lookup: %s %x len %d", p, st, c.Len())
	}
	p, st, _ := c.TrackNAT(syn, 1, true, &flow.NAT{Flags: flow.NATDst, IPMin: m1, PortMin: 8080})
	if st != flow.CTNew|flow.CTDstNAT || p.IPv4Dst != m1 || p.TPDst != 8080 || c.Len() != 1 {
		t.Fatalf("commit: %s %x", p, st)
	}
	// Another zone does not see it.
	if _, st, _ := c.TrackNAT(syn, 2, false, &flow.NAT{}); st != flow.CTNew {
		t.Fatalf("zone 2: %x", st)
	}
	reply := Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: m1, IPv4Dst: cl, TPSrc: 8080, TPDst: 40000}
	p, st, _ = c.TrackNAT(reply, 1, false, &flow.NAT{})
	if st != flow.CTEstablished|flow.CTReply|flow.CTDstNAT || p.IPv4Src != vip || p.TPSrc != 80 {
		t.Fatalf("reply: %s %x", p, st)
	}
	// Established: the recorded NAT wins over a new nat() range.
	p, st, _ = c.TrackNAT(syn, 1, true, &flow.NAT{Flags: flow.NATDst, IPMin: m2, PortMin: 8080})
	if st != flow.CTEstablished|flow.CTDstNAT || p.IPv4Dst != m1 {
		t.Fatalf("established: %s %x", p, st)
	}
	c.Expire()
	if c.Len() != 0 {
		t.Fatalf("expire left %d", c.Len())
	}
}

// nat() without a recirculation table, or with a tracker that does not
// model NAT, is refused.
func TestNATNeedsTableAndTracker(t *testing.T) {
	for name, tc := range map[string]struct {
		ct    Conntrack
		table uint8
	}{"no table": {NewConnTable(), flow.CTNoTable}, "no nat tracker": {NewConnections, 1}} {
		s := New()
		s.Conntrack = tc.ct
		s.Install(&flow.Flow{Table: 0, Priority: 1, Match: flow.M().Set(flow.EthType, 0x0800), Actions: []flow.Action{flow.CT{Zone: 1, Table: tc.table, NAT: &flow.NAT{}}}})
		if _, err := s.Walk(1, Packet{EthType: flow.EthTypeIPv4}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: want ErrUnsupported, got %v", name, err)
		}
	}
}
