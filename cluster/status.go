package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// StatusPath serves the cluster status.
const StatusPath = "/cluster/v1/status"

// ReplicaStatus is one replica in the status.
type ReplicaStatus struct {
	Replica
	Healthy  bool     `json:"healthy"`
	Mastered []string `json:"mastered"`
}

// SwitchStatus is one switch in the status.
type SwitchStatus struct {
	DPID       string   `json:"dpid"`
	Master     string   `json:"master"`
	Generation int64    `json:"generation"` // the OpenFlow generation_id (as int64)
	Connected  []string `json:"connected"`
}

// Status is the cluster as etcd sees it.
type Status struct {
	Self     string          `json:"self"`
	Replicas []ReplicaStatus `json:"replicas"`
	Switches []SwitchStatus  `json:"switches"`
}

// Status reads the cluster state from etcd.
func (cl *Cluster) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := cl.c.Txn(ctx).Then(
		clientv3.OpGet(replicasPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(mastersPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(connsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(gensPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	st := &Status{Self: cl.cfg.ReplicaID}
	reps := map[string]*ReplicaStatus{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var r Replica
		if json.Unmarshal(kv.Value, &r) == nil {
			reps[r.ID] = &ReplicaStatus{Replica: r, Healthy: true, Mastered: []string{}}
		}
	}
	sw := map[string]*SwitchStatus{}
	get := func(d string) *SwitchStatus {
		if sw[d] == nil {
			sw[d] = &SwitchStatus{DPID: d, Connected: []string{}}
		}
		return sw[d]
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		d, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), mastersPrefix), "/")
		s := get(d)
		if s.Generation == 0 || kv.CreateRevision < s.Generation {
			s.Master, s.Generation = string(kv.Value), kv.CreateRevision
		}
	}
	// The generation is the master's election revision plus the
	// switch's offset (see Membership.RaiseGeneration).
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		d := strings.TrimPrefix(string(kv.Key), gensPrefix)
		if s := sw[d]; s != nil && s.Master != "" {
			if off, err := strconv.ParseUint(string(kv.Value), 10, 64); err == nil {
				s.Generation = int64(uint64(s.Generation) + off)
			}
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		d, id, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), connsPrefix), "/")
		s := get(d)
		s.Connected = append(s.Connected, id)
	}
	for _, s := range sw {
		sort.Strings(s.Connected)
		if r := reps[s.Master]; r != nil {
			r.Mastered = append(r.Mastered, s.DPID)
		}
		st.Switches = append(st.Switches, *s)
	}
	for _, r := range reps {
		sort.Strings(r.Mastered)
		st.Replicas = append(st.Replicas, *r)
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].ID < st.Replicas[j].ID })
	sort.Slice(st.Switches, func(i, j int) bool { return st.Switches[i].DPID < st.Switches[j].DPID })
	return st, nil
}

// StatusHandler serves Status as JSON; 503 when etcd is unreachable, 401
// for a request not signed with the cluster secret.
func (cl *Cluster) StatusHandler() http.HandlerFunc {
	return cl.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st, err := cl.Status(r.Context())
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "cluster status unavailable: etcd unreachable: " + err.Error()})
			return
		}
		json.NewEncoder(w).Encode(st)
	})).ServeHTTP
}
