package switches

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// The OpenFlow server with the apps loaded, fed by a scripted switch over
// net.Pipe with full-size (65535-byte) messages allowed. Run the fuzz
// target with
//
//	go test -run '^$' -fuzz '^FuzzSwitchConn$' -fuzztime 2000x ./switches
//
// (scripts/fuzz.sh runs every target).

var (
	quiet       = slog.New(slog.DiscardHandler)
	fuzzMetrics = metrics.New()
)

const maxFullMessage = 0xffff

// session records how each connection ended.
type session struct {
	*Manager
	ended chan error
}

func (s *session) OnDisconnect(c *ofproto.Conn, err error) {
	s.Manager.OnDisconnect(c, err)
	s.ended <- err
}

// wireMsg builds an OpenFlow 1.3 message.
func wireMsg(typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = ofproto.Version, typ
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return append(b, body...)
}

// readMsg reads one whole message.
func readMsg(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n < 8 {
		return nil, errors.New("bad length")
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[8:])
	return msg, err
}

// packetIn is a PACKET_IN with an empty match: 34 bytes plus the frame,
// so a 65,501-byte frame makes a full-size message.
func packetIn(bufferID uint32, cookie uint64, frame []byte) []byte {
	body := make([]byte, 16, 26+len(frame))
	binary.BigEndian.PutUint32(body, bufferID)
	binary.BigEndian.PutUint16(body[4:], uint16(min(len(frame), 0xffff)))
	body[6] = 0 // OFPR_NO_MATCH
	binary.BigEndian.PutUint64(body[8:], cookie)
	body = append(body, 0, 1, 0, 4, 0, 0, 0, 0) // OXM match, no fields, padded
	body = append(body, 0, 0)
	return wireMsg(ofproto.TypePacketIn, 0, append(body, frame...))
}

// broadcastFrame is an Ethernet broadcast of n bytes from a unicast MAC:
// the learning app floods it back out.
func broadcastFrame(n int) []byte {
	f := make([]byte, n)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	return f
}

// maxFrame is the largest frame a packet-in with an empty match carries.
const maxFrame = maxFullMessage - 34

// switchSide is the scripted switch of one connection.
type switchSide struct {
	nc    net.Conn
	sess  *session
	stop  context.CancelFunc
	msgs  chan []byte // what the controller sent after the handshake
	ended error
}

// connect starts a Manager with the learning and isolation apps behind an
// ofproto.Server allowing full-size messages, connects a switch to it over
// net.Pipe and completes the handshake.
func connect(tb testing.TB, dpid uint64) *switchSide {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	apps := []app.App{learning.New(learning.Config{Logger: quiet}), isolation.New(isolation.Config{})}
	m := New(ctx, Config{Apps: apps, Metrics: fuzzMetrics, Logger: quiet})
	sess := &session{Manager: m, ended: make(chan error, 1)}
	srv := &ofproto.Server{Session: sess, Logger: quiet,
		Conn: ofproto.Config{MaxMessage: maxFullMessage, EchoInterval: time.Hour}}
	ctrl, nc := net.Pipe()
	go srv.ServeConn(ctx, ctrl)
	s := &switchSide{nc: nc, sess: sess, stop: cancel, msgs: make(chan []byte, 64)}
	tb.Cleanup(s.close)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	step := func(want uint8, reply []byte) {
		tb.Helper()
		msg, err := readMsg(nc)
		if err != nil || msg[1] != want {
			tb.Fatalf("handshake: want %s, got %x (%v)", ofproto.TypeName(want), msg, err)
		}
		if reply != nil {
			if _, err := nc.Write(reply); err != nil {
				tb.Fatalf("handshake: %v", err)
			}
		}
	}
	feat := make([]byte, 24)
	binary.BigEndian.PutUint64(feat, dpid)
	feat[12] = 254
	step(ofproto.TypeHello, ofproto.AppendHello(nil, 1))
	step(ofproto.TypeFeaturesReq, wireMsg(ofproto.TypeFeaturesReply, 2, feat))
	step(ofproto.TypeSetConfig, nil)
	nc.SetDeadline(time.Time{})
	// Keep reading (net.Pipe is unbuffered: an unread reply would block
	// the controller's read loop).
	go func() {
		defer close(s.msgs)
		for {
			msg, err := readMsg(nc)
			if err != nil {
				return
			}
			select {
			case s.msgs <- msg:
			default: // a test not looking: drop
			}
		}
	}()
	return s
}

func (s *switchSide) close() {
	s.nc.Close()
	s.stop()
}

// end closes the switch side and returns why the controller's side
// ended.
func (s *switchSide) end(tb testing.TB) error {
	tb.Helper()
	s.nc.Close()
	select {
	case err := <-s.sess.ended:
		return err
	case <-time.After(10 * time.Second):
		tb.Fatal("the controller did not notice the switch closing within 10s")
		return nil
	}
}

// echo sends an ECHO_REQUEST and returns the controller's messages up to
// its reply: proof the connection is still served.
func (s *switchSide) echo(tb testing.TB, xid uint32) [][]byte {
	tb.Helper()
	go s.nc.Write(wireMsg(ofproto.TypeEchoRequest, xid, nil))
	var got [][]byte
	timeout := time.After(10 * time.Second)
	for {
		select {
		case msg, ok := <-s.msgs:
			if !ok {
				tb.Fatal("the controller closed the connection instead of answering an echo")
			}
			if msg[1] == ofproto.TypeEchoReply && binary.BigEndian.Uint32(msg[4:]) == xid {
				return got
			}
			got = append(got, msg)
		case <-timeout:
			tb.Fatal("no echo reply within 10s")
		}
	}
}

// A packet-in with an empty match and a 65,501-byte frame, flooded back by
// the learning app, used to panic the read goroutine (and with it the
// whole controller) when the packet-out would not fit one message. Now
// the frame is dropped and counted, and the switch stays connected; with
// a buffer id it goes back out by the buffer.
func TestFullSizePacketInFloodedBackByLearning(t *testing.T) {
	s := connect(t, 0x77)
	before := learning.Dropped()
	panics := ofproto.Panics()
	if _, err := s.nc.Write(packetIn(ofproto.NoBuffer, 0, broadcastFrame(maxFrame))); err != nil {
		t.Fatal(err)
	}
	for _, msg := range s.echo(t, 1000) {
		if msg[1] == ofproto.TypePacketOut {
			t.Errorf("packet-out of %d bytes sent for an unbuffered %d-byte frame", len(msg), maxFrame)
		}
	}
	if learning.Dropped() != before+1 {
		t.Errorf("learning dropped %d frames, want 1", learning.Dropped()-before)
	}

	// Buffered: released by buffer id, without the data.
	if _, err := s.nc.Write(packetIn(42, 0, broadcastFrame(maxFrame))); err != nil {
		t.Fatal(err)
	}
	var outs [][]byte
	for _, msg := range s.echo(t, 1001) {
		if msg[1] == ofproto.TypePacketOut {
			outs = append(outs, msg)
		}
	}
	if len(outs) != 1 || binary.BigEndian.Uint32(outs[0][8:]) != 42 || len(outs[0]) != 40 {
		t.Errorf("buffered full-size frame: packet-outs %x, want one releasing buffer 42 with no data", outs)
	}
	if err := s.end(t); errors.Is(err, ofproto.ErrPanic) || ofproto.Panics() != panics {
		t.Fatalf("connection ended by a panic: %v", err)
	}
}

// fuzzSeeds are inputs a switch may send after the handshake.
func fuzzSeeds() [][]byte {
	small := broadcastFrame(60)
	uni := broadcastFrame(60)
	copy(uni, []byte{0x02, 0, 0, 0, 0, 2})
	portStatus := make([]byte, 8+64)
	binary.BigEndian.PutUint32(portStatus[8:], 3)
	copy(portStatus[8+16:], "tap0")
	return [][]byte{
		packetIn(ofproto.NoBuffer, 0, broadcastFrame(maxFrame)), // finding 1
		packetIn(7, 0, broadcastFrame(maxFrame)),
		packetIn(ofproto.NoBuffer, 0, broadcastFrame(maxFrame-100)),
		packetIn(ofproto.NoBuffer, 0, small),
		append(packetIn(ofproto.NoBuffer, 0, small), packetIn(ofproto.NoBuffer, 0, uni)...),
		packetIn(ofproto.NoBuffer, pipeline.Cookie(pipeline.AppIsolation, 1), small),
		packetIn(ofproto.NoBuffer, pipeline.Cookie(pipeline.AppTopology, 1), small),
		packetIn(ofproto.NoBuffer, pipeline.Cookie(pipeline.AppPipeline, 0), small),
		wireMsg(ofproto.TypePortStatus, 0, portStatus),
		wireMsg(ofproto.TypeEchoRequest, 5, make([]byte, maxFullMessage-8)),
	}
}

// grow pads the first message of data with zero bytes up to 65536-n bytes
// (fixing its length; n == 0 leaves data alone), so that small inputs
// reach full-size messages and small n explore the sizes just below the
// limit.
func grow(data []byte, n uint16) []byte {
	if n == 0 || len(data) < 8 {
		return data
	}
	l := int(binary.BigEndian.Uint16(data[2:]))
	nl := maxFullMessage + 1 - int(n)
	if l < 8 || l > len(data) || nl <= l {
		return data
	}
	out := make([]byte, 0, len(data)+nl-l)
	out = append(out, data[:l]...)
	out = append(out, make([]byte, nl-l)...)
	binary.BigEndian.PutUint16(out[2:], uint16(nl))
	return append(out, data[l:]...)
}

// FuzzSwitchConn feeds arbitrary bytes from a switch, after a real
// handshake, to the OpenFlow server with the learning and isolation apps
// loaded and full-size messages allowed. The second argument pads the
// first message up to 65536-n bytes (see grow), so mutations of small
// inputs reach the 65535-byte limit. Whatever the input, the connection must end
// only because the input did (or was malformed): never by a panic,
// recovered or not.
func FuzzSwitchConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, uint16(0))
	}
	// Finding 1 again, from a 94-byte input.
	f.Add(packetIn(ofproto.NoBuffer, 0, broadcastFrame(60)), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, n uint16) {
		if len(data) > 4*maxFullMessage {
			return
		}
		data = grow(data, n)
		panics := ofproto.Panics()
		s := connect(t, 0xf022)
		s.nc.Write(data) // fails once the controller closes on a malformed message
		err := s.end(t)
		if errors.Is(err, ofproto.ErrPanic) || ofproto.Panics() != panics {
			t.Fatalf("serving the switch panicked: %v", err)
		}
	})
}
