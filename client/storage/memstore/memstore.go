// Package memstore is an in-memory storage.Store for tests and for native
// tools that need no persistence. Values are copied in and out, so callers
// cannot alias stored bytes.
package memstore

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"github.com/parley-im/parley/client/storage"
)

// Store is safe for concurrent use.
type Store struct {
	mu   sync.RWMutex
	data map[string]map[string][]byte
	// FailAfter, when > 0, makes the FailAfter-th following Commit fail
	// without applying anything, and every Commit after it too, as if the
	// process had died there: the crash-consistency tests use it to stop
	// the engine between two writes. Snapshot gives a live copy of what
	// was committed, which is what a restarted process would find.
	FailAfter int
	dead      bool
	// Crashed reports whether the injected failure has happened.
	Crashed bool
}

// New returns an empty store.
func New() *Store { return &Store{data: map[string]map[string][]byte{}} }

// ErrInjected is the failure FailAfter produces.
var ErrInjected = errors.New("memstore: injected commit failure")

func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := storage.ValidKey(bucket, key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[bucket][key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	s.mu.RLock()
	var keys []string
	for k := range s.data[bucket] {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if opts.Reverse {
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			keys[i], keys[j] = keys[j], keys[i]
		}
	}
	type kv struct {
		k string
		v []byte
	}
	var items []kv
	for _, k := range keys {
		if opts.After != "" && ((!opts.Reverse && k <= opts.After) || (opts.Reverse && k >= opts.After)) {
			continue
		}
		items = append(items, kv{k, append([]byte(nil), s.data[bucket][k]...)})
		if opts.Limit > 0 && len(items) == opts.Limit {
			break
		}
	}
	s.mu.RUnlock()
	for _, it := range items {
		if err := fn(it.k, it.v); err != nil {
			if err == storage.ErrStop {
				return nil
			}
			return err
		}
	}
	return nil
}

func (s *Store) Commit(ctx context.Context, b *storage.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return ErrInjected
	}
	if s.FailAfter > 0 {
		s.FailAfter--
		if s.FailAfter == 0 {
			s.dead, s.Crashed = true, true
			return ErrInjected
		}
	}
	for _, op := range b.Ops {
		m := s.data[op.Bucket]
		if m == nil {
			m = map[string][]byte{}
			s.data[op.Bucket] = m
		}
		if op.Value == nil {
			delete(m, op.Key)
		} else {
			m[op.Key] = append([]byte(nil), op.Value...)
		}
	}
	return nil
}

// Snapshot returns a deep copy, so a test can "crash" the engine and
// restart it from exactly what was committed.
func (s *Store) Snapshot() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := New()
	for b, m := range s.data {
		c.data[b] = map[string][]byte{}
		for k, v := range m {
			c.data[b][k] = append([]byte(nil), v...)
		}
	}
	return c
}

// Each calls fn for every stored value (for tests that scan storage for
// plaintext).
func (s *Store) Each(fn func(bucket, key string, value []byte)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for b, m := range s.data {
		for k, v := range m {
			fn(b, k, v)
		}
	}
}
