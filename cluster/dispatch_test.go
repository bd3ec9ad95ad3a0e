package cluster

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Many goroutines decide role changes at once while a slow fake switch
// applies them: it must see them in decision order, never an older one
// after a newer one, and end on the newest.
func TestRoleChangesDeliveredInOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &Membership{roles: make(chan Role), notify: make(chan struct{}, 1)}
	go m.dispatch(ctx)
	var mu sync.Mutex
	var got []Role
	applied := make(chan struct{})
	var lastSeq uint64
	go func() {
		for r := range m.roles {
			mu.Lock()
			got = append(got, r)
			done := r.Seq == lastSeq && lastSeq != 0
			mu.Unlock()
			time.Sleep(time.Duration(r.Seq%3) * 100 * time.Microsecond) // a switch round trip
			if done {
				close(applied)
				return
			}
		}
	}()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m.mu.Lock()
				m.publishLocked(Role{Master: (w+i)%2 == 0, Generation: uint64(w*each + i + 1)})
				m.mu.Unlock()
				if i%10 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}(w)
	}
	wg.Wait()
	m.mu.Lock()
	final := m.pending
	m.mu.Unlock()
	mu.Lock()
	lastSeq = final.Seq
	already := len(got) > 0 && got[len(got)-1].Seq == lastSeq
	mu.Unlock()
	if !already {
		// The consumer may be waiting: nudge it with the final role again.
		select {
		case m.notify <- struct{}{}:
		default:
		}
		select {
		case <-applied:
		case <-time.After(10 * time.Second):
			t.Fatal("the newest role never reached the switch")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("role seq %d delivered after seq %d", got[i].Seq, got[i-1].Seq)
		}
	}
	if last := got[len(got)-1]; last != final {
		t.Fatalf("switch ended on %+v, newest decision was %+v", last, final)
	}
	t.Logf("%d role changes decided, %d delivered (the rest coalesced), in order", writers*each, len(got))
}
