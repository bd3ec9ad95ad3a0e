package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/model"
)

// Guard is a condition a guarded write commits under: the write (Create,
// Update, Delete, Put, Remove, Commit) happens only if every guard holds
// at that moment. It is opaque outside store, so no other package builds
// etcd comparisons.
type Guard struct{ cmp clientv3.Cmp }

func cmps(gs []Guard) []clientv3.Cmp {
	out := make([]clientv3.Cmp, len(gs))
	for i, g := range gs {
		out[i] = g.cmp
	}
	return out
}

// Held holds while the etcd key (a full key, such as an election's) still
// exists as created at revision createRev: a replica that lost the lease
// behind the key can no longer write (ErrFenced).
func Held(key string, createRev int64) Guard {
	return Guard{clientv3.Compare(clientv3.CreateRevision(key), "=", createRev)}
}

// RecordAt holds while the record is still at modification revision
// modRev (0: the record does not exist).
func RecordAt(k model.Kind, id string, modRev int64) Guard {
	return Guard{clientv3.Compare(clientv3.ModRevision(Key(k, id)), "=", modRev)}
}

// RawAt holds while the raw key (relative to Prefix) is still at
// modification revision modRev (0: the key does not exist).
func RawAt(key string, modRev int64) Guard {
	return Guard{clientv3.Compare(clientv3.ModRevision(Prefix+key), "=", modRev)}
}

// PrefixEmpty holds while no key exists under prefix (relative to Prefix).
func PrefixEmpty(prefix string) Guard {
	return Guard{clientv3.Compare(clientv3.CreateRevision(Prefix+prefix), "=", 0).WithPrefix()}
}

// PrefixUnchangedSince holds while no key under prefix (relative to
// Prefix) was created or changed after revision rev. Deletions are not
// seen: guard the keys read with RawAt or RecordAt for that.
func PrefixUnchangedSince(prefix string, rev int64) Guard {
	return Guard{clientv3.Compare(clientv3.ModRevision(Prefix+prefix), "<", rev+1).WithPrefix()}
}

// Plan is a guarded multi-key write, built from reads made outside a
// transaction: Commit applies every op at once only if every guard holds.
// It expresses what a Tx cannot, such as "no key under this prefix".
type Plan struct {
	guards []Guard
	ops    []clientv3.Op
}

// Guard adds conditions to the plan.
func (p *Plan) Guard(gs ...Guard) { p.guards = append(p.guards, gs...) }

// PutRecord writes a record.
func (p *Plan) PutRecord(r model.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encoding %s: %w", r.Kind(), err)
	}
	p.ops = append(p.ops, clientv3.OpPut(Key(r.Kind(), r.Key()), string(b)))
	return nil
}

// DeleteRecord deletes a record (absent is fine).
func (p *Plan) DeleteRecord(k model.Kind, id string) {
	p.ops = append(p.ops, clientv3.OpDelete(Key(k, id)))
}

// PutRaw writes a raw key (relative to Prefix).
func (p *Plan) PutRaw(key, val string) { p.ops = append(p.ops, clientv3.OpPut(Prefix+key, val)) }

// DelRaw deletes a raw key (relative to Prefix).
func (p *Plan) DelRaw(key string) { p.ops = append(p.ops, clientv3.OpDelete(Prefix+key)) }

// DelPrefix deletes every raw key under prefix (relative to Prefix).
func (p *Plan) DelPrefix(prefix string) {
	p.ops = append(p.ops, clientv3.OpDelete(Prefix+prefix, clientv3.WithPrefix()))
}

// Commit applies the plan and returns the revision it wrote at. A guard
// that no longer holds is ErrConflict (re-read and build the plan again);
// etcd out of reach is ErrUnavailable.
func (s *Store) Commit(ctx context.Context, p *Plan) (int64, error) {
	resp, err := s.c.Txn(ctx).If(cmps(p.guards)...).Then(p.ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("store: commit: %w", unavailable(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: a guard of the plan no longer holds", ErrConflict)
	}
	return resp.Header.Revision, nil
}

// RawKV is one raw key read outside a transaction.
type RawKV struct {
	Key    string // relative to Prefix
	Val    string
	ModRev int64
}

// ListRaw reads the raw keys under prefix (relative to Prefix) and the
// revision they were read at.
func (s *Store) ListRaw(ctx context.Context, prefix string) ([]RawKV, int64, error) {
	resp, err := s.c.Get(ctx, Prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %s: %w", prefix, unavailable(err))
	}
	out := make([]RawKV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, RawKV{Key: strings.TrimPrefix(string(kv.Key), Prefix), Val: string(kv.Value), ModRev: kv.ModRevision})
	}
	return out, resp.Header.Revision, nil
}

// GetRaw reads a raw key (relative to Prefix); "" if absent.
func (s *Store) GetRaw(ctx context.Context, key string) (string, error) {
	resp, err := s.c.Get(ctx, Prefix+key)
	if err != nil {
		return "", fmt.Errorf("store: get %s: %w", key, unavailable(err))
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// List reads every record of a kind (undecodable ones are logged and
// skipped).
func (s *Store) List(ctx context.Context, k model.Kind) ([]model.Record, error) {
	resp, err := s.c.Get(ctx, KindPrefix(k), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", k, unavailable(err))
	}
	out := make([]model.Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := decode(k, kv.Value)
		if err != nil {
			s.log.Warn("skipping undecodable record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
