package e2e

import "testing"

// TestCachedIndexedDBStoreConformance runs client/storage/storagetest
// against the engine's read cache in front of the sealed IndexedDB store
// (the owner tab's engine has the journal between them, wasm/engine.go,
// tested below).
func TestCachedIndexedDBStoreConformance(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	mustConform(t, b, "conformance-cached", "cache", "the cached IndexedDB store")
	b.CheckConsole()
}

// TestJournaledIndexedDBStoreConformance runs it against the journal in
// front of the sealed IndexedDB store (client/storage/journal), where a
// relaxed batch's inserts are IndexedDB add()s next to one journal record.
func TestJournaledIndexedDBStoreConformance(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	mustConform(t, b, "conformance-journal", "journal", "the journaled IndexedDB store")
	b.CheckConsole()
}
