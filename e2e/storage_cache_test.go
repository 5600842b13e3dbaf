package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCachedIndexedDBStoreConformance runs client/storage/storagetest
// against the engine's read cache in front of the sealed IndexedDB store
// (the owner tab's engine has the journal between them, wasm/engine.go,
// tested below).
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

// TestJournaledIndexedDBStoreConformance runs it against the journal in
// front of the sealed IndexedDB store (client/storage/journal), where a
// relaxed batch's inserts are IndexedDB add()s next to one journal record.
func TestJournaledIndexedDBStoreConformance(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	if msg := MustEval[string](b, `window.parley.__test.conformanceJournal('conformance-journal')`); msg != "" {
		t.Fatalf("the journaled IndexedDB store fails the storage conformance suite: %s", msg)
	}
	b.CheckConsole()
}
