package nat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
)

// diff returns the flows of after that are not in before (added), and
// the flows of before that after lacks or changes (removed or modified).
func diff(before, after *flow.State) (added []*flow.Flow, changed []*flow.Flow) {
	for k, f := range after.Flows {
		if b, ok := before.Flows[k]; !ok {
			added = append(added, f)
		} else if b.String() != f.String() {
			changed = append(changed, b)
		}
	}
	for k, f := range before.Flows {
		if _, ok := after.Flows[k]; !ok {
			changed = append(changed, f)
		}
	}
	return added, changed
}

func all() []app.App { return []app.App{isolation.New(isolation.Config{}), l3router.New(), New()} }

// Associating a floating IP (f2 with a2, on hv2) adds only that floating
// IP's flows (its cookie), on hv2 only (plus, on a chassis that had none,
// its external network's two flows); every other flow of every app stays
// as it was. Disassociating removes exactly those.
func TestAssociateDiffIsLocal(t *testing.T) {
	for _, c := range []string{"hv1", "hv2"} {
		t.Run(c, func(t *testing.T) {
			s := newScenario()
			before, _ := state(t, s.input(c), all()...)
			f2 := s.recs[model.KindFloatingIP][portID("f2")].(*model.FloatingIP)
			f2.PortID, f2.FixedIPAddress, f2.RouterID = portID("a2"), "10.0.2.12", "rA"
			after, _ := state(t, s.input(c), all()...)
			added, changed := diff(before, after)
			if len(changed) != 0 {
				t.Fatalf("associating changed %d flows, first %s", len(changed), changed[0])
			}
			if c == "hv1" {
				if len(added) != 0 {
					t.Fatalf("hv1 (not hosting a2) got %d flows, first %s", len(added), added[0])
				}
				return
			}
			nfip, next := 0, 0
			for _, f := range added {
				switch f.Cookie {
				case cookie(portID("f2")):
					nfip++
				case cookie("net-x"):
					next++
				default:
					t.Errorf("added flow of another object: %s", f)
				}
			}
			// 2 classifier, ARP answer, DNAT, SNAT, 2 east-west; the
			// external network's ARP punt and egress punt.
			if nfip != 7 || next != 2 {
				t.Errorf("added %d floating IP flows and %d external network flows, want 7 and 2", nfip, next)
			}
			// And back.
			f2.PortID, f2.FixedIPAddress, f2.RouterID = "", "", ""
			again, _ := state(t, s.input(c), all()...)
			if a, ch := diff(before, again); len(a)+len(ch) != 0 {
				t.Errorf("disassociating left %d added, %d changed flows", len(a), len(ch))
			}
		})
	}
}
