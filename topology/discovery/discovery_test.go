package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/topology"
)

type fakeSender struct {
	mu     sync.Mutex
	rounds [][]Frame
}

func (f *fakeSender) SendFrames(fr []Frame) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rounds = append(f.rounds, fr)
	return nil
}

func (f *fakeSender) get() [][]Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]Frame{}, f.rounds...)
}

type write struct {
	del  bool
	link model.Link
}

type fakeLinks struct {
	mu     sync.Mutex
	writes []write
	fail   atomic.Bool
}

func (f *fakeLinks) rec(w write) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail.Load() {
		return errors.New("fenced")
	}
	f.writes = append(f.writes, w)
	return nil
}

func (f *fakeLinks) PutLink(_ context.Context, l model.Link) error { return f.rec(write{link: l}) }
func (f *fakeLinks) RemoveLink(_ context.Context, l model.Link) error {
	return f.rec(write{del: true, link: l})
}

func (f *fakeLinks) get() []write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]write{}, f.writes...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

const (
	dpA = 0xa1
	dpB = 0xb1
)

var key = []byte("cluster key")

type env struct {
	cfg       *Config
	snap      atomic.Pointer[model.Snapshot]
	topo      atomic.Pointer[topology.Snapshot]
	malformed atomic.Int64
	tx        *fakeSender
	st        *fakeLinks
	sw        *Switch
}

func newEnv(t *testing.T, links ...*model.Link) *env {
	e := &env{tx: &fakeSender{}, st: &fakeLinks{}}
	e.setLinks(false, links...)
	e.topo.Store(&topology.Snapshot{Switches: map[uint64]*topology.Switch{
		dpA: {DPID: dpA, Ports: map[uint32]topology.Port{
			1:              {No: 1, MAC: 0x0200000000a1, Up: true},
			2:              {No: 2, MAC: 0x0200000000a2, Up: true},
			3:              {No: 3, Up: false},
			flow.PortLocal: {No: flow.PortLocal, Up: true},
		}},
		dpB: {DPID: dpB, Ports: map[uint32]topology.Port{1: {No: 1, Up: true}}},
	}})
	e.cfg = &Config{Interval: 10 * time.Millisecond, Key: key,
		Model:     func() (*model.Snapshot, bool) { return e.snap.Load(), true },
		Topology:  func() *topology.Snapshot { return e.topo.Load() },
		Malformed: func() { e.malformed.Add(1) },
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil))}
	e.sw = NewSwitch(e.cfg, dpA, e.tx, e.st)
	return e
}

// setLinks replaces the model (as the store's mirror would), with dpA a
// chassis or not.
func (e *env) setLinks(chassis bool, links ...*model.Link) {
	recs := map[model.Kind]map[string]model.Record{model.KindLink: {}}
	for _, l := range links {
		recs[model.KindLink][l.Key()] = l
	}
	if chassis {
		recs[model.KindChassis] = map[string]model.Record{"hv1": &model.Chassis{Name: "hv1", DPID: "00000000000000a1"}}
	}
	e.snap.Store(model.NewSnapshot(1, recs))
}

func (e *env) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.sw.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Each round sends one authenticated frame out of each live OpenFlow
// port (not a down port, not LOCAL); a chassis sends none.
func TestSendsFramesOnLivePorts(t *testing.T) {
	e := newEnv(t)
	e.run(t)
	waitFor(t, "two rounds", func() bool { return len(e.tx.get()) >= 2 })
	got := map[uint32]bool{}
	for _, f := range e.tx.get()[0] {
		d, p, ok := topology.ParseLLDP(f.Data, key)
		if !ok || d != dpA || p != f.Port {
			t.Fatalf("frame out of port %d reads %x/%d %v", f.Port, d, p, ok)
		}
		got[f.Port] = true
	}
	if len(got) != 2 || !got[1] || !got[2] {
		t.Fatalf("frames out of ports %v, want 1 and 2", got)
	}

	c := newEnv(t)
	c.setLinks(true)
	c.run(t)
	time.Sleep(50 * time.Millisecond)
	if n := len(c.tx.get()); n != 0 {
		t.Fatalf("a chassis sent %d rounds of LLDP", n)
	}
}

// A frame from another switch's port is written once as the link
// arriving here; a forged, unauthenticated or foreign frame is counted
// and never written.
func TestReceivedWritesLinkOnce(t *testing.T) {
	e := newEnv(t)
	e.run(t)
	frame := topology.LLDPFrame(dpB, 1, 0x02000000b101, key)
	e.sw.Received(2, frame)
	want := model.Link{SrcDPID: dpB, SrcPort: 1, DstDPID: dpA, DstPort: 2}
	waitFor(t, "the link write", func() bool { return len(e.st.get()) == 1 })
	if w := e.st.get()[0]; w.del || w.link != want {
		t.Fatalf("wrote %+v, want put %+v", w, want)
	}
	e.sw.Received(2, frame) // not yet in the mirror: already written
	e.setLinks(false, &want)
	e.sw.Received(2, frame) // in the mirror
	for _, bad := range [][]byte{
		topology.LLDPFrame(dpB, 1, 0, nil),             // no authenticator
		topology.LLDPFrame(dpB, 1, 0, []byte("other")), // another key
		frame[:30], // truncated
	} {
		e.sw.Received(2, bad)
	}
	time.Sleep(30 * time.Millisecond)
	if n := len(e.st.get()); n != 1 {
		t.Fatalf("%d writes, want 1: %+v", n, e.st.get())
	}
	if n := e.malformed.Load(); n != 3 {
		t.Fatalf("malformed count %d, want 3", n)
	}
}

// A chassis ignores LLDP frames.
func TestChassisIgnoresFrames(t *testing.T) {
	e := newEnv(t)
	e.setLinks(true)
	e.run(t)
	e.sw.Received(2, topology.LLDPFrame(dpB, 1, 0, key))
	time.Sleep(30 * time.Millisecond)
	if n := len(e.st.get()); n != 0 {
		t.Fatalf("chassis wrote %d links", n)
	}
}

// A failed (fenced) write is forgotten, so the next frame retries it.
func TestFailedWriteRetried(t *testing.T) {
	e := newEnv(t)
	e.run(t)
	e.st.fail.Store(true)
	frame := topology.LLDPFrame(dpB, 1, 0, key)
	e.sw.Received(2, frame)
	waitFor(t, "the failed write to be forgotten", func() bool {
		e.sw.mu.Lock()
		defer e.sw.mu.Unlock()
		return len(e.sw.written) == 0
	})
	e.st.fail.Store(false)
	e.sw.Received(2, frame)
	waitFor(t, "the retried write", func() bool { return len(e.st.get()) == 1 })
}

// A link arriving at a port that goes down is removed at once; one whose
// port is down when a round runs is removed by the sweep; one whose
// frames stop is removed after LinkTimeout; a live one stays.
func TestLinksRemoved(t *testing.T) {
	onDown := &model.Link{SrcDPID: dpB, SrcPort: 1, DstDPID: dpA, DstPort: 1}
	downPort := &model.Link{SrcDPID: dpB, SrcPort: 2, DstDPID: dpA, DstPort: 3}
	e := newEnv(t, onDown, downPort)
	e.sw.PortDown(1)
	e.sw.PortDown(2) // no link arrives there
	e.cfg.LinkTimeout = time.Hour
	e.run(t)
	waitFor(t, "two removals", func() bool { return len(e.st.get()) == 2 })
	got := map[model.Link]bool{}
	for _, w := range e.st.get() {
		if !w.del {
			t.Fatalf("unexpected put %+v", w.link)
		}
		got[w.link] = true
	}
	if !got[*onDown] || !got[*downPort] {
		t.Fatalf("removed %v, want %v and %v", got, onDown, downPort)
	}

	// Timeout: port 2 is up, the link is live while frames come.
	live := &model.Link{SrcDPID: dpB, SrcPort: 1, DstDPID: dpA, DstPort: 2}
	t2 := newEnv(t, live)
	t2.cfg.LinkTimeout = 250 * time.Millisecond
	t2.run(t)
	frame := topology.LLDPFrame(dpB, 1, 0, key)
	for i := 0; i < 20; i++ { // 500 ms of frames, twice the timeout
		t2.sw.Received(2, frame)
		time.Sleep(25 * time.Millisecond)
	}
	if n := len(t2.st.get()); n != 0 {
		t.Fatalf("live link written %d times: %+v", n, t2.st.get())
	}
	waitFor(t, "the silent link to time out", func() bool { return len(t2.st.get()) == 1 })
	if w := t2.st.get()[0]; !w.del || w.link != *live {
		t.Fatalf("wrote %+v, want removal of %+v", w, live)
	}
}
