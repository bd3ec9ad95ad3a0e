package flow

import "testing"

func TestMatchNormalizeAndText(t *testing.T) {
	m := M().Set(IPv4Dst, uint64(MustIPv4("10.0.0.1"))).EthType(EthTypeIPv4).InPort(3).
		SetMasked(IPv4Src, uint64(MustIPv4("10.1.2.3")), 0xffffff00).SetMasked(EthDst, 0x0a0000000001, 0xffffffffffff)
	if got, want := m.String(), "ip,in_port=3,dl_dst=0a:00:00:00:00:01,nw_src=10.1.2.0/255.255.255.0,nw_dst=10.0.0.1"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	tcp := M().EthType(EthTypeIPv4).Set(IPProto, ProtoTCP).Set(TCPDst, 80)
	if got := tcp.String(); got != "tcp,tp_dst=80" {
		t.Fatalf("tcp match prints %q", got)
	}
	ct := M().SetMasked(CTState, CTTracked|CTEstablished, CTTracked|CTEstablished|CTNew)
	if got := ct.String(); got != "ct_state=-new+est+trk" {
		t.Fatalf("ct_state prints %q", got)
	}
}

func TestFlowTextAndEquality(t *testing.T) {
	f := &Flow{Table: 2, Priority: 100, Cookie: 0x4e, IdleTimeout: 60, Match: M().InPort(1),
		Actions: []Action{SetField{F: Reg0, Value: 5}, CT{Commit: true, Zone: 7, Table: CTNoTable, NAT: &NAT{Flags: NATSrc, IPMin: MustIPv4("1.1.1.1"), IPMax: MustIPv4("1.1.1.9"), PortMin: 1000, PortMax: 2000}}, Output{Port: 2}},
		Goto:    3}
	want := "cookie=0x4e, table=2, idle_timeout=60, priority=100,in_port=1 actions=set_field:0x5->reg0,ct(commit,zone=7,nat(src=1.1.1.1-1.1.1.9:1000-2000)),output:2,goto_table:3"
	if f.String() != want {
		t.Fatalf("got  %s\nwant %s", f, want)
	}
	g := *f
	g.Actions = []Action{Output{Port: 3}}
	if f.Equal(&g) || !f.SameButInstructions(&g) || f.Key() != g.Key() {
		t.Fatal("equality")
	}
	g.Cookie = 1
	if f.SameButInstructions(&g) {
		t.Fatal("cookie change must not count as instructions-only")
	}
}

func TestValidatePrereqs(t *testing.T) {
	if err := M().Set(TCPDst, 22).Validate(); err == nil {
		t.Fatal("tcp without ip allowed")
	}
	if err := M().EthType(EthTypeIPv4).Set(IPProto, ProtoTCP).Set(TCPDst, 22).Validate(); err != nil {
		t.Fatal(err)
	}
	dup := Match{{F: InPort, Value: 1}, {F: InPort, Value: 2}}
	if err := dup.Validate(); err == nil {
		t.Fatal("duplicate field allowed")
	}
}
