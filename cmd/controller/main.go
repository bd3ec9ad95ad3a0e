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
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/config"
	"github.com/nimbus-sdn/nimbus/metrics"
	"github.com/nimbus-sdn/nimbus/ofproto"
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
	case "version":
		fmt.Println("nimbus", version)
	case "help":
		fmt.Println("usage: controller [serve|version] [flags]; controller serve --help lists the flags")
	default:
		err = fmt.Errorf("controller: unknown command %q (want serve or version)", cmd)
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
	apps := []app.App{learning.New(learning.Config{IdleTimeout: uint16(cfg.Learning.IdleTimeout)})}
	mgr := switches.New(ctx, switches.Config{Apps: apps, ReconcileInterval: cfg.Reconcile.Interval, Metrics: m, Logger: log})

	srv := &ofproto.Server{Addr: cfg.OpenFlow.Listen, Session: mgr, Logger: log,
		Conn: ofproto.Config{EchoInterval: cfg.OpenFlow.EchoInterval, DeadAfter: cfg.OpenFlow.DeadAfter}}
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
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		dpids := mgr.Connected()
		sort.Slice(dpids, func(i, j int) bool { return dpids[i] < dpids[j] })
		sw := make([]string, len(dpids))
		for i, d := range dpids {
			sw[i] = ofproto.DPIDString(d)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "version": version, "switches": sw})
	})
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("controller: api listen on %s: %w", cfg.API.Listen, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server failed", "err", err)
			stop()
		}
	}()
	log.Info("nimbus controller started", "openflow", ofAddr.String(), "tls", srv.TLS != nil, "api", ln.Addr().String(), "version", version)

	err = srv.Serve(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	log.Info("nimbus controller stopped")
	return err
}
