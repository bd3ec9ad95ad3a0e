package ovslab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/testport"
)

// StopGrace is how long Stop (and the t.Cleanup of StartProcess) waits after
// SIGTERM before sending SIGKILL.
const StopGrace = 5 * time.Second

// Proc is a process started by StartProcess.
type Proc struct {
	t       testing.TB
	Name    string
	Cmd     *exec.Cmd
	PID     int
	LogPath string

	done    chan struct{}
	mu      sync.Mutex
	waitErr error
}

// StartProcess starts the binary name (a path, or a name looked up in PATH)
// with args, the test's environment plus env ("K=V" entries, later ones
// win), stdout and stderr both written to a log file in t.TempDir(). In
// t.Cleanup it sends SIGTERM to that PID only, then SIGKILL after
// StopGrace, and when the test failed it logs the tail of the process log.
// On Linux the child also gets SIGKILL if the test binary dies.
func StartProcess(t testing.TB, name string, args []string, env []string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("ovslab: starting %s: %v", name, err)
	}
	logf.Close() // the child holds its own descriptor
	p := &Proc{t: t, Name: name, Cmd: cmd, PID: cmd.Process.Pid, LogPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("ovslab: last output of %s (pid %d, log %s):\n%s", filepath.Base(name), p.PID, logPath, tail(p.Log(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

// Signal sends sig to the process (by its PID). Sending to an exited
// process is not an error.
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if p.Exited() {
		return
	}
	if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("ovslab: signalling %s (pid %d): %v", p.Name, p.PID, err)
	}
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (p *Proc) Kill() {
	p.t.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to StopGrace, then SIGKILL; it returns the
// process's exit error (nil for exit status 0). Calling it again just
// returns the same result.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopGrace):
			_ = p.Cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	}
	return p.exitErr()
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit by itself. It returns
// whether it exited and its exit error.
func (p *Proc) Wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.exitErr()
	case <-time.After(timeout):
		return false, nil
	}
}

// Done is closed when the process exits.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Log returns everything the process wrote to stdout and stderr so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// WaitLog waits until the log contains substr, failing the test after
// timeout or when the process exits first.
func (p *Proc) WaitLog(substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), substr) {
			return
		}
		if p.Exited() {
			// One last look: the line may have been written just before exit.
			if strings.Contains(p.Log(), substr) {
				return
			}
			p.t.Fatalf("ovslab: %s exited (%v) before logging %q; log:\n%s", p.Name, p.exitErr(), substr, tail(p.Log(), 8000))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("ovslab: %s did not log %q within %v; log:\n%s", p.Name, substr, timeout, tail(p.Log(), 8000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// below the ephemeral range (testport.Free: no outgoing connection takes
// it before the server binds; another server still could).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := testport.Free()
	if err != nil {
		t.Fatalf("ovslab: %v", err)
	}
	return p
}

// WaitListening waits until something accepts TCP connections on addr
// (e.g. "127.0.0.1:6653"), failing the test after timeout. Note that it
// opens (and closes) a connection, which the listener will see.
func WaitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ovslab: nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
