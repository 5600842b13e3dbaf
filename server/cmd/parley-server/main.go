// Command parley-server is Parley's one binary: the browser client's assets
// and the relay, on an embedded store in a data directory.
//
//	parley-server -addr 127.0.0.1:8080 -data ./data
//
// Every flag can also come from the environment (PARLEY_ADDR, PARLEY_DATA,
// PARLEY_FRAME_ANCESTORS); a flag given on the command line wins.
// PARLEY_ORIGIN sets the public origin devices sign when they log in
// (default http:// + the listen address); PARLEY_METRICS_ADDR, if set,
// serves Prometheus metrics on a separate address.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parley-im/parley"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/relay"
	"github.com/parley-im/parley/server/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if err := run(os.Args[1:], log); err != nil {
		log.Error("parley-server stopped", "err", err)
		os.Exit(1)
	}
}

// config is what the command line and the environment select.
type config struct {
	addr, data     string
	frameAncestors []string
}

// parseConfig reads flags over environment over defaults, so `make run
// ADDR=... DATA=...`, the flags and PARLEY_* variables all work the same.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	or := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("parley-server", flag.ContinueOnError)
	addr := fs.String("addr", or("PARLEY_ADDR", "127.0.0.1:8080"), "listen address (env PARLEY_ADDR)")
	data := fs.String("data", or("PARLEY_DATA", "data"), "data directory for the embedded store (env PARLEY_DATA)")
	frames := fs.String("frame-ancestors", or("PARLEY_FRAME_ANCESTORS", ""),
		"space-separated origins allowed to embed the client in an iframe (env PARLEY_FRAME_ANCESTORS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return config{addr: *addr, data: *data, frameAncestors: strings.Fields(*frames)}, nil
}

func run(args []string, log *slog.Logger) error {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	st, err := store.Open(cfg.data)
	if err != nil {
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	// The relay's origin is what devices sign in their login answers;
	// behind a proxy or TLS terminator set PARLEY_ORIGIN to the public one.
	origin := os.Getenv("PARLEY_ORIGIN")
	if origin == "" {
		origin = "http://" + ln.Addr().String()
	}
	rl, err := relay.New(st, relay.Config{Origin: origin, Logger: log})
	if err != nil {
		return err
	}
	if m := os.Getenv("PARLEY_METRICS_ADDR"); m != "" { // Prometheus, on a private address
		go func() { log.Error("metrics listener stopped", "err", http.ListenAndServe(m, rl.Metrics())) }()
	}
	srv, err := server.New(server.Config{
		Assets:         parley.Assets,
		FrameAncestors: cfg.frameAncestors,
		Relay:          rl.Handler(),
		Health:         st.Ping,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("parley-server listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/", "data", cfg.data)
	err = server.Serve(ctx, ln, srv, func(ctx context.Context) { _ = rl.Close(ctx) })
	log.Info("parley-server stopped gracefully")
	return err
}
