package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley/client"
)

// TestWebCryptoBackends checks, in Chromium, that the owner tab installed
// the WebCrypto backends (wasm/webcrypto_backends.go) and that each one
// computes exactly what the pure-Go code does, on random inputs: the same
// X25519 secrets, Ed25519 signatures that are Go's byte for byte and verify
// both ways, and AES-256-GCM seals equal to Go's that open both ways, plus
// PROTOCOL.md §14.4's known answer for a bulk object.
func TestWebCryptoBackends(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	inst := MustEval[map[string]any](b, `window.parley.__test.webcryptoInstalled()`)
	t.Logf("WebCrypto start-up checks took %v ms", inst["checkMs"])
	for _, name := range []string{"x25519", "ed25519", "bulk"} {
		if inst[name] != true {
			t.Errorf("backend %s not installed in Chromium: %v", name, inst)
		}
	}
	res := MustEval[map[string]string](b, `window.parley.__test.webcryptoCheck(200)`)
	for name, problem := range res {
		if problem != "" {
			t.Errorf("%s: %s", name, problem)
		}
	}
	if len(res) != 4 {
		t.Errorf("checks run: %v", res)
	}
}

// BenchmarkWebCrypto times, inside headless Chromium, each workload with
// the WebCrypto backends and in pure Go, and reports the medians (µs per
// operation, MB/s for the bulk ones) and the ratio Go / WebCrypto (> 1:
// WebCrypto wins). Rounds alternate Go and WebCrypto in the same page. It is a benchmark, not a test: run it with
//
//	go test -run '^$' -bench WebCrypto -benchtime 1x ./e2e
//
// Each workload is a sub-benchmark (-bench WebCrypto/group); one b.N
// iteration runs rounds × n operations each way.
func BenchmarkWebCrypto(b *testing.B) {
	srv := StartTestServer(b)
	br := NewBrowser(b)
	br.Navigate(srv.URL)
	MustEval[chromedp.Void](br, `window.parley.ready`)
	type workload struct {
		name  string
		n     int
		bytes int // per op, for MB/s
	}
	const bulkBytes = 16 * 256 << 10
	workloads := []workload{
		{"await", 200, 0},
		{"x25519", 50, 0},
		{"x25519-keygen", 50, 0},
		{"ed25519", 50, 0},
		{"group", 50, 0},
		{"pingpong", 50, 0},
		{"setup", 20, 0},
		{"bulk-seal", 2, bulkBytes},
		{"attachment-seal", 2, bulkBytes},
		{"bulk-open", 2, bulkBytes},
	}
	const rounds = 15
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			for b.Loop() {
				us := MustEval[map[string][]float64](br, fmt.Sprintf(`window.parley.__test.webcryptoBench(%q, %d, %d)`, w.name, rounds, w.n))
				goUS, webUS := us["go"][rounds/2], us["web"][rounds/2]
				if w.bytes > 0 {
					goMB, webMB := float64(w.bytes)/goUS, float64(w.bytes)/webUS
					b.Logf("Go %7.1f MB/s   WebCrypto %7.1f MB/s   ×%.1f", goMB, webMB, goUS/webUS)
					b.ReportMetric(goMB, "go-MB/s")
					b.ReportMetric(webMB, "web-MB/s")
					continue
				}
				b.Logf("Go %7.1f µs/op   WebCrypto %7.1f µs/op   ×%.2f", goUS, webUS, goUS/webUS)
				b.ReportMetric(goUS, "go-µs/op")
				b.ReportMetric(webUS, "web-µs/op")
			}
		})
	}
}

// jsFile evaluates to a File of n pseudo-random bytes (a fixed xorshift
// stream, so the test can predict them) named name.
func jsFile(n int, name string) string {
	return fmt.Sprintf(`(() => {
	  const b = new Uint8Array(%d); let x = 2463534242;
	  for (let i = 0; i < b.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 255; }
	  return new File([b], %q, {type: 'application/octet-stream'});
	})()`, n, name)
}

// goFile is jsFile's bytes.
func goFile(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// waitFile waits until chat in br holds a file named name and returns the
// SHA-256 (hex) of its decrypted bytes.
func waitFile(t *testing.T, br *Browser, chat, name string) string {
	t.Helper()
	expr := fmt.Sprintf(`(async () => {
	  const msgs = await window.parley.messages(%q, {limit: 50});
	  const m = msgs.find((m) => m.attachment && m.attachment.name === %q);
	  if (!m) return '';
	  const data = await window.parley.fileData(m.id);
	  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
	  return Array.from(h, (x) => x.toString(16).padStart(2, '0')).join('');
	})()`, chat, name)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if h := MustEval[string](br, expr); h != "" {
			return h
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("file %q never arrived in chat %q", name, chat)
	return ""
}

// TestWebCryptoInterop: with the WebCrypto backends installed in both
// browsers, attachments (AES-GCM), pairwise messages (X25519 in the
// ratchet) and group messages (Ed25519 sender-key signatures) still go
// both ways between two browsers and between a browser and a native
// engine that uses only Go's crypto.
func TestWebCryptoInterop(t *testing.T) {
	srv := StartTestServer(t)
	ctx := context.Background()
	carol := NativeDevice(t, srv, "carol")

	alice, bob := NewBrowser(t), NewBrowser(t)
	for name, br := range map[string]*Browser{"alice": alice, "bob": bob} {
		ready(t, br, srv.URL)
		MustEval[map[string]any](br, fmt.Sprintf(`window.parley.createAccount(%q, %q)`, name, name+"'s browser"))
		if inst := MustEval[map[string]any](br, `window.parley.__test.webcryptoInstalled()`); inst["x25519"] != true || inst["ed25519"] != true || inst["bulk"] != true {
			t.Fatalf("%s: WebCrypto backends not installed: %v", name, inst)
		}
	}

	// Browser → browser, 5 chunks with a short last one.
	const size = 4*256<<10 + 12345
	want := sha256.Sum256(goFile(size))
	MustEval[map[string]any](alice, fmt.Sprintf(`window.parley.sendFile('bob', %s)`, jsFile(size, "a.bin")))
	if got := waitFile(t, bob, "alice", "a.bin"); got != hex.EncodeToString(want[:]) {
		t.Fatalf("bob decrypted %s, want %x", got, want)
	}

	// Browser → native: Go's AES-GCM opens WebCrypto's chunks.
	MustEval[map[string]any](alice, fmt.Sprintf(`window.parley.sendFile('carol', %s)`, jsFile(size, "c.bin")))
	var fromAlice []byte
	for deadline := time.Now().Add(30 * time.Second); fromAlice == nil; {
		msgs, err := carol.Messages(ctx, "alice", "", 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Attachment != nil && m.Attachment.Name == "c.bin" {
				if fromAlice, err = carol.FetchAttachment(ctx, m.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("carol never got alice's file")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sha256.Sum256(fromAlice) != want {
		t.Fatal("carol decrypted different bytes")
	}

	// Native → browser: WebCrypto opens Go's chunks.
	data := goFile(size + 1)
	if _, err := carol.SendAttachment(ctx, "alice", client.File{Name: "n.bin", Data: data}); err != nil {
		t.Fatal(err)
	}
	if got, want := waitFile(t, alice, "carol", "n.bin"), sha256.Sum256(data); got != hex.EncodeToString(want[:]) {
		t.Fatalf("alice decrypted %s, want %x", got, want)
	}

	// Text both ways with the native engine: ratchet DH steps on both
	// sides (WebCrypto X25519 in the browser, Go natively).
	for i := range 3 {
		send(t, alice, "carol", fmt.Sprintf("ping %d", i))
		waitNative(t, carol, "alice", fmt.Sprintf("ping %d", i))
		if _, err := carol.SendText(ctx, "alice", fmt.Sprintf("pong %d", i)); err != nil {
			t.Fatal(err)
		}
		waitText(t, alice, "carol", fmt.Sprintf("pong %d", i))
	}

	// A group of the three: sender-key signatures made by WebCrypto verify
	// in Go and the reverse.
	g := MustEval[map[string]string](alice, `window.parley.createGroup('webcrypto', ['bob', 'carol'])`)["id"]
	send(t, alice, g, "group hello from a browser")
	waitText(t, bob, g, "group hello from a browser")
	waitNative(t, carol, g, "group hello from a browser")
	if _, err := carol.SendGroupText(ctx, g, "group hello from Go"); err != nil {
		t.Fatal(err)
	}
	waitText(t, alice, g, "group hello from Go")
	waitText(t, bob, g, "group hello from Go")
	send(t, bob, g, "and from the other browser")
	waitText(t, alice, g, "and from the other browser")
	waitNative(t, carol, g, "and from the other browser")
}

// waitNative waits until a native engine shows text in chat.
func waitNative(t *testing.T, e *client.Engine, chat, text string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		msgs, err := e.Messages(context.Background(), chat, "", 200)
		if err != nil {
			continue // the chat may not exist yet
		}
		for _, m := range msgs {
			if m.Text == text {
				return
			}
		}
	}
	t.Fatalf("%q never arrived natively in chat %q", text, chat)
}
