package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecurityKeys: the HTTP timeouts, api.metrics, cluster.* and
// etcd.username/password keys load from file, environment and flags,
// default sanely, and bad values are refused.
func TestSecurityKeys(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.API.ReadHeaderTimeout != 10*time.Second || c.API.ReadTimeout != time.Minute || c.API.WriteTimeout != 2*time.Minute ||
		c.API.IdleTimeout != 2*time.Minute || c.API.Metrics != "api" || c.Cluster.Secret != "" || c.Cluster.Listen != "" {
		t.Fatalf("defaults: %+v %+v", c.API, c.Cluster)
	}
	file := filepath.Join(t.TempDir(), "nimbus.yaml")
	os.WriteFile(file, []byte("cluster:\n  secret: from-the-file-0123456789\n  listen: \":9697\"\netcd:\n  username: nimbus-controller\napi:\n  metrics: \"127.0.0.1:9100\"\n"), 0o600)
	c, err = load(t, []string{"--config", file, "--api-read-header-timeout", "2s"}, []string{"NIMBUS_ETCD_PASSWORD=pw"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Secret != "from-the-file-0123456789" || c.Cluster.Listen != ":9697" || c.Etcd.Username != "nimbus-controller" ||
		c.Etcd.Password != "pw" || c.API.Metrics != "127.0.0.1:9100" || c.API.ReadHeaderTimeout != 2*time.Second {
		t.Fatalf("loaded: %+v %+v %+v", c.API, c.Cluster, c.Etcd)
	}
	for _, bad := range [][]string{
		{"--api-metrics", "sometimes"},
		{"--api-metrics", ""},
		{"--cluster-secret", "short"},
		{"--api-read-timeout", "0s"},
		{"--api-idle-timeout", "-1s"},
		{"--api-read-header-timeout", "2m", "--api-read-timeout", "1m"},
	} {
		if _, err := load(t, bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
