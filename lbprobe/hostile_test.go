package lbprobe

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
)

// A member port of another project (on a shared network) is never
// probed: a probe skips the member's security groups. A monitor's huge
// delay and timeout are capped where the prober turns them into
// durations.
func TestTargetsHostile(t *testing.T) {
	s := scenario(true, "ACTIVE")
	recs := []model.Record{}
	for _, k := range []model.Kind{model.KindSubnet, model.KindPort, model.KindPool, model.KindVIP, model.KindMember, model.KindHealthMonitor} {
		for _, r := range s.List(k) {
			switch x := r.(type) {
			case *model.LBPool:
				c := *x
				c.ProjectID = "attacker"
				r = &c
			case *model.Port:
				c := *x
				c.ProjectID = "attacker"
				if c.ID == "a" {
					c.ProjectID = "victim"
				}
				r = &c
			case *model.LBHealthMonitor:
				c := *x
				c.Delay, c.Timeout = 1<<31-1, 1<<31-1
				r = &c
			}
			recs = append(recs, r)
		}
	}
	if p := Targets(snapshot(recs...), local); len(p.Probes) != 0 {
		t.Errorf("another project's port is probed: %+v", p.Probes)
	}
	for i, r := range recs {
		if p, ok := r.(*model.Port); ok && p.ID == "a" {
			c := *p
			c.ProjectID = "attacker"
			recs[i] = &c
		}
	}
	p := Targets(snapshot(recs...), local)
	if len(p.Probes) != 1 || len(p.Probes[0].Targets) != 1 {
		t.Fatalf("the pool's own project's member: %+v", p)
	}
	if m := p.Probes[0].Targets[0].Monitor; m.Delay != maxProbeSeconds || m.Timeout != maxProbeSeconds {
		t.Errorf("delay %d timeout %d, want both capped at %d", m.Delay, m.Timeout, maxProbeSeconds)
	}
}

// rawServer accepts connections on loopback and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) netip.AddrPort {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// A hostile member: an endless status line is cut at maxResponseHead
// (the probe fails, memory stays bounded); a url_path with CR LF cannot
// add a header to the request; a member that never answers does not
// keep the probe once its runner is cancelled.
func TestCheckHostileMember(t *testing.T) {
	endless := rawServer(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		chunk := []byte("HTTP/1.1 200 " + strings.Repeat("x", 4096))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	tg := func(ap netip.AddrPort, path string, timeout int) Target {
		return Target{Addr: ap.Addr(), Port: int(ap.Port()), Monitor: Monitor{Type: "HTTP", Timeout: timeout, HTTPMethod: "GET", URLPath: path, ExpectedCodes: "200"}}
	}
	if err := Check(context.Background(), "", tg(endless, "/", 30)); err == nil {
		t.Error("an endless status line passed the probe")
	}

	lines := make(chan []string, 1)
	inject := rawServer(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		var got []string
		for {
			l, err := r.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
			got = append(got, strings.TrimRight(l, "\r\n"))
		}
		lines <- got
		c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n"))
	})
	if err := Check(context.Background(), "", tg(inject, "/a\r\nX-Evil: 1\r\n\r\nbody", 5)); err != nil {
		t.Fatalf("probe: %v", err)
	}
	got := <-lines
	if len(got) != 3 || got[0] != "GET /a%0D%0AX-Evil:%201%0D%0A%0D%0Abody HTTP/1.0" {
		t.Errorf("request lines %q: want one request line with the path percent-encoded, Host and User-Agent", got)
	}

	silent := rawServer(t, func(c net.Conn) { c.Read(make([]byte, 1)); select {} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Check(ctx, "", tg(silent, "/", maxProbeSeconds)) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a silent member passed the probe")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the probe of a silent member outlived its cancelled runner")
	}
}
