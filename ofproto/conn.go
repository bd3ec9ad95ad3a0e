package ofproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Handler receives a switch's asynchronous messages. Methods run on the
// connection's read goroutine: they must not block, and any data they get
// is only valid during the call. Replies they Queue are flushed once the
// read buffer is drained, so a burst of packet-ins leaves in few writes.
type Handler interface {
	PacketIn(c *Conn, p *PacketIn)
	PortStatus(c *Conn, reason uint8, p Port)
	FlowRemoved(c *Conn, r FlowRemoved)
}

// Config tunes a connection.
type Config struct {
	// EchoInterval: after this long without input, send an ECHO_REQUEST.
	EchoInterval time.Duration
	// DeadAfter: after this long without input, the switch is declared
	// dead and the connection closed.
	DeadAfter time.Duration
	// HandshakeTimeout bounds HELLO and FEATURES.
	HandshakeTimeout time.Duration
	// MaxMessage caps accepted message sizes (at most 65535).
	MaxMessage int
	// MissSendLen is sent in SET_CONFIG.
	MissSendLen uint16
	// RequestTimeout bounds every request/reply exchange (role, barrier,
	// port description, flow/group/meter dumps, bundles, echo probes): a
	// switch that leaves a request unanswered this long, or stops between
	// two parts of a multipart reply this long, is closed. A multipart
	// reply must also end within multipartTimeoutFactor times it.
	RequestTimeout time.Duration
	// MaxMultipartBytes caps the joined body of one multipart reply, and
	// MaxMultipartParts its number of parts. A reply beyond either fails
	// its request with ErrMultipartTooBig and closes the connection.
	MaxMultipartBytes int
	MaxMultipartParts int
	// Budget, when set, is shared by every connection of a listener: the
	// multipart replies being joined on all of them together hold at most
	// its limit, so max_conns connections never add up to max_conns times
	// MaxMultipartBytes. A reply that would pass it fails like one over
	// MaxMultipartBytes (the connection is closed).
	Budget *Budget
	Logger *slog.Logger
}

// Budget bounds the bytes that the multipart replies of many connections
// hold together while they are being joined. Its zero value (or nil) is
// unbounded.
type Budget struct {
	Limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes (<= 0: unbounded).
func NewBudget(limit int64) *Budget { return &Budget{Limit: limit} }

// Used is the number of bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

func (b *Budget) reserve(n int) bool {
	if b == nil || b.Limit <= 0 || n <= 0 {
		return true
	}
	if b.used.Add(int64(n)) > b.Limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

func (b *Budget) release(n int) {
	if b != nil && b.Limit > 0 && n > 0 {
		b.used.Add(-int64(n))
	}
}

// Defaults of the multipart caps and the request timeout.
//
// 32 MiB holds the largest flow dump we expect from a real switch with
// room to spare: a flow takes about 100-300 bytes in a FLOW_STATS reply
// (56 fixed, the OXM match, the instructions), so 32 MiB is 110k-330k
// flows, above the 100k-flow tables measured in the lab; groups and
// meters are far fewer. The cap is per reply and per connection; what all
// of a listener's connections hold together is bounded by Config.Budget
// (openflow.multipart_budget), not by max_conns times it. A switch holding more
// needs openflow.max_multipart_bytes raised. It is one cap rather than one
// per type because flows dominate; PORT_DESC, whose size the protocol
// itself bounds, gets the tighter portDescMaxBytes.
//
// The parts cap stops an endless stream of empty REPLY_MORE parts (which
// never grows the byte count). 262,144 parts leaves room for switches
// that put a single flow in each part (some hardware switches do) up to
// the byte cap.
const (
	DefaultMaxMultipartBytes = 32 << 20
	DefaultMaxMultipartParts = 1 << 18
	DefaultRequestTimeout    = 30 * time.Second
	// portDescMaxBytes: OVS port numbers are 16 bits (at most 0xff00
	// ports) and ofp_port is 64 bytes, so a genuine PORT_DESC reply is
	// never larger than about 4 MiB.
	portDescMaxBytes = 0xff00 * portLen
	// multipartTimeoutFactor bounds a whole multipart exchange at this
	// many RequestTimeouts, however steadily the parts come.
	multipartTimeoutFactor = 10
)

// Read buffer sizes: a connection reads through a small buffer until its
// handshake completes, so a junk connection costs little; a switch then
// gets a buffer that holds a full-size message and a burst of packet-ins.
const (
	handshakeReadBuf = 4 << 10
	sessionReadBuf   = 64 << 10
	// handshakeMaxMessage caps the messages a peer may send before
	// FEATURES_REPLY (HELLO, FEATURES_REPLY, ECHO_REQUEST, ERROR: a few
	// dozen bytes from a real switch). Other messages are skipped without
	// being buffered.
	handshakeMaxMessage = 4 << 10
)

func (c *Config) defaults() {
	if c.EchoInterval <= 0 {
		c.EchoInterval = 5 * time.Second
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.EchoInterval
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxMessage <= 0 || c.MaxMessage > maxMsgLen {
		c.MaxMessage = maxMsgLen
	}
	if c.MissSendLen == 0 {
		c.MissSendLen = flow.MaxLenNoBuffer
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxMultipartBytes <= 0 {
		c.MaxMultipartBytes = DefaultMaxMultipartBytes
	}
	if c.MaxMultipartParts <= 0 {
		c.MaxMultipartParts = DefaultMaxMultipartParts
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrClosed is returned for requests on a closed connection.
var ErrClosed = errors.New("ofproto: connection closed")

// ErrVersion is returned when a peer cannot speak OpenFlow 1.3.
var ErrVersion = errors.New("ofproto: peer does not support OpenFlow 1.3")

// ErrTimeout is returned (wrapped) when a switch leaves a request
// unanswered for Config.RequestTimeout; the connection is closed.
var ErrTimeout = errors.New("ofproto: switch did not answer in time")

// ErrMultipartTooBig is returned (wrapped) when a multipart reply exceeds
// its byte or part cap; the connection is closed.
var ErrMultipartTooBig = errors.New("ofproto: multipart reply too large")

type call struct {
	what      string // request type, for errors
	multipart bool
	maxBytes  int // cap of the joined multipart body
	nparts    int
	progress  atomic.Int64 // unix nanos of the last multipart part
	parts     []byte
	reserved  int // bytes of parts' capacity taken from Config.Budget
	done      chan struct{}
	reply     []byte
	err       error
}

// batchWatch collects errors for a range of xids (a batch of flow-mods).
type batchWatch struct {
	lo, hi uint32
	errs   []*OFError
}

// Conn is one OpenFlow 1.3 connection to a switch.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	cfg Config
	log *slog.Logger

	wmu  sync.Mutex
	wbuf []byte

	xid atomic.Uint32

	pmu     sync.Mutex
	pending map[uint32]*call
	watches []*batchWatch

	Features Features
	handler  Handler

	lastRx    atomic.Int64
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	hdr  [HeaderLen]byte
	body []byte
}

// DPID is the switch's datapath id.
func (c *Conn) DPID() uint64 { return c.Features.DPID }

// Logger returns the connection logger (it carries the dpid).
func (c *Conn) Logger() *slog.Logger { return c.log }

// RemoteAddr is the switch's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed when the connection ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.closeErr
	default:
		return nil
	}
}

// NextXid allocates a transaction id.
func (c *Conn) NextXid() uint32 {
	for {
		if x := c.xid.Add(1); x != 0 {
			return x
		}
	}
}

// newConn wraps nc; Handshake must be called next.
func newConn(nc net.Conn, cfg Config) *Conn {
	cfg.defaults()
	c := &Conn{nc: nc, br: bufio.NewReaderSize(nc, handshakeReadBuf), cfg: cfg,
		pending: map[uint32]*call{}, done: make(chan struct{}), log: cfg.Logger.With("remote", nc.RemoteAddr().String())}
	c.lastRx.Store(time.Now().UnixNano())
	return c
}

// Close ends the connection with the given reason.
func (c *Conn) Close(reason error) {
	c.closeOnce.Do(func() {
		if reason == nil {
			reason = ErrClosed
		}
		c.closeErr = reason
		close(c.done)
		c.nc.Close()
		c.pmu.Lock()
		for x, p := range c.pending {
			p.err = fmt.Errorf("%w: %v", ErrClosed, reason)
			close(p.done)
			delete(c.pending, x)
		}
		c.pmu.Unlock()
	})
}

// readMsg reads one message into c.body (reused between calls).
func (c *Conn) readMsg() (Header, []byte, error) {
	h, err := c.readHeader()
	if err != nil {
		return h, nil, err
	}
	return c.readBody(h)
}

func (c *Conn) readHeader() (Header, error) {
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		return Header{}, err
	}
	h, err := ParseHeader(c.hdr[:])
	if err != nil {
		return h, err
	}
	if int(h.Length) > c.cfg.MaxMessage {
		return h, malformed("%s of %d bytes exceeds limit %d", TypeName(h.Type), h.Length, c.cfg.MaxMessage)
	}
	return h, nil
}

// readBody reads the body of the message whose header is h. The body
// buffer grows with the largest message seen, up to MaxMessage.
func (c *Conn) readBody(h Header) (Header, []byte, error) {
	n := int(h.Length) - HeaderLen
	if cap(c.body) < n {
		c.body = make([]byte, n, max(n, 512))
	}
	c.body = c.body[:n]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return h, nil, err
	}
	return h, c.body, nil
}

// readHandshakeMsg reads one message during the handshake: the messages
// the handshake uses must be small, and any other is skipped unbuffered,
// so a peer that never completes the handshake costs only handshakeReadBuf.
func (c *Conn) readHandshakeMsg() (Header, []byte, error) {
	for {
		h, err := c.readHeader()
		if err != nil {
			return h, nil, err
		}
		switch h.Type {
		case TypeHello, TypeFeaturesReply, TypeEchoRequest, TypeError:
			if int(h.Length) > handshakeMaxMessage {
				return h, nil, malformed("%s of %d bytes during the handshake exceeds limit %d", TypeName(h.Type), h.Length, handshakeMaxMessage)
			}
			return c.readBody(h)
		}
		if _, err := c.br.Discard(int(h.Length) - HeaderLen); err != nil {
			return h, nil, err
		}
	}
}

// growReader swaps the handshake's small read buffer for the session's.
func (c *Conn) growReader() {
	if c.br.Size() >= sessionReadBuf {
		return
	}
	var r io.Reader = c.nc
	if n := c.br.Buffered(); n > 0 {
		rest, _ := c.br.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), c.nc)
	}
	c.br = bufio.NewReaderSize(r, sessionReadBuf)
}

// Queue appends a message to the write buffer without flushing; the read
// loop flushes once its input is drained. Use from Handler methods.
func (c *Conn) Queue(msg []byte) {
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, msg...)
	var err error
	if len(c.wbuf) >= 64<<10 {
		err = c.flushLocked()
	}
	c.wmu.Unlock()
	if err != nil {
		c.Close(err)
	}
}

// Send writes a message and flushes.
func (c *Conn) Send(msg []byte) error {
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, msg...)
	err := c.flushLocked()
	c.wmu.Unlock()
	if err != nil {
		c.Close(err)
	}
	return err
}

// Flush writes out queued messages.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	err := c.flushLocked()
	c.wmu.Unlock()
	if err != nil {
		c.Close(err)
	}
	return err
}

func (c *Conn) flushLocked() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	select {
	case <-c.done:
		c.wbuf = c.wbuf[:0]
		return ErrClosed
	default:
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.cfg.DeadAfter))
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	if err != nil {
		return fmt.Errorf("ofproto: write to switch: %w", err)
	}
	return nil
}

// writeBig writes a large pre-encoded buffer after anything queued.
func (c *Conn) writeBig(b []byte) error {
	c.wmu.Lock()
	err := c.flushLocked()
	if err == nil {
		c.nc.SetWriteDeadline(time.Now().Add(c.cfg.DeadAfter + time.Duration(len(b)/(1<<20))*time.Second))
		_, err = c.nc.Write(b)
		if err != nil {
			err = fmt.Errorf("ofproto: write to switch: %w", err)
		}
	}
	c.wmu.Unlock()
	if err != nil {
		c.Close(err)
	}
	return err
}

// register sets up a pending call for xid.
func (c *Conn) register(xid uint32, multipart bool) *call {
	return c.registerCall(xid, &call{what: "request", multipart: multipart, maxBytes: c.cfg.MaxMultipartBytes})
}

func (c *Conn) registerCall(xid uint32, p *call) *call {
	p.done = make(chan struct{})
	p.progress.Store(time.Now().UnixNano())
	c.pmu.Lock()
	c.pending[xid] = p
	c.pmu.Unlock()
	return p
}

func (c *Conn) unregister(xid uint32) {
	c.pmu.Lock()
	delete(c.pending, xid)
	c.pmu.Unlock()
}

// wait waits for the reply to xid. The caller's ctx ending abandons the
// request; the switch not answering within RequestTimeout (for a
// multipart reply: not sending its next part) closes the connection, since
// a switch that ignores requests cannot be managed.
func (c *Conn) wait(ctx context.Context, xid uint32, p *call) ([]byte, error) {
	timeout := c.cfg.RequestTimeout
	start := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return p.reply, p.err
		case <-ctx.Done():
			c.unregister(xid)
			return nil, fmt.Errorf("ofproto: waiting for reply to xid %d: %w", xid, ctx.Err())
		case <-c.done:
			c.unregister(xid)
			return nil, fmt.Errorf("%w: %v", ErrClosed, c.closeErr)
		case now := <-t.C:
			// A multipart reply still coming is given more time, part by
			// part, up to multipartTimeoutFactor timeouts in all.
			idle := now.Sub(time.Unix(0, p.progress.Load()))
			if p.multipart && idle < timeout && now.Sub(start) < multipartTimeoutFactor*timeout {
				t.Reset(timeout - idle)
				continue
			}
			c.unregister(xid)
			select {
			case <-p.done: // answered meanwhile
				return p.reply, p.err
			default:
			}
			err := fmt.Errorf("%w: no reply to %s (xid %d) after %s", ErrTimeout, p.what, xid, now.Sub(start).Round(time.Millisecond))
			c.log.Warn("closing connection: switch left a request unanswered", "request", p.what, "xid", xid, "timeout", timeout)
			c.Close(err)
			return nil, err
		}
	}
}

// RoundTrip sends msg (whose xid is xid) and waits for the reply with the
// same xid. For multipart requests the reply bodies are concatenated
// without their multipart headers. An OFPT_ERROR reply becomes *OFError.
// A switch that does not answer within Config.RequestTimeout is closed
// and the error wraps ErrTimeout.
func (c *Conn) RoundTrip(ctx context.Context, xid uint32, msg []byte, multipart bool) ([]byte, error) {
	what := "request"
	if len(msg) >= HeaderLen {
		what = TypeName(msg[1])
	}
	return c.roundTrip(ctx, xid, msg, &call{what: what, multipart: multipart, maxBytes: c.cfg.MaxMultipartBytes})
}

func (c *Conn) roundTrip(ctx context.Context, xid uint32, msg []byte, p *call) ([]byte, error) {
	c.registerCall(xid, p)
	if err := c.Send(msg); err != nil {
		c.unregister(xid)
		return nil, err
	}
	b, err := c.wait(ctx, xid, p)
	// The call is out of pending now (wait returned): nothing grows its
	// parts any more, and the budget gets its bytes back. The caller
	// decodes the reply and drops it.
	c.pmu.Lock()
	c.cfg.Budget.release(p.reserved)
	p.reserved = 0
	c.pmu.Unlock()
	return b, err
}

// Barrier sends a BARRIER_REQUEST and waits for its reply.
func (c *Conn) Barrier(ctx context.Context) error {
	xid := c.NextXid()
	_, err := c.RoundTrip(ctx, xid, AppendSimple(nil, TypeBarrierReq, xid), false)
	return err
}

// Echo sends an ECHO_REQUEST and waits for its reply: a liveness probe.
func (c *Conn) Echo(ctx context.Context) error {
	xid := c.NextXid()
	_, err := c.RoundTrip(ctx, xid, AppendEcho(nil, TypeEchoRequest, xid, nil), false)
	return err
}

// Multipart runs a multipart request and returns the joined reply body,
// at most Config.MaxMultipartBytes (less for PORT_DESC) in at most
// Config.MaxMultipartParts parts.
func (c *Conn) Multipart(ctx context.Context, mpType uint16, body []byte) ([]byte, error) {
	xid := c.NextXid()
	limit := c.cfg.MaxMultipartBytes
	if mpType == MPPortDesc {
		limit = min(limit, portDescMaxBytes)
	}
	msg, err := AppendMultipartReq(nil, xid, mpType, body)
	if err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, xid, msg,
		&call{what: fmt.Sprintf("MULTIPART_REQUEST type %d", mpType), multipart: true, maxBytes: limit})
}

// DumpFlows returns every flow whose cookie matches cookie under mask.
func (c *Conn) DumpFlows(ctx context.Context, cookie, mask uint64) ([]FlowStats, error) {
	b, err := c.Multipart(ctx, MPFlow, FlowStatsRequestBody(TableAll, cookie, mask))
	if err != nil {
		return nil, err
	}
	return ParseFlowStats(b)
}

// DumpGroups returns every group.
func (c *Conn) DumpGroups(ctx context.Context) ([]flow.Group, error) {
	b, err := c.Multipart(ctx, MPGroupDesc, nil)
	if err != nil {
		return nil, err
	}
	return ParseGroupDesc(b)
}

// DumpMeters returns every meter.
func (c *Conn) DumpMeters(ctx context.Context) ([]flow.Meter, error) {
	b, err := c.Multipart(ctx, MPMeterConfig, MeterConfigRequestBody())
	if err != nil {
		return nil, err
	}
	return ParseMeterConfig(b)
}

// PortDesc returns the switch's ports.
func (c *Conn) PortDesc(ctx context.Context) ([]Port, error) {
	b, err := c.Multipart(ctx, MPPortDesc, nil)
	if err != nil {
		return nil, err
	}
	return ParsePortDesc(b)
}

// SetRole sends a ROLE_REQUEST and returns the switch's answer. A stale
// generation comes back as *OFError (ROLE_REQUEST_FAILED/STALE).
func (c *Conn) SetRole(ctx context.Context, role uint32, generation uint64) (uint32, uint64, error) {
	xid := c.NextXid()
	b, err := c.RoundTrip(ctx, xid, AppendRoleRequest(nil, xid, role, generation), false)
	if err != nil {
		return 0, 0, err
	}
	return ParseRoleReply(b)
}

// deliver hands a reply to its pending call. It reports whether one
// waited. A multipart reply beyond its caps fails its call and returns
// an error wrapping ErrMultipartTooBig: the read loop then closes the
// connection.
func (c *Conn) deliver(h Header, body []byte, ofErr *OFError) (bool, error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	p, ok := c.pending[h.Xid]
	if !ok {
		if ofErr != nil {
			for _, w := range c.watches {
				if h.Xid-w.lo <= w.hi-w.lo {
					w.errs = append(w.errs, ofErr)
					return true, nil
				}
			}
		}
		return false, nil
	}
	var fatal error
	if ofErr != nil {
		p.err = ofErr
	} else if p.multipart {
		if len(body) < 8 {
			p.err = malformed("short multipart reply")
		} else if n := len(p.parts) + len(body) - 8; n > p.maxBytes || p.nparts >= c.cfg.MaxMultipartParts {
			fatal = fmt.Errorf("%w: reply to %s (xid %d) passed %d bytes or %d parts (caps %d bytes, %d parts)",
				ErrMultipartTooBig, p.what, h.Xid, n, p.nparts+1, p.maxBytes, c.cfg.MaxMultipartParts)
			c.cfg.Budget.release(p.reserved)
			p.err, p.parts, p.reserved = fatal, nil, 0
		} else {
			p.nparts++
			if n > cap(p.parts) {
				// Grow by doubling, but never past the cap, and only as far
				// as the listener's budget allows.
				size := min(max(2*cap(p.parts), n, 4096), p.maxBytes)
				if !c.cfg.Budget.reserve(size - p.reserved) {
					fatal = fmt.Errorf("%w: reply to %s (xid %d) needs %d bytes, beyond the listener's multipart budget (%d of %d bytes in use)",
						ErrMultipartTooBig, p.what, h.Xid, size, c.cfg.Budget.Used(), c.cfg.Budget.Limit)
					c.cfg.Budget.release(p.reserved)
					p.err, p.parts, p.reserved = fatal, nil, 0
					delete(c.pending, h.Xid)
					close(p.done)
					return true, fatal
				}
				p.reserved = size
				p.parts = append(make([]byte, 0, size), p.parts...)
			}
			p.parts = append(p.parts, body[8:]...)
			if be.Uint16(body[2:])&1 != 0 { // OFPMPF_REPLY_MORE
				p.progress.Store(time.Now().UnixNano())
				return true, nil
			}
			p.reply = p.parts
		}
	} else {
		p.reply = append([]byte(nil), body...)
	}
	delete(c.pending, h.Xid)
	close(p.done)
	return true, fatal
}

// Handshake performs HELLO negotiation and FEATURES, then SET_CONFIG.
func (c *Conn) Handshake() error {
	deadline := time.Now().Add(c.cfg.HandshakeTimeout)
	c.nc.SetReadDeadline(deadline)
	defer c.nc.SetReadDeadline(time.Time{})
	if err := c.Send(AppendHello(nil, c.NextXid())); err != nil {
		return err
	}
	h, body, err := c.readHandshakeMsg()
	if err != nil {
		return fmt.Errorf("ofproto: reading HELLO: %w", err)
	}
	if h.Type != TypeHello {
		return malformed("expected HELLO, got %s", TypeName(h.Type))
	}
	ok, err := HelloSupports13(h, body)
	if err != nil {
		return err
	}
	if !ok {
		msg := fmt.Sprintf("nimbus speaks OpenFlow 1.3 only; peer offered version 0x%02x", h.Version)
		c.Send(AppendError(nil, h.Xid, ErrHelloFailed, ErrCodeIncompatible, []byte(msg)))
		return fmt.Errorf("%w (offered version 0x%02x)", ErrVersion, h.Version)
	}
	fx := c.NextXid()
	if err := c.Send(AppendSimple(nil, TypeFeaturesReq, fx)); err != nil {
		return err
	}
	for {
		h, body, err = c.readHandshakeMsg()
		if err != nil {
			return fmt.Errorf("ofproto: reading FEATURES_REPLY: %w", err)
		}
		if h.Version != Version {
			return malformed("version 0x%02x after negotiating 1.3", h.Version)
		}
		switch h.Type {
		case TypeFeaturesReply:
			f, err := ParseFeatures(body)
			if err != nil {
				return err
			}
			c.Features = f
			c.log = c.log.With("dpid", DPIDString(f.DPID))
			c.growReader()
			return c.Send(AppendSetConfig(nil, c.NextXid(), 0, c.cfg.MissSendLen))
		case TypeEchoRequest:
			c.Send(AppendEcho(nil, TypeEchoReply, h.Xid, body))
		case TypeError:
			e, _ := ParseError(h.Xid, body)
			return fmt.Errorf("ofproto: switch refused FEATURES_REQUEST: %v", e)
		}
	}
}

// DPIDString formats a datapath id as OVS does.
func DPIDString(d uint64) string { return fmt.Sprintf("%016x", d) }

// Serve runs the read loop until the connection fails. h may be nil. A
// panic in the loop or a handler closes this connection only (see
// recovered).
func (c *Conn) Serve(h Handler) (served error) {
	defer func() {
		if v := recover(); v != nil {
			served = c.recovered(v)
		}
	}()
	c.handler = h
	go c.keepalive()
	var err error
	var n uint64
	for {
		var hd Header
		var body []byte
		hd, body, err = c.readMsg()
		if err != nil {
			break
		}
		if hd.Version != Version {
			err = malformed("version 0x%02x after negotiating 1.3", hd.Version)
			break
		}
		if err = c.dispatch(hd, body); err != nil {
			break
		}
		// Keepalive needs only a coarse clock: note input once per burst
		// (and every 1024 messages, for a switch that never pauses).
		n++
		if drained := c.br.Buffered() == 0; drained || n&1023 == 0 {
			c.lastRx.Store(time.Now().UnixNano())
			if drained {
				if err = c.Flush(); err != nil {
					break
				}
			}
		}
	}
	select {
	case <-c.done:
		err = c.closeErr
	default:
	}
	if errors.Is(err, ErrMalformed) {
		c.log.Warn("closing connection: malformed message from switch", "err", err)
	}
	c.Close(err)
	return err
}

// ErrPanic is wrapped by the close reason of a connection whose read loop
// or handler panicked.
var ErrPanic = errors.New("ofproto: panic while serving switch")

var panics atomic.Uint64

// Panics counts connections closed by a recovered panic (a metric).
func Panics() uint64 { return panics.Load() }

// recovered is the last line of defence: a bug reached by one switch's
// input closes that switch's connection, not the process.
func (c *Conn) recovered(v any) error {
	panics.Add(1)
	err := fmt.Errorf("%w: %v", ErrPanic, v)
	c.log.Error("panic while serving switch; closing its connection", "panic", v, "stack", string(debug.Stack()))
	c.Close(err)
	return err
}

func (c *Conn) dispatch(h Header, body []byte) error {
	switch h.Type {
	case TypePacketIn:
		p, err := ParsePacketIn(body, false)
		if err != nil {
			return err
		}
		if c.handler != nil {
			c.handler.PacketIn(c, &p)
		}
	case TypeEchoRequest:
		c.Queue(AppendEcho(nil, TypeEchoReply, h.Xid, body))
	case TypeEchoReply:
		if _, err := c.deliver(h, body, nil); err != nil {
			return err
		}
	case TypeError:
		e, err := ParseError(h.Xid, body)
		if err != nil {
			return err
		}
		if ok, _ := c.deliver(h, body, e); !ok {
			c.log.Warn("switch reported an error for an untracked request", "err", e)
		}
	case TypePortStatus:
		r, p, err := ParsePortStatus(body)
		if err != nil {
			return err
		}
		if c.handler != nil {
			c.handler.PortStatus(c, r, p)
		}
	case TypeFlowRemoved:
		r, err := ParseFlowRemoved(body)
		if err != nil {
			return err
		}
		if c.handler != nil {
			c.handler.FlowRemoved(c, r)
		}
	case TypeMultipartReply, TypeBarrierReply, TypeRoleReply, TypeFeaturesReply,
		TypeGetConfigReply, TypeGetAsyncReply, TypeExperimenter:
		if h.Type == TypeExperimenter {
			if _, _, _, err := ParseBundleControl(body); err != nil {
				return err
			}
		}
		ok, err := c.deliver(h, body, nil)
		if err != nil {
			c.log.Warn("closing connection: multipart reply over its cap", "err", err)
			return err
		}
		if !ok {
			c.log.Debug("unsolicited reply", "type", TypeName(h.Type), "xid", h.Xid)
		}
	case TypeHello:
		return malformed("HELLO after negotiation")
	default:
		c.log.Debug("ignoring message", "type", TypeName(h.Type))
	}
	return nil
}

func (c *Conn) keepalive() {
	t := time.NewTicker(c.cfg.EchoInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			idle := now.Sub(time.Unix(0, c.lastRx.Load()))
			if idle >= c.cfg.DeadAfter {
				c.log.Warn("switch is silent, closing connection", "idle", idle.Round(time.Millisecond))
				c.Close(fmt.Errorf("ofproto: no message from switch for %s", idle.Round(time.Millisecond)))
				return
			}
			if idle >= c.cfg.EchoInterval {
				c.Send(AppendEcho(nil, TypeEchoRequest, c.NextXid(), nil))
			}
		}
	}
}
