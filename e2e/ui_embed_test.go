package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestUIEmbedWidget: a shop's page on another origin includes web/embed.js;
// the widget (Parley in an iframe of Parley's origin) creates its own
// account, receives a message from "support", reports the unread count to
// the host, opens the chat when the host asks, and sends a reply. The host
// page can reach neither the widget's document nor its storage, and the
// only things it hears are the postMessage API's (no message text). A page
// on an origin the server does not list is refused by frame-ancestors.
func TestUIEmbedWidget(t *testing.T) {
	var parleyURL string
	hostPage := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>Shop</title>
<h1>Shop</h1><div id="chat" style="width:380px;height:560px;border:1px solid #ccc"></div>
<script src="%s/web/embed.js" data-parley-mount="#chat" data-parley-title="Chat with support" data-parley-theme="dark"></script>
<script>
  window.__heard = [];
  window.addEventListener('message', (e) => window.__heard.push(JSON.stringify(e.data)));
  window.__unread = -1;
  Parley.on('unread', (n) => { window.__unread = n; });
</script></html>`, parleyURL)
	}
	host := httptest.NewServer(http.HandlerFunc(hostPage))
	defer host.Close()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><title>Elsewhere</title><iframe src="%s/?embed=1&host=%s"></iframe></html>`, parleyURL, "http://"+r.Host)
	}))
	defer evil.Close()
	srv := startUIServer(t, serverOptions{FrameAncestors: []string{host.URL}})
	parleyURL = srv.URL

	s := NewBrowser(t)
	ready(t, s, srv.URL)
	MustEval[map[string]any](s, `window.parley.createAccount('support', "Support desk")`)

	h := NewBrowser(t)
	desktop(t, h)
	h.Navigate(host.URL)
	w := widget(t, h, srv.URL)
	w.wait(t, "the widget's onboarding", `(() => { const f = document.getElementById('form-create'); return !!f && f.getClientRects().length > 0; })()`)
	w.eval(t, `(() => {
	  const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); };
	  set('create-handle', 'guest1');
	  document.querySelector('#form-create button[type=submit]').click();
	})()`)
	w.wait(t, "the widget's chat list", `document.getElementById('me').textContent === 'guest1'`)
	w.wait(t, "the host's theme", `document.documentElement.dataset.theme === 'dark'`)
	MustEval[chromedp.Void](h, `Parley.setTheme('light')`)
	w.wait(t, "the theme changed by the host", `document.documentElement.dataset.theme === 'light'`)

	send(t, s, "guest1", "welcome, how can we help?")
	if !WaitFor(h, `window.__unread === 1`, uiTimeout) {
		t.Fatalf("host never heard unread=1; heard %v", MustEval[[]string](h, `window.__heard`))
	}
	MustEval[chromedp.Void](h, `Parley.open('support')`)
	w.wait(t, "the chat opened by the host", `document.getElementById('message-list').innerText.includes('welcome, how can we help?')`)
	if !WaitFor(h, `window.__unread === 0`, uiTimeout) {
		t.Fatalf("host never heard unread=0 after the chat was read")
	}
	w.eval(t, `(() => {
	  document.getElementById('composer-text').value = 'hi, my order is late';
	  document.getElementById('composer-send').click();
	})()`)
	waitText(t, s, "guest1", "hi, my order is late")
	screenshot(t, h, "embed-desktop", 1280, 800)

	// What the host page can reach: not the widget's document, globals or
	// storage; only the API's messages, which carry no text.
	blocked := MustEval[map[string]bool](h, `(() => {
	  const f = document.querySelector('iframe');
	  const tries = (fn) => { try { fn(); return false; } catch (e) { return e.name === 'SecurityError'; } };
	  return {doc: tries(() => f.contentWindow.document.body), api: tries(() => f.contentWindow.parley.messages)};
	})()`)
	if !blocked["doc"] || !blocked["api"] {
		t.Fatalf("the host page reached into the widget: %v", blocked)
	}
	if dbs := MustEval[[]map[string]any](h, `indexedDB.databases()`); len(dbs) != 0 {
		t.Fatalf("the host origin sees IndexedDB databases %v", dbs)
	}
	heard := strings.Join(MustEval[[]string](h, `window.__heard`), "\n")
	for _, secret := range []string{"welcome", "order is late"} {
		if strings.Contains(heard, secret) {
			t.Fatalf("the host heard message text %q: %s", secret, heard)
		}
	}

	// An origin not in the allowlist cannot frame Parley.
	h.Navigate(evil.URL)
	deadline := time.Now().Add(uiTimeout)
	for {
		errs := strings.Join(h.AllowConsoleErrors(), "\n")
		if strings.Contains(errs, "frame-ancestors") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an unlisted origin framed Parley without a frame-ancestors refusal (console: %q)", errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// frameDOM evaluates script in an isolated world of the widget's iframe:
// the test sees the widget's document (as a person sees the screen), not
// its JavaScript objects.
type frameDOM struct {
	b   *Browser
	ctx runtime.ExecutionContextID
}

func widget(t *testing.T, b *Browser, origin string) *frameDOM {
	t.Helper()
	deadline := time.Now().Add(uiTimeout)
	for {
		ctx, cancel := contextFor(b)
		tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
		if err == nil {
			for _, child := range tree.FrameTree.ChildFrames {
				if strings.HasPrefix(child.Frame.URL, origin+"/") {
					w, err := chromedp.Call(ctx, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: child.Frame.ID, WorldName: "parley-test"})
					cancel()
					if err != nil {
						t.Fatalf("isolated world in the widget: %v", err)
					}
					return &frameDOM{b: b, ctx: w.ExecutionContextID}
				}
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("no widget iframe from %s on the page (%v)", origin, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *frameDOM) eval(t *testing.T, expr string) {
	t.Helper()
	ctx, cancel := contextFor(f.b)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](expr, func(p *runtime.EvaluateParams) { p.ContextID = f.ctx }))
	if err != nil {
		t.Fatalf("in the widget: %v", err)
	}
}

func (f *frameDOM) wait(t *testing.T, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(uiTimeout)
	for {
		ctx, cancel := contextFor(f.b)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond, func(p *runtime.EvaluateParams) { p.ContextID = f.ctx }))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the widget never showed %s (%s; %v)", what, cond, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
