// Package journal writes each relaxed batch (storage.Batch.Relaxed, a
// received message's) as one record of a journal instead of one record
// per operation, and applies the journal to the records themselves at the
// next Sync or strict Commit (PROTOCOL.md 13.6).
//
// Why: in IndexedDB every record a transaction writes is a request with
// its own round trip between the page and the storage backend, so a
// received message's five records cost about 0.2 ms each, most of the
// 2 ms a message may take (issue 6). In the journal the message, its
// ratchet state, its chat and its receipt are one sealed record, written
// in the same transaction as the message-id insert that catches
// duplicates: two requests. The records the journal holds are kept in
// memory (the overlay), so reads see them at once; the Sync that
// precedes the envelopes' acknowledgement writes them, each key once
// however many messages touched it (a burst rewrites one ratchet and one
// chat record, not one per message).
//
// Crash safety is the inner store's: a journal record is written in one
// batch, atomically, and the apply writes the records and deletes the
// journal records they came from in one batch, so after a crash a journal
// record is either applied or still there, and Open applies what is left,
// in order. A power cut loses relaxed journal records the way it loses
// relaxed batches: whole, the newest first, and never one a Sync covered.
package journal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/cache"
)

// Bucket holds the journal records, keyed by a 16-hex-digit sequence
// number. Callers may not use it.
const Bucket = "journal"

// Limits. Past maxOverlayOps or maxOverlayBytes the next Commit applies the
// journal first, so memory and the length of a replay stay bounded
// whatever the engine's Sync rhythm; a batch larger than maxEntryBytes is
// committed as it is.
const (
	maxOverlayOps   = 512
	maxOverlayBytes = 1 << 20
	maxEntryBytes   = 256 << 10
)

// Store is a storage.Store over inner that journals relaxed batches.
type Store struct {
	inner storage.Store

	// commitMu serialises Commit, Sync and the apply: journal records
	// must reach inner in sequence order (IndexedDB orders transactions
	// on a store by creation, and a replay goes by sequence).
	commitMu sync.Mutex
	seq      uint64 // last journal sequence number used; under commitMu

	replayed int // journal records Open applied

	mu      sync.Mutex // guards what reads look at
	closed  bool
	overlay map[ref]*entry
	bytes   int
	keys    []string // journal records not yet applied, in order
}

type ref struct{ bucket, key string }

// entry is the newest value the journal holds for a record; nil value is
// a delete.
type entry struct {
	ref
	value []byte
}

// Open wraps inner and applies whatever journal a previous run left (a
// crash before its Sync). It fails if a journal record does not decode
// or open: the records it holds are not lost, and nothing is deleted.
func Open(ctx context.Context, inner storage.Store) (*Store, error) {
	s := New(inner)
	if err := s.replay(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New wraps inner without reading its journal: only for a caller that
// has just seen, in a read of inner, that Bucket is empty (the browser
// counts it with its start-up records). Otherwise use Open.
func New(inner storage.Store) *Store {
	// Sequence numbers start from the clock, above any a previous run
	// used: should a transaction of a stopped store still land after
	// this run read the journal, its record sorts before this run's and
	// the next Open applies it first, under the newer values.
	return &Store{inner: inner, overlay: map[ref]*entry{}, seq: uint64(time.Now().UnixMicro())}
}

func (s *Store) replay(ctx context.Context) error {
	type rec struct {
		key string
		ops []storage.Op
	}
	var recs []rec
	err := s.inner.Scan(ctx, Bucket, "", storage.ScanOptions{}, func(k string, v []byte) error {
		ops, err := decodeEntry(v)
		if err != nil {
			return fmt.Errorf("%w: journal record %s: %v", storage.ErrCorrupt, k, err)
		}
		recs = append(recs, rec{k, ops})
		if n, err := strconv.ParseUint(k, 16, 64); err == nil && n > s.seq {
			s.seq = n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: replay: %w", err)
	}
	s.replayed = len(recs)
	// Applied in order, in as few batches as the batch limit allows,
	// never splitting a record's operations.
	var b storage.Batch
	for _, r := range recs {
		if len(b.Ops) > 0 && len(b.Ops)+len(r.ops)+1 > storage.MaxBatchOps {
			if err := s.inner.Commit(ctx, &b); err != nil {
				return fmt.Errorf("journal: replay: %w", err)
			}
			b = storage.Batch{}
		}
		b.Ops = append(b.Ops, r.ops...)
		b.Delete(Bucket, r.key)
	}
	if len(b.Ops) > 0 {
		if err := s.inner.Commit(ctx, &b); err != nil {
			return fmt.Errorf("journal: replay: %w", err)
		}
	}
	return nil
}

// Get reads bucket/key, the journal's value first.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := storage.ValidKey(bucket, key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := s.overlay[ref{bucket, key}]
	var v []byte
	if ok && e.value != nil {
		v = append([]byte(nil), e.value...)
	}
	s.mu.Unlock()
	if ok {
		if v == nil {
			return nil, storage.ErrNotFound
		}
		return v, nil
	}
	return s.inner.Get(ctx, bucket, key)
}

// GetMany is cache.MultiGetter: the journal's values, and the rest from
// inner in one read if it has GetMany.
func (s *Store) GetMany(ctx context.Context, refs []cache.Ref) ([][]byte, []error, error) {
	vals, errs := make([][]byte, len(refs)), make([]error, len(refs))
	var rest []cache.Ref
	var at []int
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, ErrClosed
	}
	for i, r := range refs {
		if e, ok := s.overlay[ref{r.Bucket, r.Key}]; ok {
			if e.value == nil {
				errs[i] = storage.ErrNotFound
			} else {
				vals[i] = append([]byte(nil), e.value...)
			}
			continue
		}
		rest = append(rest, r)
		at = append(at, i)
	}
	s.mu.Unlock()
	if len(rest) == 0 {
		return vals, errs, nil
	}
	if mg, ok := s.inner.(cache.MultiGetter); ok {
		v, e, err := mg.GetMany(ctx, rest)
		if err != nil {
			return nil, nil, err
		}
		for j, i := range at {
			vals[i], errs[i] = v[j], e[j]
		}
		return vals, errs, nil
	}
	for j, i := range at {
		vals[i], errs[i] = s.inner.Get(ctx, rest[j].Bucket, rest[j].Key)
	}
	return vals, errs, nil
}

// errHalt stops the inner scan once the merged scan is done (fn returned
// an error, or the limit is reached).
var errHalt = errors.New("journal: scan halted")

// Scan merges the journal's records of bucket into inner's, in order.
func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	ov := s.overlayRange(bucket, prefix, opts)
	if len(ov) == 0 {
		return s.inner.Scan(ctx, bucket, prefix, opts, fn)
	}
	before := func(a, b string) bool {
		if opts.Reverse {
			return a > b
		}
		return a < b
	}
	var (
		emitted, i int
		halted     bool
		fnErr      error // what fn returned, if it ended the scan
	)
	emit := func(k string, v []byte) error {
		if err := fn(k, v); err != nil {
			fnErr, halted = err, true
			return errHalt
		}
		if emitted++; opts.Limit > 0 && emitted >= opts.Limit {
			halted = true
			return errHalt
		}
		return nil
	}
	// Every inner record the journal replaces or deletes is one of ov, so
	// inner needs at most len(ov) more than the limit.
	innerOpts := opts
	if opts.Limit > 0 {
		innerOpts.Limit = opts.Limit + len(ov)
	}
	err := s.inner.Scan(ctx, bucket, prefix, innerOpts, func(k string, v []byte) error {
		for ; i < len(ov) && before(ov[i].key, k); i++ {
			if ov[i].value != nil {
				if err := emit(ov[i].key, ov[i].value); err != nil {
					return err
				}
			}
		}
		if i < len(ov) && ov[i].key == k {
			e := ov[i]
			i++
			if e.value == nil {
				return nil
			}
			return emit(k, e.value)
		}
		return emit(k, v)
	})
	if err != nil && !errors.Is(err, errHalt) {
		return err
	}
	for ; !halted && i < len(ov); i++ {
		if ov[i].value != nil {
			_ = emit(ov[i].key, ov[i].value)
		}
	}
	if errors.Is(fnErr, storage.ErrStop) {
		return nil
	}
	return fnErr
}

// overlayRange copies the journal's entries of bucket that a Scan with
// prefix and opts would visit, in its order.
func (s *Store) overlayRange(bucket, prefix string, opts storage.ScanOptions) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []entry
	for r, e := range s.overlay {
		if r.bucket != bucket || !strings.HasPrefix(r.key, prefix) {
			continue
		}
		if opts.After != "" && (!opts.Reverse && r.key <= opts.After || opts.Reverse && r.key >= opts.After) {
			continue
		}
		c := *e
		if c.value != nil {
			c.value = append([]byte(nil), c.value...)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key != opts.Reverse })
	return out
}

// Commit journals a relaxed batch when it can (one record, plus its
// inserts, which must check the stored keys), and otherwise commits it
// with the journal applied first, in the same batch when it fits.
func (s *Store) Commit(ctx context.Context, b *storage.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	for _, op := range b.Ops {
		if op.Bucket == Bucket {
			return fmt.Errorf("%w: bucket %q is the journal's", storage.ErrInvalid, Bucket)
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if b.Relaxed && s.journalable(b) {
		return s.journalLocked(ctx, b)
	}
	return s.applyLocked(ctx, b)
}

// journalable reports whether b can go into the journal: small enough,
// the overlay not full, and every insert checkable against the stored
// records alone (its key untouched by the journal and by the operations
// before it in b).
func (s *Store) journalable(b *storage.Batch) bool {
	size := 0
	for i, op := range b.Ops {
		size += len(op.Bucket) + len(op.Key) + len(op.Value) + opOverhead
		if !op.IfAbsent {
			continue
		}
		s.mu.Lock()
		_, inJournal := s.overlay[ref{op.Bucket, op.Key}]
		s.mu.Unlock()
		if inJournal || slices.ContainsFunc(b.Ops[:i], func(o storage.Op) bool { return o.Bucket == op.Bucket && o.Key == op.Key }) {
			return false
		}
	}
	s.mu.Lock()
	full := len(s.overlay)+len(b.Ops) > maxOverlayOps || s.bytes+size > maxOverlayBytes
	s.mu.Unlock()
	return size <= maxEntryBytes && !full
}

func (s *Store) journalLocked(ctx context.Context, b *storage.Batch) error {
	var ops []storage.Op
	jb := storage.Batch{Relaxed: true}
	for _, op := range b.Ops {
		if op.IfAbsent {
			jb.Ops = append(jb.Ops, op)
			continue
		}
		ops = append(ops, op)
	}
	if len(ops) > 0 {
		key := fmt.Sprintf("%016x", s.seq+1)
		jb.Put(Bucket, key, encodeEntry(ops))
		if err := s.inner.Commit(ctx, &jb); err != nil {
			return err
		}
		s.seq++
		s.mu.Lock()
		s.keys = append(s.keys, key)
		for _, op := range ops {
			s.setLocked(op)
		}
		s.mu.Unlock()
		return nil
	}
	return s.inner.Commit(ctx, &jb)
}

func (s *Store) setLocked(op storage.Op) {
	r := ref{op.Bucket, op.Key}
	if old, ok := s.overlay[r]; ok {
		s.bytes -= len(old.value)
		clear(old.value)
	}
	var v []byte
	if op.Value != nil {
		v = append([]byte{}, op.Value...)
	}
	s.overlay[r] = &entry{r, v}
	s.bytes += len(v)
}

// applyLocked commits the journal's records and deletes its records,
// then b (if not nil), in one batch when they fit in one; b's durability
// is the batch's.
func (s *Store) applyLocked(ctx context.Context, b *storage.Batch) error {
	s.mu.Lock()
	var ab storage.Batch
	for _, e := range s.overlay {
		ab.Ops = append(ab.Ops, storage.Op{Bucket: e.bucket, Key: e.key, Value: e.value})
	}
	// Deterministic order (the overlay is a map): by bucket and key.
	sort.Slice(ab.Ops, func(i, j int) bool {
		a, b := ab.Ops[i], ab.Ops[j]
		return a.Bucket < b.Bucket || a.Bucket == b.Bucket && a.Key < b.Key
	})
	keys := slices.Clone(s.keys)
	s.mu.Unlock()
	for _, k := range keys {
		ab.Delete(Bucket, k)
	}
	if b != nil && len(ab.Ops)+len(b.Ops) <= storage.MaxBatchOps {
		ab.Ops = append(ab.Ops, b.Ops...)
		ab.Relaxed = b.Relaxed
		b = nil
	}
	if len(ab.Ops) > 0 {
		if err := s.inner.Commit(ctx, &ab); err != nil {
			return err
		}
		s.dropApplied(len(keys))
	}
	if b != nil {
		return s.inner.Commit(ctx, b)
	}
	return nil
}

// dropApplied forgets the journal's first n records and the overlay they
// built. Every Commit holds commitMu, so nothing was journaled meanwhile.
func (s *Store) dropApplied(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = s.keys[n:]
	for r, e := range s.overlay {
		clear(e.value)
		delete(s.overlay, r)
	}
	s.bytes = 0
}

// Sync applies the journal durably, or syncs inner when it is empty: either
// way, every batch committed before is durable when it returns.
func (s *Store) Sync(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	empty, closed := len(s.keys) == 0, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if empty {
		return storage.Sync(ctx, s.inner)
	}
	return s.applyLocked(ctx, nil)
}

// Replayed is how many journal records Open found and applied (left by a
// run that stopped before its Sync).
func (s *Store) Replayed() int { return s.replayed }

// Pending is how many journal records are not applied yet.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// Close zeroes the values the journal holds in memory and refuses every
// later call, as the engine's cache does when the engine stops (a lock):
// the journal records stay in the inner store, and the next Open applies
// them. It does not write: the store's key may already be gone.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for r, e := range s.overlay {
		clear(e.value)
		delete(s.overlay, r)
	}
	s.bytes = 0
}

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("journal: store closed")

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
