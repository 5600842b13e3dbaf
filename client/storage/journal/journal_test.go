package journal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/client/storage/storagetest"
)

var ctx = context.Background()

func open(t testing.TB, inner storage.Store) *Store {
	t.Helper()
	s, err := Open(ctx, inner)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	if err := storagetest.Run(ctx, open(t, memstore.New())); err != nil {
		t.Fatal(err)
	}
}

// countingStore records the batches that reach the inner store.
type countingStore struct {
	*memstore.Store
	batches []storage.Batch
}

func (c *countingStore) Commit(ctx context.Context, b *storage.Batch) error {
	c.batches = append(c.batches, storage.Batch{Ops: slices.Clone(b.Ops), Relaxed: b.Relaxed})
	return c.Store.Commit(ctx, b)
}

// receiveBatch is what the engine commits for a received message: the
// message-id insert, the message, ratchet, chat and receipt records.
func receiveBatch(i int) *storage.Batch {
	b := &storage.Batch{Relaxed: true}
	b.Insert("msgidx", fmt.Sprintf("id%04d", i), []byte("chat\x1fkey"))
	b.Put("msgs", fmt.Sprintf("bob\x1f%04d", i), []byte(strings.Repeat("m", 1100)))
	b.Put("sessions", "bob/01", []byte(fmt.Sprintf("ratchet %d", i)))
	b.Put("chats", "bob", []byte(fmt.Sprintf("chat %d", i)))
	b.Put("outbox", fmt.Sprintf("%016x", i), []byte("receipt"))
	return b
}

// A received message reaches the inner store as two records (the insert
// and one journal record), and the Sync writes each record once however
// many messages changed it.
func TestRelaxedBatchIsOneRecord(t *testing.T) {
	inner := &countingStore{Store: memstore.New()}
	s := open(t, inner)
	for i := range 10 {
		if err := s.Commit(ctx, receiveBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range inner.batches {
		if len(b.Ops) != 2 || !b.Relaxed || !b.Ops[0].IfAbsent || b.Ops[1].Bucket != Bucket {
			t.Fatalf("batch %d reached the store as %+v, want the insert and one journal record", i, b)
		}
	}
	if v, err := s.Get(ctx, "chats", "bob"); err != nil || string(v) != "chat 9" {
		t.Fatalf("chat before the Sync = %q, %v", v, err)
	}
	inner.batches = nil
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(inner.batches) != 1 || inner.batches[0].Relaxed {
		t.Fatalf("Sync committed %d batches, want one strict", len(inner.batches))
	}
	// 10 messages + 10 receipts + 1 ratchet + 1 chat, and 10 journal deletes.
	if n := len(inner.batches[0].Ops); n != 32 {
		t.Fatalf("Sync wrote %d operations, want 32", n)
	}
	n := 0
	_ = inner.Scan(ctx, Bucket, "", storage.ScanOptions{}, func(string, []byte) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d journal records left after the Sync", n)
	}
	if v, err := inner.Get(ctx, "sessions", "bob/01"); err != nil || string(v) != "ratchet 9" {
		t.Fatalf("ratchet in the inner store after Sync = %q, %v", v, err)
	}
}

// An insert is checked against the journal too: a key the journal holds
// is found, one it deleted is free again, and a refused batch leaves
// nothing behind.
func TestInsertAgainstJournal(t *testing.T) {
	inner := memstore.New()
	s := open(t, inner)
	if err := s.Commit(ctx, receiveBatch(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, receiveBatch(1)); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("the same message again = %v, want ErrExists", err)
	}
	b := storage.Batch{Relaxed: true}
	b.Put("x", "in-journal", []byte("1"))
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	b = storage.Batch{Relaxed: true}
	b.Insert("x", "in-journal", []byte("2"))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("insert over a journaled put = %v, want ErrExists", err)
	}
	b = storage.Batch{Relaxed: true}
	b.Delete("x", "in-journal")
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	b = storage.Batch{Relaxed: true}
	b.Insert("x", "in-journal", []byte("3"))
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatalf("insert after a journaled delete: %v", err)
	}
	if v, err := s.Get(ctx, "x", "in-journal"); err != nil || string(v) != "3" {
		t.Fatalf("after the insert = %q, %v", v, err)
	}
	if err := s.Commit(ctx, &storage.Batch{Ops: []storage.Op{{Bucket: Bucket, Key: "x", Value: []byte{}}}}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("a batch writing the journal's bucket = %v, want ErrInvalid", err)
	}
}

// model is the plain store the journal must be indistinguishable from.
type model map[string]map[string]string

func (m model) apply(b *storage.Batch) error {
	for i, op := range b.Ops {
		if !op.IfAbsent {
			continue
		}
		has := m[op.Bucket] != nil && m[op.Bucket][op.Key] != ""
		for _, o := range b.Ops[:i] {
			if o.Bucket == op.Bucket && o.Key == op.Key {
				has = o.Value != nil
			}
		}
		if has {
			return storage.ErrExists
		}
	}
	for _, op := range b.Ops {
		if m[op.Bucket] == nil {
			m[op.Bucket] = map[string]string{}
		}
		if op.Value == nil {
			delete(m[op.Bucket], op.Key)
		} else {
			m[op.Bucket][op.Key] = "v" + string(op.Value)
		}
	}
	return nil
}

func (m model) scan(bucket, prefix string, o storage.ScanOptions) []string {
	var keys []string
	for k := range m[bucket] {
		if strings.HasPrefix(k, prefix) && (o.After == "" || !o.Reverse && k > o.After || o.Reverse && k < o.After) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if o.Reverse {
		slices.Reverse(keys)
	}
	if o.Limit > 0 && len(keys) > o.Limit {
		keys = keys[:o.Limit]
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + m[bucket][k][1:]
	}
	return out
}

func scanAll(t *testing.T, s storage.Store, bucket, prefix string, o storage.ScanOptions) []string {
	t.Helper()
	out := []string{}
	if err := s.Scan(ctx, bucket, prefix, o, func(k string, v []byte) error {
		out = append(out, k+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMatchesPlainStore drives the journal with random batches (relaxed
// and strict, puts, deletes, inserts), Syncs and restarts, and checks
// every Get and Scan (prefixes, After, Reverse, Limit) against a plain
// model, with the journal full, empty and in between.
func TestMatchesPlainStore(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			inner := memstore.New()
			s := open(t, inner)
			m := model{}
			key := func() string { return fmt.Sprintf("%c%d", 'a'+r.IntN(3), r.IntN(12)) }
			for step := range 400 {
				switch x := r.IntN(20); {
				case x == 0:
					if err := s.Sync(ctx); err != nil {
						t.Fatal(err)
					}
				case x == 1:
					// A restart: Open on what a process crash leaves.
					s = open(t, inner.Snapshot())
					inner = nil
				default:
					b := storage.Batch{Relaxed: r.IntN(4) != 0}
					for range 1 + r.IntN(5) {
						bucket := []string{"p", "q"}[r.IntN(2)]
						switch r.IntN(4) {
						case 0:
							b.Delete(bucket, key())
						case 1:
							b.Insert(bucket, key(), []byte(fmt.Sprint(step)))
						default:
							b.Put(bucket, key(), []byte(fmt.Sprint(step)))
						}
					}
					want := m.apply(&storage.Batch{Ops: b.Ops}) // nothing on ErrExists
					if err := s.Commit(ctx, &b); !errors.Is(err, want) {
						t.Fatalf("step %d: Commit = %v, model %v", step, err, want)
					}
				}
				if inner == nil {
					inner = s.inner.(*memstore.Store)
				}
				for _, bucket := range []string{"p", "q"} {
					k := key()
					v, err := s.Get(ctx, bucket, k)
					if want, ok := m[bucket][k]; ok != (err == nil) || ok && string(v) != want[1:] {
						t.Fatalf("step %d: Get %s/%s = %q, %v; model %q", step, bucket, k, v, err, want)
					}
					o := storage.ScanOptions{Reverse: r.IntN(2) == 0, Limit: r.IntN(4)}
					if r.IntN(2) == 0 {
						o.After = key()
					}
					prefix := []string{"", "a", "b1", "c"}[r.IntN(4)]
					if got, want := scanAll(t, s, bucket, prefix, o), m.scan(bucket, prefix, o); !slices.Equal(got, want) {
						t.Fatalf("step %d: Scan %s %q %+v = %v, model %v", step, bucket, prefix, o, got, want)
					}
				}
			}
		})
	}
}

// A process crash keeps every journaled batch (Open applies them); a power
// cut loses the unsynced ones whole and keeps every one a Sync covered.
func TestCrashAndPowerCut(t *testing.T) {
	inner := memstore.New()
	s := open(t, inner)
	for i := range 3 {
		if err := s.Commit(ctx, receiveBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		if err := s.Commit(ctx, receiveBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Pending() != 3 {
		t.Fatalf("%d journal records pending, want 3", s.Pending())
	}
	check := func(st storage.Store, n int) {
		t.Helper()
		after := open(t, st)
		if after.Replayed() != n-3 {
			t.Fatalf("Open replayed %d journal records, want %d", after.Replayed(), n-3)
		}
		msgs := scanAll(t, after, "msgs", "", storage.ScanOptions{})
		idx := scanAll(t, after, "msgidx", "", storage.ScanOptions{})
		chat, _ := after.Get(ctx, "chats", "bob")
		if len(msgs) != n || len(idx) != n || string(chat) != fmt.Sprintf("chat %d", n-1) {
			t.Fatalf("after restart: %d messages, %d ids, chat %q; want %d", len(msgs), len(idx), chat, n)
		}
		left := scanAll(t, st, Bucket, "", storage.ScanOptions{})
		if len(left) != 0 {
			t.Fatalf("%d journal records left after Open", len(left))
		}
	}
	check(inner.Snapshot(), 6)
	check(inner.PowerCut(), 3)
}

// A journal record that does not decode stops Open with ErrCorrupt, and
// nothing is deleted.
func TestCorruptJournalRecord(t *testing.T) {
	inner := memstore.New()
	b := storage.Batch{}
	b.Put(Bucket, "0000000000000001", []byte{9, 9})
	if err := inner.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, inner); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Open over a damaged journal record = %v, want ErrCorrupt", err)
	}
	if v, err := inner.Get(ctx, Bucket, "0000000000000001"); err != nil || len(v) != 2 {
		t.Fatalf("the damaged record was removed: %v", err)
	}
}

// Close forgets the values the journal held in memory and refuses
// further use; the journal records stay, and the next Open applies them.
func TestClose(t *testing.T) {
	inner := memstore.New()
	s := open(t, inner)
	if err := s.Commit(ctx, receiveBatch(0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(s.overlay) != 0 || s.bytes != 0 {
		t.Fatalf("Close left %d values (%d bytes) in memory", len(s.overlay), s.bytes)
	}
	if _, err := s.Get(ctx, "chats", "bob"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Commit(ctx, receiveBatch(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close = %v, want ErrClosed", err)
	}
	again := open(t, inner)
	if v, err := again.Get(ctx, "chats", "bob"); err != nil || string(v) != "chat 0" {
		t.Fatalf("after Close and Open the chat = %q, %v", v, err)
	}
}

// The journal stays bounded: past maxOverlayOps a relaxed batch applies
// it first.
func TestOverlayBounded(t *testing.T) {
	inner := memstore.New()
	s := open(t, inner)
	for i := range 400 {
		if err := s.Commit(ctx, receiveBatch(i)); err != nil {
			t.Fatal(err)
		}
		if len(s.overlay) > maxOverlayOps || s.bytes > maxOverlayBytes {
			t.Fatalf("after %d batches the journal holds %d values, %d bytes", i+1, len(s.overlay), s.bytes)
		}
	}
	if got := scanAll(t, s, "msgs", "", storage.ScanOptions{}); len(got) != 400 {
		t.Fatalf("%d messages readable, want 400", len(got))
	}
}

func TestEntryRoundTrip(t *testing.T) {
	ops := []storage.Op{{Bucket: "a", Key: "k", Value: []byte("v")}, {Bucket: "b", Key: ""}, {Bucket: "c", Key: "e", Value: []byte{}}}
	got, err := decodeEntry(encodeEntry(ops))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ops {
		if got[i].Bucket != ops[i].Bucket || got[i].Key != ops[i].Key || (got[i].Value == nil) != (ops[i].Value == nil) || string(got[i].Value) != string(ops[i].Value) {
			t.Fatalf("op %d: %+v, want %+v", i, got[i], ops[i])
		}
	}
	for name, b := range map[string][]byte{
		"fail_empty":       nil,
		"fail_version":     {2, 0, 0, 0, 1},
		"fail_no_ops":      {1, 0, 0, 0, 0},
		"fail_kind":        append(encodeEntry(ops[:1])[:5], 7),
		"fail_trailing":    append(encodeEntry(ops), 0),
		"fail_bad_bucket":  encodeEntry([]storage.Op{{Bucket: "A!", Key: "k"}}),
		"fail_truncated":   encodeEntry(ops)[:12],
		"fail_huge_count":  {1, 0xff, 0xff, 0xff, 0xff},
		"fail_huge_length": {1, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := decodeEntry(b); !errors.Is(err, errEntry) {
			t.Errorf("%s: %v, want errEntry", name, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry([]storage.Op{{Bucket: "a", Key: "k", Value: []byte("v")}, {Bucket: "b", Key: "d"}}))
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := decodeEntry(b)
		if err != nil {
			return
		}
		if len(ops) == 0 || len(ops) > storage.MaxBatchOps {
			t.Fatalf("%d operations", len(ops))
		}
		if again := encodeEntry(ops); string(again) != string(b) {
			t.Fatalf("re-encoded %x, input %x", again, b)
		}
	})
}
