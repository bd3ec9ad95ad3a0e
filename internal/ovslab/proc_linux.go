package ovslab

import "syscall"

// sysProcAttr makes the kernel SIGKILL the child if the test binary dies
// (e.g. on a `go test -timeout` panic, when no t.Cleanup runs).
func sysProcAttr() *syscall.SysProcAttr {
	return deathSignalAttr(syscall.SIGKILL)
}

// deathSignalAttr makes the kernel send sig to the child when the test
// binary dies.
func deathSignalAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig}
}
