// Package storagetest is the conformance suite every storage.Store
// implementation must pass: the memory and file stores run it natively, and
// the browser's IndexedDB store runs it inside Chromium.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/client/storage"
)

// Run checks s, which must be empty, and returns the first violation. It
// is written without testing.T so the wasm build can run it in a page.
func Run(ctx context.Context, s storage.Store) error {
	for _, c := range []struct {
		name string
		fn   func(context.Context, storage.Store) error
	}{
		{"get missing", getMissing},
		{"put get delete", putGetDelete},
		{"batch atomic on invalid", batchAtomic},
		{"scan order and paging", scanOrder},
		{"buckets are separate", bucketsSeparate},
		{"limits", limits},
		{"relaxed commits then sync", relaxedThenSync},
		{"insert if absent", insertIfAbsent},
	} {
		if err := c.fn(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

func getMissing(ctx context.Context, s storage.Store) error {
	if _, err := s.Get(ctx, "t", "missing"); !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("Get missing = %v, want ErrNotFound", err)
	}
	return nil
}

func putGetDelete(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	b.Put("t", "a", []byte("one"))
	b.Put("t", "b", []byte{})
	b.Put("t", "a", []byte("two")) // later op wins
	if err := s.Commit(ctx, &b); err != nil {
		return err
	}
	if v, err := s.Get(ctx, "t", "a"); err != nil || string(v) != "two" {
		return fmt.Errorf("Get a = %q, %v", v, err)
	}
	if v, err := s.Get(ctx, "t", "b"); err != nil || len(v) != 0 {
		return fmt.Errorf("Get empty value = %q, %v", v, err)
	}
	b = storage.Batch{}
	b.Delete("t", "a")
	b.Delete("t", "b")
	b.Delete("t", "never")
	if err := s.Commit(ctx, &b); err != nil {
		return err
	}
	if _, err := s.Get(ctx, "t", "a"); !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("deleted key still there: %v", err)
	}
	return nil
}

// relaxedThenSync: a relaxed batch is visible to the next read at once (the
// engine reads its own receive batches before any Sync), it replaces
// earlier values in commit order, and Sync succeeds after it.
func relaxedThenSync(ctx context.Context, s storage.Store) error {
	for i, v := range []string{"first", "second"} {
		b := storage.Batch{Relaxed: true}
		b.Put("relaxed", "k", []byte(v))
		b.Put("relaxed", fmt.Sprint("n", i), []byte(v))
		if err := s.Commit(ctx, &b); err != nil {
			return err
		}
		if got, err := s.Get(ctx, "relaxed", "k"); err != nil || string(got) != v {
			return fmt.Errorf("Get after relaxed commit %d = %q, %v; want %q", i, got, err, v)
		}
	}
	if err := storage.Sync(ctx, s); err != nil {
		return fmt.Errorf("Sync: %w", err)
	}
	n := 0
	err := s.Scan(ctx, "relaxed", "n", storage.ScanOptions{}, func(string, []byte) error { n++; return nil })
	if err != nil || n != 2 {
		return fmt.Errorf("Scan after Sync found %d records, %v; want 2", n, err)
	}
	return nil
}

// insertIfAbsent: an Insert succeeds on a new key; on a key with a value
// it fails the whole batch with ErrExists, and nothing of it is applied;
// it sees the batch's own earlier operations.
func insertIfAbsent(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	b.Insert("ins", "k", []byte("first"))
	if err := s.Commit(ctx, &b); err != nil {
		return fmt.Errorf("Insert of a new key: %w", err)
	}
	b = storage.Batch{}
	b.Put("ins", "other", []byte("x"))
	b.Insert("ins", "k", []byte("second"))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("Insert of an existing key = %v, want ErrExists", err)
	}
	if v, err := s.Get(ctx, "ins", "k"); err != nil || string(v) != "first" {
		return fmt.Errorf("after a refused Insert k = %q, %v", v, err)
	}
	if _, err := s.Get(ctx, "ins", "other"); !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("a refused batch applied its other put: %v", err)
	}
	b = storage.Batch{}
	b.Delete("ins", "k")
	b.Insert("ins", "k", []byte("third"))
	b.Insert("ins", "new", []byte("y"))
	if err := s.Commit(ctx, &b); err != nil {
		return fmt.Errorf("Insert after a delete in the same batch: %w", err)
	}
	b = storage.Batch{}
	b.Put("ins", "p", []byte("z"))
	b.Insert("ins", "p", []byte("z"))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("Insert after a put in the same batch = %v, want ErrExists", err)
	}
	if v, err := s.Get(ctx, "ins", "k"); err != nil || string(v) != "third" {
		return fmt.Errorf("k = %q, %v", v, err)
	}
	return nil
}

func batchAtomic(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	b.Put("t", "x", []byte("x"))
	b.Put("BAD BUCKET", "y", []byte("y"))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("invalid batch: %v, want ErrInvalid", err)
	}
	if _, err := s.Get(ctx, "t", "x"); !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("part of a refused batch was applied")
	}
	return nil
}

func scanOrder(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	for _, k := range []string{"m/003", "m/001", "m/002", "n/001", "m/010"} {
		b.Put("s", k, []byte(k))
	}
	if err := s.Commit(ctx, &b); err != nil {
		return err
	}
	collect := func(prefix string, o storage.ScanOptions) ([]string, error) {
		var out []string
		err := s.Scan(ctx, "s", prefix, o, func(k string, v []byte) error {
			if !bytes.Equal(v, []byte(k)) {
				return fmt.Errorf("value of %s = %q", k, v)
			}
			out = append(out, k)
			return nil
		})
		return out, err
	}
	for _, c := range []struct {
		prefix string
		o      storage.ScanOptions
		want   string
	}{
		{"m/", storage.ScanOptions{}, "m/001 m/002 m/003 m/010"},
		{"m/", storage.ScanOptions{Reverse: true}, "m/010 m/003 m/002 m/001"},
		{"m/", storage.ScanOptions{Limit: 2}, "m/001 m/002"},
		{"m/", storage.ScanOptions{After: "m/002"}, "m/003 m/010"},
		{"m/", storage.ScanOptions{Reverse: true, After: "m/003", Limit: 1}, "m/002"},
		{"", storage.ScanOptions{}, "m/001 m/002 m/003 m/010 n/001"},
		{"x", storage.ScanOptions{}, ""},
	} {
		got, err := collect(c.prefix, c.o)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(splitOrNil(c.want)) {
			return fmt.Errorf("Scan(%q, %+v) = %v, want %s", c.prefix, c.o, got, c.want)
		}
	}
	n := 0
	err := s.Scan(ctx, "s", "", storage.ScanOptions{}, func(string, []byte) error {
		n++
		if n == 2 {
			return storage.ErrStop
		}
		return nil
	})
	if err != nil || n != 2 {
		return fmt.Errorf("ErrStop: n=%d err=%v", n, err)
	}
	return nil
}

func splitOrNil(s string) []string {
	if s == "" {
		return nil
	}
	return bytes2strings(bytes.Fields([]byte(s)))
}

func bytes2strings(f [][]byte) []string {
	out := make([]string, len(f))
	for i, b := range f {
		out[i] = string(b)
	}
	return out
}

func bucketsSeparate(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	b.Put("b1", "k", []byte("1"))
	b.Put("b2", "k", []byte("2"))
	if err := s.Commit(ctx, &b); err != nil {
		return err
	}
	v1, _ := s.Get(ctx, "b1", "k")
	v2, _ := s.Get(ctx, "b2", "k")
	if string(v1) != "1" || string(v2) != "2" {
		return fmt.Errorf("buckets mixed: %q %q", v1, v2)
	}
	return nil
}

func limits(ctx context.Context, s storage.Store) error {
	var b storage.Batch
	b.Put("t", "big", make([]byte, storage.MaxValueLen+1))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("oversize value: %v", err)
	}
	b = storage.Batch{}
	b.Put("t", "nul\x00key", []byte("v"))
	if err := s.Commit(ctx, &b); !errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("NUL in key: %v", err)
	}
	return nil
}
