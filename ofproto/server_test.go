package ofproto

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// countObserver records what the server reports.
type countObserver struct {
	mu      sync.Mutex
	open    int
	refused map[string]int
	dropped map[string]int
}

func (o *countObserver) OpenConns(n int) { o.mu.Lock(); o.open = n; o.mu.Unlock() }
func (o *countObserver) ConnRefused(r string) {
	o.mu.Lock()
	if o.refused == nil {
		o.refused = map[string]int{}
	}
	o.refused[r]++
	o.mu.Unlock()
}
func (o *countObserver) ConnDropped(r string) {
	o.mu.Lock()
	if o.dropped == nil {
		o.dropped = map[string]int{}
	}
	o.dropped[r]++
	o.mu.Unlock()
}
func (o *countObserver) get() (open int, refused, dropped map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	refused, dropped = map[string]int{}, map[string]int{}
	for k, v := range o.refused {
		refused[k] = v
	}
	for k, v := range o.dropped {
		dropped[k] = v
	}
	return o.open, refused, dropped
}

// event is a session callback, in the order the server made them.
type event struct {
	connect bool
	c       *Conn
}

type eventSession struct{ ev chan event }

func (s eventSession) OnConnect(c *Conn) Handler       { s.ev <- event{true, c}; return nil }
func (s eventSession) OnDisconnect(c *Conn, err error) { s.ev <- event{false, c} }

func (s eventSession) next(t *testing.T, what string) event {
	t.Helper()
	select {
	case e := <-s.ev:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("no session event: %s", what)
	}
	return event{}
}

func (s eventSession) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-s.ev:
		t.Fatalf("unexpected session event: connect=%v dpid=%x", e.connect, e.c.DPID())
	case <-time.After(d):
	}
}

func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.Addr == "" {
		srv.Addr = "127.0.0.1:0"
	}
	if srv.Logger == nil {
		srv.Logger = quietLog
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr.String()
}

// dialFrom connects from a given loopback address ("" for any).
func dialFrom(t *testing.T, addr, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func newTCPSwitch(t *testing.T, nc net.Conn) *fakeSwitch {
	return &fakeSwitch{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// answerEchoes runs a switch's read loop: it answers echo requests until
// mute is set, and ignores everything else.
func answerEchoes(sw *fakeSwitch, mute *atomic.Bool) {
	go func() {
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(sw.br, hdr[:]); err != nil {
				return
			}
			h, _ := ParseHeader(hdr[:])
			body := make([]byte, int(h.Length)-8)
			if _, err := io.ReadFull(sw.br, body); err != nil {
				return
			}
			if h.Type == TypeEchoRequest && !mute.Load() {
				sw.nc.Write(AppendEcho(nil, TypeEchoReply, h.Xid, body))
			}
		}
	}()
}

// closedByPeer reports whether the server closed nc (read error) within d.
func closedByPeer(nc net.Conn, br *bufio.Reader, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	defer nc.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// A second connection claiming a live switch's datapath id is refused and
// the live session kept; once the old session stops answering, a new
// connection replaces it, after the old one's OnDisconnect.
func TestDuplicateDPIDRefusedWhileOldSessionAnswers(t *testing.T) {
	sess := eventSession{ev: make(chan event, 8)}
	srv := &Server{Session: sess}
	addr := startServer(t, srv)

	a := newTCPSwitch(t, dialFrom(t, addr, ""))
	a.handshake(7)
	ea := sess.next(t, "first switch connects")
	if !ea.connect || ea.c.DPID() != 7 {
		t.Fatalf("first event %+v", ea)
	}
	var muteA atomic.Bool
	answerEchoes(a, &muteA)

	// An impostor claims dpid 7 while the switch answers: refused.
	b := newTCPSwitch(t, dialFrom(t, addr, ""))
	b.handshake(7)
	if !closedByPeer(b.nc, b.br, 5*time.Second) {
		t.Fatal("a connection claiming a live switch's datapath id was kept open")
	}
	sess.none(t, 200*time.Millisecond)
	select {
	case <-ea.c.Done():
		t.Fatalf("the live switch's session was closed by an impostor: %v", ea.c.Err())
	default:
	}

	// The switch goes silent (a dead TCP session): the next claimant
	// replaces it, and the old session is torn down first.
	muteA.Store(true)
	c := newTCPSwitch(t, dialFrom(t, addr, ""))
	c.handshake(7)
	e1 := sess.next(t, "old session disconnects")
	e2 := sess.next(t, "new session connects")
	if e1.connect || e1.c != ea.c || !e2.connect || e2.c.DPID() != 7 || e2.c == ea.c {
		t.Fatalf("want OnDisconnect(old) then OnConnect(new); got connect=%v then connect=%v", e1.connect, e2.connect)
	}
}

// The exact certificate identities BindDPID accepts, over real TLS.
func TestBindDPIDToCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCerts(t, dir)
	srvCert := leaf(t, ca, caKey, "controller")
	clientPool := x509.NewCertPool()
	clientPool.AddCert(ca)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: clientPool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	sess := eventSession{ev: make(chan event, 16)}
	obs := &countObserver{}
	srv := &Server{TLS: tlsCfg, Session: sess, BindDPID: true, Observer: obs,
		ChassisOf: func(d uint64) (string, bool) { return "hv1", d == 0xa1 }}
	addr := startServer(t, srv)

	mk := func(cn string, dns []string, uris ...string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dns,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		for _, u := range uris {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, pu)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		dpid   uint64
		accept bool
	}{
		{"no dpid in certificate", mk("switch", nil), 0xab, false},
		{"URI SAN dpid:<hex>", mk("switch", nil, "dpid:00000000000000ab"), 0xab, true},
		{"DNS SAN <hex>", mk("switch", []string{"00000000000000AC"}), 0xac, true},
		{"CN dpid:<hex>", mk("dpid:00000000000000ad", nil), 0xad, true},
		{"another switch's dpid", mk("switch", nil, "dpid:00000000000000ab"), 0xae, false},
		{"short hex is not the dpid", mk("ab", nil), 0xab, false},
		{"chassis's dpid named without the chassis", mk("switch", nil, "dpid:00000000000000a1"), 0xa1, false},
		{"chassis's dpid, chassis's certificate", mk("hv1", nil), 0xa1, true},
		{"chassis name in a DNS SAN", mk("x", []string{"hv1"}), 0xa1, true},
		{"chassis certificate claiming a plain switch", mk("hv1", nil), 0xaf, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{tc.cert}})
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sw := newTCPSwitch(t, nc)
			sw.handshake(tc.dpid)
			if !tc.accept {
				if !closedByPeer(nc, sw.br, 5*time.Second) {
					t.Fatal("switch without a binding certificate was kept")
				}
				sess.none(t, 100*time.Millisecond)
				return
			}
			e := sess.next(t, "bound switch connects")
			if !e.connect || e.c.DPID() != tc.dpid {
				t.Fatalf("event %+v", e)
			}
			nc.Close()
			if e := sess.next(t, "disconnect"); e.connect {
				t.Fatal("want disconnect")
			}
		})
	}
	if _, refused, _ := obs.get(); refused[RefusedNotBound] != 5 {
		t.Fatalf("refusals counted: %v, want 5 %s", refused, RefusedNotBound)
	}
}

// Without TLS, BindDPID cannot be satisfied: Listen refuses the setting.
func TestBindDPIDNeedsTLS(t *testing.T) {
	srv := &Server{Addr: "127.0.0.1:0", BindDPID: true}
	if _, err := srv.Listen(); err == nil {
		t.Fatal("BindDPID without TLS accepted")
	}
}

// Connections over the total cap or the per-address cap are closed at once
// (before any HELLO) and counted; closing one makes room again.
func TestConnectionCaps(t *testing.T) {
	obs := &countObserver{}
	srv := &Server{MaxConns: 5, MaxConnsPerAddr: 3, Observer: obs, Conn: Config{HandshakeTimeout: time.Minute}}
	addr := startServer(t, srv)
	accepted := func(nc net.Conn) bool {
		// An accepted connection gets our HELLO; a refused one EOF.
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		defer nc.SetReadDeadline(time.Time{})
		var hdr [8]byte
		_, err := io.ReadFull(nc, hdr[:])
		return err == nil && hdr[1] == TypeHello
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		nc := dialFrom(t, addr, "127.0.0.1")
		if !accepted(nc) {
			t.Fatalf("connection %d from 127.0.0.1 refused under the cap", i)
		}
		held = append(held, nc)
	}
	if accepted(dialFrom(t, addr, "127.0.0.1")) {
		t.Fatal("a 4th connection from one address was accepted (per-address cap 3)")
	}
	for i := 0; i < 2; i++ {
		if !accepted(dialFrom(t, addr, "127.0.0.2")) {
			t.Fatalf("connection %d from 127.0.0.2 refused under the caps", i)
		}
	}
	if accepted(dialFrom(t, addr, "127.0.0.3")) {
		t.Fatal("a 6th connection was accepted (total cap 5)")
	}
	open, refused, _ := obs.get()
	if open != 5 || refused[RefusedMaxConnsPerAddr] != 1 || refused[RefusedMaxConns] != 1 {
		t.Fatalf("open=%d refused=%v", open, refused)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.OpenConns() != 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !accepted(dialFrom(t, addr, "127.0.0.3")) {
		t.Fatal("no room after a connection closed")
	}
}

// A peer that never completes the handshake (silent, or dribbling one byte
// at a time) is closed at the handshake deadline and counted.
func TestHandshakeDeadline(t *testing.T) {
	obs := &countObserver{}
	srv := &Server{Observer: obs, Conn: Config{HandshakeTimeout: 300 * time.Millisecond}}
	addr := startServer(t, srv)
	silent := dialFrom(t, addr, "")
	slow := dialFrom(t, addr, "")
	go func() {
		hello := AppendHello(nil, 1)
		for _, b := range hello[:len(hello)-1] {
			if _, err := slow.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for _, nc := range []net.Conn{silent, slow} {
		if !closedByPeer(nc, bufio.NewReader(nc), 5*time.Second) {
			t.Fatal("a connection that never completed the handshake is still open")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.OpenConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, dropped := obs.get(); dropped[DroppedHandshake] != 2 || srv.OpenConns() != 0 {
		t.Fatalf("dropped=%v open=%d", dropped, srv.OpenConns())
	}
}

// portDescPart is one PORT_DESC reply part with n ports.
func portDescPart(xid uint32, more bool, n int) []byte { return mpPart(xid, MPPortDesc, more, n) }

// mpPart is one multipart reply part of type mpType with a body of n
// zeroed port-sized records.
func mpPart(xid uint32, mpType uint16, more bool, n int) []byte {
	b, st := startMsg(nil, TypeMultipartReply, xid)
	b = put16(b, mpType)
	var flags uint16
	if more {
		flags = 1
	}
	b = put16(b, flags)
	b = pad(b, 4)
	b = append(b, make([]byte, n*portLen)...)
	return finishFixed(b, st)
}

// A PORT_DESC reply that never ends (REPLY_MORE forever) is cut off at the
// default cap with ErrMultipartTooBig, and the connection closed; before,
// the controller buffered whatever the peer sent (48 MiB was seen).
func TestMultipartFloodCapped(t *testing.T) {
	c, sw := pipeConn(t, Config{})
	handshake(t, c, sw)
	served := make(chan error, 1)
	go func() { served <- c.Serve(nil) }()
	res := make(chan error, 1)
	go func() { _, err := c.PortDesc(context.Background()); res <- err }()
	h, _ := sw.read()
	part := portDescPart(h.Xid, true, 1000) // 64 kB per part
	sent := 0
	for sent < 16<<20 {
		if _, err := sw.nc.Write(part); err != nil {
			break
		}
		sent += len(part)
	}
	if sent >= 16<<20 {
		t.Fatalf("the controller accepted %d bytes of one PORT_DESC reply", sent)
	}
	if err := <-res; !errors.Is(err, ErrMultipartTooBig) {
		t.Fatalf("PortDesc error %v, want ErrMultipartTooBig", err)
	}
	if err := <-served; !errors.Is(err, ErrMultipartTooBig) {
		t.Fatalf("connection ended with %v, want ErrMultipartTooBig", err)
	}
	t.Logf("cut off after %d bytes (cap %d)", sent, portDescMaxBytes)
}

// The byte cap and the part cap of other multipart replies.
func TestMultipartCaps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		ports int
	}{
		{"bytes", Config{MaxMultipartBytes: 100 << 10}, 100},
		{"empty parts", Config{MaxMultipartParts: 50}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sw := pipeConn(t, tc.cfg)
			handshake(t, c, sw)
			go c.Serve(nil)
			res := make(chan error, 1)
			go func() { _, err := c.Multipart(context.Background(), MPFlow, nil); res <- err }()
			h, _ := sw.read()
			part := mpPart(h.Xid, MPFlow, true, tc.ports)
			for i := 0; i < 10000; i++ {
				if _, err := sw.nc.Write(part); err != nil {
					break
				}
			}
			if err := <-res; !errors.Is(err, ErrMultipartTooBig) {
				t.Fatalf("error %v, want ErrMultipartTooBig", err)
			}
			<-c.Done()
		})
	}
}

// A switch that leaves a request unanswered is closed after
// RequestTimeout; a multipart reply still arriving part by part is given
// more time.
func TestRequestTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("barrier", func(t *testing.T) {
		c, sw := pipeConn(t, Config{RequestTimeout: timeout})
		handshake(t, c, sw)
		go c.Serve(nil)
		go io.Copy(io.Discard, sw.br) // reads everything, answers nothing
		err := c.Barrier(context.Background())
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("barrier error %v, want ErrTimeout", err)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("connection left open after a request timed out")
		}
	})
	t.Run("role", func(t *testing.T) {
		c, sw := pipeConn(t, Config{RequestTimeout: timeout})
		handshake(t, c, sw)
		go c.Serve(nil)
		go io.Copy(io.Discard, sw.br)
		if _, _, err := c.SetRole(context.Background(), RoleMaster, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("role error %v, want ErrTimeout", err)
		}
	})
	t.Run("slow multipart", func(t *testing.T) {
		c, sw := pipeConn(t, Config{RequestTimeout: timeout})
		handshake(t, c, sw)
		go c.Serve(nil)
		res := make(chan error, 1)
		var got []Port
		go func() { ps, err := c.PortDesc(context.Background()); got = ps; res <- err }()
		h, _ := sw.read()
		for i := 0; i < 6; i++ { // 6 parts 100 ms apart: 600 ms > timeout
			sw.nc.Write(portDescPart(h.Xid, i < 5, 1))
			time.Sleep(timeout / 3)
		}
		if err := <-res; err != nil || len(got) != 6 {
			t.Fatalf("steady multipart reply: %d ports, %v", len(got), err)
		}
	})
}

// A connection reads through a small buffer until its handshake is done,
// and a peer's big message before the handshake is skipped unbuffered.
func TestSmallBuffersBeforeHandshake(t *testing.T) {
	c, sw := pipeConn(t, Config{})
	if c.br.Size() > 4<<10 {
		t.Fatalf("read buffer of %d bytes before the handshake", c.br.Size())
	}
	big := portDescPart(1, false, 1000) // 64 kB, not a handshake message
	go sw.nc.Write(big)
	handshake(t, c, sw)
	if cap(c.body) > 4<<10 {
		t.Fatalf("a 64 kB message before the handshake was buffered (%d bytes)", cap(c.body))
	}
	if c.br.Size() < 64<<10 {
		t.Fatalf("read buffer of %d bytes after the handshake", c.br.Size())
	}
}

// A listener-wide budget bounds the multipart bytes of all connections
// together: two switches each within the per-reply cap, whose replies
// together pass the budget, get the second one closed; the first
// completes, and the budget is whole again afterwards.
func TestMultipartBudgetShared(t *testing.T) {
	budget := NewBudget(1 << 20)
	cfg := Config{MaxMultipartBytes: 1 << 20, Budget: budget}
	type sw struct {
		c   *Conn
		sw  *fakeSwitch
		res chan error
		xid uint32
	}
	var sws []*sw
	for i := 0; i < 2; i++ {
		c, s := pipeConn(t, cfg)
		handshake(t, c, s)
		go c.Serve(nil)
		x := &sw{c: c, sw: s, res: make(chan error, 1)}
		go func() { _, err := c.Multipart(context.Background(), MPFlow, nil); x.res <- err }()
		h, _ := s.read()
		x.xid = h.Xid
		sws = append(sws, x)
	}
	part := func(xid uint32, more bool) []byte { return mpPart(xid, MPFlow, more, 100) } // 6.4 kB
	// The first switch holds 600 kB of an unfinished reply (its buffer
	// doubles to 1 MiB at most: within the budget only if alone).
	for sent := 0; sent < 600<<10; sent += 100 * portLen {
		if _, err := sws[0].sw.nc.Write(part(sws[0].xid, true)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for budget.Used() < 600<<10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if budget.Used() < 600<<10 {
		t.Fatalf("budget used %d after 600 kB of a reply", budget.Used())
	}
	// The second switch's reply of 600 kB does not fit next to it.
	go func() {
		for i := 0; i < 10000; i++ {
			if _, err := sws[1].sw.nc.Write(part(sws[1].xid, true)); err != nil {
				return
			}
		}
	}()
	if err := <-sws[1].res; !errors.Is(err, ErrMultipartTooBig) {
		t.Fatalf("second switch: %v, want ErrMultipartTooBig (budget)", err)
	}
	<-sws[1].c.Done()
	// The first finishes its reply and gets it whole.
	if _, err := sws[0].sw.nc.Write(part(sws[0].xid, false)); err != nil {
		t.Fatal(err)
	}
	if err := <-sws[0].res; err != nil {
		t.Fatalf("first switch: %v", err)
	}
	if u := budget.Used(); u != 0 {
		t.Fatalf("budget holds %d bytes after both replies ended", u)
	}
}
