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

func TestConnTableSNAT(t *testing.T) {
	c := NewConnTable()
	x, vm, srv := flow.MustIPv4("172.24.4.10"), flow.MustIPv4("10.0.1.11"), flow.MustIPv4("198.51.100.7")
	nat := &flow.NAT{Flags: flow.NATSrc, IPMin: x, IPMax: x, PortMin: 2048, PortMax: 2049}
	out := func(sport uint16) Packet {
		return Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: vm, IPv4Dst: srv, TPSrc: sport, TPDst: 80}
	}
	// A source port outside the range gets the lowest free one.
	p, st, _ := c.TrackNAT(out(40000), 5, true, nat)
	if st != flow.CTNew|flow.CTSrcNAT || p.IPv4Src != x || p.TPSrc != 2048 {
		t.Fatalf("commit: %s %x", p, st)
	}
	// The same connection again keeps its NAT; a lookup without nat() does not rewrite.
	if p, _, _ := c.TrackNAT(out(40000), 5, true, nat); p.TPSrc != 2048 || p.IPv4Src != x {
		t.Fatalf("again: %s", p)
	}
	if p, _, _ := c.TrackNAT(out(40000), 5, false, nil); p.IPv4Src != vm {
		t.Fatalf("lookup without nat rewrote: %s", p)
	}
	// A port inside the range and free is kept.
	if p, _, _ := c.TrackNAT(out(2049), 5, true, nat); p.TPSrc != 2049 {
		t.Fatalf("in-range port: %s", p)
	}
	// The range is full: +new, not NATed, nothing committed (as OVS).
	n := c.Len()
	if p, st, _ := c.TrackNAT(out(40001), 5, true, nat); st != flow.CTNew || p.IPv4Src != vm || c.Len() != n {
		t.Fatalf("full range: %x, %d connections (was %d)", st, c.Len(), n)
	}
	// The reply goes back to the VM's address and port.
	reply := Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoTCP, IPv4Src: srv, IPv4Dst: x, TPSrc: 80, TPDst: 2048}
	p, st, _ = c.TrackNAT(reply, 5, false, &flow.NAT{})
	if st != flow.CTEstablished|flow.CTReply|flow.CTSrcNAT || p.IPv4Dst != vm || p.TPDst != 40000 {
		t.Fatalf("reply: %s %x", p, st)
	}
	// Another zone knows nothing of it.
	if _, st, _ := c.TrackNAT(reply, 6, false, &flow.NAT{}); st != flow.CTNew {
		t.Fatalf("zone 6: %x", st)
	}
	// ICMP keeps its id (no ports): only the address changes.
	ping := Packet{EthType: flow.EthTypeIPv4, IPProto: flow.ProtoICMP, IPv4Src: vm, IPv4Dst: srv, ICMPType: 8}
	if p, st, _ := c.TrackNAT(ping, 5, true, &flow.NAT{Flags: flow.NATSrc, IPMin: x, IPMax: x}); st != flow.CTNew|flow.CTSrcNAT || p.IPv4Src != x {
		t.Fatalf("icmp: %s %x", p, st)
	}
}
