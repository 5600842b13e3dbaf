package e2e

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"
)

// The linking journey and shown images across a relay outage (issue 15
// item 5): the page retries by itself, says so in its own words, and
// never shows an exception's text.

// rawError matches what an exception's text looks like on a page; every
// sentence the page shows must come from words.js instead.
var rawError = regexp.MustCompile(`TypeError|Failed to fetch|relay unreachable|javascript|\b[a-z]+_[a-z_]+: `)

// noRawErrors fails the test if the page shows exception text anywhere.
func noRawErrors(t *testing.T, b *Browser, when string) {
	t.Helper()
	shown := MustEval[string](b, `document.body.innerText`)
	if m := rawError.FindString(shown); m != "" {
		t.Fatalf("%s: the page shows raw error text %q:\n%s", when, m, shown)
	}
}

// pasteLinkCode answers a link code on the primary, as a person pastes it.
func pasteLinkCode(t *testing.T, primary *Browser, payload string) {
	t.Helper()
	click(t, primary, "#btn-link-device")
	pasteInto(t, primary, "#approve-payload", payload)
	click(t, primary, "#form-approve button[type=submit]")
}

// TestUILinkRetriesThroughRelayOutage: the relay goes away while a new
// browser waits for its primary to answer. Before the fix the page said
// "Something went wrong" (or the fetch's TypeError) and never polled
// again, so a code the primary pasted later went unanswered. Now it says
// "Reconnecting…", retries with backoff, and the link completes once the
// relay is back.
func TestUILinkRetriesThroughRelayOutage(t *testing.T) {
	srv := startUIServer(t, serverOptions{})
	a1 := NewBrowser(t)
	desktop(t, a1)
	createAccountUI(t, a1, srv.URL, "alice", "Alice's phone")
	a2 := NewBrowser(t)
	phone(t, a2)
	payload := startLinkUI(t, a2, srv.URL, "Alice's browser")

	srv.Stop()
	waitUI(t, a2, "the companion reconnecting", visible("#link-status")+` && document.getElementById('link-status').textContent.includes('Reconnecting…')`)
	noRawErrors(t, a2, "relay unreachable")
	if !MustEval[bool](a2, visible("#link-qr")) {
		t.Fatal("the link code was taken away while the relay was unreachable; it is still valid")
	}
	screenshot(t, a2, "link-reconnecting-phone", 390, 844)
	screenshot(t, a2, "link-reconnecting-desktop", 1280, 800)
	phone(t, a2)
	allowNetworkErrors(t, a2)
	allowNetworkErrors(t, a1)

	srv.Start()
	waitUI(t, a2, "the companion connected again", `!`+visible("#link-status"))
	pasteLinkCode(t, a1, payload)
	waitUI(t, a2, "the check code after the outage", visible("#btn-link-code-confirm"))
	click(t, a2, "#btn-link-code-confirm")
	waitUI(t, a1, "the primary asking to confirm", visible("#btn-approve-confirm"))
	click(t, a1, "#btn-approve-confirm")
	waitUI(t, a2, "the companion linked", `window.parley.state().then((s) => s.status === 'ready' && s.handle === 'alice')`)
	noRawErrors(t, a2, "linked")
	allowNetworkErrors(t, a2)
	allowNetworkErrors(t, a1)
}

// TestUILinkCodeExpiredOffersANewOne: a link code outlives its ten
// minutes (the page's clock is moved on) while the relay is unreachable.
// Before the fix the page kept showing the dead QR code under an error;
// now it takes the code away and says "This code expired — get a new one"
// with one button, which shows a fresh code.
func TestUILinkCodeExpiredOffersANewOne(t *testing.T) {
	srv := startUIServer(t, serverOptions{})
	a2 := NewBrowser(t)
	phone(t, a2)
	old := startLinkUI(t, a2, srv.URL, "Alice's browser")

	// Go's wasm reads the wall clock through new Date(): eleven minutes on.
	MustEval[chromedp.Void](a2, `(() => {
	  const Real = Date, skew = 11 * 60 * 1000;
	  window.Date = class extends Real {
	    constructor(...a) { if (a.length) super(...a); else super(Real.now() + skew); }
	    static now() { return Real.now() + skew; }
	  };
	})()`)
	srv.Stop() // ends the pending long poll, so the page notices at once
	waitUI(t, a2, "the expired code", visible("#link-expired")+` && document.getElementById('link-expired').innerText.includes('This code expired — get a new one')`)
	if MustEval[bool](a2, visible("#link-qr")) {
		t.Fatal("the expired QR code is still shown")
	}
	if n := MustEval[int](a2, `[...document.querySelectorAll('#link-wait button')].filter((b) => b.getClientRects().length > 0).length`); n != 1 {
		t.Fatalf("the expired code offers %d buttons, want one", n)
	}
	noRawErrors(t, a2, "link code expired")
	screenshot(t, a2, "link-expired-phone", 390, 844)
	screenshot(t, a2, "link-expired-desktop", 1280, 800)
	phone(t, a2)
	checkAxe(t, a2, "link code expired")
	allowNetworkErrors(t, a2)

	srv.Start()
	click(t, a2, "#btn-link-new")
	waitUI(t, a2, "a new link code", visible("#link-qr")+` && !`+visible("#link-expired")+
		` && document.getElementById('link-payload').value.startsWith('parley-link:') && document.getElementById('link-payload').value !== `+jsString(old))
	noRawErrors(t, a2, "new link code")
	allowNetworkErrors(t, a2)
}

// TestUIImageStaysShownAfterRelayOutage: Bob has seen Alice's image; the
// relay goes away and Bob's page is opened again (from the service
// worker). Before the fix the image became "Show image" with an empty
// progress bar, and stayed so after the relay was back; now the page
// shows it from the ciphertext the browser kept, without the relay.
func TestUIImageStaysShownAfterRelayOutage(t *testing.T) {
	srv := startUIServer(t, serverOptions{})
	a := NewBrowser(t)
	desktop(t, a)
	createAccountUI(t, a, srv.URL, "alice", "Alice's laptop")
	b := NewBrowser(t)
	desktop(t, b)
	createAccountUI(t, b, srv.URL, "bob", "Bob's laptop")

	click(t, a, "#btn-new-chat")
	typeInto(t, a, "#newchat-handle", "bob")
	click(t, a, "#form-newchat button[type=submit]")
	waitUI(t, a, "the conversation", visible("#composer-text"))
	icon, err := filepath.Abs("../web/icons/icon-192.png")
	if err != nil {
		t.Fatal(err)
	}
	attachUI(t, a, icon, "")
	const shownImage = `(() => { const i = document.querySelector('#message-list img.preview'); return !!i && i.complete && i.naturalWidth === 192; })()`
	waitUI(t, b, "alice's chat", `!!document.querySelector('#chat-list [data-chat="alice"]')`)
	click(t, b, `#chat-list [data-chat="alice"]`)
	waitUI(t, b, "the image", shownImage)

	// The service worker serves the page while the server is down.
	MustEval[chromedp.Void](b, `navigator.serviceWorker.ready`)
	b.Navigate(srv.URL)
	waitUI(t, b, "a page controlled by the service worker", `!!navigator.serviceWorker.controller`)
	srv.Stop()
	b.Navigate(srv.URL)
	waitUI(t, b, "the chat list from storage, offline", `!!document.querySelector('#chat-list [data-chat="alice"]')`)
	click(t, b, `#chat-list [data-chat="alice"]`)
	waitUI(t, b, "the image while the relay is unreachable", shownImage)
	if MustEval[bool](b, `!!document.querySelector('#message-list .attachment progress')`) {
		t.Fatal("an empty progress bar is shown under the image")
	}
	noRawErrors(t, b, "image offline")
	allowNetworkErrors(t, b)
	allowNetworkErrors(t, a)
	srv.Start()
}
