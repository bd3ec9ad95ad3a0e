package ofproto

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// The lb app's select group (app/lb): one bucket per member, each only
// ct(commit,zone,table,nat(dst=ip:port)). A bucket is MaxBucketBytes, so
// a pool of MaxGroupBuckets (1,000) members fits one group-mod.
func TestLBSelectGroupFits(t *testing.T) {
	g := &flow.Group{ID: pipeline.GroupBase(pipeline.AppLB) + 1, Type: flow.GroupSelect}
	for i := 0; i < pipeline.MaxGroupBuckets; i++ {
		g.Buckets = append(g.Buckets, flow.Bucket{Weight: 0xffff, Actions: []flow.Action{flow.CT{Commit: true, Zone: 0xffff, Table: 5,
			NAT: &flow.NAT{Flags: flow.NATDst, IPMin: flow.IPv4(0x0a010000 + uint32(i)), PortMin: 65535}}}})
	}
	one, err := appendBuckets(nil, g.Buckets[:1])
	if err != nil {
		t.Fatal(err)
	}
	if len(one) > pipeline.MaxBucketBytes {
		t.Fatalf("lb bucket is %d bytes, over MaxBucketBytes %d", len(one), pipeline.MaxBucketBytes)
	}
	b, err := AppendGroupMod(nil, 1, GCModify, g)
	if err != nil {
		t.Fatalf("1,000-member select group: %v", err)
	}
	t.Logf("bucket %d bytes; group-mod of %d buckets: %d bytes", len(one), len(g.Buckets), len(b))
	got, err := parseBuckets(b[16:])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(g.Buckets) || flow.ActionsString(got[999].Actions) != flow.ActionsString(g.Buckets[999].Actions) {
		t.Fatalf("round trip: %d buckets, last %v", len(got), got[len(got)-1])
	}
}
