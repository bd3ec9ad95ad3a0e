package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := summarize([]time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond})
	if s.N != 5 || s.P50 != 3 || s.P99 != 5 || s.Min != 1 || s.Max != 5 || s.Mean != 3 {
		t.Fatalf("summary %+v", s)
	}
	if s := summarize(nil); s.N != 0 {
		t.Fatalf("empty summary %+v", s)
	}
}

func TestParseRconn(t *testing.T) {
	e, ok := parseRconn("2026-11-24T21:39:25.824Z|05272|rconn|ERR|fb1n0<->tcp:127.0.0.1:6653: no response to inactivity probe after 5 seconds, disconnecting")
	if !ok || e.bridge != "fb1n0" || e.target != "tcp:127.0.0.1:6653" || !e.isDisconnect() || e.isConnected() {
		t.Fatalf("parsed %+v %v", e, ok)
	}
	if e.at.Format(time.RFC3339Nano) != "2026-11-24T21:39:25.824Z" {
		t.Fatalf("time %s", e.at)
	}
	e, ok = parseRconn("2026-11-24T21:39:26.325Z|05274|rconn|INFO|fb1n0<->tcp:127.0.0.1:6653: connected")
	if !ok || !e.isConnected() {
		t.Fatalf("parsed %+v %v", e, ok)
	}
	if _, ok := parseRconn("2026-11-24T21:39:26.325Z|05274|bridge|INFO|something"); ok {
		t.Fatal("non-rconn line parsed")
	}
}

func TestParseLogLine(t *testing.T) {
	r, ok := parseLogLine(`{"time":"2026-11-24T21:45:41.58414455Z","level":"INFO","msg":"took mastership","remote":"127.0.0.1:54302","dpid":"fb00000041af0004","generation":97,"took":530000}`)
	if !ok || r.Msg != "took mastership" || r.DPID != "fb00000041af0004" || r.Time.Nanosecond() != 584144550 {
		t.Fatalf("parsed %+v %v", r, ok)
	}
}

func TestSettled(t *testing.T) {
	rs := []*replica{{id: "r1"}, {id: "r2"}, {id: "r3"}}
	st := &clusterStatus{}
	for _, id := range []string{"r1", "r2", "r3"} {
		st.Replicas = append(st.Replicas, struct {
			ID       string    `json:"id"`
			API      string    `json:"api"`
			Lease    int64     `json:"lease"`
			Started  time.Time `json:"started"`
			Healthy  bool      `json:"healthy"`
			Mastered []string  `json:"mastered"`
		}{ID: id, Healthy: true})
	}
	add := func(d, m string) {
		st.Switches = append(st.Switches, struct {
			DPID       string   `json:"dpid"`
			Master     string   `json:"master"`
			Generation int64    `json:"generation"`
			Connected  []string `json:"connected"`
		}{DPID: d, Master: m, Generation: 1, Connected: []string{"r1", "r2", "r3"}})
	}
	add("a", "r1")
	add("b", "r1")
	add("c", "r2")
	add("d", "r3")
	if ok, why := settled(st, rs, []string{"a", "b", "c", "d"}); !ok {
		t.Fatalf("balanced status not settled: %s", why)
	}
	st.Switches[2].Master = "r1"
	if ok, _ := settled(st, rs, []string{"a", "b", "c", "d"}); ok {
		t.Fatal("3/0/1 counted as settled")
	}
}

func TestOverlaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	lw := &logWatch{recs: map[string][]logRecord{
		"r1": {{Time: at(10), Msg: "took mastership", DPID: "d1"}, {Time: at(50), Msg: "gave up mastership", DPID: "d1"}},
		"r2": {{Time: at(40), Msg: "took mastership", DPID: "d1"}},
		// the stopped victim gives up 3 ms after SIGCONT at +100 ms
		"r3": {{Time: at(103), Msg: "gave up mastership", DPID: "d2"}},
	}}
	pre := map[string]string{"d1": "r3", "d2": "r3"}
	ov := overlaps(lw, pre, "r3", "kill", t0, time.Time{})
	if len(ov) != 1 || ov[0].dpid != "d1" || ov[0].d != 10*time.Millisecond || ov[0].open {
		t.Fatalf("kill overlaps %+v", ov)
	}
	lw.recs["r1"] = append(lw.recs["r1"], logRecord{Time: at(60), Msg: "took mastership", DPID: "d2"})
	ov = overlaps(lw, pre, "r3", "stop", t0, at(100))
	var d2 *overlap
	for i := range ov {
		if ov[i].dpid == "d2" {
			d2 = &ov[i]
		}
	}
	if d2 == nil || d2.d != 3*time.Millisecond || d2.holders[0] != "r1" || d2.holders[1] != "r3" {
		t.Fatalf("stop overlaps %+v", ov)
	}
}
