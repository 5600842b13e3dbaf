//go:build !js

// Package boltstore is the native, file-backed storage.Store: one bbolt
// file, one bbolt bucket per storage bucket, one transaction per Batch (so
// a Batch is atomic and durable: bbolt fsyncs on commit). The CLI and the
// native multi-device tests use it; the browser uses IndexedDB instead.
//
// Values are stored as given: a native client's file is protected by the
// operating system's file permissions (0600), not sealed.
package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-im/parley/client/storage"
)

// openTimeout turns a second process on the same file into a clear error.
const openTimeout = 2 * time.Second

// Store is a bbolt-backed storage.Store.
type Store struct{ db *bolt.DB }

// Open opens or creates the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := storage.ValidKey(bucket, key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return storage.ErrNotFound
		}
		v := b.Get([]byte(key))
		if v == nil {
			return storage.ErrNotFound
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

func (s *Store) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	// Copy out under the read transaction, then call fn outside it, so fn
	// may use the store (even Commit) without deadlocking.
	var items []kv
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		p := []byte(prefix)
		in := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, p) }
		add := func(k, v []byte) bool {
			items = append(items, kv{string(k), append([]byte{}, v...)})
			return opts.Limit > 0 && len(items) >= opts.Limit
		}
		if !opts.Reverse {
			k, v := c.Seek(p)
			if opts.After != "" && opts.After >= prefix {
				k, v = c.Seek([]byte(opts.After))
				if k != nil && string(k) == opts.After {
					k, v = c.Next()
				}
			}
			for ; in(k); k, v = c.Next() {
				if add(k, v) {
					break
				}
			}
			return nil
		}
		// Reverse: position at the last key of the prefix (or before After).
		var k, v []byte
		if opts.After != "" {
			k, v = c.Seek([]byte(opts.After))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && string(k) >= opts.After {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Seek(append(append([]byte{}, p...), 0xff))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && bytes.Compare(k, p) > 0 && !bytes.HasPrefix(k, p) {
				k, v = c.Prev()
			}
		}
		for ; in(k); k, v = c.Prev() {
			if add(k, v) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := fn(it.k, it.v); err != nil {
			if errors.Is(err, storage.ErrStop) {
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
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, op := range b.Ops {
			bk, err := tx.CreateBucketIfNotExists([]byte(op.Bucket))
			if err != nil {
				return err
			}
			if op.IfAbsent && bk.Get([]byte(op.Key)) != nil {
				return fmt.Errorf("%w: %s/%s", storage.ErrExists, op.Bucket, op.Key)
			}
			if op.Value == nil {
				err = bk.Delete([]byte(op.Key))
			} else {
				err = bk.Put([]byte(op.Key), op.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
