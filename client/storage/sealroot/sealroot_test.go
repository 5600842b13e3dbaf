package sealroot

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/client/storage/storagetest"
)

var testOpts = Options{Bucket: "_meta", Key: "root", Covered: []Range{{"sessions", ""}, {"lists", ""}, {"_meta", "idle-lock"}}}

func put(t *testing.T, s storage.Store, bucket, key, value string) {
	t.Helper()
	var b storage.Batch
	if value == "" {
		b.Delete(bucket, key)
	} else {
		b.Put(bucket, key, []byte(value))
	}
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

// newStore is a memstore with a root and a few covered records written
// through it; raw is the store below, which the attacker writes.
func newStore(t *testing.T) (raw storage.Store, s *Store) {
	t.Helper()
	raw = memstore.New()
	rec, err := NewRecord()
	if err != nil {
		t.Fatal(err)
	}
	put(t, raw, "_meta", "root", string(rec))
	s, err = Open(context.Background(), raw, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "sessions", "bob/01", "ratchet v1")
	put(t, s, "lists", "bob", "pinned key")
	put(t, s, "_meta", "idle-lock", "60000")
	put(t, s, "msgs", "bob/1", "hello") // not covered
	return raw, s
}

func reopen(raw storage.Store) error {
	_, err := Open(context.Background(), raw, testOpts)
	return err
}

func TestIntactStoreOpens(t *testing.T) {
	raw, s := newStore(t)
	put(t, s, "sessions", "bob/01", "ratchet v2")
	var b storage.Batch // one record changed twice and one deleted in one batch
	b.Put("sessions", "carol/01", []byte("a"))
	b.Put("sessions", "carol/01", []byte("b"))
	b.Delete("lists", "bob")
	b.Put("lists", "bob", []byte("pinned key 2"))
	b.Delete("sessions", "nobody/01")
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	put(t, raw, "msgs", "bob/2", "uncovered records may change below")
	if err := reopen(raw); err != nil {
		t.Fatalf("an untouched store does not open: %v", err)
	}
}

func TestRestoredOldRecordDetected(t *testing.T) {
	raw, s := newStore(t)
	put(t, s, "sessions", "bob/01", "ratchet v2")
	put(t, raw, "sessions", "bob/01", "ratchet v1") // the attacker's old copy
	if err := reopen(raw); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("restored old session record: Open = %v, want ErrRolledBack", err)
	}
}

func TestDeletedRecordDetected(t *testing.T) {
	for _, r := range [][2]string{{"lists", "bob"}, {"_meta", "idle-lock"}, {"_meta", "root"}} {
		raw, _ := newStore(t)
		put(t, raw, r[0], r[1], "")
		if err := reopen(raw); !errors.Is(err, ErrRolledBack) {
			t.Fatalf("deleted %s/%s: Open = %v, want ErrRolledBack", r[0], r[1], err)
		}
	}
}

func TestAddedRecordDetected(t *testing.T) {
	raw, _ := newStore(t)
	put(t, raw, "sessions", "mallory/01", "ratchet")
	if err := reopen(raw); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("added session record: Open = %v, want ErrRolledBack", err)
	}
}

func TestCreateFromExistingRecords(t *testing.T) {
	raw := memstore.New()
	put(t, raw, "sessions", "bob/01", "ratchet")
	o := testOpts
	o.Create = true
	o.OnCreate = []storage.Op{{Bucket: "_meta", Key: "canary", Value: []byte("v2")}}
	if _, err := Open(context.Background(), raw, o); err != nil {
		t.Fatal(err)
	}
	if v, err := raw.Get(context.Background(), "_meta", "canary"); err != nil || string(v) != "v2" {
		t.Fatalf("OnCreate not committed: %q %v", v, err)
	}
	if err := reopen(raw); err != nil {
		t.Fatalf("a created root does not reopen: %v", err)
	}
}

func TestCommitRefusesRootRecord(t *testing.T) {
	_, s := newStore(t)
	var b storage.Batch
	b.Put("_meta", "root", make([]byte, RecordLen))
	if err := s.Commit(context.Background(), &b); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("writing the root record through the store: %v", err)
	}
}

func TestMalformedRoot(t *testing.T) {
	for _, v := range [][]byte{nil, make([]byte, RecordLen-1), append([]byte{2}, make([]byte, RecordLen-1)...)} {
		if _, err := decode(v); !errors.Is(err, ErrMalformed) {
			t.Fatalf("decode(%x) = %v", v, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	rec, _ := NewRecord()
	f.Add(rec)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.encode(), b) {
			t.Fatalf("decode/encode is not the identity on %x", b)
		}
	})
}

// TestConformance: the Store is a storage.Store like any other, with its
// suite's buckets covered, and the root it kept still matches after.
func TestConformance(t *testing.T) {
	raw := memstore.New()
	o := Options{Bucket: "_meta", Key: "root", Create: true}
	for _, b := range []string{"t", "s", "ins", "relaxed", "a", "b", "b1", "b2", "big", "limits", "one", "other", "p"} {
		o.Covered = append(o.Covered, Range{Bucket: b})
	}
	s, err := Open(context.Background(), raw, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := storagetest.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	o.Create = false
	if _, err := Open(context.Background(), raw, o); err != nil {
		t.Fatalf("the root kept through the suite does not match: %v", err)
	}
}
