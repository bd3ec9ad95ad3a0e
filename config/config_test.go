package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env []string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs, env)
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFlow.Listen != ":6653" || c.API.Listen != ":9696" || c.Reconcile.Interval != 30*time.Second || c.Learning.IdleTimeout != 60 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nimbus.yaml")
	os.WriteFile(file, []byte("openflow:\n  listen: \":1111\"\napi:\n  listen: \":2222\"\nreconcile:\n  interval: 3s\n"), 0o644)
	c, err := load(t, []string{"--config", file, "--api-listen", ":4444"}, []string{"NIMBUS_OPENFLOW_LISTEN=:3333", "NIMBUS_E2E=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFlow.Listen != ":3333" || c.API.Listen != ":4444" || c.Reconcile.Interval != 3*time.Second {
		t.Fatalf("precedence: %+v", c)
	}
}

func TestUnknownKeysRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nimbus.yaml")
	os.WriteFile(file, []byte("openflow:\n  listne: \":1111\"\n"), 0o644)
	if _, err := load(t, []string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), "unknown key(s) openflow.listne") {
		t.Fatalf("file typo: %v", err)
	}
	if _, err := load(t, nil, []string{"NIMBUS_OPENFLOW_LISTNE=:1"}); err == nil || !strings.Contains(err.Error(), "NIMBUS_OPENFLOW_LISTNE") {
		t.Fatalf("env typo: %v", err)
	}
	if _, err := load(t, []string{"--config", filepath.Join(dir, "missing.yaml")}, nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestValidation(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "chatty"},
		{"--openflow-dead-after", "1s", "--openflow-echo-interval", "5s"},
		{"--learning-idle-timeout", "70000"},
		{"--reconcile-interval", "1ms"},
	} {
		if _, err := load(t, args, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestEtcdMaintenanceKeys(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Etcd.AutoCompactionMode != "periodic" || c.Etcd.AutoCompactionRetention != "1h" || c.Etcd.DefragInterval != 24*time.Hour {
		t.Fatalf("etcd maintenance defaults: %+v", c.Etcd)
	}
	c, err = load(t, []string{"--etcd-defrag-interval", "0"}, []string{"NIMBUS_ETCD_AUTO_COMPACTION_MODE=revision", "NIMBUS_ETCD_AUTO_COMPACTION_RETENTION=5000"})
	if err != nil || c.Etcd.AutoCompactionMode != "revision" || c.Etcd.AutoCompactionRetention != "5000" || c.Etcd.DefragInterval != 0 {
		t.Fatalf("etcd maintenance from env and flags: %+v %v", c, err)
	}
	for _, args := range [][]string{
		{"--etcd-auto-compaction-mode", "sometimes"},
		{"--etcd-auto-compaction-mode", "revision", "--etcd-auto-compaction-retention", "1h"},
		{"--etcd-auto-compaction-retention", "soon"},
		{"--etcd-defrag-interval", "1s"},
	} {
		if _, err := load(t, args, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestOpenFlowListenerKeys(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	of := c.OpenFlow
	if of.MaxConns != 4096 || of.MaxConnsPerAddr != 256 || of.MaxMultipartBytes != 32<<20 || of.MaxMultipartParts != 1<<18 || of.MultipartBudget != 512<<20 ||
		of.RequestTimeout != 30*time.Second || of.HandshakeTimeout != 10*time.Second || of.DuplicateProbe != time.Second || of.TLS.BindDPID {
		t.Fatalf("openflow defaults: %+v", of)
	}
	c, err = load(t, []string{"--openflow-max-conns", "10", "--openflow-tls-cert", "c", "--openflow-tls-key", "k", "--openflow-tls-ca", "a"},
		[]string{"NIMBUS_OPENFLOW_TLS_BIND_DPID=true", "NIMBUS_OPENFLOW_REQUEST_TIMEOUT=2s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenFlow.MaxConns != 10 || !c.OpenFlow.TLS.BindDPID || c.OpenFlow.RequestTimeout != 2*time.Second {
		t.Fatalf("openflow keys not applied: %+v", c.OpenFlow)
	}
	if _, err := load(t, []string{"--openflow-tls-bind-dpid"}, nil); err == nil || !strings.Contains(err.Error(), "bind_dpid needs") {
		t.Fatalf("bind_dpid without TLS: %v", err)
	}
	if _, err := load(t, []string{"--openflow-max-conns-per-addr", "0"}, nil); err == nil {
		t.Fatal("max_conns_per_addr 0 accepted")
	}
	if c, err := load(t, nil, []string{"NIMBUS_OPENFLOW_MULTIPART_BUDGET=67108864"}); err != nil || c.OpenFlow.MultipartBudget != 64<<20 {
		t.Fatalf("multipart_budget from env: %v %+v", err, c)
	}
	if _, err := load(t, []string{"--openflow-multipart-budget", "1024"}, nil); err == nil || !strings.Contains(err.Error(), "multipart_budget") {
		t.Fatalf("a budget below one reply's cap: %v", err)
	}
}
