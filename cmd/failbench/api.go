package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/cluster"
)

// clusterStatus is GET /cluster/v1/status.
type clusterStatus struct {
	Self     string `json:"self"`
	Replicas []struct {
		ID       string    `json:"id"`
		API      string    `json:"api"`
		Lease    int64     `json:"lease"`
		Started  time.Time `json:"started"`
		Healthy  bool      `json:"healthy"`
		Mastered []string  `json:"mastered"`
	} `json:"replicas"`
	Switches []struct {
		DPID       string   `json:"dpid"`
		Master     string   `json:"master"`
		Generation int64    `json:"generation"`
		Connected  []string `json:"connected"`
	} `json:"switches"`
}

// localSwitch is one switch in GET /cluster/v1/local.
type localSwitch struct {
	Master bool   `json:"master"`
	Since  string `json:"since"`
}

// localView is GET /cluster/v1/local.
type localView struct {
	Replica  string                 `json:"replica"`
	Switches map[string]localSwitch `json:"switches"`
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (b *bench) local(r *replica) (*localView, error) {
	var v localView
	if err := getJSON(b.client, "http://"+r.api+"/cluster/v1/local", &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// status asks the first of rs that answers.
func (b *bench) status(rs []*replica) (*clusterStatus, error) {
	var last error
	for _, r := range rs {
		if !r.p.running() {
			continue
		}
		var st clusterStatus
		if err := getJSON(b.client, "http://"+r.api+"/cluster/v1/status", &st); err != nil {
			last = err
			continue
		}
		return &st, nil
	}
	if last == nil {
		last = fmt.Errorf("no replica running")
	}
	return nil, last
}

// masters maps dpid to "master@generation" (for change detection).
func (st *clusterStatus) masters() map[string]string {
	out := map[string]string{}
	for _, s := range st.Switches {
		out[s.DPID] = fmt.Sprintf("%s@%d", s.Master, s.Generation)
	}
	return out
}

func (st *clusterStatus) masterOf(dpid string) string {
	for _, s := range st.Switches {
		if s.DPID == dpid {
			return s.Master
		}
	}
	return ""
}

// summary is a one-line rendering of who masters what.
func (st *clusterStatus) summary() string {
	var parts []string
	for _, r := range st.Replicas {
		parts = append(parts, fmt.Sprintf("%s:%d", r.ID, len(r.Mastered)))
	}
	return strings.Join(parts, " ")
}

// logRecord is one line of the controller's JSON log.
type logRecord struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	DPID  string    `json:"dpid"`
	Peer  string    `json:"peer"`
	Why   string    `json:"why"`
	Raw   string    `json:"-"`
}

func parseLogLine(line string) (logRecord, bool) {
	var r logRecord
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &r) != nil {
		return r, false
	}
	r.Raw = line
	return r, true
}

// clusterSecret is the replicas' cluster.secret (NIMBUS_CLUSTER_SECRET in
// childEnv), so the bench can sign its /cluster/v1 requests.
const clusterSecret = "failbench-cluster-secret-0123456789"

// signer signs /cluster/v1 requests with clusterSecret.
type signer struct{ rt http.RoundTripper }

func (s signer) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/cluster/") {
		r = r.Clone(r.Context())
		cluster.Authorize(r, []byte(clusterSecret))
	}
	return s.rt.RoundTrip(r)
}
