package switches

import (
	"context"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/store"
	"github.com/nimbus-sdn/nimbus/topology/discovery"
)

// Link discovery (fabric mode) lives in topology/discovery. The manager
// wires it: while this replica masters a switch it runs a
// discovery.Switch, sends the frames it asks for as packet-outs, hands
// it the LLDP punts and the ports that go down, and fences its link
// writes with the switch's election.

// LinkStore keeps discovered links (the store implements it).
type LinkStore interface {
	Put(ctx context.Context, r model.Record, guards ...store.Guard) (int64, error)
	Remove(ctx context.Context, k model.Kind, id string, guards ...store.Guard) error
}

// LLDPFlow is discovery's punt flow (see discovery.PuntFlow).
func LLDPFlow() *flow.Flow { return discovery.PuntFlow() }

// isChassis reports whether dpid is a node agent's br-int.
func isChassis(snap *model.Snapshot, dpid uint64) bool { return discovery.IsChassis(snap, dpid) }

// discoveryConfig is the manager's discovery configuration.
func (m *Manager) discoveryConfig() *discovery.Config {
	return &discovery.Config{Interval: m.cfg.LLDPInterval, LinkTimeout: m.cfg.LinkTimeout, Key: m.cfg.LLDPKey,
		Model: m.cfg.Model, Topology: m.graph.Snapshot, Malformed: m.cfg.Metrics.MalformedLLDP.Inc, Logger: m.log}
}

// discover runs discovery while this replica masters the switch.
func (a *agent) discover(ctx context.Context) {
	m := a.m
	if m.cfg.LLDPInterval <= 0 || m.cfg.Links == nil || m.disc == nil {
		return
	}
	d := discovery.NewSwitch(m.disc, a.c.DPID(), agentSender{a}, fencedLinks{a})
	a.mu.Lock()
	a.disc = d
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.disc = nil
		a.mu.Unlock()
	}()
	d.Run(ctx)
}

func (a *agent) discovery() *discovery.Switch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.disc
}

// lldpIn passes an LLDP punt to discovery, if it runs.
func (a *agent) lldpIn(inPort uint32, data []byte) {
	if d := a.discovery(); d != nil {
		d.Received(inPort, data)
	}
}

// portDown tells discovery a port went down, if it runs.
func (a *agent) portDown(port uint32) {
	if d := a.discovery(); d != nil {
		d.PortDown(port)
	}
}

// agentSender sends discovery's frames as one batch of packet-outs.
type agentSender struct{ a *agent }

func (s agentSender) SendFrames(frames []discovery.Frame) error {
	a := s.a
	var b []byte
	for _, f := range frames {
		var err error
		b, err = ofproto.AppendPacketOut(b, a.c.NextXid(), ofproto.NoBuffer, flow.PortController,
			[]flow.Action{flow.Output{Port: f.Port}}, f.Data)
		if err != nil { // an LLDP frame is ~100 bytes: not expected
			a.log.Error("LLDP packet-out not encodable", "port", f.Port, "err", err)
		}
	}
	if len(b) == 0 {
		return nil
	}
	// Send, not Queue: Queue flushes only when this connection's input
	// drains, and a quiet switch may have no input for seconds.
	return a.c.Send(b)
}

// fencedLinks writes links through the store, fenced by this replica's
// election for the switch: a replica that lost mastership cannot write.
type fencedLinks struct{ a *agent }

func (f fencedLinks) guards() []store.Guard {
	f.a.mu.Lock()
	defer f.a.mu.Unlock()
	if f.a.mem == nil {
		return nil
	}
	return []store.Guard{f.a.mem.Guard()}
}

func (f fencedLinks) PutLink(ctx context.Context, l model.Link) error {
	_, err := f.a.m.cfg.Links.Put(ctx, &l, f.guards()...)
	return err
}

func (f fencedLinks) RemoveLink(ctx context.Context, l model.Link) error {
	return f.a.m.cfg.Links.Remove(ctx, model.KindLink, l.Key(), f.guards()...)
}
