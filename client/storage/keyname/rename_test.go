package keyname

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
)

var renameRules = map[string]Rule{
	"lists":    {Sep: '/', Parts: []Part{Name}},
	"sessions": {Sep: '/', Parts: []Part{Name, Name}},
	"msgs":     {Sep: '\x1f', Parts: []Part{Name, Clear}},
}

// olderProfile is a store as a client from before the naming layer left
// it: n contacts with a list, a session and two messages each, under
// their clear keys, and an unnamed bucket.
func olderProfile(t *testing.T, n int) *memstore.Store {
	t.Helper()
	raw := memstore.New()
	var b storage.Batch
	for i := range n {
		h := fmt.Sprintf("contact%03d", i)
		b.Put("lists", h, []byte("list of "+h))
		b.Put("sessions", h+"/0102", []byte("session of "+h))
		b.Put("msgs", h+"\x1f0001", []byte("first to "+h))
		b.Put("msgs", h+"\x1f0002", []byte("second to "+h))
		if b.Len() >= 1000 {
			if err := raw.Commit(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			b = storage.Batch{}
		}
	}
	b.Put("self", "account", []byte("me"))
	if err := raw.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return raw
}

// checkRenamed wants every record readable through the layer, in order,
// and no stored key naming a contact.
func checkRenamed(t *testing.T, raw *memstore.Store, n int) {
	t.Helper()
	s := New(raw, &testKey, renameRules)
	raw.Each(func(bucket, key string, _ []byte) {
		if strings.Contains(key, "contact") {
			t.Errorf("stored key %s/%q still names a contact", bucket, key)
		}
	})
	for i := range n {
		h := fmt.Sprintf("contact%03d", i)
		if v, err := s.Get(context.Background(), "lists", h); err != nil || string(v) != "list of "+h {
			t.Fatalf("lists/%s = %q, %v", h, v, err)
		}
		if got := scanAll(t, s, "msgs", h+"\x1f", storage.ScanOptions{Reverse: true}); got != fmt.Sprintf("%q=%q %q=%q", h+"\x1f0002", "second to "+h, h+"\x1f0001", "first to "+h) {
			t.Fatalf("history of %s = %s", h, got)
		}
	}
	if v, err := s.Get(context.Background(), "self", "account"); err != nil || string(v) != "me" {
		t.Fatalf("an unnamed bucket changed: %q, %v", v, err)
	}
}

// TestRenameHidesAnOlderProfilesContacts: an older profile's records move
// to their names, the profile reads as before, and a second Rename finds
// nothing to do.
func TestRenameHidesAnOlderProfilesContacts(t *testing.T) {
	const n = 300 // more than one page of every bucket
	raw := olderProfile(t, n)
	s := New(raw, &testKey, renameRules)
	moved, err := s.Rename(context.Background())
	if err != nil || moved != 4*n {
		t.Fatalf("Rename moved %d records, %v; want %d", moved, err, 4*n)
	}
	checkRenamed(t, raw, n)
	if moved, err := s.Rename(context.Background()); err != nil || moved != 0 {
		t.Fatalf("a second Rename moved %d, %v; want 0", moved, err)
	}
}

// TestRenameResumesAfterACrash: a process that dies after any step of
// the renaming leaves a profile the next Rename completes.
func TestRenameResumesAfterACrash(t *testing.T) {
	const n = 300
	for fail := 1; ; fail++ {
		raw := olderProfile(t, n)
		raw.FailAfter = fail
		_, err := New(raw, &testKey, renameRules).Rename(context.Background())
		if err == nil {
			if fail < 3 {
				t.Fatalf("the renaming finished in %d steps: too few to test a crash between them", fail-1)
			}
			return
		}
		if !errors.Is(err, memstore.ErrInjected) {
			t.Fatal(err)
		}
		restarted := raw.Snapshot()
		moved, err := New(restarted, &testKey, renameRules).Rename(context.Background())
		if err != nil || moved == 0 {
			t.Fatalf("crash at step %d: the resumed Rename moved %d, %v", fail, moved, err)
		}
		checkRenamed(t, restarted, n)
	}
}
