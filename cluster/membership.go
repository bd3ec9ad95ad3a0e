package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/nimbus-sdn/nimbus/store"
)

// Role is a mastership decision for one switch.
type Role struct {
	Master bool
	// Generation is the OpenFlow role generation_id: the election
	// revision of the current master (ours when Master) plus the
	// switch's generation offset (see RaiseGeneration). 0 on a slave
	// role means "no master known".
	Generation uint64
	// Seq numbers this switch's role changes in the order this replica
	// decided them: a change with a higher Seq is newer. Roles() never
	// delivers a lower Seq after a higher one.
	Seq uint64
	// rev is the election revision Generation derives from.
	rev int64
}

// Membership is this replica's candidacy for one switch.
//
// Role changes come from two goroutines (the campaign and the observer
// of the current leader). Both decide and publish under mu, so a
// decision made on stale knowledge (the observer saw the old leader
// just before we were elected) is dropped instead of overtaking a newer
// one; one dispatcher goroutine then delivers the latest decision on
// Roles(), coalescing changes the consumer had no time to act on.
type Membership struct {
	cl     *Cluster
	dpid   uint64
	roles  chan Role
	notify chan struct{} // a newer role is pending
	resign chan time.Duration
	cancel context.CancelFunc

	mu sync.Mutex
	// guardKey/guardRev identify our leadership for fenced etcd writes;
	// empty while not master.
	guardKey string
	guardRev int64
	since    time.Time
	// epoch changes whenever this replica's own standing changes
	// (campaign round started, elected, lost): an observer's decision
	// from an older epoch is stale.
	epoch   uint64
	seq     uint64
	pending Role
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
	m := &Membership{cl: cl, dpid: dpid, roles: make(chan Role), notify: make(chan struct{}, 1),
		resign: make(chan time.Duration, 1), cancel: cancel}
	cl.mu.Lock()
	cl.members[dpid] = m
	cl.mu.Unlock()
	go m.dispatch(ctx)
	go m.run(ctx)
	return m
}

// Roles delivers role changes in order (the latest one when several
// happened while the consumer was busy).
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

// Guard returns the store guard that holds only while this replica is
// still the switch's master (its election key is the one it created):
// writes made as master carry it, so a deposed master's writes fail
// (store.ErrFenced).
func (m *Membership) Guard() store.Guard {
	m.mu.Lock()
	defer m.mu.Unlock()
	return store.Held(m.guardKey, m.guardRev)
}

// publishLocked numbers r and makes it the pending role. m.mu is held.
func (m *Membership) publishLocked(r Role) {
	m.seq++
	r.Seq = m.seq
	m.pending = r
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// dispatch is the only sender on m.roles: it offers the newest pending
// role until the consumer takes it.
func (m *Membership) dispatch(ctx context.Context) {
	var cur Role
	var have bool
	var sent uint64
	for {
		var out chan Role
		if have {
			out = m.roles
		}
		select {
		case <-ctx.Done():
			return
		case <-m.notify:
			m.mu.Lock()
			if p := m.pending; p.Seq > sent && p.Seq > cur.Seq {
				cur, have = p, true
			}
			m.mu.Unlock()
		case out <- cur:
			sent, have = cur.Seq, false
		}
	}
}

// genKey holds the switch's generation offset.
func (m *Membership) genKey() string { return gensPrefix + DPIDKey(m.dpid) }

// offset reads the switch's generation offset (0 when none was set).
func (m *Membership) offset(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.cl.c.Get(ctx, m.genKey())
	if err != nil {
		return 0, fmt.Errorf("cluster: reading generation offset: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	off, err := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cluster: generation offset of %s: %w", DPIDKey(m.dpid), err)
	}
	return off, nil
}

// ErrNotMaster is returned for a mastership request made by a replica
// that no longer holds (or never held) the role it names.
var ErrNotMaster = errors.New("cluster: not the master of this switch")

// RaiseGeneration lifts the switch's generation offset so that the
// master role r gets a generation above above (the generation the
// switch holds, learned from a ROLE_REQUEST NOCHANGE after a STALE
// refusal, e.g. after an etcd restore lowered the revisions). The offset
// is written in a transaction fenced by our election key, so only the
// current master moves it; every replica adds it to the election
// revision, so generations stay the same everywhere and rise with each
// election. It returns r with its new generation.
func (m *Membership) RaiseGeneration(ctx context.Context, r Role, above uint64) (Role, error) {
	m.mu.Lock()
	key, rev := m.guardKey, m.guardRev
	m.mu.Unlock()
	if !r.Master || key == "" || rev != r.rev {
		return r, ErrNotMaster
	}
	// OpenFlow compares generations by signed 64-bit distance: "above"
	// is meaningful whatever the values, and wraps like the switch does.
	if int64(above-r.Generation) < 0 {
		return r, fmt.Errorf("cluster: generation %d of switch %s is already above %d", r.Generation, DPIDKey(m.dpid), above)
	}
	off := above + 1 - uint64(rev)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.cl.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
		Then(clientv3.OpPut(m.genKey(), strconv.FormatUint(off, 10))).Commit()
	if err != nil {
		return r, fmt.Errorf("cluster: raising generation of %s: %w", DPIDKey(m.dpid), err)
	}
	if !resp.Succeeded {
		return r, fmt.Errorf("cluster: raising generation of %s: %w", DPIDKey(m.dpid), ErrNotMaster)
	}
	r.Generation = uint64(rev) + off
	return r, nil
}

// Resign gives up the master role r (if this replica still holds it)
// and stays out of the election for holdoff, so that another replica
// connected to the switch gets the chance to take it.
func (m *Membership) Resign(r Role, holdoff time.Duration) {
	m.mu.Lock()
	ok := r.Master && m.guardKey != "" && m.guardRev == r.rev
	m.mu.Unlock()
	if !ok {
		return
	}
	select {
	case m.resign <- holdoff:
	default:
	}
}

// observeHook, when set (tests), runs after the observer decided a slave
// role and before it publishes it.
var observeHook atomic.Pointer[func(dpid uint64, r Role)]

func (m *Membership) run(ctx context.Context) {
	log := m.cl.log.With("dpid", DPIDKey(m.dpid))
	pfx := mastersPrefix + DPIDKey(m.dpid)
	var holdoff time.Duration
	for ctx.Err() == nil {
		if holdoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(holdoff):
			}
			holdoff = 0
		}
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
		m.mu.Lock()
		m.epoch++
		epoch := m.epoch
		m.mu.Unlock()
		go m.observe(sctx, e, epoch)
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
		var off uint64
		if err == nil {
			off, err = m.offset(sctx)
		}
		if err != nil {
			scancel()
			if ctx.Err() == nil {
				log.Debug("campaign interrupted", "err", err)
			}
			continue
		}
		// A resign request left from an earlier mastership is not for
		// this one.
		select {
		case <-m.resign:
		default:
		}
		gen := uint64(e.Rev()) + off
		m.mu.Lock()
		m.epoch++
		m.guardKey, m.guardRev, m.since = e.Key(), e.Rev(), time.Now()
		m.publishLocked(Role{Master: true, Generation: gen, rev: e.Rev()})
		m.mu.Unlock()
		log.Info("elected master", "generation", gen, "revision", e.Rev())
		// Stop acting as master locally before the election key goes:
		// once it is deleted another replica may be elected at once, and
		// this one must never still claim the switch by then.
		stepDown := func() {
			m.mu.Lock()
			m.epoch++
			m.guardKey, m.guardRev = "", 0
			m.publishLocked(Role{Master: false})
			m.mu.Unlock()
		}
		select {
		case <-sctx.Done():
			stepDown()
			if ctx.Err() != nil {
				rctx, c := context.WithTimeout(context.Background(), 2*time.Second)
				e.Resign(rctx)
				c()
			}
			log.Warn("lost mastership: session ended")
		case holdoff = <-m.resign:
			stepDown()
			rctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			err := e.Resign(rctx)
			c()
			log.Info("resigned mastership", "holdoff", holdoff, "err", err)
		}
		scancel()
	}
}

// observe follows the election's leader and publishes a slave role with
// its generation each time it changes, as long as this replica's own
// standing is still the one of epoch (not elected meanwhile).
func (m *Membership) observe(ctx context.Context, e *concurrency.Election, epoch uint64) {
	var last int64
	for ctx.Err() == nil {
		for resp := range e.Observe(ctx) {
			if len(resp.Kvs) == 0 {
				continue
			}
			kv := resp.Kvs[0]
			if string(kv.Value) == m.cl.cfg.ReplicaID || kv.CreateRevision == last {
				continue
			}
			off, err := m.offset(ctx)
			if err != nil {
				continue // the next leader change tries again
			}
			last = kv.CreateRevision
			r := Role{Master: false, Generation: uint64(kv.CreateRevision) + off, rev: kv.CreateRevision}
			if h := observeHook.Load(); h != nil {
				(*h)(m.dpid, r)
			}
			m.mu.Lock()
			if m.epoch == epoch && m.guardKey == "" && ctx.Err() == nil {
				m.publishLocked(r)
			}
			m.mu.Unlock()
		}
		// Observe ends when its watch fails (e.g. compacted): follow again.
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
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
			case m.resign <- 0:
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
