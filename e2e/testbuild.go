package e2e

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley"
	"github.com/parley-im/parley/wasm/wasmseg"
)

// The parleytest build of the client adds window.parley.__test (hooks that
// run the storage conformance suite against real IndexedDB in separate
// test databases, time Argon2id, count calls through the tab bus). `make
// wasm` never builds it; tests that need it call StartTestServer, which
// builds it once per test binary into a temporary directory (reusing the
// Go build cache of `make wasm`) and serves it in place of the real
// client, with every other asset unchanged.
var testWasm struct {
	once sync.Once
	dir  string
	data []byte
	err  error
	out  string
}

func buildTestWasm(t testing.TB) []byte {
	t.Helper()
	testWasm.once.Do(func() {
		testWasm.dir, testWasm.err = os.MkdirTemp("", "parley-testwasm")
		if testWasm.err != nil {
			return
		}
		out := filepath.Join(testWasm.dir, "parley.wasm")
		// The gcflags are the Makefile's WASM_GCFLAGS: the same code as
		// the real client, so timings measured on this build hold for it.
		cmd := exec.Command("go", "build", "-tags", "parleytest", "-trimpath",
			"-gcflags=github.com/parley-im/parley/...=-l",
			"-gcflags=github.com/parley-im/parley/crypto/ratchet/...=",
			"-gcflags=github.com/parley-im/parley/crypto/senderkey=",
			"-gcflags=github.com/parley-im/parley/crypto/wire=",
			"-ldflags=-s -w", "-o", out, "./wasm")
		cmd.Dir = ".." // the module root
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		b, err := cmd.CombinedOutput()
		testWasm.out, testWasm.err = string(b), err
		if err == nil {
			testWasm.data, testWasm.err = os.ReadFile(out)
		}
		if testWasm.err == nil {
			// As `make wasm` does, so the browser tests run a module
			// whose data segments wasmseg joined.
			testWasm.data, _, testWasm.err = wasmseg.Coalesce(testWasm.data, wasmseg.DefaultMaxGap)
		}
		os.RemoveAll(testWasm.dir)
	})
	if testWasm.err != nil {
		t.Fatalf("build the parleytest client: %v\n%s", testWasm.err, testWasm.out)
	}
	return testWasm.data
}

// StartTestServer is StartServer serving the parleytest build of the client.
func StartTestServer(t testing.TB) *Server {
	t.Helper()
	wasm := buildTestWasm(t)
	assets := fstest.MapFS{}
	err := fs.WalkDir(parley.Assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(p, "web/dist/parley.wasm") {
			return nil // replaced below, without stale .br/.gz copies
		}
		data, err := fs.ReadFile(parley.Assets, p)
		assets[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	assets["web/dist/parley.wasm"] = &fstest.MapFile{Data: wasm}
	return startServer(t, assets)
}

// LocalhostURL is the server's URL with the host "localhost": WebAuthn
// refuses IP addresses as relying-party ids, and localhost is a secure
// context like 127.0.0.1.
func (s *Server) LocalhostURL() string {
	return strings.Replace(s.URL, "127.0.0.1", "localhost", 1)
}

// OpenTab opens another tab in the same browser (same profile, same
// origin storage). Its console is watched like the first tab's. Close the
// tab with CloseTab; the browser's Close closes every tab. Call it on the
// browser, not on a tab: a tab opened from a tab closes with it.
func (b *Browser) OpenTab() *Browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("open tab: %v", err)
	}
	tab := &Browser{t: b.t, Profile: b.Profile, ctx: ctx, cancel: cancel, allocCancel: func() {}}
	tab.watchConsole(ctx)
	b.t.Cleanup(tab.CloseTab)
	return tab
}

// CloseTab closes this tab only (as a user closing it) and checks its
// console.
func (b *Browser) CloseTab() {
	if b.cancel == nil {
		return
	}
	if err := chromedp.Cancel(b.ctx); err != nil && !strings.Contains(err.Error(), "canceled") {
		b.t.Logf("close tab: %v", err)
	}
	b.cancel()
	b.cancel = nil
	b.CheckConsole()
}

// AddVirtualAuthenticator gives this tab a CDP virtual authenticator: a
// platform (internal) CTAP2 authenticator with user verification, resident
// keys and the PRF extension, that approves every request at once.
func (b *Browser) AddVirtualAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			HasPrf:                      true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// WaitFor polls a JS boolean expression until it is true or d passes.
func WaitFor(b *Browser, expr string, d time.Duration) bool {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, err := Eval[bool](b, expr); err == nil && ok {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// contextFor is a timeout context on the browser's tab, for raw CDP calls.
func contextFor(b *Browser) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, actionTimeout)
}
