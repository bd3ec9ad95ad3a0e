package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/testport"
)

// proc is one child process that failbench started. It may be restarted
// with the same arguments; only the PID of the current incarnation is ever
// signalled.
type proc struct {
	name    string
	bin     string
	args    []string
	dir     string
	logPath string
	env     []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	paused  bool
	starts  int
	started time.Time
}

// start runs the process (again), appending its output to logPath.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child keeps its own descriptor
	p.starts++
	fmt.Fprintf(f, "=== failbench: start #%d of %s at %s ===\n", p.starts, p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = p.env
	// If failbench itself dies hard, the kernel kills its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done, p.paused, p.started = cmd, done, false, time.Now()
	return nil
}

// pid is the current incarnation's PID (0 when none).
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the current incarnation (by PID, via os.Process).
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New(p.name + ": not started")
	}
	select {
	case <-p.done:
		return errors.New(p.name + ": not running")
	default:
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p.cmd.Process.Signal(sig)
}

// wait waits for the current incarnation to exit.
func (p *proc) wait(d time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s: still running after %s", p.name, d)
	}
}

// kill SIGKILLs the current incarnation and waits for it.
func (p *proc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	return p.wait(10 * time.Second)
}

// stop ends the current incarnation: SIGCONT (if paused), SIGTERM, then
// SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	if paused {
		_ = p.signal(syscall.SIGCONT)
	}
	_ = p.signal(syscall.SIGTERM)
	if p.wait(grace) == nil {
		return
	}
	_ = p.signal(syscall.SIGKILL)
	_ = p.wait(5 * time.Second)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	return testport.Free()
}

// childEnv is the environment of the children: ours without NIMBUS_*
// settings, which would override the flags we pass.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NIMBUS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// etcdCluster is a set of etcd members started by failbench.
type etcdCluster struct {
	procs     []*proc
	endpoints []string
}

// startEtcd starts an n-member etcd cluster (the Debian binary) under dir
// and waits until every member answers /health.
func (b *bench) startEtcd(ctx context.Context, tag string, n int) (*etcdCluster, error) {
	bin, err := exec.LookPath(b.cfg.etcdBin)
	if err != nil {
		return nil, fmt.Errorf("etcd binary %q not found (apt-get install -y etcd-server): %w", b.cfg.etcdBin, err)
	}
	type member struct{ name, client, peer, dir string }
	var ms []member
	var initial []string
	for i := 0; i < n; i++ {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		m := member{name: fmt.Sprintf("%s-m%d", tag, i), client: fmt.Sprintf("http://127.0.0.1:%d", cp),
			peer: fmt.Sprintf("http://127.0.0.1:%d", pp), dir: filepath.Join(b.tmp, fmt.Sprintf("%s-m%d", tag, i))}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return nil, err
		}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	ec := &etcdCluster{}
	for _, m := range ms {
		p := &proc{name: m.name, bin: bin, dir: m.dir, logPath: filepath.Join(m.dir, "etcd.log"),
			env: childEnv("ETCD_UNSUPPORTED_ARCH="),
			args: []string{"--name", m.name, "--data-dir", filepath.Join(m.dir, "data"),
				"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
				"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
				"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
				"--initial-cluster-token", "failbench-" + tag, "--heartbeat-interval", "100", "--election-timeout", "1000",
				"--log-level", "error"}}
		b.track(p)
		if err := p.start(); err != nil {
			return nil, err
		}
		ec.procs = append(ec.procs, p)
		ec.endpoints = append(ec.endpoints, m.client)
	}
	for i, m := range ms {
		if err := waitHTTP(ctx, b.client, m.client+"/health", 30*time.Second); err != nil {
			return nil, fmt.Errorf("etcd %s not healthy: %w\n%s", m.name, err, tailFile(ec.procs[i].logPath, 20))
		}
	}
	b.logf("etcd %s: %d member(s) at %s\n", tag, n, strings.Join(ec.endpoints, ","))
	return ec, nil
}

// waitHTTP polls url until it answers 200 or d passes.
func waitHTTP(ctx context.Context, c *http.Client, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %s", resp.Status)
		} else {
			last = err
		}
		sleep(ctx, 50*time.Millisecond)
	}
	return fmt.Errorf("%s not answering 200 after %s: %v", url, d, last)
}

// replica is one Nimbus controller process.
type replica struct {
	id     string
	ofAddr string
	api    string
	p      *proc
}

// newReplica prepares (does not start) a replica with fresh ports.
func (b *bench) newReplica(id string, endpoints []string) (*replica, error) {
	ofp, err := freePort()
	if err != nil {
		return nil, err
	}
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &replica{id: id, ofAddr: fmt.Sprintf("127.0.0.1:%d", ofp), api: fmt.Sprintf("127.0.0.1:%d", ap)}
	r.p = &proc{name: id, bin: b.cfg.controllerBin, dir: dir, logPath: filepath.Join(dir, "controller.log"), env: childEnv("NIMBUS_CLUSTER_SECRET=" + clusterSecret),
		args: []string{"serve", "--openflow-listen", r.ofAddr, "--api-listen", r.api,
			"--etcd-endpoints", strings.Join(endpoints, ","), "--replica-id", id,
			"--log-format", "json", "--log-level", b.cfg.logLevel}}
	b.track(r.p)
	return r, nil
}

// startReplica starts r and waits until its API answers.
func (b *bench) startReplica(ctx context.Context, r *replica) error {
	if err := r.p.start(); err != nil {
		return err
	}
	if err := waitHTTP(ctx, b.client, "http://"+r.api+"/cluster/v1/local", 30*time.Second); err != nil {
		return fmt.Errorf("replica %s: %w\n%s", r.id, err, tailFile(r.p.logPath, 20))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tailFile returns the last n lines of path (for error messages).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
