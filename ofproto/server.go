package ofproto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// TLSFiles configures TLS with client-certificate verification.
type TLSFiles struct {
	Cert, Key, CA string
}

// Enabled reports whether TLS is configured.
func (t TLSFiles) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Config builds a tls.Config that requires switches to present a
// certificate signed by CA.
func (t TLSFiles) Config() (*tls.Config, error) {
	if t.Cert == "" || t.Key == "" || t.CA == "" {
		return nil, errors.New("ofproto: TLS needs cert, key and ca files")
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("ofproto: loading TLS key pair: %w", err)
	}
	pem, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("ofproto: reading CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ofproto: no certificates in %s", t.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
}

// Session is what a server user does with a connected switch: OnConnect
// returns the Handler for its asynchronous messages; OnDisconnect runs
// after the connection ends. The server never runs OnConnect for a
// datapath id before the OnDisconnect of its previous session returned.
type Session interface {
	OnConnect(c *Conn) Handler
	OnDisconnect(c *Conn, err error)
}

// Observer counts what the listener does (metrics implements it).
type Observer interface {
	// OpenConns reports the number of open connections, handshaking or
	// not, after each change.
	OpenConns(n int)
	// ConnRefused counts a connection refused, by reason (RefusedMaxConns,
	// RefusedMaxConnsPerAddr, RefusedDuplicateDPID, RefusedNotBound).
	ConnRefused(reason string)
	// ConnDropped counts a connection closed for misbehaviour, by reason
	// (DroppedHandshake, DroppedTimeout, DroppedMultipart).
	ConnDropped(reason string)
}

// Reasons reported to Observer.
const (
	RefusedMaxConns        = "max_conns"
	RefusedMaxConnsPerAddr = "max_conns_per_addr"
	RefusedDuplicateDPID   = "duplicate_dpid"
	RefusedNotBound        = "dpid_not_bound"
	DroppedHandshake       = "handshake"
	DroppedTimeout         = "request_timeout"
	DroppedMultipart       = "multipart_too_big"
)

// Defaults of the connection caps and of the duplicate-dpid probe.
//
// DefaultMaxConnsPerAddr is 256 rather than a handful because test labs
// and Mininet run every bridge from 127.0.0.1, and one host (a
// hypervisor's br-int plus its physical bridges, or a NAT in front of a
// rack) legitimately holds several; 256 still keeps one address from
// taking more than a sixteenth of DefaultMaxConns.
const (
	DefaultMaxConns        = 4096
	DefaultMaxConnsPerAddr = 256
	DefaultDupProbe        = time.Second
)

// ErrDuplicateDPID is returned for a connection that claims the datapath
// id of a live session.
var ErrDuplicateDPID = errors.New("ofproto: datapath id already has a live session")

// ErrNotBound is returned for a connection whose certificate does not
// name its datapath id (or the chassis that owns it) while
// Server.BindDPID is on.
var ErrNotBound = errors.New("ofproto: certificate does not name the datapath id")

// Server accepts switch connections.
type Server struct {
	Addr    string
	TLS     *tls.Config
	Conn    Config
	Session Session
	Logger  *slog.Logger
	// MaxConns caps the open connections (0: DefaultMaxConns) and
	// MaxConnsPerAddr those from one remote IP (0: DefaultMaxConnsPerAddr).
	// A connection over either cap is closed at once.
	MaxConns        int
	MaxConnsPerAddr int
	// DupProbe bounds the echo that decides, when a new connection claims
	// the datapath id of a session, whether that session is alive (then
	// the newcomer is refused) or dead (then it is closed and replaced).
	DupProbe time.Duration
	// BindDPID (TLS only) accepts a switch only when its certificate
	// names its datapath id, or, for a datapath id that a registered
	// chassis owns (ChassisOf), that chassis. See CertNamesDPID.
	BindDPID bool
	// ChassisOf returns the name of the chassis that registered dpid.
	ChassisOf func(dpid uint64) (string, bool)
	Observer  Observer

	mu       sync.Mutex
	ln       net.Listener
	wg       sync.WaitGroup
	nconns   int
	perAddr  map[string]int
	sessions map[uint64]*session
	limits   map[string]*rateLimit
}

// session is the live connection of one datapath id.
type session struct {
	c       *Conn
	gone    chan struct{} // closed after OnDisconnect returned
	probing bool          // a newcomer is probing it
}

// Listen binds the listener; Serve accepts on it.
func (s *Server) Listen() (net.Addr, error) {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.BindDPID && s.TLS == nil {
		return nil, errors.New("ofproto: binding datapath ids to certificates needs TLS")
	}
	var ln net.Listener
	var err error
	if s.TLS != nil {
		ln, err = tls.Listen("tcp", s.Addr, s.TLS)
	} else {
		ln, err = net.Listen("tcp", s.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ofproto: listen on %s: %w", s.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln.Addr(), nil
}

// initLocked fills in the defaults and the bookkeeping maps, once.
func (s *Server) initLocked() {
	if s.MaxConns <= 0 {
		s.MaxConns = DefaultMaxConns
	}
	if s.MaxConnsPerAddr <= 0 {
		s.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if s.DupProbe <= 0 {
		s.DupProbe = DefaultDupProbe
	}
	if s.sessions == nil {
		s.perAddr = map[string]int{}
		s.sessions = map[uint64]*session{}
		s.limits = map[string]*rateLimit{}
	}
}

// Serve accepts connections until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.initLocked()
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.wg.Wait()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("ofproto: accept: %w", err)
			}
			// Out of descriptors or memory, or a timeout: wait a little
			// and go on, as net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logLimited("accept", slog.LevelWarn, "accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		host := remoteHost(nc.RemoteAddr())
		if reason := s.admit(host); reason != "" {
			nc.Close()
			s.refused(reason, "connection refused: too many connections", "remote", nc.RemoteAddr().String(),
				"max_conns", s.MaxConns, "max_conns_per_addr", s.MaxConnsPerAddr)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(host)
			s.handle(ctx, nc)
		}()
	}
}

func remoteHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts a new connection from host, or says why it is refused.
func (s *Server) admit(host string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.nconns >= s.MaxConns:
		return RefusedMaxConns
	case s.perAddr[host] >= s.MaxConnsPerAddr:
		return RefusedMaxConnsPerAddr
	}
	s.nconns++
	s.perAddr[host]++
	if s.Observer != nil {
		s.Observer.OpenConns(s.nconns)
	}
	return ""
}

func (s *Server) release(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nconns--
	if s.perAddr[host]--; s.perAddr[host] <= 0 {
		delete(s.perAddr, host)
	}
	if s.Observer != nil {
		s.Observer.OpenConns(s.nconns)
	}
}

// OpenConns is the number of open connections.
func (s *Server) OpenConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

func (s *Server) refused(reason, msg string, args ...any) {
	if s.Observer != nil {
		s.Observer.ConnRefused(reason)
	}
	s.logLimited(reason, slog.LevelWarn, msg, append(args, "reason", reason)...)
}

func (s *Server) dropped(reason string) {
	if s.Observer != nil {
		s.Observer.ConnDropped(reason)
	}
}

// rateLimit lets one log line of a kind through per second and counts
// the ones it holds back, so a flood of junk connections cannot flood
// the log.
type rateLimit struct {
	last       time.Time
	suppressed int
}

func (s *Server) logLimited(kind string, level slog.Level, msg string, args ...any) {
	s.mu.Lock()
	if s.limits == nil {
		s.limits = map[string]*rateLimit{}
	}
	l := s.limits[kind]
	if l == nil {
		l = &rateLimit{}
		s.limits[kind] = l
	}
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		l.suppressed++
		s.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	s.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	s.Logger.Log(context.Background(), level, msg, args...)
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	cfg := s.Conn
	cfg.Logger = s.Logger
	c := newConn(nc, cfg)
	stop := context.AfterFunc(ctx, func() { c.Close(ctx.Err()) })
	defer stop()
	if err := c.Handshake(); err != nil {
		if errors.Is(err, ErrVersion) {
			s.logLimited("version", slog.LevelWarn, "switch rejected: HELLO_FAILED sent", "remote", nc.RemoteAddr().String(), "err", err)
		} else {
			s.dropped(DroppedHandshake)
			s.logLimited("handshake", slog.LevelWarn, "switch handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		}
		c.Close(err)
		return
	}
	if err := s.checkIdentity(c); err != nil {
		s.refused(RefusedNotBound, "switch refused: certificate does not bind its datapath id", "remote", nc.RemoteAddr().String(),
			"dpid", DPIDString(c.DPID()), "err", err)
		c.Close(err)
		return
	}
	ss, err := s.claim(ctx, c)
	if err != nil {
		s.refused(RefusedDuplicateDPID, "switch refused: its datapath id has a live session", "remote", nc.RemoteAddr().String(),
			"dpid", DPIDString(c.DPID()), "err", err)
		c.Close(err)
		return
	}
	defer s.unclaim(ss)
	c.log.Info("switch connected", "n_tables", c.Features.NTables)
	var h Handler
	if s.Session != nil {
		h = s.Session.OnConnect(c)
	}
	err = c.Serve(h)
	switch {
	case errors.Is(err, ErrTimeout):
		s.dropped(DroppedTimeout)
	case errors.Is(err, ErrMultipartTooBig):
		s.dropped(DroppedMultipart)
	}
	c.log.Info("switch disconnected", "reason", err)
	if s.Session != nil {
		s.Session.OnDisconnect(c, err)
	}
}

// claim makes c the session of its datapath id. When another session
// holds the id, that session is probed with an echo: if it answers within
// DupProbe the newcomer is refused (ErrDuplicateDPID), so a peer claiming
// a live switch's datapath id cannot evict it; if not, the old session is
// dead (a switch that reconnected before its old TCP connection timed
// out), so it is closed and c replaces it once its OnDisconnect is done.
func (s *Server) claim(ctx context.Context, c *Conn) (*session, error) {
	d := c.DPID()
	s.mu.Lock()
	old := s.sessions[d]
	if old == nil {
		ss := &session{c: c, gone: make(chan struct{})}
		s.sessions[d] = ss
		s.mu.Unlock()
		return ss, nil
	}
	if old.probing {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w (%s): another new connection is already contesting it", ErrDuplicateDPID, old.c.RemoteAddr())
	}
	old.probing = true
	s.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, s.DupProbe)
	res := make(chan error, 1)
	go func() { res <- old.c.Echo(pctx) }() // Send may block on a stuck peer
	var err error
	select {
	case err = <-res:
	case <-pctx.Done():
		err = pctx.Err()
	}
	cancel()
	if err == nil {
		s.mu.Lock()
		old.probing = false
		s.mu.Unlock()
		return nil, fmt.Errorf("%w (%s answered an echo)", ErrDuplicateDPID, old.c.RemoteAddr())
	}
	old.c.log.Warn("closing session: a new connection claims its datapath id and it did not answer an echo",
		"new_remote", c.RemoteAddr().String(), "probe", s.DupProbe, "err", err)
	old.c.Close(fmt.Errorf("ofproto: replaced by a new connection from %s (no echo reply within %s)", c.RemoteAddr(), s.DupProbe))
	select {
	case <-old.gone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[d] != nil {
		return nil, fmt.Errorf("%w (%s)", ErrDuplicateDPID, s.sessions[d].c.RemoteAddr())
	}
	ss := &session{c: c, gone: make(chan struct{})}
	s.sessions[d] = ss
	return ss, nil
}

func (s *Server) unclaim(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.c.DPID()] == ss {
		delete(s.sessions, ss.c.DPID())
	}
	s.mu.Unlock()
	close(ss.gone)
}

// checkIdentity enforces BindDPID.
func (s *Server) checkIdentity(c *Conn) error {
	if !s.BindDPID {
		return nil
	}
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return fmt.Errorf("%w: not a TLS connection", ErrNotBound)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrNotBound)
	}
	d := c.DPID()
	if s.ChassisOf != nil {
		if ch, ok := s.ChassisOf(d); ok {
			if CertNamesChassis(certs[0], ch) {
				return nil
			}
			return fmt.Errorf("%w: datapath id %s belongs to chassis %q, which the certificate (%s) does not name",
				ErrNotBound, DPIDString(d), ch, certIdentity(certs[0]))
		}
	}
	if CertNamesDPID(certs[0], d) {
		return nil
	}
	return fmt.Errorf("%w: certificate (%s) does not name datapath id %s (want CN or DNS SAN %s, or URI SAN dpid:%s)",
		ErrNotBound, certIdentity(certs[0]), DPIDString(d), DPIDString(d), DPIDString(d))
}

// CertNamesDPID reports whether a certificate names datapath id d: its
// subject CN, a DNS SAN or a URI SAN is "dpid:" followed by the 16 hex
// digits of d (as ovs-vsctl prints it), or, for the CN and DNS SANs, just
// the 16 hex digits. Case does not matter.
func CertNamesDPID(cert *x509.Certificate, d uint64) bool {
	hex := DPIDString(d)
	for _, n := range certNames(cert) {
		if strings.EqualFold(n, "dpid:"+hex) || strings.EqualFold(n, hex) {
			return true
		}
	}
	return false
}

// CertNamesChassis reports whether a certificate's subject CN or one of
// its DNS SANs is the chassis name (exactly).
func CertNamesChassis(cert *x509.Certificate, chassis string) bool {
	if chassis == "" {
		return false
	}
	if cert.Subject.CommonName == chassis {
		return true
	}
	return slices.Contains(cert.DNSNames, chassis)
}

func certNames(cert *x509.Certificate) []string {
	out := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	for _, u := range cert.URIs {
		out = append(out, u.String())
	}
	return out
}

func certIdentity(cert *x509.Certificate) string {
	return fmt.Sprintf("CN=%q DNS=%q URI=%q", cert.Subject.CommonName, cert.DNSNames, cert.URIs)
}
