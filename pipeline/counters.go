package pipeline

import "fmt"

// Flow counters. A desired flow may name a Counter (flow.Flow.Counter):
// what its packet and byte counters measure for its cookie's object. On
// each full reconcile pass the switch's master reads them and publishes
// their sums per object and name (store.SwitchCounters, keyed by
// CounterKey); the API sums those over the switches. Open vSwitch starts
// a flow's counters from zero when the flow is (re)installed or the
// switch restarts, so the sums can step back then.
//
// app/lb names these under a VIP's cookie (northbound serves them as the
// pool's LBaaS v1 stats):
const (
	// CounterIn: every client packet to the VIP, once, on the chassis
	// that balances it (its first pass in lb): bytes_in.
	CounterIn = "in"
	// CounterOut: every reply from a member through the VIP, once: NAT,
	// on the chassis that un-NATs it; DSR, as it leaves its member's
	// port: bytes_out.
	CounterOut = "out"
	// CounterNew: each new connection's first packet, sent to the
	// members' select group (or the persistence hash):
	// total_connections.
	CounterNew = "new"
)

// Counter is a flow's (or a sum of flows') packet and byte counters.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// CounterKey names one object's counter sum: "<object id hex>/<name>".
func CounterKey(object uint64, name string) string { return fmt.Sprintf("%x/%s", object, name) }
