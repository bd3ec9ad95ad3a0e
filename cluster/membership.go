package cluster

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Role is a mastership decision for one switch.
type Role struct {
	Master bool
	// Generation is the OpenFlow role generation_id: the election
	// revision of the current master (ours when Master).
	Generation uint64
}

// Membership is this replica's candidacy for one switch.
type Membership struct {
	cl     *Cluster
	dpid   uint64
	roles  chan Role
	resign chan struct{}
	cancel context.CancelFunc

	mu sync.Mutex
	// guardKey/guardRev identify our leadership for fenced etcd writes;
	// empty while not master.
	guardKey string
	guardRev int64
	since    time.Time
}

func (m *Membership) setLeader(key string, rev int64) {
	m.mu.Lock()
	m.guardKey, m.guardRev = key, rev
	if key != "" {
		m.since = time.Now()
	}
	m.mu.Unlock()
}

// IsMaster reports whether this replica currently masters the switch,
// and since when.
func (m *Membership) IsMaster() (bool, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.guardKey != "", m.since
}

// Join starts campaigning for dpid. Roles arrive on Roles(); the first
// is always a slave role (or master, if elected at once). Cancel ctx or
// call Leave to stop.
func (cl *Cluster) Join(ctx context.Context, dpid uint64) *Membership {
	ctx, cancel := context.WithCancel(ctx)
	m := &Membership{cl: cl, dpid: dpid, roles: make(chan Role, 16), resign: make(chan struct{}, 1), cancel: cancel}
	cl.mu.Lock()
	cl.members[dpid] = m
	cl.mu.Unlock()
	go m.run(ctx)
	return m
}

// Roles delivers role changes in order.
func (m *Membership) Roles() <-chan Role { return m.roles }

// Leave stops campaigning (and resigns if master).
func (m *Membership) Leave() {
	m.cancel()
	m.cl.mu.Lock()
	if m.cl.members[m.dpid] == m {
		delete(m.cl.members, m.dpid)
	}
	m.cl.mu.Unlock()
}

// Guard returns the etcd comparison that holds only while this replica
// is still the switch's master: writes made as master carry it, so a
// deposed master's writes fail (store.ErrFenced).
func (m *Membership) Guard() clientv3.Cmp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clientv3.Compare(clientv3.CreateRevision(m.guardKey), "=", m.guardRev)
}

func (m *Membership) emit(ctx context.Context, r Role) {
	select {
	case m.roles <- r:
	case <-ctx.Done():
	}
}

func (m *Membership) run(ctx context.Context) {
	log := m.cl.log.With("dpid", DPIDKey(m.dpid))
	pfx := mastersPrefix + DPIDKey(m.dpid)
	for ctx.Err() == nil {
		s, err := m.cl.waitSession(ctx)
		if err != nil {
			return
		}
		connKey := connsPrefix + DPIDKey(m.dpid) + "/" + m.cl.cfg.ReplicaID
		if _, err := m.cl.c.Put(ctx, connKey, "", clientv3.WithLease(s.Lease())); err != nil {
			log.Warn("cannot record switch connection", "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		e := concurrency.NewElection(s, pfx)
		sctx, scancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.Done():
			case <-sctx.Done():
			}
			scancel()
		}()
		// While waiting, follow the current leader to send SLAVE with a
		// valid generation.
		go m.observe(sctx, e)
		err = e.Campaign(sctx, m.cl.cfg.ReplicaID)
		if err == nil {
			// Campaign can return success after our own key was deleted
			// (our lease revoked meanwhile, etcd-io/etcd#11051): check
			// that the key is still ours before acting as master.
			gctx, gcancel := context.WithTimeout(sctx, 2*time.Second)
			resp, gerr := m.cl.c.Get(gctx, e.Key())
			gcancel()
			switch {
			case gerr != nil:
				err = gerr
			case len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != e.Rev():
				err = errors.New("cluster: elected on a key that no longer exists")
			}
		}
		if err != nil {
			scancel()
			if ctx.Err() == nil {
				log.Debug("campaign interrupted", "err", err)
			}
			continue
		}
		m.setLeader(e.Key(), e.Rev())
		log.Info("elected master", "generation", e.Rev())
		m.emit(ctx, Role{Master: true, Generation: uint64(e.Rev())})
		select {
		case <-sctx.Done():
			if ctx.Err() != nil {
				rctx, c := context.WithTimeout(context.Background(), 2*time.Second)
				e.Resign(rctx)
				c()
			}
			log.Warn("lost mastership: session ended")
		case <-m.resign:
			rctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			err := e.Resign(rctx)
			c()
			log.Info("resigned mastership for rebalancing", "err", err)
		}
		scancel()
		m.setLeader("", 0)
		m.emit(ctx, Role{Master: false})
	}
}

func (m *Membership) observe(ctx context.Context, e *concurrency.Election) {
	var last int64
	for resp := range e.Observe(ctx) {
		if len(resp.Kvs) == 0 {
			continue
		}
		kv := resp.Kvs[0]
		if string(kv.Value) == m.cl.cfg.ReplicaID || kv.CreateRevision == last {
			continue
		}
		last = kv.CreateRevision
		m.emit(ctx, Role{Master: false, Generation: uint64(kv.CreateRevision)})
	}
}

// rebalanceLoop resigns switches whose rendezvous owner is another live,
// settled replica connected to the switch.
func (cl *Cluster) rebalanceLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cl.rebalance(ctx)
	}
}

func (cl *Cluster) rebalance(ctx context.Context) {
	cl.mu.Lock()
	members := make(map[uint64]*Membership, len(cl.members))
	for d, m := range cl.members {
		members[d] = m
	}
	replicas := cl.replicas
	cl.mu.Unlock()
	mastering := false
	for _, m := range members {
		if ok, _ := m.IsMaster(); ok {
			mastering = true
		}
	}
	if !mastering {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	conns, err := cl.c.Get(lctx, connsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	var masters *clientv3.GetResponse
	if err == nil {
		masters, err = cl.c.Get(lctx, mastersPrefix, clientv3.WithPrefix())
	}
	cancel()
	if err != nil {
		return
	}
	current := map[uint64]string{}
	firstRev := map[uint64]int64{}
	for _, kv := range masters.Kvs {
		d, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), mastersPrefix), "/")
		dpid, err := strconv.ParseUint(d, 16, 64)
		if err != nil {
			continue
		}
		if r, ok := firstRev[dpid]; !ok || kv.CreateRevision < r {
			firstRev[dpid], current[dpid] = kv.CreateRevision, string(kv.Value)
		}
	}
	cands := map[uint64][]string{}
	for _, kv := range conns.Kvs {
		d, id, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), connsPrefix), "/")
		dpid, err := strconv.ParseUint(d, 16, 64)
		if err != nil {
			continue
		}
		r, ok := replicas[id]
		if ok && (id == cl.cfg.ReplicaID || time.Since(r.Started) >= cl.cfg.Settle) {
			cands[dpid] = append(cands[dpid], id)
		}
	}
	owners := Assign(cands, current)
	for dpid, m := range members {
		if ok, _ := m.IsMaster(); !ok {
			continue
		}
		if want := owners[dpid]; want != "" && want != cl.cfg.ReplicaID {
			select {
			case m.resign <- struct{}{}:
			default:
			}
		}
	}
}

// Assign spreads switches evenly over the replicas connected to them, so
// that loads differ by at most one. A switch stays with its current
// master while that keeps the spread even (no needless handoffs);
// the others go to their highest-ranked candidate with room (rendezvous
// hashing, so assignments move little when replicas come and go). Every
// replica computes the same answer from the same input.
func Assign(cands map[uint64][]string, current map[uint64]string) map[uint64]string {
	all := map[string]bool{}
	dpids := make([]uint64, 0, len(cands))
	for d, cs := range cands {
		dpids = append(dpids, d)
		for _, c := range cs {
			all[c] = true
		}
	}
	if len(all) == 0 {
		return nil
	}
	sort.Slice(dpids, func(i, j int) bool { return dpids[i] < dpids[j] })
	base, extra := len(dpids)/len(all), len(dpids)%len(all)
	load := map[string]int{}
	out := make(map[uint64]string, len(dpids))
	room := func(c string) bool {
		if load[c] < base {
			return true
		}
		if load[c] == base && extra > 0 {
			extra--
			return true
		}
		return false
	}
	// Keep current masters first, as long as the spread stays even.
	for _, d := range dpids {
		cur := current[d]
		if cur == "" || !slices.Contains(cands[d], cur) {
			continue
		}
		if room(cur) {
			load[cur]++
			out[d] = cur
		}
	}
	for _, d := range dpids {
		if _, done := out[d]; done {
			continue
		}
		ranked := rank(d, cands[d])
		pick := ""
		for _, c := range ranked {
			if load[c] < base {
				pick = c
				break
			}
		}
		if pick == "" {
			for _, c := range ranked {
				if room(c) {
					pick = c
					break
				}
			}
		}
		if pick == "" {
			pick = ranked[0] // only over-full candidates are connected
		}
		load[pick]++
		out[d] = pick
	}
	return out
}

// ErrNoLeader is returned when a switch has no master.
var ErrNoLeader = errors.New("cluster: no master")
