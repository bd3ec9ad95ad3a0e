package ofproto

import (
	"bufio"
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
	Logger      *slog.Logger
}

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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrClosed is returned for requests on a closed connection.
var ErrClosed = errors.New("ofproto: connection closed")

// ErrVersion is returned when a peer cannot speak OpenFlow 1.3.
var ErrVersion = errors.New("ofproto: peer does not support OpenFlow 1.3")

type call struct {
	multipart bool
	parts     []byte
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
	c := &Conn{nc: nc, br: bufio.NewReaderSize(nc, 256<<10), cfg: cfg,
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
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(c.hdr[:])
	if err != nil {
		return h, nil, err
	}
	if int(h.Length) > c.cfg.MaxMessage {
		return h, nil, malformed("%s of %d bytes exceeds limit %d", TypeName(h.Type), h.Length, c.cfg.MaxMessage)
	}
	n := int(h.Length) - HeaderLen
	if cap(c.body) < n {
		c.body = make([]byte, n, max(n, 4096))
	}
	c.body = c.body[:n]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return h, nil, err
	}
	return h, c.body, nil
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
	p := &call{multipart: multipart, done: make(chan struct{})}
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

func (c *Conn) wait(ctx context.Context, xid uint32, p *call) ([]byte, error) {
	select {
	case <-p.done:
		return p.reply, p.err
	case <-ctx.Done():
		c.unregister(xid)
		return nil, fmt.Errorf("ofproto: waiting for reply to xid %d: %w", xid, ctx.Err())
	case <-c.done:
		c.unregister(xid)
		return nil, fmt.Errorf("%w: %v", ErrClosed, c.closeErr)
	}
}

// RoundTrip sends msg (whose xid is xid) and waits for the reply with the
// same xid. For multipart requests the reply bodies are concatenated
// without their multipart headers. An OFPT_ERROR reply becomes *OFError.
func (c *Conn) RoundTrip(ctx context.Context, xid uint32, msg []byte, multipart bool) ([]byte, error) {
	p := c.register(xid, multipart)
	if err := c.Send(msg); err != nil {
		c.unregister(xid)
		return nil, err
	}
	return c.wait(ctx, xid, p)
}

// Barrier sends a BARRIER_REQUEST and waits for its reply.
func (c *Conn) Barrier(ctx context.Context) error {
	xid := c.NextXid()
	_, err := c.RoundTrip(ctx, xid, AppendSimple(nil, TypeBarrierReq, xid), false)
	return err
}

// Multipart runs a multipart request and returns the joined reply body.
func (c *Conn) Multipart(ctx context.Context, mpType uint16, body []byte) ([]byte, error) {
	xid := c.NextXid()
	msg, err := AppendMultipartReq(nil, xid, mpType, body)
	if err != nil {
		return nil, err
	}
	return c.RoundTrip(ctx, xid, msg, true)
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

// deliver hands a reply to its pending call. It reports whether one waited.
func (c *Conn) deliver(h Header, body []byte, ofErr *OFError) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	p, ok := c.pending[h.Xid]
	if !ok {
		if ofErr != nil {
			for _, w := range c.watches {
				if h.Xid-w.lo <= w.hi-w.lo {
					w.errs = append(w.errs, ofErr)
					return true
				}
			}
		}
		return false
	}
	if ofErr != nil {
		p.err = ofErr
	} else if p.multipart {
		if len(body) < 8 {
			p.err = malformed("short multipart reply")
		} else {
			p.parts = append(p.parts, body[8:]...)
			if be.Uint16(body[2:])&1 != 0 { // OFPMPF_REPLY_MORE
				return true
			}
			p.reply = p.parts
		}
	} else {
		p.reply = append([]byte(nil), body...)
	}
	delete(c.pending, h.Xid)
	close(p.done)
	return true
}

// Handshake performs HELLO negotiation and FEATURES, then SET_CONFIG.
func (c *Conn) Handshake() error {
	deadline := time.Now().Add(c.cfg.HandshakeTimeout)
	c.nc.SetReadDeadline(deadline)
	defer c.nc.SetReadDeadline(time.Time{})
	if err := c.Send(AppendHello(nil, c.NextXid())); err != nil {
		return err
	}
	h, body, err := c.readMsg()
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
		h, body, err = c.readMsg()
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
		c.deliver(h, body, nil)
	case TypeError:
		e, err := ParseError(h.Xid, body)
		if err != nil {
			return err
		}
		if !c.deliver(h, body, e) {
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
		if !c.deliver(h, body, nil) {
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
