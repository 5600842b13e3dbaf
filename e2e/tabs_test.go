package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestTabsOneOwner opens the client in several tabs of one profile: exactly
// one tab owns the keys, the others are views whose calls reach that owner
// and who receive its events; closing the owner hands over to another tab
// within 2 seconds, and a call made during the handover is answered by
// the new owner.
func TestTabsOneOwner(t *testing.T) {
	srv := StartTestServer(t)
	// Tabs opened from the browser's first tab share its lifetime, so the
	// first tab stays on about:blank and the test uses tabs it can close.
	br := NewBrowser(t)
	a := br.OpenTab()
	a.Navigate(srv.URL)
	MustEval[chromedp.Void](a, `window.parley.ready`)
	bt := br.OpenTab()
	bt.Navigate(srv.URL)
	MustEval[chromedp.Void](bt, `window.parley.ready`)

	sa := MustEval[map[string]any](a, `window.parley.state()`)
	sb := MustEval[map[string]any](bt, `window.parley.state()`)
	if sa["role"] != "owner" || sb["role"] != "view" {
		t.Fatalf("roles: first tab %v, second tab %v; want owner and view", sa["role"], sb["role"])
	}
	if sa["deviceId"] == nil || sa["deviceId"] != sb["deviceId"] {
		t.Fatalf("the tabs disagree on the device: %v vs %v", sa["deviceId"], sb["deviceId"])
	}
	fa := MustEval[string](a, `window.parley.deviceFingerprint()`)
	if fb := MustEval[string](bt, `window.parley.deviceFingerprint()`); fa != fb {
		t.Fatalf("fingerprints differ across tabs: %q vs %q", fa, fb)
	}

	// One counter, held by the owner: calls from both tabs count in it.
	ownerA := MustEval[string](a, `window.parley.__test.tabId()`)
	for i, tab := range []*Browser{a, bt, bt, a} {
		c := MustEval[map[string]any](tab, `window.parley.__test.counter()`)
		if c["value"] != float64(i+1) || c["owner"] != ownerA {
			t.Fatalf("call %d: counter %v, want value %d from owner %s", i+1, c, i+1, ownerA)
		}
	}

	// A view's calls with arguments run in the owner, and the owner's
	// events reach every tab.
	MustEval[chromedp.Void](a, `window.__events = []; window.parley.on('state', (s) => window.__events.push(s.status))`)
	MustEval[chromedp.Void](bt, `window.__events = []; window.parley.on('state', (s) => window.__events.push(s.status))`)
	MustEval[chromedp.Void](bt, `window.parley.setLock({passphrase: 'two tabs'})`)
	MustEval[chromedp.Void](bt, `window.parley.lock()`)
	if st := MustEval[map[string]any](a, `window.parley.state()`); st["status"] != "locked" {
		t.Fatalf("lock() in the view did not lock the owner: %v", st)
	}
	if r := MustEval[map[string]any](bt, jsSettle+`(window.parley.unlock({passphrase: 'wrong'}))`); r["code"] != "wrong_passphrase" {
		t.Fatalf("wrong passphrase from the view = %v, want wrong_passphrase", r)
	}
	MustEval[chromedp.Void](bt, `window.parley.unlock({passphrase: 'two tabs'})`)
	MustEval[chromedp.Void](bt, `window.parley.setLock(null)`)
	for _, tab := range []*Browser{a, bt} {
		if !WaitFor(tab, `window.__events.join(' ') === 'new locked new new'`, 3*time.Second) {
			t.Fatalf("state events seen by a tab: %v, want new locked new new", MustEval[any](tab, `window.__events`))
		}
	}

	// Close the owner: the view takes over within 2 s.
	t0 := time.Now()
	a.CloseTab()
	if !WaitFor(bt, `window.parley.state().then((s) => s.role === 'owner' && s.status === 'new')`, 2*time.Second) {
		t.Fatalf("the view did not take over within 2 s of the owner closing (state %v)", MustEval[any](bt, `window.parley.state()`))
	}
	t.Logf("handover after the owner tab closed: %v", time.Since(t0).Round(time.Millisecond))
	if fb := MustEval[string](bt, `window.parley.deviceFingerprint()`); fb != fa {
		t.Fatalf("fingerprint after handover %q, want %q", fb, fa)
	}

	// A third tab becomes a view of the new owner; a call it makes while
	// that owner closes is answered by the next one (itself).
	ct := br.OpenTab()
	ct.Navigate(srv.URL)
	MustEval[chromedp.Void](ct, `window.parley.ready`)
	ownerB := MustEval[string](bt, `window.parley.__test.tabId()`)
	if c := MustEval[map[string]any](ct, `window.parley.__test.counter()`); c["owner"] != ownerB {
		t.Fatalf("third tab's call answered by %v, want the new owner %s", c["owner"], ownerB)
	}
	MustEval[chromedp.Void](ct, `window.__pending = window.parley.__test.counter()`)
	bt.CloseTab()
	ownerC := MustEval[string](ct, `window.parley.__test.tabId()`)
	c := MustEval[map[string]any](ct, `window.__pending`)
	if c["owner"] != ownerB && c["owner"] != ownerC {
		t.Fatalf("call across the handover answered by %v", c)
	}
	if st := MustEval[map[string]any](ct, `window.parley.state()`); st["role"] != "owner" || st["deviceId"] != sa["deviceId"] {
		t.Fatalf("last tab state %v, want owner of the same device", st)
	}
	ct.CheckConsole()
}
