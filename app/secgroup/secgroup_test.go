package secgroup

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

// state is the switch's full state as switches.Manager computes it: the
// pipeline's miss flows, the isolation app and this app, every flow
// checked against its table's contract.
func state(t testing.TB, in app.Input, withIsolation bool) *flow.State {
	t.Helper()
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	apps := []app.App{New()}
	if withIsolation {
		apps = append(apps, isolation.New(isolation.Config{}))
	}
	for _, a := range apps {
		d, err := a.Desired(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range d.Flows {
			if err := pipeline.Check(f); err != nil {
				t.Errorf("contract: %v", err)
			}
			if st.AddFlow(f) {
				t.Errorf("two flows share a key: %s", f.KeyText())
			}
		}
		for _, g := range d.Groups {
			st.Groups[g.ID] = g
		}
		for _, m := range d.Meters {
			st.Meters[m.ID] = m
		}
	}
	return st
}

func TestGolden(t *testing.T) {
	s := newScenario()
	for _, c := range []struct{ name, chassis string }{{"hv1", "hv1"}, {"hv2", "hv2"}, {"hv1-egress", "hv1"}} {
		t.Run(c.name, func(t *testing.T) {
			s := s
			if c.name == "hv1-egress" {
				s = egressScenario() // narrower egress rules (TestWalkEgressRules)
			}
			got := state(t, s.input(c.chassis), false).Text()
			golden := "testdata/" + c.name + ".golden"
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("flows differ from %s (rerun with -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

func TestPortMasks(t *testing.T) {
	for _, c := range []struct {
		lo, hi uint16
		want   string
	}{
		{80, 80, "0x50/0xffff"},
		{8000, 8010, "0x1f40/0xfff8 0x1f48/0xfffe 0x1f4a/0xffff"},
		{0, 65535, "0x0/0x0"},
		{1, 65535, "0x1/0xffff 0x2/0xfffe 0x4/0xfffc 0x8/0xfff8 0x10/0xfff0 0x20/0xffe0 0x40/0xffc0 0x80/0xff80 0x100/0xff00 0x200/0xfe00 0x400/0xfc00 0x800/0xf800 0x1000/0xf000 0x2000/0xe000 0x4000/0xc000 0x8000/0x8000"},
		{1024, 2047, "0x400/0xfc00"},
	} {
		var got []string
		for _, m := range PortMasks(c.lo, c.hi) {
			got = append(got, m.String())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("PortMasks(%d,%d) = %s, want %s", c.lo, c.hi, strings.Join(got, " "), c.want)
		}
		// Exactly the range: every port in, none outside.
		for p := 0; p < 65536; p++ {
			in := false
			for _, m := range PortMasks(c.lo, c.hi) {
				if uint16(p)&m.Mask == m.Value {
					in = true
				}
			}
			if in != (p >= int(c.lo) && p <= int(c.hi)) {
				t.Fatalf("PortMasks(%d,%d): port %d covered=%v", c.lo, c.hi, p, in)
			}
		}
	}
}

func TestProtocol(t *testing.T) {
	for _, c := range []struct {
		s       string
		p       uint8
		any, ok bool
	}{{"", 0, true, true}, {"any", 0, true, true}, {"tcp", 6, false, true}, {"TCP", 6, false, true}, {"6", 6, false, true},
		{"icmp", 1, false, true}, {"47", 47, false, true}, {"sctp", 132, false, true}, {"256", 0, false, false}, {"bogus", 0, false, false}} {
		p, any, ok := Protocol(c.s)
		if p != c.p || any != c.any || ok != c.ok {
			t.Errorf("Protocol(%q) = %d,%v,%v", c.s, p, any, ok)
		}
	}
}

func TestZone(t *testing.T) {
	if Zone(100) != 100 || Zone(1<<23|200) != 0x70c8 || Zone(0x6fff) != 0x6fff || Zone(0x7000) != 1 {
		t.Fatalf("zones: %d %x %x %d", Zone(100), Zone(1<<23|200), Zone(0x6fff), Zone(0x7000))
	}
	// The load balancer's zone of a network is never a security-group zone.
	for _, key := range []uint32{1, 100, 0x6fff, 0x7000, 1<<23 | 200, 1<<23 | 4095} {
		if lb := pipeline.ZoneLB(key); lb&0x8000 == 0 || lb&^0x8000 != Zone(key) {
			t.Fatalf("ZoneLB(%#x) = %#x, security-group zone %#x", key, lb, Zone(key))
		}
	}
}

// TestRecirculateContract: the ACL tables may recirculate into
// themselves (pipeline.Table.Recirculate); other tables may not.
func TestRecirculateContract(t *testing.T) {
	ip := flow.M().EthType(flow.EthTypeIPv4)
	for _, c := range []struct {
		t  *pipeline.Table
		ok bool
	}{{fromVM, true}, {toVM, true}, {pipeline.DNAT, false}} {
		f := &flow.Flow{Table: c.t.ID(), Priority: pipeline.PriorityNormal, Cookie: pipeline.Cookie(c.t.Owner, 1), Match: ip,
			Actions: []flow.Action{flow.CT{Zone: 1, Table: c.t.ID()}}}
		if err := pipeline.Check(f); (err == nil) != c.ok {
			t.Errorf("%s: ct(table=itself): %v, want ok=%v", c.t.Name, err, c.ok)
		}
	}
}
