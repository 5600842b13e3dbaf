package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCachedIndexedDBStoreConformance runs client/storage/storagetest
// against the engine's read cache in front of the sealed IndexedDB store,
// the stack the owner tab's engine uses (wasm/engine.go).
func TestCachedIndexedDBStoreConformance(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	if msg := MustEval[string](b, `window.parley.__test.conformanceCached('conformance-cached')`); msg != "" {
		t.Fatalf("the cached IndexedDB store fails the storage conformance suite: %s", msg)
	}
	b.CheckConsole()
}
