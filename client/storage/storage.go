// Package storage is the engine's seam to persistent storage: a small
// key-value interface with atomic batches, implemented by IndexedDB in the
// browser (wasm/, every value sealed under the device's non-extractable
// WebCrypto key), by a file (bbolt) natively, and in memory for tests.
//
// The engine's correctness rests on one property: a Batch is applied
// completely or not at all. A decrypted message and the ratchet state that
// produced it go into one Batch, so a crash can never lose the message nor
// leave a ratchet that cannot decrypt the next one.
//
// Values are opaque bytes to the store. Implementations that seal values
// (the browser) bind each to its bucket and key as associated data, so a
// value moved to another key fails to open.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Limits every implementation enforces, so a bug cannot write something
// one backend accepts and another refuses.
const (
	// MaxKeyLen bounds bucket+key; IndexedDB keys and bbolt keys are
	// cheap up to here.
	MaxKeyLen = 512
	// MaxValueLen bounds one value. Large payloads (attachments, history
	// bundles) live on the relay's blob store, not in records.
	MaxValueLen = 4 << 20
	// MaxBatchOps bounds one atomic write.
	MaxBatchOps = 4096
)

// Errors.
var (
	// ErrNotFound is returned by Get for a missing key.
	ErrNotFound = errors.New("storage: not found")
	// ErrInvalid reports a bucket, key or value outside the limits.
	ErrInvalid = errors.New("storage: invalid key or value")
	// ErrCorrupt reports a stored value that failed to open or decode
	// (sealing check failed). Callers surface it; nobody deletes it.
	ErrCorrupt = errors.New("storage: record is corrupt")
	// ErrExists is returned by Commit, which then applies nothing, when
	// an Insert's key already holds a value.
	ErrExists = errors.New("storage: key exists")
)

// Store is the engine's storage.
type Store interface {
	// Get returns the value at bucket/key, or ErrNotFound.
	Get(ctx context.Context, bucket, key string) ([]byte, error)
	// Scan calls fn for every key in bucket that starts with prefix, in
	// ascending key order (byte order), until fn returns an error (which
	// Scan returns; ErrStop ends the scan without error). If reverse is
	// true the order is descending. limit <= 0 means no limit.
	Scan(ctx context.Context, bucket, prefix string, opts ScanOptions, fn func(key string, value []byte) error) error
	// Commit applies b atomically: after a crash either every operation
	// of b is visible or none is. When it returns, b is durable, unless
	// b.Relaxed (see Batch).
	Commit(ctx context.Context, b *Batch) error
}

// Syncer is implemented by stores where a relaxed Commit can return before
// its batch reaches stable storage (IndexedDB). Sync returns once every
// batch committed before it is durable.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Sync makes every earlier Commit of s durable: Syncer's Sync, or nothing
// for stores whose every Commit is durable.
func Sync(ctx context.Context, s Store) error {
	if y, ok := s.(Syncer); ok {
		return y.Sync(ctx)
	}
	return nil
}

// ScanOptions select the range and order of a Scan.
type ScanOptions struct {
	Reverse bool
	// After, if set, starts strictly after this key (before it when
	// Reverse), for paging through history.
	After string
	Limit int
}

// ErrStop ends a Scan early without an error.
var ErrStop = errors.New("storage: stop scan")

// Op is one operation of a Batch.
type Op struct {
	Bucket, Key string
	Value       []byte // nil means delete
	// IfAbsent makes a put fail the whole batch with ErrExists if the key
	// holds a value (as left by the operations before it). The engine
	// stores a received message this way, so a message it already has is
	// found by the write itself, with no read before it.
	IfAbsent bool
}

// Batch is an ordered list of puts and deletes applied atomically.
type Batch struct {
	Ops []Op
	// Relaxed lets Commit return once the batch is applied and visible to
	// every later read, before it is on stable storage: a power cut may
	// then lose it (whole, never in part) together with every relaxed
	// batch after it, but never one committed earlier by a strict Commit
	// or covered by a Sync. The engine uses it for a received envelope,
	// which the relay keeps until the engine acknowledges it after a Sync:
	// a lost batch is delivered again (PROTOCOL.md 13.6).
	Relaxed bool
}

// Put adds a put of value at bucket/key.
func (b *Batch) Put(bucket, key string, value []byte) {
	b.Ops = append(b.Ops, Op{Bucket: bucket, Key: key, Value: value})
}

// Insert adds a put of value at bucket/key that fails the batch with
// ErrExists if the key holds a value.
func (b *Batch) Insert(bucket, key string, value []byte) {
	b.Ops = append(b.Ops, Op{Bucket: bucket, Key: key, Value: value, IfAbsent: true})
}

// Delete adds a delete of bucket/key.
func (b *Batch) Delete(bucket, key string) {
	b.Ops = append(b.Ops, Op{Bucket: bucket, Key: key})
}

// Len is the number of operations.
func (b *Batch) Len() int { return len(b.Ops) }

// Validate checks the limits; every implementation calls it first so a bad
// batch is refused whole.
func (b *Batch) Validate() error {
	if len(b.Ops) > MaxBatchOps {
		return fmt.Errorf("%w: batch of %d operations (limit %d)", ErrInvalid, len(b.Ops), MaxBatchOps)
	}
	for _, op := range b.Ops {
		if err := ValidKey(op.Bucket, op.Key); err != nil {
			return err
		}
		if op.IfAbsent && op.Value == nil {
			return fmt.Errorf("%w: insert without a value at %s/%s", ErrInvalid, op.Bucket, op.Key)
		}
		if op.Value != nil && len(op.Value) > MaxValueLen {
			return fmt.Errorf("%w: value of %d bytes at %s/%s (limit %d)", ErrInvalid, len(op.Value), op.Bucket, op.Key, MaxValueLen)
		}
	}
	return nil
}

// ValidKey checks a bucket and key: non-empty bucket of [a-z0-9_-], key of
// at most MaxKeyLen bytes with no NUL (NUL separates bucket and key in the
// sealing associated data).
func ValidKey(bucket, key string) error {
	if bucket == "" || len(bucket)+len(key) > MaxKeyLen {
		return fmt.Errorf("%w: bucket %q key length %d", ErrInvalid, bucket, len(key))
	}
	for _, c := range bucket {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: bucket %q", ErrInvalid, bucket)
		}
	}
	if strings.ContainsRune(key, 0) {
		return fmt.Errorf("%w: key contains NUL", ErrInvalid)
	}
	return nil
}
