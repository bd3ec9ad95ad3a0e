//go:build !linux

package ovslab

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

func deathSignalAttr(syscall.Signal) *syscall.SysProcAttr { return nil }
