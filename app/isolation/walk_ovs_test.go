package isolation

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/switches"
)

type walkCapture struct{ conns chan *ofproto.Conn }

func (c *walkCapture) OnConnect(conn *ofproto.Conn) ofproto.Handler { c.conns <- conn; return nil }
func (c *walkCapture) OnDisconnect(*ofproto.Conn, error)            {}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestWalkAgreesWithOVS is the fake switch's oracle test: hv1's isolation
// flows, groups and meters (with a3) go into a real OVS bridge through our
// own codec, and every packet of walkCases goes both through the fake
// switch and through `ovs-appctl ofproto/trace`. The trace's "Datapath
// actions:" are replayed on the input packet (fakeswitch.Replay) to get
// OVS's verdict: each output port with the frame as it leaves (and the
// GRE key for the tunnel), each punt with its reason and cookie. Both
// verdicts must be equal for every packet.
//
// The GRE port needs a route for OVS's native tunnelling, so an underlay
// bridge owned by the test carries a /30 from 198.18.0.0/15 (the
// benchmarking range) on its own internal device, with a static neighbour
// for the remote end; its only flow forwards GRE from LOCAL to its port 1.
// A frame sent into the tunnel shows as tnl_push(...key=K...) followed by
// an output to that port. No packet is sent: ofproto/trace only.
func TestWalkAgreesWithOVS(t *testing.T) {
	ovslab.RequireE2E(t)
	sess := &walkCapture{conns: make(chan *ofproto.Conn, 4)}
	srv := &ofproto.Server{Addr: "127.0.0.1:0", Session: sess,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Underlay with a free /30 for the tunnel.
	under, remote := ovslab.TunnelUnderlay(t)

	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{"tcp:" + addr.String()}})
	var conn *ofproto.Conn
	select {
	case conn = <-sess.conns:
	case <-time.After(15 * time.Second):
		t.Fatal("bridge never connected")
	}
	for _, n := range []int{1, 2, 3, portA3, 20} {
		br.AddPort("", n)
	}
	br.AddPortType("", 10, "gre", map[string]string{"remote_ip": remote, "key": "flow"})

	st := walkState(t)
	ofsw := &switches.OFSwitch{Conn: conn}
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	defer acancel()
	if err := ofsw.Apply(actx, reconcile.Diff(st, reconcile.NewActual(), true)); err != nil {
		t.Fatalf("OVS refused the isolation flows: %v", err)
	}
	if got, err := ofsw.Dump(actx); err != nil {
		t.Fatal(err)
	} else if ops := reconcile.Diff(st, got, true); !ops.Empty() {
		t.Fatalf("OVS holds something else than we sent:\n%s", ops.Text())
	}

	dp := fakeswitch.ParseDpifShow(sh(t, "ovs-appctl", "dpif/show"))
	x := &fakeswitch.Replay{ODP: dp[br.Name], Tunnels: map[uint32]bool{10: true}, Underlay: map[int]bool{}}
	for odp, of := range dp[under.Name] {
		if of == 1 {
			x.Underlay[odp] = true
		}
	}
	if len(x.ODP) != len(hv1Ports) || len(x.Underlay) != 1 {
		t.Fatalf("datapath ports: bridge %v, underlay %v", dp[br.Name], dp[under.Name])
	}

	fake := fakeswitch.FromState(st, hv1Ports...)
	var table strings.Builder
	fmt.Fprintf(&table, "%-70s | %-5s | %s\n", "packet", "agree", "verdict (fake = OVS)")
	agreed := 0
	cases := walkCases()
	for _, c := range cases {
		r, err := fake.Walk(c.in, c.pkt)
		if err != nil {
			t.Errorf("%s: fake switch: %v", c.name, err)
			continue
		}
		want := r.Verdict(x.Tunnels)
		in := c.pkt.Clone()
		in.InPort = c.in
		tr := br.Trace(in.String())
		got, err := x.Trace(tr, in)
		if err != nil {
			t.Errorf("%s: replaying the trace: %v\n%s", c.name, err, tr)
			continue
		}
		ok := got == want
		if ok {
			agreed++
			fmt.Fprintf(&table, "%-70s | %-5v | %s\n", c.name, ok, want)
		} else {
			fmt.Fprintf(&table, "%-70s | %-5v | fake: %s\n%-70s | %-5s | OVS:  %s\n", c.name, ok, want, "", "", got)
			t.Errorf("%s: the fake switch and OVS disagree\nfake: %s\nOVS:  %s\nfake trace:\n%s\nOVS trace:\n%s", c.name, want, got, r.TraceText(), tr)
		}
	}
	t.Logf("fake switch vs ofproto/trace, %d of %d packets agree:\n%s", agreed, len(cases), table.String())
	if len(cases) < 10 {
		t.Fatalf("only %d packets", len(cases))
	}

	// The comparison can fail: a model without the ARP responder's
	// flows (every flow that answers out of IN_PORT) floods the request
	// instead, and must disagree with OVS on it.
	broken := flow.NewState()
	for k, f := range st.Flows {
		if !strings.Contains(f.InstructionsString(), "IN_PORT") {
			broken.Flows[k] = f
		}
	}
	broken.Groups, broken.Meters = st.Groups, st.Meters
	arp := arpRequest(macA1, "10.0.0.11", "10.0.0.12")
	r, err := fakeswitch.FromState(broken, hv1Ports...).Walk(1, arp)
	if err != nil {
		t.Fatal(err)
	}
	arp.InPort = 1
	got, err := x.Trace(br.Trace(arp.String()), arp)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Verdict(x.Tunnels); got == want {
		t.Fatalf("a model without the ARP responder agrees with OVS: %s", got)
	}
}
