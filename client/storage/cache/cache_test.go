package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/client/storage/storagetest"
)

func TestConformance(t *testing.T) {
	if err := storagetest.Run(context.Background(), New(memstore.New(), 0)); err != nil {
		t.Fatal(err)
	}
	// A tiny cache evicts constantly; it must still be a correct store.
	if err := storagetest.Run(context.Background(), New(memstore.New(), 2048)); err != nil {
		t.Fatalf("small cache: %v", err)
	}
}

func put(t *testing.T, s storage.Store, kv ...string) {
	t.Helper()
	var b storage.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Put("b", kv[i], []byte(kv[i+1]))
	}
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

func get(s storage.Store, key string) string {
	v, err := s.Get(context.Background(), "b", key)
	if err != nil {
		return err.Error()
	}
	return string(v)
}

// countingStore counts the Gets that reach the inner store.
type countingStore struct {
	*memstore.Store
	gets int
	// during, if set, runs inside Get after the inner read (to race a
	// Commit against a filling Get).
	during func()
}

func (c *countingStore) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	c.gets++
	v, err := c.Store.Get(ctx, bucket, key)
	if c.during != nil {
		f := c.during
		c.during = nil
		f()
	}
	return v, err
}

func TestHitsAndWriteThrough(t *testing.T) {
	inner := &countingStore{Store: memstore.New()}
	s := New(inner, 0)
	put(t, s, "a", "1")
	if got := get(s, "a"); got != "1" {
		t.Fatalf("a = %q", got)
	}
	if inner.gets != 0 {
		t.Fatalf("a value just committed was read from the inner store")
	}
	// Absent keys are remembered too, until a Commit writes them.
	get(s, "x")
	get(s, "x")
	if inner.gets != 1 {
		t.Fatalf("%d inner reads of a missing key, want 1", inner.gets)
	}
	put(t, s, "x", "now")
	if got := get(s, "x"); got != "now" {
		t.Fatalf("x after put = %q", got)
	}
	var b storage.Batch
	b.Delete("b", "a")
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "b", "a"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if st := s.Stats(); st.Hits < 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCopies: callers own what they pass in and get out.
func TestCopies(t *testing.T) {
	s := New(memstore.New(), 0)
	v := []byte("abc")
	var b storage.Batch
	b.Put("b", "k", v)
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, _ := s.Get(context.Background(), "b", "k")
	got[1] = 'Y'
	if again := get(s, "k"); again != "abc" {
		t.Fatalf("cached value aliased a caller's slice: %q", again)
	}
}

// TestFailedCommit: a Commit that fails changes nothing in the cache that
// the inner store did not keep.
func TestFailedCommit(t *testing.T) {
	inner := memstore.New()
	s := New(inner, 0)
	put(t, s, "a", "old")
	inner.FailAfter = 1
	var b storage.Batch
	b.Put("b", "a", []byte("new"))
	if err := s.Commit(context.Background(), &b); err == nil {
		t.Fatal("injected failure not reported")
	}
	if got := get(s, "a"); got != "old" {
		t.Fatalf("after a failed commit a = %q, want old", got)
	}
	// An invalid batch is refused whole, cache included.
	s2 := New(memstore.New(), 0)
	put(t, s2, "x", "1")
	b = storage.Batch{}
	b.Put("b", "x", []byte("2"))
	b.Put("BAD", "y", []byte("y"))
	if err := s2.Commit(context.Background(), &b); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("invalid batch: %v", err)
	}
	if got := get(s2, "x"); got != "1" {
		t.Fatalf("x = %q after a refused batch", got)
	}
}

// TestFillRace: a Get that read the old value while a Commit replaced it
// must not put the old value back.
func TestFillRace(t *testing.T) {
	inner := &countingStore{Store: memstore.New()}
	put(t, inner.Store, "k", "old")
	s := New(inner, 0)
	inner.during = func() { put(t, s, "k", "new") }
	if got := get(s, "k"); got != "old" {
		t.Fatalf("racing get = %q", got)
	}
	if got := get(s, "k"); got != "new" {
		t.Fatalf("after the race k = %q, want new", got)
	}
}

func TestBoundedAndEvicts(t *testing.T) {
	const limit = 16 << 10
	inner := &countingStore{Store: memstore.New()}
	s := New(inner, limit)
	val := bytes.Repeat([]byte("v"), 500)
	for i := range 200 {
		var b storage.Batch
		b.Put("b", fmt.Sprintf("k%03d", i), val)
		if err := s.Commit(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Bytes > limit {
			t.Fatalf("cache holds %d bytes, limit %d", st.Bytes, limit)
		}
	}
	// The oldest were evicted and come from the inner store, intact.
	if got := get(s, "k000"); got != string(val) {
		t.Fatalf("evicted value reads back wrong")
	}
	if inner.gets != 1 {
		t.Fatalf("%d inner reads", inner.gets)
	}
	// A value over the per-entry share is never cached.
	big := bytes.Repeat([]byte("B"), limit/maxEntryShare+1)
	var b storage.Batch
	b.Put("b", "big", big)
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	get(s, "big")
	if inner.gets != 2 {
		t.Fatalf("a large value was cached")
	}
}

func TestClose(t *testing.T) {
	inner := &countingStore{Store: memstore.New()}
	s := New(inner, 0)
	put(t, s, "a", "1")
	s.Close()
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("closed cache still holds %+v", st)
	}
	if got := get(s, "a"); got != "1" || inner.gets != 1 {
		t.Fatalf("closed cache: a = %q, %d inner reads", got, inner.gets)
	}
	put(t, s, "b", "2")
	get(s, "a")
	if st := s.Stats(); st.Entries != 0 || inner.gets != 2 {
		t.Fatalf("closed cache caches again: %+v", st)
	}
}

// multiStore is a memstore with GetMany.
type multiStore struct {
	*countingStore
	many int
}

func (m *multiStore) GetMany(ctx context.Context, refs []Ref) ([][]byte, []error, error) {
	m.many++
	vals, errs := make([][]byte, len(refs)), make([]error, len(refs))
	for i, r := range refs {
		vals[i], errs[i] = m.Store.Get(ctx, r.Bucket, r.Key)
	}
	return vals, errs, nil
}

func TestWarm(t *testing.T) {
	inner := &multiStore{countingStore: &countingStore{Store: memstore.New()}}
	put(t, inner.Store, "a", "1")
	s := New(inner, 0)
	if err := s.Warm(context.Background(), []Ref{{"b", "a"}, {"b", "missing"}}); err != nil {
		t.Fatal(err)
	}
	if got := get(s, "a"); got != "1" {
		t.Fatalf("a = %q", got)
	}
	if _, err := s.Get(context.Background(), "b", "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if inner.many != 1 || inner.gets != 0 {
		t.Fatalf("%d GetMany, %d Gets; want 1 and 0", inner.many, inner.gets)
	}
	// Prime fills from values read elsewhere: no read at all, a value
	// and an absence served from the cache, a failed read not cached.
	p := New(inner, 0)
	p.Prime([]Ref{{"b", "a"}, {"b", "gone"}, {"b", "err"}}, [][]byte{[]byte("1"), nil, nil},
		[]error{nil, storage.ErrNotFound, errors.New("read failed")})
	if got := get(p, "a"); got != "1" {
		t.Fatalf("primed a = %q", got)
	}
	if _, err := p.Get(context.Background(), "b", "gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("primed absence: %v", err)
	}
	if inner.many != 1 || inner.gets != 0 {
		t.Fatalf("after Prime: %d GetMany, %d Gets; want 1 and 0", inner.many, inner.gets)
	}
	if _, err := p.Get(context.Background(), "b", "err"); !errors.Is(err, storage.ErrNotFound) || inner.gets != 1 {
		t.Fatalf("a failed read was cached: %v, %d Gets", err, inner.gets)
	}
	// Without GetMany, Warm is a no-op.
	plain := &countingStore{Store: memstore.New()}
	if err := New(plain, 0).Warm(context.Background(), []Ref{{"b", "a"}}); err != nil || plain.gets != 0 {
		t.Fatalf("warm without GetMany: %v, %d gets", err, plain.gets)
	}
}
