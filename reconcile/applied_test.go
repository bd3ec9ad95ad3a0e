package reconcile_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// Applied (the data-plane status hook) is called after the first pass
// that applied the complete desired state and after passes that changed
// something, not after a failed apply, not for incomplete desired state,
// not after a pass with nothing to do, and again while it fails.
func TestAppliedHook(t *testing.T) {
	sw := fakeswitch.New()
	calls := 0
	var fail error
	var got *flow.State
	rec := reconcile.New(1, sw, reconcile.Options{Applied: func(d *flow.State, refused map[string]bool) error {
		calls++
		got = d
		return fail
	}})
	ctx := context.Background()
	rec.SetDesired(desired(portFlow(3, 3)), false)
	if _, err := rec.Pass(ctx, true); err != nil || calls != 0 {
		t.Fatalf("incomplete desired state: err %v, %d calls", err, calls)
	}
	st := desired(portFlow(1, 1))
	rec.SetDesired(st, true)
	sw.FailNext = errors.New("no")
	if _, err := rec.Pass(ctx, true); err == nil || calls != 0 {
		t.Fatalf("failed apply: err %v, %d calls", err, calls)
	}
	if _, err := rec.Pass(ctx, true); err != nil || calls != 1 || got != st {
		t.Fatalf("first applied pass: err %v, %d calls", err, calls)
	}
	if _, err := rec.Pass(ctx, false); err != nil || calls != 1 {
		t.Fatalf("nothing changed: err %v, %d calls", err, calls)
	}
	fail = errors.New("etcd down")
	rec.SetDesired(desired(portFlow(1, 1), portFlow(2, 2)), true)
	if _, err := rec.Pass(ctx, false); err != nil || calls != 2 {
		t.Fatalf("changed: err %v, %d calls", err, calls)
	}
	fail = nil
	if _, err := rec.Pass(ctx, false); err != nil || calls != 3 {
		t.Fatalf("after a failed publish, the next pass calls again: err %v, %d calls", err, calls)
	}
	if _, err := rec.Pass(ctx, false); err != nil || calls != 3 {
		t.Fatalf("published, nothing changed: err %v, %d calls", err, calls)
	}
}
