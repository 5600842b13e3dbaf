//go:build !js

// Link channel: one-shot messages with an expiry.

package store

import (
	"time"

	"github.com/parley-im/parley/crypto/wire"
	bolt "go.etcd.io/bbolt"
)

func encodeExpiring(expires time.Time, data []byte, filled bool) []byte {
	w := wire.NewWriter(16 + len(data))
	w.U8(recordVersion)
	w.U64(uint64(expires.UnixMilli()))
	w.Bool(filled)
	w.Var(data)
	return w.Bytes()
}

func decodeExpiring(b []byte) (expires int64, data []byte, filled bool, err error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	expires = int64(r.U64())
	filled = r.Bool()
	data = r.Var(maxStoredPayload)
	return expires, data, filled, r.Finish()
}

// PutLink stores one link channel message under key until expires;
// ErrExists if that key already holds an unexpired message (one use only:
// a consumed key stays taken until it expires).
func (s *Store) PutLink(key []byte, data []byte, expires, now time.Time) error {
	rec := encodeExpiring(expires, data, true)
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		if v := b.Get(key); v != nil {
			if exp, _, _, err := decodeExpiring(v); err == nil && exp > now.UnixMilli() {
				return ErrExists
			}
		}
		return b.Put(key, rec)
	})
}

// TakeLink returns the message under key and marks it consumed; a second
// take is ErrGone, a take of a missing or expired key ErrNotFound.
func (s *Store) TakeLink(key []byte, now time.Time) ([]byte, error) {
	var out []byte
	err := s.update(func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket(bucketLinks)
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		exp, data, filled, err := decodeExpiring(v)
		if err != nil {
			return err
		}
		if exp <= now.UnixMilli() {
			return ErrNotFound
		}
		if !filled {
			return ErrGone
		}
		out = data
		// Keep a consumed tombstone until expiry so the key cannot be
		// filled a second time.
		return b.Put(key, encodeExpiring(time.UnixMilli(exp), nil, false))
	})
	return out, err
}
