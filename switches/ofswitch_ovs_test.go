package switches_test

import (
	"context"
	"errors"
	"github.com/nimbus-sdn/nimbus/switches"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// Real-OVS tests of the reconciler (NIMBUS_E2E=1).

// server starts an OpenFlow server whose connections go to the returned
// channel; target is the bridge's controller target for it.
func ofServer(t *testing.T) (target string, conns chan *ofproto.Conn) {
	t.Helper()
	sess := &capture{conns: make(chan *ofproto.Conn, 4)}
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
	return "tcp:" + addr.String(), sess.conns
}

func accept(t *testing.T, conns chan *ofproto.Conn, br *ovslab.Bridge) *ofproto.Conn {
	t.Helper()
	select {
	case c := <-conns:
		if c.DPID() != br.DPID {
			t.Fatalf("datapath id %016x, bridge has %016x", c.DPID(), br.DPID)
		}
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("bridge never connected")
		return nil
	}
}

// Finding 6: OVS dumps tcp_flags in OpenFlow 1.3 as an ONF experimenter
// OXM. One such foreign flow used to fail every dump, so the switch never
// converged. Now it is represented apart, and left alone.
func TestForeignExperimenterFieldFlowE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	target, conns := ofServer(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{target}})
	conn := accept(t, conns, br)
	foreign := "table=0,priority=5,tcp,tcp_flags=+syn,actions=drop"
	br.Ofctl("-O", "OpenFlow13", "add-flow", br.Name, foreign)
	// A flow of ours whose modelled key is the foreign flow's minus its
	// tcp_flags: a different flow on the switch, never a conflict.
	ours := &flow.Flow{Table: 0, Priority: 5, Cookie: 0x4e03000000000001,
		Match: flow.M().EthType(flow.EthTypeIPv4).Set(flow.IPProto, flow.ProtoTCP), Actions: []flow.Action{flow.Output{Port: flow.PortController}}}
	other := &flow.Flow{Table: 1, Priority: 10, Cookie: 0x4e03000000000002, Match: flow.M().InPort(1)}
	st := flow.NewState()
	st.AddFlow(ours)
	st.AddFlow(other)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := reconcile.New(br.DPID, &switches.OFSwitch{Conn: conn}, reconcile.Options{})
	r.SetDesired(st, true)
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatalf("reconcile with a foreign tcp_flags flow on the switch: %v", err)
	}
	if len(ops.FlowAdds) != 2 || len(ops.Conflicts) != 0 || len(ops.FlowDels) != 0 {
		t.Fatalf("first pass:\n%s", ops.Text())
	}
	if ops, err = r.Pass(ctx, true); err != nil || !ops.Empty() {
		t.Fatalf("second full pass: err %v, changes:\n%s", err, ops.Text())
	}
	var sawForeign, sawOurs bool
	for _, f := range br.DumpFlows() {
		s := f.Spec()
		switch {
		case strings.Contains(s, "tcp_flags=+syn"):
			sawForeign = true
			if !strings.Contains(s, "actions=drop") || f.Cookie != 0 {
				t.Errorf("foreign flow changed: %s", s)
			}
		case f.Cookie == ours.Cookie:
			sawOurs = true
		}
	}
	if !sawForeign || !sawOurs {
		t.Fatalf("foreign flow kept %v, ours installed %v:\n%s", sawForeign, sawOurs, br.Ofctl("dump-flows", br.Name))
	}
}

// Finding 8: OVS refuses a slave connection's bundle with
// BAD_REQUEST/IS_SLAVE. That must not turn bundles off for the switch:
// once this replica is master again, its changes still go in bundles.
func TestSlaveBundleRefusalKeepsBundlesE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	t1, conns1 := ofServer(t)
	t2, conns2 := ofServer(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{t1, t2}})
	deposed, master := accept(t, conns1, br), accept(t, conns2, br)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := deposed.SetRole(ctx, ofproto.RoleMaster, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := master.SetRole(ctx, ofproto.RoleMaster, 11); err != nil {
		t.Fatal(err) // OVS demotes the other connection to SLAVE
	}
	sw := &switches.OFSwitch{Conn: deposed}
	add := func(prio uint16) *reconcile.Ops {
		return &reconcile.Ops{FlowAdds: []*flow.Flow{{Table: 0, Priority: prio, Cookie: 0x4e03000000000000 | uint64(prio), Match: flow.M().InPort(uint32(prio))}}}
	}
	err := sw.Apply(ctx, add(1))
	var oe *ofproto.OFError
	if !errors.As(err, &oe) || oe.Type != ofproto.ErrBadRequest || oe.Code != ofproto.ErrCodeIsSlave {
		t.Fatalf("a slave's bundle: got %v, want BAD_REQUEST/IS_SLAVE", err)
	}
	if errors.Is(err, ofproto.ErrNoBundles) || sw.NoBundles {
		t.Fatalf("IS_SLAVE turned bundles off (err %v)", err)
	}
	// Master again: the next change goes in a bundle and is applied.
	if _, _, err := deposed.SetRole(ctx, ofproto.RoleMaster, 12); err != nil {
		t.Fatal(err)
	}
	if err := sw.Apply(ctx, add(2)); err != nil {
		t.Fatal(err)
	}
	if sw.NoBundles {
		t.Fatal("bundles off after the switch accepted one")
	}
	if fs := br.DumpFlows("table=0"); len(fs) != 1 || fs[0].Priority != 2 {
		t.Fatalf("flows after the master's bundle: %+v", fs)
	}
}

// Finding 1, reconciler side, against OVS: a flood group too large for one
// message is refused (with the flow that uses it); the rest of the switch
// converges and later passes send nothing.
func TestOversizedFloodGroupRefusedE2E(t *testing.T) {
	ovslab.RequireE2E(t)
	target, conns := ofServer(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{target}})
	conn := accept(t, conns, br)
	big := floodGroup(reconcile.GroupIDBase+1, 3000)
	small := floodGroup(reconcile.GroupIDBase+2, 3)
	st := desired(portFlow(1, 1), groupFlow(2, big.ID), groupFlow(3, small.ID))
	st.Groups[big.ID], st.Groups[small.ID] = big, small
	obs := &refusalObs{}
	r := reconcile.New(br.DPID, &switches.OFSwitch{Conn: conn}, reconcile.Options{Observer: obs})
	r.SetDesired(st, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.Pass(ctx, true); err != nil {
		t.Fatalf("pass with an oversized flood group: %v", err)
	}
	for _, full := range []bool{true, false} {
		if ops, err := r.Pass(ctx, full); err != nil || !ops.Empty() {
			t.Fatalf("pass (full=%v) after the refusal: %v\n%s", full, err, ops.Text())
		}
	}
	if len(obs.refused) != 2 {
		t.Errorf("refusals counted: %v", obs.refused)
	}
	groups := strings.Join(br.DumpGroups(), "\n")
	if !strings.Contains(groups, "group_id=1308622850") || strings.Contains(groups, "group_id=1308622849") {
		t.Errorf("groups on the switch:\n%s", groups)
	}
	n := 0
	for _, f := range br.DumpFlows() {
		if f.Cookie>>56 == 0x4e {
			n++
		}
	}
	if want := len(st.Flows) - 1; n != want {
		t.Errorf("%d of our flows on the switch, want %d (all but the one using the refused group)", n, want)
	}
}
