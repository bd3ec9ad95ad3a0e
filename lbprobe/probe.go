package lbprobe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// InNetns runs fn on an OS thread switched into the network namespace at
// path (e.g. /run/netns/NAME); sockets fn creates stay in it. If the
// thread cannot be switched back it is left locked, so the runtime ends
// it instead of reusing it.
func InNetns(path string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lbprobe: own netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lbprobe: netns %s: %w", path, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lbprobe: setns %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("lbprobe: back from netns %s: %w", path, err)) // thread stays locked: discarded
	}
	runtime.UnlockOSThread()
	return ferr
}

// Check runs one probe of t from the namespace at nsPath (""= the
// caller's own namespace, for tests) and returns nil when the member is
// healthy.
func Check(ctx context.Context, nsPath string, t Target) error {
	timeout := time.Duration(t.Monitor.Timeout) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run := func(fn func() error) error {
		if nsPath == "" {
			return fn()
		}
		return InNetns(nsPath, fn)
	}
	addr := net.JoinHostPort(t.Addr.String(), strconv.Itoa(t.Port))
	switch t.Monitor.Type {
	case "PING":
		return ping(ctx, run, t)
	case "TCP", "HTTP", "HTTPS":
		var c net.Conn
		err := run(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
			return err
		})
		if err != nil {
			return fmt.Errorf("lbprobe: %s %s: %w", t.Monitor.Type, addr, err)
		}
		defer c.Close()
		// A cancelled runner (VIP, member or monitor gone) closes the
		// connection at once instead of waiting out its deadline.
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if t.Monitor.Type == "TCP" {
			return nil
		}
		dl, _ := ctx.Deadline()
		_ = c.SetDeadline(dl)
		if t.Monitor.Type == "HTTPS" {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: t.Addr.String()}) // a health check, not a trust decision
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("lbprobe: HTTPS %s: %w", addr, err)
			}
			c = tc
		}
		if _, err := fmt.Fprintf(c, "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: nimbus-lbprobe\r\n\r\n",
			t.Monitor.HTTPMethod, requestPath(t.Monitor.URLPath), t.Addr); err != nil {
			return fmt.Errorf("lbprobe: HTTP %s: %w", addr, err)
		}
		// The member is the tenant's: read at most maxResponseHead bytes
		// of status line and headers, and none of the body.
		resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(c, maxResponseHead)), nil)
		if err != nil {
			return fmt.Errorf("lbprobe: HTTP %s: %w", addr, err)
		}
		if !CodeOK(t.Monitor.ExpectedCodes, resp.StatusCode) {
			return fmt.Errorf("lbprobe: HTTP %s%s: status %d, expected %s", addr, t.Monitor.URLPath, resp.StatusCode, t.Monitor.ExpectedCodes)
		}
		return nil
	}
	return fmt.Errorf("lbprobe: monitor type %q not supported", t.Monitor.Type)
}

func ping(ctx context.Context, run func(func() error) error, t Target) error {
	var pc *icmp.PacketConn
	if err := run(func() error {
		var err error
		pc, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return fmt.Errorf("lbprobe: PING %s: %w", t.Addr, err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = pc.SetDeadline(dl)
	id := os.Getpid() & 0xffff
	seq := int(time.Now().UnixNano() & 0xffff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nimbus-lbprobe")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fmt.Errorf("lbprobe: PING: %w", err)
	}
	dst := &net.IPAddr{IP: t.Addr.AsSlice()}
	if _, err := pc.WriteTo(b, dst); err != nil {
		return fmt.Errorf("lbprobe: PING %s: %w", t.Addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("lbprobe: PING %s: %w", t.Addr, err)
		}
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(dst.IP) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return nil
		}
	}
}

// maxResponseHead bounds what an HTTP probe reads of a member's answer.
const maxResponseHead = 16 << 10

// requestPath is url_path as it goes on the request line: bytes that
// would end the line or split it (controls, space, DEL) are
// percent-encoded, so a tenant's path cannot add headers or a body to
// the probe.
func requestPath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
