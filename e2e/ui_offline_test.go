package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestUIOfflineStart: once the service worker has the app shell, Alice's
// browser starts with the server stopped: the page, the wasm and her
// stored chats appear, the page says it is offline and retrying, and a
// message written then is sent when the server is back. The served app is
// installable (Chromium's own check finds no errors).
func TestUIOfflineStart(t *testing.T) {
	srv := startUIServer(t, serverOptions{})
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	MustEval[map[string]any](b, `window.parley.createAccount('bob', "Bob's laptop")`)
	a := NewBrowser(t)
	desktop(t, a)
	ready(t, a, srv.URL)
	MustEval[map[string]any](a, `window.parley.createAccount('alice', "Alice's laptop")`)
	// Bob turns notifications on in Settings; with his tab in the
	// background a message raises one that names the sender, not the text.
	// (Headless Chromium has neither a notification centre nor hidden tabs:
	// both are stood in for in the page.)
	MustEval[chromedp.Void](b, `(() => {
	  window.__notes = [];
	  window.Notification = class { constructor(title, opts) { window.__notes.push({title, ...opts}); } close() {} };
	  Notification.permission = 'default';
	  Notification.requestPermission = async () => (Notification.permission = 'granted');
	})()`)
	click(t, b, "#btn-settings")
	click(t, b, "#btn-notify")
	waitUI(t, b, "notifications on", `document.getElementById('notify-status').textContent.startsWith('On')`)
	MustEval[chromedp.Void](b, `Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})`)
	send(t, a, "bob", "a secret plan")
	waitUI(t, b, "a notification", `window.__notes.length > 0`)
	if note := MustEval[string](b, `JSON.stringify(window.__notes)`); !strings.Contains(note, "New message from alice") || strings.Contains(note, "secret") {
		t.Fatalf("notification %s: want the sender and not the text", note)
	}
	MustEval[chromedp.Void](b, `delete document.hidden`)

	// More history than one page of the conversation view.
	MustEval[chromedp.Void](a, `(async () => { for (let i = 0; i < 55; i++) await window.parley.send('bob', 'old ' + i); })()`)
	send(t, a, "bob", "before the outage")
	waitText(t, b, "alice", "before the outage")

	// The worker has installed and controls the page after one reload.
	MustEval[chromedp.Void](a, `navigator.serviceWorker.ready`)
	a.Navigate(srv.URL)
	waitUI(t, a, "a page controlled by the service worker", `!!navigator.serviceWorker.controller`)
	checkInstallable(t, a)

	srv.Stop()
	a.Navigate(srv.URL)
	waitUI(t, a, "the chat list from storage, offline", visible("#view-main")+` && !!document.querySelector('#chat-list [data-chat="bob"]')`)
	waitUI(t, a, "the offline notice", visible("#banner-offline"))
	checkAxe(t, a, "chat list with the offline banner")
	click(t, a, `#chat-list [data-chat="bob"]`)
	waitUI(t, a, "the stored conversation", `document.getElementById('message-list').innerText.includes('before the outage')`)
	// One page (50) first; scrolling back fetches the other 7, oldest first.
	if n := MustEval[int](a, `document.querySelectorAll('#message-list .msg').length`); n != 50 {
		t.Fatalf("the conversation opened with %d messages, want one page of 50", n)
	}
	MustEval[chromedp.Void](a, `document.getElementById('messages').scrollTop = 0`)
	waitUI(t, a, "older messages after scrolling up", `document.querySelectorAll('#message-list .msg').length === 57`)
	if first := textOf(t, a, "#message-list .msg"); !strings.HasPrefix(first, "a secret plan") {
		t.Fatalf("the oldest message shown is %q, want the first one sent", first)
	}
	typeInto(t, a, "#composer-text", "written while offline")
	click(t, a, "#composer-send")
	waitUI(t, a, "the waiting message", `[...document.querySelectorAll('#message-list .msg.out')].some(m => m.innerText.includes('written while offline') && m.querySelector('.tick[data-status="pending"]'))`)
	// A file sent offline is kept and shown waiting too.
	fileID := MustEval[map[string]any](a, fmt.Sprintf(`window.parley.sendFile('bob', %s)`, jsFile(300_000, "offline.bin")))["id"].(string)
	waitUI(t, a, "the waiting file", fmt.Sprintf(`window.parley.messages('bob', {limit: 5}).then((ms) => ms.some((m) => m.id === %q && m.status === 'pending' && m.attachment && m.attachment.name === 'offline.bin'))`, fileID))
	screenshot(t, a, "offline-desktop", 1280, 800)
	allowNetworkErrors(t, a)
	allowNetworkErrors(t, b)

	srv.Start()
	waitText(t, b, "alice", "written while offline")
	waitUI(t, b, "the file sent offline", fmt.Sprintf(`window.parley.messages('alice', {limit: 5}).then((ms) => ms.some((m) => m.id === %q && m.attachment && m.attachment.size === 300000))`, fileID))
	waitUI(t, a, "the sent tick", `[...document.querySelectorAll('#message-list .msg.out')].some(m => m.innerText.includes('written while offline') && !m.querySelector('.tick[data-status="pending"]'))`)
	waitUI(t, a, "the offline notice gone", `!`+visible("#banner-offline"))
	allowNetworkErrors(t, a)
	allowNetworkErrors(t, b)
}

// checkInstallable asserts Chromium's installability check passes.
func checkInstallable(t *testing.T, b *Browser) {
	t.Helper()
	ctx, cancel := contextFor(b)
	defer cancel()
	res, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		t.Fatalf("Page.getInstallabilityErrors: %v", err)
	}
	for _, e := range res.InstallabilityErrors {
		t.Errorf("not installable: %s %v", e.ErrorID, e.ErrorArguments)
	}
}
