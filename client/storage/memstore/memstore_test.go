package memstore

import (
	"context"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/storagetest"
)

func TestConformance(t *testing.T) {
	if err := storagetest.Run(context.Background(), New()); err != nil {
		t.Fatal(err)
	}
}

// TestPowerCut: a relaxed batch survives a process crash (Snapshot) but
// not a power cut (PowerCut) until a Sync or a later strict Commit covers
// it; a strict Commit never loses anything.
func TestPowerCut(t *testing.T) {
	ctx := context.Background()
	s := New()
	put := func(key string, relaxed bool) {
		t.Helper()
		b := storage.Batch{Relaxed: relaxed}
		b.Put("t", key, []byte(key))
		if err := s.Commit(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	has := func(st *Store, key string) bool {
		_, err := st.Get(ctx, "t", key)
		return err == nil
	}
	put("strict", false)
	put("relaxed1", true)
	if !has(s.Snapshot(), "relaxed1") || has(s.PowerCut(), "relaxed1") || !has(s.PowerCut(), "strict") {
		t.Fatal("a relaxed batch must survive a process crash and only that")
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !has(s.PowerCut(), "relaxed1") {
		t.Fatal("Sync did not make the relaxed batch durable")
	}
	put("relaxed2", true)
	put("strict2", false)
	if !has(s.PowerCut(), "relaxed2") {
		t.Fatal("a strict Commit did not cover the relaxed batch before it")
	}
	put("relaxed3", true)
	s.FailAfter = 1
	put2 := storage.Batch{}
	put2.Put("t", "x", []byte("x"))
	if err := s.Commit(ctx, &put2); err == nil {
		t.Fatal("injected failure did not happen")
	}
	if err := s.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded on a dead store")
	}
	if has(s.PowerCut(), "relaxed3") {
		t.Fatal("the dead store made a relaxed batch durable")
	}
}
