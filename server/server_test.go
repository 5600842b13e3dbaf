package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/andybalholm/brotli"
)

// big is compressible content large enough that its variants are smaller.
var big = bytes.Repeat([]byte("parley wasm bytes "), 4000)

func compress(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	if enc == "br" {
		w = brotli.NewWriter(&buf)
	} else {
		w = gzip.NewWriter(&buf)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func testAssets(t *testing.T) fstest.MapFS {
	return fstest.MapFS{
		"index.html":               {Data: []byte(`<!doctype html><script src="/web/app.js"></script><meta name="parley-wasm" content="/web/dist/parley.wasm"><a href="/web/missing.js">`)},
		"web/app.js":               {Data: []byte("console.log('hi')")},
		"web/manifest.webmanifest": {Data: []byte(`{"name":"Parley"}`)},
		"web/sw.js":                {Data: []byte("self.addEventListener('fetch', () => {})")},
		"web/dist/parley.wasm":     {Data: big},
		"web/dist/parley.wasm.br":  {Data: compress(t, "br", big)},
		"web/dist/parley.wasm.gz":  {Data: compress(t, "gzip", big)},
	}
}

func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Assets == nil {
		cfg.Assets = testAssets(t)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

// get issues a request without Go's transparent gzip handling, so the test
// sees exactly what the server sent.
func get(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestContentTypes(t *testing.T) {
	ts := newTestServer(t, Config{})
	for path, want := range map[string]string{
		"/":                         "text/html; charset=utf-8",
		"/web/app.js":               "text/javascript; charset=utf-8",
		"/web/dist/parley.wasm":     "application/wasm",
		"/web/manifest.webmanifest": "application/manifest+json",
	} {
		resp, _ := get(t, "GET", ts.URL+path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, path := range []string{"/", "/web/app.js", "/nope", "/healthz"} {
		resp, _ := get(t, "GET", ts.URL+path, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if csp == "" {
			t.Fatalf("GET %s: no CSP", path)
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "'unsafe-eval'") {
			t.Errorf("GET %s: CSP allows inline script or eval: %s", path, csp)
		}
		for _, d := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("GET %s: CSP lacks %q: %s", path, d, csp)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q", path, resp.Header.Get("X-Content-Type-Options"))
		}
		if resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy = %q", path, resp.Header.Get("Referrer-Policy"))
		}
	}
}

func TestFrameAncestors(t *testing.T) {
	ts := newTestServer(t, Config{FrameAncestors: []string{"https://blog.example", "http://localhost:3000"}})
	resp, _ := get(t, "GET", ts.URL+"/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors https://blog.example http://localhost:3000") {
		t.Errorf("CSP = %s", csp)
	}
	for _, bad := range []string{"*", "https://a.example/path", "'self' *", "javascript:alert(1)", "https://a.example; script-src *"} {
		if _, err := New(Config{Assets: testAssets(t), FrameAncestors: []string{bad}}); err == nil {
			t.Errorf("frame ancestor %q accepted", bad)
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, path := range []string{"/nope", "/web/", "/web/dist/parley.wasm.br", "/index.html", "/go.mod", "/assets.go", "/web/app.js/"} {
		resp, body := get(t, "GET", ts.URL+path, nil)
		if resp.StatusCode != 404 || !bytes.Contains(body, []byte(`"code":"not_found"`)) {
			t.Errorf("GET %s: %d %s, want 404 not_found", path, resp.StatusCode, body)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		for _, path := range []string{"/", "/web/app.js", "/healthz"} {
			resp, _ := get(t, m, ts.URL+path, nil)
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow=%q, want 405", m, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	resp, body := get(t, "HEAD", ts.URL+"/web/app.js", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d body %d bytes", resp.StatusCode, len(body))
	}
}

func TestCompressionNegotiation(t *testing.T) {
	ts := newTestServer(t, Config{})
	url := ts.URL + "/web/dist/parley.wasm"
	for _, c := range []struct{ accept, want string }{
		{"", ""},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"br;q=0,gzip;q=0", ""},
		{"identity", ""},
		{"*", "br"},
		{"*, br;q=0", "gzip"},
		{"GZIP", "gzip"},
	} {
		resp, body := get(t, "GET", url, map[string]string{"Accept-Encoding": c.accept})
		if got := resp.Header.Get("Content-Encoding"); got != c.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", c.accept, got, c.want)
			continue
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary = %q", c.accept, resp.Header.Get("Vary"))
		}
		var r io.Reader = bytes.NewReader(body)
		switch c.want {
		case "br":
			r = brotli.NewReader(r)
		case "gzip":
			gr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = gr
		}
		plain, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(plain, big) {
			t.Errorf("Accept-Encoding %q: body does not decode to the asset (err %v)", c.accept, err)
		}
	}
}

func TestCacheControlAndVersioning(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp, index := get(t, "GET", ts.URL+"/", nil)
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("index Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	// Every known asset reference is rewritten to its versioned URL; an
	// unknown one is left alone.
	if !bytes.Contains(index, []byte(`"/web/app.js?v=`)) || !bytes.Contains(index, []byte(`"/web/dist/parley.wasm?v=`)) {
		t.Fatalf("index.html not versioned: %s", index)
	}
	if !bytes.Contains(index, []byte(`"/web/missing.js"`)) {
		t.Errorf("unknown reference rewritten: %s", index)
	}
	start := bytes.Index(index, []byte(`/web/app.js?v=`))
	ver := string(index[start+len(`/web/app.js?v=`) : start+len(`/web/app.js?v=`)+versionLen])

	resp, _ = get(t, "GET", ts.URL+"/web/app.js?v="+ver, nil)
	if resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Errorf("versioned asset Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, "GET", ts.URL+"/web/app.js?v=0000000000000000", nil)
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("wrong version must not be cached as immutable: %q", resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, "GET", ts.URL+"/web/sw.js?v=whatever", nil)
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("service worker Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	etag := resp.Header.Get("ETag")
	resp, body := get(t, "GET", ts.URL+"/web/sw.js", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("conditional GET: %d", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	var fail error
	ts := newTestServer(t, Config{Health: func() error { return fail }})
	resp, body := get(t, "GET", ts.URL+"/healthz", nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
	fail = errors.New("disk gone")
	resp, body = get(t, "GET", ts.URL+"/healthz", nil)
	if resp.StatusCode != 503 || bytes.Contains(body, []byte("disk gone")) {
		t.Errorf("unhealthy: %d %s (internal error text must not leak)", resp.StatusCode, body)
	}
}

// TestGracefulShutdown: after the context ends, a request already in
// flight completes, new connections are refused, and onShutdown runs.
func TestGracefulShutdown(t *testing.T) {
	inHandler := make(chan struct{})
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		w.Write([]byte("finished"))
	})
	s, err := New(Config{Assets: testAssets(t), Relay: slow, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	shutdownRan := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, s, func(context.Context) { close(shutdownRan) }) }()

	url := "http://" + ln.Addr().String()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/v1/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-inHandler
	cancel()
	// Wait until the listener is closed, then check new requests fail.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Fatalf("in-flight request got %q, want it to finish", body)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	select {
	case <-shutdownRan:
	default:
		t.Fatal("onShutdown did not run")
	}
}

func TestMissingIndex(t *testing.T) {
	if _, err := New(Config{Assets: fstest.MapFS{"web/app.js": {Data: []byte("x")}}}); err == nil {
		t.Fatal("server started without index.html")
	}
}

// The service worker is served at the root (so its scope covers "/"),
// never cached without revalidation, with its shell references versioned;
// the manifest has a stable root URL.
func TestServiceWorkerAndManifestRoutes(t *testing.T) {
	assets := testAssets(t)
	assets["web/sw.js"] = &fstest.MapFile{Data: []byte(`const SHELL = ["/index.html", "/web/app.js", "/web/dist/parley.wasm", "/web/gone.js"];`)}
	ts := newTestServer(t, Config{Assets: assets})
	resp, sw := get(t, "GET", ts.URL+"/sw.js", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/sw.js: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("/sw.js Content-Type = %q", ct)
	}
	for _, want := range []string{`"/?v=`, `"/web/app.js?v=`, `"/web/dist/parley.wasm?v=`, `"/web/gone.js"`} {
		if !bytes.Contains(sw, []byte(want)) {
			t.Errorf("/sw.js lacks %s: %s", want, sw)
		}
	}
	// The page's version in the worker is the version the server answers to.
	_, index := get(t, "GET", ts.URL+"/", nil)
	i := bytes.Index(sw, []byte(`"/?v=`))
	ver := string(sw[i+len(`"/?v=`) : i+len(`"/?v=`)+versionLen])
	resp, page := get(t, "GET", ts.URL+"/?v="+ver, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(page, index) || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("/?v=%s: %d %q", ver, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	// A change to any shell file changes the worker's bytes.
	assets["web/app.js"] = &fstest.MapFile{Data: []byte("console.log('v2')")}
	_, sw2 := get(t, "GET", newTestServer(t, Config{Assets: assets}).URL+"/sw.js", nil)
	if bytes.Equal(sw, sw2) {
		t.Errorf("a new app.js left /sw.js unchanged")
	}

	resp, m := get(t, "GET", ts.URL+"/manifest.webmanifest", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/manifest+json" ||
		resp.Header.Get("Cache-Control") != "no-cache" || string(m) != `{"name":"Parley"}` {
		t.Errorf("/manifest.webmanifest: %d %q %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), m)
	}
}

// TestCachePoisonAcrossEncodings is the attack of a shared cache (or a
// browser) that stores one encoding's bytes under an ETag and later
// revalidates a request for another encoding with it: if brotli, gzip and
// identity answers carried one ETag, a 304 would confirm the wrong bytes
// to a client that cannot decode them. Each encoding has its own ETag, and
// a conditional request matches only its own.
func TestCachePoisonAcrossEncodings(t *testing.T) {
	ts := newTestServer(t, Config{})
	url := ts.URL + "/web/dist/parley.wasm"
	tags := map[string]string{}
	for _, enc := range []string{"br", "gzip", "identity"} {
		resp, _ := get(t, "GET", url, map[string]string{"Accept-Encoding": enc})
		tag := resp.Header.Get("ETag")
		for other, ot := range tags {
			if ot == tag {
				t.Fatalf("%s and %s answers share ETag %s", enc, other, tag)
			}
		}
		tags[enc] = tag
		if resp, _ := get(t, "GET", url, map[string]string{"Accept-Encoding": enc, "If-None-Match": tag}); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated with its own ETag: %d, want 304", enc, resp.StatusCode)
		}
	}
	for enc, tag := range tags {
		for other := range tags {
			if other == enc {
				continue
			}
			if resp, _ := get(t, "GET", url, map[string]string{"Accept-Encoding": other, "If-None-Match": tag}); resp.StatusCode != http.StatusOK {
				t.Errorf("%s request revalidated with the %s ETag: %d, want 200", other, enc, resp.StatusCode)
			}
		}
	}
}
