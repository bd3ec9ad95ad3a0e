// Package snatlease shares out the source ports of routers' external IPs
// between hypervisors (distributed SNAT, app/snat) and elects, per
// external IP, the one hypervisor that answers ARP for it.
//
// Everything a hypervisor holds lives under one etcd lease of its node
// agent (a concurrency.Session): port blocks as model records
// (model.KindSNATBlock, id "<ip>~<index>") and ARP ownership as one
// record per IP (model.KindSNATOwner, id "<ip>"). The records are
// ordinary model keys, so every controller's and agent's mirror sees
// them in its snapshot, and when the hypervisor dies its lease expires
// (TTL, 2 s by default) and etcd deletes them all at once: its blocks
// return to the pool and the other candidates race to take the IP.
//
// Blocks are power-of-two ranges of ports: block i of size 1<<Bits is
// ports i<<Bits .. (i+1)<<Bits-1, so the ARP owner finds a return
// packet's block with one masked match on the destination port. Blocks
// under port 1024 are never handed out. A block is claimed with a
// compare-and-swap on the key not existing (create revision 0), so two
// hypervisors never hold the same block; the ARP owner record is claimed
// the same way, and its create revision is the owner's fenced
// generation (Owner returns it).
package snatlease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// Defaults.
const (
	DefaultBits = 10 // 1024 ports per block, 63 blocks per IP
	DefaultTTL  = 2  // seconds (etcd's minimum with default settings)
	// FirstPort is the lowest port ever leased.
	FirstPort = 1024
)

// ErrExhausted is returned when an IP has no free block left.
var ErrExhausted = errors.New("snatlease: no free port block")

// Config configures a Leaser.
type Config struct {
	Client  *clientv3.Client
	Chassis string
	// TTL of the lease in seconds (DefaultTTL).
	TTL int
	// Bits is log2 of the block size (DefaultBits; 6..15).
	Bits int
	// Logger, which should name the chassis (the node agent's does).
	Logger *slog.Logger
}

// Leaser holds one hypervisor's blocks and ARP ownerships.
type Leaser struct {
	cfg  Config
	sess *concurrency.Session
	log  *slog.Logger

	mu sync.Mutex
	// held: block ids this leaser claimed (and has not released).
	held map[string]*model.SNATBlock
	// owned: external IPs this leaser owns -> the owner key's create revision.
	owned map[string]int64
}

// New grants the lease (a session kept alive in the background until
// Close, even after ctx ends, so that Close can still revoke it).
func New(ctx context.Context, cfg Config) (*Leaser, error) {
	if cfg.Client == nil || cfg.Chassis == "" {
		return nil, errors.New("snatlease: client and chassis are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Bits == 0 {
		cfg.Bits = DefaultBits
	}
	if cfg.Bits < 6 || cfg.Bits > 15 {
		return nil, fmt.Errorf("snatlease: block bits %d out of 6..15", cfg.Bits)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s, err := concurrency.NewSession(cfg.Client, concurrency.WithTTL(cfg.TTL), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("snatlease: granting lease: %w", err)
	}
	return &Leaser{cfg: cfg, sess: s, log: cfg.Logger,
		held: map[string]*model.SNATBlock{}, owned: map[string]int64{}}, nil
}

// Done is closed when the lease is lost (expired or revoked): every block
// and ownership is gone; make a new Leaser.
func (l *Leaser) Done() <-chan struct{} { return l.sess.Done() }

// Lease is the etcd lease id.
func (l *Leaser) Lease() clientv3.LeaseID { return l.sess.Lease() }

// Close revokes the lease: the blocks and ownerships return at once.
func (l *Leaser) Close() error { return l.sess.Close() }

// Bits is the block size (log2) of the blocks this leaser claims.
func (l *Leaser) Bits() int { return l.cfg.Bits }

// Blocks returns the number of blocks per IP and the first index leased.
// Blocks wholly at or above FirstPort are handed out.
func Blocks(bits int) (first, n int) {
	first = (FirstPort + 1<<bits - 1) >> bits
	return first, (1 << 16 >> bits) - first
}

// Range is the port range of block index at bits.
func Range(bits, index int) (lo, hi uint16) {
	return uint16(index << bits), uint16((index+1)<<bits - 1)
}

func blockKey(ip string, index int) string {
	return store.Key(model.KindSNATBlock, model.SNATBlockID(ip, index))
}

func ownerKey(ip string) string { return store.Key(model.KindSNATOwner, ip) }

// list reads every block record of ip: index -> record.
func (l *Leaser) list(ctx context.Context, ip string) (map[int]*model.SNATBlock, error) {
	pfx := store.KindPrefix(model.KindSNATBlock) + ip + "~"
	resp, err := l.cfg.Client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("snatlease: listing blocks of %s: %w", ip, err)
	}
	out := map[int]*model.SNATBlock{}
	for _, kv := range resp.Kvs {
		idx, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), pfx))
		if err != nil {
			continue
		}
		var b model.SNATBlock
		if json.Unmarshal(kv.Value, &b) != nil {
			continue
		}
		out[idx] = &b
	}
	return out, nil
}

// Held returns the blocks this leaser holds for (ip, network), by index.
func (l *Leaser) Held(ip, network string) []*model.SNATBlock {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*model.SNATBlock
	for _, b := range l.held {
		if b.ExternalIP == ip && b.NetworkID == network {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Ensure makes this hypervisor hold at least want blocks of ip for the
// SNAT of network's ports (claiming free blocks, nearest to the ones it
// has first), and releases any above want. It returns the blocks held.
// When the pool runs dry it returns the blocks it holds and ErrExhausted.
func (l *Leaser) Ensure(ctx context.Context, ip, network string, want int) ([]*model.SNATBlock, error) {
	return l.EnsureReserving(ctx, ip, network, want, 0)
}

// EnsureReserving is Ensure that grows beyond one block only while more
// than reserve blocks of ip stay free: the caller reserves them for the
// hypervisors that hold none yet and will need a first one, so one busy
// hypervisor cannot lease every block of a router's IP and leave another
// hypervisor's VMs with no SNAT at all. A first block may take any free
// block. Held back by the reserve, it returns the blocks held and an
// error wrapping ErrExhausted.
func (l *Leaser) EnsureReserving(ctx context.Context, ip, network string, want, reserve int) ([]*model.SNATBlock, error) {
	have := l.Held(ip, network)
	for len(have) > want {
		b := have[len(have)-1]
		if err := l.release(ctx, b); err != nil {
			return have, err
		}
		have = have[:len(have)-1]
	}
	if len(have) >= want {
		return have, nil
	}
	all, err := l.list(ctx, ip)
	if err != nil {
		return have, err
	}
	first, n := Blocks(l.cfg.Bits)
	for len(have) < want {
		cands := make([]int, 0, n)
		for i := first; i < first+n; i++ {
			if all[i] == nil {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			return have, fmt.Errorf("snatlease: %s for %s: %w", ip, network, ErrExhausted)
		}
		if len(have) > 0 && len(cands) <= reserve {
			return have, fmt.Errorf("snatlease: %s for %s: the %d free blocks are kept for %d hypervisors without one: %w",
				ip, network, len(cands), reserve, ErrExhausted)
		}
		// Spread hypervisors apart: start from a place that depends on
		// the chassis name, so concurrent claimers rarely collide.
		start := first + int(hash(l.cfg.Chassis+"/"+network)%uint32(n))
		if len(have) > 0 {
			start = have[len(have)-1].Index + 1
		}
		sort.Slice(cands, func(a, b int) bool {
			return (cands[a]-start+n)%n < (cands[b]-start+n)%n
		})
		got := false
		for _, idx := range cands {
			b := &model.SNATBlock{ExternalIP: ip, Index: idx, Bits: l.cfg.Bits, Chassis: l.cfg.Chassis, NetworkID: network}
			ok, err := l.claim(ctx, b)
			if err != nil {
				return have, err
			}
			if ok {
				have = append(have, b)
				all[idx] = b
				got = true
				break
			}
			all[idx] = &model.SNATBlock{} // taken meanwhile
		}
		if !got {
			continue // everything we tried was taken; re-list candidates
		}
	}
	sort.Slice(have, func(i, j int) bool { return have[i].Index < have[j].Index })
	return have, nil
}

func (l *Leaser) claim(ctx context.Context, b *model.SNATBlock) (bool, error) {
	v, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("snatlease: encoding block: %w", err)
	}
	k := blockKey(b.ExternalIP, b.Index)
	resp, err := l.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v), clientv3.WithLease(l.sess.Lease()))).Commit()
	if err != nil {
		return false, fmt.Errorf("snatlease: claiming block %s: %w", k, err)
	}
	if resp.Succeeded {
		l.mu.Lock()
		l.held[b.Key()] = b
		l.mu.Unlock()
		lo, hi := Range(b.Bits, b.Index)
		l.log.Info("snat block leased", "external_ip", b.ExternalIP, "network", b.NetworkID, "index", b.Index, "ports", fmt.Sprintf("%d-%d", lo, hi))
	}
	return resp.Succeeded, nil
}

// release deletes a block only while it is still ours (same lease).
func (l *Leaser) release(ctx context.Context, b *model.SNATBlock) error {
	k := blockKey(b.ExternalIP, b.Index)
	_, err := l.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", l.sess.Lease())).
		Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("snatlease: releasing block %s: %w", k, err)
	}
	l.mu.Lock()
	delete(l.held, b.Key())
	l.mu.Unlock()
	l.log.Info("snat block released", "external_ip", b.ExternalIP, "network", b.NetworkID, "index", b.Index)
	return nil
}

// ReleaseAll releases every block of (ip, network) (no port behind the
// router left here).
func (l *Leaser) ReleaseAll(ctx context.Context, ip, network string) error {
	_, err := l.Ensure(ctx, ip, network, 0)
	return err
}

// HeldKeys lists (ip, network) pairs this leaser holds blocks for.
func (l *Leaser) HeldKeys() [][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, b := range l.held {
		k := [2]string{b.ExternalIP, b.NetworkID}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0]+out[i][1] < out[j][0]+out[j][1] })
	return out
}

// Campaign tries to become ip's ARP owner: it creates the owner record
// under this lease if no one holds it. It reports whether this leaser
// owns the IP now and, if so, the generation (the record's create
// revision: a new owner always has a higher one).
func (l *Leaser) Campaign(ctx context.Context, ip string) (bool, int64, error) {
	v, err := json.Marshal(&model.SNATOwner{ExternalIP: ip, Chassis: l.cfg.Chassis})
	if err != nil {
		return false, 0, fmt.Errorf("snatlease: encoding owner: %w", err)
	}
	k := ownerKey(ip)
	resp, err := l.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v), clientv3.WithLease(l.sess.Lease()))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return false, 0, fmt.Errorf("snatlease: campaigning for %s: %w", ip, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if resp.Succeeded {
		l.owned[ip] = resp.Header.Revision
		l.log.Info("snat arp owner elected", "external_ip", ip, "generation", resp.Header.Revision)
		return true, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && clientv3.LeaseID(kvs[0].Lease) == l.sess.Lease() {
		l.owned[ip] = kvs[0].CreateRevision
		return true, kvs[0].CreateRevision, nil
	}
	delete(l.owned, ip)
	return false, 0, nil
}

// Resign gives up ip's ARP ownership (only if still ours).
func (l *Leaser) Resign(ctx context.Context, ip string) error {
	k := ownerKey(ip)
	_, err := l.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", l.sess.Lease())).
		Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("snatlease: resigning %s: %w", ip, err)
	}
	l.mu.Lock()
	delete(l.owned, ip)
	l.mu.Unlock()
	return nil
}

// Owned lists the IPs this leaser owns (as of its last Campaign).
func (l *Leaser) Owned() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.owned))
	for ip := range l.owned {
		out = append(out, ip)
	}
	sort.Strings(out)
	return out
}

func hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
