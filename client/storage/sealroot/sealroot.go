// Package sealroot keeps a sealed root over the security-relevant records
// of a storage.Store, so that a record restored from an older copy of the
// profile, or deleted, is found at the next start (PROTOCOL.md 13.7).
//
// Sealing binds a record to its bucket and key, not to a version: anyone
// who can write the profile can put back an old session record (and make a
// ratchet reuse a message key), bring back used one-time prekeys, or delete
// a pinned key or a security setting. The root is a keyed set hash of every
// covered record: XOR over covered records of
// HMAC-SHA-256(root key, u32 len || bucket || u32 len || key || value),
// with their count, kept in one record that every Commit touching a covered
// record rewrites in the same batch. The root key lives only inside that
// (sealed) record, so no one without the data key can compute an element,
// and no set of old records can be combined to match the root.
//
// Open recomputes the root from the stored records and refuses a mismatch
// with ErrRolledBack; nothing is changed or deleted. A whole earlier copy of
// the profile, root included, still opens: detecting that needs state kept
// outside the profile (docs/THREAT_MODEL.md).
//
// Most callers want Open, then use the Store as the engine's store.
package sealroot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/parley-im/parley/client/storage"
)

// Version is the root record's format version.
const Version = 1

// RecordLen is the root record's exact size: u8 version, the 32-byte root
// key, the 32-byte XOR of the elements and the u64 count of records.
const RecordLen = 1 + 32 + 32 + 8

// Errors.
var (
	// ErrRolledBack reports stored records that do not match their root:
	// a covered record was replaced by another (older) one, deleted or
	// added behind the store's back, or the root itself is gone.
	ErrRolledBack = errors.New("sealroot: the stored records do not match their sealed root")
	// ErrMalformed reports a root record that is not in the format.
	ErrMalformed = errors.New("sealroot: malformed root record")
)

// Range names covered records: every key of Bucket that starts with
// Prefix.
type Range struct{ Bucket, Prefix string }

// Options configure Open.
type Options struct {
	// Bucket and Key name the root record.
	Bucket, Key string
	// Covered are the records under the root.
	Covered []Range
	// Create allows Open to make the root when its record is absent (a
	// profile from before roots existed): the records as they are now
	// become the root. Without it an absent root is ErrRolledBack.
	Create bool
	// OnCreate are operations committed in the batch that creates the
	// root (the caller's mark that a root now exists).
	OnCreate []storage.Op
}

// root is the decoded root record.
type root struct {
	key   [32]byte
	acc   [32]byte
	count uint64
}

// Encode returns the root record for key, acc and count (exported
// through NewRecord and tests).
func (r *root) encode() []byte {
	out := make([]byte, 0, RecordLen)
	out = append(out, Version)
	out = append(out, r.key[:]...)
	out = append(out, r.acc[:]...)
	return binary.BigEndian.AppendUint64(out, r.count)
}

func decode(b []byte) (*root, error) {
	if len(b) != RecordLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), RecordLen)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	r := &root{count: binary.BigEndian.Uint64(b[65:])}
	copy(r.key[:], b[1:33])
	copy(r.acc[:], b[33:65])
	return r, nil
}

// NewRecord is the root record of a store with no covered records yet:
// a fresh random key, an empty set. A new profile stores it with its first
// records.
func NewRecord() ([]byte, error) {
	var r root
	if _, err := rand.Read(r.key[:]); err != nil {
		return nil, err
	}
	return r.encode(), nil
}

// element is one record's contribution to the root.
type element struct{ mac hash.Hash }

func newElement(key *[32]byte) element { return element{hmac.New(sha256.New, key[:])} }

func (e element) xorInto(acc *[32]byte, bucket, key string, value []byte) {
	e.mac.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(bucket)))
	e.mac.Write(n[:])
	e.mac.Write([]byte(bucket))
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	e.mac.Write(n[:])
	e.mac.Write([]byte(key))
	e.mac.Write(value)
	var sum [32]byte
	e.mac.Sum(sum[:0])
	for i := range acc {
		acc[i] ^= sum[i]
	}
}

// Store is a storage.Store that keeps the root of its covered records in
// step with every Commit. Every write of a covered record must go through
// it.
type Store struct {
	inner       storage.Store
	bucket, key string
	covered     []Range

	mu sync.Mutex // serializes Commits that touch covered records
	r  root
}

func (s *Store) covers(bucket, key string) bool {
	if bucket == s.bucket && key == s.key {
		return false
	}
	for _, c := range s.covered {
		if c.Bucket == bucket && strings.HasPrefix(key, c.Prefix) {
			return true
		}
	}
	return false
}

// Open reads the root record from inner, recomputes the root from the
// covered records and returns the Store if they match. A mismatch, or an
// absent root without opts.Create, is ErrRolledBack; Open then writes
// nothing.
func Open(ctx context.Context, inner storage.Store, opts Options) (*Store, error) {
	s := &Store{inner: inner, bucket: opts.Bucket, key: opts.Key, covered: opts.Covered}
	raw, err := inner.Get(ctx, opts.Bucket, opts.Key)
	absent := errors.Is(err, storage.ErrNotFound)
	if err != nil && !absent {
		return nil, err
	}
	var stored *root
	if absent {
		if !opts.Create {
			return nil, fmt.Errorf("%w: the root record %s/%s is missing", ErrRolledBack, opts.Bucket, opts.Key)
		}
		stored = &root{}
		if _, err := rand.Read(stored.key[:]); err != nil {
			return nil, err
		}
	} else if stored, err = decode(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", storage.ErrCorrupt, err)
	}
	got, err := s.compute(ctx, &stored.key)
	if err != nil {
		return nil, err
	}
	if absent {
		s.r = got
		var b storage.Batch
		b.Ops = append(b.Ops, opts.OnCreate...)
		b.Put(s.bucket, s.key, got.encode())
		if err := inner.Commit(ctx, &b); err != nil {
			return nil, err
		}
		return s, nil
	}
	if got.count != stored.count || !hmac.Equal(got.acc[:], stored.acc[:]) {
		return nil, fmt.Errorf("%w: %d covered records found, %d expected", ErrRolledBack, got.count, stored.count)
	}
	s.r = *stored
	return s, nil
}

// compute is the root of the covered records as stored, under key.
func (s *Store) compute(ctx context.Context, key *[32]byte) (root, error) {
	r := root{key: *key}
	e := newElement(key)
	for _, c := range s.covered {
		err := s.inner.Scan(ctx, c.Bucket, c.Prefix, storage.ScanOptions{}, func(k string, v []byte) error {
			if !s.covers(c.Bucket, k) {
				return nil
			}
			e.xorInto(&r.acc, c.Bucket, k, v)
			r.count++
			return nil
		})
		if err != nil {
			return root{}, err
		}
	}
	return r, nil
}

// Get reads inner.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	return s.inner.Get(ctx, bucket, key)
}

// Scan reads inner.
func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	return s.inner.Scan(ctx, bucket, prefix, opts, fn)
}

// Sync is inner's.
func (s *Store) Sync(ctx context.Context) error { return storage.Sync(ctx, s.inner) }

// Commit applies b to inner, with the root rewritten in the same batch
// when b changes a covered record. The old value of each changed record
// is read first (from the engine's cache, usually) to take it out of the
// root.
func (s *Store) Commit(ctx context.Context, b *storage.Batch) error {
	touches := false
	for _, op := range b.Ops {
		if op.Bucket == s.bucket && op.Key == s.key {
			return fmt.Errorf("%w: %s/%s is the store's root record", storage.ErrInvalid, s.bucket, s.key)
		}
		if s.covers(op.Bucket, op.Key) {
			touches = true
		}
	}
	if !touches {
		return s.inner.Commit(ctx, b)
	}
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.r
	e := newElement(&next.key)
	// Values as the batch leaves them, for a record it changes twice.
	seen := map[[2]string][]byte{}
	present := map[[2]string]bool{}
	for _, op := range b.Ops {
		if !s.covers(op.Bucket, op.Key) {
			continue
		}
		id := [2]string{op.Bucket, op.Key}
		old, had := seen[id], present[id]
		if _, ok := present[id]; !ok {
			v, err := s.inner.Get(ctx, op.Bucket, op.Key)
			switch {
			case err == nil:
				old, had = bytes.Clone(v), true
			case errors.Is(err, storage.ErrNotFound):
			default:
				return err
			}
		}
		if had {
			e.xorInto(&next.acc, op.Bucket, op.Key, old)
			next.count--
		}
		if op.Value != nil {
			e.xorInto(&next.acc, op.Bucket, op.Key, op.Value)
			next.count++
		}
		seen[id], present[id] = op.Value, op.Value != nil
	}
	nb := storage.Batch{Ops: make([]storage.Op, 0, len(b.Ops)+1), Relaxed: b.Relaxed}
	nb.Ops = append(nb.Ops, b.Ops...)
	nb.Put(s.bucket, s.key, next.encode())
	if err := s.inner.Commit(ctx, &nb); err != nil {
		return err
	}
	s.r = next
	return nil
}
