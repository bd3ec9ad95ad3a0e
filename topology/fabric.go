package topology

import "sort"

// End is one end of a fabric link: a switch port.
type End struct {
	DPID uint64
	Port uint32
}

// Link joins two switch ports. Discovery records it in one direction
// (the LLDP frame left A and arrived at B); the fabric treats it as
// undirected.
type Link struct{ A, B End }

type edge struct {
	port     uint32 // on this switch
	peer     uint64
	peerPort uint32
}

// Fabric is the graph of switches joined by live links, with a
// deterministic spanning tree (for flooding) and shortest paths (for
// unicast). Every replica computes the same tree and paths from the same
// links: ties are broken by the lowest datapath id, then the lowest port.
// A Fabric is built per computation and is not safe for concurrent use.
type Fabric struct {
	adj    map[uint64][]edge
	far    map[End]End
	parent map[uint64]edge // spanning tree: the edge toward the root
	comp   map[uint64]uint64
	order  []uint64 // BFS order of the spanning tree (parents first)
	next   map[uint64]map[uint64]uint32
}

// NewFabric builds the fabric over switches from links whose both ends
// are on known switches and alive. A port with two different neighbours
// (a stale record) keeps the first link in sorted order.
func NewFabric(switches []uint64, links []Link, alive func(End) bool) *Fabric {
	f := &Fabric{adj: map[uint64][]edge{}, far: map[End]End{}, parent: map[uint64]edge{},
		comp: map[uint64]uint64{}, next: map[uint64]map[uint64]uint32{}}
	known := make(map[uint64]bool, len(switches))
	for _, s := range switches {
		known[s] = true
	}
	norm := make([]Link, 0, len(links))
	for _, l := range links {
		if l.A.DPID == l.B.DPID || !known[l.A.DPID] || !known[l.B.DPID] {
			continue
		}
		if alive != nil && (!alive(l.A) || !alive(l.B)) {
			continue
		}
		if less(l.B, l.A) {
			l.A, l.B = l.B, l.A
		}
		norm = append(norm, l)
	}
	sort.Slice(norm, func(i, j int) bool {
		if norm[i].A != norm[j].A {
			return less(norm[i].A, norm[j].A)
		}
		return less(norm[i].B, norm[j].B)
	})
	for _, l := range norm {
		if _, used := f.far[l.A]; used {
			continue
		}
		if _, used := f.far[l.B]; used {
			continue
		}
		f.far[l.A], f.far[l.B] = l.B, l.A
		f.adj[l.A.DPID] = append(f.adj[l.A.DPID], edge{l.A.Port, l.B.DPID, l.B.Port})
		f.adj[l.B.DPID] = append(f.adj[l.B.DPID], edge{l.B.Port, l.A.DPID, l.A.Port})
	}
	for _, es := range f.adj {
		sort.Slice(es, func(i, j int) bool {
			if es[i].peer != es[j].peer {
				return es[i].peer < es[j].peer
			}
			return es[i].port < es[j].port
		})
	}
	// Spanning forest: BFS from the lowest datapath id of each component.
	ids := append([]uint64(nil), switches...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, root := range ids {
		if _, seen := f.comp[root]; seen {
			continue
		}
		f.comp[root] = root
		queue := []uint64{root}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			f.order = append(f.order, u)
			for _, e := range f.adj[u] {
				if _, seen := f.comp[e.peer]; seen {
					continue
				}
				f.comp[e.peer] = root
				f.parent[e.peer] = edge{port: e.peerPort, peer: u, peerPort: e.port}
				queue = append(queue, e.peer)
			}
		}
	}
	return f
}

func less(a, b End) bool {
	if a.DPID != b.DPID {
		return a.DPID < b.DPID
	}
	return a.Port < b.Port
}

// IsLinkPort reports whether a switch port is a live fabric link end.
func (f *Fabric) IsLinkPort(dpid uint64, port uint32) bool {
	_, ok := f.far[End{dpid, port}]
	return ok
}

// LinkPorts lists a switch's live fabric link ports, sorted.
func (f *Fabric) LinkPorts(dpid uint64) []uint32 {
	out := make([]uint32, 0, len(f.adj[dpid]))
	for _, e := range f.adj[dpid] {
		out = append(out, e.port)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Connected reports whether two switches are in the same component.
func (f *Fabric) Connected(a, b uint64) bool {
	ca, oka := f.comp[a]
	cb, okb := f.comp[b]
	return oka && okb && ca == cb
}

// TreePorts lists the spanning-tree ports of dpid that lead toward at
// least one member switch, pruned so a flood reaches every member (in
// dpid's component) and no switch twice: a tree edge is kept when
// members lie on both of its sides.
func (f *Fabric) TreePorts(dpid uint64, members map[uint64]bool) []uint32 {
	if _, ok := f.comp[dpid]; !ok {
		return nil
	}
	comp := f.comp[dpid]
	below := map[uint64]int{}
	total := 0
	for m := range members {
		if members[m] && f.comp[m] == comp {
			below[m]++
			total++
		}
	}
	// Children after parents in f.order: walk backwards to sum subtrees.
	for i := len(f.order) - 1; i >= 0; i-- {
		v := f.order[i]
		if f.comp[v] != comp {
			continue
		}
		if p, ok := f.parent[v]; ok {
			below[p.peer] += below[v]
		}
	}
	need := func(child uint64) bool { return below[child] > 0 && below[child] < total }
	var out []uint32
	if p, ok := f.parent[dpid]; ok && need(dpid) {
		out = append(out, p.port)
	}
	for _, e := range f.adj[dpid] {
		if p, ok := f.parent[e.peer]; ok && p.peer == dpid && p.port == e.peerPort && need(e.peer) {
			out = append(out, e.port)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// NextHop is the port of src on a shortest path to dst (false when dst
// is src or unreachable). The paths toward one dst form a BFS tree
// rooted at dst, so every switch on the way agrees and no path loops.
func (f *Fabric) NextHop(src, dst uint64) (uint32, bool) {
	if src == dst || !f.Connected(src, dst) {
		return 0, false
	}
	hops, ok := f.next[dst]
	if !ok {
		hops = map[uint64]uint32{}
		seen := map[uint64]bool{dst: true}
		queue := []uint64{dst}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, e := range f.adj[u] {
				if seen[e.peer] {
					continue
				}
				seen[e.peer] = true
				hops[e.peer] = e.peerPort
				queue = append(queue, e.peer)
			}
		}
		f.next[dst] = hops
	}
	p, ok := hops[src]
	return p, ok
}
