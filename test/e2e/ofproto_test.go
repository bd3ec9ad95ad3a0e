package e2e

import (
	"context"
	"errors"
	"fmt"
	"github.com/nimbus-sdn/nimbus/switches"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// capture is an ofproto.Session that hands connections to the test.
type capture struct{ conns chan *ofproto.Conn }

func (c *capture) OnConnect(conn *ofproto.Conn) ofproto.Handler { c.conns <- conn; return nil }
func (c *capture) OnDisconnect(*ofproto.Conn, error)            {}

// rawSwitch connects a real bridge to an in-process OpenFlow server and
// returns the controller side of the connection.
func rawSwitch(t *testing.T) (*ofproto.Conn, *ovslab.Bridge) {
	t.Helper()
	sess := &capture{conns: make(chan *ofproto.Conn, 4)}
	srv := &ofproto.Server{Addr: "127.0.0.1:0", Session: sess,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{"tcp:" + addr.String()}})
	select {
	case c := <-sess.conns:
		if c.DPID() != br.DPID {
			t.Fatalf("FEATURES_REPLY datapath id %016x, bridge has %016x", c.DPID(), br.DPID)
		}
		return c, br
	case <-time.After(15 * time.Second):
		t.Fatal("bridge never connected")
	}
	return nil, nil
}

// Every action and match field Nimbus encodes, installed on a real bridge
// in one bundle, dumped back by OVS and decoded by us, must come back as
// the same flow. OVS is the oracle for both directions of the codec.
func TestCodecRoundTripThroughOVS(t *testing.T) {
	ovslab.RequireE2E(t)
	conn, br := rawSwitch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ip := func(s string) uint64 { return uint64(flow.MustIPv4(s)) }
	meter := &flow.Meter{ID: reconcile.MeterIDBase + 1, Flags: flow.MeterKbps | flow.MeterBurst | flow.MeterStats,
		Bands: []flow.Band{{Type: flow.BandDrop, Rate: 10000, Burst: 1000}}}
	groups := []*flow.Group{
		{ID: reconcile.GroupIDBase + 1, Type: flow.GroupAll, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.Output{Port: 1}}}, {Actions: []flow.Action{flow.Output{Port: 2}}}}},
		{ID: reconcile.GroupIDBase + 2, Type: flow.GroupSelect, Buckets: []flow.Bucket{{Weight: 50, Actions: []flow.Action{flow.SetField{F: flow.EthDst, Value: 0x020000000001}, flow.Output{Port: 1}}}, {Weight: 50, Actions: []flow.Action{flow.Output{Port: 2}}}}},
		{ID: reconcile.GroupIDBase + 3, Type: flow.GroupFF, Buckets: []flow.Bucket{{WatchPort: 1, Actions: []flow.Action{flow.Output{Port: 1}}}, {WatchPort: 2, Actions: []flow.Action{flow.Output{Port: 2}}}}},
	}
	cookie := uint64(0x4e03000000000000)
	flows := []*flow.Flow{
		{Table: 0, Priority: 100, Cookie: cookie | 1, Match: flow.M().InPort(1).EthSrc(0x020000000001).SetMasked(flow.EthDst, 0x010000000000, 0x010000000000),
			Actions:  []flow.Action{flow.SetField{F: flow.Reg0, Value: 1}, flow.SetField{F: flow.Reg1, Value: 0x500, Mask: 0xff00}, flow.Move{Src: flow.Reg2, Dst: flow.Reg3, SrcOfs: 0, DstOfs: 8, NBits: 8}},
			Metadata: 5, MetadataMask: 0xffffff, Goto: 1},
		{Table: 1, Priority: 200, Cookie: cookie | 2, IdleTimeout: 300, HardTimeout: 600,
			Match:   flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).SetMasked(flow.IPv4Src, ip("10.0.0.0"), 0xffffff00).Set(flow.IPv4Dst, ip("10.0.1.5")).Set(flow.TCPDst, 80),
			Meter:   meter.ID,
			Actions: []flow.Action{flow.CT{Commit: true, Zone: 7, Table: flow.CTNoTable, NAT: &flow.NAT{Flags: flow.NATSrc, IPMin: flow.MustIPv4("192.0.2.1"), IPMax: flow.MustIPv4("192.0.2.9"), PortMin: 1024, PortMax: 65535}, Exec: []flow.SetField{{F: flow.CTMark, Value: 0x11}}}, flow.Output{Port: 2}}},
		{Table: 1, Priority: 201, Cookie: cookie | 3, Match: flow.M().EthType(flow.EthTypeIPv4).SetMasked(flow.CTState, flow.CTTracked|flow.CTEstablished, flow.CTTracked|flow.CTEstablished|flow.CTNew).Set(flow.CTZone, 7).SetMasked(flow.CTMark, 1, 1),
			Actions: []flow.Action{flow.CT{ZoneSrc: flow.Reg4, Table: 2, NAT: &flow.NAT{}}}},
		{Table: 1, Priority: 202, Cookie: cookie | 4, Match: flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoUDP).Set(flow.UDPSrc, 68).Set(flow.UDPDst, 67).SetMasked(flow.Reg5, 0x10, 0xf0),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}},
		{Table: 2, Priority: 300, Cookie: cookie | 5, Match: flow.M().EthType(flow.EthTypeARP).Set(flow.ARPOp, 1).Set(flow.ARPTpa, ip("10.0.0.1")).Set(flow.ARPSpa, ip("10.0.0.2")).Set(flow.ARPSha, 0x020000000002),
			Actions: []flow.Action{flow.Move{Src: flow.EthSrc, Dst: flow.EthDst, NBits: 48}, flow.SetField{F: flow.EthSrc, Value: 0x02000000aaaa}, flow.SetField{F: flow.ARPOp, Value: 2},
				flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48}, flow.Move{Src: flow.ARPSpa, Dst: flow.ARPTpa, NBits: 32}, flow.SetField{F: flow.ARPSha, Value: 0x02000000aaaa}, flow.SetField{F: flow.ARPSpa, Value: ip("10.0.0.1")}, flow.Output{Port: flow.PortInPort}}},
		{Table: 2, Priority: 301, Cookie: cookie | 6, Match: flow.M().Set(flow.TunnelID, 5).Set(flow.TunIPv4Dst, ip("172.16.0.2")).SetMasked(flow.VlanVID, flow.VlanPresent|10, 0x1fff),
			Actions: []flow.Action{flow.PopVLAN{}, flow.PushVLAN{EthType: 0x8100}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 20}, flow.SetField{F: flow.TunnelID, Value: 9}, flow.SetField{F: flow.TunIPv4Dst, Value: ip("172.16.0.3")},
				flow.GroupAction{ID: groups[0].ID}, flow.Resubmit{InPort: flow.PortInPort, Table: 3}}},
		{Table: 3, Priority: 1, Cookie: cookie | 7, Match: flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoICMP).Set(flow.ICMPv4Type, 8).Set(flow.ICMPv4Code, 0).Set(flow.IPDSCP, 10),
			Actions: []flow.Action{flow.DecTTL{}, flow.CT{Commit: true, Zone: 1, Table: flow.CTNoTable, NAT: &flow.NAT{Flags: flow.NATDst, IPMin: flow.MustIPv4("10.0.0.5")}}, flow.GroupAction{ID: groups[1].ID}}},
	}
	ops := &reconcile.Ops{MeterAdds: []*flow.Meter{meter}, GroupAdds: groups, FlowAdds: flows}
	sw := &switches.OFSwitch{Conn: conn}
	if err := sw.Apply(ctx, ops); err != nil {
		t.Fatalf("OVS refused our encoding: %v", err)
	}
	if sw.NoBundles {
		t.Fatal("OVS refused the ONF bundle")
	}
	got, err := sw.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range flows {
		f, ok := got.State.Flows[want.Key()]
		if !ok {
			t.Errorf("flow missing after dump: %s", want)
			continue
		}
		if f.String() != want.String() {
			t.Errorf("flow changed through OVS:\n sent %s\n got  %s", want, f)
		}
	}
	for _, want := range groups {
		if g := got.State.Groups[want.ID]; g == nil || g.String() != want.String() {
			t.Errorf("group changed through OVS:\n sent %s\n got  %v", want, g)
		}
	}
	if sw.NoMeters {
		t.Errorf("meter dump refused")
	} else if m := got.State.Meters[meter.ID]; m == nil || m.String() != meter.String() {
		t.Errorf("meter changed through OVS:\n sent %s\n got  %v", meter, m)
	}
	// And ovs-ofctl agrees on the text of the Nicira actions.
	dump := br.Ofctl("dump-flows", br.Name)
	for _, s := range []string{"ct(commit,zone=7,nat(src=192.0.2.1-192.0.2.9:1024-65535),exec(set_field:0x11->ct_mark))",
		"ct(table=2,zone=NXM_NX_REG4[0..15],nat)", "resubmit(,3)", "move:NXM_NX_REG2[0..7]->NXM_NX_REG3[8..15]", "meter:" + fmt.Sprint(meter.ID),
		"ct_state=-new+est+trk", "nat(dst=10.0.0.5)", "group:" + fmt.Sprint(groups[0].ID)} {
		if !strings.Contains(dump, s) {
			t.Errorf("ovs-ofctl dump lacks %q:\n%s", s, dump)
		}
	}
	// A second reconcile of the same desired state sends nothing.
	st := flow.NewState()
	for _, f := range flows {
		st.AddFlow(f)
	}
	for _, g := range groups {
		st.Groups[g.ID] = g
	}
	st.Meters[meter.ID] = meter
	if d := reconcile.Diff(st, got, true); !d.Empty() {
		t.Fatalf("re-diff after round trip is not empty:\n%s", d.Text())
	}
}

// Errors are matched to the message that caused them.
func TestErrorsMatchedToRequest(t *testing.T) {
	ovslab.RequireE2E(t)
	conn, _ := rawSwitch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good := &flow.Flow{Table: 0, Priority: 1, Cookie: 0x4e03000000000001}
	bad := &flow.Flow{Table: 0, Priority: 2, Cookie: 0x4e03000000000002, Actions: []flow.Action{flow.GroupAction{ID: 0x4e00ffff}}} // no such group
	tx := conn.Begin(true)
	tx.FlowMod(good, ofproto.FlowModOpts{Command: ofproto.FCAdd, BufferID: ofproto.NoBuffer})
	tx.FlowMod(bad, ofproto.FlowModOpts{Command: ofproto.FCAdd, BufferID: ofproto.NoBuffer})
	err := tx.Commit(ctx)
	var te *ofproto.TxnError
	if !errors.As(err, &te) {
		t.Fatalf("want a TxnError naming the bad flow, got %v", err)
	}
	if !strings.Contains(te.Error(), "priority=2") || strings.Contains(te.Error(), "priority=1,") {
		t.Fatalf("error not matched to the offending flow: %v", te)
	}
	// Atomic: the good flow must not be there either.
	fs, err := conn.DumpFlows(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Fatalf("bundle was not atomic: %d flows installed", len(fs))
	}
}

// ROLE_REQUEST carries a generation id; the switch rejects a stale one.
func TestRoleGenerationFencing(t *testing.T) {
	ovslab.RequireE2E(t)
	conn, _ := rawSwitch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	role, gen, err := conn.SetRole(ctx, ofproto.RoleMaster, 42)
	if err != nil || role != ofproto.RoleMaster || gen != 42 {
		t.Fatalf("role master gen 42: role=%d gen=%d err=%v", role, gen, err)
	}
	_, _, err = conn.SetRole(ctx, ofproto.RoleMaster, 41)
	var oe *ofproto.OFError
	if !errors.As(err, &oe) || !strings.Contains(oe.Error(), "STALE") {
		t.Fatalf("stale generation accepted: %v", err)
	}
	if role, _, err = conn.SetRole(ctx, ofproto.RoleSlave, 43); err != nil || role != ofproto.RoleSlave {
		t.Fatalf("role slave: %d %v", role, err)
	}
}

// Port description lists the bridge's ports.
func TestPortDescription(t *testing.T) {
	ovslab.RequireE2E(t)
	conn, br := rawSwitch(t)
	br.AddPort("", 7)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := conn.PortDesc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	found := false
	for _, p := range ps {
		names = append(names, fmt.Sprintf("%d:%s", p.No, p.Name))
		found = found || p.No == 7
	}
	sort.Strings(names)
	if !found {
		t.Fatalf("port 7 missing from port description: %v", names)
	}
}
