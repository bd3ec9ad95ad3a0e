package switches

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// LinkStore keeps discovered links (the store implements it).
type LinkStore interface {
	Put(ctx context.Context, r model.Record, guards ...clientv3.Cmp) (int64, error)
	Remove(ctx context.Context, k model.Kind, id string, guards ...clientv3.Cmp) error
}

// Link discovery (fabric mode). While this replica masters a switch that
// is not a registered chassis, it sends an LLDP frame out of every live
// port each LLDPInterval. A frame arriving at a switch it masters names
// the link; the link goes to etcd (keyed by the receiving port, written
// only by that switch's master, fenced by its election) so every replica
// computes paths from the same graph. A link is removed when its
// receiving port goes down or no frame arrived for LinkTimeout.
//
// A link whose port is down is ignored by path computation at once (every
// replica sees port status), so a cut reroutes without waiting for etcd.

// lldpCookie marks the LLDP punt flow.
var lldpCookie = pipeline.Cookie(pipeline.AppTopology, 1)

// LLDPFlow sends LLDP frames to the controller, before any
// classification. Every switch that is not a chassis holds it while
// discovery is on. It sits in the PrioritySpecific band so that the
// isolation app's guard drops of LLDP from ports bound to tenant VMs win:
// a tenant cannot forge (or relay) links.
func LLDPFlow() *flow.Flow {
	return &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: lldpCookie,
		Meter:   pipeline.MeterLLDP.ID,
		Match:   flow.M().EthType(topology.EthTypeLLDP),
		Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}}
}

// isChassis reports whether dpid is a node agent's br-int (an overlay
// chassis, where links are tunnels, not LLDP neighbours).
func isChassis(snap *model.Snapshot, dpid uint64) bool {
	for _, c := range snap.Chassis() {
		if d, err := c.DatapathID(); err == nil && d == dpid {
			return true
		}
	}
	return false
}

type linkOp struct {
	del  bool
	link model.Link
}

// discovery is one switch's LLDP state while this replica masters it.
type discovery struct {
	mu      sync.Mutex
	seen    map[string]time.Time  // link key -> last frame
	written map[string]model.Link // what we last wrote, until the mirror shows it
	gone    map[uint64]time.Time  // receiving switches absent from the topology, since
	ops     chan linkOp
}

func (m *Manager) linkTimeout() time.Duration {
	if m.cfg.LinkTimeout > 0 {
		return m.cfg.LinkTimeout
	}
	return 4 * m.cfg.LLDPInterval
}

// discover runs while this replica masters the switch.
func (a *agent) discover(ctx context.Context) {
	m := a.m
	if m.cfg.LLDPInterval <= 0 || m.cfg.Links == nil {
		return
	}
	d := &discovery{seen: map[string]time.Time{}, written: map[string]model.Link{}, gone: map[uint64]time.Time{}, ops: make(chan linkOp, 256)}
	a.mu.Lock()
	a.disc = d
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.disc = nil
		a.mu.Unlock()
	}()
	go a.linkWriter(ctx, d)
	dpid := a.c.DPID()
	start := time.Now()
	t := time.NewTicker(m.cfg.LLDPInterval)
	defer t.Stop()
	for {
		snap, _ := m.cfg.Model()
		chassis := isChassis(snap, dpid)
		if !chassis {
			a.sendLLDP()
		}
		// A chassis has no fabric links: anything recorded before its
		// node agent registered it goes.
		a.sweepLinks(snap, start, chassis)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendLLDP sends one frame out of each live port.
func (a *agent) sendLLDP() {
	sw := a.m.graph.Snapshot().Switches[a.c.DPID()]
	if sw == nil {
		return
	}
	var b []byte
	for _, p := range sw.Ports {
		if p.No >= flow.PortMax || !p.Up {
			continue
		}
		var err error
		b, err = ofproto.AppendPacketOut(b, a.c.NextXid(), ofproto.NoBuffer, flow.PortController,
			[]flow.Action{flow.Output{Port: p.No}}, topology.LLDPFrame(a.c.DPID(), p.No, p.MAC, a.m.cfg.LLDPKey))
		if err != nil { // an LLDP frame is ~100 bytes: not expected
			a.log.Error("LLDP packet-out not encodable", "port", p.No, "err", err)
		}
	}
	if len(b) > 0 {
		// Send, not Queue: Queue flushes only when this connection's
		// input drains, and a quiet switch may have no input for seconds.
		_ = a.c.Send(b)
	}
}

// sweepLinks removes links arriving here whose port went down or whose
// frames stopped. Links found in etcd when mastership began count as
// seen then, so a takeover never drops a live link.
func (a *agent) sweepLinks(snap *model.Snapshot, start time.Time, chassis bool) {
	d := a.discovery()
	if d == nil {
		return
	}
	dpid := a.c.DPID()
	sw := a.m.graph.Snapshot().Switches[dpid]
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	topo := a.m.graph.Snapshot()
	for _, l := range snap.Links() {
		k := l.Key()
		var up bool
		var last time.Time
		switch {
		case l.DstDPID == dpid:
			var ok bool
			if last, ok = d.seen[k]; !ok {
				last = start
			}
			if sw != nil && !chassis {
				p, ok := sw.Ports[l.DstPort]
				up = ok && p.Up
			}
		case l.SrcDPID == dpid && topo.Switches[l.DstDPID] == nil:
			// The receiving switch is gone (every switch connects to
			// every replica), so no master sweeps this record: the
			// sending side collects it after ten link timeouts. Path
			// computation ignores it meanwhile (its switch is absent), so
			// waiting costs nothing, and a switch that only blinked keeps
			// its links.
			since, ok := d.gone[l.DstDPID]
			if !ok {
				d.gone[l.DstDPID] = now
				continue
			}
			if now.Sub(since) <= 10*a.m.linkTimeout() {
				continue
			}
			up, last = false, since
		default:
			continue
		}
		if !up || now.Sub(last) > a.m.linkTimeout() {
			if w, ok := d.written[k]; ok && w == (model.Link{}) {
				continue // delete already queued
			}
			a.log.Info("link gone", "src_dpid", ofproto.DPIDString(l.SrcDPID), "src_port", l.SrcPort,
				"dst_dpid", ofproto.DPIDString(l.DstDPID), "dst_port", l.DstPort,
				"port_up", up, "last_lldp", now.Sub(last).Round(time.Millisecond))
			d.written[k] = model.Link{}
			delete(d.seen, k)
			select {
			case d.ops <- linkOp{del: true, link: *l}:
			default:
			}
		}
	}
	for g := range d.gone {
		if topo.Switches[g] != nil {
			delete(d.gone, g)
		}
	}
	// Forget writes the mirror now reflects.
	for k, w := range d.written {
		r, ok := snap.Get(model.KindLink, k)
		if w == (model.Link{}) && !ok {
			delete(d.written, k)
		} else if ok && *r.(*model.Link) == w {
			delete(d.written, k)
		}
	}
}

func (a *agent) discovery() *discovery {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.disc
}

// lldpIn records the link an LLDP frame reveals. It runs on the
// connection goroutine, so etcd writes go to the writer.
func (a *agent) lldpIn(inPort uint32, data []byte) {
	d := a.discovery()
	if d == nil {
		return
	}
	if snap, _ := a.m.cfg.Model(); isChassis(snap, a.c.DPID()) {
		return
	}
	src, sport, ok := topology.ParseLLDP(data, a.m.cfg.LLDPKey)
	if !ok {
		a.m.cfg.Metrics.MalformedLLDP.Inc()
		return
	}
	l := model.Link{SrcDPID: src, SrcPort: sport, DstDPID: a.c.DPID(), DstPort: inPort}
	k := l.Key()
	snap, _ := a.m.cfg.Model()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[k] = time.Now()
	if r, ok := snap.Get(model.KindLink, k); ok && *r.(*model.Link) == l {
		return
	}
	if w, ok := d.written[k]; ok && w == l {
		return
	}
	d.written[k] = l
	a.log.Info("link discovered", "src_dpid", ofproto.DPIDString(src), "src_port", sport, "port", inPort)
	select {
	case d.ops <- linkOp{link: l}:
	default:
		delete(d.written, k) // retried on the next frame
	}
}

// linkWriter applies link changes to etcd, fenced by mastership.
func (a *agent) linkWriter(ctx context.Context, d *discovery) {
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-d.ops:
			var guards []clientv3.Cmp
			a.mu.Lock()
			if a.mem != nil {
				guards = append(guards, a.mem.Guard())
			}
			a.mu.Unlock()
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var err error
			if op.del {
				err = a.m.cfg.Links.Remove(wctx, model.KindLink, op.link.Key(), guards...)
			} else {
				_, err = a.m.cfg.Links.Put(wctx, &op.link, guards...)
			}
			cancel()
			if err != nil {
				a.log.Warn("link write failed", "link", op.link.Key(), "delete", op.del, "err", err)
				d.mu.Lock()
				delete(d.written, op.link.Key())
				d.mu.Unlock()
			}
		}
	}
}

// portDown drops the link arriving at a port that went down at once.
func (a *agent) portDown(port uint32) {
	d := a.discovery()
	if d == nil {
		return
	}
	snap, _ := a.m.cfg.Model()
	k := model.LinkKey(a.c.DPID(), port)
	r, ok := snap.Get(model.KindLink, k)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, k)
	d.written[k] = model.Link{}
	select {
	case d.ops <- linkOp{del: true, link: *r.(*model.Link)}:
	default:
	}
}
