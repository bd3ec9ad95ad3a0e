package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/app/snat"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/cluster/snatlease"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// snatOVS is the fake OVS with the SNAT extras: packet-outs recorded,
// exhaustion-flow counters set by the test.
type snatOVS struct {
	*fakeOVS
	smu   sync.Mutex
	drops map[uint64]uint64
	conns int
}

func (f *snatOVS) FlowPackets(_ context.Context, _ string, cookie uint64) (uint64, error) {
	f.smu.Lock()
	defer f.smu.Unlock()
	return f.drops[cookie], nil
}

func (f *snatOVS) SNATConnections(context.Context, uint16, string) (int, error) {
	f.smu.Lock()
	defer f.smu.Unlock()
	return f.conns, nil
}

const extIP = "172.24.4.10"

func snatModel(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	put := func(r model.Record) {
		if _, err := st.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put(&model.Network{Base: model.Base{ID: "ext"}, AdminStateUp: true, External: true, NetworkType: model.NetFlat, PhysicalNetwork: "extnet"})
	put(&model.Subnet{Base: model.Base{ID: "sub-ext"}, NetworkID: "ext", IPVersion: 4, CIDR: "172.24.4.0/24", GatewayIP: "172.24.4.1"})
	put(&model.Network{Base: model.Base{ID: "net-a"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: 100})
	put(&model.Subnet{Base: model.Base{ID: "sub-a"}, NetworkID: "net-a", IPVersion: 4, CIDR: "10.0.1.0/24", GatewayIP: "10.0.1.1"})
	put(&model.Port{Base: model.Base{ID: "if-a"}, NetworkID: "net-a", MACAddress: "fa:16:3e:aa:00:01", DeviceOwner: "network:router_interface", DeviceID: "r1",
		AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.1.1"}}})
	put(&model.Port{Base: model.Base{ID: "gw"}, NetworkID: "ext", MACAddress: "fa:16:3e:ee:00:01", DeviceOwner: snat.OwnerGateway, DeviceID: "r1",
		AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-ext", IPAddress: extIP}}})
	put(&model.Router{Base: model.Base{ID: "r1"}, AdminStateUp: true, Interfaces: []string{"if-a"},
		Gateway: &model.ExternalGateway{NetworkID: "ext", EnableSNAT: true, ExternalFixedIPs: []model.FixedIP{{SubnetID: "sub-ext", IPAddress: extIP}}}})
	for _, vm := range []string{"vm-hv1", "vm-hv2"} {
		put(&model.Port{Base: model.Base{ID: vm}, NetworkID: "net-a", MACAddress: "fa:16:3e:00:00:0" + vm[5:], DeviceOwner: "compute:nova",
			AdminStateUp: true, FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.1.1" + vm[5:]}}})
	}
}

type snatState struct {
	blocks map[string][]*model.SNATBlock // by chassis
	owner  *model.SNATOwner
}

func readSNAT(t *testing.T, st *store.Store) snatState {
	t.Helper()
	s := snatState{blocks: map[string][]*model.SNATBlock{}}
	rs, err := st.List(context.Background(), model.KindSNATBlock)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		b := r.(*model.SNATBlock)
		s.blocks[b.Chassis] = append(s.blocks[b.Chassis], b)
	}
	if r, _, err := st.Get(context.Background(), model.KindSNATOwner, extIP); err == nil {
		s.owner = r.(*model.SNATOwner)
	}
	return s
}

func (s snatState) String() string {
	o := "none"
	if s.owner != nil {
		o = fmt.Sprintf("%+v", *s.owner)
	}
	n := map[string]int{}
	for c, bs := range s.blocks {
		n[c] = len(bs)
	}
	return fmt.Sprintf("blocks %v owner %s", n, o)
}

// Two agents lease blocks for their VMs, one becomes the ARP owner;
// exhaustion drops grow the lease; a stopped owner hands the IP and its
// blocks back at once; a chassis whose VM goes releases its blocks.
func TestAgentSNATLeases(t *testing.T) {
	st := openStore(t)
	snatModel(t, st)
	agents := map[string]*Agent{}
	ovss := map[string]*snatOVS{}
	cancels := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	for _, hv := range []string{"hv1", "hv2"} {
		o := &snatOVS{fakeOVS: newFakeOVS(), drops: map[uint64]uint64{}}
		// Bridge names of different lengths: the fake's datapath ids differ.
		br := map[string]string{"hv1": "br-int", "hv2": "br-int2"}[hv]
		o.EnsureBridge(context.Background(), Bridge{Name: br})
		o.setPort(br, "tap"+hv, map[string]string{"iface-id": "vm-" + hv})
		a, err := New(Config{Chassis: hv, TunnelIP: "192.0.2." + hv[2:], Store: st, OVS: o, Bridge: br, Mappings: map[string]string{"extnet": "br-ex"},
			IfacePoll: 100 * time.Millisecond, SNATInterval: 100 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		agents[hv], ovss[hv], cancels[hv], done[hv] = a, o, cancel, make(chan struct{})
		go func() { defer close(done[hv]); a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done[hv] })
	}
	var s snatState
	waitFor(t, "a block per chassis and an owner", func() (bool, string) {
		s = readSNAT(t, st)
		return len(s.blocks["hv1"]) == 1 && len(s.blocks["hv2"]) == 1 && s.owner != nil, s.String()
	})
	if s.blocks["hv1"][0].Index == s.blocks["hv2"][0].Index {
		t.Fatalf("both chassis hold block %d", s.blocks["hv1"][0].Index)
	}
	first := s.owner.Chassis
	other := map[string]string{"hv1": "hv2", "hv2": "hv1"}[first]
	_ = other

	// Exhaustion drops while hv1's block is barely used (Open vSwitch's
	// port tries missing) lease nothing.
	ck := snat.ExhaustionCookie("r1", "net-a")
	ovss["hv1"].smu.Lock()
	ovss["hv1"].drops[ck] = 2
	ovss["hv1"].smu.Unlock()
	time.Sleep(time.Second) // ten sync passes
	if s = readSNAT(t, st); len(s.blocks["hv1"]) != 1 {
		t.Fatalf("hv1 grew on drops with its block 0%% used: %s", s)
	}
	// hv1's block is more than a quarter used and runs out: it leases
	// another (400 of 1024: not yet by usage alone).
	ovss["hv1"].smu.Lock()
	ovss["hv1"].drops[ck] = 5
	ovss["hv1"].conns = 400
	ovss["hv1"].smu.Unlock()
	waitFor(t, "hv1 to lease a second block", func() (bool, string) {
		s = readSNAT(t, st)
		return len(s.blocks["hv1"]) == 2, s.String()
	})
	// Counted from the agent's first look at the counter: at least the 3
	// of the second step.
	if n := agents["hv1"].SNATExhaustionDrops(); n < 3 || n > 5 {
		t.Fatalf("exhaustion drops %d, want 3 to 5", n)
	}

	// The owner's agent stops: its lease is revoked, the other takes the IP.
	start := time.Now()
	cancels[first]()
	<-done[first]
	waitFor(t, other+" to own the IP and "+first+"'s blocks to return", func() (bool, string) {
		s = readSNAT(t, st)
		return s.owner != nil && s.owner.Chassis == other && len(s.blocks[first]) == 0, s.String()
	})
	t.Logf("%s took %s over %v after %s stopped", other, extIP, time.Since(start).Round(time.Millisecond), first)
	// The other chassis's VM goes: its blocks go back too.
	if err := st.Remove(context.Background(), model.KindPort, "vm-"+other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, other+" to release its blocks", func() (bool, string) {
		s = readSNAT(t, st)
		return len(s.blocks[other]) == 0, s.String()
	})
}

// reserve keeps one free block for every other chassis with a VM on the
// network and no block of the IP yet (so a busy chassis's growth cannot
// starve it), at most half the IP's blocks.
func TestSNATReserve(t *testing.T) {
	recs := map[model.Kind]map[string]model.Record{}
	put := func(r model.Record) {
		if recs[r.Kind()] == nil {
			recs[r.Kind()] = map[string]model.Record{}
		}
		recs[r.Kind()][r.Key()] = r
	}
	put(&model.Network{Base: model.Base{ID: "net-a"}, AdminStateUp: true, NetworkType: model.NetGRE, SegmentationID: 100})
	for i, c := range []string{"hv1", "hv2", "hv3", "hv4"} {
		vm := "vm-" + c
		put(&model.Chassis{Name: c, TunnelIP: fmt.Sprintf("192.0.2.%d", i+1), DPID: fmt.Sprintf("%016x", i+1), Interfaces: map[string]string{"tap" + c: vm}, Ports: map[string]uint32{"tap" + c: 1}})
		put(&model.Port{Base: model.Base{ID: vm}, NetworkID: "net-a", MACAddress: fmt.Sprintf("fa:16:3e:00:00:0%d", i+1), DeviceOwner: "compute:nova", AdminStateUp: true})
	}
	// hv2 already holds a block; hv3 and hv4 hold none.
	put(&model.SNATBlock{ExternalIP: extIP, Index: 5, Bits: 10, Chassis: "hv2", NetworkID: "net-a"})
	snap := model.NewSnapshot(1, recs)
	tbl := binding.Compute(snap, nil)
	st := openStore(t)
	l, err := snatlease.New(context.Background(), snatlease.Config{Client: st.Client(), Chassis: "hv1", Bits: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s := &snatMgr{a: &Agent{cfg: Config{Chassis: "hv1"}}}
	if got := s.reserve(snap, tbl, l, extIP, "net-a"); got != 2 {
		t.Fatalf("reserve for hv1: %d, want 2 (hv3 and hv4)", got)
	}
	if got := s.reserve(snap, tbl, l, extIP, "net-b"); got != 0 {
		t.Fatalf("reserve on a network with no VM: %d", got)
	}
}
