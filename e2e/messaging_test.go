package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ready opens the client in b and waits for parley.ready.
func ready(t *testing.T, b *Browser, url string) {
	t.Helper()
	b.Navigate(url)
	MustEval[chromedp.Void](b, `window.parley.ready`)
}

// waitText waits until chat shows a message with text, and returns it.
func waitText(t *testing.T, b *Browser, chat, text string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := MustEval[[]map[string]any](b, fmt.Sprintf(`window.parley.messages(%q, {limit: 200})`, chat))
		for _, m := range msgs {
			if m["text"] == text {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never arrived in chat %q (have %d messages)", text, chat, len(msgs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func send(t *testing.T, b *Browser, to, text string) {
	t.Helper()
	MustEval[map[string]any](b, fmt.Sprintf(`window.parley.send(%q, %q)`, to, text))
}

// TestPhoneOffInBrowsers is the mission's promise, end to end in Chromium:
// Alice links a browser to her primary, the primary's browser process is
// closed entirely, and the companion keeps talking to Bob, across its own
// browser restart; the primary, started again, shows what happened.
func TestPhoneOffInBrowsers(t *testing.T) {
	srv := StartServer(t)
	a1Profile, a2Profile := t.TempDir(), t.TempDir()

	a1 := OpenBrowser(t, a1Profile)
	ready(t, a1, srv.URL)
	MustEval[map[string]any](a1, `window.parley.createAccount('alice', "Alice's phone")`)
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	MustEval[map[string]any](b, `window.parley.createAccount('bob', "Bob's laptop")`)

	a2 := OpenBrowser(t, a2Profile)
	ready(t, a2, srv.URL)
	start := MustEval[map[string]any](a2, `(async () => {
	  window.__check = new Promise((res) => window.parley.on('link-check', (e) => res(e.checkCode)));
	  const s = await window.parley.startLink("Alice's browser");
	  window.__linked = window.parley.waitLinked();
	  window.__linked.catch(() => {});
	  return s;
	})()`)
	payload, _ := start["payload"].(string)
	if !strings.HasPrefix(payload, "parley-link:") || !strings.Contains(start["qrSvg"].(string), "<svg") {
		t.Fatalf("startLink returned %v", start)
	}
	// approveLink resolves once the companion's user confirmed the code.
	MustEval[chromedp.Void](a1, fmt.Sprintf(`window.__pending = window.parley.approveLink(%q); window.__pending.catch(() => {}); undefined`, payload))
	companionCode := MustEval[string](a2, `window.__check`)
	MustEval[chromedp.Void](a2, `window.parley.confirmLinkCode()`)
	pending := MustEval[map[string]any](a1, `window.__pending`)
	if pending["checkCode"] == "" || pending["checkCode"] != companionCode {
		t.Fatalf("check codes: primary %v, companion %q", pending["checkCode"], companionCode)
	}
	if pending["deviceName"] != "Alice's browser" {
		t.Fatalf("primary sees device name %v", pending["deviceName"])
	}
	MustEval[chromedp.Void](a1, fmt.Sprintf(`window.parley.confirmLink(%q)`, pending["linkId"]))
	linked := MustEval[map[string]any](a2, `window.__linked`)
	if linked["handle"] != "alice" {
		t.Fatalf("waitLinked = %v", linked)
	}
	// Sessions with both of Alice's devices before the phone goes away.
	send(t, a1, "bob", "hello bob, from my phone")
	waitText(t, b, "alice", "hello bob, from my phone")
	waitText(t, a2, "bob", "hello bob, from my phone")

	a1.Close() // the primary's browser process ends

	send(t, b, "alice", "bob to alice, phone off")
	waitText(t, a2, "bob", "bob to alice, phone off")
	send(t, a2, "bob", "alice's browser to bob")
	got := waitText(t, b, "alice", "alice's browser to bob")
	if got["outgoing"] != false || got["from"] != "alice" {
		t.Fatalf("Bob stored %v", got)
	}

	// The companion's browser restarts on the same profile: no relink.
	a2.Close()
	a2 = OpenBrowser(t, a2Profile)
	ready(t, a2, srv.URL)
	if st := MustEval[map[string]any](a2, `window.parley.state()`); st["status"] != "ready" || st["handle"] != "alice" {
		t.Fatalf("companion after restart: %v", st)
	}
	waitText(t, a2, "bob", "bob to alice, phone off")
	send(t, b, "alice", "after your restart")
	waitText(t, a2, "bob", "after your restart")
	send(t, a2, "bob", "still here")
	waitText(t, b, "alice", "still here")

	// The primary comes back and catches up.
	a1 = OpenBrowser(t, a1Profile)
	ready(t, a1, srv.URL)
	for _, text := range []string{"bob to alice, phone off", "alice's browser to bob", "after your restart", "still here"} {
		waitText(t, a1, "bob", text)
	}

	// What a copy of the companion's profile holds: no message text, in
	// any store, in the clear.
	records := MustEval[[]map[string]any](a2, JSDumpRecords)
	for _, r := range records {
		if r["bytes"] == nil {
			continue
		}
		raw := toBytes(t, r["bytes"])
		for _, text := range []string{"bob to alice, phone off", "alice's browser to bob", "after your restart", "still here", "hello bob"} {
			if bytes.Contains(raw, []byte(text)) {
				t.Fatalf("IndexedDB record %s/%s holds message text %q in the clear", r["store"], r["key"], text)
			}
		}
	}
}
