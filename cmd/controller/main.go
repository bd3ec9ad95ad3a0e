// Command controller is the Nimbus SDN controller.
//
//	controller serve    run the controller (default)
//	controller version  print the version
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
	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/cluster"
	"github.com/nimbus-sdn/nimbus/config"
	"github.com/nimbus-sdn/nimbus/metrics"
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
	case "version":
		fmt.Println("nimbus", version)
	case "help":
		fmt.Println("usage: controller [serve|status|node|version] [flags]; controller serve --help lists the flags")
	default:
		err = fmt.Errorf("controller: unknown command %q (want serve, status, node or version)", cmd)
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
	st, err := store.Open(ctx, store.Config{Endpoints: cfg.Etcd.Endpoints, DataDir: cfg.Etcd.DataDir,
		EmbedClientURL: cfg.Etcd.EmbedClientURL, EmbedPeerURL: cfg.Etcd.EmbedPeerURL, DialTimeout: cfg.Etcd.DialTimeout,
		AutoCompactionMode: cfg.Etcd.AutoCompactionMode, AutoCompactionRetention: cfg.Etcd.AutoCompactionRetention,
		CertFile: cfg.Etcd.TLS.Cert, KeyFile: cfg.Etcd.TLS.Key, CAFile: cfg.Etcd.TLS.CA, Logger: log})
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
		host, port, _ := net.SplitHostPort(cfg.API.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		advertise = net.JoinHostPort(host, port)
	}
	cl := cluster.New(st.Client(), cluster.Config{ReplicaID: replicaID, APIAddr: advertise, OpenFlowAddr: cfg.OpenFlow.Listen,
		LeaseTTL: cfg.Cluster.LeaseTTL, PeerTimeout: cfg.Cluster.PeerTimeout, Settle: cfg.Cluster.Settle, Logger: log})

	apps := []app.App{
		learning.New(learning.Config{IdleTimeout: uint16(cfg.Learning.IdleTimeout)}),
		isolation.New(isolation.Config{}),
	}
	// The LLDP key is shared by every replica through etcd, so any
	// replica verifies frames another one sent.
	lldpKey, err := st.Secret(ctx, "lldp")
	if err != nil {
		return fmt.Errorf("controller: LLDP key: %w", err)
	}
	mgr := switches.New(ctx, switches.Config{Apps: apps, ReconcileInterval: cfg.Reconcile.Interval, Metrics: m, Logger: log,
		Model: mirror.Snapshot, Cluster: cl, LLDPInterval: cfg.Topology.LLDPInterval, LinkTimeout: cfg.Topology.LinkTimeout, Links: st,
		LLDPKey: lldpKey})
	go func() {
		ch := mirror.Subscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				mgr.RefreshAll()
			}
		}
	}()

	srv := &ofproto.Server{Addr: cfg.OpenFlow.Listen, Session: mgr, Logger: log, Observer: m,
		MaxConns: cfg.OpenFlow.MaxConns, MaxConnsPerAddr: cfg.OpenFlow.MaxConnsPerAddr, DupProbe: cfg.OpenFlow.DuplicateProbe,
		BindDPID: cfg.OpenFlow.TLS.BindDPID, ChassisOf: mgr.ChassisOwner,
		Conn: ofproto.Config{EchoInterval: cfg.OpenFlow.EchoInterval, DeadAfter: cfg.OpenFlow.DeadAfter,
			HandshakeTimeout: cfg.OpenFlow.HandshakeTimeout, RequestTimeout: cfg.OpenFlow.RequestTimeout,
			MaxMultipartBytes: cfg.OpenFlow.MaxMultipartBytes, MaxMultipartParts: cfg.OpenFlow.MaxMultipartParts}}
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

	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc(cluster.HeartbeatPath, cl.HeartbeatHandler())
	mux.HandleFunc(cluster.StatusPath, cl.StatusHandler())
	mux.HandleFunc("/cluster/v1/local", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		for _, d := range mgr.Connected() {
			master, since := mgr.MasterSince(d)
			out[ofproto.DPIDString(d)] = map[string]any{"master": master, "since": since.UTC().Format(time.RFC3339Nano)}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"replica": replicaID, "switches": out})
	})
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
		if _, err := st.Client().Get(hctx, "health"); err != nil {
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
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("controller: api listen on %s: %w", cfg.API.Listen, err)
	}
	// Request contexts end with ctx, so long-lived streams (peer
	// heartbeats) stop at shutdown instead of holding it up.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server failed", "err", err)
			stop()
		}
	}()
	log.Info("nimbus controller started", "replica", replicaID, "openflow", ofAddr.String(), "tls", srv.TLS != nil, "api", ln.Addr().String(), "version", version)
	go func() {
		if err := cl.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("cluster stopped", "err", err)
		}
	}()

	err = srv.Serve(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	log.Info("nimbus controller stopped")
	return err
}

// status prints the cluster status from a replica's API.
func status(args []string) error {
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	api := fs.String("api", "127.0.0.1:9696", "API address of any replica")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + *api + cluster.StatusPath)
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
	resync := fs.Duration("resync", 30*time.Second, "re-read OVS and repair drift this often")
	ifacePoll := fs.Duration("iface-poll", time.Second, "re-read br-int's external_ids:iface-id this often and publish changes in the chassis record")
	level := fs.String("log-level", "info", "debug, info, warn or error")
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
	log := newLogger(*level, "text").With("chassis", *chassis)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, store.Config{Endpoints: *endpoints, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := node.New(node.Config{Chassis: *chassis, TunnelIP: *tunnelIP, Bridge: *bridge, DatapathType: *dpType,
		Controllers: *controllers, Mappings: maps, Store: st, Resync: *resync, IfacePoll: *ifacePoll, Logger: log})
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
