package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeController is a minimal OF1.3 learning controller for end-to-end tests:
// it drives the handshake with the requests real controllers send, and
// answers every packet-in with a FLOW_MOD that uses its buffer_id (or, with
// noBuffer, a PACKET_OUT carrying the frame).
type fakeController struct {
	ln       net.Listener
	noBuffer bool
	hangUp   bool // close each connection right after the handshake

	mu      sync.Mutex
	replies map[uint8]int // message types received from the switches
	wg      sync.WaitGroup
}

func startController(t *testing.T, noBuffer, hangUp bool) *fakeController {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeController{ln: ln, noBuffer: noBuffer, hangUp: hangUp, replies: map[uint8]int{}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go c.serve(conn)
		}
	}()
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *fakeController) addr() string { return c.ln.Addr().String() }

func (c *fakeController) serve(conn net.Conn) {
	defer c.wg.Done()
	defer conn.Close()
	// HELLO for OF1.3..1.5 with a bitmap, like os-ken sends.
	hello := newMsg(ofptHello, 16, 1)
	hello[0] = 6
	binary.BigEndian.PutUint16(hello[8:], ofpHelloElemBitmap)
	binary.BigEndian.PutUint16(hello[10:], 8)
	binary.BigEndian.PutUint32(hello[12:], 0x70)
	w := bufio.NewWriter(conn)
	w.Write(hello)
	w.Write(newMsg(ofptFeaturesRequest, 8, 2))
	w.Flush()
	r := bufio.NewReader(conn)
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
		copy(msg, hdr)
		if _, err := io.ReadFull(r, msg[8:]); err != nil {
			return
		}
		c.mu.Lock()
		c.replies[msg[1]]++
		c.mu.Unlock()
		switch msg[1] {
		case ofptFeaturesReply:
			role := newMsg(ofptRoleRequest, 24, 5)
			binary.BigEndian.PutUint32(role[8:], 2)
			w.Write(multipartRequest(3, ofpmpPortDesc))
			w.Write(newMsg(ofptBarrierRequest, 8, 4))
			w.Write(role)
			w.Write(bundleControl(6, 1, 0, 0))
			w.Write(newMsg(ofptEchoRequest, 8, 7))
			w.Write(newMsg(ofptGetConfigRequest, 8, 8))
			w.Write(newMsg(99, 8, 9)) // unknown type: must be ignored
			if c.hangUp {
				w.Flush()
				return
			}
		case ofptPacketIn:
			bufID := binary.BigEndian.Uint32(msg[8:])
			if c.noBuffer {
				frame := msg[piOffFrame:]
				po := newMsg(ofptPacketOut, 24+16+len(frame), 0)
				binary.BigEndian.PutUint32(po[8:], ofpNoBuffer)
				binary.BigEndian.PutUint16(po[16:], 16)
				copy(po[40:], frame)
				w.Write(po)
			} else {
				fm := newMsg(ofptFlowMod, 56, 0)
				binary.BigEndian.PutUint32(fm[32:], bufID)
				w.Write(fm)
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func testConfig(addr, mode string) config {
	return config{
		controller: addr, switches: 4, macs: 100, seconds: 0.2, loops: 2, warmup: 1,
		mode: mode, window: 100, connTimeout: time.Second, setupTimeout: 2 * time.Second,
		learnTimeout: 2 * time.Second, stallTimeout: time.Second,
	}
}

func TestEndToEnd(t *testing.T) {
	stderr = io.Discard
	for _, tc := range []struct {
		mode     string
		noBuffer bool
	}{{modeThroughput, false}, {modeLatency, false}, {modeThroughput, true}, {modeLatency, true}} {
		name := tc.mode
		if tc.noBuffer {
			name += "/packet-out"
		}
		t.Run(name, func(t *testing.T) {
			c := startController(t, tc.noBuffer, false)
			var out strings.Builder
			res, err := run(testConfig(c.addr(), tc.mode), &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			if res.Min <= 0 || res.Median < res.Min || res.Max < res.Median || len(res.PerLoop) != 2 {
				t.Fatalf("bad result %+v\n%s", res, out.String())
			}
			if res.unlearned != 0 || res.timeouts != 0 || res.lost != 0 {
				t.Errorf("unlearned=%d timeouts=%d lost=%d", res.unlearned, res.timeouts, res.lost)
			}
			if !strings.Contains(out.String(), "RESULT: 4 switches 2 tests min/max/avg/median = ") {
				t.Errorf("no RESULT line:\n%s", out.String())
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for typ, name := range map[uint8]string{
				ofptFeaturesReply: "FEATURES_REPLY", ofptMultipartReply: "MULTIPART_REPLY",
				ofptBarrierReply: "BARRIER_REPLY", ofptRoleReply: "ROLE_REPLY",
				ofptExperimenter: "bundle reply", ofptEchoReply: "ECHO_REPLY",
				ofptGetConfigReply: "GET_CONFIG_REPLY",
			} {
				if c.replies[typ] != 4 {
					t.Errorf("controller got %d %s, want one per switch", c.replies[typ], name)
				}
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = run(testConfig(addr, modeThroughput), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want unreachable", err)
	}
}

func TestDisconnect(t *testing.T) {
	stderr = io.Discard
	c := startController(t, false, true)
	_, err := run(testConfig(c.addr(), modeThroughput), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("err = %v, want disconnected", err)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	cfg := testConfig("192.0.2.1:6653", modeThroughput)
	if _, err := run(cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}

func TestSummarize(t *testing.T) {
	lo, hi, avg, med := summarize([]float64{4, 1, 3, 2})
	if lo != 1 || hi != 4 || avg != 2.5 || med != 2.5 {
		t.Errorf("summarize = %v %v %v %v", lo, hi, avg, med)
	}
	if _, _, _, med := summarize([]float64{5, 1, 9}); med != 5 {
		t.Errorf("odd median = %v", med)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil || cfg.controller != "127.0.0.1:6653" || cfg.switches != 16 || cfg.macs != 1000 ||
		cfg.seconds != 1 || cfg.loops != 10 || cfg.warmup != 1 || cfg.mode != modeThroughput {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{{"-mode", "x"}, {"-switches", "0"}, {"-loops", "0"}, {"-seconds", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
