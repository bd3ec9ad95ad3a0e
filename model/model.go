// Package model holds the immutable network-model snapshot apps compute
// flows from. The store (etcd) produces snapshots; apps only read them.
package model

// Snapshot is an immutable view of the network model at one store
// revision. It grows with the tenant apps (networks, subnets, ports,
// routers...); a snapshot is never modified after it is published.
type Snapshot struct {
	Revision int64
}

// Empty is the snapshot before anything is loaded.
var Empty = &Snapshot{}
