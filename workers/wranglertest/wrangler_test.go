// Package wranglertest holds the Workers build to the Go relay's behaviour:
// it starts `wrangler dev --local` (workerd, offline) on a loopback port
// and runs the same tests against it and against the Go relay in-process:
// a conformance suite of native relayclient calls (codes included) and the
// engine's headline scenario (client.NewRelay).
//
// It needs `make workers` to have built the worker and npm to have
// installed wrangler; `make test-workers` does both, then runs it. It never
// skips: a missing piece fails with what to run.
package wranglertest

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/server"
)

func TestConformance(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		origin := startGoRelay(t)
		conformance(t, origin)
		t.Run("hostile HTTP", func(t *testing.T) { hostileHTTP(t, origin, false) })
	})
	t.Run("workers", func(t *testing.T) {
		w := startWrangler(t)
		conformance(t, w.origin)
		t.Run("hostile HTTP", func(t *testing.T) { hostileHTTP(t, w.origin, true) })
		t.Run("static headers", func(t *testing.T) { staticHeaders(t, w.origin) })
		t.Run("hosted calls are in-process only", func(t *testing.T) {
			res, err := http.Post(w.origin+"/_hosted/open", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("POST /_hosted/open from outside: %d, want 404", res.StatusCode)
			}
		})
	})
}

// staticHeaders compares the worker's static files with the Go server's
// answers for the same paths: the security and cache headers must match.
func staticHeaders(t *testing.T, origin string) {
	srv, err := server.New(server.Config{Assets: parley.Assets, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/web/app.js", "/web/dist/parley.wasm"} {
		want := httptest.NewRecorder()
		srv.ServeHTTP(want, httptest.NewRequest(http.MethodGet, p, nil))
		res, err := http.Get(origin + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, res.StatusCode)
			continue
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
			"Permissions-Policy", "Cross-Origin-Opener-Policy", "Cache-Control", "Content-Type"} {
			if got, w := res.Header.Get(h), want.Header().Get(h); got != w {
				t.Errorf("GET %s: %s is %q, the Go server says %q", p, h, got, w)
			}
		}
	}
}

// TestFigures measures the Workers build locally: the first request after
// start (compiling the worker's wasm), later requests (a fresh Go instance
// each), and a message round trip through two Durable Objects.
func TestFigures(t *testing.T) {
	w := startWrangler(t)
	t.Logf("first request after start (cold: compiles the worker's wasm): %s", w.cold)
	for _, c := range []struct{ what, path string }{
		{"static asset (no Go)", "/web/app.css"},
		{"/healthz (a fresh Go instance, no storage)", "/healthz"},
		{"GET account (a fresh Go instance and one D1 query)", "/v1/accounts/nobody"},
	} {
		var ds []time.Duration
		for range 20 {
			start := time.Now()
			res, err := http.Get(w.origin + c.path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			ds = append(ds, time.Since(start))
		}
		t.Logf("%s, median of 20: %s", c.what, median(ds))
	}

	alice := register(t, w.origin, fmt.Sprintf("fig-a-%x", randBytes(3)), 1)
	bob := register(t, w.origin, fmt.Sprintf("fig-b-%x", randBytes(3)), 1)
	start := time.Now()
	a := dial(t, w.origin, alice, 0)
	t.Logf("socket login (challenge, auth, ready): %s", time.Since(start))
	b := dial(t, w.origin, bob, 0)
	var ok, rt []time.Duration
	for range 10 {
		start := time.Now()
		if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
			t.Fatal(err)
		}
		ok = append(ok, time.Since(start))
		e := recv(t, b)
		rt = append(rt, time.Since(start))
		if err := b.Ack(ctx(t), e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("send to durable OK, median of 10: %s", median(ok))
	t.Logf("send to delivery on the recipient's socket, median of 10: %s", median(rt))
}

// startGoRelay runs the Go relay on a loopback port with its own store.
func startGoRelay(t *testing.T) string { return tstest.StartRelay(t, nil).Origin }

// wrangler is a running `wrangler dev --local`.
type wrangler struct {
	origin string
	cold   time.Duration // the first successful request
	dir    string        // workers/
	bin    string        // node_modules/.bin/wrangler
	state  string        // --persist-to: D1, R2 and Durable Objects
	env    []string
}

// run runs a wrangler command on the local state and returns its output.
func (w *wrangler) run(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(w.bin, append(args, "--local", "--persist-to", w.state)...)
	cmd.Dir, cmd.Env = w.dir, w.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrangler %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// workersDir is the Workers build's directory (this package's parent).
func workersDir(t *testing.T) string {
	d, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startWrangler applies the D1 migrations to a fresh local state and runs
// wrangler dev on free loopback ports until the test ends.
func startWrangler(t *testing.T) *wrangler { return startWranglerWith(t, nil) }

// startWranglerWith is startWrangler with extra arguments for wrangler dev.
func startWranglerWith(t *testing.T, extra []string) *wrangler {
	dir := workersDir(t)
	bin := filepath.Join(dir, "node_modules", ".bin", "wrangler")
	for _, need := range []struct{ path, fix string }{
		{bin, "wrangler is not installed: run `make test-workers` (npm ci in workers/)"},
		{filepath.Join(dir, "build", "app.wasm"), "the worker is not built: run `make test-workers` (it runs make workers first)"},
		{filepath.Join(dir, "public", "_headers"), "the static assets are not generated: run `make test-workers`"},
	} {
		if _, err := os.Stat(need.path); err != nil {
			t.Fatalf("%s (%v)", need.fix, err)
		}
	}
	w := &wrangler{dir: dir, bin: bin, state: t.TempDir(),
		env: append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CLOUDFLARE_CF_FETCH_ENABLED=false", "NO_COLOR=1", "CI=1")}
	w.run(t, "d1", "migrations", "apply", "DB")
	state, env := w.state, w.env

	port, inspector := freePort(t), freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "dev", "--local", "--ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--inspector-port", fmt.Sprint(inspector), "--persist-to", state,
		"--var", "ORIGIN:"+origin, "--show-interactive-dev-session=false", "--log-level", cmp.Or(os.Getenv("WRANGLER_LOG_LEVEL"), "warn"))
	cmd.Args = append(cmd.Args, extra...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop workerd with it
	logs := &tail{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting wrangler: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("wrangler output (last lines):\n%s", logs)
		}
	})

	w.origin = origin
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("wrangler exited: %v\n%s", err, logs)
		default:
		}
		start := time.Now()
		res, err := http.Get(origin + "/healthz")
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				w.cold = time.Since(start)
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("wrangler dev not ready within 90s (last: %v)\n%s", err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tail keeps the last lines of a process's output for failure reports.
type tail struct {
	mu    sync.Mutex
	lines []string
	part  string
}

func (l *tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(l.part + string(p)))
	l.part = ""
	for sc.Scan() {
		l.lines = append(l.lines, sc.Text())
	}
	if len(p) > 0 && p[len(p)-1] != '\n' && len(l.lines) > 0 {
		l.part = l.lines[len(l.lines)-1]
		l.lines = l.lines[:len(l.lines)-1]
	}
	if len(l.lines) > 80 {
		l.lines = l.lines[len(l.lines)-80:]
	}
	return len(p), nil
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
