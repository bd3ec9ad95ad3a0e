package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// killSample is one failover of a Nimbus master.
type killSample struct {
	n      int
	mode   string // "kill" (SIGKILL) or "stop" (SIGSTOP)
	bridge string
	dpid   string
	victim string
	winner string
	ok     bool

	elected   time.Duration   // winner's /local since − t0
	confirmed time.Duration   // winner logged "took mastership" (ROLE_REQUEST + BARRIER answered) − t0
	fenced    time.Duration   // first survivor logged that it revoked the victim's lease − t0
	others    []time.Duration // other switches the victim mastered
	dual      time.Duration   // stop mode: how long after SIGCONT the victim still claimed mastership

	dualClaims    int // polls where two survivors both claimed one switch
	postMoves     int // handoffs among survivors after the failover, before the restart
	handoffs      int // "took mastership" lines from t0 until settled
	minimal       int // handoffs the state changes needed
	extraHandoffs int
	healthyFenced int           // records of a non-victim replica being fenced or losing its session
	overlap       time.Duration // longest time two live replicas both held one switch (took → gave up, from logs)
	settle        time.Duration
	resumed       time.Time // stop mode: SIGCONT time
}

// logWatch collects the JSON log records replicas write from a moment on.
type logWatch struct {
	tails map[string]*logTail
	recs  map[string][]logRecord
}

func newLogWatch(rs []*replica) *logWatch {
	w := &logWatch{tails: map[string]*logTail{}, recs: map[string][]logRecord{}}
	for _, r := range rs {
		w.tails[r.id] = newLogTail(r.p.logPath)
	}
	return w
}

func (w *logWatch) pull() {
	for id, t := range w.tails {
		for _, line := range t.next() {
			if rec, ok := parseLogLine(line); ok {
				w.recs[id] = append(w.recs[id], rec)
			}
		}
	}
}

// find returns the first record of replica id (any when id is "") that
// matches, pulling new lines until wait passes.
func (w *logWatch) find(ctx context.Context, id string, wait time.Duration, match func(logRecord) bool) (string, logRecord, bool) {
	deadline := time.Now().Add(wait)
	for {
		w.pull()
		var best logRecord
		bestID, found := "", false
		for rid, recs := range w.recs {
			if id != "" && rid != id {
				continue
			}
			for _, r := range recs {
				if match(r) {
					if !found || r.Time.Before(best.Time) {
						best, bestID, found = r, rid, true
					}
					break
				}
			}
		}
		if found || time.Now().After(deadline) || ctx.Err() != nil {
			return bestID, best, found
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// tookMastership lists the "took mastership" records, ordered by time.
func (w *logWatch) tookMastership() []string {
	type ev struct {
		at   time.Time
		text string
	}
	var evs []ev
	for id, recs := range w.recs {
		for _, r := range recs {
			if r.Msg == "took mastership" {
				evs = append(evs, ev{r.Time, fmt.Sprintf("%s %s took %s", r.Time.UTC().Format("15:04:05.000000"), id, shortDPID(r.DPID))})
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.text
	}
	return out
}

func (b *bench) nimbus(ctx context.Context, rep *report) error {
	ec, err := b.startEtcd(ctx, "main", b.cfg.etcdMembers)
	if err != nil {
		return err
	}
	var rs []*replica
	for i := 1; i <= 3; i++ {
		r, err := b.newReplica(fmt.Sprintf("r%d", i), ec.endpoints)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	start := time.Now()
	for _, r := range rs {
		if err := b.startReplica(ctx, r); err != nil {
			return err
		}
		b.logf("replica %s: pid %d, openflow %s, api %s, log %s\n", r.id, r.p.pid(), r.ofAddr, r.api, r.p.logPath)
	}
	var targets []string
	for _, r := range rs {
		targets = append(targets, r.ofAddr)
	}
	pid := os.Getpid()
	var brs []*bridge
	var dpids []string
	for i := 0; i < b.cfg.bridges; i++ {
		name := fmt.Sprintf("fb%dn%d", pid%1000000, i)
		dpid := uint64(0xfb)<<56 | uint64(pid)<<16 | uint64(i+1)
		br, err := b.addBridge(ctx, name, dpid, targets)
		if err != nil {
			return err
		}
		brs = append(brs, br)
		dpids = append(dpids, br.dpidHex())
	}
	b.logf("bridges: ")
	for _, br := range brs {
		b.logf("%s(%s) ", br.name, br.dpidHex())
	}
	b.logf("\n")
	st, err := b.waitSettled(ctx, rs, dpids, start.Add(b.cfg.settle), 90*time.Second)
	if err != nil {
		return err
	}
	b.logf("settled after %s: masters %s\n\n", time.Since(start).Round(time.Millisecond), st.summary())

	for k := 0; k < b.cfg.kills; k++ {
		s, err := b.failover(ctx, rs, brs, dpids, k, "kill")
		if s != nil {
			rep.kills = append(rep.kills, *s)
		}
		if err != nil {
			return err
		}
	}
	for k := 0; k < b.cfg.nimbusSilent; k++ {
		s, err := b.failover(ctx, rs, brs, dpids, k, "stop")
		if s != nil {
			rep.silents = append(rep.silents, *s)
		}
		if err != nil {
			return err
		}
	}
	b.collectWarnings(rs)
	return nil
}

type takeover struct {
	replica string
	since   time.Time
}

// pollTakeover polls the survivors' /cluster/v1/local every b.cfg.poll
// until, for every dpid, one of them reports master=true with since > t0.
func (b *bench) pollTakeover(ctx context.Context, survivors []*replica, dpids []string, t0 time.Time, timeout time.Duration) (map[string]takeover, int, []string) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type obs struct {
		id string
		v  *localView
	}
	ch := make(chan obs, 16)
	for _, r := range survivors {
		go func(r *replica) {
			t := time.NewTicker(b.cfg.poll)
			defer t.Stop()
			for {
				v, err := b.local(r)
				if err == nil {
					select {
					case ch <- obs{r.id, v}:
					case <-pctx.Done():
						return
					}
				}
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
			}
		}(r)
	}
	taken := map[string]takeover{}
	latest := map[string]*localView{}
	dual := 0
	var dualNotes []string
	for len(taken) < len(dpids) {
		select {
		case <-pctx.Done():
			return taken, dual, dualNotes
		case o := <-ch:
			latest[o.id] = o.v
			for _, d := range dpids {
				sw, ok := o.v.Switches[d]
				if !ok || !sw.Master {
					continue
				}
				since, err := time.Parse(time.RFC3339Nano, sw.Since)
				if err != nil || !since.After(t0) {
					continue
				}
				if _, done := taken[d]; !done {
					taken[d] = takeover{replica: o.id, since: since}
				}
			}
			for _, d := range dpids {
				var claim []string
				for id, v := range latest {
					if sw, ok := v.Switches[d]; ok && sw.Master {
						claim = append(claim, id)
					}
				}
				if len(claim) > 1 {
					dual++
					if len(dualNotes) < 5 {
						sort.Strings(claim)
						dualNotes = append(dualNotes, fmt.Sprintf("%s claimed by %s at +%s", d, strings.Join(claim, "+"), time.Since(t0).Round(time.Microsecond)))
					}
				}
			}
		}
	}
	return taken, dual, dualNotes
}

// failover kills (or stops) the master of bridge k%len(brs) and measures
// the takeover, then brings the victim back and waits for mastership to
// settle.
func (b *bench) failover(ctx context.Context, rs []*replica, brs []*bridge, dpids []string, k int, mode string) (*killSample, error) {
	br := brs[k%len(brs)]
	st, err := b.status(rs)
	if err != nil {
		return nil, err
	}
	s := &killSample{n: k + 1, mode: mode, bridge: br.name, dpid: br.dpidHex(), victim: st.masterOf(br.dpidHex())}
	var victim *replica
	var survivors []*replica
	for _, r := range rs {
		if r.id == s.victim {
			victim = r
		} else {
			survivors = append(survivors, r)
		}
	}
	if victim == nil {
		return nil, fmt.Errorf("bridge %s has no master replica (%q) in status", br.name, s.victim)
	}
	vdpids := []string{s.dpid}
	for _, rr := range st.Replicas {
		if rr.ID == victim.id {
			for _, d := range rr.Mastered {
				if d != s.dpid {
					vdpids = append(vdpids, d)
				}
			}
		}
	}
	pre := st.masters()
	preNames := masterNames(st)
	lw := newLogWatch(rs)

	sig, what := syscall.SIGKILL, "SIGKILL"
	timeout := 15 * time.Second
	if mode == "stop" {
		sig, what, timeout = syscall.SIGSTOP, "SIGSTOP", 20*time.Second
	}
	vpid := victim.p.pid()
	t0 := time.Now()
	if err := victim.p.signal(sig); err != nil {
		return nil, err
	}
	taken, dual, dualNotes := b.pollTakeover(ctx, survivors, vdpids, t0, timeout)
	if mode == "kill" {
		if err := victim.p.wait(10 * time.Second); err != nil {
			return nil, err
		}
	}
	s.dualClaims = dual
	tk, ok := taken[s.dpid]
	s.ok = ok
	if ok {
		s.winner, s.elected = tk.replica, tk.since.Sub(t0)
	}
	for _, d := range vdpids[1:] {
		if o, ok := taken[d]; ok {
			s.others = append(s.others, o.since.Sub(t0))
		}
	}
	if ok {
		if _, rec, found := lw.find(ctx, s.winner, 3*time.Second, func(r logRecord) bool {
			return r.Msg == "took mastership" && r.DPID == s.dpid && !r.Time.Before(t0)
		}); found {
			s.confirmed = rec.Time.Sub(t0)
		}
	}
	if _, rec, found := lw.find(ctx, "", 500*time.Millisecond, func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "peer lost") && r.Peer == victim.id && !r.Time.Before(t0)
	}); found {
		s.fenced = rec.Time.Sub(t0)
	}

	label := fmt.Sprintf("%s %2d", mode, s.n)
	if !ok {
		b.anomaly("%s: %s of %s (pid %d, master of %s) — no survivor reported master=true with since>t0 within %s", label, what, victim.id, vpid, br.name, timeout)
		if st2, err := b.status(survivors); err == nil {
			b.logf("    status now: %s %v\n", st2.summary(), st2.masters())
		}
		for _, r := range survivors {
			if v, err := b.local(r); err == nil {
				b.logf("    %s /local: %v\n", r.id, v.Switches)
			}
		}
		b.excerptWarnings(fmt.Sprintf("%s: survivor log lines after the %s", label, what), lw, survivors)
	}
	if dual > 0 {
		b.anomaly("%s: two survivors claimed the same switch in %d polls: %s", label, dual, strings.Join(dualNotes, "; "))
	}

	// Stop mode: resume the victim and time how long it still claims
	// switches a survivor has taken.
	if mode == "stop" {
		// Keep it frozen for -stop-hold in all (a pause that outlasts
		// failure detection), then resume it.
		if d := time.Until(t0.Add(b.cfg.stopHold)); d > 0 {
			sleep(ctx, d)
		}
		tCont := time.Now()
		s.resumed = tCont
		if err := victim.p.signal(syscall.SIGCONT); err != nil {
			return s, err
		}
		var last time.Time
		deadline := tCont.Add(5 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			v, err := b.local(victim)
			if err == nil {
				claims := false
				for _, d := range vdpids {
					if sw, ok := v.Switches[d]; ok && sw.Master {
						claims = true
					}
				}
				if !claims {
					break
				}
				last = time.Now()
			}
			sleep(ctx, 5*time.Millisecond)
		}
		if !last.IsZero() {
			s.dual = last.Sub(tCont)
		}
	}

	afterTake := map[string]string{}
	for d, m := range preNames {
		afterTake[d] = m
	}
	for d, t := range taken {
		afterTake[d] = t.replica
	}
	sleep(ctx, b.cfg.postWatch)
	mid := afterTake
	if st2, err := b.status(survivors); err == nil {
		mid = masterNames(st2)
	}
	for _, d := range dpids {
		if mid[d] != afterTake[d] {
			s.postMoves++
		}
	}

	tR := time.Now()
	if mode == "kill" {
		if err := b.startReplica(ctx, victim); err != nil {
			return s, err
		}
	}
	final, err := b.waitSettled(ctx, rs, dpids, tR.Add(b.cfg.settle), 90*time.Second)
	if err != nil {
		return s, err
	}
	s.settle = time.Since(tR)
	finalNames := masterNames(final)
	for _, d := range dpids {
		if preNames[d] != afterTake[d] {
			s.minimal++
		}
		if afterTake[d] != mid[d] {
			s.minimal++
		}
		if mid[d] != finalNames[d] {
			s.minimal++
		}
	}
	lw.pull()
	seq := lw.tookMastership()
	s.handoffs = len(seq)
	if s.handoffs > s.minimal {
		s.extraHandoffs = s.handoffs - s.minimal
		b.anomaly("%s: %d mastership handoffs where %d would do (masters before [%s], after failover [%s], before restart [%s], settled [%s]): %s",
			label, s.handoffs, s.minimal, shortMap(preNames), shortMap(afterTake), shortMap(mid), shortMap(finalNames), strings.Join(seq, ", "))
	}
	_ = pre
	// A replica fenced (or lost its session) that was not the victim: the
	// cluster turned on a healthy member.
	var wrong []string
	for id, recs := range lw.recs {
		for _, rec := range recs {
			if strings.HasPrefix(rec.Msg, "peer lost") && rec.Peer != victim.id {
				wrong = append(wrong, fmt.Sprintf("%s fenced %s (%s) at +%s", id, rec.Peer, rec.Why, fmtDur(rec.Time.Sub(t0))))
			}
			if rec.Msg == "cluster session ended; re-registering" && id != victim.id {
				wrong = append(wrong, fmt.Sprintf("%s lost its own session at +%s", id, fmtDur(rec.Time.Sub(t0))))
			}
		}
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		s.healthyFenced = len(wrong)
		b.anomaly("%s: healthy replicas were fenced: %s", label, strings.Join(wrong, "; "))
		b.excerptWarnings(fmt.Sprintf("%s: log lines after the %s (healthy replicas fenced)", label, what), lw, rs)
	}

	ov := overlaps(lw, preNames, victim.id, mode, t0, s.resumed)
	for _, o := range ov {
		if o.d > s.overlap {
			s.overlap = o.d
		}
	}
	openOverlap := false
	for _, o := range ov {
		openOverlap = openOverlap || o.open
	}
	if s.overlap > 5*time.Millisecond || openOverlap {
		var parts []string
		for _, o := range ov {
			if o.d > time.Millisecond {
				parts = append(parts, o.String(t0))
			}
		}
		b.anomaly("%s: two replicas held the same switch at once (took mastership → gave up, from their logs): %s", label, strings.Join(parts, "; "))
	}

	line := fmt.Sprintf("%s/%d %s %s dpid=%s victim=%s(pid %d) -> %s", label, map[string]int{"kill": b.cfg.kills, "stop": b.cfg.nimbusSilent}[mode], what, br.name, s.dpid, victim.id, vpid, s.winner)
	if ok {
		line += fmt.Sprintf("  elected=%s", fmtDur(s.elected))
		if s.confirmed > 0 {
			line += fmt.Sprintf(" confirmed=%s", fmtDur(s.confirmed))
		}
		if s.fenced > 0 {
			line += fmt.Sprintf(" fenced=%s", fmtDur(s.fenced))
		}
		for i, o := range s.others {
			line += fmt.Sprintf(" also:%s=%s", shortDPID(vdpids[i+1]), fmtDur(o))
		}
	} else {
		line += "  NO TAKEOVER"
	}
	if mode == "stop" {
		line += fmt.Sprintf(" SIGCONT=+%s still-claimed-after-SIGCONT=%s", fmtDur(s.resumed.Sub(t0)), fmtDur(s.dual))
	}
	if s.healthyFenced > 0 {
		line += fmt.Sprintf(" HEALTHY-FENCED=%d", s.healthyFenced)
	}
	if s.overlap > 0 {
		line += fmt.Sprintf(" max-dual-master=%s", fmtDur(s.overlap))
	}
	line += fmt.Sprintf("  post-moves=%d handoffs=%d/%d settle=%s masters=%s", s.postMoves, s.handoffs, s.minimal, s.settle.Round(10*time.Millisecond), final.summary())
	b.logf("%s\n", line)
	if ok && s.elected > 100*time.Millisecond && mode == "kill" {
		b.anomaly("%s: failover took %s (>100 ms)", label, fmtDur(s.elected))
		b.excerptWarnings(fmt.Sprintf("%s: log lines around the slow failover", label), lw, rs)
	}
	return s, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

func masterNames(st *clusterStatus) map[string]string {
	out := map[string]string{}
	for _, s := range st.Switches {
		out[s.DPID] = s.Master
	}
	return out
}

// settled reports whether st shows exactly the replicas rs, all healthy,
// every bridge connected to all of them with a live master, and masters
// balanced (loads differ by at most one).
func settled(st *clusterStatus, rs []*replica, dpids []string) (bool, string) {
	ids := map[string]bool{}
	for _, r := range rs {
		ids[r.id] = true
	}
	load := map[string]int{}
	seen := 0
	for _, r := range st.Replicas {
		if !ids[r.ID] {
			return false, "unknown replica " + r.ID + " registered"
		}
		if !r.Healthy {
			return false, r.ID + " unhealthy"
		}
		seen++
		load[r.ID] = 0
	}
	if seen != len(rs) {
		return false, fmt.Sprintf("%d of %d replicas registered", seen, len(rs))
	}
	sw := map[string]bool{}
	for _, s := range st.Switches {
		sw[s.DPID] = true
		if !ids[s.Master] {
			continue
		}
		load[s.Master]++
	}
	for _, d := range dpids {
		if !sw[d] {
			return false, d + " unknown"
		}
	}
	for _, s := range st.Switches {
		want := false
		for _, d := range dpids {
			if d == s.DPID {
				want = true
			}
		}
		if !want {
			continue
		}
		if !ids[s.Master] {
			return false, s.DPID + " has no live master"
		}
		if len(s.Connected) != len(rs) {
			return false, fmt.Sprintf("%s connected to %v", s.DPID, s.Connected)
		}
	}
	lo, hi := -1, 0
	for _, n := range load {
		if lo < 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	if hi-lo > 1 {
		return false, fmt.Sprintf("unbalanced %v", load)
	}
	return true, ""
}

// waitSettled polls the status until settled() holds, notBefore has
// passed and the masters have not changed for b.cfg.stable.
func (b *bench) waitSettled(ctx context.Context, rs []*replica, dpids []string, notBefore time.Time, timeout time.Duration) (*clusterStatus, error) {
	deadline := time.Now().Add(timeout)
	var prev map[string]string
	lastChange := time.Now()
	why := "no status yet"
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		st, err := b.status(rs)
		if err == nil {
			m := st.masters()
			if prev == nil || !equalMaps(prev, m) {
				lastChange = time.Now()
			}
			prev = m
			var ok bool
			ok, why = settled(st, rs, dpids)
			if ok && time.Now().After(notBefore) && time.Since(lastChange) >= b.cfg.stable {
				return st, nil
			}
		} else {
			why = err.Error()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mastership did not settle within %s: %s (masters %v)", timeout, why, prev)
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// excerptWarnings keeps the WARN/ERROR lines (and mastership lines) that
// the replicas logged since lw was made.
func (b *bench) excerptWarnings(title string, lw *logWatch, rs []*replica) {
	lw.pull()
	var lines []string
	for _, r := range rs {
		for _, rec := range lw.recs[r.id] {
			if rec.Level == "WARN" || rec.Level == "ERROR" || strings.Contains(rec.Msg, "master") {
				lines = append(lines, r.id+": "+trimRaw(rec.Raw))
			}
		}
	}
	if len(lines) > 30 {
		lines = append(lines[:30], fmt.Sprintf("... %d more", len(lines)-30))
	}
	b.excerpt(title, lines)
}

func trimRaw(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// collectWarnings summarises the WARN/ERROR records of the whole run, by
// message, with one example each.
func (b *bench) collectWarnings(rs []*replica) {
	type agg struct {
		n       int
		example string
	}
	by := map[string]*agg{}
	for _, r := range rs {
		data, err := os.ReadFile(r.p.logPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			rec, ok := parseLogLine(line)
			if !ok || (rec.Level != "WARN" && rec.Level != "ERROR") {
				continue
			}
			key := rec.Level + " " + rec.Msg
			a := by[key]
			if a == nil {
				a = &agg{example: r.id + ": " + trimRaw(rec.Raw)}
				by[key] = a
			}
			a.n++
		}
	}
	var lines []string
	for _, k := range sortedKeys(by) {
		lines = append(lines, fmt.Sprintf("%dx %q e.g. %s", by[k].n, k, by[k].example))
	}
	b.excerpt("WARN/ERROR records over the whole Nimbus run (count, message, example)", lines)
}

// overlap is a time when two replicas both held one switch.
type overlap struct {
	dpid    string
	holders []string
	from    time.Time
	d       time.Duration
	open    bool // still both holding at the end of the window
}

func (o overlap) String(t0 time.Time) string {
	s := fmt.Sprintf("%s held by %s for %s from +%s", shortDPID(o.dpid), strings.Join(o.holders, "+"), fmtDur(o.d), fmtDur(o.from.Sub(t0)))
	if o.open {
		s += " (STILL BOTH at the end)"
	}
	return s
}

// overlaps replays the replicas' "took mastership" / "gave up mastership"
// records since t0 (the switch accepted a MASTER role request / the agent
// stopped acting as master) and returns the windows in which two replicas
// held the same switch. Holders at t0 come from the status before the
// failure; the victim holds nothing while it is dead (kill) or frozen
// (stop: from t0 until SIGCONT at tCont, after which it holds whatever it
// still believed it held until it gives it up).
func overlaps(lw *logWatch, pre map[string]string, victim, mode string, t0, tCont time.Time) []overlap {
	type ev struct {
		at      time.Time
		replica string
		dpid    string
		took    bool
	}
	var evs []ev
	for id, recs := range lw.recs {
		for _, r := range recs {
			if r.DPID == "" || r.Time.Before(t0) {
				continue
			}
			switch r.Msg {
			case "took mastership":
				evs = append(evs, ev{r.Time, id, r.DPID, true})
			case "gave up mastership":
				evs = append(evs, ev{r.Time, id, r.DPID, false})
			}
		}
	}
	// The victim's pre-failure holdings resume at SIGCONT (stop mode).
	if mode == "stop" && !tCont.IsZero() && tCont.After(t0) {
		for d, m := range pre {
			if m == victim {
				evs = append(evs, ev{tCont, victim, d, true})
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	holders := map[string]map[string]bool{}
	for d, m := range pre {
		if m != "" && m != victim {
			holders[d] = map[string]bool{m: true}
		}
	}
	open := map[string]*overlap{}
	var out []overlap
	for _, e := range evs {
		// (kill mode: the victim's records after t0 come from its new
		// incarnation, which starts holding nothing.)
		if mode == "stop" && e.replica == victim && e.at.Before(tCont) {
			continue // frozen
		}
		h := holders[e.dpid]
		if h == nil {
			h = map[string]bool{}
			holders[e.dpid] = h
		}
		if e.took {
			h[e.replica] = true
		} else {
			delete(h, e.replica)
		}
		if len(h) > 1 {
			if open[e.dpid] == nil {
				ids := sortedKeys(h)
				open[e.dpid] = &overlap{dpid: e.dpid, holders: ids, from: e.at}
			}
		} else if o := open[e.dpid]; o != nil {
			o.d = e.at.Sub(o.from)
			out = append(out, *o)
			delete(open, e.dpid)
		}
	}
	for _, o := range open {
		o.d, o.open = time.Since(o.from), true
		out = append(out, *o)
	}
	return out
}

// shortDPID keeps the last 4 hex digits (the bridges differ only there).
func shortDPID(d string) string {
	if len(d) > 4 {
		return d[len(d)-4:]
	}
	return d
}

func shortMap(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, shortDPID(k)+":"+m[k])
	}
	return strings.Join(parts, " ")
}
