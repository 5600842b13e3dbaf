// Package keyname is a storage.Store in front of another that stores every
// key part naming a contact (a handle, a device, a group, a chain) as a
// keyed PRF of it, so that a copy of a locked profile does not list who its
// owner talks to (PROTOCOL.md 13.9). It keeps the full storage.Store
// contract (byte order of the original keys, prefixes, paging), so the
// engine above it is unchanged.
//
// Each bucket that names someone has a Rule: the key is split at the
// rule's separator into the rule's parts (the last part takes the rest),
// and every Name part is replaced by
//
//	hex(HMAC-SHA-256(naming key, "parley/keyname/v1" || 0x00 || bucket || 0x00 || part)[:16])
//
// Clear parts stay as they are. A name is 32 hex digits and never contains
// the separator, so the stored key parses back into the same parts: the
// mapping is one to one. The PRF cannot be inverted, so each stored value
// carries its original key (value.go); the store under this one seals it.
//
// Order: a Scan whose prefix fixes every Name part it reaches, and leaves
// only Clear parts after it, reads stored keys in the original order (they
// differ only in the Clear rest) and streams. Any other Scan (a prefix
// ending inside a name, or Name parts after it) reads the stored range of
// the prefix's complete parts, then filters and sorts by original key:
// correct, and proportional to that range. Rules should put the parts a hot
// Scan orders by in Clear, after the names it fixes.
package keyname

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/parley-im/parley/client/storage"
)

// KeySize is the naming key's length.
const KeySize = 32

// NameLen is a stored name's length: 16 bytes of PRF output in hex, which
// keeps a collision among 2^32 names of one bucket near 2^-64.
const NameLen = 32

// prfLabel separates this PRF's inputs from every other use of HMAC.
const prfLabel = "parley/keyname/v1"

// Part says how one part of a key is stored.
type Part uint8

const (
	// Clear parts are stored as they are (counters, random ids, tags).
	Clear Part = iota
	// Name parts are stored as their PRF.
	Name
)

// Rule is the key layout of one bucket.
type Rule struct {
	// Sep separates the parts; it must not be a hex digit.
	Sep byte
	// Parts is the kind of each part, in order; the key is split into at
	// most len(Parts) parts, so the last one takes the rest of the key.
	Parts []Part
}

// Store is the naming layer. Buckets without a Rule pass through as they
// are, values included.
type Store struct {
	inner storage.Store
	rules map[string]Rule

	mu  sync.Mutex // guards mac and buf
	buf []byte     // the PRF's input
	mac interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
		Reset()
	}
}

// New returns the layer over inner, with the naming key and a rule per
// named bucket. It copies neither: the caller keeps the key for as long
// as the store lives.
func New(inner storage.Store, key *[KeySize]byte, rules map[string]Rule) *Store {
	for b, r := range rules {
		if len(r.Parts) == 0 || isHex(r.Sep) {
			panic(fmt.Sprintf("keyname: bad rule for bucket %q", b))
		}
	}
	return &Store{inner: inner, rules: rules, mac: hmac.New(sha256.New, key[:])}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// name is the stored form of one Name part.
func (s *Store) name(bucket, part string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(append(append(append(append(s.buf[:0], prfLabel...), 0), bucket...), 0), part...)
	s.mac.Reset()
	s.mac.Write(s.buf)
	var sum [sha256.Size]byte
	var out [NameLen]byte
	hex.Encode(out[:], s.mac.Sum(sum[:0])[:NameLen/2])
	return string(out[:])
}

// storedKey maps a whole key of a bucket with rule r.
func (s *Store) storedKey(bucket string, r Rule, key string) string {
	parts := strings.SplitN(key, string(r.Sep), len(r.Parts))
	var sb strings.Builder
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte(r.Sep)
		}
		if r.Parts[i] == Name {
			sb.WriteString(s.name(bucket, p))
		} else {
			sb.WriteString(p)
		}
	}
	return sb.String()
}

// StoredKey is the key under which bucket/key is stored below the layer
// (key itself in a bucket without a rule). Tests that tamper with the
// stored records use it to find them.
func (s *Store) StoredKey(bucket, key string) string {
	r, ok := s.rules[bucket]
	if !ok {
		return key
	}
	return s.storedKey(bucket, r, key)
}

// scanPlan maps a Scan prefix: stored is the stored prefix to read, and
// ordered says the stored keys under it come in the original keys' order
// (see the package comment).
func (s *Store) scanPlan(bucket string, r Rule, prefix string) (stored string, ordered bool) {
	parts := strings.SplitN(prefix, string(r.Sep), len(r.Parts))
	last := len(parts) - 1 // the part the prefix may end inside
	var sb strings.Builder
	for i, p := range parts[:last] {
		if r.Parts[i] == Name {
			sb.WriteString(s.name(bucket, p))
		} else {
			sb.WriteString(p)
		}
		sb.WriteByte(r.Sep)
	}
	for _, k := range r.Parts[last:] {
		if k == Name {
			return sb.String(), false
		}
	}
	sb.WriteString(parts[last])
	return sb.String(), true
}

// Get returns the value at bucket/key.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	r, ok := s.rules[bucket]
	if !ok {
		return s.inner.Get(ctx, bucket, key)
	}
	v, err := s.inner.Get(ctx, bucket, s.storedKey(bucket, r, key))
	if err != nil {
		return nil, err
	}
	orig, val, err := openValue(v)
	if err != nil || orig != key {
		return nil, fmt.Errorf("%w: %s/%s does not hold its own name", storage.ErrCorrupt, bucket, key)
	}
	return val, nil
}

// Commit applies b with every named key mapped, atomically as the inner
// store does.
func (s *Store) Commit(ctx context.Context, b *storage.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	out := storage.Batch{Ops: make([]storage.Op, len(b.Ops)), Relaxed: b.Relaxed}
	for i, op := range b.Ops {
		r, ok := s.rules[op.Bucket]
		if !ok {
			out.Ops[i] = op
			continue
		}
		out.Ops[i] = storage.Op{Bucket: op.Bucket, Key: s.storedKey(op.Bucket, r, op.Key), IfAbsent: op.IfAbsent}
		if op.Value != nil {
			out.Ops[i].Value = sealValue(op.Key, op.Value)
		}
	}
	return s.inner.Commit(ctx, &out)
}

// Sync passes through.
func (s *Store) Sync(ctx context.Context) error { return storage.Sync(ctx, s.inner) }

// Scan calls fn for the keys of bucket under prefix, in the original keys'
// order.
func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	r, ok := s.rules[bucket]
	if !ok {
		return s.inner.Scan(ctx, bucket, prefix, opts, fn)
	}
	stored, ordered := s.scanPlan(bucket, r, prefix)
	if !ordered {
		return s.scanSorted(ctx, bucket, stored, prefix, opts, fn)
	}
	inner := storage.ScanOptions{Reverse: opts.Reverse, Limit: opts.Limit}
	if opts.After != "" {
		switch {
		case strings.HasPrefix(opts.After, prefix):
			inner.After = s.storedKey(bucket, r, opts.After)
		case (opts.After < prefix) == opts.Reverse:
			// Every key under prefix is on the far side of After: none
			// comes after it in the scan's direction.
			return nil
		}
	}
	return s.inner.Scan(ctx, bucket, stored, inner, func(k string, v []byte) error {
		orig, val, err := openValue(v)
		if err != nil || s.storedKey(bucket, r, orig) != k {
			return fmt.Errorf("%w: %s/%s does not hold its own name", storage.ErrCorrupt, bucket, k)
		}
		return fn(orig, val)
	})
}

// scanSorted is a Scan whose stored order is not the original one: it
// reads the stored range, keeps the keys the caller asked for and sorts
// them.
func (s *Store) scanSorted(ctx context.Context, bucket, stored, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	r := s.rules[bucket]
	var all []kv
	err := s.inner.Scan(ctx, bucket, stored, storage.ScanOptions{}, func(k string, v []byte) error {
		orig, val, err := openValue(v)
		if err != nil || s.storedKey(bucket, r, orig) != k {
			return fmt.Errorf("%w: %s/%s does not hold its own name", storage.ErrCorrupt, bucket, k)
		}
		if !strings.HasPrefix(orig, prefix) {
			return nil
		}
		if opts.After != "" && (!opts.Reverse && orig <= opts.After || opts.Reverse && orig >= opts.After) {
			return nil
		}
		all = append(all, kv{orig, val})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return (all[i].k < all[j].k) != opts.Reverse })
	if opts.Limit > 0 && len(all) > opts.Limit {
		all = all[:opts.Limit]
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			if errors.Is(err, storage.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}
