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
	"sync"
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
// after the connection ends.
type Session interface {
	OnConnect(c *Conn) Handler
	OnDisconnect(c *Conn, err error)
}

// Server accepts switch connections.
type Server struct {
	Addr    string
	TLS     *tls.Config
	Conn    Config
	Session Session
	Logger  *slog.Logger

	mu sync.Mutex
	ln net.Listener
	wg sync.WaitGroup
}

// Listen binds the listener; Serve accepts on it.
func (s *Server) Listen() (net.Addr, error) {
	if s.Logger == nil {
		s.Logger = slog.Default()
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

// Serve accepts connections until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("ofproto: accept: %w", err)
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, nc)
		}()
	}
}

func (s *Server) handle(ctx context.Context, nc net.Conn) {
	cfg := s.Conn
	cfg.Logger = s.Logger
	c := newConn(nc, cfg)
	stop := context.AfterFunc(ctx, func() { c.Close(ctx.Err()) })
	defer stop()
	if err := c.Handshake(); err != nil {
		if errors.Is(err, ErrVersion) {
			c.log.Warn("switch rejected: HELLO_FAILED sent", "err", err)
		} else {
			c.log.Warn("switch handshake failed", "err", err)
		}
		c.Close(err)
		return
	}
	c.log.Info("switch connected", "n_tables", c.Features.NTables)
	var h Handler
	if s.Session != nil {
		h = s.Session.OnConnect(c)
	}
	err := c.Serve(h)
	c.log.Info("switch disconnected", "reason", err)
	if s.Session != nil {
		s.Session.OnDisconnect(c, err)
	}
}
