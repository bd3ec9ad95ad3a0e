// Package cluster makes every replica able to take over any switch:
// replicas register under an etcd lease, each switch's master is chosen
// by an etcd election, and the OpenFlow role generation_id is that
// election's revision, so a switch itself rejects a deposed master.
//
// Failover is fast because replicas watch each other over a heartbeat
// stream: when a replica dies its sockets close, and a peer revokes the
// dead replica's lease at once instead of waiting for it to expire. A
// replica cut off silently is replaced when its lease expires (or its
// heartbeat stream stalls), within 2x the lease TTL.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/nimbus-sdn/nimbus/store"
)

// Key prefixes.
const (
	replicasPrefix = store.Prefix + "cluster/replicas/"
	mastersPrefix  = store.Prefix + "cluster/masters/"
	connsPrefix    = store.Prefix + "cluster/conns/"
	// gensPrefix holds each switch's generation offset (a decimal
	// uint64), added to election revisions to make role generation_ids.
	gensPrefix = store.Prefix + "cluster/generations/"
)

// Config configures a replica.
type Config struct {
	// ReplicaID names this replica; unique in the cluster.
	ReplicaID string
	// APIAddr is where peers reach this replica's HTTP API (host:port).
	APIAddr string
	// ClusterAddr, when set, is where peers reach this replica's
	// /cluster/v1 endpoints (heartbeats) on a listener of their own;
	// empty means APIAddr.
	ClusterAddr string
	// Secret authenticates /cluster/v1 requests between replicas (see
	// Sign). Empty refuses every request: set it (cmd/controller always
	// does, from cluster.secret or the secret kept in etcd).
	Secret []byte
	// OpenFlowAddr is advertised in status.
	OpenFlowAddr string
	// LeaseTTL in seconds (etcd's minimum is 2 with default settings).
	LeaseTTL int
	// HeartbeatInterval between bytes on a peer stream; PeerTimeout is
	// how long a stalled stream may go before the peer is fenced.
	HeartbeatInterval time.Duration
	PeerTimeout       time.Duration
	// Settle is how long a replica must be up before mastership is
	// rebalanced toward it (hysteresis against flapping).
	Settle time.Duration
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 2
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 100 * time.Millisecond
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 1500 * time.Millisecond
	}
	if c.Settle <= 0 {
		c.Settle = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Replica is a registration record.
type Replica struct {
	ID       string    `json:"id"`
	API      string    `json:"api"`
	Cluster  string    `json:"cluster,omitempty"`
	OpenFlow string    `json:"openflow"`
	Lease    int64     `json:"lease"`
	Started  time.Time `json:"started"`
}

// Cluster is this replica's view of the cluster.
type Cluster struct {
	cfg Config
	c   *clientv3.Client
	log *slog.Logger

	mu       sync.Mutex
	session  *concurrency.Session
	sessCh   chan struct{} // closed when a session is available; replaced when it dies
	replicas map[string]Replica
	started  time.Time
	members  map[uint64]*Membership
}

// New makes the cluster handle; call Run.
func New(c *clientv3.Client, cfg Config) *Cluster {
	cfg.defaults()
	return &Cluster{cfg: cfg, c: c, log: cfg.Logger.With("replica", cfg.ReplicaID), sessCh: make(chan struct{}),
		replicas: map[string]Replica{}, members: map[uint64]*Membership{}, started: time.Now()}
}

// ID is this replica's id.
func (cl *Cluster) ID() string { return cl.cfg.ReplicaID }

// Run keeps a session and registration alive, watches peers and
// rebalances mastership until ctx ends.
func (cl *Cluster) Run(ctx context.Context) error {
	go cl.watchReplicas(ctx)
	go cl.rebalanceLoop(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := cl.sessionOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		cl.log.Warn("cluster session ended; re-registering", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
	return ctx.Err()
}

func (cl *Cluster) sessionOnce(ctx context.Context) error {
	s, err := concurrency.NewSession(cl.c, concurrency.WithTTL(cl.cfg.LeaseTTL), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("cluster: session: %w", err)
	}
	// A registration under our id with another lease is a previous
	// incarnation of this replica (killed, then restarted): revoke it so
	// its election keys go now, not when its lease expires.
	gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
	if resp, err := cl.c.Get(gctx, replicasPrefix+cl.cfg.ReplicaID); err == nil && len(resp.Kvs) == 1 {
		var old Replica
		if json.Unmarshal(resp.Kvs[0].Value, &old) == nil && old.Lease != int64(s.Lease()) && old.Lease != 0 {
			_, rerr := cl.c.Revoke(gctx, clientv3.LeaseID(old.Lease))
			cl.log.Info("revoked the lease of this replica's previous incarnation", "lease", fmt.Sprintf("%x", old.Lease), "err", rerr)
		}
	}
	gcancel()
	reg := Replica{ID: cl.cfg.ReplicaID, API: cl.cfg.APIAddr, Cluster: cl.cfg.ClusterAddr, OpenFlow: cl.cfg.OpenFlowAddr, Lease: int64(s.Lease()), Started: cl.started}
	v, _ := json.Marshal(reg)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = cl.c.Put(pctx, replicasPrefix+cl.cfg.ReplicaID, string(v), clientv3.WithLease(s.Lease()))
	cancel()
	if err != nil {
		s.Orphan()
		return fmt.Errorf("cluster: register: %w", err)
	}
	cl.log.Info("replica registered", "lease", fmt.Sprintf("%x", s.Lease()))
	cl.mu.Lock()
	cl.session = s
	close(cl.sessCh)
	cl.mu.Unlock()
	select {
	case <-s.Done():
	case <-ctx.Done():
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.Client().Revoke(rctx, s.Lease()) // leave at once: peers take over now
		cancel()
	}
	cl.mu.Lock()
	cl.session = nil
	cl.sessCh = make(chan struct{})
	cl.mu.Unlock()
	return errors.New("cluster: session lease lost")
}

// waitSession returns the live session.
func (cl *Cluster) waitSession(ctx context.Context) (*concurrency.Session, error) {
	for {
		cl.mu.Lock()
		s, ch := cl.session, cl.sessCh
		cl.mu.Unlock()
		if s != nil {
			select {
			case <-s.Done():
			default:
				return s, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchReplicas keeps the replica table current (read, then watch).
func (cl *Cluster) watchReplicas(ctx context.Context) {
	for ctx.Err() == nil {
		resp, err := cl.c.Get(ctx, replicasPrefix, clientv3.WithPrefix())
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		m := map[string]Replica{}
		for _, kv := range resp.Kvs {
			var r Replica
			if json.Unmarshal(kv.Value, &r) == nil {
				m[r.ID] = r
			}
		}
		cl.setReplicas(ctx, m)
		wch := cl.c.Watch(clientv3.WithRequireLeader(ctx), replicasPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			cl.mu.Lock()
			next := make(map[string]Replica, len(cl.replicas))
			for k, v := range cl.replicas {
				next[k] = v
			}
			cl.mu.Unlock()
			for _, ev := range wr.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), replicasPrefix)
				if ev.Type == clientv3.EventTypeDelete {
					delete(next, id)
					continue
				}
				var r Replica
				if json.Unmarshal(ev.Kv.Value, &r) == nil {
					next[id] = r
				}
			}
			cl.setReplicas(ctx, next)
		}
	}
}

func (cl *Cluster) setReplicas(ctx context.Context, m map[string]Replica) {
	cl.mu.Lock()
	old := cl.replicas
	cl.replicas = m
	cl.mu.Unlock()
	for id, r := range m {
		if id == cl.cfg.ReplicaID {
			continue
		}
		if o, ok := old[id]; !ok || o.Lease != r.Lease {
			go cl.watchPeer(ctx, r)
		}
	}
}

// Replicas returns live replicas sorted by id.
func (cl *Cluster) Replicas() []Replica {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	out := make([]Replica, 0, len(cl.replicas))
	for _, r := range cl.replicas {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// fence revokes a peer's lease if it still holds it, ending its
// mastership at once.
func (cl *Cluster) fence(r Replica, why error) {
	cl.mu.Lock()
	cur, ok := cl.replicas[r.ID]
	cl.mu.Unlock()
	if !ok || cur.Lease != r.Lease {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := cl.c.Revoke(ctx, clientv3.LeaseID(r.Lease))
	cl.log.Warn("peer lost; revoked its lease so its switches fail over now", "peer", r.ID, "why", why, "revoke_err", err)
}

// DPIDKey formats a datapath id for keys.
func DPIDKey(dpid uint64) string { return fmt.Sprintf("%016x", dpid) }

// rank orders candidates for dpid by rendezvous (highest-random-weight)
// hashing.
func rank(dpid uint64, candidates []string) []string {
	type cw struct {
		c string
		w uint64
	}
	ws := make([]cw, 0, len(candidates))
	for _, c := range candidates {
		h := fnv.New64a()
		h.Write([]byte(c))
		h.Write([]byte(strconv.FormatUint(dpid, 16)))
		ws = append(ws, cw{c, h.Sum64()})
	}
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].w != ws[j].w {
			return ws[i].w > ws[j].w
		}
		return ws[i].c < ws[j].c
	})
	out := make([]string, len(ws))
	for i, x := range ws {
		out[i] = x.c
	}
	return out
}
