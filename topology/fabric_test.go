package topology

import (
	"reflect"
	"testing"
)

// ring4: s1-s2-s3-s4-s1; port 1 is each switch's host port, 2 goes to
// the next switch, 3 to the previous one.
func ring4() []Link {
	return []Link{
		{End{1, 2}, End{2, 3}},
		{End{2, 2}, End{3, 3}},
		{End{3, 2}, End{4, 3}},
		{End{4, 2}, End{1, 3}},
	}
}

func TestLLDPRoundTrip(t *testing.T) {
	key := []byte("cluster key")
	for _, k := range [][]byte{nil, key} {
		f := LLDPFrame(0x00000000000000a1, 7, 0x0200000000aa, k)
		if len(f) < 60 {
			t.Fatalf("frame %d bytes, want >= 60", len(f))
		}
		d, p, ok := ParseLLDP(f, k)
		if !ok || d != 0xa1 || p != 7 {
			t.Fatalf("ParseLLDP = %x %d %v", d, p, ok)
		}
		for _, bad := range [][]byte{nil, f[:13], f[:20], append(append([]byte{}, f[:14]...), 0x02, 0x07, 7, 'x')} {
			if _, _, ok := ParseLLDP(bad, k); ok {
				t.Errorf("ParseLLDP(%x) accepted", bad)
			}
		}
	}
	// With a key: an unauthenticated frame, another key's frame, and a
	// frame whose port was changed after signing are all refused.
	if _, _, ok := ParseLLDP(LLDPFrame(0xa1, 7, 0, nil), key); ok {
		t.Error("frame without authenticator accepted")
	}
	if _, _, ok := ParseLLDP(LLDPFrame(0xa1, 7, 0, []byte("other")), key); ok {
		t.Error("frame signed with another key accepted")
	}
	f := LLDPFrame(0xa1, 7, 0, key)
	f[14+2+1+len("dpid:0000000000000000")+2+1+3] = 8 // port 7 -> 8
	if _, p, ok := ParseLLDP(f, key); ok {
		t.Errorf("tampered frame accepted (port %d)", p)
	}
}

func FuzzParseLLDP(f *testing.F) {
	key := []byte("k")
	f.Add(LLDPFrame(1, 2, 3, key))
	f.Add(LLDPFrame(1, 2, 3, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range [][]byte{nil, key} {
			d, p, ok := ParseLLDP(b, k)
			if ok {
				// Whatever parses must re-encode to a frame that parses the same.
				d2, p2, ok2 := ParseLLDP(LLDPFrame(d, p, 0, k), k)
				if !ok2 || d2 != d || p2 != p {
					t.Fatalf("re-encode %x/%d -> %x/%d %v", d, p, d2, p2, ok2)
				}
			}
		}
	})
}

func TestRingTreeAndPaths(t *testing.T) {
	f := NewFabric([]uint64{1, 2, 3, 4}, ring4(), nil)
	// BFS from s1: s2 via 1:2, s4 via 1:3, s3 via s2 (lower dpid first).
	// The tree leaves the s3-s4 link out.
	all := map[uint64]bool{1: true, 2: true, 3: true, 4: true}
	for dp, want := range map[uint64][]uint32{1: {2, 3}, 2: {2, 3}, 3: {3}, 4: {2}} {
		if got := f.TreePorts(dp, all); !reflect.DeepEqual(got, want) {
			t.Errorf("TreePorts(s%d) = %v, want %v", dp, got, want)
		}
	}
	// Members s2 and s3 only: s1 and s4 are off the pruned tree.
	m := map[uint64]bool{2: true, 3: true}
	for dp, want := range map[uint64][]uint32{1: nil, 2: {2}, 3: {3}, 4: nil} {
		if got := f.TreePorts(dp, m); !reflect.DeepEqual(got, want) {
			t.Errorf("pruned TreePorts(s%d) = %v, want %v", dp, got, want)
		}
	}
	// s1 to s3: two equal paths; the BFS from s3 reaches s2 first.
	if p, ok := f.NextHop(1, 3); !ok || p != 2 {
		t.Errorf("NextHop(1,3) = %d %v, want 2 (via s2)", p, ok)
	}
	if p, ok := f.NextHop(2, 3); !ok || p != 2 {
		t.Errorf("NextHop(2,3) = %d %v", p, ok)
	}
	if p, ok := f.NextHop(4, 3); !ok || p != 3 {
		t.Errorf("NextHop(4,3) = %d %v (the non-tree link is used for unicast)", p, ok)
	}
	if _, ok := f.NextHop(3, 3); ok {
		t.Error("NextHop to self")
	}
	if !f.IsLinkPort(1, 2) || f.IsLinkPort(1, 1) {
		t.Error("IsLinkPort")
	}
}

func TestLinkDownReroutes(t *testing.T) {
	dead := End{1, 2} // the s1-s2 link
	f := NewFabric([]uint64{1, 2, 3, 4}, ring4(), func(e End) bool { return e != dead })
	if p, ok := f.NextHop(1, 3); !ok || p != 3 {
		t.Fatalf("NextHop(1,3) after cut = %d %v, want 3 (via s4)", p, ok)
	}
	if f.IsLinkPort(2, 3) {
		t.Error("the far end of a dead link still counts as a link port")
	}
	all := map[uint64]bool{1: true, 2: true, 3: true, 4: true}
	// Tree is now the path s1-s4-s3-s2.
	for dp, want := range map[uint64][]uint32{1: {3}, 2: {2}, 3: {2, 3}, 4: {2, 3}} {
		if got := f.TreePorts(dp, all); !reflect.DeepEqual(got, want) {
			t.Errorf("TreePorts(s%d) = %v, want %v", dp, got, want)
		}
	}
}

func TestPartitionedFabric(t *testing.T) {
	f := NewFabric([]uint64{1, 2, 3}, []Link{{End{1, 1}, End{2, 1}}}, nil)
	if f.Connected(1, 3) {
		t.Fatal("s3 has no link")
	}
	if _, ok := f.NextHop(1, 3); ok {
		t.Fatal("path to an unreachable switch")
	}
	if got := f.TreePorts(1, map[uint64]bool{1: true, 2: true, 3: true}); !reflect.DeepEqual(got, []uint32{1}) {
		t.Fatalf("TreePorts = %v", got)
	}
}

func TestTreeIsDeterministic(t *testing.T) {
	l := ring4()
	rev := []Link{l[3], {l[2].B, l[2].A}, l[1], {l[0].B, l[0].A}}
	a, b := NewFabric([]uint64{4, 3, 2, 1}, l, nil), NewFabric([]uint64{1, 2, 3, 4}, rev, nil)
	all := map[uint64]bool{1: true, 3: true}
	for dp := uint64(1); dp <= 4; dp++ {
		if x, y := a.TreePorts(dp, all), b.TreePorts(dp, all); !reflect.DeepEqual(x, y) {
			t.Errorf("s%d: %v vs %v", dp, x, y)
		}
		for dst := uint64(1); dst <= 4; dst++ {
			x, _ := a.NextHop(dp, dst)
			y, _ := b.NextHop(dp, dst)
			if x != y {
				t.Errorf("NextHop(%d,%d): %d vs %d", dp, dst, x, y)
			}
		}
	}
}
