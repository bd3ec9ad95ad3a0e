package ofproto

import (
	"context"
	"log/slog"
	"net"
)

// ServeConn serves one connection the caller accepted itself (or a test's
// net.Pipe) exactly as Serve serves an accepted one: handshake, Session
// callbacks, read loop. It returns when the connection ends.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.mu.Lock()
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.initLocked()
	s.mu.Unlock()
	s.handle(ctx, nc)
}
