//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	engine "github.com/parley-im/parley/client"
	"sync"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/wasm/idbwire"
)

// idbStore is the engine's storage.Store on IndexedDB: every value sealed
// by WebCrypto AES-256-GCM under the current (non-extractable) data key,
// with associated data naming its bucket and key (PROTOCOL.md 13.1), and
// opened under the key of the epoch it names (keyring.go, 13.8).
//
// Commit hands the batch to boot.js's commit, which seals every value and
// only then opens one read-write transaction for the whole batch (a
// transaction with nothing pending auto-commits, so awaiting WebCrypto
// inside it would split the batch): one call and one await from Go.
// Scan reads a page of sealed values in one read-only transaction, closes
// it, unseals, and calls fn; fn may use the store freely. Pages are
// separate transactions, so a long scan sees writes made between pages
// (the engine scans history pages, where that is harmless).
//
// Keys are stored in the clear (they must be, to be ordered and scanned);
// the engine must not put secrets in keys.
type idbStore struct {
	db   *idb.Database
	name string // the database's name, for boot.js's commit

	mu    sync.RWMutex
	ring  *keyring // the data keys; nil once closed (locked)
	syncs uint64   // Syncs so far, the value of the sync mark
	// inflight counts the writes under way by the data key epoch they
	// seal under: the re-seal retires a key only once none is left
	// (reseal.go).
	inflight map[uint32]int

	// writes counts the Commits and Syncs that got the key and have not
	// yet seen their transaction end. close waits for them, so a write
	// begun before a lock is either in IndexedDB or failed by the time
	// an unlock can read the store: an unlock within milliseconds of a
	// lock would otherwise read the journal before the stopped engine's
	// last record landed in it (PROTOCOL.md 13.6).
	writes sync.WaitGroup
}

// scanPage is how many records one Scan transaction reads.
const scanPage = 128

// errStoreLocked is returned after the store was closed by a lock.
var errStoreLocked = newAPIError(engine.CodeLocked, "Parley is locked: unlock it to read or write its data")

func newIDBStore(db *idb.Database, name string, ring *keyring) *idbStore {
	return &idbStore{db: db, name: name, ring: ring, inflight: map[uint32]int{}}
}

// close drops the data keys; every later call fails with errStoreLocked.
// It returns once the writes already under way have ended.
func (s *idbStore) close() {
	s.mu.Lock()
	s.ring = nil
	s.mu.Unlock()
	s.writes.Wait()
}

// beginWrite is dataKey for a write: on success the caller must call
// s.endWrite with the ring when its transaction has ended.
func (s *idbStore) beginWrite() (*keyring, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		return nil, errStoreLocked
	}
	s.writes.Add(1)
	s.inflight[s.ring.epoch]++
	return s.ring, nil
}

func (s *idbStore) endWrite(r *keyring) {
	s.mu.Lock()
	s.inflight[r.epoch]--
	s.mu.Unlock()
	s.writes.Done()
}

func (s *idbStore) dataKey() (*keyring, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ring == nil {
		return nil, errStoreLocked
	}
	return s.ring, nil
}

// setRing installs the keys after a lock change or a finished re-seal;
// it reports false once the store is closed.
func (s *idbStore) setRing(r *keyring) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring == nil {
		return false
	}
	s.ring = r
	return true
}

// oldWrites reports whether a write sealing under another epoch than the
// current one may still land.
func (s *idbStore) oldWrites() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for e, n := range s.inflight {
		if n > 0 && (s.ring == nil || e != s.ring.epoch) {
			return true
		}
	}
	return false
}

// corruptError names a record that failed to open. It matches
// storage.ErrCorrupt and reaches JS with code storage_corrupt.
type corruptError struct{ bucket, key, why string }

func (e *corruptError) Error() string {
	return fmt.Sprintf("the stored record %s/%s %s; nothing has been deleted", e.bucket, e.key, e.why)
}
func (e *corruptError) Is(target error) bool { return target == storage.ErrCorrupt }

func (s *idbStore) open(k *keyring, bucket, key string, v js.Value) ([]byte, error) {
	sealed, err := bytesFromJS(safejs.Safe(v))
	if err != nil {
		return nil, &corruptError{bucket, key, "is not in Parley's sealed format"}
	}
	plain, err := unseal(k, bucket, key, sealed)
	if errors.Is(err, errUnseal) {
		return nil, &corruptError{bucket, key, "failed its integrity check (damaged or altered)"}
	}
	return plain, err
}

func (s *idbStore) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := storage.ValidKey(bucket, key); err != nil {
		return nil, err
	}
	k, err := s.dataKey()
	if err != nil {
		return nil, err
	}
	txn, err := s.db.Transaction(idb.TransactionReadOnly, storeRecords)
	if err != nil {
		return nil, err
	}
	st, err := txn.ObjectStore(storeRecords)
	if err != nil {
		return nil, err
	}
	req, err := st.Get(recordKey(bucket, key))
	if err != nil {
		return nil, err
	}
	v, err := req.Await(ctx)
	if err != nil {
		return nil, err
	}
	if v.IsUndefined() {
		return nil, storage.ErrNotFound
	}
	return s.open(k, bucket, key, v)
}

// Sync makes every earlier Commit durable: a strict read-write
// transaction that writes the keys store's sync mark (a counter, not a
// secret). IndexedDB commits transactions of one database in order, and a
// strict commit returns only once "all outstanding changes" are on stable
// storage (IndexedDB 3.0, transaction durability), so relaxed commits
// before it are covered. A transaction that writes nothing could commit
// without touching the disk, hence the mark.
func (s *idbStore) Sync(ctx context.Context) error {
	ring, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer s.endWrite(ring)
	txn, err := s.db.TransactionWithOptions(idb.TransactionOptions{Mode: idb.TransactionReadWrite, Durability: idb.DurabilityStrict}, storeKeys)
	if err != nil {
		return err
	}
	st, err := txn.ObjectStore(storeKeys)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.syncs++
	n := s.syncs
	s.mu.Unlock()
	if _, err := st.PutKey(js.ValueOf(keySyncMark), js.ValueOf(float64(n))); err != nil {
		_ = txn.Abort()
		return err
	}
	if err := txn.Await(ctx); err != nil {
		return fmt.Errorf("storage: sync failed, earlier relaxed commits may not be durable: %w", err)
	}
	return nil
}

// prefixEnd is the smallest byte string greater than every string with
// prefix p, or "" when there is none (p empty or all 0xff).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

func (s *idbStore) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	if err := storage.ValidKey(bucket, prefix); err != nil {
		return err
	}
	k, err := s.dataKey()
	if err != nil {
		return err
	}
	// The range in key space: [lo, hi) with lo/hi possibly open or absent.
	lo, loOpen := prefix, false
	hi, hasHi := prefixEnd(prefix), true
	if hi == "" {
		hasHi = false
	}
	if opts.After != "" {
		if !opts.Reverse && opts.After >= lo {
			lo, loOpen = opts.After, true
		}
		if opts.Reverse && (!hasHi || opts.After < hi) {
			hi, hasHi = opts.After, true
		}
	}
	if hasHi && hi <= lo {
		return nil
	}
	left := opts.Limit
	for {
		n := scanPage
		if opts.Limit > 0 && left < n {
			n = left
		}
		page, err := s.readPage(k, bucket, lo, loOpen, hi, hasHi, opts.Reverse, n)
		if err != nil {
			return err
		}
		for _, kv := range page {
			if kv.err != nil {
				return kv.err
			}
			if err := fn(kv.key, kv.value); err != nil {
				if errors.Is(err, storage.ErrStop) {
					return nil
				}
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		if opts.Limit > 0 {
			if left -= len(page); left == 0 {
				return nil
			}
		}
		last := page[len(page)-1].key
		if opts.Reverse {
			hi, hasHi = last, true
		} else {
			lo, loOpen = last, true
		}
	}
}

// openedKV is one record of a Scan page: its key, and its plaintext or
// what Get would report for it.
type openedKV struct {
	key   string
	value []byte
	err   error
}

// readPage reads up to n records of bucket in (lo, hi) in one read-only
// transaction and unseals them, all in one call to boot.js's read: one
// getAllRecords request where the browser has it, where a cursor driven
// from Go took a trip through the event loop and a dozen JS values per
// record, and kept the transaction (and every write queued behind it)
// open meanwhile. No upper bound is [bucket, []]: an array sorts after
// every binary key, so it bounds the whole bucket.
func (s *idbStore) readPage(k *keyring, bucket, lo string, loOpen bool, hi string, hasHi, reverse bool, n int) ([]openedKV, error) {
	upper := js.Null()
	if hasHi {
		upper = safejs.Unsafe(bytesToJS([]byte(hi)))
	}
	p := jsStore.Call("read", s.name, k.byEpoch, bucket, safejs.Unsafe(bytesToJS(recordAD(bucket, ""))),
		safejs.Unsafe(bytesToJS([]byte(lo))), loOpen, upper, reverse, n)
	res, err := Await(safejs.Safe(p))
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", bucket, err)
	}
	packed, err := bytesFromJS(res)
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", bucket, err)
	}
	recs, err := idbwire.UnpackRead(packed, n)
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", bucket, err)
	}
	out := make([]openedKV, len(recs))
	for i, r := range recs {
		out[i] = openedKV{key: r.Key, value: r.Value}
		switch r.State {
		case idbwire.StateNotBytes:
			out[i].err = &corruptError{bucket, r.Key, "is not in Parley's sealed format"}
		case idbwire.StateDamaged:
			out[i].err = &corruptError{bucket, r.Key, "failed its integrity check (damaged or altered)"}
		}
	}
	return out, nil
}

func (s *idbStore) Commit(ctx context.Context, b *storage.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	ring, err := s.beginWrite()
	if err != nil {
		return err
	}
	defer s.endWrite(ring)
	// boot.js seals every value and writes them in one read-write
	// transaction, in one call: a transaction with nothing pending
	// auto-commits, so the WebCrypto work comes first, and every await
	// Go saves is a trip through the event loop. The batch travels as one
	// buffer (idbwire.PackCommit): a JS value made from Go costs a call across
	// the boundary and a finalizer, about 60 of them for a received
	// message's six records.
	packed, err := idbwire.PackCommit(b, rand.Reader, recordAD)
	if err != nil {
		return err
	}
	n := len(b.Ops)
	// Strict durability unless the batch is Relaxed (PROTOCOL.md 13.6):
	// the engine sends an outgoing message only after its Commit returns,
	// so "committed" must mean on disk, not in the OS's buffers (a power
	// cut after a relaxed commit could lose a ratchet step whose message
	// key already left). A received envelope's batch is relaxed; the
	// engine acknowledges it only after a Sync.
	durability := "strict"
	if b.Relaxed {
		durability = "relaxed"
	}
	p := jsStore.Call("commit", s.name, safejs.Unsafe(ring.cur), ring.epoch, durability, safejs.Unsafe(bytesToJS(packed)))
	res, err := Await(safejs.Safe(p))
	if err != nil {
		return fmt.Errorf("storage: commit of %d operations failed, none applied: %w", n, err)
	}
	if r, _ := res.String(); r == "exists" {
		return fmt.Errorf("%w; none of the batch was applied", storage.ErrExists)
	}
	return nil
}

// The sealed-record IV and the packed layout's agree (a build error if not).
const _ = uint(ivSize-idbwire.IVSize) + uint(idbwire.IVSize-ivSize)
