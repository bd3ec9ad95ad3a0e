package switches_test

import (
	"context"
	"encoding/binary"
	"errors"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/switches"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// scripted is a switch at the far end of a net.Pipe that accepts
// everything: it answers the handshake, bundle controls, barriers and
// (empty) multipart requests, and records the messages bundled or sent.
type scripted struct {
	nc   net.Conn
	mu   chan struct{}
	msgs [][]byte // flow, group and meter mods, unwrapped from bundle adds
}

func (s *scripted) recorded() [][]byte {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return append([][]byte(nil), s.msgs...)
}

func readWire(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[8:])
	return msg, err
}

func reply(typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = ofproto.Version, typ
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return append(b, body...)
}

// scriptedConn connects an ofproto.Conn (through ofproto.Server) to a
// scripted switch.
func scriptedConn(t *testing.T) (*ofproto.Conn, *scripted) {
	t.Helper()
	conns := make(chan *ofproto.Conn, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &ofproto.Server{Session: &capture{conns: conns}, Logger: slog.New(slog.DiscardHandler),
		Conn: ofproto.Config{EchoInterval: time.Hour}}
	ctrl, nc := net.Pipe()
	done := make(chan struct{})
	go func() { srv.ServeConn(ctx, ctrl); close(done) }()
	t.Cleanup(func() { nc.Close(); cancel(); <-done })
	s := &scripted{nc: nc, mu: make(chan struct{}, 1)}
	go func() {
		write := func(b []byte) { go nc.Write(b) }
		for {
			msg, err := readWire(nc)
			if err != nil {
				return
			}
			xid := binary.BigEndian.Uint32(msg[4:])
			switch msg[1] {
			case ofproto.TypeHello:
				write(ofproto.AppendHello(nil, xid))
			case ofproto.TypeFeaturesReq:
				feat := make([]byte, 24)
				binary.BigEndian.PutUint64(feat, 0x5c)
				feat[12] = 254
				write(reply(ofproto.TypeFeaturesReply, xid, feat))
			case ofproto.TypeBarrierReq:
				write(reply(ofproto.TypeBarrierReply, xid, nil))
			case ofproto.TypeMultipartReq:
				write(reply(ofproto.TypeMultipartReply, xid, append(msg[8:10:10], 0, 0, 0, 0, 0, 0)))
			case ofproto.TypeExperimenter:
				switch binary.BigEndian.Uint32(msg[12:]) {
				case 2300: // bundle control: answer OPEN/COMMIT with their replies
					r := append([]byte(nil), msg...)
					binary.BigEndian.PutUint16(r[20:], binary.BigEndian.Uint16(msg[20:])+1)
					write(r)
				case 2301: // bundle add
					s.mu <- struct{}{}
					s.msgs = append(s.msgs, msg[24:])
					<-s.mu
				}
			case ofproto.TypeFlowMod, ofproto.TypeGroupMod, ofproto.TypeMeterMod:
				s.mu <- struct{}{}
				s.msgs = append(s.msgs, msg)
				<-s.mu
			}
		}
	}()
	select {
	case c := <-conns:
		return c, s
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return nil, nil
	}
}

// floodGroup is an ALL group with one output bucket per port.
func floodGroup(id uint32, ports int) *flow.Group {
	g := &flow.Group{ID: id, Type: flow.GroupAll}
	for p := 1; p <= ports; p++ {
		g.Buckets = append(g.Buckets, flow.Bucket{Actions: []flow.Action{flow.Output{Port: uint32(p)}}})
	}
	return g
}

func groupFlow(prio uint16, group uint32) *flow.Flow {
	return &flow.Flow{Table: 2, Priority: prio, Cookie: 0x4e03000000000000 | uint64(prio),
		Match: flow.M().InPort(uint32(prio)), Actions: []flow.Action{flow.GroupAction{ID: group}}}
}

// Finding 1, reconciler side: a flood group of more buckets than fit one
// message used to panic the reconciler. Now that group (and what depends
// on it) is refused with a clear error, and everything else is applied,
// in bundles and without them.
func TestApplyRefusesGroupTooLargeForOneMessage(t *testing.T) {
	for _, bundles := range []bool{true, false} {
		conn, sw := scriptedConn(t)
		big := floodGroup(reconcile.GroupIDBase+1, 3000)
		chained := &flow.Group{ID: reconcile.GroupIDBase + 2, Type: flow.GroupAll,
			Buckets: []flow.Bucket{{Actions: []flow.Action{flow.GroupAction{ID: big.ID}}}}}
		small := floodGroup(reconcile.GroupIDBase+3, 4)
		ops := &reconcile.Ops{GroupAdds: []*flow.Group{big, chained, small},
			FlowAdds: []*flow.Flow{groupFlow(1, big.ID), groupFlow(2, chained.ID), groupFlow(3, small.ID), portFlow(4, 4)}}
		ofs := &switches.OFSwitch{Conn: conn, NoBundles: !bundles}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := ofs.Apply(ctx, ops)
		cancel()
		var re *reconcile.RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("bundles=%v: Apply returned %v, want a RefusedError", bundles, err)
		}
		got := map[string]string{}
		for _, r := range re.Refused {
			got[r.Kind()+" "+r.ID()] = r.Err.Error()
		}
		want := []string{"group 0x4e000001", "group 0x4e000002", "flow " + groupFlow(1, 0).KeyText(), "flow " + groupFlow(2, 0).KeyText()}
		for _, k := range want {
			if got[k] == "" {
				t.Errorf("bundles=%v: %s not refused; refused %v", bundles, k, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("bundles=%v: refused %v, want only %v", bundles, got, want)
		}
		if !errors.Is(re.Refused[0].Err, ofproto.ErrTooLarge) || !strings.Contains(err.Error(), "3000 buckets") {
			t.Errorf("bundles=%v: unclear error: %v", bundles, err)
		}
		// The rest reached the switch: the small group and two flows.
		var groups, flows int
		for _, m := range sw.recorded() {
			switch m[1] {
			case ofproto.TypeGroupMod:
				groups++
			case ofproto.TypeFlowMod:
				flows++
			}
		}
		if groups != 1 || flows != 2 {
			t.Errorf("bundles=%v: switch got %d group-mods and %d flow-mods, want 1 and 2", bundles, groups, flows)
		}
	}
}

type refusalObs struct {
	countObs
	refused []string
}

func (o *refusalObs) Refused(dpid uint64, kind, id string, err error) {
	o.refused = append(o.refused, kind+" "+id)
}

// The reconciler converges the rest of the switch around a refused group:
// the pass succeeds, the refusal is logged and counted once (not on every
// pass), and it ends when the group is no longer desired.
func TestReconcilerConvergesAroundRefusedGroup(t *testing.T) {
	conn, _ := scriptedConn(t)
	obs := &refusalObs{}
	r := reconcile.New(0x5c, &switches.OFSwitch{Conn: conn}, reconcile.Options{Observer: obs})
	big := floodGroup(reconcile.GroupIDBase+1, 3000)
	st := desired(portFlow(1, 1), groupFlow(2, big.ID))
	st.Groups[big.ID] = big
	r.SetDesired(st, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ops, err := r.Pass(ctx, true)
	if err != nil {
		t.Fatalf("pass with an oversized group: %v", err)
	}
	if len(ops.GroupAdds) != 0 || len(ops.FlowAdds) != len(st.Flows)-1 {
		t.Fatalf("applied ops should be all but the group and its flow:\n%s", ops.Text())
	}
	if ref := r.Refused(); len(ref) != 2 || ref["group 0x4e000001"] == "" {
		t.Fatalf("refused %v", ref)
	}
	// Later passes retry the group, refuse it again, and stay quiet. (Only
	// incremental ones: the scripted switch keeps no tables to dump.)
	for _, full := range []bool{false, false} {
		ops, err = r.Pass(ctx, full)
		if err != nil || !ops.Empty() {
			t.Fatalf("pass (full=%v) after the refusal: %v\n%s", full, err, ops.Text())
		}
	}
	if len(obs.refused) != 2 {
		t.Fatalf("refusals counted %v, want the group and its flow once", obs.refused)
	}
	// Once the group is split (here: gone), the refusal ends.
	r.SetDesired(desired(portFlow(1, 1)), true)
	if _, err = r.Pass(ctx, false); err != nil {
		t.Fatal(err)
	}
	if ref := r.Refused(); len(ref) != 0 {
		t.Fatalf("still refused: %v", ref)
	}
}

type countObs struct{ drift int }

func (o *countObs) Reconciled(uint64, time.Duration, *reconcile.Ops, error) {}
func (o *countObs) DriftRepaired(_ uint64, n int)                           { o.drift += n }

func desired(extra ...*flow.Flow) *flow.State {
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for _, f := range extra {
		st.AddFlow(f)
	}
	return st
}

func portFlow(port uint32, out uint32) *flow.Flow {
	return &flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal,
		Cookie:  pipeline.Cookie(pipeline.AppIsolation, uint64(port)),
		Match:   flow.M().Set(flow.Reg1, 5).EthDst(flow.MAC(0x020000000000 | uint64(port))),
		Actions: []flow.Action{flow.Output{Port: out}}}
}
