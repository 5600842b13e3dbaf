// Package memstore is an in-memory storage.Store for tests and for native
// tools that need no persistence. Values are copied in and out, so callers
// cannot alias stored bytes.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/parley-im/parley/client/storage"
)

// Store is safe for concurrent use.
//
// It models relaxed batches (storage.Batch.Relaxed) the way a disk does: a
// relaxed batch is visible at once but becomes durable only with the next
// strict Commit or Sync. Snapshot is what a restarted process finds (the
// OS kept every write), PowerCut what a restarted machine finds.
type Store struct {
	mu      sync.RWMutex
	data    map[string]map[string][]byte
	durable map[string]map[string][]byte // data without the unsynced relaxed batches
	relaxed []storage.Batch              // committed relaxed, not yet durable
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
func New() *Store {
	return &Store{data: map[string]map[string][]byte{}, durable: map[string]map[string][]byte{}}
}

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
	if err := checkAbsent(s.data, b.Ops); err != nil {
		return err
	}
	apply(s.data, b.Ops)
	if b.Relaxed {
		s.relaxed = append(s.relaxed, storage.Batch{Ops: copyOps(b.Ops)})
		return nil
	}
	s.syncLocked()
	apply(s.durable, b.Ops)
	return nil
}

// Sync makes the relaxed batches committed so far durable; it fails once
// the store is dead (FailAfter), as the machine would not get there.
func (s *Store) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return ErrInjected
	}
	s.syncLocked()
	return nil
}

func (s *Store) syncLocked() {
	for _, b := range s.relaxed {
		apply(s.durable, b.Ops)
	}
	s.relaxed = nil
}

// checkAbsent fails with ErrExists if an Insert's key holds a value in
// data as changed by the operations before it.
func checkAbsent(data map[string]map[string][]byte, ops []storage.Op) error {
	written := map[[2]string]bool{} // key → holds a value after the ops so far
	for _, op := range ops {
		k := [2]string{op.Bucket, op.Key}
		if op.IfAbsent {
			has, ok := written[k]
			if !ok {
				_, has = data[op.Bucket][op.Key]
			}
			if has {
				return fmt.Errorf("%w: %s/%s", storage.ErrExists, op.Bucket, op.Key)
			}
		}
		written[k] = op.Value != nil
	}
	return nil
}

func apply(data map[string]map[string][]byte, ops []storage.Op) {
	for _, op := range ops {
		m := data[op.Bucket]
		if m == nil {
			m = map[string][]byte{}
			data[op.Bucket] = m
		}
		if op.Value == nil {
			delete(m, op.Key)
		} else {
			m[op.Key] = append([]byte(nil), op.Value...)
		}
	}
}

func copyOps(ops []storage.Op) []storage.Op {
	out := make([]storage.Op, len(ops))
	for i, op := range ops {
		out[i] = storage.Op{Bucket: op.Bucket, Key: op.Key}
		if op.Value != nil {
			out[i].Value = append([]byte{}, op.Value...)
		}
	}
	return out
}

// Unsynced is the number of relaxed batches a power cut would lose now.
func (s *Store) Unsynced() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.relaxed)
}

// Snapshot returns a deep copy of everything committed, relaxed batches
// included, so a test can "crash" the engine's process and restart it
// from exactly what was committed.
func (s *Store) Snapshot() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fromData(s.data)
}

// PowerCut returns a deep copy of only what is durable: what a restarted
// machine finds after a power cut, without the relaxed batches no strict
// Commit or Sync has covered yet.
func (s *Store) PowerCut() *Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return fromData(s.durable)
}

func fromData(data map[string]map[string][]byte) *Store {
	c := New()
	for b, m := range data {
		c.data[b] = map[string][]byte{}
		c.durable[b] = map[string][]byte{}
		for k, v := range m {
			c.data[b][k] = append([]byte(nil), v...)
			c.durable[b][k] = append([]byte(nil), v...)
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
