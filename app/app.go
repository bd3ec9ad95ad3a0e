// Package app defines what a Nimbus app is: a pure function from a model
// snapshot and the topology to the full desired flows, groups and meters
// of one switch. Apps never talk to a switch or to etcd. Packet-in
// handling is an optional interface whose handlers return messages
// instead of sending them.
package app

import (
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
}

// Desired is an app's full desired state for one switch.
type Desired struct {
	Flows  []*flow.Flow
	Groups []*flow.Group
	Meters []*flow.Meter
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
