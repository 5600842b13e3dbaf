package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// swapHeader marks the requests of the browser the lying relay lies to.
const swapHeader = "X-Parley-Test-Victim"

// TestUISafetyNumberAndRevoke: a relay that starts serving another account
// key for Alice to Bob makes Bob's page show the "safety number changed"
// banner, and sending stays off until Bob acknowledges the new number
// shown; a key swapped between display and acknowledgement is not pinned
// (the new number is shown instead); then Alice's
// primary revokes her companion through the devices screen, with a
// confirmation, and the companion's page says it was removed.
//
// Accounts are made through the API (the journey test types them); the
// companion is linked by scanning its QR code with the primary's camera.
func TestUISafetyNumberAndRevoke(t *testing.T) {
	var lie atomic.Bool
	srv := startUIServer(t, serverOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lie.Load() && r.Method == "GET" && r.URL.Path == "/v1/accounts/alice" && r.Header.Get(swapHeader) != "" {
				r = r.Clone(r.Context())
				r.URL.Path = "/v1/accounts/mallory"
				r.SetPathValue("handle", "mallory")
			}
			next.ServeHTTP(w, r)
		})
	}})
	a := NewBrowser(t)
	ready(t, a, srv.URL)
	MustEval[map[string]any](a, `window.parley.createAccount('alice', "Alice's phone")`)
	b := NewBrowser(t)
	desktop(t, b)
	ready(t, b, srv.URL)
	MustEval[map[string]any](b, `window.parley.createAccount('bob', "Bob's laptop")`)
	m := NewBrowser(t)
	ready(t, m, srv.URL)
	MustEval[map[string]any](m, `window.parley.createAccount('mallory', "Mallory")`)
	m.Close()

	send(t, b, "alice", "hi alice")
	waitText(t, a, "bob", "hi alice")
	real := MustEval[map[string]any](b, `window.parley.safetyNumber('alice')`)["digits"].(string)

	// From now on the relay tells Bob's browser that Alice's account key is
	// Mallory's. Bob notices when a device of Alice he does not know yet
	// writes to him.
	ctx, cancel := contextFor(b)
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	if err == nil {
		_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{swapHeader: "1"}})
	}
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	lie.Store(true)
	a2 := NewBrowser(t)
	ready(t, a2, srv.URL)
	linkByCamera(t, a, a2, "Alice's browser")
	send(t, a2, "bob", "from alice's new browser")

	waitUI(t, b, "bob's chat list", visible(`#chat-list [data-chat="alice"]`))
	click(t, b, `#chat-list [data-chat="alice"]`)
	waitUI(t, b, "the safety banner", visible("#safety-banner")+` && document.getElementById('composer-send').disabled && document.getElementById('composer-text').disabled`)
	screenshot(t, b, "safety-changed-desktop", 1280, 800)
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.send('alice', 'are you really alice?'))`); r["code"] != "safety_number_changed" {
		t.Fatalf("send with the banner up = %v, want safety_number_changed", r)
	}

	// Bob reviews the new number: the one made from the key the relay
	// now serves (Mallory's), not the one he had.
	click(t, b, "#btn-safety-review")
	waitUI(t, b, "the contact screen with the warning and a number", visible("#contact-changed")+` && /^[0-9 ]{20,}$/.test(document.getElementById('contact-digits').textContent)`)
	if got := textOf(t, b, "#contact-digits"); got == real {
		t.Fatalf("the changed-number screen shows the old number %s", got)
	}
	screenshot(t, b, "safety-review-desktop", 1280, 800)

	// Between display and acknowledgement the relay swaps the key again
	// (back to Alice's real one). Acknowledging what Bob saw pins nothing:
	// the screen shows the number of the key now served, and only its
	// acknowledgement turns sending on.
	lie.Store(false)
	click(t, b, "#btn-contact-ack")
	waitUI(t, b, "the warning still there, with the number of the key now served", visible("#contact-changed")+` && document.getElementById('contact-digits').textContent === `+jsString(real))
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.send('alice', 'acknowledged?'))`); r["code"] != "safety_number_changed" {
		t.Fatalf("send after acknowledging a replaced number = %v, want safety_number_changed", r)
	}
	click(t, b, "#btn-contact-ack")
	waitUI(t, b, "the warning gone", `!`+visible("#contact-changed"))
	click(t, b, "#pane-contact .back")
	waitUI(t, b, "the conversation without the banner", visible("#composer-text")+` && !`+visible("#safety-banner")+` && !document.getElementById('composer-send').disabled`)
	typeInto(t, b, "#composer-text", "safety number checked")
	click(t, b, "#composer-send")
	waitText(t, a, "bob", "safety number checked")

	// Two days before its confirmation runs out, the companion warns (the
	// date comes from devices(); here it is moved, the clock cannot be).
	MustEval[chromedp.Void](a2, `(() => {
	  const real = window.parley.devices;
	  window.parley.devices = async () => (await real()).map((d) => d.thisDevice ? {...d, expires: Math.floor(Date.now() / 1000) + 2 * 86400} : d);
	})()`)
	desktop(t, a2)
	click(t, a2, "#btn-devices")
	waitUI(t, a2, "the expiry warning", visible("#banner-expiry")+` && document.getElementById('banner-expiry').textContent.includes('unless your primary device confirms it again')`)
	if txt := textOf(t, a2, "#device-list"); !strings.Contains(txt, "soon") {
		t.Fatalf("the device list does not flag the near expiry: %q", txt)
	}
	screenshot(t, a2, "expiry-warning-desktop", 1280, 800)

	// Alice's primary revokes the companion through the devices screen.
	desktop(t, a)
	click(t, a, "#btn-devices")
	waitUI(t, a, "the companion in the list", `!!document.querySelector('#device-list button[aria-label="Revoke Alice\'s browser"]')`)
	click(t, a, `#device-list button[aria-label="Revoke Alice's browser"]`)
	waitUI(t, a, "the confirmation", `document.getElementById('confirm').open`)
	screenshot(t, a, "revoke-confirm-desktop", 1280, 800)
	click(t, a, "#confirm-ok")
	waitUI(t, a, "one device left", `document.querySelectorAll('#device-list li').length === 1`)
	waitUI(t, a2, "the revoked state", visible("#view-revoked"))
	screenshot(t, a2, "revoked-desktop", 1280, 800)
}

// linkByCamera links companion to primary the way a phone does: the
// companion shows its QR code, the primary's "Scan the QR code" reads it
// from the camera (here a stream of a canvas painting the companion's QR
// image, in place of the hardware), and the person compares the check
// codes and confirms on both.
func linkByCamera(t *testing.T, primary, companion *Browser, name string) {
	t.Helper()
	start := MustEval[map[string]any](companion, fmt.Sprintf(`(async () => {
	  window.__check = new Promise((res) => window.parley.on('link-check', (e) => res(e.checkCode)));
	  const s = await window.parley.startLink(%q);
	  window.__linked = window.parley.waitLinked();
	  window.__linked.catch(() => {});
	  return s;
	})()`, name))
	MustEval[chromedp.Void](primary, fmt.Sprintf(`(async (svg) => {
	  const img = new Image();
	  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
	  await img.decode();
	  const c = document.createElement('canvas');
	  c.width = c.height = 480;
	  const g = c.getContext('2d');
	  const paint = () => { g.fillStyle = '#fff'; g.fillRect(0, 0, 480, 480); g.drawImage(img, 40, 40, 400, 400); };
	  paint();
	  setInterval(paint, 100);
	  const stream = c.captureStream(10);
	  navigator.mediaDevices.getUserMedia = async () => stream;
	})(%q)`, start["qrSvg"]))
	click(t, primary, "#btn-link-device")
	click(t, primary, "#btn-scan")
	waitUI(t, primary, "the check code after scanning", visible("#approve-code")+` && document.getElementById('approve-code').textContent !== ''`)
	if got, want := textOf(t, primary, "#approve-code"), MustEval[string](companion, `window.__check`); got != want {
		t.Fatalf("check codes after scanning: primary %q, companion %q", got, want)
	}
	// The codes match: the person confirms on the companion first.
	MustEval[chromedp.Void](companion, `window.parley.confirmLinkCode()`)
	waitUI(t, primary, "the primary's confirm button", visible("#btn-approve-confirm"))
	click(t, primary, "#btn-approve-confirm")
	waitUI(t, primary, "linked", `document.getElementById('approve-status').textContent.includes('is linked')`)
	MustEval[map[string]any](companion, `window.__linked`)
}
