// Package ovslab is the test harness for Nimbus tests that run against the
// real Open vSwitch of this machine (userspace datapath) and against Mininet.
//
// It is meant to be imported from _test.go files only. Every helper takes a
// testing.TB and fails the test (t.Fatal) when the lab itself is broken, so a
// missing OVS installation never turns into a silently skipped test.
//
// Gating: tests that need OVS start with
//
//	ovslab.RequireE2E(t)
//
// which skips unless NIMBUS_E2E=1 (make test sets it) and then calls Require,
// which starts the system OVS (scripts/ovs-start.sh) if needed and fails the
// test loudly when the OVS tools are missing.
//
// Every bridge made by NewBridge is named "nb" + 8 hex digits, uses
// datapath_type=netdev and fail_mode=secure, carries
// external_ids:nimbus-lab-owner=<pid of the test binary>, and is deleted in
// t.Cleanup. Bridges whose owner process is dead (a test binary that was
// killed) are swept by Require and by test/mininet/cleanup.sh.
//
// Helpers that fail the test call t.Fatal and therefore must be called from
// the test goroutine; the *Err variants return errors instead and may be
// used from other goroutines.
package ovslab
