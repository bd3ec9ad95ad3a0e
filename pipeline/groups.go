package pipeline

import (
	"fmt"

	"github.com/nimbus-sdn/nimbus/flow"
)

// MaxGroupBuckets bounds the buckets of one group, so that a group-mod
// always fits one OpenFlow message (65,535 bytes): 1,000 buckets of up to
// MaxBucketBytes plus the group-mod header is under 64,100 bytes. A
// bucket of an isolation flood group is 48 bytes (GRE, local port) or 56
// (VLAN uplink). Apps that need more buckets chain groups (ChainGroup).
const (
	MaxGroupBuckets = 1000
	MaxBucketBytes  = 64
)

// ChainGroup splits one logical group of type all into groups of at most
// MaxGroupBuckets buckets. The first group has id head (the id flows
// refer to); when the buckets do not fit, its last bucket does
// group:<next> to a group holding the rest, and so on. next hands out the
// ids of the extra groups (from the calling app's group-id range); it is
// called only when a chain is needed. Every bucket is in exactly one
// group of the chain, in order.
func ChainGroup(head uint32, buckets []flow.Bucket, next func() uint32) []*flow.Group {
	if MaxGroupBuckets < 2 {
		panic(fmt.Sprintf("pipeline: MaxGroupBuckets %d cannot chain", MaxGroupBuckets))
	}
	var out []*flow.Group
	id := head
	for {
		g := &flow.Group{ID: id, Type: flow.GroupAll}
		out = append(out, g)
		if len(buckets) <= MaxGroupBuckets {
			g.Buckets = buckets
			return out
		}
		id = next()
		g.Buckets = append(append([]flow.Bucket{}, buckets[:MaxGroupBuckets-1]...),
			flow.Bucket{Actions: []flow.Action{flow.GroupAction{ID: id}}})
		buckets = buckets[MaxGroupBuckets-1:]
	}
}
