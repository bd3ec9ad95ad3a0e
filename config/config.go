// Package config loads the controller's configuration from a file, the
// environment (NIMBUS_*) and flags, in rising precedence, through viper.
// Unknown keys are refused.
package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is the controller configuration.
type Config struct {
	OpenFlow struct {
		Listen       string        `mapstructure:"listen"`
		EchoInterval time.Duration `mapstructure:"echo_interval"`
		DeadAfter    time.Duration `mapstructure:"dead_after"`
		TLS          struct {
			Cert string `mapstructure:"cert"`
			Key  string `mapstructure:"key"`
			CA   string `mapstructure:"ca"`
		} `mapstructure:"tls"`
	} `mapstructure:"openflow"`
	API struct {
		Listen         string `mapstructure:"listen"`
		Auth           string `mapstructure:"auth"`
		KeystoneURL    string `mapstructure:"keystone_url"`
		ServiceToken   string `mapstructure:"service_token"`
		DefaultProject string `mapstructure:"default_project"`
		// Neutron's list bounds, same names and defaults.
		MaxSubnetHostRoutes    int `mapstructure:"max_subnet_host_routes"`
		MaxDNSNameservers      int `mapstructure:"max_dns_nameservers"`
		MaxFixedIPsPerPort     int `mapstructure:"max_fixed_ips_per_port"`
		MaxAllowedAddressPairs int `mapstructure:"max_allowed_address_pair"`
	} `mapstructure:"api"`
	Network struct {
		VLANRanges        []string `mapstructure:"vlan_ranges"`
		GRERanges         []string `mapstructure:"gre_ranges"`
		TenantNetworkType string   `mapstructure:"tenant_network_type"`
		MTU               int      `mapstructure:"mtu"`
	} `mapstructure:"network"`
	Reconcile struct {
		Interval time.Duration `mapstructure:"interval"`
	} `mapstructure:"reconcile"`
	Learning struct {
		IdleTimeout int `mapstructure:"idle_timeout"`
	} `mapstructure:"learning"`
	Topology struct {
		LLDPInterval time.Duration `mapstructure:"lldp_interval"`
		LinkTimeout  time.Duration `mapstructure:"link_timeout"`
	} `mapstructure:"topology"`
	Log struct {
		Level  string `mapstructure:"level"`
		Format string `mapstructure:"format"`
	} `mapstructure:"log"`
	Etcd struct {
		Endpoints      []string      `mapstructure:"endpoints"`
		DataDir        string        `mapstructure:"data_dir"`
		EmbedClientURL string        `mapstructure:"embed_client_url"`
		EmbedPeerURL   string        `mapstructure:"embed_peer_url"`
		DialTimeout    time.Duration `mapstructure:"dial_timeout"`
		TLS            struct {
			Cert string `mapstructure:"cert"`
			Key  string `mapstructure:"key"`
			CA   string `mapstructure:"ca"`
		} `mapstructure:"tls"`
	} `mapstructure:"etcd"`
	Cluster struct {
		ReplicaID    string        `mapstructure:"replica_id"`
		AdvertiseAPI string        `mapstructure:"advertise_api"`
		LeaseTTL     int           `mapstructure:"lease_ttl"`
		PeerTimeout  time.Duration `mapstructure:"peer_timeout"`
		Settle       time.Duration `mapstructure:"settle"`
	} `mapstructure:"cluster"`
}

// option is one configuration key with its default, flag and help.
type option struct {
	key, flag, help string
	def             any
}

var options = []option{
	{"openflow.listen", "openflow-listen", "OpenFlow listen address", ":6653"},
	{"openflow.echo_interval", "openflow-echo-interval", "send an echo request after this long without input", 5 * time.Second},
	{"openflow.dead_after", "openflow-dead-after", "declare a switch dead after this long without input", 15 * time.Second},
	{"openflow.tls.cert", "openflow-tls-cert", "TLS certificate (enables TLS with client-certificate verification)", ""},
	{"openflow.tls.key", "openflow-tls-key", "TLS private key", ""},
	{"openflow.tls.ca", "openflow-tls-ca", "CA that signs switch certificates", ""},
	{"api.listen", "api-listen", "HTTP API listen address (Neutron API, /healthz, /metrics)", ":9696"},
	{"api.auth", "api-auth", "noauth (every caller is admin) or keystone", "noauth"},
	{"api.keystone_url", "api-keystone-url", "Keystone base URL for api.auth=keystone", ""},
	{"api.service_token", "api-service-token", "service token used to validate callers' tokens with Keystone", ""},
	{"api.default_project", "api-default-project", "project of a noauth caller without identity headers (empty: fake_project_id, like Neutron)", ""},
	{"api.max_subnet_host_routes", "api-max-subnet-host-routes", "most host_routes per subnet (Neutron's max_subnet_host_routes)", 20},
	{"api.max_dns_nameservers", "api-max-dns-nameservers", "most dns_nameservers per subnet (Neutron's max_dns_nameservers)", 5},
	{"api.max_fixed_ips_per_port", "api-max-fixed-ips-per-port", "most fixed_ips per port (Neutron's max_fixed_ips_per_port)", 5},
	{"api.max_allowed_address_pair", "api-max-allowed-address-pair", "most allowed_address_pairs per port (Neutron's max_allowed_address_pair)", 10},
	{"network.vlan_ranges", "vlan-ranges", "tenant VLAN pools, physnet:min:max (comma separated)", []string{"physnet1:1000:2999"}},
	{"network.gre_ranges", "gre-ranges", "tenant GRE key pools, min:max (comma separated)", []string{"1:65535"}},
	{"network.tenant_network_type", "tenant-network-type", "type of networks created without provider:network_type (gre or vlan)", "gre"},
	{"network.mtu", "mtu", "underlay MTU; GRE networks get 42 bytes less", 1500},
	{"reconcile.interval", "reconcile-interval", "full reconcile pass (drift repair) interval", 30 * time.Second},
	{"learning.idle_timeout", "learning-idle-timeout", "idle timeout of learned L2 flows, seconds", 60},
	{"topology.lldp_interval", "lldp-interval", "LLDP link discovery interval on fabric switches (0 disables fabric discovery)", time.Second},
	{"topology.link_timeout", "link-timeout", "forget a fabric link after this long without LLDP (0: 4 x lldp_interval)", time.Duration(0)},
	{"log.level", "log-level", "debug, info, warn or error", "info"},
	{"log.format", "log-format", "text or json", "text"},
	{"etcd.endpoints", "etcd-endpoints", "etcd cluster endpoints (comma separated); empty starts an embedded single-member etcd", []string{}},
	{"etcd.data_dir", "etcd-data-dir", "data directory of the embedded etcd", "var/etcd"},
	{"etcd.embed_client_url", "etcd-embed-client-url", "client URL of the embedded etcd (off the standard 2379 so a system etcd can coexist)", "http://127.0.0.1:12379"},
	{"etcd.embed_peer_url", "etcd-embed-peer-url", "peer URL of the embedded etcd", "http://127.0.0.1:12380"},
	{"etcd.dial_timeout", "etcd-dial-timeout", "etcd connection timeout", 5 * time.Second},
	{"etcd.tls.cert", "etcd-tls-cert", "etcd client certificate", ""},
	{"etcd.tls.key", "etcd-tls-key", "etcd client key", ""},
	{"etcd.tls.ca", "etcd-tls-ca", "CA of the etcd servers", ""},
	{"cluster.replica_id", "replica-id", "this replica's id (default: hostname-openflowport)", ""},
	{"cluster.advertise_api", "advertise-api", "host:port where peers reach this replica's API (default: api.listen, 127.0.0.1 if unspecified)", ""},
	{"cluster.lease_ttl", "lease-ttl", "replica lease TTL, seconds (min 2); peers fence a dead replica faster through heartbeat streams", 2},
	{"cluster.peer_timeout", "peer-timeout", "a peer whose heartbeat stream stalls this long is fenced", 1500 * time.Millisecond},
	{"cluster.settle", "settle", "a replica must be up this long before mastership rebalances toward it", 3 * time.Second},
}

// EnvPrefix prefixes environment variables: openflow.listen is
// NIMBUS_OPENFLOW_LISTEN.
const EnvPrefix = "NIMBUS"

// Flags registers the command-line flags (plus --config) on fs.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (yaml, json or toml)")
	for _, o := range options {
		switch d := o.def.(type) {
		case string:
			fs.String(o.flag, d, o.help)
		case int:
			fs.Int(o.flag, d, o.help)
		case time.Duration:
			fs.Duration(o.flag, d, o.help)
		case []string:
			fs.StringSlice(o.flag, d, o.help)
		}
	}
}

// Load builds the configuration from defaults, the file named by
// --config, NIMBUS_* variables and flags set on the command line.
func Load(fs *pflag.FlagSet, environ []string) (*Config, error) {
	v := viper.New()
	known := map[string]bool{}
	for _, o := range options {
		v.SetDefault(o.key, o.def)
		known[o.key] = true
		if f := fs.Lookup(o.flag); f != nil {
			if err := v.BindPFlag(o.key, f); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
		}
	}
	// Refuse unknown NIMBUS_<SECTION>_* variables: a typo in a setting
	// must not be silently ignored. Variables outside the config sections
	// (NIMBUS_E2E for the tests) are not the controller's business.
	envKnown, sections := map[string]bool{}, map[string]bool{}
	for k := range known {
		envKnown[EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
		sec, _, _ := strings.Cut(k, ".")
		sections[EnvPrefix+"_"+strings.ToUpper(sec)+"_"] = true
	}
	var badEnv []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		for sec := range sections {
			if strings.HasPrefix(name, sec) && !envKnown[name] {
				badEnv = append(badEnv, name)
				break
			}
		}
	}
	if len(badEnv) > 0 {
		sort.Strings(badEnv)
		return nil, fmt.Errorf("config: unknown environment variable(s) %s; known keys: %s", strings.Join(badEnv, ", "), knownList(known))
	}
	if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
		path := f.Value.String()
		fv := viper.New()
		fv.SetConfigFile(path)
		if err := fv.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: reading %s: %w", path, err)
		}
		var bad []string
		for _, k := range fv.AllKeys() {
			if !known[k] {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return nil, fmt.Errorf("config: unknown key(s) %s in %s; known keys: %s", strings.Join(bad, ", "), path, knownList(known))
		}
		if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	// Environment over file: merged into the config layer after the file;
	// flags that were set still win over both.
	envVals := map[string]any{}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		for k := range known {
			if name == EnvPrefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_")) {
				setNested(envVals, k, val)
			}
		}
	}
	if err := v.MergeConfigMap(envVals); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func setNested(m map[string]any, key, val string) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}

func knownList(known map[string]bool) string {
	ks := make([]string, 0, len(known))
	for k := range known {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (c *Config) validate() error {
	if c.OpenFlow.EchoInterval <= 0 || c.OpenFlow.DeadAfter <= c.OpenFlow.EchoInterval {
		return fmt.Errorf("config: openflow.dead_after (%s) must exceed openflow.echo_interval (%s) > 0", c.OpenFlow.DeadAfter, c.OpenFlow.EchoInterval)
	}
	if c.Reconcile.Interval < 100*time.Millisecond {
		return fmt.Errorf("config: reconcile.interval %s is below 100ms", c.Reconcile.Interval)
	}
	if c.Topology.LLDPInterval < 0 || (c.Topology.LLDPInterval > 0 && c.Topology.LLDPInterval < 100*time.Millisecond) {
		return fmt.Errorf("config: topology.lldp_interval %s must be 0 (off) or at least 100ms", c.Topology.LLDPInterval)
	}
	if c.Topology.LinkTimeout < 0 || (c.Topology.LinkTimeout > 0 && c.Topology.LinkTimeout <= c.Topology.LLDPInterval) {
		return fmt.Errorf("config: topology.link_timeout %s must exceed topology.lldp_interval", c.Topology.LinkTimeout)
	}
	if c.Learning.IdleTimeout < 0 || c.Learning.IdleTimeout > 65535 {
		return fmt.Errorf("config: learning.idle_timeout %d out of range 0..65535", c.Learning.IdleTimeout)
	}
	switch c.API.Auth {
	case "noauth":
	case "keystone":
		if c.API.KeystoneURL == "" {
			return fmt.Errorf("config: api.auth=keystone needs api.keystone_url")
		}
	default:
		return fmt.Errorf("config: api.auth %q is not noauth or keystone", c.API.Auth)
	}
	for k, v := range map[string]int{"api.max_subnet_host_routes": c.API.MaxSubnetHostRoutes, "api.max_dns_nameservers": c.API.MaxDNSNameservers,
		"api.max_fixed_ips_per_port": c.API.MaxFixedIPsPerPort, "api.max_allowed_address_pair": c.API.MaxAllowedAddressPairs} {
		if v < 1 || v > 1000 {
			return fmt.Errorf("config: %s %d out of range 1..1000", k, v)
		}
	}
	if c.Network.MTU < 576 || c.Network.MTU > 9216 {
		return fmt.Errorf("config: network.mtu %d out of range 576..9216", c.Network.MTU)
	}
	if c.Cluster.LeaseTTL < 2 {
		return fmt.Errorf("config: cluster.lease_ttl %d is below etcd's minimum of 2 seconds", c.Cluster.LeaseTTL)
	}
	for i, e := range c.Etcd.Endpoints {
		c.Etcd.Endpoints[i] = strings.TrimSpace(e)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format %q is not text or json", c.Log.Format)
	}
	return nil
}

// Environ is os.Environ, for callers.
func Environ() []string { return os.Environ() }
