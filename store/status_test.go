package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/store"
)

// A switch's counters written after it was withdrawn (a write still in
// flight when this replica lost the switch) do not bring its record
// back; its next status Publish (mastered again) lets them through. A
// record over MaxValueBytes is refused with an error naming the switch,
// and the last one written stays.
func TestCountersAfterWithdraw(t *testing.T) {
	s := etcdtest.Embedded(t)
	ctx := context.Background()
	w := s.NewStatusWriter(10, nil)
	t.Cleanup(func() { w.Withdraw(context.Background(), 3) })
	c := store.SwitchCounters{DPID: "0000000000000003", Counters: map[string]pipeline.Counter{"1/in": {Packets: 1, Bytes: 64}}}
	read := func() string {
		t.Helper()
		kvs, _, err := s.ListRaw(ctx, store.SwitchCountersPrefix)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range kvs {
			out = append(out, kv.Val)
		}
		return strings.Join(out, ",")
	}
	if err := w.PublishCounters(ctx, 3, c); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.Contains(got, `"1/in"`) {
		t.Fatalf("counters not written: %q", got)
	}
	if err := w.Withdraw(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.PublishCounters(ctx, 3, c); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "" {
		t.Fatalf("a withdrawn switch's counters came back: %q", got)
	}
	if err := w.Publish(ctx, 3, store.SwitchStatus{DPID: c.DPID}); err != nil {
		t.Fatal(err)
	}
	if err := w.PublishCounters(ctx, 3, c); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.Contains(got, `"1/in"`) {
		t.Fatalf("counters after the switch is published again: %q", got)
	}
	big := store.SwitchCounters{DPID: c.DPID, Counters: map[string]pipeline.Counter{strings.Repeat("x", store.MaxValueBytes): {}}}
	if err := w.PublishCounters(ctx, 3, big); err == nil || !strings.Contains(err.Error(), "0000000000000003") {
		t.Fatalf("oversized record: err %v, want one naming the switch", err)
	}
	if got := read(); !strings.Contains(got, `"1/in"`) {
		t.Fatalf("the last record did not stay: %q", got)
	}
}
