package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	nBuffers   = 256 // n_buffers advertised; buffer ids roll below it
	batchMax   = 256 // packet-ins per write in throughput mode
	learnRetry = 250 * time.Millisecond
	tickEvery  = 50 * time.Millisecond
)

// Benchmark phases, shared by all switches.
const (
	phaseLearn int32 = iota // handshake, then one learning packet-in
	phaseRun                // packet-ins are generated and responses counted
	phaseStop               // tearing down; connection errors are expected
)

// bench is the state all fake switches share.
type bench struct {
	cfg   config
	phase atomic.Int32
	stop  chan struct{}
	errs  chan error
	wg    sync.WaitGroup
}

// fakeSwitch is one emulated OpenFlow 1.3 switch with one TCP connection.
type fakeSwitch struct {
	b    *bench
	idx  int
	dpid uint64
	conn net.Conn
	dst  [6]byte // the MAC the controller learns and every packet-in targets

	// Control replies (handshake, echo, barrier, ...) are queued by the reader
	// and written by the writer, so the reader never blocks on a write.
	ctlMu sync.Mutex
	ctl   []byte
	wake  chan struct{}

	minBatch int // throughput mode: smallest write of packet-ins after the first

	ready     chan struct{} // closed once a FEATURES_REQUEST was answered
	readyOnce sync.Once
	learned   chan struct{} // closed once the learning packet-in was answered
	learnOnce sync.Once
	errOnce   sync.Once

	// Throughput window: in flight = sent - acked - forgiven. acked is only
	// written by the reader, sent and forgiven only by the writer.
	sent, acked, forgiven atomic.Uint64

	// Counters, run phase only.
	pktIns     atomic.Uint64 // packet-ins sent
	responses  atomic.Uint64 // FLOW_MOD + PACKET_OUT received
	roundTrips atomic.Uint64 // latency mode: answered packet-ins
	flowMods   atomic.Uint64
	packetOuts atomic.Uint64
	withBuffer atomic.Uint64     // responses that referenced a buffer_id
	ctrlErrors atomic.Uint64     // OFPT_ERROR messages received (any phase)
	rxTypes    [32]atomic.Uint64 // messages received per type (any phase)
	timeouts   atomic.Uint64     // latency mode: packet-ins resent after a stall
	lost       atomic.Uint64     // throughput mode: in-flight packets written off

	// Packet generation. In throughput mode only the writer touches these; in
	// learn and latency mode they are guarded by latMu.
	macIdx int
	bufID  uint32
	xid    uint32

	latMu       sync.Mutex
	started     bool // latency mode: first run-phase packet-in sent
	outstanding bool
	outBuf      uint32
	outSrc      [6]byte
	outSince    time.Time
	lat         []byte // single packet-in, reused
}

func newFakeSwitch(b *bench, idx int, conn net.Conn) *fakeSwitch {
	dpid := uint64(idx + 1)
	s := &fakeSwitch{
		b:       b,
		idx:     idx,
		dpid:    dpid,
		conn:    conn,
		dst:     dstMAC(dpid),
		wake:    make(chan struct{}, 1),
		ready:   make(chan struct{}),
		learned: make(chan struct{}),
	}
	s.lat = encodePacketIn(0, 0, 1, s.dst, srcMAC(dpid, 0))
	s.minBatch = max(1, min(b.cfg.window/8, 64))
	return s
}

func (s *fakeSwitch) start() error {
	if _, err := s.conn.Write(encodeHello(1)); err != nil {
		return fmt.Errorf("switch %d: sending HELLO: %w", s.dpid, err)
	}
	s.b.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
	return nil
}

func (s *fakeSwitch) fail(err error) {
	if s.b.phase.Load() == phaseStop {
		return
	}
	s.errOnce.Do(func() {
		s.b.errs <- fmt.Errorf("switch %d (dpid %#x): %w", s.idx, s.dpid, err)
	})
}

func (s *fakeSwitch) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *fakeSwitch) queueCtl(msg []byte) {
	s.ctlMu.Lock()
	s.ctl = append(s.ctl, msg...)
	s.ctlMu.Unlock()
	s.signal()
}

// stamp turns p (a copy of the packet-in template) into the next packet-in:
// new xid, next buffer id, next source MAC.
func (s *fakeSwitch) stamp(p []byte) (uint32, [6]byte) {
	s.xid++
	id := s.bufID
	if s.bufID++; s.bufID == nBuffers {
		s.bufID = 0
	}
	mac := srcMAC(s.dpid, s.macIdx)
	if s.macIdx++; s.macIdx == s.b.cfg.macs {
		s.macIdx = 0
	}
	binary.BigEndian.PutUint32(p[piOffXid:], s.xid)
	binary.BigEndian.PutUint32(p[piOffBufferID:], id)
	copy(p[piOffEthSrc+3:piOffEthSrc+6], mac[3:])
	return id, mac
}

// readLoop parses messages in place in a large bufio buffer (one read
// syscall fetches many messages).
func (s *fakeSwitch) readLoop() {
	defer s.b.wg.Done()
	r := bufio.NewReaderSize(s.conn, 256<<10)
	unsignalled := 0
	for {
		// Wake the writer once it can send a worthwhile batch, or when
		// everything sent has been answered.
		if unsignalled >= s.minBatch || (unsignalled > 0 && r.Buffered() < ofpHeaderLen &&
			s.acked.Load()+s.forgiven.Load() >= s.sent.Load()) {
			s.signal()
			unsignalled = 0
		}
		hdr, err := r.Peek(ofpHeaderLen)
		if err != nil {
			s.fail(fmt.Errorf("disconnected by controller: %w", err))
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if n < ofpHeaderLen {
			s.fail(fmt.Errorf("invalid OpenFlow message length %d", n))
			return
		}
		// OpenFlow lengths are 16-bit, so a message always fits the buffer.
		msg, err := r.Peek(n)
		if err != nil {
			s.fail(fmt.Errorf("disconnected by controller: %w", err))
			return
		}
		if s.handle(msg) {
			unsignalled++
		}
		r.Discard(n)
	}
}

// handle processes one message; it reports whether the writer may have
// gained window credit.
func (s *fakeSwitch) handle(msg []byte) bool {
	typ := msg[1]
	if int(typ) < len(s.rxTypes) {
		s.rxTypes[typ].Add(1)
	}
	if typ == ofptHello {
		if _, err := negotiateHello(msg); err != nil {
			s.queueCtl(encodeHelloFailed(binary.BigEndian.Uint32(msg[4:])))
			s.fail(fmt.Errorf("version negotiation failed: %w", err))
		}
		return false
	}
	if msg[0] != ofpVersion13 {
		return false
	}
	xid := binary.BigEndian.Uint32(msg[4:])
	switch typ {
	case ofptFlowMod, ofptPacketOut:
		return s.onResponse(msg)
	case ofptError:
		s.onError(msg)
	case ofptEchoRequest:
		s.queueCtl(encodeEchoReply(msg))
	case ofptFeaturesRequest:
		s.queueCtl(encodeFeaturesReply(xid, s.dpid))
		s.readyOnce.Do(func() { close(s.ready) })
		s.signal()
	case ofptGetConfigRequest:
		s.queueCtl(encodeGetConfigReply(xid, 0, 128))
	case ofptBarrierRequest:
		s.queueCtl(encodeBarrierReply(xid))
	case ofptMultipartRequest:
		s.queueCtl(encodeMultipartReply(msg, s.dpid))
	case ofptRoleRequest:
		s.queueCtl(encodeRoleReply(msg))
	case ofptGetAsyncRequest:
		s.queueCtl(encodeGetAsyncReply(xid))
	case ofptExperimenter:
		if reply, ok := encodeBundleReply(msg); ok {
			s.queueCtl(reply)
		}
	}
	return false
}

var errorReports atomic.Int32

func (s *fakeSwitch) onError(msg []byte) {
	s.ctrlErrors.Add(1)
	if len(msg) >= 12 && errorReports.Add(1) <= 5 {
		et := binary.BigEndian.Uint16(msg[8:])
		ec := binary.BigEndian.Uint16(msg[10:])
		fmt.Fprintf(stderr, "ofbench: switch %d: controller sent OFPT_ERROR type=%d code=%d\n", s.dpid, et, ec)
	}
}

func (s *fakeSwitch) onResponse(msg []byte) bool {
	ph := s.b.phase.Load()
	bid, src := responseRef(msg)
	if ph == phaseRun {
		s.responses.Add(1)
		if msg[1] == ofptFlowMod {
			s.flowMods.Add(1)
		} else {
			s.packetOuts.Add(1)
		}
		if bid != ofpNoBuffer {
			s.withBuffer.Add(1)
		}
		if s.b.cfg.mode == modeThroughput {
			// Credit at most one packet-in per response, and never more
			// than were sent, so the window stays bounded even when a
			// controller answers a packet-in with several messages.
			if s.acked.Load()+s.forgiven.Load() < s.sent.Load() {
				s.acked.Add(1)
			}
			return true
		}
	}
	s.latMu.Lock()
	defer s.latMu.Unlock()
	if !s.outstanding {
		return false
	}
	match := bid == s.outBuf ||
		(bid == ofpNoBuffer && msg[1] == ofptPacketOut && src != nil && bytes.Equal(src, s.outSrc[:]))
	if !match {
		return false
	}
	s.outstanding = false
	switch ph {
	case phaseLearn:
		s.learnOnce.Do(func() { close(s.learned) })
	case phaseRun:
		if s.started {
			s.roundTrips.Add(1)
			s.sendLatencyLocked()
		}
	}
	return false
}

// sendLatencyLocked sends the next packet-in as the single outstanding one.
func (s *fakeSwitch) sendLatencyLocked() {
	id, mac := s.stamp(s.lat)
	s.pktIns.Add(1)
	s.outstanding, s.outBuf, s.outSrc, s.outSince = true, id, mac, time.Now()
	if _, err := s.conn.Write(s.lat); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
	}
}

// maybeLearn sends (or resends) the packet-in that teaches the controller
// where the destination MAC lives: source = that MAC, in_port 2, broadcast.
func (s *fakeSwitch) maybeLearn() {
	select {
	case <-s.ready:
	default:
		return
	}
	select {
	case <-s.learned:
		return
	default:
	}
	s.latMu.Lock()
	defer s.latMu.Unlock()
	if s.outstanding && time.Since(s.outSince) < learnRetry {
		return
	}
	id := s.bufID
	if s.bufID++; s.bufID == nBuffers {
		s.bufID = 0
	}
	s.xid++
	p := encodePacketIn(s.xid, id, 2, broadcastMAC, s.dst)
	s.outstanding, s.outBuf, s.outSrc, s.outSince = true, id, s.dst, time.Now()
	if _, err := s.conn.Write(p); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
	}
}

func (s *fakeSwitch) flushCtl(buf []byte) ([]byte, error) {
	s.ctlMu.Lock()
	buf = append(buf[:0], s.ctl...)
	s.ctl = s.ctl[:0]
	s.ctlMu.Unlock()
	if len(buf) == 0 {
		return buf, nil
	}
	_, err := s.conn.Write(buf)
	return buf, err
}

func (s *fakeSwitch) writeLoop() {
	defer s.b.wg.Done()
	cfg := &s.b.cfg
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()

	tmpl := encodePacketIn(0, 0, 1, s.dst, srcMAC(s.dpid, 0))
	var batch []byte
	if cfg.mode == modeThroughput {
		batch = make([]byte, 0, batchMax*packetInLen)
		for i := 0; i < batchMax; i++ {
			batch = append(batch, tmpl...)
		}
	}
	var ctlBuf []byte
	var lastAcked uint64
	var lastProgress time.Time
	window := uint64(cfg.window)

	for {
		var err error
		if ctlBuf, err = s.flushCtl(ctlBuf); err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return
		}
		switch s.b.phase.Load() {
		case phaseStop:
			return
		case phaseLearn:
			s.maybeLearn()
		case phaseRun:
			if cfg.mode == modeLatency {
				s.latencyTick()
				break
			}
			inflight := s.sent.Load() - s.acked.Load() - s.forgiven.Load()
			if inflight == 0 || (inflight < window && window-inflight >= uint64(s.minBatch)) {
				n := min(window-inflight, batchMax)
				for i := uint64(0); i < n; i++ {
					s.stamp(batch[i*packetInLen : (i+1)*packetInLen])
				}
				s.sent.Add(n)
				s.pktIns.Add(n)
				if _, err := s.conn.Write(batch[:n*packetInLen]); err != nil {
					s.fail(fmt.Errorf("write: %w", err))
					return
				}
				continue
			}
			// Window full: if nothing was answered for a while, write the
			// in-flight packet-ins off so a controller that drops some
			// (e.g. on a full tx queue) cannot stall the switch.
			now := time.Now()
			if a := s.acked.Load(); a != lastAcked || lastProgress.IsZero() {
				lastAcked, lastProgress = a, now
			} else if now.Sub(lastProgress) > cfg.stallTimeout {
				s.forgiven.Add(inflight)
				s.lost.Add(inflight)
				lastProgress = now
				continue
			}
		}
		select {
		case <-s.wake:
		case <-tick.C:
		case <-s.b.stop:
			return
		}
	}
}

// latencyTick starts latency mode and resends after a stall.
func (s *fakeSwitch) latencyTick() {
	s.latMu.Lock()
	defer s.latMu.Unlock()
	if !s.started {
		s.started = true
		s.sendLatencyLocked()
		return
	}
	if s.outstanding && time.Since(s.outSince) > s.b.cfg.stallTimeout {
		s.timeouts.Add(1)
		s.sendLatencyLocked()
	}
}
