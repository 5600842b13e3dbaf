//go:build !js

// Blobs: reservations and quota in the database, contents in files.

package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parley-im/parley/crypto/wire"
	bolt "go.etcd.io/bbolt"
)

// blobRecord is a blob's reservation and, once filled, its size.
type blobRecord struct {
	expires int64
	filled  bool
	owner   string
	size    uint64
}

func (b blobRecord) encode() []byte {
	w := wire.NewWriter(32 + len(b.owner))
	w.U8(recordVersion)
	w.U64(uint64(b.expires))
	w.Bool(b.filled)
	w.String(b.owner)
	w.U64(b.size)
	return w.Bytes()
}

func decodeBlob(v []byte) (blobRecord, error) {
	r := wire.NewReader(v)
	r.Version(recordVersion)
	var b blobRecord
	b.expires = int64(r.U64())
	b.filled = r.Bool()
	b.owner = r.String(maxStoredHandle)
	b.size = r.U64()
	return b, r.Finish()
}

// ReserveBlob creates an empty blob slot, charged to owner, that PutBlob
// can fill once.
func (s *Store) ReserveBlob(id []byte, owner string, expires time.Time) error {
	rec := blobRecord{expires: expires.UnixMilli(), owner: owner}.encode()
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if b.Get(id) != nil {
			return ErrExists
		}
		return b.Put(id, rec)
	})
}

// BlobSlot is nil if id has an unexpired reservation not yet filled,
// ErrExists if it was filled, ErrNotFound otherwise: what PutBlob would
// answer before its quota check, without the bytes.
func (s *Store) BlobSlot(id []byte, now time.Time) error {
	return s.db.View(func(tx *bolt.Tx) error { _, err := blobSlot(tx, id, now); return err })
}

func blobSlot(tx *bolt.Tx, id []byte, now time.Time) (blobRecord, error) {
	v := tx.Bucket(bucketBlobs).Get(id)
	if v == nil {
		return blobRecord{}, ErrNotFound
	}
	b, err := decodeBlob(v)
	switch {
	case err != nil:
		return b, err
	case b.expires <= now.UnixMilli():
		return b, ErrNotFound
	case b.filled:
		return b, ErrExists
	}
	return b, nil
}

// blobDir holds blob contents, one file per blob, next to the database.
// Blobs (up to megabytes) stay out of the B+tree so an upload never holds
// the group-commit writer that message sends wait on.
const blobDir = "blobs"

func (s *Store) blobPath(id []byte) string {
	return filepath.Join(s.dir, blobDir, hex.EncodeToString(id))
}

// PutBlob fills a reserved slot: ErrNotFound if there is no unexpired
// reservation, ErrExists if it was already filled, ErrQuota if the owner's
// unexpired blobs would exceed quota bytes. The bytes are written and
// fsynced to their own file before the reservation is marked filled, so a
// filled blob always has its contents on disk.
func (s *Store) PutBlob(id, data []byte, now time.Time, quota int64) error {
	// One upload per id at a time, so two racing uploads cannot leave
	// one's bytes under the other's acknowledgement.
	defer s.blobLocks.lock(string(id))()
	check := func(tx *bolt.Tx) (blobRecord, uint64, error) {
		b, err := blobSlot(tx, id, now)
		if err != nil {
			return b, 0, err
		}
		var used uint64
		if u := tx.Bucket(bucketBusage).Get([]byte(b.owner)); len(u) == 8 {
			used = binary.BigEndian.Uint64(u)
		}
		if used+uint64(len(data)) > uint64(quota) {
			return b, used, ErrQuota
		}
		return b, used, nil
	}
	if err := s.db.View(func(tx *bolt.Tx) error { _, _, err := check(tx); return err }); err != nil {
		return err
	}
	if err := writeFileSync(s.blobPath(id), data); err != nil {
		return fmt.Errorf("store: writing blob: %w", err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, used, err := check(tx)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketBusage).Put([]byte(b.owner), u64(used+uint64(len(data)))); err != nil {
			return err
		}
		b.filled, b.size = true, uint64(len(data))
		return tx.Bucket(bucketBlobs).Put(id, b.encode())
	})
	if err != nil && !errors.Is(err, ErrExists) {
		os.Remove(s.blobPath(id))
	}
	return err
}

// writeFileSync writes path atomically: a temporary file, fsync, rename,
// fsync of the directory.
func writeFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Blob returns a filled, unexpired blob, or ErrNotFound.
func (s *Store) Blob(id []byte, now time.Time) ([]byte, error) {
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(id)
		if v == nil {
			return ErrNotFound
		}
		b, err := decodeBlob(v)
		if err != nil {
			return err
		}
		if !b.filled || b.expires <= now.UnixMilli() {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.blobPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound // swept between the check and the read
	}
	return data, err
}
