// Package e2e drives real Chromium against a real Parley server, for the
// browser tests of every issue: the server runs in-process on 127.0.0.1
// with a temporary data directory, and each Browser is a separate Chromium
// process with its own profile (--user-data-dir), so a test can run several
// independent users at once and restart a browser on the same profile to
// test persistence.
//
// Any console error or uncaught exception on any page fails the test.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley"
	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// Timeouts for browser work. Chromium starts in about a second here; the
// margins absorb a loaded two-core CI machine.
const (
	browserStartTimeout = 60 * time.Second
	actionTimeout       = 30 * time.Second
)

// Server is a Parley server on a loopback port.
type Server struct {
	URL     string
	DataDir string
	Store   *store.Store
}

// StartServer runs the real server (embedded assets, store on a temp dir)
// until the test ends. It fails at once, with the fix, when the wasm has
// not been built.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if _, err := fs.Stat(parley.Assets, "web/dist/parley.wasm"); err != nil {
		t.Fatalf("the wasm client is not built into this binary: run `make wasm` (make test does) before the e2e tests")
	}
	return startServer(t, parley.Assets)
}

func startServer(t testing.TB, assets fs.FS) *Server {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, stop := serve(t, ln, dir, serverOptions{Assets: assets})
	t.Cleanup(stop)
	return &Server{URL: "http://" + ln.Addr().String(), DataDir: dir, Store: st}
}

// serverOptions are what a test may change in the server serve runs.
type serverOptions struct {
	// Assets are the files the server serves; nil is the embedded build.
	Assets fs.FS
	// FrameAncestors are the origins allowed to embed the client.
	FrameAncestors []string
	// Wrap, if set, wraps the relay handler (to play a lying relay).
	Wrap func(http.Handler) http.Handler
}

// serve runs the real server on ln, its relay's store in dir, until stop.
func serve(t testing.TB, ln net.Listener, dir string, opts serverOptions) (st *store.Store, stop func()) {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Assets == nil {
		opts.Assets = parley.Assets
	}
	origin := "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The relay signs logins to this origin, the one the pages load from.
	// Several browsers on one loopback address share the per-IP budget,
	// so it is raised as in the relay's own tests.
	rl, err := relayserver.New(st, relayserver.Config{Origin: origin, Logger: log, IPRate: 1e4, IPBurst: 1e4, RegisterRate: 1e3, RegisterBurst: 1e3})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = rl.Handler()
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	srv, err := server.New(server.Config{
		Assets:         opts.Assets,
		Relay:          h,
		Health:         st.Ping,
		Logger:         log,
		FrameAncestors: opts.FrameAncestors,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The relay closes alongside Shutdown, as parley-server does: a link
	// long-poll in flight (a browser waiting to be linked) ends only when
	// the relay closes, and Shutdown would wait ShutdownTimeout for it.
	relayClosed := make(chan struct{})
	go func() {
		defer close(relayClosed)
		<-ctx.Done()
		cctx, ccancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
		defer ccancel()
		_ = rl.Close(cctx)
	}()
	go func() { done <- server.Serve(ctx, ln, srv, func(context.Context) { <-relayClosed }) }()
	return st, func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server shutdown: %v", err)
		}
		st.Close()
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// chromiumPath finds Debian's chromium (or PARLEY_CHROMIUM). The browser
// tests never skip: a missing browser is a failed test with the fix.
func chromiumPath(t testing.TB) string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("Chromium is not installed: run `make chromium` (as root it installs Debian's chromium) or set PARLEY_CHROMIUM")
	return ""
}

// Browser is one Chromium process on one profile directory.
type Browser struct {
	t       testing.TB
	Profile string

	allocCancel context.CancelFunc
	ctx         context.Context // browser context (first tab)
	cancel      context.CancelFunc

	mu     sync.Mutex
	errors []string
}

// NewBrowser starts Chromium on a fresh profile.
func NewBrowser(t testing.TB) *Browser {
	return OpenBrowser(t, t.TempDir())
}

// OpenBrowser starts Chromium on the given profile directory; reusing a
// directory after Close is a browser restart.
func OpenBrowser(t testing.TB, profile string) *Browser {
	t.Helper()
	b := &Browser{t: t, Profile: profile}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-default-browser-check", true),
	}
	opts = append(chromedp.DefaultExecAllocatorOptions[:], opts...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first action starts the browser and ties its lifetime to the
	// context it is given, so it must get ctx itself, not a timeout child.
	timer := time.AfterFunc(browserStartTimeout, cancel)
	err := chromedp.Do(ctx)
	timer.Stop()
	if err != nil {
		cancel()
		acancel()
		t.Fatalf("start chromium on %s: %v", profile, err)
	}
	b.allocCancel, b.ctx, b.cancel = acancel, ctx, cancel
	b.watchConsole(ctx)
	t.Cleanup(b.Close)
	return b
}

// watchConsole records console errors and uncaught exceptions of a tab.
func (b *Browser) watchConsole(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Chromium asks for /favicon.ico on pages without an icon link
			// (tests open /web/icon.svg to reach the origin's storage with no
			// client running); that 404 is not the client's error.
			if strings.HasSuffix(m.URL, "/favicon.ico") {
				continue
			}
			if os.Getenv("PARLEY_E2E_CONSOLE") != "" {
				b.t.Logf("console %s (%s): %s", m.Type, filepath.Base(b.Profile), m.Text)
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
}

// Close stops the browser process (all tabs) and fails the test if any page
// logged an error. Close waits for Chromium to exit, so the profile can be
// reopened at once.
func (b *Browser) Close() {
	if b.cancel == nil {
		return
	}
	// A graceful close lets Chromium flush IndexedDB and release the
	// profile, as when a user quits the browser; a restart can then reuse
	// the profile at once.
	if err := chromedp.Cancel(b.ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.t.Logf("close chromium: %v", err)
	}
	b.cancel()
	b.allocCancel()
	b.cancel = nil
	b.CheckConsole()
}

// Kill ends the browser process at once (SIGKILL), as a crash would:
// nothing is flushed or closed. Reopening its profile with OpenBrowser is a
// restart after a crash.
func (b *Browser) Kill() {
	b.t.Helper()
	if b.cancel == nil {
		return
	}
	if c := chromedp.FromContext(b.ctx); c != nil && c.Browser != nil {
		if p := c.Browser.Process(); p != nil {
			if err := p.Kill(); err != nil {
				b.t.Logf("kill chromium: %v", err)
			}
		}
	}
	b.cancel()
	b.allocCancel() // waits for the process to be gone
	b.cancel = nil
}

// CheckConsole fails the test if any console error or exception was seen.
func (b *Browser) CheckConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("browser console (%s): %s", filepath.Base(b.Profile), e)
	}
	b.errors = nil
}

// AllowConsoleErrors clears errors recorded so far, for tests that provoke
// an error on purpose; it returns them so the test can assert on them.
func (b *Browser) AllowConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

// Do runs actions in the browser's tab with the standard timeout.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Navigate loads url and fails the test on error.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	if err := b.Do(chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigate %s: %v", url, err)
	}
}

// Eval evaluates a JS expression in the page, awaiting it if it is a
// promise, and decodes the result into T.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// MustEval is Eval that fails the test on error.
func MustEval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := Eval[T](b, expr)
	if err != nil {
		b.t.Fatalf("eval %q: %v", abbreviate(expr), err)
	}
	return v
}

// Screenshot saves a PNG of the page to path (for people reviewing a run).
func (b *Browser) Screenshot(path string) error {
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// ScreenshotDir is where tests save screenshots: $PARLEY_SCREENSHOTS if set
// (to look at a run), else a temporary directory.
func ScreenshotDir(t testing.TB) string {
	if d := os.Getenv("PARLEY_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// NativeDevice starts a native engine (Go crypto, memory store) with a new
// account handle on srv's relay, running until the test ends: a peer for
// the browsers that is not another Chromium.
func NativeDevice(t testing.TB, srv *Server, handle string) *client.Engine {
	t.Helper()
	ctx, cancel, e := openNative(t, srv)
	if err := e.CreateAccount(ctx, handle, handle+"'s server"); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// openNative opens a native engine with no account on srv's relay; cancel
// ends its context.
func openNative(t testing.TB, srv *Server) (context.Context, context.CancelFunc, *client.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := client.Open(ctx, client.Config{Store: memstore.New(), Relay: client.NewRelay(srv.URL)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return ctx, cancel, e
}
