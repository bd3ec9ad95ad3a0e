// Package app defines what a Nimbus app is: a pure function from a model
// snapshot and the topology to the full desired flows, groups and meters
// of one switch. Apps never talk to a switch or to etcd (an import test,
// imports_test.go, keeps the wire library, etcd, the store, the cluster,
// the reconciler and the node agent out of every package under app/).
// Packet-in handling is an optional interface whose handlers return
// messages instead of sending them, and read only the state the app's
// last applied Desired handed them (Desired.Handler, PacketIn.State).
package app

import (
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/topology"
)

// Input is everything an app may look at.
type Input struct {
	Model    *model.Snapshot
	Topology *topology.Snapshot
	Switch   *topology.Switch
	// Bindings is the binding table of Model and Topology, computed once
	// per snapshot for every switch and app (binding.Compute). Nil means
	// the caller did not compute it: apps compute it themselves then
	// (tests), never per switch in the controller.
	Bindings *binding.Table
}

// Binding returns in.Bindings, computing it when the caller did not.
func (in Input) Binding() *binding.Table {
	if in.Bindings != nil {
		return in.Bindings
	}
	return binding.Compute(in.Model, in.Topology)
}

// Desired is an app's full desired state for one switch.
type Desired struct {
	Flows  []*flow.Flow
	Groups []*flow.Group
	Meters []*flow.Meter
	// Handler is what the app's packet-in handler needs on this switch
	// (e.g. the DHCP answers per port), computed with the flows. The
	// switch agent keeps the one of the last Desired it applied and
	// passes it in PacketIn.State; nil before the first.
	Handler any
	// Announce are frames the switch agent sends out of a port when they
	// first appear in the app's desired state for the switch (and again
	// shortly after, once the flows are in place): gratuitous ARPs when a
	// floating IP arrives on a chassis. A frame that stays desired is not
	// sent again; one that leaves and comes back is.
	Announce []Announcement
}

// Announcement is one frame to send out of a switch port (Desired.Announce).
type Announcement struct {
	Port uint32
	Data []byte
}

// App computes desired state.
type App interface {
	Name() string
	ID() pipeline.AppID
	Desired(in Input) (Desired, error)
}

// PacketIn is a packet sent to the controller. Data aliases the read
// buffer: valid only during the call.
type PacketIn struct {
	DPID     uint64
	InPort   uint32
	BufferID uint32
	Table    uint8
	Cookie   uint64
	Data     []byte
	// State is Desired.Handler of the app's last applied Desired for
	// this switch (nil before the first).
	State any
}

// FlowOut is a flow to install in reply to a packet-in. BufferID, when
// not NoBuffer, releases the buffered packet through the new flow.
type FlowOut struct {
	Flow     flow.Flow
	BufferID uint32
	// Delete removes the flows of Flow's table and cookie that match
	// Flow.Match (a non-strict delete) instead of adding Flow.
	Delete bool
}

// PacketOut sends a packet (or releases a buffered one).
type PacketOut struct {
	BufferID uint32
	InPort   uint32
	Actions  []flow.Action
	Data     []byte
}

// Out collects a handler's replies. The caller resets and reuses it, so
// handlers should append rather than allocate.
type Out struct {
	Flows      []FlowOut
	PacketOuts []PacketOut
}

// Reset empties o keeping its storage.
func (o *Out) Reset() {
	o.Flows = o.Flows[:0]
	o.PacketOuts = o.PacketOuts[:0]
}

// NoBuffer is OFP_NO_BUFFER.
const NoBuffer = 0xffffffff

// SwitchHandler handles one switch's packet-ins. It is called from that
// switch's connection goroutine only, so it needs no locking.
type SwitchHandler interface {
	PacketIn(pi *PacketIn, out *Out)
	FlowRemoved(cookie uint64, m flow.Match)
}

// PacketInApp is an app that handles packet-ins sent by its own flows
// (routed by the cookie's app id).
type PacketInApp interface {
	App
	NewSwitchHandler(dpid uint64) SwitchHandler
}
