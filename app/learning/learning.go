// Package learning is the L2 learning app: the default for ports that no
// tenant network covers, on plain OpenFlow switches (Mininet, a fabric
// of top-of-rack switches). It learns each source MAC's port from
// packet-ins and installs (in_port, dl_src, dl_dst) -> output flows with
// an idle timeout, so after the first packet a conversation is forwarded
// by the switch alone. Unknown and broadcast destinations are flooded.
//
// Every packet-in it gets comes through a metered punt
// (pipeline.MeterLearning): the l2_learning table's miss drops, and the
// app installs the punt itself, with the meter, on the switches where it
// runs.
//
// On a chassis's br-int there is no fallback at all: a port no network
// covers (a tap not bound yet, a stray interface) has its frames dropped,
// as Neutron's OVS agent does with its "dead VLAN". Flooding them would
// reach tenant VMs, tunnels and the provider uplink, and nothing on a
// br-int needs a learning switch: every legitimate port there is a
// tenant port, a tunnel or an uplink, all handled by isolation.
//
// On a plain switch, a port that a Neutron port claims (its tap name or
// binding:profile port_name) is a tenant's: floods skip it (a group of
// the other ports replaces OFPP_FLOOD) and its packet-ins are ignored.
// A plain switch without such ports floods with OFPP_FLOOD, as before.
//
// A frame goes back out by the switch's buffer id when it gave one, and
// otherwise as the packet-out's data. A frame too large for that (over
// MaxPacketOutData bytes: it cannot be encoded in one OpenFlow message) is
// dropped and counted (Dropped), never sent.
package learning

import (
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
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
type App struct {
	cfg Config
}

// plan is what the handler may do on one switch: Desired returns it as
// app.Desired.Handler, the handler reads the last applied one
// (app.PacketIn.State).
type plan struct {
	off    bool            // a chassis: no fallback, packet-ins ignored
	flood  []flow.Action   // OFPP_FLOOD, or the group of the plain ports
	tenant map[uint32]bool // ports claimed by Neutron ports: never learned from, never sent to
}

var floodAll = &plan{flood: []flow.Action{flow.Output{Port: flow.PortFlood}}}

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

// PuntCookie marks the metered punt flow.
var PuntCookie = pipeline.Cookie(pipeline.AppLearning, 0)

// floodGroupID is the group of a plain switch's ports that are not a
// tenant's; chained groups (pipeline.MaxGroupBuckets) follow it.
var floodGroupID = pipeline.GroupBase(pipeline.AppLearning)

// PuntFlow is the l2_learning flow that sends misses to the controller
// through the learning meter.
func PuntFlow() *flow.Flow {
	return &flow.Flow{Table: pipeline.L2Learning.ID(), Priority: pipeline.PriorityDefault, Cookie: PuntCookie,
		Meter: pipeline.MeterLearning.ID, Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}}
}

// Desired: nothing on a chassis (the table's miss drops); elsewhere the
// metered punt, and the flood group when Neutron ports claim some of the
// switch's ports.
func (a *App) Desired(in app.Input) (app.Desired, error) {
	var d app.Desired
	if in.Switch == nil {
		return d, nil
	}
	var t *binding.Table
	if in.Model != nil {
		t = in.Binding()
		if t.ChassisOf(in.Switch.DPID) != nil {
			d.Handler = &plan{off: true}
			return d, nil
		}
	}
	d.Flows = []*flow.Flow{PuntFlow()}
	d.Meters = []*flow.Meter{pipeline.MeterLearning.Meter()}
	var tenant map[uint32]bool
	if t != nil {
		tenant = t.ClaimedPorts(in.Switch)
	}
	if len(tenant) == 0 {
		d.Handler = floodAll
		return d, nil
	}
	var plain []uint32
	for no := range in.Switch.Ports {
		if !tenant[no] && no != flow.PortLocal {
			plain = append(plain, no)
		}
	}
	sort.Slice(plain, func(i, j int) bool { return plain[i] < plain[j] })
	buckets := make([]flow.Bucket, len(plain))
	for i, no := range plain {
		buckets[i] = flow.Bucket{Actions: []flow.Action{flow.Output{Port: no}}}
	}
	next := floodGroupID
	d.Groups = pipeline.ChainGroup(floodGroupID, buckets, func() uint32 { next++; return next })
	d.Handler = &plan{flood: []flow.Action{flow.GroupAction{ID: floodGroupID}}, tenant: tenant}
	return d, nil
}

// NewSwitchHandler makes the per-switch MAC table.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler {
	return &handler{a: a, dpid: dpid, cfg: a.cfg, macs: make(map[flow.MAC]uint32), match: make(flow.Match, 3)}
}

type handler struct {
	a     *App
	dpid  uint64
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
	// Before Desired has seen the switch, it is treated as a plain one
	// (no punt of ours is installed yet, so nothing of a chassis's comes
	// here through it).
	pl, _ := pi.State.(*plan)
	if pl == nil {
		pl = floodAll
	}
	if pl.off || pl.tenant[pi.InPort] {
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
	if dst.IsMulticast() || !known || pl.tenant[port] {
		if h.sendable(pi) {
			out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: pi.BufferID, InPort: pi.InPort,
				Actions: pl.flood, Data: pi.Data})
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
