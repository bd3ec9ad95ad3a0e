package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"time"
)

// ovsBaseline measures what OVS alone does with a single controller: how
// fast it reconnects to a controller that was SIGKILLed and restarted at
// once, and how long it takes to drop a controller that went silent
// (SIGSTOP).
func (b *bench) ovsBaseline(ctx context.Context, rep *report) error {
	ec, err := b.startEtcd(ctx, "base", 1)
	if err != nil {
		return err
	}
	r, err := b.newReplica("b1", ec.endpoints)
	if err != nil {
		return err
	}
	if err := b.startReplica(ctx, r); err != nil {
		return err
	}
	pid := os.Getpid()
	br, err := b.addBridge(ctx, fmt.Sprintf("fb%ds", pid%1000000), uint64(0xfb)<<56|uint64(pid)<<16|0xbb, []string{r.ofAddr})
	if err != nil {
		return err
	}
	d := br.dpidHex()
	b.logf("\nbaseline: replica b1 (pid %d, openflow %s) alone on bridge %s (%s), max_backoff=1000, default inactivity probe\n", r.p.pid(), r.ofAddr, br.name, d)
	if _, err := b.waitLocal(ctx, r, d, true, 30*time.Second); err != nil {
		return err
	}
	target := "tcp:" + r.ofAddr

	for i := 0; i < b.cfg.baseline; i++ {
		sleep(ctx, 1500*time.Millisecond) // a connection that lived > backoff resets OVS's backoff
		tail := newLogTail(vswitchdLog())
		vpid := r.p.pid()
		t0 := time.Now()
		if err := r.p.kill(); err != nil {
			return err
		}
		tDead := time.Now()
		if err := r.p.start(); err != nil {
			return err
		}
		tStarted := time.Now()
		seen, err := b.waitLocal(ctx, r, d, false, 20*time.Second)
		if err != nil {
			b.anomaly("baseline %d: restarted controller never saw %s: %v", i+1, br.name, err)
			continue
		}
		master, err := b.waitLocal(ctx, r, d, true, 20*time.Second)
		if err != nil {
			b.anomaly("baseline %d: restarted controller never became master of %s: %v", i+1, br.name, err)
		}
		rep.reconnects = append(rep.reconnects, seen.Sub(t0))
		var drop, conn time.Time
		var events []string
		for _, line := range tail.next() {
			e, ok := parseRconn(line)
			if !ok || e.bridge != br.name || e.target != target {
				continue
			}
			events = append(events, fmt.Sprintf("+%s %s", fmtDur(e.at.Sub(t0)), e.event))
			if drop.IsZero() && e.isDisconnect() {
				drop = e.at
			}
			if conn.IsZero() && e.isConnected() {
				conn = e.at
			}
		}
		line := fmt.Sprintf("reconnect %d/%d SIGKILL b1(pid %d) dead=+%s restarted=+%s  switch seen by new process=+%s",
			i+1, b.cfg.baseline, vpid, fmtDur(tDead.Sub(t0)), fmtDur(tStarted.Sub(t0)), fmtDur(seen.Sub(t0)))
		if !conn.IsZero() {
			rep.reconnectLog = append(rep.reconnectLog, conn.Sub(t0))
			line += fmt.Sprintf(" vswitchd-connected=+%s", fmtDur(conn.Sub(t0)))
		}
		if !drop.IsZero() {
			line += fmt.Sprintf(" vswitchd-noticed-drop=+%s", fmtDur(drop.Sub(t0)))
		}
		if !master.IsZero() {
			line += fmt.Sprintf(" master-again=+%s", fmtDur(master.Sub(t0)))
		}
		b.logf("%s\n    vswitchd: %v\n", line, events)
	}

	for i := 0; i < b.cfg.silent; i++ {
		if _, err := b.waitLocal(ctx, r, d, true, 30*time.Second); err != nil {
			return err
		}
		// OVS drops a silent controller 2 probe intervals after the last
		// message it got from it, so detection depends on when that was:
		// stop at a random phase, not at a fixed delay after the handshake.
		jitter := rand.N(5 * time.Second)
		sleep(ctx, 1500*time.Millisecond+jitter)
		tail := newLogTail(vswitchdLog())
		vpid := r.p.pid()
		t0 := time.Now()
		if err := r.p.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		var detect time.Time
		var how string
		var events []string
		deadline := t0.Add(40 * time.Second)
		for detect.IsZero() && time.Now().Before(deadline) && ctx.Err() == nil {
			for _, line := range tail.next() {
				e, ok := parseRconn(line)
				if !ok || e.bridge != br.name || e.target != target {
					continue
				}
				events = append(events, fmt.Sprintf("+%s %s", fmtDur(e.at.Sub(t0)), e.event))
				if detect.IsZero() && e.isDisconnect() {
					detect, how = e.at, e.event
				}
			}
			sleep(ctx, 20*time.Millisecond)
		}
		tCont := time.Now()
		if err := r.p.signal(syscall.SIGCONT); err != nil {
			return err
		}
		if detect.IsZero() {
			b.anomaly("silent %d: OVS did not drop the SIGSTOPped controller within %s (vswitchd: %v)", i+1, deadline.Sub(t0).Round(time.Second), events)
			continue
		}
		rep.silentDetect = append(rep.silentDetect, detect.Sub(t0))
		// Recovery: the resumed process sees the switch again as master.
		sleep(ctx, 50*time.Millisecond)
		back, err := b.waitLocal(ctx, r, d, true, 30*time.Second)
		rec := "?"
		if err == nil {
			rec = "+" + fmtDur(back.Sub(tCont))
		}
		b.logf("silent %d/%d SIGSTOP b1(pid %d) %s after it became master  vswitchd dropped it at +%s (%q); SIGCONT at +%s, master again %s after SIGCONT\n    vswitchd: %v\n",
			i+1, b.cfg.silent, vpid, fmtDur(1500*time.Millisecond+jitter), fmtDur(detect.Sub(t0)), how, fmtDur(tCont.Sub(t0)), rec, events)
	}
	return nil
}

// waitLocal polls r's /cluster/v1/local every b.cfg.poll until dpid is
// listed (and, with master, mastered), and returns when it saw that.
func (b *bench) waitLocal(ctx context.Context, r *replica, dpid string, master bool, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		v, err := b.local(r)
		if err == nil {
			if sw, ok := v.Switches[dpid]; ok && (!master || sw.Master) {
				return time.Now(), nil
			}
			last = fmt.Errorf("switches %v", v.Switches)
		} else {
			last = err
		}
		sleep(ctx, b.cfg.poll)
	}
	return time.Time{}, fmt.Errorf("%s: %s not listed (master=%v) within %s: %v", r.id, dpid, master, timeout, last)
}
