package keyname

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/client/storage/storagetest"
)

var testKey = [KeySize]byte{1, 2, 3}

// TestConformance runs the suite with every bucket it uses named, under
// rules that take each Scan path: "s" keeps its order in a Clear part
// after a name (streamed), or is one whole name (sorted), or names the
// part after a clear one.
func TestConformance(t *testing.T) {
	whole := Rule{Sep: '/', Parts: []Part{Name}}
	for _, s := range []Rule{
		{Sep: '/', Parts: []Part{Name, Clear}},
		whole,
		{Sep: '/', Parts: []Part{Clear, Name}},
	} {
		rules := map[string]Rule{"t": whole, "s": s, "relaxed": whole, "ins": whole, "b1": whole, "b2": s}
		if err := storagetest.Run(context.Background(), New(memstore.New(), &testKey, rules)); err != nil {
			t.Errorf("rule %v: %v", s, err)
		}
	}
	if err := storagetest.Run(context.Background(), New(memstore.New(), &testKey, nil)); err != nil {
		t.Errorf("no rules: %v", err)
	}
}

// TestCopiedProfileNamesNoContact is the attack of issue 20 item 6 at this
// layer: a dump of the store below (what a copied IndexedDB shows, less
// the sealed values) holds no handle, device or group of a contact, in any
// bucket the rules name.
func TestCopiedProfileNamesNoContact(t *testing.T) {
	ctx := context.Background()
	raw := memstore.New()
	s := New(raw, &testKey, map[string]Rule{
		"lists":    {Sep: '/', Parts: []Part{Name}},
		"sessions": {Sep: '/', Parts: []Part{Name, Name}},
		"msgs":     {Sep: '\x1f', Parts: []Part{Name, Clear}},
		"grecv":    {Sep: '/', Parts: []Part{Name, Name, Name, Name}},
	})
	secrets := []string{"bobbyhandle", "c0ffee00c0ffee00", "9a9a9a9a9a9a9a9a"}
	var b storage.Batch
	b.Put("lists", "bobbyhandle", []byte("list"))
	b.Put("sessions", "bobbyhandle/c0ffee00c0ffee00", []byte("ratchet"))
	b.Put("msgs", "bobbyhandle\x1f000001", []byte("hello"))
	b.Put("grecv", "9a9a9a9a9a9a9a9a/bobbyhandle/c0ffee00c0ffee00/0001", []byte("chain"))
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	n := 0
	raw.Each(func(bucket, key string, _ []byte) {
		n++
		for _, name := range secrets {
			if strings.Contains(key, name) {
				t.Errorf("stored key %s/%q names %q", bucket, key, name)
			}
		}
	})
	if n != 4 {
		t.Fatalf("%d records stored, want 4", n)
	}
	if v, err := s.Get(ctx, "sessions", "bobbyhandle/c0ffee00c0ffee00"); err != nil || string(v) != "ratchet" {
		t.Fatalf("Get through the layer = %q, %v", v, err)
	}
}

// TestRecordMovedToAnotherNameIsCorrupt: a stored record copied under
// another stored name (which sealing below would not notice had the
// attacker the data key, or that a bug could do) reads as corrupt, not as
// the other contact's record.
func TestRecordMovedToAnotherNameIsCorrupt(t *testing.T) {
	ctx := context.Background()
	raw := memstore.New()
	rules := map[string]Rule{"lists": {Sep: '/', Parts: []Part{Name}}}
	s := New(raw, &testKey, rules)
	var b storage.Batch
	b.Put("lists", "alice", []byte("alice's key"))
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	v, err := raw.Get(ctx, "lists", s.storedKey("lists", rules["lists"], "alice"))
	if err != nil {
		t.Fatal(err)
	}
	b = storage.Batch{}
	b.Put("lists", s.storedKey("lists", rules["lists"], "mallory"), v)
	if err := raw.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "lists", "mallory"); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Get of a moved record = %v, want ErrCorrupt", err)
	}
	err = s.Scan(ctx, "lists", "", storage.ScanOptions{}, func(string, []byte) error { return nil })
	if !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Scan over a moved record = %v, want ErrCorrupt", err)
	}
}

// TestScanMatchesPlainStore replays random batches and scans on the layer
// and on a plain store and wants the same answers: every prefix, paging
// and order the engine may ask, on either Scan path.
func TestScanMatchesPlainStore(t *testing.T) {
	ctx := context.Background()
	rules := map[string]Rule{
		"a": {Sep: '/', Parts: []Part{Name, Clear}},
		"b": {Sep: '/', Parts: []Part{Name, Name, Clear}},
		"c": {Sep: '/', Parts: []Part{Clear, Name, Clear}},
		"d": {Sep: '/', Parts: []Part{Name}},
	}
	plain := memstore.New()
	named := New(memstore.New(), &testKey, rules)
	rng := rand.New(rand.NewSource(20))
	alphabet := []string{"", "x", "y", "xy", "/", "//", "0", "1"}
	randKey := func() string {
		var sb strings.Builder
		for range rng.Intn(5) {
			sb.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		return sb.String()
	}
	buckets := []string{"a", "b", "c", "d"}
	for round := range 300 {
		var b storage.Batch
		for range 1 + rng.Intn(4) {
			bucket, key := buckets[rng.Intn(len(buckets))], randKey()
			if rng.Intn(4) == 0 {
				b.Delete(bucket, key)
			} else {
				b.Put(bucket, key, []byte(key+"!"))
			}
		}
		if err1, err2 := plain.Commit(ctx, &b), named.Commit(ctx, &b); (err1 == nil) != (err2 == nil) {
			t.Fatalf("round %d: Commit = %v on the plain store, %v on the layer", round, err1, err2)
		}
		bucket := buckets[rng.Intn(len(buckets))]
		prefix := randKey()
		opts := storage.ScanOptions{Reverse: rng.Intn(2) == 0, Limit: rng.Intn(4)}
		if rng.Intn(2) == 0 {
			opts.After = randKey()
		}
		if got, want := scanAll(t, named, bucket, prefix, opts), scanAll(t, plain, bucket, prefix, opts); got != want {
			t.Fatalf("round %d: Scan(%s, %q, %+v) = %s, want %s", round, bucket, prefix, opts, got, want)
		}
	}
}

func scanAll(t *testing.T, s storage.Store, bucket, prefix string, opts storage.ScanOptions) string {
	t.Helper()
	var out []string
	err := s.Scan(context.Background(), bucket, prefix, opts, func(k string, v []byte) error {
		out = append(out, fmt.Sprintf("%q=%q", k, v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// TestStreamedScanNeedsClearRest pins which prefixes stream: only those
// that fix every name they reach and leave no name after.
func TestStreamedScanNeedsClearRest(t *testing.T) {
	s := New(memstore.New(), &testKey, nil)
	for _, c := range []struct {
		rule    Rule
		prefix  string
		ordered bool
	}{
		{Rule{'\x1f', []Part{Name, Clear}}, "bob\x1f", true},
		{Rule{'\x1f', []Part{Name, Clear}}, "bob\x1f0000", true},
		{Rule{'\x1f', []Part{Name, Clear}}, "bob", false},
		{Rule{'\x1f', []Part{Name, Clear}}, "", false},
		{Rule{'/', []Part{Name, Name}}, "bob/", false},
		{Rule{'/', []Part{Clear, Clear, Name}}, "seen/0001", false},
		{Rule{'/', []Part{Clear, Clear, Name}}, "spk", false},
		{Rule{'/', []Part{Name, Name, Name, Clear}}, "bob/01/02/", true},
	} {
		if _, ordered := s.scanPlan("b", c.rule, c.prefix); ordered != c.ordered {
			t.Errorf("%v prefix %q streams = %v, want %v", c.rule, c.prefix, ordered, c.ordered)
		}
	}
}

func FuzzOpenValue(f *testing.F) {
	f.Add(sealValue("bob/01", []byte("v")))
	f.Add([]byte{1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, v, err := openValue(b)
		if err != nil {
			return
		}
		if got := sealValue(k, v); string(got) != string(b) {
			t.Fatalf("open/seal is not the identity on %x", b)
		}
	})
}
