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
	a := Assign(cands, nil)
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
	if fmt.Sprint(Assign(cands, nil)) != fmt.Sprint(a) {
		t.Fatal("not deterministic")
	}
	// A replica leaves: only its switches move.
	less := map[uint64][]string{}
	for d := range cands {
		less[d] = []string{"r1", "r2"}
	}
	b := Assign(less, nil)
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
	if got := Assign(map[uint64][]string{7: {"r2"}}, nil)[7]; got != "r2" {
		t.Fatalf("assigned to %s, a replica not connected", got)
	}
}

func TestAssignKeepsBalancedCurrentMasters(t *testing.T) {
	cands := map[uint64][]string{}
	cur := map[uint64]string{}
	reps := []string{"r1", "r2"}
	for d := uint64(1); d <= 4; d++ {
		cands[d] = reps
		cur[d] = reps[d%2] // balanced 2/2, but not what hashing would pick
	}
	a := Assign(cands, cur)
	for d, r := range cur {
		if a[d] != r {
			t.Fatalf("switch %d moved from %s to %s although the spread was even", d, r, a[d])
		}
	}
	// One replica holding everything gives up exactly its surplus.
	for d := range cur {
		cur[d] = "r1"
	}
	a = Assign(cands, cur)
	moved := 0
	for d := range cur {
		if a[d] != "r1" {
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("%d switches moved, want 2", moved)
	}
}
