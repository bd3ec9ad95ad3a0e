// Package config loads the controller's configuration from a file, the
// environment (NIMBUS_*) and flags, in rising precedence, through viper.
// Unknown keys are refused.
package config

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
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
		// Listener bounds (see README): handshake and request timeouts,
		// multipart reply caps, connection caps, and the echo probe that
		// settles a duplicate datapath id.
		HandshakeTimeout  time.Duration `mapstructure:"handshake_timeout"`
		RequestTimeout    time.Duration `mapstructure:"request_timeout"`
		MaxMultipartBytes int           `mapstructure:"max_multipart_bytes"`
		MaxMultipartParts int           `mapstructure:"max_multipart_parts"`
		MultipartBudget   int64         `mapstructure:"multipart_budget"`
		MaxConns          int           `mapstructure:"max_conns"`
		MaxConnsPerAddr   int           `mapstructure:"max_conns_per_addr"`
		DuplicateProbe    time.Duration `mapstructure:"duplicate_probe"`
		TLS               struct {
			Cert string `mapstructure:"cert"`
			Key  string `mapstructure:"key"`
			CA   string `mapstructure:"ca"`
			// BindDPID accepts a switch only if its certificate names
			// its datapath id (or the chassis that owns it).
			BindDPID bool `mapstructure:"bind_dpid"`
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
		// Metrics: "api" serves /metrics on api.listen, "off" nowhere,
		// anything else is a listen address of its own.
		Metrics           string        `mapstructure:"metrics"`
		ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
		ReadTimeout       time.Duration `mapstructure:"read_timeout"`
		WriteTimeout      time.Duration `mapstructure:"write_timeout"`
		IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
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
		// Embedded etcd maintenance (finding 12).
		AutoCompactionMode      string        `mapstructure:"auto_compaction_mode"`
		AutoCompactionRetention string        `mapstructure:"auto_compaction_retention"`
		DefragInterval          time.Duration `mapstructure:"defrag_interval"`
		Username                string        `mapstructure:"username"`
		Password                string        `mapstructure:"password"`
		TLS                     struct {
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
		Secret       string        `mapstructure:"secret"`
		Listen       string        `mapstructure:"listen"`
		Advertise    string        `mapstructure:"advertise"`
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
	{"openflow.tls.bind_dpid", "openflow-tls-bind-dpid", "accept a switch only if its certificate names its datapath id (CN or DNS SAN <16 hex>, or dpid:<16 hex>), or the chassis that registered that datapath id", false},
	{"openflow.handshake_timeout", "openflow-handshake-timeout", "close a connection that has not completed HELLO and FEATURES (and TLS) within this", 10 * time.Second},
	{"openflow.request_timeout", "openflow-request-timeout", "close a switch that leaves a request (role, barrier, dump, bundle, echo) unanswered this long", 30 * time.Second},
	{"openflow.max_multipart_bytes", "openflow-max-multipart-bytes", "cap on one multipart reply (flow, group, meter dumps; PORT_DESC is capped at 4 MiB); beyond it the request fails and the switch is closed", 32 << 20},
	{"openflow.max_multipart_parts", "openflow-max-multipart-parts", "cap on the parts of one multipart reply", 1 << 18},
	{"openflow.multipart_budget", "openflow-multipart-budget", "cap on the bytes all switches' multipart replies hold together while they are joined; a reply beyond it fails and its switch is closed", int64(512 << 20)},
	{"openflow.max_conns", "openflow-max-conns", "cap on open OpenFlow connections; more are closed at once", 4096},
	{"openflow.max_conns_per_addr", "openflow-max-conns-per-addr", "cap on open OpenFlow connections from one remote IP (labs run many bridges from 127.0.0.1)", 256},
	{"openflow.duplicate_probe", "openflow-duplicate-probe", "when a connection claims a connected datapath id, the old session must answer an echo within this or be replaced; if it answers, the newcomer is refused", time.Second},
	{"api.listen", "api-listen", "HTTP API listen address (Neutron API, /healthz, /metrics)", ":9696"},
	{"api.auth", "api-auth", "noauth (every caller is admin) or keystone", "noauth"},
	{"api.keystone_url", "api-keystone-url", "Keystone base URL for api.auth=keystone", ""},
	{"api.service_token", "api-service-token", "service token used to validate callers' tokens with Keystone", ""},
	{"api.default_project", "api-default-project", "project of a noauth caller without identity headers (empty: fake_project_id, like Neutron)", ""},
	{"api.max_subnet_host_routes", "api-max-subnet-host-routes", "most host_routes per subnet (Neutron's max_subnet_host_routes)", 20},
	{"api.max_dns_nameservers", "api-max-dns-nameservers", "most dns_nameservers per subnet (Neutron's max_dns_nameservers)", 5},
	{"api.max_fixed_ips_per_port", "api-max-fixed-ips-per-port", "most fixed_ips per port (Neutron's max_fixed_ips_per_port)", 5},
	{"api.max_allowed_address_pair", "api-max-allowed-address-pair", "most allowed_address_pairs per port (Neutron's max_allowed_address_pair)", 10},
	{"api.metrics", "api-metrics", "where /metrics is served: api (on api.listen), off, or a listen address of its own (e.g. 127.0.0.1:9100)", "api"},
	{"api.read_header_timeout", "api-read-header-timeout", "HTTP servers: time allowed to read a request's headers (slowloris bound)", 10 * time.Second},
	{"api.read_timeout", "api-read-timeout", "HTTP servers: time allowed to read a whole request, body included", 60 * time.Second},
	{"api.write_timeout", "api-write-timeout", "HTTP servers: time allowed to write a response (cluster heartbeat streams are exempt)", 120 * time.Second},
	{"api.idle_timeout", "api-idle-timeout", "HTTP servers: keep-alive connections idle this long are closed", 120 * time.Second},
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
	{"etcd.auto_compaction_mode", "etcd-auto-compaction-mode", "embedded etcd: compact old revisions by age (periodic) or count (revision)", "periodic"},
	{"etcd.auto_compaction_retention", "etcd-auto-compaction-retention", "embedded etcd: history kept, a duration (periodic) or a number of revisions (revision); 0 disables compaction", "1h"},
	{"etcd.defrag_interval", "etcd-defrag-interval", "embedded etcd: defragment this often when a quarter of the file is free (0 disables)", 24 * time.Hour},
	{"etcd.username", "etcd-username", "etcd user (with etcd auth enabled; a client certificate's CN also authenticates)", ""},
	{"etcd.password", "etcd-password", "password of etcd.username (prefer NIMBUS_ETCD_PASSWORD or the config file to a flag)", ""},
	{"etcd.tls.cert", "etcd-tls-cert", "etcd client certificate", ""},
	{"etcd.tls.key", "etcd-tls-key", "etcd client key", ""},
	{"etcd.tls.ca", "etcd-tls-ca", "CA of the etcd servers", ""},
	{"cluster.replica_id", "replica-id", "this replica's id (default: hostname-openflowport)", ""},
	{"cluster.advertise_api", "advertise-api", "host:port where peers reach this replica's API (default: api.listen, 127.0.0.1 if unspecified)", ""},
	{"cluster.lease_ttl", "lease-ttl", "replica lease TTL, seconds (min 2); peers fence a dead replica faster through heartbeat streams", 2},
	{"cluster.peer_timeout", "peer-timeout", "a peer whose heartbeat stream stalls this long is fenced", 1500 * time.Millisecond},
	{"cluster.secret", "cluster-secret", "shared secret authenticating /cluster/v1 between replicas (empty: generated once and kept in etcd)", ""},
	{"cluster.listen", "cluster-listen", "listen address of a dedicated /cluster/v1 server (heartbeats apart from API load); empty: served on api.listen", ""},
	{"cluster.advertise", "cluster-advertise", "host:port where peers reach cluster.listen (default: cluster.listen, 127.0.0.1 if unspecified)", ""},
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
		case bool:
			fs.Bool(o.flag, d, o.help)
		case int:
			fs.Int(o.flag, d, o.help)
		case int64:
			fs.Int64(o.flag, d, o.help)
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
	of := &c.OpenFlow
	if of.HandshakeTimeout <= 0 || of.RequestTimeout <= 0 || of.DuplicateProbe <= 0 {
		return fmt.Errorf("config: openflow.handshake_timeout (%s), openflow.request_timeout (%s) and openflow.duplicate_probe (%s) must be positive",
			of.HandshakeTimeout, of.RequestTimeout, of.DuplicateProbe)
	}
	if of.MaxMultipartBytes < 64<<10 || of.MaxMultipartParts < 1 {
		return fmt.Errorf("config: openflow.max_multipart_bytes %d must be at least 65536 and openflow.max_multipart_parts %d at least 1",
			of.MaxMultipartBytes, of.MaxMultipartParts)
	}
	if of.MultipartBudget < int64(of.MaxMultipartBytes) {
		return fmt.Errorf("config: openflow.multipart_budget %d must be at least openflow.max_multipart_bytes %d", of.MultipartBudget, of.MaxMultipartBytes)
	}
	if of.MaxConns < 1 || of.MaxConnsPerAddr < 1 {
		return fmt.Errorf("config: openflow.max_conns %d and openflow.max_conns_per_addr %d must be at least 1", of.MaxConns, of.MaxConnsPerAddr)
	}
	if of.TLS.BindDPID && (of.TLS.Cert == "" || of.TLS.Key == "" || of.TLS.CA == "") {
		return fmt.Errorf("config: openflow.tls.bind_dpid needs OpenFlow TLS (openflow.tls.cert, key and ca)")
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
	for name, d := range map[string]time.Duration{"api.read_header_timeout": c.API.ReadHeaderTimeout, "api.read_timeout": c.API.ReadTimeout,
		"api.write_timeout": c.API.WriteTimeout, "api.idle_timeout": c.API.IdleTimeout} {
		if d <= 0 {
			return fmt.Errorf("config: %s %s must be positive", name, d)
		}
	}
	if c.API.ReadHeaderTimeout > c.API.ReadTimeout {
		return fmt.Errorf("config: api.read_header_timeout %s exceeds api.read_timeout %s", c.API.ReadHeaderTimeout, c.API.ReadTimeout)
	}
	if c.API.Metrics == "" {
		return fmt.Errorf("config: api.metrics is empty (want api, off or a listen address)")
	}
	if c.API.Metrics != "api" && c.API.Metrics != "off" {
		if _, _, err := net.SplitHostPort(c.API.Metrics); err != nil {
			return fmt.Errorf("config: api.metrics %q is not api, off or host:port: %w", c.API.Metrics, err)
		}
	}
	if c.Cluster.Secret != "" && len(c.Cluster.Secret) < 16 {
		return fmt.Errorf("config: cluster.secret is shorter than 16 characters")
	}
	if c.Network.MTU < 576 || c.Network.MTU > 9216 {
		return fmt.Errorf("config: network.mtu %d out of range 576..9216", c.Network.MTU)
	}
	if c.Cluster.LeaseTTL < 2 {
		return fmt.Errorf("config: cluster.lease_ttl %d is below etcd's minimum of 2 seconds", c.Cluster.LeaseTTL)
	}
	if err := validCompaction(c.Etcd.AutoCompactionMode, c.Etcd.AutoCompactionRetention); err != nil {
		return err
	}
	if c.Etcd.DefragInterval < 0 || (c.Etcd.DefragInterval > 0 && c.Etcd.DefragInterval < time.Minute) {
		return fmt.Errorf("config: etcd.defrag_interval %s must be 0 (off) or at least 1m", c.Etcd.DefragInterval)
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

// validCompaction checks the embedded etcd's compaction settings as etcd
// reads them: periodic takes a duration (or a whole number of hours),
// revision a number of revisions.
func validCompaction(mode, retention string) error {
	switch mode {
	case "periodic":
		if n, err := strconv.Atoi(retention); err == nil && n >= 0 {
			return nil
		}
		if d, err := time.ParseDuration(retention); err != nil || d < 0 {
			return fmt.Errorf("config: etcd.auto_compaction_retention %q is not a duration (periodic mode)", retention)
		}
	case "revision":
		if n, err := strconv.ParseInt(retention, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("config: etcd.auto_compaction_retention %q is not a number of revisions (revision mode)", retention)
		}
	default:
		return fmt.Errorf("config: etcd.auto_compaction_mode %q is not periodic or revision", mode)
	}
	return nil
}

// Environ is os.Environ, for callers.
func Environ() []string { return os.Environ() }
