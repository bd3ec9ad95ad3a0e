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
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeSwitch is the switch side of a connection, for unit tests.
type fakeSwitch struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (s *fakeSwitch) read() (Header, []byte) {
	s.t.Helper()
	var hdr [8]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		s.t.Fatalf("fake switch read: %v", err)
	}
	h, _ := ParseHeader(hdr[:])
	body := make([]byte, int(h.Length)-8)
	if _, err := io.ReadFull(s.br, body); err != nil {
		s.t.Fatalf("fake switch read body: %v", err)
	}
	return h, body
}

// handshake answers HELLO and FEATURES as a switch.
func (s *fakeSwitch) handshake(dpid uint64) {
	s.t.Helper()
	go s.nc.Write(AppendHello(nil, 1)) // net.Pipe is unbuffered
	if h, _ := s.read(); h.Type != TypeHello {
		s.t.Fatalf("want HELLO, got %s", TypeName(h.Type))
	}
	h, _ := s.read()
	if h.Type != TypeFeaturesReq {
		s.t.Fatalf("want FEATURES_REQUEST, got %s", TypeName(h.Type))
	}
	b, st := startMsg(nil, TypeFeaturesReply, h.Xid)
	b = put64(b, dpid)
	b = put32(b, 0)
	b = append(b, 254, 0, 0, 0)
	b = put32(b, 0)
	b = put32(b, 0)
	go s.nc.Write(must(finishMsg(b, st)))
	if h, _ := s.read(); h.Type != TypeSetConfig {
		s.t.Fatalf("want SET_CONFIG, got %s", TypeName(h.Type))
	}
}

// handshake runs both sides and returns once the fake switch is done
// reading, so the test can use it without racing the handshake goroutine.
func handshake(t *testing.T, c *Conn, sw *fakeSwitch) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); sw.handshake(7) }()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	<-done
}

func pipeConn(t *testing.T, cfg Config) (*Conn, *fakeSwitch) {
	a, b := net.Pipe()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c := newConn(a, cfg)
	sw := &fakeSwitch{t: t, nc: b, br: bufio.NewReader(b)}
	t.Cleanup(func() { a.Close(); b.Close() })
	return c, sw
}

func TestKeepaliveDetectsDeadSwitch(t *testing.T) {
	c, sw := pipeConn(t, Config{EchoInterval: 50 * time.Millisecond, DeadAfter: 200 * time.Millisecond})
	handshake(t, c, sw)
	served := make(chan error, 1)
	go func() { served <- c.Serve(nil) }()
	// The switch answers the first echo, then goes silent.
	h, body := sw.read()
	if h.Type != TypeEchoRequest {
		t.Fatalf("want an echo request from an idle controller, got %s", TypeName(h.Type))
	}
	sw.nc.Write(AppendEcho(nil, TypeEchoReply, h.Xid, body))
	go io.Copy(io.Discard, sw.br) // keep draining, never answer
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("connection ended without a reason")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("silent switch was never declared dead")
	}
}

func TestAnswersSwitchEcho(t *testing.T) {
	c, sw := pipeConn(t, Config{})
	handshake(t, c, sw)
	go c.Serve(nil)
	sw.nc.Write(AppendEcho(nil, TypeEchoRequest, 99, []byte("ping")))
	h, body := sw.read()
	if h.Type != TypeEchoReply || h.Xid != 99 || string(body) != "ping" {
		t.Fatalf("echo reply %s xid %d body %q", TypeName(h.Type), h.Xid, body)
	}
}

func TestHelloFailedForOpenFlow10(t *testing.T) {
	c, sw := pipeConn(t, Config{})
	errc := make(chan error, 1)
	go func() { errc <- c.Handshake() }()
	go sw.nc.Write([]byte{1, TypeHello, 0, 8, 0, 0, 0, 5})
	sw.read() // our HELLO
	h, body := sw.read()
	if h.Type != TypeError || be.Uint16(body) != ErrHelloFailed || be.Uint16(body[2:]) != ErrCodeIncompatible {
		t.Fatalf("want HELLO_FAILED/INCOMPATIBLE, got %s %x", TypeName(h.Type), body)
	}
	if err := <-errc; !errors.Is(err, ErrVersion) {
		t.Fatalf("handshake error %v, want ErrVersion", err)
	}
}

func TestBarrierAndMultipartMatchedByXid(t *testing.T) {
	c, sw := pipeConn(t, Config{})
	handshake(t, c, sw)
	go c.Serve(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- c.Barrier(ctx) }()
	h, _ := sw.read()
	// An unrelated barrier reply must not complete the wait.
	sw.nc.Write(AppendSimple(nil, TypeBarrierReply, h.Xid+1000))
	select {
	case err := <-res:
		t.Fatalf("barrier completed by the wrong xid: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	sw.nc.Write(AppendSimple(nil, TypeBarrierReply, h.Xid))
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// A two-part port description.
	got := make(chan []Port, 1)
	go func() { ps, _ := c.PortDesc(ctx); got <- ps }()
	h, _ = sw.read()
	part := func(flags uint16, no uint32) []byte {
		b, st := startMsg(nil, TypeMultipartReply, h.Xid)
		b = put16(b, MPPortDesc)
		b = put16(b, flags)
		b = pad(b, 4)
		p := make([]byte, portLen)
		be.PutUint32(p, no)
		copy(p[16:], "eth")
		return must(finishMsg(append(b, p...), st))
	}
	sw.nc.Write(part(1, 1))
	sw.nc.Write(part(0, 2))
	if ps := <-got; len(ps) != 2 || ps[0].No != 1 || ps[1].No != 2 || ps[1].Name != "eth" {
		t.Fatalf("port desc across two parts: %+v", ps)
	}
}

// writeCert makes a self-signed CA, and a leaf signed by it.
func writeCerts(t *testing.T, dir string) (ca *x509.Certificate, caKey *ecdsa.PrivateKey) {
	caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nimbus-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return ca, caKey
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type chanSession struct{ c chan *Conn }

func (s chanSession) OnConnect(c *Conn) Handler { s.c <- c; return nil }
func (chanSession) OnDisconnect(*Conn, error)   {}

func TestTLSRequiresClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCerts(t, dir)
	srvCert := leaf(t, ca, caKey, "controller")
	keyDER, _ := x509.MarshalECPrivateKey(srvCert.PrivateKey.(*ecdsa.PrivateKey))
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvCert.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cfg, err := TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}.Config()
	if err != nil {
		t.Fatal(err)
	}
	sess := chanSession{c: make(chan *Conn, 1)}
	srv := &Server{Addr: "127.0.0.1:0", TLS: cfg, Session: sess, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	// Without a client certificate: refused.
	nc, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err == nil {
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = nc.Read(make([]byte, 8))
		nc.Close()
	}
	if err == nil {
		t.Fatal("switch without a client certificate was served")
	}
	// With one signed by the CA: handshake completes.
	nc, err = tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{leaf(t, ca, caKey, "switch")}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sw := &fakeSwitch{t: t, nc: nc, br: bufio.NewReader(nc)}
	sw.handshake(0xab)
	select {
	case c := <-sess.c:
		if c.DPID() != 0xab {
			t.Fatalf("dpid %x", c.DPID())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("TLS switch never connected")
	}
}
