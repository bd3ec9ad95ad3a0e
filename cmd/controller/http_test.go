package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/nimbus-sdn/nimbus/config"
)

// startHTTP serves h through newHTTPServer with the timeouts given as
// flags, on a loopback port.
func startHTTP(t *testing.T, h http.Handler, flags ...string) string {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(context.Background(), cfg, h)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// trickle writes chunks one every gap until the server closes the
// connection or budget runs out, and returns how long the server took to
// cut it off (or budget and false).
func trickle(t *testing.T, c net.Conn, head string, chunk string, gap, budget time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // returns when the server closes
		close(closed)
	}()
	for time.Since(start) < budget {
		select {
		case <-closed:
			return time.Since(start), true
		case <-time.After(gap):
		}
		if _, err := io.WriteString(c, chunk); err != nil {
			return time.Since(start), true
		}
	}
	return budget, false
}

// TestHTTPServerCutsSlowClients: a slowloris client (headers one line at
// a time, forever), a slow-body client (headers, then a byte at a time)
// and an idle keep-alive connection are each cut off after their
// timeout, while a normal request is served.
func TestHTTPServerCutsSlowClients(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		fmt.Fprintln(w, "ok")
	})
	addr := startHTTP(t, h, "--api-read-header-timeout", "300ms", "--api-read-timeout", "1s",
		"--api-write-timeout", "2s", "--api-idle-timeout", "500ms")
	const budget = 8 * time.Second
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	resp, err := http.Post("http://"+addr+"/", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("normal request: %v %v", resp, err)
	}
	resp.Body.Close()

	// Slowloris: a header line every 100ms, never the blank line.
	d, cut := trickle(t, dial(), "GET / HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1\r\n", 100*time.Millisecond, budget)
	if !cut {
		t.Errorf("slowloris client still connected after %s (read header timeout 300ms)", budget)
	}
	t.Logf("slowloris cut after %s", d.Round(time.Millisecond))

	// Slow body: headers at once, then one byte every 100ms of a 10 kB body.
	d, cut = trickle(t, dial(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n", "x", 100*time.Millisecond, budget)
	if !cut {
		t.Errorf("slow-body client still connected after %s (read timeout 1s)", budget)
	}
	t.Logf("slow body cut after %s", d.Round(time.Millisecond))

	// Idle keep-alive: one request, then silence.
	c := dial()
	d, cut = trickle(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", 100*time.Millisecond, budget)
	if !cut {
		t.Errorf("idle keep-alive connection still open after %s (idle timeout 500ms)", budget)
	}
	t.Logf("idle connection closed after %s", d.Round(time.Millisecond))
}
