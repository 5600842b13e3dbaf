//go:build !js

// Accounts and their signed device lists.

package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
	bolt "go.etcd.io/bbolt"
)

func encodeAccount(a Account) []byte {
	w := wire.NewWriter(32 + len(a.AccountKey) + len(a.DeviceList))
	w.U8(recordVersion)
	w.Var(a.AccountKey)
	w.U64(a.Version)
	w.Var(a.DeviceList)
	return w.Bytes()
}

func decodeAccount(handle string, b []byte) (Account, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	a := Account{Handle: handle}
	a.AccountKey = r.Var(maxStoredKey)
	a.Version = r.U64()
	a.DeviceList = r.Var(maxStoredList)
	if err := r.Finish(); err != nil {
		return Account{}, fmt.Errorf("store: account record %q: %w", handle, err)
	}
	return a, nil
}

// CreateAccount registers a new account; ErrExists if the handle is taken,
// ErrKeyTaken if its account key is registered under another handle.
func (s *Store) CreateAccount(a Account) error {
	rec := encodeAccount(a)
	return s.update(func(tx *bolt.Tx) error {
		b, keys := tx.Bucket(bucketAccounts), tx.Bucket(bucketAkeys)
		if b.Get([]byte(a.Handle)) != nil {
			return ErrExists
		}
		if keys.Get(a.AccountKey) != nil {
			return ErrKeyTaken
		}
		if err := keys.Put(a.AccountKey, []byte(a.Handle)); err != nil {
			return err
		}
		return b.Put([]byte(a.Handle), rec)
	})
}

// migrateAccountKeys upgrades a schema-3 database, where one account key
// could be registered under several handles (a list replayed under a new
// one), to schema 4: each key is recorded for one handle, the one whose
// list has the highest version (only the key's owner can publish newer
// lists; a replayed list stays at the version it was copied at), the
// first in byte order on a tie. The other handles stay stored but Account
// no longer returns them, so they cannot log in, be fetched or be sent to.
func migrateAccountKeys(tx *bolt.Tx) error {
	keys := tx.Bucket(bucketAkeys)
	best := map[string]Account{}
	err := tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
		a, err := decodeAccount(string(k), v)
		if err != nil {
			return err
		}
		if cur, ok := best[string(a.AccountKey)]; !ok || a.Version > cur.Version {
			best[string(a.AccountKey)] = a
		}
		return nil
	})
	if err != nil {
		return err
	}
	for key, a := range best {
		if err := keys.Put([]byte(key), []byte(a.Handle)); err != nil {
			return err
		}
	}
	return nil
}

// Account returns the stored account, or ErrNotFound.
func (s *Store) Account(handle string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(handle))
		if v == nil {
			return ErrNotFound
		}
		var err error
		a, err = decodeAccount(handle, v)
		if err == nil && !bytes.Equal(tx.Bucket(bucketAkeys).Get(a.AccountKey), []byte(handle)) {
			return ErrNotFound // an alias of another handle's key, from before schema 4
		}
		return err
	})
	return a, err
}

// ReplaceDeviceList stores a newer signed list if the stored version is
// still prev (ErrConflict otherwise), and in the same transaction deletes
// the mailboxes and prekeys of the removed devices.
func (s *Store) ReplaceDeviceList(handle string, prev, version uint64, list []byte, removed []DeviceID) (purged int, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		purged = 0
		b := tx.Bucket(bucketAccounts)
		v := b.Get([]byte(handle))
		if v == nil {
			return ErrNotFound
		}
		a, err := decodeAccount(handle, v)
		if err != nil {
			return err
		}
		if a.Version != prev {
			return ErrConflict
		}
		a.Version, a.DeviceList = version, list
		if err := b.Put([]byte(handle), encodeAccount(a)); err != nil {
			return err
		}
		for _, d := range removed {
			k := Addr{handle, d}.key()
			if c := tx.Bucket(bucketMcount).Get(k); len(c) == 8 {
				purged += int(binary.BigEndian.Uint64(c))
			}
			if err := purgeMailbox(tx, k); err != nil {
				return err
			}
			err := tx.Bucket(bucketPrekeys).DeleteBucket(k)
			if err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if err := tx.Bucket(bucketMcount).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.queued.Add(-int64(purged))
	}
	return purged, err
}
