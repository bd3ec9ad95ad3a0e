// Command controller is the Nimbus SDN controller.
//
//	controller serve       run the controller (default)
//	controller status      print the cluster status
//	controller node        run the node agent on a hypervisor
//	controller etcd-roles  create etcd users and roles (a chassis writes only its own record)
//	controller version     print the version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/isolation"
	"github.com/nimbus-sdn/nimbus/app/l3router"
	"github.com/nimbus-sdn/nimbus/app/lb"
	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/app/nat"
	"github.com/nimbus-sdn/nimbus/app/secgroup"
	"github.com/nimbus-sdn/nimbus/app/snat"
	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/cluster/snatlease"
	"github.com/nimbus-sdn/nimbus/config"
	"github.com/nimbus-sdn/nimbus/lbprobe"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/node"
	"github.com/nimbus-sdn/nimbus/northbound"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/store"
	"github.com/nimbus-sdn/nimbus/switches"
)

var version = "dev"

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "status":
		err = status(args)
	case "node":
		err = nodeAgent(args)
	case "etcd-roles":
		err = etcdRolesCmd(args)
	case "version":
		fmt.Println("nimbus", version)
	case "help":
		fmt.Println("usage: controller [serve|status|node|etcd-roles|version] [flags]; controller serve --help lists the flags")
	default:
		err = fmt.Errorf("controller: unknown command %q (want serve, status, node, etcd-roles or version)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newLogger(level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serve(args []string) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := metrics.New()

	// State: etcd, embedded when no endpoints are configured.
	st, err := store.Open(ctx, etcdConfig(cfg, cfg.Etcd.Endpoints, log))
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Embedded() {
		log.Info("started embedded etcd", "data_dir", cfg.Etcd.DataDir, "client_url", cfg.Etcd.EmbedClientURL)
		go st.Maintain(ctx, cfg.Etcd.DefragInterval, m) // defragment our own member
	}
	mirror := st.NewMirror()
	go mirror.Run(ctx)

	replicaID := cfg.Cluster.ReplicaID
	if replicaID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(cfg.OpenFlow.Listen)
		replicaID = host + "-" + port
	}
	advertise := cfg.Cluster.AdvertiseAPI
	if advertise == "" {
		advertise = loopbackIfUnspecified(cfg.API.Listen)
	}
	// The cluster's own secret authenticates /cluster/v1 between
	// replicas: configured, or generated once and kept in etcd (like the
	// LLDP key) so every replica reads the same bytes.
	clusterSecret := []byte(cfg.Cluster.Secret)
	if len(clusterSecret) == 0 {
		if clusterSecret, err = st.Secret(ctx, "cluster"); err != nil {
			return fmt.Errorf("controller: cluster secret: %w", err)
		}
	}
	clusterAddr := ""
	if cfg.Cluster.Listen != "" {
		clusterAddr = cfg.Cluster.Advertise
		if clusterAddr == "" {
			clusterAddr = loopbackIfUnspecified(cfg.Cluster.Listen)
		}
	}
	// Membership (lease keepalives, elections) gets an etcd connection of
	// its own, so a burst of API reads and writes on the model's
	// connection never delays a keepalive.
	cst, err := store.Open(ctx, etcdConfig(cfg, st.Client().Endpoints(), log))
	if err != nil {
		return err
	}
	defer cst.Close()
	cl := cluster.New(cst.Client(), cluster.Config{ReplicaID: replicaID, APIAddr: advertise, ClusterAddr: clusterAddr, Secret: clusterSecret,
		OpenFlowAddr: cfg.OpenFlow.Listen, LeaseTTL: cfg.Cluster.LeaseTTL, PeerTimeout: cfg.Cluster.PeerTimeout, Settle: cfg.Cluster.Settle, Logger: log})

	apps := []app.App{
		learning.New(learning.Config{IdleTimeout: uint16(cfg.Learning.IdleTimeout)}),
		isolation.New(isolation.Config{}),
		secgroup.New(),
		l3router.New(),
		nat.New(),
		snat.New(),
		lb.New(lb.Config{}),
	}
	// The LLDP key is shared by every replica through etcd, so any
	// replica verifies frames another one sent.
	lldpKey, err := st.Secret(ctx, "lldp")
	if err != nil {
		return fmt.Errorf("controller: LLDP key: %w", err)
	}
	mgr := switches.New(ctx, switches.Config{Apps: apps, ReconcileInterval: cfg.Reconcile.Interval, Metrics: m, Logger: log,
		Model: mirror.Snapshot, Cluster: cl, LLDPInterval: cfg.Topology.LLDPInterval, LinkTimeout: cfg.Topology.LinkTimeout, Links: st,
		LLDPKey: lldpKey,
		// Data-plane status (port, router, floating IP status in the API)
		// on the membership connection, under a lease of its own: a dead
		// replica's records expire within 10 s.
		Status: cst.NewStatusWriter(10, log)})
	go func() {
		ch := mirror.Subscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				mgr.RefreshAll()
				if snap, ok := mirror.Snapshot(); ok {
					m.SNATPool(snat.Pool(snap, snatlease.DefaultBits))
				}
			}
		}
	}()

	srv := &ofproto.Server{Addr: cfg.OpenFlow.Listen, Session: mgr, Logger: log, Observer: m,
		MaxConns: cfg.OpenFlow.MaxConns, MaxConnsPerAddr: cfg.OpenFlow.MaxConnsPerAddr, DupProbe: cfg.OpenFlow.DuplicateProbe,
		BindDPID: cfg.OpenFlow.TLS.BindDPID, ChassisOf: mgr.ChassisOwner,
		Conn: ofproto.Config{EchoInterval: cfg.OpenFlow.EchoInterval, DeadAfter: cfg.OpenFlow.DeadAfter,
			HandshakeTimeout: cfg.OpenFlow.HandshakeTimeout, RequestTimeout: cfg.OpenFlow.RequestTimeout,
			MaxMultipartBytes: cfg.OpenFlow.MaxMultipartBytes, MaxMultipartParts: cfg.OpenFlow.MaxMultipartParts,
			Budget: ofproto.NewBudget(cfg.OpenFlow.MultipartBudget)}}
	tf := ofproto.TLSFiles{Cert: cfg.OpenFlow.TLS.Cert, Key: cfg.OpenFlow.TLS.Key, CA: cfg.OpenFlow.TLS.CA}
	if tf.Enabled() {
		if srv.TLS, err = tf.Config(); err != nil {
			return err
		}
	}
	ofAddr, err := srv.Listen()
	if err != nil {
		return err
	}

	// /cluster/v1: peer heartbeats, status and this replica's switches,
	// all signed with the cluster secret (401 otherwise).
	clusterMux := http.NewServeMux()
	clusterMux.HandleFunc(cluster.HeartbeatPath, cl.HeartbeatHandler())
	clusterMux.HandleFunc(cluster.StatusPath, cl.StatusHandler())
	clusterMux.Handle("/cluster/v1/local", cl.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		for _, d := range mgr.Connected() {
			master, since := mgr.MasterSince(d)
			out[ofproto.DPIDString(d)] = map[string]any{"master": master, "since": since.UTC().Format(time.RFC3339Nano)}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"replica": replicaID, "switches": out})
	})))
	clusterMux.Handle("/cluster/", cl.Protect(http.NotFoundHandler()))
	mux := http.NewServeMux()
	if cfg.API.Metrics == "api" {
		mux.Handle("/metrics", m.Handler())
	}
	mux.Handle("/cluster/", clusterMux)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		dpids := mgr.Connected()
		sort.Slice(dpids, func(i, j int) bool { return dpids[i] < dpids[j] })
		sw := make([]string, len(dpids))
		for i, d := range dpids {
			sw[i] = ofproto.DPIDString(d)
		}
		w.Header().Set("Content-Type", "application/json")
		etcdOK := true
		hctx, cancel := context.WithTimeout(r.Context(), time.Second)
		// Under the Nimbus prefix: with etcd auth, the controller role covers
		// only that.
		if _, err := st.Client().Get(hctx, store.Prefix+"health"); err != nil {
			etcdOK = false
		}
		cancel()
		status := "ok"
		if !etcdOK {
			status = "degraded"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"status": status, "etcd": etcdOK, "replica": replicaID, "version": version, "switches": sw})
	})
	nbCfg, err := northboundConfig(cfg, log)
	if err != nil {
		return err
	}
	// The Neutron API takes every other path; /healthz, /metrics and
	// /cluster/ are more specific and win.
	mux.Handle("/", northbound.NewHandler(st, nbCfg))
	// Every server bounds how long a client may take to send headers and
	// body and to read the answer, and how long an idle keep-alive lives:
	// a slow or silent client cannot pin a goroutine and a socket. The
	// heartbeat stream lifts its own deadlines (see cluster).
	var servers []*http.Server
	listen := func(name, addr string, h http.Handler) (net.Addr, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("controller: %s listen on %s: %w", name, addr, err)
		}
		hs := newHTTPServer(ctx, cfg, h)
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(name+" server failed", "err", err)
				stop()
			}
		}()
		return ln.Addr(), nil
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, hs := range servers {
			hs.Shutdown(sctx)
		}
	}()
	if cfg.Cluster.Listen != "" {
		// Heartbeats on a listener of their own: API load (connections,
		// slow clients, a full accept queue) cannot starve them.
		if _, err := listen("cluster", cfg.Cluster.Listen, clusterMux); err != nil {
			return err
		}
	}
	switch cfg.API.Metrics {
	case "api", "off":
	default:
		mm := http.NewServeMux()
		mm.Handle("/metrics", m.Handler())
		if _, err := listen("metrics", cfg.API.Metrics, mm); err != nil {
			return err
		}
	}
	apiAddr, err := listen("api", cfg.API.Listen, mux)
	if err != nil {
		return err
	}
	log.Info("nimbus controller started", "replica", replicaID, "openflow", ofAddr.String(), "tls", srv.TLS != nil, "api", apiAddr.String(), "cluster", cfg.Cluster.Listen, "metrics", cfg.API.Metrics, "version", version)
	go func() {
		if err := cl.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("cluster stopped", "err", err)
		}
	}()

	err = srv.Serve(ctx)
	log.Info("nimbus controller stopping")
	return err
}

// newHTTPServer is an HTTP server with the configured timeouts; request
// contexts end with ctx, so long-lived streams (peer heartbeats) stop at
// shutdown instead of holding it up.
func newHTTPServer(ctx context.Context, cfg *config.Config, h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: cfg.API.ReadHeaderTimeout, ReadTimeout: cfg.API.ReadTimeout,
		WriteTimeout: cfg.API.WriteTimeout, IdleTimeout: cfg.API.IdleTimeout, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
}

// etcdConfig is the store configuration for endpoints (empty: embedded).
func etcdConfig(cfg *config.Config, endpoints []string, log *slog.Logger) store.Config {
	return store.Config{Endpoints: endpoints, DataDir: cfg.Etcd.DataDir,
		EmbedClientURL: cfg.Etcd.EmbedClientURL, EmbedPeerURL: cfg.Etcd.EmbedPeerURL, DialTimeout: cfg.Etcd.DialTimeout,
		AutoCompactionMode: cfg.Etcd.AutoCompactionMode, AutoCompactionRetention: cfg.Etcd.AutoCompactionRetention,
		CertFile: cfg.Etcd.TLS.Cert, KeyFile: cfg.Etcd.TLS.Key, CAFile: cfg.Etcd.TLS.CA,
		Username: cfg.Etcd.Username, Password: cfg.Etcd.Password, Logger: log}
}

// loopbackIfUnspecified turns ":9696" or "0.0.0.0:9696" into
// "127.0.0.1:9696" for advertising.
func loopbackIfUnspecified(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// status prints the cluster status from a replica's API.
func status(args []string) error {
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	api := fs.String("api", "127.0.0.1:9696", "API (or cluster.listen) address of any replica")
	asJSON := fs.Bool("json", false, "print JSON")
	config.Flags(fs) // the cluster secret: cluster.secret, or read from etcd.* like serve
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(fs, os.Environ())
	if err != nil {
		return err
	}
	secret, err := readClusterSecret(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+*api+cluster.StatusPath, nil)
	if err != nil {
		return fmt.Errorf("controller: status: %w", err)
	}
	cluster.Authorize(req, secret)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("controller: status: %w", err)
	}
	defer resp.Body.Close()
	var st cluster.Status
	if resp.StatusCode != http.StatusOK {
		var e map[string]string
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("controller: status: %s: %s", resp.Status, e["error"])
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("controller: status: %w", err)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("REPLICA\tHEALTH\tAPI\tOPENFLOW\tMASTERS\n")
	for _, r := range st.Replicas {
		h := "healthy"
		if !r.Healthy {
			h = "down"
		}
		fmt.Printf("%s\t%s\t%s\t%s\t%d\n", r.ID, h, r.API, r.OpenFlow, len(r.Mastered))
	}
	fmt.Printf("\nSWITCH\tMASTER\tGENERATION\tCONNECTED\n")
	for _, s := range st.Switches {
		fmt.Printf("%s\t%s\t%d\t%s\n", s.DPID, s.Master, s.Generation, strings.Join(s.Connected, ","))
	}
	return nil
}

// readClusterSecret is cluster.secret, or else the secret the replicas
// keep in etcd (etcd.endpoints, or the embedded etcd's client URL).
func readClusterSecret(cfg *config.Config) ([]byte, error) {
	if cfg.Cluster.Secret != "" {
		return []byte(cfg.Cluster.Secret), nil
	}
	eps := cfg.Etcd.Endpoints
	if len(eps) == 0 {
		eps = []string{cfg.Etcd.EmbedClientURL}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Etcd.DialTimeout)
	defer cancel()
	st, err := store.Open(ctx, etcdConfig(cfg, eps, slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	resp, err := st.Client().Get(ctx, store.Prefix+"secrets/cluster")
	if err != nil {
		return nil, fmt.Errorf("controller: reading the cluster secret from etcd %v (or set cluster.secret): %w", eps, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("controller: no cluster secret in etcd %v yet (has a replica started?)", eps)
	}
	return resp.Kvs[0].Value, nil
}

// northboundConfig maps configuration to the Neutron API's settings.
func northboundConfig(cfg *config.Config, log *slog.Logger) (northbound.Config, error) {
	nc := northbound.Config{Auth: cfg.API.Auth, KeystoneURL: cfg.API.KeystoneURL, ServiceToken: cfg.API.ServiceToken,
		DefaultProject: cfg.API.DefaultProject, TenantNetworkType: cfg.Network.TenantNetworkType, GlobalMTU: cfg.Network.MTU, Logger: log,
		MaxSubnetHostRoutes: cfg.API.MaxSubnetHostRoutes, MaxDNSNameservers: cfg.API.MaxDNSNameservers,
		MaxFixedIPsPerPort: cfg.API.MaxFixedIPsPerPort, MaxAllowedAddressPairs: cfg.API.MaxAllowedAddressPairs}
	for _, r := range cfg.Network.VLANRanges {
		var v northbound.VLANRange
		parts := strings.Split(r, ":")
		if len(parts) != 3 {
			return nc, fmt.Errorf("controller: network.vlan_ranges entry %q is not physnet:min:max", r)
		}
		v.PhysicalNetwork = parts[0]
		if _, err := fmt.Sscanf(parts[1]+" "+parts[2], "%d %d", &v.Min, &v.Max); err != nil || v.Min < 1 || v.Max > 4094 || v.Min > v.Max {
			return nc, fmt.Errorf("controller: network.vlan_ranges entry %q: need 1 <= min <= max <= 4094", r)
		}
		nc.VLANRanges = append(nc.VLANRanges, v)
	}
	for _, r := range cfg.Network.GRERanges {
		var g northbound.IDRange
		if _, err := fmt.Sscanf(r, "%d:%d", &g.Min, &g.Max); err != nil || g.Min < 1 || g.Min > g.Max {
			return nc, fmt.Errorf("controller: network.gre_ranges entry %q is not min:max", r)
		}
		nc.GRERanges = append(nc.GRERanges, g)
	}
	return nc, nil
}

// nodeAgent runs on a hypervisor: it creates the integration bridge,
// points it at every controller replica, registers the chassis in etcd
// and keeps one GRE port per peer chassis.
func nodeAgent(args []string) error {
	fs := pflag.NewFlagSet("node", pflag.ContinueOnError)
	host, _ := os.Hostname()
	chassis := fs.String("chassis", host, "this hypervisor's chassis name")
	tunnelIP := fs.String("tunnel-ip", "", "underlay IP peers send GRE to (required)")
	bridge := fs.String("bridge", "br-int", "integration bridge")
	dpType := fs.String("datapath-type", "", "datapath type of the bridges (netdev for the userspace datapath)")
	controllers := fs.StringSlice("controllers", []string{"tcp:127.0.0.1:6653"}, "OpenFlow targets of every controller replica")
	mappings := fs.String("bridge-mappings", "", "physical network mappings, physnet1:br-phy,...")
	endpoints := fs.StringSlice("etcd-endpoints", nil, "etcd cluster endpoints (required)")
	etcdCert := fs.String("etcd-tls-cert", "", "etcd client certificate (its CN is the etcd user with etcd client-cert auth)")
	etcdKey := fs.String("etcd-tls-key", "", "etcd client key")
	etcdCA := fs.String("etcd-tls-ca", "", "CA of the etcd servers")
	etcdUser := fs.String("etcd-username", "", "etcd user (see controller etcd-roles); the password comes from NIMBUS_ETCD_PASSWORD or --etcd-password-file")
	etcdPassFile := fs.String("etcd-password-file", "", "file holding the etcd user's password")
	etcdDial := fs.Duration("etcd-dial-timeout", 5*time.Second, "etcd connection timeout")
	resync := fs.Duration("resync", 30*time.Second, "re-read OVS and repair drift this often")
	ifacePoll := fs.Duration("iface-poll", time.Second, "re-read br-int's external_ids:iface-id this often and publish changes in the chassis record")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	snatBits := fs.Int("snat-block-bits", snatlease.DefaultBits, "log2 of the SNAT port blocks this hypervisor leases (6-15; 10 = 1024 ports)")
	snatTTL := fs.Int("snat-lease-ttl", snatlease.DefaultTTL, "TTL in seconds of the etcd lease holding this hypervisor's SNAT blocks and external IPs")
	lbConnInterval := fs.Duration("lb-conn-interval", 10*time.Second, "count this hypervisor's load balancer connections per VIP (a conntrack dump) and publish them this often, for the pools' active_connections (negative: off)")
	metricsListen := fs.String("metrics-listen", "", "serve the agent's /metrics (SNAT exhaustion drops, LBaaS health monitor probes) here, e.g. 127.0.0.1:9101 (empty: off)")
	lbProbes := fs.Bool("lb-probes", true, "run the LBaaS health monitors of the pool members on this chassis (lbprobe: needs ip, ethtool and ovs-vsctl)")
	lbProbeNS := fs.String("lb-probe-netns-prefix", "nlbp", "name prefix of the health probe namespaces (one per VIP with a monitored member here)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if *tunnelIP == "" {
		return errors.New("controller node: --tunnel-ip is required")
	}
	if len(*endpoints) == 0 {
		return errors.New("controller node: --etcd-endpoints is required (the agent must share the controllers' etcd)")
	}
	maps, err := node.ParseMappings(*mappings)
	if err != nil {
		return err
	}
	// The agent's logger names the chassis and bridge itself; the
	// store's and the prober's name the chassis here.
	base := newLogger(*level, "text")
	log := base.With("chassis", *chassis)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	password := os.Getenv("NIMBUS_ETCD_PASSWORD")
	if *etcdPassFile != "" {
		b, err := os.ReadFile(*etcdPassFile)
		if err != nil {
			return fmt.Errorf("controller node: etcd password: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	if (*etcdCert == "") != (*etcdKey == "") {
		return errors.New("controller node: --etcd-tls-cert and --etcd-tls-key go together")
	}
	st, err := store.Open(ctx, store.Config{Endpoints: *endpoints, CertFile: *etcdCert, KeyFile: *etcdKey, CAFile: *etcdCA,
		Username: *etcdUser, Password: password, DialTimeout: *etcdDial, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	var onSnap func(context.Context, *model.Snapshot, map[string]string)
	var probeStats func() lbprobe.Stats
	if *lbProbes {
		pr := lbprobe.New(lbprobe.Config{Chassis: *chassis, Bridge: *bridge, NetnsPrefix: *lbProbeNS, Statuses: lbprobe.StoreStatuses{S: st}, Logger: log})
		onSnap, probeStats = pr.Update, pr.Stats
	}
	a, err := node.New(node.Config{Chassis: *chassis, TunnelIP: *tunnelIP, Bridge: *bridge, DatapathType: *dpType,
		Controllers: *controllers, Mappings: maps, Store: st, Resync: *resync, IfacePoll: *ifacePoll, OnSnapshot: onSnap, Logger: base,
		SNATBlockBits: *snatBits, SNATLeaseTTL: *snatTTL, LBConnInterval: *lbConnInterval})
	if err != nil {
		return err
	}
	if *metricsListen != "" {
		ln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("controller node: metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.NodeHandler(metrics.NodeSources{SNATDrops: a.SNATExhaustionDrops, Probes: probeStats}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		log.Info("node metrics listening", "addr", ln.Addr().String())
	}
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
