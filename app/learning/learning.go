// Package learning is the L2 learning app: the default for ports that no
// tenant network covers. It learns each source MAC's port from packet-ins
// and installs (in_port, dl_src, dl_dst) -> output flows with an idle
// timeout, so after the first packet a conversation is forwarded by the
// switch alone. Unknown and broadcast destinations are flooded.
//
// A frame goes back out by the switch's buffer id when it gave one, and
// otherwise as the packet-out's data. A frame too large for that (over
// MaxPacketOutData bytes: it cannot be encoded in one OpenFlow message) is
// dropped and counted (Dropped), never sent.
package learning

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Config tunes the app.
type Config struct {
	// IdleTimeout of learned flows, seconds.
	IdleTimeout uint16
	// MaxMACs bounds the per-switch MAC table.
	MaxMACs int
	// Logger gets a debug line per dropped frame (default slog.Default()).
	Logger *slog.Logger
}

// MaxPacketOutData is the most frame data a packet-out with one output
// action carries: 65535 minus the header (8), the packet-out fields (16)
// and the action (16). ofproto.PacketOutOverhead; apps do not import the
// wire library.
const MaxPacketOutData = 0xffff - 40

var dropped atomic.Uint64

// Dropped counts frames not sent back out because they were larger than
// MaxPacketOutData and the switch had not buffered them (a metric).
func Dropped() uint64 { return dropped.Load() }

// App is the learning app.
type App struct{ cfg Config }

// New makes the app with defaults filled in.
func New(cfg Config) *App {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 60
	}
	if cfg.MaxMACs == 0 {
		cfg.MaxMACs = 65536
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &App{cfg: cfg}
}

func (a *App) Name() string       { return "learning" }
func (a *App) ID() pipeline.AppID { return pipeline.AppLearning }

// Desired: the learning table's miss flow (to the controller) comes from
// the pipeline declaration; the app adds no static flows of its own.
func (a *App) Desired(app.Input) (app.Desired, error) { return app.Desired{}, nil }

// NewSwitchHandler makes the per-switch MAC table.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler {
	return &handler{cfg: a.cfg, macs: make(map[flow.MAC]uint32), match: make(flow.Match, 3)}
}

type handler struct {
	cfg   Config
	macs  map[flow.MAC]uint32
	match flow.Match
	acts  [1]flow.Action
}

// LearnedCookie marks learned flows: learning app, dynamic.
var LearnedCookie = pipeline.DynamicCookie(pipeline.AppLearning, 1)

func (h *handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	if len(pi.Data) < 14 {
		return
	}
	dst, src := flow.MACFromBytes(pi.Data[0:6]), flow.MACFromBytes(pi.Data[6:12])
	if !src.IsMulticast() {
		if old, ok := h.macs[src]; ok && old != pi.InPort {
			// The host moved: flows that still send to its old port
			// would black-hole its traffic until they idle out.
			out.Flows = append(out.Flows, app.FlowOut{Delete: true, BufferID: app.NoBuffer, Flow: flow.Flow{
				Table: pipeline.L2Learning.ID(), Priority: pipeline.PriorityLearned, Cookie: LearnedCookie,
				Match: flow.Match{{F: flow.EthDst, Value: uint64(src)}}}})
		}
		if len(h.macs) >= h.cfg.MaxMACs {
			clear(h.macs)
		}
		h.macs[src] = pi.InPort
	}
	port, known := h.macs[dst]
	if dst.IsMulticast() || !known {
		if h.sendable(pi) {
			out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: pi.BufferID, InPort: pi.InPort,
				Actions: floodActions, Data: pi.Data})
		}
		return
	}
	if port == pi.InPort {
		return // the destination is behind the ingress port: nothing to do
	}
	// Build the match in place, in canonical field order.
	m := h.match[:0]
	m = append(m, flow.MatchField{F: flow.InPort, Value: uint64(pi.InPort)},
		flow.MatchField{F: flow.EthSrc, Value: uint64(src)}, flow.MatchField{F: flow.EthDst, Value: uint64(dst)})
	h.match = m
	outAct := outputActions(port)
	out.Flows = append(out.Flows, app.FlowOut{BufferID: pi.BufferID, Flow: flow.Flow{
		Table: pipeline.L2Learning.ID(), Priority: pipeline.PriorityLearned, Cookie: LearnedCookie,
		IdleTimeout: h.cfg.IdleTimeout, Match: m, Actions: outAct}})
	if pi.BufferID == app.NoBuffer && h.sendable(pi) {
		out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: pi.InPort, Actions: outAct, Data: pi.Data})
	}
}

// sendable reports whether the frame can go back out: by its buffer id,
// or as data that fits one packet-out. A frame that cannot is dropped
// (the learned flow, if any, still carries the rest of the conversation).
func (h *handler) sendable(pi *app.PacketIn) bool {
	if pi.BufferID != app.NoBuffer || len(pi.Data) <= MaxPacketOutData {
		return true
	}
	dropped.Add(1)
	h.cfg.Logger.Debug("learning: frame too large to send back without a switch buffer; dropped",
		"dpid", fmt.Sprintf("%016x", pi.DPID), "in_port", pi.InPort, "bytes", len(pi.Data))
	return false
}

func (h *handler) FlowRemoved(uint64, flow.Match) {}

var floodActions = []flow.Action{flow.Output{Port: flow.PortFlood}}

func outputActions(port uint32) []flow.Action {
	if port < 4096 {
		return outSmall[port]
	}
	return []flow.Action{flow.Output{Port: port}}
}

var outSmall = func() (t [4096][]flow.Action) {
	for i := range t {
		t[i] = []flow.Action{flow.Output{Port: uint32(i)}}
	}
	return
}()
