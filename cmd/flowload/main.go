// Command flowload measures loading N distinct flows into one OVS bridge
// through Nimbus's reconciler (dump, diff, one ONF bundle, commit), next
// to `ovs-ofctl -O OpenFlow13 --bundle add-flows` with the same flows, in
// the same run. Each round uses a fresh netdev bridge; the two loaders
// alternate and medians are reported.
//
//	flowload -flows 100000 -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/nimbus-sdn/nimbus/switches"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

func main() {
	n := flag.Int("flows", 100000, "distinct flows to load")
	rounds := flag.Int("rounds", 5, "rounds (each loader once per round)")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the run")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "flowload:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// flows builds n distinct flows that satisfy the pipeline contract.
func flows(n int) *flow.State {
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for i := 0; i < n; i++ {
		st.AddFlow(&flow.Flow{Table: pipeline.L2Forward.ID(), Priority: pipeline.PriorityNormal,
			Cookie:  pipeline.Cookie(pipeline.AppIsolation, uint64(i)),
			Match:   flow.M().Set(flow.Reg1, uint64(1+i/50000)).EthDst(flow.MAC(0x020000000000 + uint64(i))),
			Actions: []flow.Action{flow.Output{Port: uint32(1 + i%16)}}})
	}
	return st
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func bridge(name, controller string) error {
	sh("ovs-vsctl", "--if-exists", "del-br", name)
	args := []string{"ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13"}
	if controller != "" {
		args = append(args, "--", "set-controller", name, controller)
	}
	return sh(args...)
}

func countFlows(br string) (int, error) {
	out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", br).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("dump-aggregate: %v: %s", err, out)
	}
	var c int
	if i := strings.Index(string(out), "flow_count="); i >= 0 {
		fmt.Sscanf(string(out[i:]), "flow_count=%d", &c)
	}
	return c, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func run(n, rounds int) error {
	st := flows(n)
	want := len(st.Flows)
	dir, err := os.MkdirTemp("", "flowload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "flows.txt")
	var b strings.Builder
	for _, f := range st.SortedFlows() {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return err
	}
	const br = "nbflowload"
	defer sh("ovs-vsctl", "--if-exists", "del-br", br)

	// Nimbus side: an OpenFlow server whose session reconciles the state.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	done := make(chan time.Duration, 1)
	sess := &session{state: st, done: done}
	srv := &ofproto.Server{Addr: addr, Session: sess, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if _, err := srv.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)

	var tOfctl, tNimbus []time.Duration
	for r := 0; r < rounds; r++ {
		// ovs-ofctl --bundle.
		if err := bridge(br, ""); err != nil {
			return err
		}
		start := time.Now()
		if err := sh("ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", br, file); err != nil {
			return err
		}
		d := time.Since(start)
		if c, err := countFlows(br); err != nil || c != want {
			return fmt.Errorf("ovs-ofctl loaded %d flows, want %d (%v)", c, want, err)
		}
		tOfctl = append(tOfctl, d)

		// Nimbus reconciler.
		if err := bridge(br, "tcp:"+addr); err != nil {
			return err
		}
		var dn time.Duration
		select {
		case dn = <-done:
		case <-time.After(5 * time.Minute):
			return fmt.Errorf("nimbus load timed out")
		}
		if sess.err != nil {
			return sess.err
		}
		if c, err := countFlows(br); err != nil || c != want {
			return fmt.Errorf("nimbus loaded %d flows, want %d (%v)", c, want, err)
		}
		tNimbus = append(tNimbus, dn)
		fmt.Printf("round %d: ovs-ofctl --bundle %v, nimbus %v\n", r+1, d.Round(time.Millisecond), dn.Round(time.Millisecond))
	}
	mo, mn := median(tOfctl), median(tNimbus)
	fmt.Printf("RESULT flows=%d rounds=%d ovs-ofctl-bundle-median=%v nimbus-median=%v ratio=%.2f\n",
		want, rounds, mo.Round(time.Millisecond), mn.Round(time.Millisecond), float64(mn)/float64(mo))
	return nil
}

type session struct {
	state *flow.State
	done  chan time.Duration
	err   error
}

// OnConnect reconciles the whole state once and reports how long it took
// from the switch's connection to the bundle's commit reply.
func (s *session) OnConnect(c *ofproto.Conn) ofproto.Handler {
	go func() {
		start := time.Now()
		r := reconcile.New(c.DPID(), &switches.OFSwitch{Conn: c}, reconcile.Options{Interval: time.Hour})
		r.SetDesired(s.state, true)
		_, err := r.Pass(context.Background(), true)
		s.err = err
		s.done <- time.Since(start)
	}()
	return nil
}

func (s *session) OnDisconnect(*ofproto.Conn, error) {}
