package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HeartbeatPath is the peer heartbeat stream endpoint.
const HeartbeatPath = "/cluster/v1/heartbeat"

// HeartbeatHandler streams a byte every HeartbeatInterval for as long as
// the peer stays connected. When this process dies the kernel closes the
// stream, and the peer fences us at once. Requests not signed with the
// cluster secret get 401. The stream lives as long as the peer, so it
// lifts the server's read and write deadlines (http.Server ReadTimeout
// and WriteTimeout) for its own connection: they bound ordinary requests,
// and would otherwise cut the stream and have the peer fence us.
func (cl *Cluster) HeartbeatHandler() http.HandlerFunc {
	return cl.Protect(http.HandlerFunc(cl.heartbeat)).ServeHTTP
}

func (cl *Cluster) heartbeat(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// ErrNotSupported only for writers without deadlines (tests).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(cl.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if _, err := w.Write([]byte{'.'}); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// watchPeer holds a heartbeat stream to r. Once a stream has worked, its
// failure (closed socket or stalled beats) fences r. A peer that cannot be
// reached yet (still starting) is retried, never fenced.
func (cl *Cluster) watchPeer(ctx context.Context, r Replica) {
	log := cl.log.With("peer", r.ID)
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	warned := false
	for ctx.Err() == nil {
		cl.mu.Lock()
		cur, ok := cl.replicas[r.ID]
		cl.mu.Unlock()
		if !ok || cur.Lease != r.Lease {
			return // that incarnation is gone
		}
		worked, err := cl.stream(ctx, client, r)
		if ctx.Err() != nil {
			return
		}
		if worked {
			cl.fence(r, err)
			return
		}
		if errors.Is(err, ErrUnauthorized) {
			// Not fenced (it may be fine), but failover toward and from
			// it is slow until the secrets (or clocks) agree.
			if !warned {
				log.Warn("peer refuses our heartbeat request: cluster.secret differs, or clocks are more than 5 minutes apart", "err", err)
				warned = true
			}
		} else {
			log.Debug("peer heartbeat not reachable yet", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (cl *Cluster) stream(ctx context.Context, client *http.Client, r Replica) (worked bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr := r.API
	if r.Cluster != "" {
		addr = r.Cluster
	}
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, "http://"+addr+HeartbeatPath+"?from="+cl.cfg.ReplicaID, nil)
	if err != nil {
		return false, err
	}
	Authorize(req, cl.cfg.Secret)
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return false, fmt.Errorf("%w: heartbeat refused by %s", ErrUnauthorized, r.ID)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("heartbeat status %s", resp.Status)
	}
	beat := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("peer closed its heartbeat stream")
				}
				beat <- err
				return
			}
			beat <- nil
		}
	}()
	timer := time.NewTimer(cl.cfg.PeerTimeout)
	defer timer.Stop()
	for {
		select {
		case err := <-beat:
			if err != nil {
				return worked, err
			}
			worked = true
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(cl.cfg.PeerTimeout)
		case <-timer.C:
			// Grace: if *we* were the one frozen (SIGSTOP, a long GC or
			// VM pause), the peer's beats are waiting in the socket and
			// arrive at once; only a peer that stays silent is fenced.
			select {
			case err := <-beat:
				if err != nil {
					return worked, err
				}
				cl.log.Debug("late heartbeat: this replica was paused, not the peer", "peer", r.ID)
				timer.Reset(cl.cfg.PeerTimeout)
				continue
			case <-time.After(3 * cl.cfg.HeartbeatInterval):
			case <-ctx.Done():
				return false, ctx.Err()
			}
			return worked, fmt.Errorf("no heartbeat for %s", cl.cfg.PeerTimeout)
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
