// Package store is the relay's embedded database: one bbolt file in the
// server's data directory, so a self-hoster runs one binary and nothing else.
//
// The relay reaches the store only through the methods defined here, so a
// Cloudflare Workers build can provide the same behaviour on D1/R2/Durable
// Objects without the relay's rules being written twice.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the database file inside the data directory.
const FileName = "parley.db"

// schemaVersion is written on first open and checked on every later open,
// so an older binary refuses a database a newer one has upgraded.
const schemaVersion = 1

// openTimeout bounds the wait for bbolt's file lock: a second server on the
// same data directory fails with a clear error instead of hanging.
const openTimeout = 2 * time.Second

var bucketMeta = []byte("meta")

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("store: database is in use by another process")

// Store is the open database.
type Store struct {
	db *bolt.DB
}

// Open creates dir if needed and opens (or creates) the database in it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		v := b.Get([]byte("schema"))
		if v == nil {
			return b.Put([]byte("schema"), []byte{schemaVersion})
		}
		if len(v) != 1 || v[0] != schemaVersion {
			return fmt.Errorf("store: unsupported schema version %v (this build knows %d)", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db}, nil
}

// Ping checks the database answers a read transaction; /healthz uses it.
func (s *Store) Ping() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Close flushes and closes the database.
func (s *Store) Close() error { return s.db.Close() }
