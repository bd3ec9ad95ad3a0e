// Command failbench measures how fast Nimbus moves a switch to a surviving
// replica when its master dies, against how fast Open vSwitch alone
// recovers from a dead or silent controller.
//
// It starts its own etcd (the Debian binary; -etcd-members 3 for a
// 3-member cluster), three bin/controller replicas and four netdev bridges
// that list all three replicas as controllers. Then, -kills times, it
// SIGKILLs the master of one bridge (round-robin), polls the survivors'
// /cluster/v1/local every 2 ms until one reports itself master of that
// switch with a "since" after the kill, and restarts the killed replica
// with the same id and ports and waits for mastership to settle.
//
// The baselines run one replica (with its own etcd) and one bridge with
// that single controller: SIGKILL plus immediate restart, timed until the
// new process sees the switch again (OVS's reconnect), and SIGSTOP, timed
// until ovs-vswitchd logs that it dropped the silent controller.
//
// failbench stops only the processes it started (by PID), deletes only the
// bridges it created (marked external_ids:failbench-owner=<pid>) and
// removes its temporary directory, on exit, on SIGINT/SIGTERM and when
// -timeout passes.
//
//	go build -o bin/controller ./cmd/controller
//	go run ./cmd/failbench -kills 20
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	kills         int
	baseline      int
	silent        int
	nimbusSilent  int
	controllerBin string
	etcdBin       string
	etcdMembers   int
	bridges       int
	timeout       time.Duration
	jsonOut       bool
	settle        time.Duration
	stable        time.Duration
	postWatch     time.Duration
	poll          time.Duration
	stopHold      time.Duration
	keep          bool
	logLevel      string
}

// bench holds everything failbench started, for teardown.
type bench struct {
	cfg    config
	tmp    string
	out    io.Writer
	client *http.Client

	mu        sync.Mutex
	procs     []*proc
	bridges   []string
	anomalies []string
	excerpts  []string
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

func (b *bench) track(p *proc) {
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
}

// anomaly records something odd for the final report.
func (b *bench) anomaly(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.anomalies = append(b.anomalies, s)
	b.mu.Unlock()
	b.logf("  ! %s\n", s)
}

// excerpt keeps log lines for the final report.
func (b *bench) excerpt(title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	b.mu.Lock()
	b.excerpts = append(b.excerpts, title+"\n    "+strings.Join(lines, "\n    "))
	b.mu.Unlock()
}

// teardown deletes our bridges, stops our processes (by PID), and removes
// the temporary directory.
func (b *bench) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.mu.Lock()
	bridges := append([]string(nil), b.bridges...)
	procs := append([]*proc(nil), b.procs...)
	b.mu.Unlock()
	for _, name := range bridges {
		if err := delBridge(ctx, name); err != nil {
			fmt.Fprintf(os.Stderr, "failbench: teardown: %v\n", err)
		}
	}
	// Controllers first (they leave etcd cleanly while it still runs), then etcd.
	var wg sync.WaitGroup
	for _, p := range procs {
		if strings.HasPrefix(filepath.Base(p.bin), "etcd") {
			continue
		}
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(5 * time.Second) }(p)
	}
	wg.Wait()
	for _, p := range procs {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(5 * time.Second) }(p)
	}
	wg.Wait()
	if b.tmp != "" {
		if b.cfg.keep {
			fmt.Fprintf(os.Stderr, "failbench: kept logs in %s\n", b.tmp)
		} else if err := os.RemoveAll(b.tmp); err != nil {
			fmt.Fprintf(os.Stderr, "failbench: teardown: %v\n", err)
		}
	}
}

func main() {
	var cfg config
	flag.IntVar(&cfg.kills, "kills", 20, "SIGKILL failovers of a Nimbus master to measure")
	flag.IntVar(&cfg.baseline, "baseline", 5, "OVS reconnect samples (single controller SIGKILLed and restarted at once)")
	flag.IntVar(&cfg.silent, "silent", 3, "OVS silent-controller samples (single controller SIGSTOPped until OVS drops it)")
	flag.IntVar(&cfg.nimbusSilent, "nimbus-silent", 3, "Nimbus failovers from a SIGSTOPped (silent) master")
	flag.StringVar(&cfg.controllerBin, "controller-bin", "bin/controller", "controller binary (go build -o bin/controller ./cmd/controller)")
	flag.StringVar(&cfg.etcdBin, "etcd-bin", "etcd", "etcd server binary")
	flag.IntVar(&cfg.etcdMembers, "etcd-members", 1, "etcd cluster size for the Nimbus replicas (1 or 3)")
	flag.IntVar(&cfg.bridges, "bridges", 4, "bridges in the Nimbus failover test")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "overall time limit; everything is torn down when it passes")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print one JSON line with the results on stdout (the report goes to stderr)")
	flag.DurationVar(&cfg.settle, "settle", 5*time.Second, "minimum wait after a (re)start before mastership counts as settled")
	flag.DurationVar(&cfg.stable, "stable", 1500*time.Millisecond, "mastership must stay unchanged this long to count as settled")
	flag.DurationVar(&cfg.postWatch, "post-watch", 1500*time.Millisecond, "after a failover, watch the survivors this long (post-failover handoffs) before restarting the killed replica")
	flag.DurationVar(&cfg.poll, "poll", 2*time.Millisecond, "poll interval of /cluster/v1/local while waiting for a takeover")
	flag.DurationVar(&cfg.stopHold, "stop-hold", 3*time.Second, "-nimbus-silent: keep the SIGSTOPped master frozen this long in all (at least until a survivor took over)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (logs) instead of removing it")
	flag.StringVar(&cfg.logLevel, "log-level", "info", "controller log level")
	flag.Parse()
	if err := validate(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "failbench:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg))
}

func validate(cfg *config) error {
	if cfg.kills < 0 || cfg.baseline < 0 || cfg.silent < 0 || cfg.nimbusSilent < 0 {
		return errors.New("sample counts must be >= 0")
	}
	if cfg.etcdMembers != 1 && cfg.etcdMembers != 3 {
		return errors.New("-etcd-members must be 1 or 3")
	}
	if cfg.bridges < 1 || cfg.bridges > 64 {
		return errors.New("-bridges must be in 1..64")
	}
	if cfg.poll <= 0 || cfg.timeout <= 0 {
		return errors.New("-poll and -timeout must be > 0")
	}
	bin, err := filepath.Abs(cfg.controllerBin)
	if err != nil {
		return err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("controller binary %s not found: build it with go build -o bin/controller ./cmd/controller", bin)
	}
	cfg.controllerBin = bin
	return nil
}

func run(cfg config) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	b := &bench{cfg: cfg, out: os.Stdout,
		client: &http.Client{Timeout: time.Second, Transport: signer{&http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}}}
	if cfg.jsonOut {
		b.out = os.Stderr
	}
	tmp, err := os.MkdirTemp("", "failbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "failbench:", err)
		return 1
	}
	b.tmp = tmp
	defer b.teardown()
	// Run a private copy: a rebuild of bin/controller during the run must
	// not mix versions across restarts.
	sum, err := copyBinary(cfg.controllerBin, filepath.Join(tmp, "controller"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "failbench:", err)
		return 1
	}
	b.cfg.controllerBin = filepath.Join(tmp, "controller")
	b.logf("controller: %s (sha256 %s), run as a private copy; temp dir %s\n", cfg.controllerBin, sum[:16], tmp)

	rep := &report{Config: reportConfig{Kills: cfg.kills, Baseline: cfg.baseline, Silent: cfg.silent, NimbusSilent: cfg.nimbusSilent,
		EtcdMembers: cfg.etcdMembers, Bridges: cfg.bridges, Replicas: 3, ControllerBin: cfg.controllerBin}}
	err = b.runAll(ctx, rep)
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	b.printReport(rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failbench:", err)
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(os.Stderr, "failbench: -timeout %s passed; partial results above\n", cfg.timeout)
		}
		return 1
	}
	return 0
}

func (b *bench) runAll(ctx context.Context, rep *report) error {
	if err := requireOVS(ctx); err != nil {
		return err
	}
	if b.cfg.kills > 0 || b.cfg.nimbusSilent > 0 {
		if err := b.nimbus(ctx, rep); err != nil {
			return fmt.Errorf("nimbus failover: %w", err)
		}
	}
	if b.cfg.baseline > 0 || b.cfg.silent > 0 {
		if err := b.ovsBaseline(ctx, rep); err != nil {
			return fmt.Errorf("ovs baseline: %w", err)
		}
	}
	return nil
}

// report is the machine-readable result (-json).
type report struct {
	Config reportConfig `json:"config"`

	NimbusFailover      summaryStats `json:"nimbus_failover_elected"`
	NimbusConfirmed     summaryStats `json:"nimbus_failover_confirmed"`
	NimbusFenced        summaryStats `json:"nimbus_failover_fenced"`
	NimbusAllSwitches   summaryStats `json:"nimbus_failover_all_switches"`
	NimbusOverlap       summaryStats `json:"nimbus_dual_master_max_per_kill"`
	NimbusSilent        summaryStats `json:"nimbus_silent_failover"`
	NimbusSilentOverlap summaryStats `json:"nimbus_dual_master_max_per_stop"`
	NimbusSilentDual    summaryStats `json:"nimbus_silent_dual_master_after_sigcont"`
	OVSReconnect        summaryStats `json:"ovs_reconnect_after_kill"`
	OVSReconnectLog     summaryStats `json:"ovs_reconnect_after_kill_vswitchd_log"`
	OVSSilentDetect     summaryStats `json:"ovs_silent_detect"`
	RatioReconnectP50   float64      `json:"ratio_ovs_reconnect_p50_over_nimbus_failover_p50,omitempty"`
	RatioSilentP50      float64      `json:"ratio_ovs_silent_p50_over_nimbus_failover_p50,omitempty"`
	RatioSilentVsSilent float64      `json:"ratio_ovs_silent_p50_over_nimbus_silent_p50,omitempty"`
	FailedTakeovers     int          `json:"failed_takeovers"`
	SlowFailovers       int          `json:"failovers_over_100ms"`
	ExtraHandoffs       int          `json:"extra_handoffs"`
	PostFailoverMoves   int          `json:"post_failover_handoffs"`
	HealthyFenced       int          `json:"healthy_replicas_fenced"`
	Anomalies           []string     `json:"anomalies"`

	kills        []killSample
	silents      []killSample
	reconnects   []time.Duration
	reconnectLog []time.Duration
	silentDetect []time.Duration
}

type reportConfig struct {
	Kills         int    `json:"kills"`
	Baseline      int    `json:"baseline"`
	Silent        int    `json:"silent"`
	NimbusSilent  int    `json:"nimbus_silent"`
	EtcdMembers   int    `json:"etcd_members"`
	Bridges       int    `json:"bridges"`
	Replicas      int    `json:"replicas"`
	ControllerBin string `json:"controller_bin"`
}

func fmtMS(x float64) string {
	switch {
	case x >= 1000:
		return fmt.Sprintf("%.3f s", x/1000)
	case x >= 10:
		return fmt.Sprintf("%.1f ms", x)
	default:
		return fmt.Sprintf("%.2f ms", x)
	}
}

func (b *bench) printReport(rep *report) {
	var elected, confirmed, fenced, all, nsilent, dual, ovk, ovs []time.Duration
	for _, k := range rep.kills {
		if !k.ok {
			rep.FailedTakeovers++
			continue
		}
		elected = append(elected, k.elected)
		if k.elected > 100*time.Millisecond {
			rep.SlowFailovers++
		}
		if k.confirmed > 0 {
			confirmed = append(confirmed, k.confirmed)
		}
		if k.fenced > 0 {
			fenced = append(fenced, k.fenced)
		}
		all = append(all, k.elected)
		all = append(all, k.others...)
		ovk = append(ovk, k.overlap)
		rep.ExtraHandoffs += k.extraHandoffs
		rep.PostFailoverMoves += k.postMoves
		rep.HealthyFenced += k.healthyFenced
	}
	for _, k := range rep.silents {
		if !k.ok {
			rep.FailedTakeovers++
			continue
		}
		nsilent = append(nsilent, k.elected)
		dual = append(dual, k.dual)
		ovs = append(ovs, k.overlap)
		rep.ExtraHandoffs += k.extraHandoffs
		rep.HealthyFenced += k.healthyFenced
	}
	rep.NimbusFailover = summarize(elected)
	rep.NimbusConfirmed = summarize(confirmed)
	rep.NimbusFenced = summarize(fenced)
	rep.NimbusAllSwitches = summarize(all)
	rep.NimbusOverlap = summarize(ovk)
	rep.NimbusSilentOverlap = summarize(ovs)
	rep.NimbusSilent = summarize(nsilent)
	rep.NimbusSilentDual = summarize(dual)
	rep.OVSReconnect = summarize(rep.reconnects)
	rep.OVSReconnectLog = summarize(rep.reconnectLog)
	rep.OVSSilentDetect = summarize(rep.silentDetect)
	if rep.NimbusFailover.N > 0 && rep.NimbusFailover.P50 > 0 {
		if rep.OVSReconnect.N > 0 {
			rep.RatioReconnectP50 = round3(rep.OVSReconnect.P50 / rep.NimbusFailover.P50)
		}
		if rep.OVSSilentDetect.N > 0 {
			rep.RatioSilentP50 = round3(rep.OVSSilentDetect.P50 / rep.NimbusFailover.P50)
		}
	}
	if rep.NimbusSilent.N > 0 && rep.OVSSilentDetect.N > 0 && rep.NimbusSilent.P50 > 0 {
		rep.RatioSilentVsSilent = round3(rep.OVSSilentDetect.P50 / rep.NimbusSilent.P50)
	}
	b.mu.Lock()
	rep.Anomalies = append([]string{}, b.anomalies...)
	excerpts := append([]string(nil), b.excerpts...)
	b.mu.Unlock()

	w := b.out
	fmt.Fprintf(w, "\n## Failover results (%d replicas, %d bridges, %d etcd member(s), %s)\n\n", rep.Config.Replicas, rep.Config.Bridges, rep.Config.EtcdMembers, time.Now().Format(time.RFC3339))
	fmt.Fprintln(w, "| measurement | n | p50 | p99 | min | max |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	row := func(name string, s summaryStats) {
		if s.N == 0 {
			return
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, s.N, fmtMS(s.P50), fmtMS(s.P99), fmtMS(s.Min), fmtMS(s.Max))
	}
	row("Nimbus failover: SIGKILL master → survivor elected (`since` − t0)", rep.NimbusFailover)
	row("Nimbus failover: SIGKILL → survivor's ROLE_REQUEST+BARRIER done (log)", rep.NimbusConfirmed)
	row("Nimbus: SIGKILL → peer revoked dead replica's lease (log)", rep.NimbusFenced)
	row("Nimbus failover, every switch the victim mastered", rep.NimbusAllSwitches)
	row("Nimbus: two replicas hold one switch at once, longest per kill cycle (log)", rep.NimbusOverlap)
	row("Nimbus failover: SIGSTOP master → survivor elected", rep.NimbusSilent)
	row("Nimbus: two replicas hold one switch at once, longest per SIGSTOP cycle (log)", rep.NimbusSilentOverlap)
	row("Nimbus: stopped master still claims master after SIGCONT", rep.NimbusSilentDual)
	row("OVS reconnect: SIGKILL + immediate restart → new process sees switch", rep.OVSReconnect)
	row("OVS reconnect: SIGKILL → vswitchd logs `connected` (log)", rep.OVSReconnectLog)
	row("OVS silent controller: SIGSTOP → vswitchd drops it (log)", rep.OVSSilentDetect)
	fmt.Fprintln(w)
	if rep.RatioReconnectP50 > 0 {
		fmt.Fprintf(w, "OVS reconnect p50 / Nimbus failover p50 = %.0fx\n", rep.RatioReconnectP50)
	}
	if rep.RatioSilentP50 > 0 {
		fmt.Fprintf(w, "OVS silent-controller detection p50 / Nimbus failover p50 = %.0fx\n", rep.RatioSilentP50)
	}
	if rep.RatioSilentVsSilent > 0 {
		fmt.Fprintf(w, "OVS silent-controller detection p50 / Nimbus silent-master failover p50 = %.1fx\n", rep.RatioSilentVsSilent)
	}
	fmt.Fprintf(w, "failed takeovers: %d, failovers over 100 ms: %d, post-failover handoffs among survivors: %d, extra (beyond minimal) handoffs: %d, healthy replicas fenced: %d\n",
		rep.FailedTakeovers, rep.SlowFailovers, rep.PostFailoverMoves, rep.ExtraHandoffs, rep.HealthyFenced)
	if len(rep.Anomalies) > 0 {
		fmt.Fprintf(w, "\n### Anomalies (%d)\n", len(rep.Anomalies))
		for _, a := range rep.Anomalies {
			fmt.Fprintf(w, "- %s\n", a)
		}
	}
	if len(excerpts) > 0 {
		fmt.Fprintf(w, "\n### Controller log excerpts\n")
		for _, e := range excerpts {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
	if b.cfg.jsonOut {
		if rep.Anomalies == nil {
			rep.Anomalies = []string{}
		}
		line, _ := json.Marshal(rep)
		fmt.Fprintln(os.Stdout, string(line))
	}
}

// copyBinary copies an executable and returns its sha256.
func copyBinary(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
