// Package cache is a write-through read cache in front of any
// storage.Store. In the browser every Get of the IndexedDB store is its
// own transaction plus a WebCrypto unseal (about a millisecond), and the
// engine reads the same few records (a session, a chat, the outbox
// counter) on every message it receives; the cache answers those from
// memory.
//
// New(inner, limit) wraps a store; Close drops every cached value. The
// rules that keep it correct:
//
//   - Every write must go through the cache. It is coherent only for the
//     one writer it wraps: in the browser that is the owner tab's engine
//     (one key owner per origin, DESIGN.md), so a cache per owner sees
//     every change to the records it caches.
//   - Commit writes through: the cache changes only after the inner Commit
//     succeeded, then takes the batch's final values. A failed Commit
//     (whose effect the cache cannot know) drops the keys it touched.
//     Commits are serialised, so the cache applies them in the order the
//     inner store did.
//   - A Get that missed fills the cache only if no Commit finished while
//     it read, so a slow read never puts back a value a Commit replaced.
//   - Scan passes through and caches nothing (history pages are read
//     once; Scan sees every committed write because the inner store has
//     it).
//   - Values are copied in and out, and zeroed when evicted or dropped:
//     they are plaintext (ratchet states, messages), and a locked client
//     must not keep them. Close makes the cache a plain pass-through, so
//     the inner store's own "closed" error reaches callers.
//
// A record altered in the inner store behind the cache's back (a damaged
// disk, another program) is noticed at its next read from the inner
// store, after eviction or a restart, not while it is cached.
package cache

import (
	"container/list"
	"context"
	"errors"
	"sync"

	"github.com/parley-im/parley/client/storage"
)

// DefaultLimit is the plaintext a cache holds by default: the hot records
// of a busy device (a ratchet state is a few KiB, a chat summary and the
// outbox counter under 1 KiB) many times over, while staying small next to
// the wasm heap.
const DefaultLimit = 4 << 20

// entryOverhead is what one entry is counted as beyond its key and value
// bytes (list element, map slot, headers), so many tiny or absent entries
// still count against the limit.
const entryOverhead = 96

// maxEntryShare: a value larger than limit/maxEntryShare is not cached, so
// one large record cannot flush everything else.
const maxEntryShare = 8

// Store is a storage.Store with a bounded LRU of values by bucket and key.
// It is safe for concurrent use.
type Store struct {
	inner storage.Store
	limit int

	commitMu sync.Mutex // serialises Commits (see the package comment)

	mu      sync.Mutex
	entries map[string]*list.Element // of *entry
	lru     list.List                // front: most recently used
	size    int
	gen     uint64 // bumped by every finished Commit
	closed  bool

	hits, misses uint64
}

type entry struct {
	key    string // bucket + "\x00" + key
	value  []byte
	absent bool // the inner store has no value at this key
}

func (e *entry) cost() int { return entryOverhead + len(e.key) + len(e.value) }

// New wraps inner with a cache of at most limit bytes (DefaultLimit if
// limit <= 0).
func New(inner storage.Store, limit int) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{inner: inner, limit: limit, entries: map[string]*list.Element{}}
}

// cacheKey: NUL separates bucket and key (storage.ValidKey forbids it in
// both).
func cacheKey(bucket, key string) string { return bucket + "\x00" + key }

// Get returns the cached value or reads it from the inner store.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	k := cacheKey(bucket, key)
	s.mu.Lock()
	if el, ok := s.entries[k]; ok && !s.closed {
		s.lru.MoveToFront(el)
		s.hits++
		e := el.Value.(*entry)
		var v []byte
		if !e.absent {
			v = append(make([]byte, 0, len(e.value)), e.value...)
		}
		s.mu.Unlock()
		if e.absent {
			return nil, storage.ErrNotFound
		}
		return v, nil
	}
	s.misses++
	gen := s.gen
	s.mu.Unlock()

	v, err := s.inner.Get(ctx, bucket, key)
	switch {
	case err == nil:
		s.fill(gen, k, v, false)
	case errors.Is(err, storage.ErrNotFound):
		s.fill(gen, k, nil, true)
	}
	return v, err
}

// fill caches what a Get read, unless a Commit finished since it began.
func (s *Store) fill(gen uint64, k string, v []byte, absent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return
	}
	s.setLocked(k, v, absent)
}

// setLocked stores a copy of v (or an absent marker) at k and evicts from
// the back until the cache fits. s.mu is held.
func (s *Store) setLocked(k string, v []byte, absent bool) {
	s.dropLocked(k)
	e := &entry{key: k, absent: absent}
	if !absent {
		e.value = append(make([]byte, 0, len(v)), v...)
	}
	if e.cost() > s.limit/maxEntryShare {
		clear(e.value)
		return
	}
	s.entries[k] = s.lru.PushFront(e)
	s.size += e.cost()
	for s.size > s.limit {
		s.dropLocked(s.lru.Back().Value.(*entry).key)
	}
}

// dropLocked removes k, zeroing its value. s.mu is held.
func (s *Store) dropLocked(k string) {
	el, ok := s.entries[k]
	if !ok {
		return
	}
	e := el.Value.(*entry)
	s.lru.Remove(el)
	delete(s.entries, k)
	s.size -= e.cost()
	clear(e.value)
}

// Ref names one record.
type Ref struct{ Bucket, Key string }

// MultiGetter is implemented by an inner store that reads several records
// more cheaply together than one by one (the browser's: one IndexedDB
// transaction and one unseal await). errs[i] is the error a Get of refs[i]
// would return; err a failure of the whole read.
type MultiGetter interface {
	GetMany(ctx context.Context, refs []Ref) (vals [][]byte, errs []error, err error)
}

// Warm reads refs into the cache ahead of the Gets a caller is about to
// make (the engine's start-up reads), in one GetMany if the inner store
// has it; otherwise it does nothing and the Gets read as usual. Like a
// Get's, its results are dropped if a Commit finished meanwhile.
func (s *Store) Warm(ctx context.Context, refs []Ref) error {
	mg, ok := s.inner.(MultiGetter)
	if !ok || len(refs) == 0 {
		return nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	vals, errs, err := mg.GetMany(ctx, refs)
	if err != nil {
		return err
	}
	s.primeAt(gen, refs, vals, errs)
	return nil
}

// Prime is Warm for values the caller already read from the inner store
// (the browser reads the engine's start-up records in the transaction
// that reads its own, instead of a second one): vals[i] and errs[i] are
// what a Get of refs[i] returned. The caller must have read them after
// the inner store's last write, as at start-up, before any Commit.
func (s *Store) Prime(refs []Ref, vals [][]byte, errs []error) {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	s.primeAt(gen, refs, vals, errs)
}

// primeAt fills what a read begun at generation gen returned.
func (s *Store) primeAt(gen uint64, refs []Ref, vals [][]byte, errs []error) {
	for i, r := range refs {
		switch {
		case errs[i] == nil:
			s.fill(gen, cacheKey(r.Bucket, r.Key), vals[i], false)
		case errors.Is(errs[i], storage.ErrNotFound):
			s.fill(gen, cacheKey(r.Bucket, r.Key), nil, true)
		}
	}
}

// Scan passes through to the inner store.
func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	return s.inner.Scan(ctx, bucket, prefix, opts, fn)
}

// Commit writes b through to the inner store and then updates the cache
// with b's final value for each key it touched.
func (s *Store) Commit(ctx context.Context, b *storage.Batch) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	err := s.inner.Commit(ctx, b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if s.closed {
		return err
	}
	for _, op := range b.Ops {
		k := cacheKey(op.Bucket, op.Key)
		switch {
		case err != nil:
			s.dropLocked(k)
		case op.Value == nil:
			s.setLocked(k, nil, true)
		default:
			s.setLocked(k, op.Value, false)
		}
	}
	return err
}

// Sync passes through to the inner store (storage.Sync): the cache holds
// nothing that is not already committed there.
func (s *Store) Sync(ctx context.Context) error {
	return storage.Sync(ctx, s.inner)
}

// Close drops (and zeroes) every cached value; afterwards the cache only
// passes calls through. It does not close the inner store.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for k := range s.entries {
		s.dropLocked(k)
	}
}

// Stats reports the cache's use since New: hits, misses and the bytes and
// entries it holds now.
type Stats struct {
	Hits, Misses   uint64
	Bytes, Entries int
}

// Stats returns the cache's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Hits: s.hits, Misses: s.misses, Bytes: s.size, Entries: len(s.entries)}
}
