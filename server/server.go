// Package server is Parley's one binary: it serves the browser client (the
// embedded index.html and web/) with strict security headers, answers
// /healthz, and mounts the relay under /v1/.
//
// Everything here is about delivering the client safely: a strict Content
// Security Policy with no inline script (the wasm needs only
// 'wasm-unsafe-eval'), precompressed assets chosen by Accept-Encoding, and
// cache headers that let a new build reach users at once while versioned
// assets are cached for a year.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/parley-im/parley/server/netlimit"
)

// Timeouts. Header and idle limits stop slow-loris clients from holding
// connections; there is no write timeout because the relay's WebSockets are
// long-lived (the relay bounds its own writes).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// SIGINT/SIGTERM before connections are cut.
	ShutdownTimeout = 10 * time.Second
	// maxHeaderBytes is far above what a browser sends and far below what
	// would let a client make us buffer much.
	maxHeaderBytes = 16 << 10
)

// Config is what New needs. The zero value of every optional field is
// useful.
type Config struct {
	// Assets holds index.html and web/ (normally parley.Assets).
	Assets fs.FS
	// FrameAncestors lists the origins allowed to embed the client in an
	// iframe (CSP frame-ancestors); empty means no one may.
	FrameAncestors []string
	// Relay, if set, serves everything under /v1/.
	Relay http.Handler
	// Health, if set, is called by /healthz; an error makes it answer 503.
	Health func() error
	// Logger receives one structured line per request; nil means slog.Default.
	Logger *slog.Logger
}

// Server is the HTTP handler for the whole site.
type Server struct {
	cfg    Config
	assets assetTable
	csp    string
	mux    *http.ServeMux
	log    *slog.Logger
}

// New prepares every asset (hashes, variants) once.
func New(cfg Config) (*Server, error) {
	if cfg.Assets == nil {
		return nil, errors.New("server: Config.Assets is required")
	}
	for _, o := range cfg.FrameAncestors {
		if err := validOrigin(o); err != nil {
			return nil, err
		}
	}
	assets, err := loadAssets(cfg.Assets)
	if err != nil {
		return nil, err
	}
	if _, ok := assets["/"]; !ok {
		return nil, errors.New("server: index.html missing from assets")
	}
	s := &Server{cfg: cfg, assets: assets, csp: contentSecurityPolicy(cfg.FrameAncestors), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/healthz", s.healthz)
	if cfg.Relay != nil {
		s.mux.Handle("/v1/", cfg.Relay)
	}
	s.mux.HandleFunc("/", s.static)
	return s, nil
}

// contentSecurityPolicy allows only same-origin script, style and
// connections, wasm compilation, and blob:/data: images (decrypted
// attachments and QR codes). No inline script or style, no eval.
func contentSecurityPolicy(frameAncestors []string) string {
	fa := "'none'"
	if len(frameAncestors) > 0 {
		fa = strings.Join(frameAncestors, " ")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' 'wasm-unsafe-eval'",
		"style-src 'self'",
		"img-src 'self' blob: data:",
		"media-src 'self' blob:",
		"connect-src 'self'",
		"worker-src 'self'",
		"manifest-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors " + fa,
	}, "; ")
}

// validOrigin accepts scheme://host[:port] with http or https, nothing
// else, so a typo cannot widen the policy (e.g. a stray "*" or "'self' *").
func validOrigin(o string) error {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "https" && scheme != "http") || rest == "" ||
		strings.ContainsAny(rest, "/ ;,'*\"") {
		return fmt.Errorf("server: frame ancestor %q is not an origin like https://example.com", o)
	}
	return nil
}

// ServeHTTP sets the security headers every response carries, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), publickey-credentials-get=(self), publickey-credentials-create=(self)")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: netlimit.CloseIfBodyUnread(w, r), status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	// Paths only: query strings may carry link ids one day, and nothing
	// from a body or header is ever logged.
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Duration("duration", time.Since(start)))
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.URL.Path]
	if !ok {
		httpError(w, http.StatusNotFound, "not_found", "no such file")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "static files answer GET and HEAD only")
		return
	}
	serveAsset(w, r, a)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method_not_allowed", "healthz answers GET and HEAD only")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil {
			s.log.Error("health check failed", "err", err)
			httpError(w, http.StatusServiceUnavailable, "unhealthy", "store unavailable")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// httpError answers with the JSON error shape every Parley endpoint uses:
// {"code": "...", "message": "..."}.
func httpError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, message})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (and WebSocket hijacking) reach the
// underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Serve runs h on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish for up to ShutdownTimeout, and
// then calls onShutdown (the relay closes its sockets there) before
// returning.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, onShutdown func(context.Context)) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	// Hijacked connections (WebSockets) are not tracked by Shutdown; the
	// relay closes them itself, with a going-away code, once no new ones
	// can arrive.
	if onShutdown != nil {
		onShutdown(sctx)
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}
