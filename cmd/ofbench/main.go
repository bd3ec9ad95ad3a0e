// Command ofbench is an OpenFlow 1.3 controller benchmark of cbench's design.
//
// It emulates N switches, each with one TCP connection to the controller.
// Every switch completes the OpenFlow 1.3 handshake, teaches the controller
// where one destination MAC lives (a packet-in whose source is that MAC),
// then sends packet-ins from M distinct source MACs towards it and counts
// the FLOW_MODs and PACKET_OUTs that come back.
//
//	throughput: packet-ins are sent as fast as the connection takes them,
//	            bounded by a per-switch window of unanswered packet-ins.
//	latency:    one packet-in outstanding per switch; the next one is sent
//	            when the answer to the previous one arrives.
//
// Results are responses per second summed over switches, per loop, and
// min/max/avg/median over the measured loops.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

const (
	modeThroughput = "throughput"
	modeLatency    = "latency"
)

var stderr io.Writer = os.Stderr

type config struct {
	controller   string
	switches     int
	macs         int
	seconds      float64
	loops        int
	warmup       int
	mode         string
	window       int
	json         bool
	verbose      bool
	allowRemote  bool
	connTimeout  time.Duration
	setupTimeout time.Duration
	learnTimeout time.Duration
	stallTimeout time.Duration
}

// result is what one benchmark run measured.
type result struct {
	Mode     string    `json:"mode"`
	Switches int       `json:"switches"`
	Macs     int       `json:"macs"`
	Loops    int       `json:"loops"`
	Min      float64   `json:"min"`
	Median   float64   `json:"median"`
	Max      float64   `json:"max"`
	Avg      float64   `json:"avg"`
	PerLoop  []float64 `json:"-"`

	pktIns, flowMods, packetOuts uint64
	withBuffer                   uint64
	ctrlErrors, timeouts, lost   uint64
	unlearned                    int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofbench:", err)
		os.Exit(2)
	}
	res, err := run(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofbench: error:", err)
		os.Exit(1)
	}
	if cfg.json {
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("ofbench", flag.ContinueOnError)
	fs.StringVar(&cfg.controller, "controller", "127.0.0.1:6653", "controller `host:port` (must be loopback)")
	fs.IntVar(&cfg.switches, "switches", 16, "number of fake switches")
	fs.IntVar(&cfg.macs, "macs", 1000, "unique source MACs per switch")
	fs.Float64Var(&cfg.seconds, "seconds", 1, "duration of one loop in seconds")
	fs.IntVar(&cfg.loops, "loops", 10, "measured loops")
	fs.IntVar(&cfg.warmup, "warmup", 1, "warm-up loops run first and discarded")
	fs.StringVar(&cfg.mode, "mode", modeThroughput, "throughput or latency")
	fs.IntVar(&cfg.window, "window", 1000, "throughput mode: max unanswered packet-ins per switch")
	fs.BoolVar(&cfg.json, "json", false, "also print one JSON result line")
	fs.BoolVar(&cfg.verbose, "v", false, "also print the message types received from the controller")
	fs.BoolVar(&cfg.allowRemote, "allow-remote", false, "allow a non-loopback controller address (not for the lab)")
	fs.DurationVar(&cfg.connTimeout, "connect-timeout", 3*time.Second, "TCP connect timeout")
	fs.DurationVar(&cfg.setupTimeout, "setup-timeout", 5*time.Second, "time for every switch to get a FEATURES_REQUEST")
	fs.DurationVar(&cfg.learnTimeout, "learn-timeout", 3*time.Second, "time to wait for the answers to the learning packet-ins")
	fs.DurationVar(&cfg.stallTimeout, "stall-timeout", time.Second, "resend/write off packet-ins unanswered for this long")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case cfg.mode != modeThroughput && cfg.mode != modeLatency:
		return cfg, fmt.Errorf("-mode must be %s or %s", modeThroughput, modeLatency)
	case cfg.switches < 1 || cfg.switches > 65535:
		return cfg, errors.New("-switches must be in 1..65535")
	case cfg.macs < 1 || cfg.macs > 1<<24:
		return cfg, errors.New("-macs must be in 1..16777216")
	case !(cfg.seconds > 0) || cfg.seconds > 3600:
		return cfg, errors.New("-seconds must be in (0, 3600]")
	case cfg.loops < 1:
		return cfg, errors.New("-loops must be at least 1")
	case cfg.warmup < 0:
		return cfg, errors.New("-warmup must not be negative")
	case cfg.window < 1:
		return cfg, errors.New("-window must be at least 1")
	}
	return cfg, nil
}

// checkLoopback refuses controller addresses outside 127.0.0.0/8 and ::1.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -controller %q: %w", addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("bad -controller %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-controller %s resolves to non-loopback %s (use -allow-remote outside the lab)", addr, ip)
		}
	}
	return nil
}

func run(cfg config, out io.Writer) (*result, error) {
	if !cfg.allowRemote {
		if err := checkLoopback(cfg.controller); err != nil {
			return nil, err
		}
	}
	b := &bench{
		cfg:  cfg,
		stop: make(chan struct{}),
		errs: make(chan error, cfg.switches),
	}
	b.phase.Store(phaseLearn)
	fmt.Fprintf(out, "ofbench: OpenFlow 1.3 fake switches (cbench design): controller %s, %d switches, %d MACs/switch, mode %s, %d+%d loops of %gs\n",
		cfg.controller, cfg.switches, cfg.macs, cfg.mode, cfg.warmup, cfg.loops, cfg.seconds)

	switches := make([]*fakeSwitch, 0, cfg.switches)
	shutdown := func() {
		b.phase.Store(phaseStop)
		close(b.stop)
		for _, s := range switches {
			s.conn.Close()
		}
		b.wg.Wait()
	}
	for i := 0; i < cfg.switches; i++ {
		conn, err := net.DialTimeout("tcp", cfg.controller, cfg.connTimeout)
		if err != nil {
			shutdown()
			return nil, fmt.Errorf("controller %s unreachable (switch %d): %w", cfg.controller, i, err)
		}
		s := newFakeSwitch(b, i, conn)
		switches = append(switches, s)
		if err := s.start(); err != nil {
			shutdown()
			return nil, err
		}
	}
	defer shutdown()

	// Handshake: every switch must be asked for its features.
	deadline := time.NewTimer(cfg.setupTimeout)
	defer deadline.Stop()
	for _, s := range switches {
		select {
		case <-s.ready:
		case err := <-b.errs:
			return nil, err
		case <-deadline.C:
			return nil, fmt.Errorf("switch %d got no FEATURES_REQUEST within %v (is %s an OpenFlow 1.3 controller?)",
				s.dpid, cfg.setupTimeout, cfg.controller)
		}
	}

	// Learning: wait for the answers to the learning packet-ins, but measure
	// anyway if a controller does not answer them.
	res := &result{Mode: cfg.mode, Switches: cfg.switches, Macs: cfg.macs, Loops: cfg.loops}
	learnDeadline := time.NewTimer(cfg.learnTimeout)
	defer learnDeadline.Stop()
	timedOut := false
	for _, s := range switches {
		if timedOut {
			select {
			case <-s.learned:
			default:
				res.unlearned++
			}
			continue
		}
		select {
		case <-s.learned:
		case err := <-b.errs:
			return nil, err
		case <-learnDeadline.C:
			timedOut = true
			res.unlearned++
		}
	}
	if res.unlearned > 0 {
		fmt.Fprintf(stderr, "ofbench: warning: %d/%d switches got no answer to the learning packet-in within %v; measuring anyway\n",
			res.unlearned, cfg.switches, cfg.learnTimeout)
	}

	// Measurement.
	b.phase.Store(phaseRun)
	for _, s := range switches {
		s.signal()
	}
	counter := func(s *fakeSwitch) uint64 {
		if cfg.mode == modeLatency {
			return s.roundTrips.Load()
		}
		return s.responses.Load()
	}
	loopDur := time.Duration(cfg.seconds * float64(time.Second))
	prev := make([]uint64, len(switches))
	for i, s := range switches {
		prev[i] = counter(s)
	}
	prevT := time.Now()
	for loop := 0; loop < cfg.warmup+cfg.loops; loop++ {
		timer := time.NewTimer(loopDur)
		select {
		case <-timer.C:
		case err := <-b.errs:
			timer.Stop()
			return nil, err
		}
		now := time.Now()
		elapsed := now.Sub(prevT).Seconds()
		var total float64
		var sb strings.Builder
		fmt.Fprintf(&sb, "%-3d switches: responses/s:", cfg.switches)
		for i, s := range switches {
			c := counter(s)
			rate := float64(c-prev[i]) / elapsed
			prev[i] = c
			total += rate
			fmt.Fprintf(&sb, " %.0f", rate)
		}
		prevT = now
		fmt.Fprintf(&sb, "   total = %.3f per ms", total/1000)
		if loop < cfg.warmup {
			sb.WriteString(" (warm-up, discarded)")
		} else {
			res.PerLoop = append(res.PerLoop, total)
		}
		fmt.Fprintln(out, sb.String())
	}
	// A disconnect in the last instant still fails the run.
	select {
	case err := <-b.errs:
		return nil, err
	default:
	}

	for _, s := range switches {
		res.pktIns += s.pktIns.Load()
		res.flowMods += s.flowMods.Load()
		res.packetOuts += s.packetOuts.Load()
		res.withBuffer += s.withBuffer.Load()
		res.ctrlErrors += s.ctrlErrors.Load()
		res.timeouts += s.timeouts.Load()
		res.lost += s.lost.Load()
	}
	res.Min, res.Max, res.Avg, res.Median = summarize(res.PerLoop)
	fmt.Fprintf(out, "RESULT: %d switches %d tests min/max/avg/median = %.2f/%.2f/%.2f/%.2f responses/s\n",
		cfg.switches, cfg.loops, res.Min, res.Max, res.Avg, res.Median)
	if cfg.mode == modeLatency && res.Median > 0 {
		fmt.Fprintf(out, "latency: median loop = %.1f us per round trip per switch\n",
			float64(cfg.switches)/res.Median*1e6)
	}
	fmt.Fprintf(out, "responses: packet_ins_sent=%d flow_mods=%d packet_outs=%d with_buffer_id=%d controller_errors=%d latency_resends=%d written_off=%d unlearned_switches=%d\n",
		res.pktIns, res.flowMods, res.packetOuts, res.withBuffer, res.ctrlErrors, res.timeouts, res.lost, res.unlearned)
	if cfg.verbose {
		var sb strings.Builder
		sb.WriteString("received from controller (all switches, all phases):")
		for typ := range switches[0].rxTypes {
			var n uint64
			for _, s := range switches {
				n += s.rxTypes[typ].Load()
			}
			if n > 0 {
				fmt.Fprintf(&sb, " %s=%d", typeName(uint8(typ)), n)
			}
		}
		fmt.Fprintln(out, sb.String())
	}
	return res, nil
}

func summarize(v []float64) (lo, hi, avg, median float64) {
	if len(v) == 0 {
		return 0, 0, 0, 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	lo, hi = s[0], s[len(s)-1]
	var sum float64
	for _, x := range s {
		sum += x
	}
	avg = sum / float64(len(s))
	if n := len(s); n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	round := func(x float64) float64 { return math.Round(x*100) / 100 }
	return round(lo), round(hi), round(avg), round(median)
}

func typeName(t uint8) string {
	names := map[uint8]string{
		0: "HELLO", 1: "ERROR", 2: "ECHO_REQUEST", 3: "ECHO_REPLY", 4: "EXPERIMENTER",
		5: "FEATURES_REQUEST", 7: "GET_CONFIG_REQUEST", 9: "SET_CONFIG", 13: "PACKET_OUT",
		14: "FLOW_MOD", 15: "GROUP_MOD", 16: "PORT_MOD", 17: "TABLE_MOD", 18: "MULTIPART_REQUEST",
		20: "BARRIER_REQUEST", 22: "QUEUE_GET_CONFIG_REQUEST", 24: "ROLE_REQUEST",
		26: "GET_ASYNC_REQUEST", 28: "SET_ASYNC", 29: "METER_MOD",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", t)
}
