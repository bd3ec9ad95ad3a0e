package lbprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
)

func snapshot(recs ...model.Record) *model.Snapshot {
	m := map[model.Kind]map[string]model.Record{}
	for _, r := range recs {
		if m[r.Kind()] == nil {
			m[r.Kind()] = map[string]model.Record{}
		}
		m[r.Kind()][r.Key()] = r
	}
	return model.NewSnapshot(1, m)
}

// scenario: VIP 10.0.0.100 on pool p with members m1 (port a, local)
// and m2 (port b, elsewhere); monitor hm on the pool when withMonitor.
func scenario(withMonitor bool, m1Status string) *model.Snapshot {
	recs := []model.Record{
		&model.Subnet{Base: model.Base{ID: "sub"}, NetworkID: "net", IPVersion: 4, CIDR: "10.0.0.0/24"},
		&model.Port{Base: model.Base{ID: "a"}, NetworkID: "net", MACAddress: "fa:16:3e:00:00:0a", FixedIPs: []model.FixedIP{{SubnetID: "sub", IPAddress: "10.0.0.21"}}},
		&model.Port{Base: model.Base{ID: "b"}, NetworkID: "net", MACAddress: "fa:16:3e:00:00:0b", FixedIPs: []model.FixedIP{{SubnetID: "sub", IPAddress: "10.0.0.22"}}},
		&model.Port{Base: model.Base{ID: "vp"}, NetworkID: "net", MACAddress: "fa:16:3e:00:01:00", FixedIPs: []model.FixedIP{{SubnetID: "sub", IPAddress: "10.0.0.100"}}},
		&model.LBPool{Base: model.Base{ID: "p"}, SubnetID: "sub", AdminStateUp: true},
		&model.LBVIP{Base: model.Base{ID: "v"}, SubnetID: "sub", Address: "10.0.0.100", PortID: "vp", ProtocolPort: 80, PoolID: "p", AdminStateUp: true},
		&model.LBMember{Base: model.Base{ID: "m1"}, PoolID: "p", Address: "10.0.0.21", ProtocolPort: 8080, AdminStateUp: true, Status: m1Status},
		&model.LBMember{Base: model.Base{ID: "m2"}, PoolID: "p", Address: "10.0.0.22", ProtocolPort: 8080, AdminStateUp: true, Status: "ACTIVE"},
	}
	if withMonitor {
		recs[4].(*model.LBPool).HealthMonitorIDs = []string{"hm"}
		recs = append(recs, &model.LBHealthMonitor{Base: model.Base{ID: "hm"}, Type: "http", Delay: 1, Timeout: 1, MaxRetries: 2, AdminStateUp: true})
	}
	return snapshot(recs...)
}

var local = map[string]string{"tapa": "a"}

func TestTargets(t *testing.T) {
	plan := Targets(scenario(true, "ACTIVE"), local)
	if len(plan.Probes) != 1 || len(plan.Unmonitor) != 0 {
		t.Fatalf("plan %+v", plan)
	}
	pb := plan.Probes[0]
	if pb.Source != netip.MustParsePrefix("10.0.0.100/24") || pb.VIPMAC != "fa:16:3e:00:01:00" ||
		pb.Port != names.LBProbePortName("v") || pb.IfaceID != names.LBProbeIfaceID("v") {
		t.Errorf("probe %+v", pb)
	}
	if len(pb.Targets) != 1 || pb.Targets[0].MemberID != "m1" || pb.Targets[0].MAC != "fa:16:3e:00:00:0a" || pb.Targets[0].Port != 8080 {
		t.Fatalf("targets %+v (only the local member m1)", pb.Targets)
	}
	if m := pb.Targets[0].Monitor; m.Type != "HTTP" || m.HTTPMethod != "GET" || m.URLPath != "/" || m.ExpectedCodes != "200" || m.MaxRetries != 2 {
		t.Errorf("monitor defaults %+v", m)
	}
	if p := Targets(scenario(true, "ACTIVE"), map[string]string{"x": "zzz"}); len(p.Probes) != 0 {
		t.Errorf("no local member: %+v", p)
	}
	if p := Targets(scenario(false, "INACTIVE"), local); len(p.Probes) != 0 || fmt.Sprint(p.Unmonitor) != "[m1]" {
		t.Errorf("no monitor: %+v, want m1 to unmonitor", p)
	}
}

// A DSR pool is probed from its subnet's gateway_ip at the VIP's port on
// the member's own address (its protocol_port unused); a DSR pool whose
// subnet has no gateway cannot be probed: its members are unmonitored.
func TestTargetsDSR(t *testing.T) {
	dsr := func(gw string) *model.Snapshot {
		s := scenario(true, "INACTIVE")
		recs := []model.Record{}
		for _, k := range []model.Kind{model.KindSubnet, model.KindPort, model.KindPool, model.KindVIP, model.KindMember, model.KindHealthMonitor} {
			for _, r := range s.List(k) {
				switch x := r.(type) {
				case *model.Subnet:
					c := *x
					c.GatewayIP = gw
					r = &c
				case *model.LBPool:
					c := *x
					c.Description = "web " + binding.LBDSRTag
					r = &c
				}
				recs = append(recs, r)
			}
		}
		return snapshot(recs...)
	}
	plan := Targets(dsr("10.0.0.1"), local)
	if len(plan.Probes) != 1 || len(plan.Unmonitor) != 0 {
		t.Fatalf("plan %+v", plan)
	}
	pb := plan.Probes[0]
	if !pb.DSR || pb.Source != netip.MustParsePrefix("10.0.0.1/24") || pb.VIPMAC != "fa:16:3e:00:01:00" {
		t.Errorf("DSR probe %+v, want from the gateway 10.0.0.1/24", pb)
	}
	if len(pb.Targets) != 1 || pb.Targets[0].Addr != netip.MustParseAddr("10.0.0.21") || pb.Targets[0].Port != 80 {
		t.Fatalf("DSR targets %+v, want m1 at 10.0.0.21:80 (the VIP's port)", pb.Targets)
	}
	if p := Targets(dsr(""), local); len(p.Probes) != 0 || fmt.Sprint(p.Unmonitor) != "[m1]" {
		t.Errorf("DSR pool on a subnet without gateway: %+v, want no probe and m1 unmonitored", p)
	}
}

func TestCodeOK(t *testing.T) {
	for _, c := range []struct {
		exp  string
		code int
		ok   bool
	}{{"200", 200, true}, {"200", 201, false}, {"200,202", 202, true}, {"200-204", 203, true}, {"200-204", 205, false}, {"x", 200, false}} {
		if got := CodeOK(c.exp, c.code); got != c.ok {
			t.Errorf("CodeOK(%q, %d) = %v", c.exp, c.code, got)
		}
	}
}

type fakeStatuses struct {
	mu     sync.Mutex
	writes []string
}

func (f *fakeStatuses) SetStatus(_ context.Context, id, st string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, id+"="+st)
	return nil
}

func (f *fakeStatuses) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

type fakePlumbing struct{ ensured, removed atomic.Int32 }

func (f *fakePlumbing) Ensure(context.Context, Probe) (string, error) {
	f.ensured.Add(1)
	return "", nil
}
func (f *fakePlumbing) Remove(context.Context, string) error { f.removed.Add(1); return nil }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// max_retries failures in a row write INACTIVE once; one success writes
// ACTIVE; a removed monitor stops the probes, removes the namespace and
// puts an INACTIVE member back to ACTIVE.
func TestProberTransitions(t *testing.T) {
	var healthy atomic.Bool
	var probes atomic.Int32
	st := &fakeStatuses{}
	pl := &fakePlumbing{}
	p := New(Config{Chassis: "hv1", Statuses: st, Plumbing: pl, Check: func(context.Context, string, Target) error {
		probes.Add(1)
		if healthy.Load() {
			return nil
		}
		return errors.New("down")
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Update(ctx, scenario(true, "ACTIVE"), local)
	waitUntil(t, "INACTIVE written", func() bool { return len(st.get()) == 1 })
	if n := p.Stats().Monitored; n != 1 {
		t.Errorf("Stats: %d members probed, want 1", n)
	}
	if probes.Load() < 2 || st.get()[0] != "m1=INACTIVE" {
		t.Fatalf("after %d probes: writes %v", probes.Load(), st.get())
	}
	// The snapshot now says INACTIVE (as the store would), the member heals.
	p.Update(ctx, scenario(true, "INACTIVE"), local)
	healthy.Store(true)
	waitUntil(t, "ACTIVE written", func() bool { return len(st.get()) == 2 })
	if st.get()[1] != "m1=ACTIVE" || pl.ensured.Load() != 1 {
		t.Fatalf("writes %v, ensured %d", st.get(), pl.ensured.Load())
	}
	healthy.Store(false)
	p.Update(ctx, scenario(false, "INACTIVE"), local)
	if pl.removed.Load() != 1 || len(p.running) != 0 {
		t.Errorf("monitor removed: %d removals, %d loops", pl.removed.Load(), len(p.running))
	}
	if w := st.get(); w[len(w)-1] != "m1=ACTIVE" {
		t.Errorf("monitor removed: writes %v, want m1 back to ACTIVE", w)
	}
	// The counters the node agent's metrics read: every probe counted by
	// its result, one change each way written (the monitor's removal
	// puts m1 back ACTIVE outside the probe loop), nothing probed now.
	s := p.Stats()
	if s.ProbesFailed < 2 || s.ProbesOK < 1 || s.ProbesOK+s.ProbesFailed > uint64(probes.Load()) ||
		s.ToInactive != 1 || s.ToActive < 1 || s.WriteErrors != 0 || s.Monitored != 0 {
		t.Errorf("stats %+v after %d probes", s, probes.Load())
	}
}

// Check's TCP and HTTP probes against a real listener (in this
// namespace): up, wrong status, url_path, closed port.
func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	tg := func(typ, path, codes string) Target {
		return Target{Addr: ap.Addr(), Port: int(ap.Port()), Monitor: Monitor{Type: typ, Timeout: 2, HTTPMethod: "GET", URLPath: path, ExpectedCodes: codes}}
	}
	ctx := context.Background()
	if err := Check(ctx, "", tg("TCP", "", "")); err != nil {
		t.Errorf("TCP: %v", err)
	}
	if err := Check(ctx, "", tg("HTTP", "/health", "200")); err != nil {
		t.Errorf("HTTP /health: %v", err)
	}
	if err := Check(ctx, "", tg("HTTP", "/", "200")); err == nil {
		t.Error("HTTP / answered 404: want a failure")
	}
	if err := Check(ctx, "", tg("HTTP", "/", "200,404")); err != nil {
		t.Errorf("HTTP / with 404 expected: %v", err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(l.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):])
	l.Close()
	closed := tg("TCP", "", "")
	closed.Port = port
	if err := Check(ctx, "", closed); err == nil {
		t.Error("TCP to a closed port: want a failure")
	}
}

// A PING probe of 127.0.0.1 from this namespace (raw ICMP socket: root).
func TestCheckPing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a raw ICMP socket needs root")
	}
	tg := Target{Addr: netip.MustParseAddr("127.0.0.1"), Monitor: Monitor{Type: "PING", Timeout: 2}}
	if err := Check(context.Background(), "", tg); err != nil {
		t.Errorf("PING 127.0.0.1: %v", err)
	}
	tg.Monitor.Type = "UDP"
	if err := Check(context.Background(), "", tg); err == nil {
		t.Error("an unknown monitor type passed")
	}
}

// blockingStatuses blocks every write until its context ends, as an etcd
// write does during an outage.
type blockingStatuses struct{}

func (blockingStatuses) SetStatus(ctx context.Context, _, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

// Update runs on the node agent's main loop: a status write stuck on an
// etcd outage, or a plumbing command that hangs, gives up after its
// bound instead of stalling the agent (the agent's own context never
// ends while it runs).
func TestUpdateBounded(t *testing.T) {
	defer func(w, c time.Duration) { writeTimeout, commandTimeout = w, c }(writeTimeout, commandTimeout)
	writeTimeout, commandTimeout = 50*time.Millisecond, 50*time.Millisecond
	p := New(Config{Chassis: "hv1", Statuses: blockingStatuses{}, Plumbing: &fakePlumbing{},
		Check: func(context.Context, string, Target) error { return nil }})
	done := make(chan struct{})
	go func() {
		// The monitor is gone and m1 is INACTIVE: Update writes it ACTIVE.
		p.Update(context.Background(), scenario(false, "INACTIVE"), local)
		close(done)
	}()
	waitUntil(t, "Update to give up on the stuck write", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	errc := make(chan error, 1)
	go func() { errc <- run(context.Background(), "sleep", "60") }()
	var err error
	waitUntil(t, "a hung command to be killed", func() bool {
		select {
		case err = <-errc:
			return true
		default:
			return false
		}
	})
	if err == nil {
		t.Fatal("a command killed at its bound reported success")
	}
}

// A member is marked down after max_retries failures in a row and up
// again only after riseAfter passes in a row: one pass between failures
// (a flapping back-end) keeps it down; a member that is up and fails
// fewer than max_retries times keeps its status.
func TestHealthRiseAndFall(t *testing.T) {
	run := func(h health, probes string, maxRetries int) string {
		var got []string
		for _, c := range probes {
			st := h.observe(c == '+', maxRetries)
			if st == "" {
				st = "-"
			}
			got = append(got, st[:1])
		}
		return strings.Join(got, "")
	}
	for _, c := range []struct {
		name   string
		start  health
		probes string
		max    int
		want   string
	}{
		{"healthy", health{}, "+++", 2, "AAA"},
		{"one failure is not enough", health{}, "+-+", 2, "A-A"},
		{"falls after max_retries", health{}, "+--", 2, "A-I"},
		{"rises after two passes", health{}, "--++", 2, "-IIA"},
		{"flapping stays down", health{}, "--+--+--+", 2, "-IIIIIIII"},
		{"max_retries 1", health{}, "-+-++", 1, "IIIIA"},
		{"down at start (the store says INACTIVE)", health{down: true}, "+-++", 3, "IIIA"},
	} {
		if got := run(c.start, c.probes, c.max); got != c.want {
			t.Errorf("%s: probes %s (max_retries %d) gave %s, want %s", c.name, c.probes, c.max, got, c.want)
		}
	}
}
