package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkBrowserClient measures issue 6's targets in headless Chromium
// (not a test: run it with
//
//	go test -run '^$' -bench BrowserClient -benchtime 5x ./e2e
//
// after `make wasm`). Alice's browser first receives 1,000 messages of
// 1 KiB from Bob; then each iteration reloads her page and reports, from
// navigation start: parley.ready, and the chat list plus the newest 50
// messages of the chat loaded (what the UI needs to show it). The engine's
// own receive timings (decrypt + sealed IndexedDB batch) come from
// parley.stats(): for messages sent one at a time (ms-receive-p50), and
// in the burst (ms-receive-burst-p50).
// singleMessages is how many messages the benchmark sends one at a time,
// singleGap apart (long enough for each to arrive alone).
const (
	singleMessages = 40
	singleGap      = 50 * time.Millisecond
)

func BenchmarkBrowserClient(b *testing.B) {
	n := 1000
	if v := os.Getenv("PARLEY_BENCH_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	srv := StartServer(b)
	bob := NewBrowser(b)
	bob.Navigate(srv.URL)
	MustEval[chromedp.Void](bob, `window.parley.ready`)
	MustEval[map[string]any](bob, `window.parley.createAccount('bob', 'Bob')`)
	alice := NewBrowser(b)
	alice.Navigate(srv.URL)
	MustEval[chromedp.Void](alice, `window.parley.ready`)
	MustEval[map[string]any](alice, `window.parley.createAccount('alice', 'Alice')`)

	text := strings.Repeat("x", 1024)
	// One message at a time first: Bob's page sends one every
	// singleGap, each arriving alone, while the test waits on one promise
	// in Alice's page (no DevTools traffic to her page during the run,
	// which would compete with her engine for the main thread). This is
	// the engine's receive time for a message arriving alone, the case
	// issue 6's 2 ms target is about.
	MustEval[chromedp.Void](alice, fmt.Sprintf(`void (window.__singles = new Promise((r) => {
	  let n = 0;
	  const off = window.parley.on('message', () => { if (++n === %d) { off(); r(); } });
	}))`, singleMessages))
	MustEval[chromedp.Void](bob, fmt.Sprintf(`void (async () => {
	  for (let i = 0; i < %d; i++) {
	    await window.parley.send('alice', 'single ' + i + ' ' + %q);
	    await new Promise((r) => setTimeout(r, %d));
	  }
	})()`, singleMessages, text, singleGap.Milliseconds()))
	MustEval[chromedp.Void](alice, `window.__singles`)
	single := MustEval[map[string]any](alice, `window.parley.stats()`)
	b.Logf("%d single messages: receive p50 %.2f ms, p99 %.2f ms; %v", singleMessages, single["receiveP50Ms"], single["receiveP99Ms"], single)

	start := time.Now()
	for i := 0; i < n; i += 50 {
		MustEval[chromedp.Void](bob, fmt.Sprintf(`(async () => {
		  const p = [];
		  for (let i = %d; i < %d; i++) p.push(window.parley.send('alice', %q + i));
		  await Promise.all(p);
		})()`, i, i+50, text))
	}
	b.Logf("1,000 sends queued in %v", time.Since(start).Round(time.Millisecond))
	if !WaitFor(alice, fmt.Sprintf(`window.parley.stats().then((s) => s.received >= %d)`, n+singleMessages), 5*time.Minute) {
		b.Fatalf("alice received %v", MustEval[any](alice, `window.parley.stats()`))
	}
	stats := MustEval[map[string]any](alice, `window.parley.stats()`)
	b.Logf("%d × 1 KiB sent and received in %v; receive in the burst (decrypt + sealed write) p50 %.2f ms, p99 %.2f ms",
		n, time.Since(start).Round(time.Millisecond), stats["receiveP50Ms"], stats["receiveP99Ms"])
	b.Logf("parley.stats() after the burst: %v", stats)

	var ready, listed []float64
	for b.Loop() {
		alice.Navigate("about:blank")
		alice.Navigate(srv.URL)
		r := MustEval[map[string]any](alice, `(async () => {
		  await window.parley.ready;
		  const ready = performance.now();
		  const chats = await window.parley.chats();
		  const msgs = await window.parley.messages(chats[0].id, {limit: 50});
		  return {ready, listed: performance.now(), msgs: msgs.length};
		})()`)
		if r["msgs"] != float64(50) {
			b.Fatalf("loaded %v messages", r["msgs"])
		}
		ready = append(ready, r["ready"].(float64))
		listed = append(listed, r["listed"].(float64))
	}
	slices.Sort(ready)
	slices.Sort(listed)
	b.ReportMetric(ready[len(ready)/2], "ms-to-ready")
	b.ReportMetric(listed[len(listed)/2], "ms-to-chat-list")
	b.ReportMetric(single["receiveP50Ms"].(float64), "ms-receive-p50")
	b.ReportMetric(stats["receiveP50Ms"].(float64), "ms-receive-burst-p50")
	b.Logf("navigation→ready %v ms; navigation→chat list + 50 messages %v ms", ready, listed)
}

// BenchmarkBrowserReceiveNative is the single-message receive of
// BenchmarkBrowserClient with a native Go engine as the sender, so the only
// browser on the machine is the receiving one: on this 2-core machine the
// sending Chromium (renderer, browser process, its IndexedDB) competes
// with the receiver's IndexedDB backend for the cores, which a real
// recipient's sender, on another machine, does not. Both figures are
// reported (ms-receive-p50 there, ms-receive-native-p50 here).
func BenchmarkBrowserReceiveNative(b *testing.B) {
	srv := StartServer(b)
	ctx := context.Background()
	carol := NativeDevice(b, srv, "carol")
	alice := NewBrowser(b)
	alice.Navigate(srv.URL)
	MustEval[chromedp.Void](alice, `window.parley.ready`)
	MustEval[map[string]any](alice, `window.parley.createAccount('alice', 'Alice')`)

	text := strings.Repeat("x", 1024)
	var p50s []float64
	for b.Loop() {
		MustEval[chromedp.Void](alice, fmt.Sprintf(`void (window.__singles = new Promise((r) => {
		  let n = 0;
		  const off = window.parley.on('message', () => { if (++n === %d) { off(); r(); } });
		}))`, singleMessages))
		before := MustEval[map[string]any](alice, `window.parley.stats()`)["received"].(float64)
		for i := range singleMessages {
			if _, err := carol.SendText(ctx, "alice", fmt.Sprintf("single %d %s", i, text)); err != nil {
				b.Fatal(err)
			}
			time.Sleep(singleGap)
		}
		MustEval[chromedp.Void](alice, `window.__singles`)
		st := MustEval[map[string]any](alice, `window.parley.stats()`)
		if got := st["received"].(float64) - before; got < singleMessages {
			b.Fatalf("alice received %v of %d", got, singleMessages)
		}
		// The stats window (256) holds this round and earlier ones; the
		// first round alone is the cleanest, later ones include it.
		p50s = append(p50s, st["receiveP50Ms"].(float64))
		b.Logf("%d single messages from a native sender: receive p50 %.2f ms, p99 %.2f ms", singleMessages, st["receiveP50Ms"], st["receiveP99Ms"])
	}
	slices.Sort(p50s)
	b.ReportMetric(p50s[len(p50s)/2], "ms-receive-native-p50")
}
