// Package discovery finds fabric links by LLDP. It is a unit of its own:
// the switch manager tells it when this replica masters a switch (Start),
// hands it the frames the LLDP punt flow sends up (Received) and the
// ports that go down (PortDown), and sends the frames it asks for
// (Sender). Links go to a Links store whose writes are fenced by
// mastership; the fence is the store's business, not this package's.
//
// While this replica masters a switch that is not a registered chassis,
// discovery sends an LLDP frame out of every live port each Interval. A
// frame arriving at a switch it masters names the link; the link goes to
// the store (keyed by the receiving port, written only by that switch's
// master) so every replica computes paths from the same graph. A link is
// removed when its receiving port goes down or no frame arrived for
// LinkTimeout.
//
// A link whose port is down is ignored by path computation at once (every
// replica sees port status), so a cut reroutes without waiting for the
// store.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// Links keeps discovered links. Every write must be fenced by the
// caller's mastership of the receiving switch (for etcd: the election's
// compare, added by the implementation): a replica that lost the switch
// must not write. An error leaves the change to be retried.
type Links interface {
	PutLink(ctx context.Context, l model.Link) error
	RemoveLink(ctx context.Context, l model.Link) error
}

// Frame is one frame to send out of one port of the switch.
type Frame struct {
	Port uint32
	Data []byte
}

// Sender sends frames out of the switch's ports (as one batch of
// packet-outs).
type Sender interface {
	SendFrames(frames []Frame) error
}

// Config is what discovery needs from the controller.
type Config struct {
	// Interval between rounds of frames (0: discovery is off).
	Interval time.Duration
	// LinkTimeout forgets a link no frame confirmed for this long
	// (default 4 x Interval).
	LinkTimeout time.Duration
	// Key authenticates frames (HMAC, see topology.LLDPFrame). Empty: none.
	Key []byte
	// Model returns the current model snapshot (links, chassis).
	Model func() (*model.Snapshot, bool)
	// Topology returns the live switch graph (ports, their MACs and state).
	Topology func() *topology.Snapshot
	// Malformed counts frames refused (not ours, malformed, bad key).
	Malformed func()
	Logger    *slog.Logger
}

// Enabled reports whether discovery runs at all.
func (c *Config) Enabled() bool { return c.Interval > 0 }

func (c *Config) linkTimeout() time.Duration {
	if c.LinkTimeout > 0 {
		return c.LinkTimeout
	}
	return 4 * c.Interval
}

// cookie marks the LLDP punt flow.
var cookie = pipeline.Cookie(pipeline.AppTopology, 1)

// PuntFlow sends LLDP frames to the controller, before any
// classification. Every switch that is not a chassis holds it while
// discovery is on. It sits in the PrioritySpecific band so that the
// isolation app's guard drops of LLDP from ports bound to tenant VMs win:
// a tenant cannot forge (or relay) links.
func PuntFlow() *flow.Flow {
	return &flow.Flow{Table: pipeline.Classifier.ID(), Priority: pipeline.PrioritySpecific, Cookie: cookie,
		Meter:   pipeline.MeterLLDP.ID,
		Match:   flow.M().EthType(topology.EthTypeLLDP),
		Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}}
}

// IsChassis reports whether dpid is a node agent's br-int (an overlay
// chassis, where links are tunnels, not LLDP neighbours).
func IsChassis(snap *model.Snapshot, dpid uint64) bool {
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

// Switch is discovery on one switch while this replica masters it.
type Switch struct {
	cfg  *Config
	dpid uint64
	tx   Sender
	st   Links
	log  *slog.Logger

	mu      sync.Mutex
	seen    map[string]time.Time  // link key -> last frame
	written map[string]model.Link // what we last wrote, until the mirror shows it
	gone    map[uint64]time.Time  // receiving switches absent from the topology, since
	ops     chan linkOp
}

// NewSwitch makes the discovery of switch dpid. It does nothing until Run.
func NewSwitch(cfg *Config, dpid uint64, tx Sender, st Links) *Switch {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Switch{cfg: cfg, dpid: dpid, tx: tx, st: st, log: log.With("dpid", fmt.Sprintf("%016x", dpid)),
		seen: map[string]time.Time{}, written: map[string]model.Link{}, gone: map[uint64]time.Time{}, ops: make(chan linkOp, 256)}
}

// Run sends frames and sweeps links each Interval, and writes link
// changes, until ctx ends (mastership lost or switch gone).
func (s *Switch) Run(ctx context.Context) {
	go s.writer(ctx)
	start := time.Now()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		snap, _ := s.cfg.Model()
		chassis := IsChassis(snap, s.dpid)
		if !chassis {
			s.send()
		}
		// A chassis has no fabric links: anything recorded before its
		// node agent registered it goes.
		s.sweep(snap, start, chassis)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send sends one frame out of each live port.
func (s *Switch) send() {
	sw := s.cfg.Topology().Switches[s.dpid]
	if sw == nil {
		return
	}
	var frames []Frame
	for _, p := range sw.Ports {
		if p.No >= flow.PortMax || !p.Up {
			continue
		}
		if f := topology.LLDPFrame(s.dpid, p.No, p.MAC, s.cfg.Key); f != nil {
			frames = append(frames, Frame{Port: p.No, Data: f})
		}
	}
	if len(frames) > 0 {
		if err := s.tx.SendFrames(frames); err != nil {
			s.log.Debug("discovery: LLDP frames not sent", "err", err)
		}
	}
}

func (s *Switch) queue(op linkOp) bool {
	select {
	case s.ops <- op:
		return true
	default:
		return false
	}
}

// sweep removes links arriving here whose port went down or whose
// frames stopped. Links found in the store when mastership began count
// as seen then, so a takeover never drops a live link.
func (s *Switch) sweep(snap *model.Snapshot, start time.Time, chassis bool) {
	topo := s.cfg.Topology()
	sw := topo.Switches[s.dpid]
	now := time.Now()
	timeout := s.cfg.linkTimeout()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range snap.Links() {
		k := l.Key()
		var up bool
		var last time.Time
		switch {
		case l.DstDPID == s.dpid:
			var ok bool
			if last, ok = s.seen[k]; !ok {
				last = start
			}
			if sw != nil && !chassis {
				p, ok := sw.Ports[l.DstPort]
				up = ok && p.Up
			}
		case l.SrcDPID == s.dpid && topo.Switches[l.DstDPID] == nil:
			// The receiving switch is gone (every switch connects to
			// every replica), so no master sweeps this record: the
			// sending side collects it after ten link timeouts. Path
			// computation ignores it meanwhile (its switch is absent), so
			// waiting costs nothing, and a switch that only blinked keeps
			// its links.
			since, ok := s.gone[l.DstDPID]
			if !ok {
				s.gone[l.DstDPID] = now
				continue
			}
			if now.Sub(since) <= 10*timeout {
				continue
			}
			up, last = false, since
		default:
			continue
		}
		if !up || now.Sub(last) > timeout {
			if w, ok := s.written[k]; ok && w == (model.Link{}) {
				continue // delete already queued
			}
			s.log.Info("link gone", "src_dpid", fmt.Sprintf("%016x", l.SrcDPID), "src_port", l.SrcPort,
				"dst_dpid", fmt.Sprintf("%016x", l.DstDPID), "dst_port", l.DstPort,
				"port_up", up, "last_lldp", now.Sub(last).Round(time.Millisecond))
			s.written[k] = model.Link{}
			delete(s.seen, k)
			s.queue(linkOp{del: true, link: *l})
		}
	}
	for g := range s.gone {
		if topo.Switches[g] != nil {
			delete(s.gone, g)
		}
	}
	// Forget writes the mirror now reflects.
	for k, w := range s.written {
		r, ok := snap.Get(model.KindLink, k)
		if w == (model.Link{}) && !ok {
			delete(s.written, k)
		} else if ok && *r.(*model.Link) == w {
			delete(s.written, k)
		}
	}
}

// Received records the link an LLDP frame that arrived on inPort reveals.
// It runs on the connection goroutine, so store writes go to the writer.
func (s *Switch) Received(inPort uint32, frame []byte) {
	snap, _ := s.cfg.Model()
	if IsChassis(snap, s.dpid) {
		return
	}
	src, sport, ok := topology.ParseLLDP(frame, s.cfg.Key)
	if !ok {
		if s.cfg.Malformed != nil {
			s.cfg.Malformed()
		}
		return
	}
	l := model.Link{SrcDPID: src, SrcPort: sport, DstDPID: s.dpid, DstPort: inPort}
	k := l.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[k] = time.Now()
	if r, ok := snap.Get(model.KindLink, k); ok && *r.(*model.Link) == l {
		return
	}
	if w, ok := s.written[k]; ok && w == l {
		return
	}
	s.written[k] = l
	s.log.Info("link discovered", "src_dpid", fmt.Sprintf("%016x", src), "src_port", sport, "port", inPort)
	if !s.queue(linkOp{link: l}) {
		delete(s.written, k) // retried on the next frame
	}
}

// PortDown drops the link arriving at a port that went down at once.
func (s *Switch) PortDown(port uint32) {
	snap, _ := s.cfg.Model()
	k := model.LinkKey(s.dpid, port)
	r, ok := snap.Get(model.KindLink, k)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, k)
	s.written[k] = model.Link{}
	s.queue(linkOp{del: true, link: *r.(*model.Link)})
}

// writer applies link changes to the store.
func (s *Switch) writer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-s.ops:
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var err error
			if op.del {
				err = s.st.RemoveLink(wctx, op.link)
			} else {
				err = s.st.PutLink(wctx, op.link)
			}
			cancel()
			if err != nil {
				s.log.Warn("link write failed", "link", op.link.Key(), "delete", op.del, "err", err)
				s.mu.Lock()
				delete(s.written, op.link.Key())
				s.mu.Unlock()
			}
		}
	}
}
