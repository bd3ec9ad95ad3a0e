package switches

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/ofproto"
)

// fakeRoleSwitch records role requests in order and refuses MASTER
// while refuse is set.
type fakeRoleSwitch struct {
	mu     sync.Mutex
	sent   []string
	refuse bool
}

func (f *fakeRoleSwitch) SetRole(ctx context.Context, role uint32, gen uint64) (uint32, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := map[uint32]string{ofproto.RoleMaster: "master", ofproto.RoleSlave: "slave", ofproto.RoleNoChange: "nochange"}[role]
	f.sent = append(f.sent, name+"/"+string(rune('0'+gen)))
	if role == ofproto.RoleMaster && f.refuse {
		return 0, 0, &ofproto.OFError{Type: ofproto.ErrBadRequest, Code: 9}
	}
	return role, gen, nil
}

func (f *fakeRoleSwitch) Barrier(context.Context) error { return nil }

func (f *fakeRoleSwitch) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

// fakeSource feeds roles and records resignations.
type fakeSource struct {
	roles   chan cluster.Role
	mu      sync.Mutex
	resigns []cluster.Role
}

func (s *fakeSource) Roles() <-chan cluster.Role { return s.roles }
func (s *fakeSource) RaiseGeneration(ctx context.Context, r cluster.Role, above uint64) (cluster.Role, error) {
	return r, errors.New("not in this test")
}
func (s *fakeSource) Resign(r cluster.Role, holdoff time.Duration) {
	s.mu.Lock()
	s.resigns = append(s.resigns, r)
	s.mu.Unlock()
}

func (s *fakeSource) resigned() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.resigns)
}

func val(c prometheus.Metric) float64 {
	var d dto.Metric
	c.Write(&d)
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func testAgent() *agent {
	return &agent{m: &Manager{cfg: Config{Metrics: metrics.New()}}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		masterFn: func(ctx context.Context) { <-ctx.Done() }}
}

func fastRetries(t *testing.T) {
	a, lo, hi, h := roleAttempts, roleRetryMin, roleRetryMax, roleHoldoff
	roleAttempts, roleRetryMin, roleRetryMax, roleHoldoff = 3, time.Millisecond, 5*time.Millisecond, time.Millisecond
	t.Cleanup(func() { roleAttempts, roleRetryMin, roleRetryMax, roleHoldoff = a, lo, hi, h })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Finding 9: a switch that keeps refusing MASTER is retried, then the
// election is resigned (another replica tries) and the alarm is up.
func TestRefusedMasterRetriesThenResigns(t *testing.T) {
	fastRetries(t)
	a := testAgent()
	sw := &fakeRoleSwitch{refuse: true}
	src := &fakeSource{roles: make(chan cluster.Role)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { a.followRoles(ctx, src, sw); close(done) }()
	src.roles <- cluster.Role{Master: true, Generation: 1, Seq: 1}
	waitUntil(t, "resignation", func() bool { return src.resigned() == 1 })
	met := a.m.cfg.Metrics
	if v := val(met.RoleRequestFailures); v != 3 {
		t.Errorf("role request failures %v, want 3 attempts", v)
	}
	if v := val(met.MastershipResigns); v != 1 {
		t.Errorf("resigns %v, want 1", v)
	}
	if v := val(met.SwitchesUnconfirmed); v != 1 {
		t.Errorf("unconfirmed gauge %v while no master is confirmed, want 1", v)
	}
	// The cluster then elects us again (alone) and the switch accepts.
	src.roles <- cluster.Role{Master: false, Seq: 2}
	sw.mu.Lock()
	sw.refuse = false
	sw.mu.Unlock()
	src.roles <- cluster.Role{Master: true, Generation: 3, Seq: 3}
	waitUntil(t, "mastership", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return !a.masterSince.IsZero()
	})
	if v := val(met.SwitchesUnconfirmed); v != 0 {
		t.Errorf("unconfirmed gauge %v after confirmation, want 0", v)
	}
	if v := val(met.SwitchesMastered); v != 1 {
		t.Errorf("switches mastered %v, want 1", v)
	}
	cancel()
	<-done
	if v := val(met.SwitchesMastered); v != 0 {
		t.Errorf("switches mastered %v after the agent stopped, want 0", v)
	}
}

// Finding 10: a newer role preempts the retries of an older one; the
// older MASTER request is never sent after the newer SLAVE one.
func TestNewerRolePreemptsRetries(t *testing.T) {
	fastRetries(t)
	roleRetryMin, roleRetryMax, roleAttempts = time.Hour, time.Hour, 100
	a := testAgent()
	sw := &fakeRoleSwitch{refuse: true}
	src := &fakeSource{roles: make(chan cluster.Role)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.followRoles(ctx, src, sw)
	src.roles <- cluster.Role{Master: true, Generation: 1, Seq: 1}
	waitUntil(t, "the first MASTER request", func() bool { return len(sw.log()) == 1 })
	// The agent now waits an hour to retry; a newer role must not wait.
	src.roles <- cluster.Role{Master: false, Generation: 2, Seq: 2}
	waitUntil(t, "the SLAVE request", func() bool { return len(sw.log()) == 2 })
	time.Sleep(20 * time.Millisecond)
	if got := sw.log(); len(got) != 2 || got[0] != "master/1" || got[1] != "slave/2" {
		t.Fatalf("role requests %v, want [master/1 slave/2]", got)
	}
	if v := val(a.m.cfg.Metrics.SwitchesUnconfirmed); v != 0 {
		t.Errorf("unconfirmed gauge %v once another master is known, want 0", v)
	}
}
