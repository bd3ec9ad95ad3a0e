package cluster

import (
	"fmt"
	"testing"
)

func TestAssignIsEvenAndStable(t *testing.T) {
	reps := []string{"r1", "r2", "r3"}
	cands := map[uint64][]string{}
	for d := uint64(1); d <= 10; d++ {
		cands[d] = reps
	}
	a := Assign(cands)
	load := map[string]int{}
	for _, r := range a {
		load[r]++
	}
	for _, r := range reps {
		if load[r] < 3 || load[r] > 4 {
			t.Fatalf("uneven: %v", load)
		}
	}
	// Deterministic.
	if fmt.Sprint(Assign(cands)) != fmt.Sprint(a) {
		t.Fatal("not deterministic")
	}
	// A replica leaves: only its switches move.
	less := map[uint64][]string{}
	for d := range cands {
		less[d] = []string{"r1", "r2"}
	}
	b := Assign(less)
	moved := 0
	for d, r := range a {
		if r != "r3" && b[d] != r {
			moved++
		}
	}
	if moved > 2 {
		t.Fatalf("%d switches moved between surviving replicas", moved)
	}
	// Only connected replicas are candidates.
	if got := Assign(map[uint64][]string{7: {"r2"}})[7]; got != "r2" {
		t.Fatalf("assigned to %s, a replica not connected", got)
	}
}
