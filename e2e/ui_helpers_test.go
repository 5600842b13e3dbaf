package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// Helpers for the UI tests (ui_*_test.go): they drive the page the way a
// person does, by clicking and typing, and read only what the page shows.

// uiTimeout bounds one wait for the page to show something.
const uiTimeout = 20 * time.Second

// uiServer is a Parley server that a test can stop and start again on the
// same address and data directory (the offline test), with options the
// standard StartServer does not take.
type uiServer struct {
	t    testing.TB
	URL  string
	addr string
	dir  string
	opts serverOptions
	stop func()
}

func startUIServer(t testing.TB, opts serverOptions) *uiServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &uiServer{t: t, URL: "http://" + ln.Addr().String(), addr: ln.Addr().String(), dir: t.TempDir(), opts: opts}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *uiServer) serve(ln net.Listener) {
	_, s.stop = serve(s.t, ln, s.dir, s.opts)
}

// Stop shuts the server down (its address then refuses connections).
func (s *uiServer) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Start serves again on the same address and data.
func (s *uiServer) Start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// click clicks the visible element sel, as a mouse would.
func click(t *testing.T, b *Browser, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	var err error
	// A list the page re-renders can replace the node between finding
	// and clicking it; find it again.
	for try := 0; try < 3; try++ {
		if err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
	}
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// typeInto replaces the text of a field by focusing it, selecting what is
// there and typing.
func typeInto(t *testing.T, b *Browser, sel, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("type into %s: %v", sel, err)
	}
}

// pasteInto focuses a field and inserts text as a paste does.
func pasteInto(t *testing.T, b *Browser, sel, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		t.Fatalf("focus %s: %v", sel, err)
	}
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
		t.Fatalf("paste into %s: %v", sel, err)
	}
}

// waitUI waits until the JS condition holds, failing the test with what
// the page shows otherwise.
func waitUI(t *testing.T, b *Browser, what, cond string) {
	t.Helper()
	if !WaitFor(b, cond, uiTimeout) {
		shown, _ := Eval[string](b, `document.body.innerText.slice(0, 600)`)
		t.Fatalf("%s: the page never showed it (%s); it shows:\n%s", what, cond, shown)
	}
}

// visible is a JS condition: the element exists and is rendered.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0; })()`, sel)
}

// textOf returns an element's text as shown.
func textOf(t *testing.T, b *Browser, sel string) string {
	t.Helper()
	return MustEval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ''`, sel))
}

// screenshot saves the page at a viewport size under ScreenshotDir, and
// in docs/screenshots when PARLEY_SCREENSHOTS is set (the README's).
func screenshot(t *testing.T, b *Browser, name string, width, height int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height), chromedp.Sleep(250*time.Millisecond)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
	path := filepath.Join(ScreenshotDir(t), name+".png")
	if err := b.Screenshot(path); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if os.Getenv("PARLEY_SCREENSHOTS") != "" {
		t.Logf("screenshot %s", path)
	}
}

// desktop and phone are the viewports screenshots and tests use.
func desktop(t *testing.T, b *Browser) { viewport(t, b, 1280, 800) }
func phone(t *testing.T, b *Browser)   { viewport(t, b, 390, 844) }

func viewport(t *testing.T, b *Browser, w, h int64) {
	t.Helper()
	if err := b.Do(chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatalf("viewport: %v", err)
	}
}

// allowNetworkErrors clears the console errors a browser logs while the
// server is down (refused connections), and the 404 of a link-channel
// poll that found nothing yet (PROTOCOL.md 14.3), failing on anything else.
func allowNetworkErrors(t *testing.T, b *Browser) {
	t.Helper()
	for _, e := range b.AllowConsoleErrors() {
		emptyPoll := strings.Contains(e, "404") && strings.Contains(e, "/v1/link/")
		if !emptyPoll && !strings.Contains(e, "ERR_CONNECTION_REFUSED") && !strings.Contains(e, "WebSocket") && !strings.Contains(e, "Failed to fetch") {
			t.Errorf("browser console while offline: %s", e)
		}
	}
}

// createAccountUI is onboarding's first path, through the form (a handle
// typed with capitals is the lowercase account).
func createAccountUI(t *testing.T, b *Browser, url, handle, device string) {
	t.Helper()
	b.Navigate(url)
	waitUI(t, b, "onboarding", visible("#form-create"))
	typeInto(t, b, "#create-handle", handle)
	typeInto(t, b, "#create-device", device)
	click(t, b, "#form-create button[type=submit]")
	waitUI(t, b, handle+"'s chat list", visible("#view-main")+` && document.getElementById('me').textContent === `+jsString(strings.ToLower(handle)))
}

// startLinkUI is onboarding's second path: the new browser asks to be
// linked and shows its link code, which it returns.
func startLinkUI(t *testing.T, b *Browser, url, device string) string {
	t.Helper()
	b.Navigate(url)
	waitUI(t, b, "onboarding", visible("#form-link"))
	typeInto(t, b, "#link-device", device)
	click(t, b, "#form-link button[type=submit]")
	waitUI(t, b, "the link code", visible("#link-qr")+` && document.getElementById('link-payload').value.startsWith('parley-link:')`)
	return MustEval[string](b, `document.getElementById('link-payload').value`)
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// setPassphraseLockUI sets a passphrase lock in Settings (open already).
func setPassphraseLockUI(t *testing.T, b *Browser, pass string) {
	t.Helper()
	click(t, b, "#lock-passphrase")
	typeInto(t, b, "#lock-pass1", pass)
	typeInto(t, b, "#lock-pass2", pass)
	click(t, b, "#form-lock button[type=submit]")
	waitUI(t, b, "the lock saved", `document.getElementById('lock-status').textContent.includes('locked with a passphrase')`)
}

// newGroupUI makes a group through New group and waits for its chat.
func newGroupUI(t *testing.T, b *Browser, name, members string) {
	t.Helper()
	click(t, b, "#btn-new-group")
	typeInto(t, b, "#newgroup-name", name)
	typeInto(t, b, "#newgroup-members", members)
	click(t, b, "#form-newgroup button[type=submit]")
	waitUI(t, b, "the group conversation", visible("#composer-text")+` && document.getElementById('chat-title').textContent === `+jsString(name))
}
