// Package ofovs connects a real Open vSwitch bridge to an in-test OpenFlow
// server, so a test can install state through Nimbus's own codec and
// bundles and then ask OVS (ofproto/trace, dump-flows) what it holds.
package ofovs

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
)

type capture struct{ conns chan *ofproto.Conn }

func (c *capture) OnConnect(conn *ofproto.Conn) ofproto.Handler { c.conns <- conn; return nil }
func (c *capture) OnDisconnect(*ofproto.Conn, error)            {}

// Bridge makes a fresh bridge whose only controller is an OpenFlow server
// of this test, and returns it with the server's connection to it. The
// server stops when the test ends; the bridge goes with ovslab's cleanup.
func Bridge(t testing.TB) (*ovslab.Bridge, *ofproto.Conn) {
	t.Helper()
	sess := &capture{conns: make(chan *ofproto.Conn, 4)}
	srv := &ofproto.Server{Addr: "127.0.0.1:0", Session: sess,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{"tcp:" + addr.String()}})
	select {
	case conn := <-sess.conns:
		return br, conn
	case <-time.After(15 * time.Second):
		t.Fatal("ofovs: bridge never connected")
	}
	return nil, nil
}
