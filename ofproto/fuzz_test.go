package ofproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Fuzz targets for everything a switch can make Nimbus decode. Run one with
//
//	go test -run '^$' -fuzz '^FuzzConn$' -fuzztime 30s ./ofproto
//
// (scripts/fuzz.sh runs them all). Inputs that once found bugs, and a
// selection of interesting generated inputs, live in testdata/fuzz/ and run
// as regression seeds in plain `go test`.

var quietLogger = slog.New(slog.DiscardHandler)

// fuzzMaxMessage is the Config.MaxMessage of fuzzed connections: small, so
// that fuzzing also reaches the size limit.
const fuzzMaxMessage = 2048

// fuzzMaxInput bounds the bytes fed to a connection: below the 64 KiB at
// which Queue flushes on its own, so that replies are only written once the
// input is drained (see FuzzConn).
const fuzzMaxInput = 32 << 10

// readWire reads one whole OpenFlow message from r.
func readWire(r io.Reader) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	h, err := ParseHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	msg := make([]byte, h.Length)
	copy(msg, hdr[:])
	_, err = io.ReadFull(r, msg[HeaderLen:])
	return msg, err
}

// pipeSwitch is a switch at the far end of a net.Pipe from a Conn.
type pipeSwitch struct {
	c      *Conn
	sw     net.Conn
	served chan error
}

// handshakePipe connects a Conn to a scripted switch over net.Pipe,
// completes the HELLO/FEATURES/SET_CONFIG handshake, then starts Serve
// and a goroutine that drains whatever the controller writes.
func handshakePipe(tb testing.TB, cfg Config, h Handler) *pipeSwitch {
	tb.Helper()
	ctrl, sw := net.Pipe()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	if cfg.EchoInterval == 0 {
		cfg.EchoInterval = time.Hour // no keepalive traffic during a test
	}
	c := newConn(ctrl, cfg)
	hs := make(chan error, 1)
	go func() { hs <- c.Handshake() }()
	sw.SetDeadline(time.Now().Add(5 * time.Second))
	step := func(wantType uint8, reply []byte) {
		msg, err := readWire(sw)
		if err != nil {
			tb.Fatalf("switch: reading %s: %v", TypeName(wantType), err)
		}
		if msg[1] != wantType {
			tb.Fatalf("switch: got %s, want %s", TypeName(msg[1]), TypeName(wantType))
		}
		if reply != nil {
			if _, err := sw.Write(reply); err != nil {
				tb.Fatalf("switch: %v", err)
			}
		}
	}
	step(TypeHello, helloMsg(Version, 1, 1<<Version))
	step(TypeFeaturesReq, featuresReplyMsg(2, Features{DPID: 0xabc, NTables: 254}))
	step(TypeSetConfig, nil)
	if err := <-hs; err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	if c.DPID() != 0xabc {
		tb.Fatalf("dpid %x", c.DPID())
	}
	sw.SetDeadline(time.Time{})
	go io.Copy(io.Discard, sw)
	ps := &pipeSwitch{c: c, sw: sw, served: make(chan error, 1)}
	go func() { ps.served <- c.Serve(h) }()
	return ps
}

// wait returns Serve's result, failing the test if it does not end soon.
func (ps *pipeSwitch) wait(tb testing.TB, input []byte) error {
	tb.Helper()
	select {
	case err := <-ps.served:
		return err
	case <-time.After(5 * time.Second):
		ps.c.Close(errors.New("test timeout"))
		tb.Fatalf("Serve did not return within 5s of the input ending; input %x", input)
		return nil
	}
}

// expectMalformed walks a byte stream as Conn.Serve does and reports
// whether it contains a message that must close the connection with
// ErrMalformed (before the stream ends).
func expectMalformed(stream []byte, maxMsg int) (bool, string) {
	for len(stream) >= HeaderLen {
		h, err := ParseHeader(stream)
		if err != nil {
			return true, err.Error()
		}
		if int(h.Length) > maxMsg {
			return true, "too long"
		}
		if len(stream) < int(h.Length) {
			return false, "" // the stream ends inside a message
		}
		body := stream[HeaderLen:h.Length]
		stream = stream[h.Length:]
		if h.Version != Version {
			return true, "version"
		}
		var perr error
		switch h.Type {
		case TypeHello:
			return true, "hello"
		case TypePacketIn:
			_, perr = ParsePacketIn(body, false)
		case TypeError:
			_, perr = ParseError(h.Xid, body)
		case TypePortStatus:
			_, _, perr = ParsePortStatus(body)
		case TypeFlowRemoved:
			_, perr = ParseFlowRemoved(body)
		case TypeExperimenter:
			_, _, _, perr = ParseBundleControl(body)
		}
		if perr != nil {
			return true, perr.Error()
		}
	}
	return false, ""
}

// checkingHandler checks what Conn hands to handlers.
type checkingHandler struct {
	tb       testing.TB
	packetIn int
}

func (h *checkingHandler) PacketIn(c *Conn, p *PacketIn) {
	h.packetIn++
	if len(p.Data) > fuzzMaxMessage {
		h.tb.Errorf("packet-in data of %d bytes from a message of at most %d", len(p.Data), fuzzMaxMessage)
	}
	// Handlers may reply; the reply must not break the read loop.
	if po, err := AppendPacketOut(nil, c.NextXid(), p.BufferID, p.InPort, []flow.Action{flow.Output{Port: flow.PortFlood}}, p.Data); err == nil {
		c.Queue(po)
	}
}

func (h *checkingHandler) PortStatus(c *Conn, reason uint8, p Port) {
	if len(p.Name) > 16 || bytes.IndexByte([]byte(p.Name), 0) >= 0 {
		h.tb.Errorf("port name %q", p.Name)
	}
}

func (h *checkingHandler) FlowRemoved(c *Conn, r FlowRemoved) {}

// switchMessageSeeds are well-formed messages a switch sends.
func switchMessageSeeds() [][]byte {
	frame := testFrame()
	var fs []byte
	for _, f := range sampleFlows()[:6] {
		fs = append(fs, flowStatsFromFlowMod(must(AppendFlowMod(nil, 1, f, FlowModOpts{Command: FCAdd})), 1, 2, 3)...)
	}
	var gd []byte
	for _, g := range sampleGroups() {
		gd = append(gd, groupDescFromGroupMod(must(AppendGroupMod(nil, 1, GCAdd, g)))...)
	}
	var mc []byte
	for _, m := range sampleMeters() {
		mc = append(mc, meterConfigFromMeterMod(must(AppendMeterMod(nil, 1, GCAdd, m)))...)
	}
	var pd []byte
	for _, p := range samplePorts() {
		pd = appendPort(pd, p)
	}
	return [][]byte{
		packetInMsg(10, NoBuffer, 0, 0, 0, flow.M().InPort(3), frame),
		packetInMsg(11, 7, 1, 4, 0xc0ffee, flow.M().InPort(7).Set(flow.Reg0, 0x11).Set(flow.TunnelID, 0x99), frame[:20]),
		portStatusMsg(12, PortAdded, samplePorts()[0]),
		flowRemovedMsg(13, sampleFlows()[1], 0),
		AppendEcho(nil, TypeEchoRequest, 14, []byte("hi")),
		AppendEcho(nil, TypeEchoReply, 1, nil),
		AppendError(nil, 2, ErrBadRequest, ErrCodeBadLen, AppendSimple(nil, TypeBarrierReq, 2)),
		AppendSimple(nil, TypeBarrierReply, 2),
		roleReplyMsg(2, RoleMaster, 5),
		featuresReplyMsg(3, Features{DPID: 1}),
		AppendBundleControl(nil, 2, 9, BundleCommitReply, BundleAtomic),
		multipartReply(1, MPFlow, 1, fs), // REPLY_MORE
		multipartReply(1, MPFlow, 0, fs),
		multipartReply(2, MPGroupDesc, 0, gd),
		multipartReply(3, MPMeterConfig, 0, mc),
		multipartReply(4, MPPortDesc, 0, pd),
		AppendSimple(nil, TypeGetConfigReply, 5),
	}
}

// FuzzConn feeds arbitrary bytes from a switch, after a real handshake,
// through Conn.Serve. It must not panic, must not hang, and must close the
// connection with ErrMalformed exactly when the stream holds a malformed
// message.
func FuzzConn(f *testing.F) {
	seeds := switchMessageSeeds()
	var all []byte
	for _, s := range seeds {
		f.Add(s)
		all = append(all, s...)
	}
	f.Add(all)
	f.Add(append(append([]byte(nil), seeds[0]...), 4, 10, 0, 4, 0, 0, 0, 0)) // length 4
	f.Add([]byte{4, 10, 0xff, 0xff, 0, 0, 0, 0})                             // beyond MaxMessage
	f.Add(AppendHello(nil, 1))                                               // HELLO after negotiation
	f.Add(append([]byte{1}, seeds[4][1:]...))                                // OpenFlow 1.0 echo
	f.Add(seeds[0][:len(seeds[0])-1])                                        // truncated
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		h := &checkingHandler{tb: t}
		ps := handshakePipe(t, Config{MaxMessage: fuzzMaxMessage}, h)
		// Pending requests, so replies in the input reach deliver.
		mp := ps.c.register(1, true)
		single := ps.c.register(2, false)
		go func() {
			ps.sw.Write(data)
			ps.sw.Close()
		}()
		err := ps.wait(t, data)
		want, why := expectMalformed(data, fuzzMaxMessage)
		switch {
		case err == nil:
			t.Fatalf("Serve returned nil for input %x", data)
		case want && !errors.Is(err, ErrMalformed):
			t.Fatalf("input with a malformed message (%s) closed with %v, want ErrMalformed; input %x", why, err, data)
		case !want && errors.Is(err, ErrMalformed):
			t.Fatalf("well-formed input closed with %v; input %x", err, data)
		}
		if !errors.Is(ps.c.Err(), err) {
			t.Fatalf("Conn.Err() = %v, Serve returned %v", ps.c.Err(), err)
		}
		for _, p := range []*call{mp, single} {
			select {
			case <-p.done:
			default:
				t.Fatal("pending request not finished after the connection closed")
			}
		}
	})
}

// FuzzHandshake feeds arbitrary bytes as the switch's side of the
// handshake. It must end (successfully or not) without panicking or
// hanging, and never accept a peer that did not offer OpenFlow 1.3.
func FuzzHandshake(f *testing.F) {
	hello := helloMsg(Version, 1, 1<<Version)
	feat := featuresReplyMsg(2, Features{DPID: 7, NTables: 10})
	f.Add(append(append([]byte(nil), hello...), feat...))
	f.Add(append(append(append([]byte(nil), hello...), AppendEcho(nil, TypeEchoRequest, 9, nil)...), feat...))
	f.Add(append(append([]byte(nil), helloMsg(4, 1, 0)...), feat...))
	f.Add(append(append([]byte(nil), helloMsg(1, 1, 0)...), feat...))
	f.Add(append(append([]byte(nil), hello...), AppendError(nil, 2, ErrBadRequest, 0, nil)...))
	f.Add(append(append([]byte(nil), helloMsg(6, 1, 0x50)...), feat...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		ctrl, sw := net.Pipe()
		c := newConn(ctrl, Config{Logger: quietLogger, HandshakeTimeout: 3 * time.Second, MaxMessage: fuzzMaxMessage})
		go io.Copy(io.Discard, sw)
		go func() {
			sw.Write(data)
			sw.Close()
		}()
		done := make(chan error, 1)
		go func() { done <- c.Handshake() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			c.Close(nil)
			t.Fatalf("Handshake did not return; input %x", data)
		}
		c.Close(err)
		if err != nil {
			return
		}
		// Accepted: the first message must have been a HELLO that allows
		// 1.3, and a FEATURES_REPLY must have followed.
		h, herr := ParseHeader(data)
		if herr != nil || h.Type != TypeHello || int(h.Length) > len(data) {
			t.Fatalf("handshake accepted input without a HELLO: %x", data)
		}
		if ok, _ := HelloSupports13(h, data[HeaderLen:h.Length]); !ok {
			t.Fatalf("handshake accepted a HELLO without 1.3: %x", data)
		}
	})
}

// fuzzSeeds adds each byte slice as a seed.
func fuzzSeeds(f *testing.F, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
}

// checkErr fails unless err is nil, ErrUnknownField (when allowed) or
// wraps ErrMalformed.
func checkErr(t *testing.T, what string, err error, unknownOK bool) {
	t.Helper()
	if err == nil || errors.Is(err, ErrMalformed) || (unknownOK && err == ErrUnknownField) {
		return
	}
	t.Fatalf("%s: error %v neither ErrMalformed nor ErrUnknownField", what, err)
}

// encodable reports whether ofproto can re-encode a decoded action list.
func encodable(as []flow.Action) bool {
	for _, a := range as {
		switch a.(type) {
		case flow.Opaque, *flow.NAT, flow.NAT:
			return false
		}
		if ValidateAction(a) != nil {
			return false
		}
	}
	return true
}

func FuzzParseMatch(f *testing.F) {
	for _, fl := range sampleFlows() {
		f.Add(must(AppendMatch(nil, fl.Match)))
	}
	f.Add(must(AppendMatch(nil, nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n, err := ParseMatch(data)
		checkErr(t, "ParseMatch", err, true)
		if err != nil && err != ErrUnknownField {
			return
		}
		if n > len(data) || n%8 != 0 || n < 8 {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		again, n2, err := ParseMatch(must(AppendMatch(nil, m)))
		if err != nil || again.String() != m.String() {
			t.Fatalf("re-encoding %q decodes to %q (%v)", m, again, err)
		}
		if err == nil && n2 > n {
			t.Fatalf("re-encoding grew the match from %d to %d bytes", n, n2)
		}
	})
}

func FuzzParseActions(f *testing.F) {
	for _, fl := range sampleFlows() {
		f.Add(must(AppendActions(nil, fl.Actions)))
	}
	for _, g := range sampleGroups() {
		for _, b := range g.Buckets {
			f.Add(must(AppendActions(nil, b.Actions)))
		}
	}
	if b, err := hex.DecodeString(ovsNXMActions); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		as, err := ParseActions(data)
		checkErr(t, "ParseActions", err, true)
		if err != nil && err != ErrUnknownField {
			return
		}
		// Whatever was decoded, encoding it never panics: what the wire
		// cannot express is ErrUnencodable.
		enc, eerr := AppendActions(nil, as)
		if err != nil || !encodable(as) {
			if !errors.Is(eerr, ErrUnencodable) {
				t.Fatalf("encoding unencodable %s: %v; input %x", flow.ActionsString(as), eerr, data)
			}
			return
		}
		if eerr != nil {
			t.Fatalf("encoding %s: %v; input %x", flow.ActionsString(as), eerr, data)
		}
		again, err := ParseActions(enc)
		if err != nil || flow.ActionsString(again) != flow.ActionsString(as) {
			t.Fatalf("re-encoding %s decodes to %s (%v); input %x", flow.ActionsString(as), flow.ActionsString(again), err, data)
		}
	})
}

func FuzzParseFlowStats(f *testing.F) {
	var all []byte
	for _, fl := range sampleFlows() {
		e := flowStatsFromFlowMod(must(AppendFlowMod(nil, 1, fl, FlowModOpts{Command: FCAdd})), 1, 2, 3)
		f.Add(e)
		all = append(all, e...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		fss, err := ParseFlowStats(data)
		checkErr(t, "ParseFlowStats", err, false)
		if err != nil {
			return
		}
		for _, fs := range fss {
			fl := fs.Flow
			fm, eerr := AppendFlowMod(nil, 1, &fl, FlowModOpts{Command: FCAdd})
			if fs.Unknown || !encodable(fl.Actions) {
				// Never a panic; an error only for what cannot be encoded.
				if eerr != nil && !errors.Is(eerr, ErrUnencodable) {
					t.Fatalf("encoding unmodelled %s: %v; input %x", fl.String(), eerr, data)
				}
				continue
			}
			if eerr != nil {
				t.Fatalf("encoding %s: %v; input %x", fl.String(), eerr, data)
			}
			again, err := ParseFlowStats(flowStatsFromFlowMod(fm, fs.DurationSec, fs.Packets, fs.Bytes))
			if err != nil || len(again) != 1 || again[0].Flow.String() != fl.String() || again[0].Flow.Flags != fl.Flags {
				t.Fatalf("re-encoding %s decodes to %v (%v); input %x", fl.String(), again, err, data)
			}
		}
	})
}

func FuzzParsePacketIn(f *testing.F) {
	frame := testFrame()
	f.Add(msgBody(packetInMsg(1, NoBuffer, 0, 0, 0, flow.M().InPort(3), frame)), true)
	f.Add(msgBody(packetInMsg(1, 7, 1, 4, 0xc0ffee, flow.M().InPort(7).Set(flow.Reg0, 0x11).Set(flow.TunnelID, 0x99), frame)), false)
	f.Add(msgBody(packetInMsg(1, NoBuffer, 2, 9, 1, nil, nil)), true)
	f.Fuzz(func(t *testing.T, data []byte, full bool) {
		p, err := ParsePacketIn(data, full)
		checkErr(t, "ParsePacketIn", err, false)
		if err != nil {
			return
		}
		if len(p.Data) > len(data) || (len(p.Data) > 0 && &p.Data[len(p.Data)-1] != &data[len(data)-1]) {
			t.Fatalf("packet data is not the tail of the message")
		}
		if !full {
			return
		}
		// The fast path must agree with the full decode.
		fast, err := ParsePacketIn(data, false)
		if err != nil {
			t.Fatalf("fast path rejects what the full decode accepts: %v", err)
		}
		if fast.InPort != p.InPort || fast.BufferID != p.BufferID || fast.Cookie != p.Cookie || !bytes.Equal(fast.Data, p.Data) {
			t.Fatalf("fast %+v, full %+v", fast, p)
		}
		n := 0
		for _, x := range p.Match {
			if x.F == flow.InPort {
				n++
			}
		}
		// The fast path reads in_port only in the exact 4-byte form OVS
		// sends (a masked in_port with an all-ones mask is exact too, but
		// left to the full decode).
		if x, ok := p.Match.Get(flow.InPort); ok && n == 1 && x.Mask == 0 && p.InPort != 0 && uint64(p.InPort) != x.Value {
			t.Fatalf("fast-path in_port %d, match says %d", p.InPort, x.Value)
		}
		if p.InPort != 0 && n == 0 {
			t.Fatalf("fast-path in_port %d, but the match has none", p.InPort)
		}
	})
}

func FuzzParseGroupDesc(f *testing.F) {
	var all []byte
	for _, g := range sampleGroups() {
		e := groupDescFromGroupMod(must(AppendGroupMod(nil, 1, GCAdd, g)))
		f.Add(e)
		all = append(all, e...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		gs, err := ParseGroupDesc(data)
		checkErr(t, "ParseGroupDesc", err, false)
		if err != nil || len(data) > 60000 {
			return
		}
	groups:
		for _, g := range gs {
			for _, b := range g.Buckets {
				if !encodable(b.Actions) {
					if _, eerr := AppendGroupMod(nil, 1, GCAdd, &g); !errors.Is(eerr, ErrUnencodable) {
						t.Fatalf("encoding unencodable %s: %v; input %x", g.String(), eerr, data)
					}
					continue groups
				}
			}
			again, err := ParseGroupDesc(groupDescFromGroupMod(must(AppendGroupMod(nil, 1, GCAdd, &g))))
			if err != nil || len(again) != 1 || again[0].String() != g.String() {
				t.Fatalf("re-encoding %s decodes to %v (%v); input %x", g.String(), again, err, data)
			}
		}
	})
}

func FuzzParseMeterConfig(f *testing.F) {
	var all []byte
	for _, m := range sampleMeters() {
		e := meterConfigFromMeterMod(must(AppendMeterMod(nil, 1, GCAdd, m)))
		f.Add(e)
		all = append(all, e...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ParseMeterConfig(data)
		checkErr(t, "ParseMeterConfig", err, false)
		if err != nil {
			return
		}
		for _, m := range ms {
			if 16+16*len(m.Bands) > 65535 {
				continue
			}
			again, err := ParseMeterConfig(meterConfigFromMeterMod(must(AppendMeterMod(nil, 1, GCAdd, &m))))
			if err != nil || len(again) != 1 || fmt.Sprint(again[0]) != fmt.Sprint(m) {
				t.Fatalf("re-encoding %+v decodes to %+v (%v)", m, again, err)
			}
		}
	})
}

func FuzzParsePortDesc(f *testing.F) {
	var all []byte
	for _, p := range samplePorts() {
		e := appendPort(nil, p)
		f.Add(e)
		all = append(all, e...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePortDesc(data)
		checkErr(t, "ParsePortDesc", err, false)
		if err != nil {
			return
		}
		if len(ps) != len(data)/portLen {
			t.Fatalf("%d ports from %d bytes", len(ps), len(data))
		}
		for i, p := range ps {
			if len(p.Name) > 16 || bytes.IndexByte([]byte(p.Name), 0) >= 0 {
				t.Fatalf("port name %q", p.Name)
			}
			again, err := ParsePortDesc(appendPort(nil, p))
			if err != nil || len(again) != 1 || again[0] != p {
				t.Fatalf("port %d: re-encoding %+v decodes to %+v (%v)", i, p, again, err)
			}
		}
	})
}

// TestConnRejectsBadLengths: a header whose length is below the header
// size, or above Config.MaxMessage, closes the connection with
// ErrMalformed instead of stalling or allocating.
func TestConnRejectsBadLengths(t *testing.T) {
	for _, c := range []struct {
		name  string
		input []byte
	}{
		{"length 0", []byte{4, TypeEchoRequest, 0, 0, 0, 0, 0, 1}},
		{"length 4", []byte{4, TypeEchoRequest, 0, 4, 0, 0, 0, 1}},
		{"length 7", []byte{4, TypePacketIn, 0, 7, 0, 0, 0, 1}},
		{"above MaxMessage", []byte{4, TypePacketIn, 0x04, 0x01, 0, 0, 0, 1}},
		{"65535 above MaxMessage", []byte{4, TypeMultipartReply, 0xff, 0xff, 0, 0, 0, 1}},
		{"after a good message", append(AppendEcho(nil, TypeEchoRequest, 5, nil), 4, TypeEchoRequest, 0, 2, 0, 0, 0, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := handshakePipe(t, Config{MaxMessage: 1024}, nil)
			p := ps.c.register(99, false)
			// Write the header only and keep the pipe open: the
			// connection must close on the header alone, without
			// waiting for a body that never comes.
			go ps.sw.Write(c.input)
			err := ps.wait(t, c.input)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("closed with %v, want ErrMalformed", err)
			}
			if !errors.Is(ps.c.Err(), ErrMalformed) {
				t.Errorf("Conn.Err() = %v", ps.c.Err())
			}
			<-p.done
			if !errors.Is(p.err, ErrClosed) {
				t.Errorf("pending request finished with %v, want ErrClosed", p.err)
			}
			select {
			case <-ps.c.Done():
			default:
				t.Error("Done not closed")
			}
			ps.sw.Close()
		})
	}
	// The limit itself is allowed.
	ps := handshakePipe(t, Config{MaxMessage: 1024}, nil)
	msg := AppendEcho(nil, TypeEchoRequest, 5, make([]byte, 1024-HeaderLen))
	go func() {
		ps.sw.Write(msg)
		ps.sw.Close()
	}()
	if err := ps.wait(t, msg); errors.Is(err, ErrMalformed) {
		t.Fatalf("a message of exactly MaxMessage bytes closed the connection: %v", err)
	}
}

// TestConnServeDelivers checks the pipe harness itself: replies reach
// their requests and handlers see asynchronous messages.
func TestConnServeDelivers(t *testing.T) {
	h := &checkingHandler{tb: t}
	ps := handshakePipe(t, Config{}, h)
	defer ps.sw.Close()
	var fs []byte
	for _, f := range sampleFlows() {
		fs = append(fs, flowStatsFromFlowMod(must(AppendFlowMod(nil, 1, f, FlowModOpts{Command: FCAdd})), 1, 2, 3)...)
	}
	mp := ps.c.register(1, true)
	rr := ps.c.register(2, false)
	var in []byte
	in = append(in, multipartReply(1, MPFlow, 1, fs[:len(fs)/2/8*8])...) // not on an entry boundary: joined below
	in = append(in, packetInMsg(0, NoBuffer, 0, 0, 0, flow.M().InPort(3), testFrame())...)
	in = append(in, multipartReply(1, MPFlow, 0, fs[len(fs)/2/8*8:])...)
	in = append(in, roleReplyMsg(2, RoleMaster, 4)...)
	go ps.sw.Write(in)
	for _, p := range []*call{mp, rr} {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Fatal("reply not delivered")
		}
	}
	if mp.err != nil || rr.err != nil {
		t.Fatalf("errors %v %v", mp.err, rr.err)
	}
	got, err := ParseFlowStats(mp.reply)
	if err != nil || len(got) != len(sampleFlows()) {
		t.Fatalf("joined multipart reply: %d flows, %v", len(got), err)
	}
	if role, gen, err := ParseRoleReply(rr.reply); err != nil || role != RoleMaster || gen != 4 {
		t.Errorf("role reply %d %d %v", role, gen, err)
	}
	if h.packetIn != 1 {
		t.Errorf("%d packet-ins handled", h.packetIn)
	}
}
