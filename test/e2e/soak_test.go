package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Soak figures. The attack runs soakAttack; the RSS bound is generous
// (the controller idles near 100 MiB with its embedded etcd): it holds
// with the listener's caps, and an uncapped listener passes it within
// seconds, as the multipart flooders alone push 20 x 32 MiB.
const (
	soakAttack     = 60 * time.Second
	soakJunk       = 1000
	soakJunkOneIP  = 300 // more, from one address: over the per-address cap
	soakFakes      = 100
	soakFloodBytes = 32 << 20 // what each multipart flooder sends per connection
	soakRSSBound   = 512 << 20
	// Goroutines may exceed the baseline by this much once the attack
	// stopped: HTTP keep-alive and timer goroutines come and go.
	soakGoroutineSlack = 25
)

// A controller under 1,000 junk TCP connections and 100 misbehaving fake
// switches for a minute keeps a real bridge's session and its pings
// (learned through packet-ins, relearned during the attack), with bounded
// memory and no goroutine leak.
func TestSoakJunkConnectionsAndFakeSwitches(t *testing.T) {
	ovslab.RequireE2E(t)
	c := startController(t, "--log-level=info")
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{c.target()}})
	br.WaitConnected(15 * time.Second)
	c.WaitLog("dpid="+br.DPIDHex(), 10*time.Second)
	nsA, _ := soakHosts(t, br)

	// Baseline, with the learning app already forwarding.
	pingOnce(t, nsA, "10.251.0.2")
	time.Sleep(2 * time.Second)
	base := soakSample(t, c)
	t.Logf("baseline: RSS %d MiB, %d goroutines", base.rss>>20, base.goroutines)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	// Its own deadline (-w), so it always prints its summary.
	ping := exec.Command("ip", "netns", "exec", nsA, "ping", "-n", "-q", "-i", "0.2", "-W", "2",
		"-c", strconv.Itoa(int(soakAttack/(200*time.Millisecond))), "-w", strconv.Itoa(int(soakAttack/time.Second)+10), "10.251.0.2")
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	pingDone := false
	t.Cleanup(func() {
		if !pingDone {
			ping.Process.Kill()
			ping.Wait()
		}
	})

	var stats soakStats
	for i := 0; i < soakJunk; i++ {
		src := fmt.Sprintf("127.0.0.%d", 2+i%20) // 50 per address
		wg.Add(1)
		go func() { defer wg.Done(); junkWorker(ctx, c.OF, src, i%3, &stats) }()
	}
	for i := 0; i < soakJunkOneIP; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); junkWorker(ctx, c.OF, "127.0.0.250", 1, &stats) }()
	}
	for i := 0; i < soakFakes; i++ {
		src := fmt.Sprintf("127.0.0.%d", 30+i%10)
		dpid := uint64(0x50ac_0000_0000_0000)
		wg.Add(1)
		go func() { defer wg.Done(); fakeSwitchWorker(ctx, c.OF, src, i, dpid+uint64(i), br.DPID, &stats) }()
	}

	// Sample while the attack runs; every 10 s delete the learned flows,
	// so the pings need the controller's packet-in path again.
	learnedBefore := c.metric("nimbus_flow_mods_total", `source="packet_in"`)
	flushes := 0
	peak := base
	start := time.Now()
	lastFlush := start
	for time.Since(start) < soakAttack {
		time.Sleep(500 * time.Millisecond)
		if c.Exited() {
			t.Fatalf("controller exited under attack:\n%s", tailLog(c.Log(), 4000))
		}
		s := soakSample(t, c)
		peak.rss, peak.goroutines = max(peak.rss, s.rss), max(peak.goroutines, s.goroutines)
		if time.Since(lastFlush) >= 10*time.Second {
			br.Ofctl("del-flows", br.Name, fmt.Sprintf("cookie=0x%x/0x%x", pipeline.CookieDynamic, pipeline.CookieDynamic))
			lastFlush = time.Now()
			flushes++
		}
	}
	open := c.metric("nimbus_openflow_connections", "")
	stop()
	wg.Wait()
	ping.Wait()
	pingDone = true
	attackEnd := time.Now()
	t.Logf("attack: %s; junk connections made %d, fake switch connections %d (handshakes completed %d), bytes sent %d MiB; open at the end %v",
		soakAttack, stats.junk.Load(), stats.fakes.Load(), stats.handshakes.Load(), stats.bytes.Load()>>20, open)
	t.Logf("peak: RSS %d MiB, %d goroutines", peak.rss>>20, peak.goroutines)

	// Goroutines come back to the baseline once the attackers are gone.
	var after soakFigures
	ovslab.WaitFor(t, 30*time.Second, "goroutines back near the baseline", func() bool {
		after = soakSample(t, c)
		return after.goroutines <= base.goroutines+soakGoroutineSlack
	})
	time.Sleep(2 * time.Second)
	after = soakSample(t, c)
	t.Logf("after (%s): RSS %d MiB, %d goroutines", time.Since(attackEnd).Round(100*time.Millisecond), after.rss>>20, after.goroutines)
	if after.goroutines > base.goroutines+soakGoroutineSlack {
		t.Errorf("goroutines %d after the attack, baseline %d: leak", after.goroutines, base.goroutines)
	}
	if peak.rss > soakRSSBound {
		t.Errorf("peak RSS %d MiB exceeds the bound %d MiB", peak.rss>>20, soakRSSBound>>20)
	}

	// The real bridge kept its one session.
	log := c.Log()
	re := regexp.MustCompile(`msg="switch (connected|disconnected)"[^\n]*dpid=` + br.DPIDHex())
	if m := re.FindAllString(log, -1); len(m) != 1 {
		t.Errorf("the bridge's session did not survive: %d connect/disconnect lines for dpid %s:\n%s", len(m), br.DPIDHex(), strings.Join(m, "\n"))
	}
	for _, cs := range br.Controllers() {
		sec, _ := strconv.Atoi(cs.Status["sec_since_connect"])
		t.Logf("OVS controller status: connected=%v sec_since_connect=%d state=%s", cs.IsConnected, sec, cs.Status["state"])
		if !cs.IsConnected || time.Duration(sec)*time.Second < soakAttack-5*time.Second {
			t.Errorf("OVS reconnected during the attack: %v", cs.Status)
		}
	}

	// Pings kept flowing.
	sent, recv := parsePing(pingOut.String())
	t.Logf("pings during the attack: %d sent, %d received", sent, recv)
	if sent == 0 || recv < sent*95/100 {
		t.Errorf("pings lost during the attack: %d of %d\n%s", sent-recv, sent, pingOut.String())
	}

	learned := c.metric("nimbus_flow_mods_total", `source="packet_in"`) - learnedBefore
	t.Logf("learned flows deleted %d times during the attack; flows relearned through packet-ins: %v", flushes, learned)
	if learned < float64(flushes) {
		t.Errorf("only %v flows relearned after %d flushes: the packet-in path stalled under attack", learned, flushes)
	}

	// The defences fired.
	for _, m := range []struct{ name, labels string }{
		{"nimbus_openflow_connections_refused_total", `reason="max_conns_per_addr"`},
		{"nimbus_openflow_connections_refused_total", `reason="duplicate_dpid"`},
		{"nimbus_openflow_connections_dropped_total", `reason="multipart_too_big"`},
		{"nimbus_openflow_connections_dropped_total", `reason="handshake"`},
		{"nimbus_malformed_connections_total", ""},
	} {
		v := c.metric(m.name, m.labels)
		t.Logf("%s{%s} = %v", m.name, m.labels, v)
		if v == 0 {
			t.Errorf("%s{%s} = 0: that part of the attack never reached the controller", m.name, m.labels)
		}
	}
}

type soakFigures struct {
	rss        int64
	goroutines int
}

func soakSample(t *testing.T, c *controller) soakFigures {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.PID))
	if err != nil {
		t.Fatal(err)
	}
	var f soakFigures
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			f.rss = kb << 10
		}
	}
	g, err := ovslab.Metric(c.API, "go_goroutines", "")
	if err != nil {
		t.Fatal(err)
	}
	f.goroutines = int(g)
	return f
}

func tailLog(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// soakHosts makes two namespaces on the bridge, 10.251.0.1 and .2.
func soakHosts(t *testing.T, br *ovslab.Bridge) (string, string) {
	t.Helper()
	var names []string
	for i, ip := range []string{"10.251.0.1/24", "10.251.0.2/24"} {
		ns := fmt.Sprintf("%sh%d", br.Name, i)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		_, peer := br.AddVeth("", 10+i)
		for _, args := range [][]string{
			{"link", "set", peer, "netns", ns},
			{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
			{"netns", "exec", ns, "ip", "link", "set", peer, "name", "eth0"},
			{"netns", "exec", ns, "ip", "addr", "add", ip, "dev", "eth0"},
			{"netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
		names = append(names, ns)
	}
	return names[0], names[1]
}

func pingOnce(t *testing.T, ns, dst string) {
	t.Helper()
	ovslab.WaitFor(t, 20*time.Second, "first ping between the namespaces", func() bool {
		return exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "1", dst).Run() == nil
	})
}

var pingRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func parsePing(out string) (sent, recv int) {
	m := pingRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv
}

type soakStats struct {
	junk, fakes, handshakes, bytes atomic.Int64
}

func dialSoak(ctx context.Context, addr, src string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.DialContext(ctx, "tcp", addr)
}

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// closeOnDone closes nc when ctx ends, until the returned func is called.
func closeOnDone(ctx context.Context, nc net.Conn) func() bool {
	return context.AfterFunc(ctx, func() { nc.Close() })
}

// junkWorker keeps one junk connection open to the controller, in one of
// three modes: 0 random bytes, 1 half-open (connects, never speaks),
// 2 slowloris (a HELLO, one byte every 2 s). When the controller closes
// it (or refuses it), it reconnects.
func junkWorker(ctx context.Context, addr, src string, mode int, st *soakStats) {
	sleepCtx(ctx, time.Duration(mrand.IntN(2000))*time.Millisecond) // ramp up
	for ctx.Err() == nil {
		nc, err := dialSoak(ctx, addr, src)
		if err != nil {
			if !sleepCtx(ctx, 500*time.Millisecond) {
				return
			}
			continue
		}
		st.junk.Add(1)
		release := closeOnDone(ctx, nc)
		switch mode {
		case 0:
			b := make([]byte, 64+mrand.IntN(4096))
			rand.Read(b)
			if n, err := nc.Write(b); err == nil {
				st.bytes.Add(int64(n))
			}
			io.Copy(io.Discard, nc)
		case 1:
			io.Copy(io.Discard, nc)
		case 2:
			go io.Copy(io.Discard, nc)
			for _, b := range ofproto.AppendHello(nil, 1) {
				if _, err := nc.Write([]byte{b}); err != nil || !sleepCtx(ctx, 2*time.Second) {
					break
				}
			}
		}
		release()
		nc.Close()
		if !sleepCtx(ctx, time.Duration(300+mrand.IntN(400))*time.Millisecond) {
			return
		}
	}
}

func ofMsg(typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = ofproto.Version, typ
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return append(b, body...)
}

func readOF(br *bufio.Reader) (ofproto.Header, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return ofproto.Header{}, nil, err
	}
	h, err := ofproto.ParseHeader(hdr[:])
	if err != nil {
		return h, nil, err
	}
	body := make([]byte, int(h.Length)-8)
	_, err = io.ReadFull(br, body)
	return h, body, err
}

// fakeHandshake plays a switch's side of HELLO and FEATURES.
func fakeHandshake(nc net.Conn, br *bufio.Reader, dpid uint64) error {
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(ofMsg(ofproto.TypeHello, 1, nil)); err != nil {
		return err
	}
	for {
		h, _, err := readOF(br)
		if err != nil {
			return err
		}
		if h.Type == ofproto.TypeFeaturesReq {
			body := make([]byte, 24)
			binary.BigEndian.PutUint64(body, dpid)
			body[12] = 254 // n_tables
			_, err = nc.Write(ofMsg(ofproto.TypeFeaturesReply, h.Xid, body))
			return err
		}
	}
}

func multipartPart(mpType uint16, xid uint32, more bool, n int) []byte {
	body := make([]byte, 8+n)
	binary.BigEndian.PutUint16(body, mpType)
	if more {
		body[3] = 1
	}
	return ofMsg(ofproto.TypeMultipartReply, xid, body)
}

// fakeSwitchWorker is one misbehaving switch, reconnecting each time the
// controller drops it. Its mode (i%5):
//
//	0 bad lengths: a message whose length field is short, or whose body
//	  is inconsistent
//	1 oversized: 65,535-byte echo requests and unsolicited multipart
//	  replies, then a 65,535-byte PORT_STATUS of junk
//	2 multipart flood: answers PORT_DESC with endless REPLY_MORE parts
//	3 HELLO only, then silence
//	4 claims the real bridge's datapath id (even i) or another fake's
//	  after handshake garbage (odd i)
func fakeSwitchWorker(ctx context.Context, addr, src string, i int, dpid, bridgeDPID uint64, st *soakStats) {
	sleepCtx(ctx, time.Duration(mrand.IntN(2000))*time.Millisecond)
	mode := i % 5
	for ctx.Err() == nil {
		nc, err := dialSoak(ctx, addr, src)
		if err != nil {
			if !sleepCtx(ctx, 500*time.Millisecond) {
				return
			}
			continue
		}
		st.fakes.Add(1)
		release := closeOnDone(ctx, nc)
		fakeSession(nc, mode, i, dpid, bridgeDPID, st)
		release()
		nc.Close()
		if !sleepCtx(ctx, time.Duration(500+mrand.IntN(500))*time.Millisecond) {
			return
		}
	}
}

func fakeSession(nc net.Conn, mode, i int, dpid, bridgeDPID uint64, st *soakStats) {
	br := bufio.NewReaderSize(nc, 64<<10)
	write := func(b []byte) bool {
		n, err := nc.Write(b)
		st.bytes.Add(int64(n))
		return err == nil
	}
	if mode == 3 {
		write(ofMsg(ofproto.TypeHello, 1, nil))
		io.Copy(io.Discard, br)
		return
	}
	if mode == 4 && i%2 == 0 {
		dpid = bridgeDPID
	}
	if fakeHandshake(nc, br, dpid) != nil {
		return
	}
	st.handshakes.Add(1)
	// Read what the controller sends; hand PORT_DESC requests over.
	portDesc := make(chan uint32, 1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			h, body, err := readOF(br)
			if err != nil {
				return
			}
			if h.Type == ofproto.TypeMultipartReq && len(body) >= 2 && binary.BigEndian.Uint16(body) == ofproto.MPPortDesc {
				select {
				case portDesc <- h.Xid:
				default:
				}
			}
		}
	}()
	wait := func() { <-closed }
	switch mode {
	case 0:
		if i%2 == 0 {
			write([]byte{ofproto.Version, ofproto.TypePacketIn, 0, 4, 0, 0, 0, 9}) // length below the header
		} else {
			write(ofMsg(ofproto.TypePortStatus, 9, make([]byte, 12))) // port status too short
		}
		wait()
	case 1:
		junk := make([]byte, 65535-8)
		rand.Read(junk)
		for k := 0; k < 40; k++ {
			if !write(ofMsg(ofproto.TypeEchoRequest, uint32(k), junk)) {
				return
			}
			if !write(multipartPart(ofproto.MPFlow, 0xdead0000+uint32(k), true, 65535-16)) {
				return
			}
		}
		write(ofMsg(ofproto.TypePortStatus, 9, junk))
		wait()
	case 2:
		var xid uint32
		select {
		case xid = <-portDesc:
		case <-closed:
			return
		case <-time.After(20 * time.Second):
			return
		}
		part := multipartPart(ofproto.MPPortDesc, xid, true, 65535-16)
		for sent := 0; sent < soakFloodBytes; sent += len(part) {
			if !write(part) {
				return
			}
		}
		wait()
	case 4:
		if dpid != bridgeDPID {
			junk := make([]byte, 2048)
			rand.Read(junk)
			write(junk)
		}
		wait()
	}
}
