package ofproto

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

// floodGroup is an ALL group with one output bucket per port: 32 bytes a
// bucket, so about 2,000 fit one message.
func floodGroup(n int) *flow.Group {
	g := &flow.Group{ID: 0x4e000001, Type: flow.GroupAll}
	for i := 0; i < n; i++ {
		g.Buckets = append(g.Buckets, flow.Bucket{Actions: []flow.Action{flow.Output{Port: uint32(i + 1)}}})
	}
	return g
}

// Finding 1: no encoder panics on a message over 65535 bytes; each returns
// ErrTooLarge and leaves what was already in the buffer intact.
func TestEncodersRefuseOversizedMessages(t *testing.T) {
	prefix := AppendSimple(nil, TypeBarrierReq, 1)
	keep := func(name string, b []byte, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
		if !bytes.Equal(b, prefix) {
			t.Errorf("%s: buffer not restored (%d bytes, want the %d before it)", name, len(b), len(prefix))
		}
	}
	flood := []flow.Action{flow.Output{Port: flow.PortFlood}}

	// A packet-in with an empty match carries up to 65,501 bytes; flooded
	// back unbuffered, it needs 65,541.
	data := make([]byte, 65535-34)
	b, err := AppendPacketOut(bytes.Clone(prefix), 2, NoBuffer, 1, flood, data)
	keep("packet-out of a full-size packet-in's frame", b, err, ErrTooLarge)
	// The largest frame that fits, and the same frame by buffer id.
	b, err = AppendPacketOut(nil, 2, NoBuffer, 1, flood, data[:65535-PacketOutOverhead])
	if err != nil || len(b) != 65535 {
		t.Errorf("largest packet-out: %d bytes, %v", len(b), err)
	}
	if b, err = AppendPacketOut(nil, 2, 9, 1, flood, data); err != nil || len(b) != PacketOutOverhead {
		t.Errorf("buffered packet-out: %d bytes, %v", len(b), err)
	}

	// A flood group of more buckets than fit.
	b, err = AppendGroupMod(bytes.Clone(prefix), 3, GCAdd, floodGroup(3000))
	keep("group of 3000 buckets", b, err, ErrTooLarge)
	if err != nil && !strings.Contains(err.Error(), "3000 buckets") {
		t.Errorf("group error does not say why: %v", err)
	}
	if _, err = AppendGroupMod(nil, 3, GCAdd, floodGroup(1000)); err != nil {
		t.Errorf("group of 1000 buckets: %v", err)
	}
	if _, err = AppendGroupMod(nil, 3, GCDelete, floodGroup(3000)); err != nil {
		t.Errorf("deleting a large group carries no buckets: %v", err)
	}

	// A flow with too many actions, and a meter with too many bands.
	f := &flow.Flow{Table: 1, Priority: 1}
	for i := 0; i < 5000; i++ {
		f.Actions = append(f.Actions, flow.Output{Port: uint32(i)})
	}
	b, err = AppendFlowMod(bytes.Clone(prefix), 4, f, FlowModOpts{Command: FCAdd})
	keep("flow-mod of 5000 actions", b, err, ErrTooLarge)
	m := &flow.Meter{ID: 1}
	for i := 0; i < 5000; i++ {
		m.Bands = append(m.Bands, flow.Band{Type: flow.BandDrop, Rate: uint32(i)})
	}
	b, err = AppendMeterMod(bytes.Clone(prefix), 5, GCAdd, m)
	keep("meter-mod of 5000 bands", b, err, ErrTooLarge)

	// A multipart request body that does not fit.
	b, err = AppendMultipartReq(bytes.Clone(prefix), 6, MPFlow, make([]byte, 70000))
	keep("multipart request", b, err, ErrTooLarge)

	// A message that fits alone but not inside a bundle add.
	fit := floodGroup((65535 - 16) / 32) // just fits as a group-mod
	if gm, err := AppendGroupMod(nil, 7, GCAdd, fit); err != nil || len(gm) <= 65535-BundleAddOverhead {
		t.Fatalf("test group should fit alone but not in a bundle: %d bytes, %v", len(gm), err)
	}
	b, err = AppendBundleAdd(bytes.Clone(prefix), 7, 1, BundleAtomic, func(b []byte) ([]byte, error) {
		return AppendGroupMod(b, 7, GCAdd, fit)
	})
	keep("bundle add of a 65,5xx-byte group-mod", b, err, ErrTooLarge)

	// An echo never exceeds the limit: its data is capped.
	if e := AppendEcho(nil, TypeEchoReply, 1, make([]byte, 70000)); len(e) != 65535 || int(be.Uint16(e[2:])) != 65535 {
		t.Errorf("oversized echo: %d bytes, length field %d", len(e), be.Uint16(e[2:]))
	}
}

// Content the wire format cannot express is an error, not a panic.
func TestEncodersRefuseUnencodable(t *testing.T) {
	for name, as := range map[string][]flow.Action{
		"opaque":          {flow.Opaque{Desc: "x"}},
		"nil":             {nil},
		"nat outside ct":  {&flow.NAT{}},
		"unknown field":   {flow.SetField{F: 250, Value: 1}},
		"bad move":        {flow.Move{Src: 0, Dst: flow.Reg0, NBits: 1}},
		"nested in ct":    {flow.CT{Exec: []flow.SetField{{F: 0}}}},
		"after good ones": {flow.Output{Port: 1}, flow.Opaque{}},
	} {
		b, err := AppendActions([]byte{1, 2}, as)
		if !errors.Is(err, ErrUnencodable) || !bytes.Equal(b, []byte{1, 2}) {
			t.Errorf("%s: %v, buffer %x", name, err, b)
		}
		if _, err := AppendFlowMod(nil, 1, &flow.Flow{Actions: as}, FlowModOpts{Command: FCAdd}); !errors.Is(err, ErrUnencodable) {
			t.Errorf("%s in a flow-mod: %v", name, err)
		}
		if _, err := AppendPacketOut(nil, 1, NoBuffer, 1, as, nil); !errors.Is(err, ErrUnencodable) {
			t.Errorf("%s in a packet-out: %v", name, err)
		}
	}
	if _, err := AppendFlowMod(nil, 1, &flow.Flow{Match: flow.Match{{F: 0, Value: 1}}}, FlowModOpts{Command: FCDelete}); !errors.Is(err, ErrUnencodable) {
		t.Errorf("match on field 0: %v", err)
	}
}

// A transaction leaves out what cannot be encoded and says so; the rest
// is sent.
func TestTxnRefusesOneMessage(t *testing.T) {
	c, _ := pipeConn(t, Config{})
	for _, bundle := range []bool{true, false} {
		tx := c.Begin(bundle)
		if err := tx.GroupMod(GCAdd, floodGroup(3000)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("bundle=%v: oversized group-mod: %v", bundle, err)
		}
		if err := tx.FlowMod(&flow.Flow{Actions: []flow.Action{flow.Opaque{}}}, FlowModOpts{Command: FCAdd}); !errors.Is(err, ErrUnencodable) {
			t.Errorf("bundle=%v: unencodable flow-mod: %v", bundle, err)
		}
		if err := tx.GroupMod(GCAdd, floodGroup(10)); err != nil {
			t.Errorf("bundle=%v: small group-mod: %v", bundle, err)
		}
		if tx.Len() != 1 {
			t.Errorf("bundle=%v: transaction holds %d messages, want 1", bundle, tx.Len())
		}
	}
	if err := c.Begin(true).MeterMod(GCAdd, &flow.Meter{ID: 1}); !errors.Is(err, ErrMeterInBundle) {
		t.Errorf("meter-mod in a bundle: %v", err)
	}
}

// panicHandler panics on every packet-in.
type panicHandler struct{}

func (panicHandler) PacketIn(c *Conn, p *PacketIn)            { panic("handler bug") }
func (panicHandler) PortStatus(c *Conn, reason uint8, p Port) {}
func (panicHandler) FlowRemoved(c *Conn, r FlowRemoved)       {}

// The last line of defence: a panic while serving one switch closes that
// switch's connection, is counted, and leaves other connections alone.
func TestServeRecoversPanic(t *testing.T) {
	before := Panics()
	bad := handshakePipe(t, Config{}, panicHandler{})
	good := handshakePipe(t, Config{}, &checkingHandler{tb: t})
	go bad.sw.Write(packetInMsg(1, NoBuffer, 0, 0, 0, flow.M().InPort(1), testFrame()))
	err := bad.wait(t, nil)
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "handler bug") {
		t.Fatalf("connection closed with %v, want ErrPanic", err)
	}
	if !errors.Is(bad.c.Err(), ErrPanic) {
		t.Errorf("Conn.Err() = %v", bad.c.Err())
	}
	if Panics() != before+1 {
		t.Errorf("panic counter %d, want %d", Panics(), before+1)
	}
	select {
	case <-good.c.Done():
		t.Fatalf("another connection closed: %v", good.c.Err())
	default:
	}
	good.c.Close(nil)
	good.wait(t, nil)
}

// Finding 8: only a switch that does not know bundles turns them off; a
// slave's IS_SLAVE (and any other refusal) does not.
func TestBundlesUnsupportedClassification(t *testing.T) {
	onf := func(code uint16) *OFError {
		return &OFError{Type: 0xffff, Code: code, Data: put32(nil, ONFID)}
	}
	for _, c := range []struct {
		name string
		e    *OFError
		want bool
	}{
		{"BAD_REQUEST/BAD_TYPE", &OFError{Type: ErrBadRequest, Code: 1}, true},
		{"BAD_REQUEST/BAD_EXPERIMENTER", &OFError{Type: ErrBadRequest, Code: 3}, true},
		{"BAD_REQUEST/BAD_EXP_TYPE", &OFError{Type: ErrBadRequest, Code: 4}, true},
		{"BUNDLE_FAILED/BAD_TYPE (1.4)", &OFError{Type: 17, Code: 6}, true},
		{"BUNDLE_FAILED/BAD_FLAGS (1.4)", &OFError{Type: 17, Code: 7}, true},
		{"ONF bundle BAD_TYPE (1.3)", onf(2306), true},
		{"ONF bundle BAD_FLAGS (1.3)", onf(2307), true},

		{"BAD_REQUEST/IS_SLAVE", &OFError{Type: ErrBadRequest, Code: ErrCodeIsSlave}, false},
		{"BAD_REQUEST/EPERM", &OFError{Type: ErrBadRequest, Code: 5}, false},
		{"BAD_REQUEST/BAD_LEN", &OFError{Type: ErrBadRequest, Code: ErrCodeBadLen}, false},
		{"BUNDLE_FAILED/UNKNOWN", &OFError{Type: 17, Code: 0}, false},
		{"BUNDLE_FAILED/OUT_OF_BUNDLES", &OFError{Type: 17, Code: 5}, false},
		{"ONF bundle EPERM", onf(2301), false},
		{"ONF bundle BUNDLE_EXIST", onf(2303), false},
		{"other experimenter's 2306", &OFError{Type: 0xffff, Code: 2306, Data: put32(nil, NiciraID)}, false},
		{"experimenter without id", &OFError{Type: 0xffff, Code: 2306}, false},
		{"ROLE_REQUEST_FAILED/STALE", &OFError{Type: ErrRoleRequestFail, Code: ErrCodeStale}, false},
	} {
		if got := bundlesUnsupported(c.e); got != c.want {
			t.Errorf("%s: bundlesUnsupported = %v, want %v", c.name, got, c.want)
		}
	}
	if s := (&OFError{Type: ErrBadRequest, Code: ErrCodeIsSlave}).Error(); !strings.Contains(s, "IS_SLAVE") {
		t.Errorf("IS_SLAVE is not named: %s", s)
	}
}

// Commit turns an IS_SLAVE answer to the bundle open into an error that is
// not ErrNoBundles (the caller keeps using bundles), and a BAD_EXP_TYPE
// answer into ErrNoBundles.
func TestCommitClassifiesBundleOpenErrors(t *testing.T) {
	for _, c := range []struct {
		code   uint16
		noBund bool
	}{{ErrCodeIsSlave, false}, {4, true}} {
		ps := handshakePipe(t, Config{}, nil)
		tx := ps.c.Begin(true)
		if err := tx.FlowMod(&flow.Flow{Table: 1, Priority: 1}, FlowModOpts{Command: FCAdd, BufferID: NoBuffer}); err != nil {
			t.Fatal(err)
		}
		res := make(chan error, 1)
		go func() { res <- tx.Commit(t.Context()) }()
		// The bundle open is the first message after the handshake; the
		// pipe's drain goroutine reads it, so answer by xid: the open's
		// xid is the one after the flow-mod's.
		open := tx.hi + 1
		for registered := false; !registered; {
			ps.c.pmu.Lock()
			_, registered = ps.c.pending[open]
			ps.c.pmu.Unlock()
			runtime.Gosched()
		}
		go ps.sw.Write(AppendError(nil, open, ErrBadRequest, c.code, nil))
		err := <-res
		var oe *OFError
		if !errors.As(err, &oe) || oe.Code != c.code {
			t.Errorf("code %d: commit error %v does not carry the switch's error", c.code, err)
		}
		if errors.Is(err, ErrNoBundles) != c.noBund {
			t.Errorf("code %d: commit error %v, ErrNoBundles %v, want %v", c.code, err, errors.Is(err, ErrNoBundles), c.noBund)
		}
		ps.c.Close(nil)
		ps.wait(t, nil)
	}
}

// Finding 6: an experimenter OXM (OVS's tcp_flags in OpenFlow 1.3: ONF
// experimenter, field 42) is skipped like an unknown field, not fatal.
func TestParseMatchSkipsExperimenterOXM(t *testing.T) {
	m := put16(nil, 1)
	m = put16(m, 0)
	m = appendOXM(m, flow.EthType, flow.EthTypeIPv4, 0)
	m = put32(m, 0xffff<<16|42<<9|1<<8|8) // masked, 4-byte id + 2 + 2
	m = put32(m, ONFID)
	m = put16(m, 0x002)
	m = put16(m, 0x002)
	m = appendOXM(m, flow.IPProto, flow.ProtoTCP, 0)
	be.PutUint16(m[2:], uint16(len(m)))
	m = pad8(m, 0)
	got, n, err := ParseMatch(m)
	if !errors.Is(err, ErrUnknownField) || n != len(m) {
		t.Fatalf("ParseMatch: %v, consumed %d of %d", err, n, len(m))
	}
	if want := flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP).Normalize(); got.String() != want.String() {
		t.Errorf("match %s, want %s", got, want)
	}
	// An experimenter OXM too short to hold its experimenter id is
	// malformed.
	bad := put16(nil, 1)
	bad = put16(bad, 4+4+2)
	bad = put32(bad, 0xffff<<16|42<<9|2)
	bad = put16(bad, 0)
	if _, _, err := ParseMatch(pad8(bad, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short experimenter OXM: %v", err)
	}
}

// The same with OVS's own encoding of the flow from the issue, dumped as
// flow stats: the flow is kept, marked as having an unmodelled match.
func TestOracleForeignTCPFlagsFlow(t *testing.T) {
	_, fm := ovsEncodeFlow(t, "table=0,priority=5,tcp,tcp_flags=+syn,actions=drop")
	stats := flowStatsFromFlowMod(fm, 1, 0, 0)
	fs, err := ParseFlowStats(append(stats, flowStatsFromFlowMod(must(AppendFlowMod(nil, 1, sampleFlows()[0], FlowModOpts{Command: FCAdd})), 1, 0, 0)...))
	if err != nil {
		t.Fatalf("dump with a tcp_flags flow: %v", err)
	}
	if len(fs) != 2 || !fs[0].Unknown || !fs[0].UnknownMatch || fs[1].Unknown || fs[1].UnknownMatch {
		t.Fatalf("flow stats %+v", fs)
	}
	if fs[0].Flow.Priority != 5 || !strings.Contains(fs[0].Flow.Match.String(), "tcp") {
		t.Errorf("foreign flow decoded as %s", &fs[0].Flow)
	}
}
