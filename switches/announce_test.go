package switches

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// An announcement is sent when it first appears, not while it stays, and
// again after it left and came back; the same frame on another port or
// from another app is another announcement; a duplicate goes once.
func TestNewAnnouncements(t *testing.T) {
	garp := announcement{pipeline.AppNAT, app.Announcement{Port: 30, Data: []byte{1, 2, 3}}}
	other := announcement{pipeline.AppNAT, app.Announcement{Port: 31, Data: []byte{1, 2, 3}}}
	var prev map[string]bool
	steps := []struct {
		ann  []announcement
		want int
	}{
		{[]announcement{garp, garp}, 1},
		{[]announcement{garp}, 0},
		{[]announcement{garp, other}, 1},
		{nil, 0},
		{[]announcement{garp}, 1},
	}
	for i, s := range steps {
		var fresh []announcement
		prev, fresh = newAnnouncements(prev, s.ann)
		if len(fresh) != s.want {
			t.Fatalf("step %d: %d fresh announcements, want %d", i, len(fresh), s.want)
		}
	}
}
