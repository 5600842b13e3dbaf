// Command parley-server is Parley's one binary: the browser client's assets
// and the relay, on an embedded store in a data directory.
//
//	parley-server -addr 127.0.0.1:8080 -data ./data
//
// Every flag can also come from the environment (PARLEY_ADDR, PARLEY_DATA,
// PARLEY_FRAME_ANCESTORS, and for the relay's limits
// PARLEY_ATTESTATION_AGE, PARLEY_BLOB_QUOTA, PARLEY_BODY_MIN_RATE,
// PARLEY_BODY_TIMEOUT, PARLEY_BYTES_IN_FLIGHT, PARLEY_DRAIN_TIMEOUT,
// PARLEY_MAILBOX_LIMIT, PARLEY_MAX_CONNECTIONS,
// PARLEY_MAX_CONNECTIONS_PER_IP, PARLEY_PREKEY_FETCHES,
// PARLEY_SOCKET_BYTES_IN_FLIGHT, PARLEY_TTL); a flag given on the command
// line wins.
//
// `parley-server compact -data ./data` rewrites a stopped server's
// database to give back the space of delivered and expired records.
// PARLEY_ORIGIN sets the public origin devices sign when they log in
// (default http:// + the listen address); PARLEY_METRICS_ADDR, if set,
// serves Prometheus metrics on a separate address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/netlimit"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(log)
	err := run(os.Args[1:], log)
	if errors.Is(err, flag.ErrHelp) {
		return // -help: the usage is printed already
	}
	if err != nil {
		log.Error("parley-server stopped", "err", err)
		os.Exit(1)
	}
}

// config is what the command line and the environment select.
type config struct {
	addr, data     string
	frameAncestors []string
	// The relay's operator limits (relayserver.Config); zero is never produced:
	// each defaults to the relay's own default.
	attestationAge, ttl, bodyTimeout, drainTimeout   time.Duration
	blobQuota, bodyMinRate, inFlight, socketInFlight int64
	mailboxLimit, maxConn, maxConnIP, prekeyFetches  int
}

// fdReserve is how many file descriptors the connection cap leaves for
// everything else the process opens: the store, blob files being written,
// the metrics listener, a connection being refused. Under a small limit a
// quarter of it is kept instead.
const fdReserve = 1024

// descriptorLimit is the process's file-descriptor limit (Go has raised the
// soft limit to the hard one at start), or 0 if it cannot be read.
func descriptorLimit() int64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur > math.MaxInt32 {
		return 0
	}
	return int64(rl.Cur)
}

// connectionRoom is how many connections a descriptor limit leaves room
// for once the reserve is kept.
func connectionRoom(limit int64) int64 { return max(1, limit-min(fdReserve, limit/4)) }

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
	attest := fs.String("attestation-age", or("PARLEY_ATTESTATION_AGE", relay.DefaultAttestationAge.String()),
		"companions the primary has not re-attested for this long are retired (env PARLEY_ATTESTATION_AGE)")
	ttl := fs.String("ttl", or("PARLEY_TTL", relayserver.DefaultTTL.String()),
		"how long an undelivered envelope is kept, at most "+relayserver.DefaultTTL.String()+" (env PARLEY_TTL)")
	quota := fs.String("blob-quota", or("PARLEY_BLOB_QUOTA", strconv.FormatInt(relayserver.DefaultBlobQuota, 10)),
		"bytes of unexpired blobs one account may store (env PARLEY_BLOB_QUOTA)")
	mbox := fs.String("mailbox-limit", or("PARLEY_MAILBOX_LIMIT", strconv.Itoa(relayserver.DefaultMailboxLimit)),
		"envelopes queued per device before sends to it are refused (env PARLEY_MAILBOX_LIMIT)")
	// Every connection is a descriptor: the default cap stays under the
	// limit, with the reserve left for the rest.
	maxConn := int64(relayserver.DefaultMaxConnections)
	fdLimit := descriptorLimit()
	if fdLimit > 0 {
		maxConn = min(maxConn, connectionRoom(fdLimit))
	}
	conns := fs.String("max-connections", or("PARLEY_MAX_CONNECTIONS", strconv.FormatInt(maxConn, 10)),
		"connections open at once, of every kind (device sockets, requests, long-polls); below the descriptor limit (env PARLEY_MAX_CONNECTIONS)")
	connsIP := fs.String("max-connections-per-ip", or("PARLEY_MAX_CONNECTIONS_PER_IP", strconv.Itoa(relayserver.DefaultMaxConnectionsPerIP)),
		"connections open at once from one IPv4 address or IPv6 /64 (env PARLEY_MAX_CONNECTIONS_PER_IP)")
	bodyTimeout := fs.String("body-timeout", or("PARLEY_BODY_TIMEOUT", relayserver.DefaultBodyTimeout.String()),
		"time a request body may take before its bytes count against -body-min-rate (env PARLEY_BODY_TIMEOUT)")
	bodyRate := fs.String("body-min-rate", or("PARLEY_BODY_MIN_RATE", strconv.Itoa(relayserver.DefaultBodyMinRate)),
		"bytes per second a request body must average after -body-timeout, or the request is cut (env PARLEY_BODY_MIN_RATE)")
	inFlight := fs.String("bytes-in-flight", or("PARLEY_BYTES_IN_FLIGHT", strconv.Itoa(relayserver.DefaultBytesInFlight)),
		"envelope bytes read for writing and not yet written, all sockets together (env PARLEY_BYTES_IN_FLIGHT)")
	socketInFlight := fs.String("socket-bytes-in-flight", or("PARLEY_SOCKET_BYTES_IN_FLIGHT", strconv.Itoa(relayserver.DefaultSocketBytesInFlight)),
		"envelope bytes one socket's page holds, at least one envelope of the largest size (env PARLEY_SOCKET_BYTES_IN_FLIGHT)")
	drain := fs.String("drain-timeout", or("PARLEY_DRAIN_TIMEOUT", relayserver.DefaultDrainTimeout.String()),
		"time a socket has to take one page of envelopes before it is closed (env PARLEY_DRAIN_TIMEOUT)")
	fetches := fs.String("prekey-fetches", or("PARLEY_PREKEY_FETCHES", strconv.Itoa(relayserver.DefaultPrekeyFetches)),
		"fetches, from anyone, that may take one device's one-time prekeys in a burst (env PARLEY_PREKEY_FETCHES)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c := config{addr: *addr, data: *data, frameAncestors: strings.Fields(*frames)}
	var err error
	duration := func(name, v string, max time.Duration) time.Duration {
		d, perr := time.ParseDuration(v)
		if err == nil && (perr != nil || d <= 0 || (max > 0 && d > max)) {
			err = fmt.Errorf("-%s: want a positive duration such as 720h, at most %v, got %q", name, max, v)
		}
		return d
	}
	positive := func(name, v string) int64 {
		n, perr := strconv.ParseInt(v, 10, 64)
		if err == nil && (perr != nil || n <= 0 || n > math.MaxInt32) {
			err = fmt.Errorf("-%s: want a positive whole number, got %q", name, v)
		}
		return n
	}
	c.attestationAge = duration("attestation-age", *attest, 0)
	c.ttl = duration("ttl", *ttl, relayserver.DefaultTTL)
	c.mailboxLimit = int(positive("mailbox-limit", *mbox))
	c.maxConn = int(positive("max-connections", *conns))
	c.maxConnIP = int(positive("max-connections-per-ip", *connsIP))
	c.bodyTimeout = duration("body-timeout", *bodyTimeout, 0)
	c.bodyMinRate = positive("body-min-rate", *bodyRate)
	c.inFlight = positive("bytes-in-flight", *inFlight)
	c.socketInFlight = positive("socket-bytes-in-flight", *socketInFlight)
	c.drainTimeout = duration("drain-timeout", *drain, 0)
	if err == nil && fdLimit > 0 && int64(c.maxConn) > connectionRoom(fdLimit) {
		err = fmt.Errorf("-max-connections %d: the descriptor limit is %d, and %d of them are kept for the store and the rest; lower it or raise the limit (ulimit -n)",
			c.maxConn, fdLimit, fdLimit-connectionRoom(fdLimit))
	}
	c.prekeyFetches = int(positive("prekey-fetches", *fetches))
	if q, perr := strconv.ParseInt(*quota, 10, 64); err == nil && (perr != nil || q <= 0) {
		err = fmt.Errorf("-blob-quota: want a positive number of bytes, got %q", *quota)
	} else {
		c.blobQuota = q
	}
	return c, err
}

func run(args []string, log *slog.Logger) error {
	if len(args) > 0 && args[0] == "compact" { // compact.go
		return compact(args[1:], log)
	}
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The relay's origin is what devices sign in their login answers;
	// behind a proxy or TLS terminator set PARLEY_ORIGIN to the public one.
	return serve(ctx, cfg, ln, os.Getenv("PARLEY_ORIGIN"), log)
}

// serve runs the server on ln until ctx is done. origin defaults to
// http:// + ln's address.
func serve(ctx context.Context, cfg config, ln net.Listener, origin string, log *slog.Logger) error {
	defer ln.Close()
	st, err := store.Open(cfg.data)
	if err != nil {
		return err
	}
	defer st.Close()
	if origin == "" {
		origin = "http://" + ln.Addr().String()
	}
	rl, err := relayserver.New(st, relayserver.Config{
		Origin: origin, Logger: log,
		AttestationAge: cfg.attestationAge, DefaultTTL: cfg.ttl, BlobQuota: cfg.blobQuota,
		MailboxLimit: cfg.mailboxLimit, MaxConnections: cfg.maxConn,
		BodyTimeout: cfg.bodyTimeout, BodyMinRate: cfg.bodyMinRate,
		BytesInFlight: cfg.inFlight, SocketBytesInFlight: cfg.socketInFlight, DrainTimeout: cfg.drainTimeout,
		PrekeyFetches: cfg.prekeyFetches,
	})
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
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	log.Info("parley-server listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/", "data", cfg.data)
	// The relay closes as soon as shutdown starts, alongside
	// http.Server.Shutdown rather than after it: Shutdown waits for
	// in-flight requests, link long-polls (up to 25 s) among them, and
	// those end only when the relay closes; device sockets would hear
	// going-away only once Shutdown gave up. Serve returns after both.
	relayClosed := make(chan struct{})
	go func() {
		defer close(relayClosed)
		<-ctx.Done()
		cctx, cancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
		defer cancel()
		_ = rl.Close(cctx)
	}()
	// Every connection counts against the caps, WebSockets included (a
	// hijacked connection keeps its place until it is closed).
	capped := netlimit.Listen(ln, cfg.maxConn, cfg.maxConnIP)
	err = server.Serve(ctx, capped, srv, func(context.Context) { <-relayClosed })
	// If Serve failed on its own, close the relay before the store too.
	stop()
	<-relayClosed
	log.Info("parley-server stopped gracefully")
	return err
}
