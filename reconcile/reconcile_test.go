package reconcile_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

func desired(extra ...*flow.Flow) *flow.State {
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for _, f := range extra {
		st.AddFlow(f)
	}
	return st
}

func portFlow(port uint32, out uint32) *flow.Flow {
	return &flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal,
		Cookie:  pipeline.Cookie(pipeline.AppIsolation, uint64(port)),
		Match:   flow.M().Set(flow.Reg1, 5).EthDst(flow.MAC(0x020000000000 | uint64(port))),
		Actions: []flow.Action{flow.Output{Port: out}}}
}

func newRec(sw reconcile.Switch) *reconcile.Reconciler {
	return reconcile.New(1, sw, reconcile.Options{})
}

func TestFirstPassInstallsEverythingSecondSendsNothing(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	r := newRec(sw)
	r.SetDesired(desired(portFlow(1, 1), portFlow(2, 2)), true)
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ops.FlowAdds), len(pipeline.Tables)+2; got != want {
		t.Fatalf("first pass adds %d flows, want %d", got, want)
	}
	for _, full := range []bool{false, true} {
		ops, err = r.Pass(ctx, full)
		if err != nil {
			t.Fatal(err)
		}
		if !ops.Empty() {
			t.Fatalf("pass (full=%v) with nothing changed sent %d changes:\n%s", full, ops.Len(), ops.Text())
		}
	}
	if sw.Applies() != 1 {
		t.Fatalf("switch saw %d applies, want 1", sw.Applies())
	}
}

func TestRestartDoesNotReaddUnchangedFlows(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	st := desired(portFlow(1, 1))
	r1 := newRec(sw)
	r1.SetDesired(st, true)
	if _, err := r1.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	// A new controller (restart or takeover) reconciles from a dump.
	r2 := newRec(sw)
	r2.SetDesired(desired(portFlow(1, 1)), true)
	ops, err := r2.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !ops.Empty() {
		t.Fatalf("restart sent changes:\n%s", ops.Text())
	}
	for k, e := range sw.Entries() {
		if e.Created != 1 {
			t.Errorf("flow %s was re-created in apply %d", k, e.Created)
		}
	}
}

func TestMinimalDiffOnChange(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	r := newRec(sw)
	r.SetDesired(desired(portFlow(1, 1), portFlow(2, 2)), true)
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Port 2 moves to ofport 7 (instructions only), port 3 appears, port 1 goes.
	r.SetDesired(desired(portFlow(2, 7), portFlow(3, 3)), true)
	ops, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "-flow " + portFlow(1, 1).String() + "\n~flow " + portFlow(2, 7).String() + "\n+flow " + portFlow(3, 3).String() + "\n"
	if ops.Text() != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", ops.Text(), want)
	}
	if e := sw.Entries()[portFlow(2, 7).Key()]; e.Created != 1 {
		t.Fatalf("modified flow was re-created (apply %d); modify must keep it", e.Created)
	}
}

func TestNoPruneBeforeDesiredComplete(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	old := portFlow(9, 9)
	sw.Install(old)
	r := newRec(sw)
	r.SetDesired(desired(), false) // still loading
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.FlowDels) != 0 {
		t.Fatalf("pruned before desired state loaded:\n%s", ops.Text())
	}
	if _, ok := sw.Entries()[old.Key()]; !ok {
		t.Fatal("flow of ours deleted while loading")
	}
	r.SetDesired(desired(), true)
	ops, err = r.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.FlowDels) != 1 {
		t.Fatalf("after loading, want 1 prune, got:\n%s", ops.Text())
	}
}

func TestForeignAndDynamicFlowsUntouched(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	foreign := &flow.Flow{Table: 5, Priority: 8, Cookie: 0x12}
	zero := &flow.Flow{Table: 5, Priority: 9}
	dynamic := &flow.Flow{Table: pipeline.L2Learning.ID(), Priority: pipeline.PriorityLearned,
		Cookie: pipeline.DynamicCookie(pipeline.AppLearning, 1), Match: flow.M().InPort(1), IdleTimeout: 60}
	// A foreign flow sitting on a key we want.
	squatter := &flow.Flow{Table: 1, Priority: 0, Cookie: 0x99}
	for _, f := range []*flow.Flow{foreign, zero, dynamic, squatter} {
		sw.Install(f)
	}
	r := newRec(sw)
	r.SetDesired(desired(), true)
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*flow.Flow{foreign, zero, dynamic, squatter} {
		e, ok := sw.Entries()[f.Key()]
		if !ok || e.Flow.Cookie != f.Cookie {
			t.Errorf("flow %s (cookie 0x%x) was touched", f.Key(), f.Cookie)
		}
	}
	if len(ops.Conflicts) != 1 || ops.Conflicts[0].Table != 1 {
		t.Fatalf("want the table-1 miss flow reported as a conflict, got:\n%s", ops.Text())
	}
}

func TestDriftRepairedOnFullPass(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	obs := &countObs{}
	r := reconcile.New(1, sw, reconcile.Options{Observer: obs})
	r.SetDesired(desired(portFlow(1, 1)), true)
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	sw.Remove(portFlow(1, 1).Key())
	// An incremental pass trusts its tracking; the full pass finds drift.
	if ops, _ := r.Pass(ctx, false); !ops.Empty() {
		t.Fatalf("incremental pass sent %d changes", ops.Len())
	}
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.FlowAdds) != 1 || obs.drift != 1 {
		t.Fatalf("full pass: adds=%d drift=%d, want 1 and 1", len(ops.FlowAdds), obs.drift)
	}
	if _, ok := sw.Entries()[portFlow(1, 1).Key()]; !ok {
		t.Fatal("deleted flow not restored")
	}
}

func TestFailedApplyForcesDump(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	r := newRec(sw)
	r.SetDesired(desired(), true)
	sw.FailNext = errors.New("boom")
	if _, err := r.Pass(ctx, false); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("want apply error, got %v", err)
	}
	ops, err := r.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.FlowAdds) != len(pipeline.Tables) {
		t.Fatalf("retry installed %d flows, want %d", len(ops.FlowAdds), len(pipeline.Tables))
	}
}

func TestGroupsAndMetersOnlyInOurRange(t *testing.T) {
	st := desired()
	g := &flow.Group{ID: reconcile.GroupIDBase + 1, Type: flow.GroupAll, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.Output{Port: 1}}}}}
	st.Groups[g.ID] = g
	act := reconcile.NewActual()
	act.State.Groups[7] = &flow.Group{ID: 7}
	act.State.Groups[reconcile.GroupIDBase+2] = &flow.Group{ID: reconcile.GroupIDBase + 2}
	act.State.Meters[3] = &flow.Meter{ID: 3}
	ops := reconcile.Diff(st, act, true)
	if len(ops.GroupAdds) != 1 || len(ops.GroupDels) != 1 || ops.GroupDels[0].ID != reconcile.GroupIDBase+2 || len(ops.MeterDels) != 0 {
		t.Fatalf("unexpected group/meter ops:\n%s", ops.Text())
	}
}

type countObs struct{ drift int }

func (o *countObs) Reconciled(uint64, time.Duration, *reconcile.Ops, error) {}
func (o *countObs) DriftRepaired(_ uint64, n int)                           { o.drift += n }

func TestPipelineMetersAreOurs(t *testing.T) {
	for _, m := range pipeline.Meters {
		if !reconcile.OursMeter(m.ID) {
			t.Errorf("meter %s (0x%x) is outside Nimbus's meter range", m.Name, m.ID)
		}
	}
}

// Counted flows: after a full pass (which dumps) with the desired state
// complete, Options.Counted gets the dumped counters of the desired
// flows that name a Counter, summed per cookie object and name; not
// before the desired state is complete, nor on an incremental pass (no
// dump); a counted flow the switch lacks counts zero; uncounted flows
// are left out.
func TestCountedFlowsReported(t *testing.T) {
	ctx := context.Background()
	sw := fakeswitch.New()
	var got []map[string]pipeline.Counter
	r := reconcile.New(1, sw, reconcile.Options{Counted: func(c map[string]pipeline.Counter) { got = append(got, c) }})
	a, b, c := portFlow(1, 1), portFlow(2, 2), portFlow(3, 3)
	a.Counter, b.Counter = "in", "in"
	b.Cookie = a.Cookie // two flows of one object: summed
	c.Cookie = pipeline.Cookie(pipeline.AppIsolation, 9)
	r.SetDesired(desired(a, b, c), false)
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("counters reported before the desired state was complete: %v", got)
	}
	r.SetDesired(desired(a, b, c), true)
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		f    *flow.Flow
		p, b uint64
	}{{a, 3, 300}, {b, 4, 400}, {c, 100, 10000}} {
		if !sw.Count(x.f.Key(), x.p, x.b) {
			t.Fatalf("switch lacks %s", x.f)
		}
	}
	if _, err := r.Pass(ctx, false); err != nil {
		t.Fatal(err)
	}
	n := len(got)
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("%d reports after the incremental and the full pass, want %d (the full one only)", len(got), n+1)
	}
	key := pipeline.CounterKey(pipeline.CookieObject(a.Cookie), "in")
	if want := (map[string]pipeline.Counter{key: {Packets: 7, Bytes: 700}}); !reflect.DeepEqual(got[n], want) {
		t.Fatalf("counted %v, want %v", got[n], want)
	}
	// A counted flow the switch lost counts zero until it is back.
	sw.Remove(a.Key())
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatal(err)
	}
	if want := (map[string]pipeline.Counter{key: {Packets: 4, Bytes: 400}}); !reflect.DeepEqual(got[len(got)-1], want) {
		t.Fatalf("with one flow gone counted %v, want %v", got[len(got)-1], want)
	}
}
