package e2e

import (
	"fmt"
	"testing"
)

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

// TestLockWaitsForCommit closes a sealed IndexedDB store (what a lock
// does) while a relaxed commit waits for IndexedDB: the close returns only
// after the commit has ended, and the commit, begun before the lock,
// succeeds. Otherwise an unlock within milliseconds could read the
// journal before the stopped engine's last record landed (PROTOCOL.md
// 13.6).
func TestLockWaitsForCommit(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	for i := range 3 {
		r := MustEval[map[string]any](b, fmt.Sprintf(`window.parley.__test.lockDuringCommit('lock-during-commit-%d')`, i))
		if r["err"] != "" || r["ended"] != true {
			t.Fatalf("commit under way at a lock: %v, want ended before close returned, without error", r)
		}
	}
	b.CheckConsole()
}
