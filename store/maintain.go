package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Observer is told about maintenance of the embedded etcd member
// (metrics.Metrics implements it).
type Observer interface {
	// DBSize reports the member's database file size.
	DBSize(bytes int64)
	// Defragmented reports a defragmentation and the sizes around it.
	Defragmented(before, after int64, err error)
}

// minReclaim is the free space below which a defragmentation is not
// worth blocking the member for.
const minReclaim = 1 << 20

// ErrNotEmbedded is returned by Defragment on a store that runs no etcd
// member of its own: an external cluster is its operators' to maintain.
var ErrNotEmbedded = errors.New("store: no embedded etcd member to maintain")

// Maintain defragments the embedded etcd member every interval until ctx
// ends. Compaction frees space inside the database file; only a
// defragmentation gives it back (and lowers the size the space quota
// counts). Only the replica whose member it is does this. A pass is
// skipped while less than a quarter of the file (or under 1 MiB) is
// free, since a
// defragmentation blocks the member for its duration. Without an
// embedded member, or with interval <= 0, it returns at once.
func (s *Store) Maintain(ctx context.Context, interval time.Duration, obs Observer) {
	if s.etcd == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, _, err := s.Defragment(ctx, false, obs); err != nil && ctx.Err() == nil {
			s.log.Error("embedded etcd maintenance failed", "err", err)
		}
	}
}

// Defragment defragments the embedded member (when force, or when at
// least a quarter of its file, and 1 MiB, is free) and returns the database size
// before and after.
func (s *Store) Defragment(ctx context.Context, force bool, obs Observer) (before, after int64, err error) {
	if s.etcd == nil {
		return 0, 0, ErrNotEmbedded
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := s.c.Status(ctx, s.embed)
	if err != nil {
		return 0, 0, fmt.Errorf("store: etcd status: %w", unavailable(err))
	}
	before = st.DbSize
	if obs != nil {
		obs.DBSize(before)
	}
	if free := st.DbSize - st.DbSizeInUse; !force && (free*4 < st.DbSize || free < minReclaim) {
		return before, before, nil
	}
	start := time.Now()
	if _, err = s.c.Defragment(ctx, s.embed); err != nil {
		err = fmt.Errorf("store: defragmenting embedded etcd: %w", unavailable(err))
	} else if st, err = s.c.Status(ctx, s.embed); err != nil {
		err = fmt.Errorf("store: etcd status: %w", unavailable(err))
	} else {
		after = st.DbSize
	}
	if obs != nil {
		obs.Defragmented(before, after, err)
	}
	if err == nil {
		s.log.Info("defragmented embedded etcd", "db_size_before", before, "db_size_after", after, "took", time.Since(start).Round(time.Millisecond))
	}
	return before, after, err
}
