//go:build !js

// Prekeys: signed, last-resort and one-time stock per device.

package store

import (
	"encoding/binary"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutPrekeys adds to a device's prekeys. If the one-time stock of either
// kind would exceed max, nothing is stored and the error is ErrTooMany.
func (s *Store) PutPrekeys(of Addr, up PrekeyUpload, max int) (Stock, error) {
	var st Stock
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketPrekeys).CreateBucketIfNotExists(of.key())
		if err != nil {
			return err
		}
		otk, err := b.CreateBucketIfNotExists(keyOTK)
		if err != nil {
			return err
		}
		kem, err := b.CreateBucketIfNotExists(keyKEM)
		if err != nil {
			return err
		}
		st = Stock{OneTime: otk.Stats().KeyN + len(up.OneTime), KEM: kem.Stats().KeyN + len(up.KEM)}
		if st.OneTime > max || st.KEM > max {
			return ErrTooMany
		}
		if len(up.SignedPrekey) > 0 {
			if err := b.Put(keySPK, up.SignedPrekey); err != nil {
				return err
			}
		}
		if len(up.LastResortKEM) > 0 {
			if err := b.Put(keyLRK, up.LastResortKEM); err != nil {
				return err
			}
		}
		for _, p := range []struct {
			b    *bolt.Bucket
			keys [][]byte
		}{{otk, up.OneTime}, {kem, up.KEM}} {
			for _, key := range p.keys {
				seq, err := p.b.NextSequence()
				if err != nil {
					return err
				}
				if err := p.b.Put(u64(seq), key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return st, err
}

// TakeBundle hands out a device's prekey bundle, removing the one-time
// prekeys it contains in the same transaction, so two fetches never get the
// same one. A fetch past the device's budget (shared by every fetcher)
// takes none: it gets the signed and last-resort prekeys, Withheld set.
// ErrNotFound if the device has no signed prekey yet.
func (s *Store) TakeBundle(of Addr, now time.Time, budget FetchBudget) (Bundle, error) {
	var out Bundle
	err := s.update(func(tx *bolt.Tx) error {
		out = Bundle{}
		b := tx.Bucket(bucketPrekeys).Bucket(of.key())
		if b == nil || b.Get(keySPK) == nil {
			return ErrNotFound
		}
		out.SignedPrekey = append([]byte(nil), b.Get(keySPK)...)
		var tokens float64
		var at int64
		if v := b.Get(keyFetch); len(v) == 16 {
			tokens = math.Float64frombits(binary.BigEndian.Uint64(v))
			at = int64(binary.BigEndian.Uint64(v[8:]))
		}
		ok, tokens, at := budget.spend(tokens, at, now.UnixMilli())
		rec := binary.BigEndian.AppendUint64(u64(math.Float64bits(tokens)), uint64(at))
		if err := b.Put(keyFetch, rec); err != nil {
			return err
		}
		take := func(name []byte) ([]byte, int, error) {
			sub := b.Bucket(name)
			if sub == nil {
				return nil, 0, nil
			}
			n := sub.Stats().KeyN
			k, v := sub.Cursor().First()
			if k == nil {
				return nil, 0, nil
			}
			v = append([]byte(nil), v...)
			return v, n - 1, sub.Delete(k)
		}
		if ok {
			var err error
			if out.OneTime, out.Left.OneTime, err = take(keyOTK); err != nil {
				return err
			}
			if out.KEM, out.Left.KEM, err = take(keyKEM); err != nil {
				return err
			}
		} else {
			out.Withheld, out.Left = true, stockOf(b)
		}
		if out.KEM == nil {
			if lrk := b.Get(keyLRK); lrk != nil {
				out.KEM = append([]byte(nil), lrk...)
				out.LastResort = true
			}
		}
		return nil
	})
	return out, err
}

// PrekeyStock reports how many one-time prekeys a device has left.
func (s *Store) PrekeyStock(of Addr) (Stock, error) {
	var st Stock
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPrekeys).Bucket(of.key()); b != nil {
			st = stockOf(b)
		}
		return nil
	})
	return st, err
}

// stockOf counts a device's one-time prekeys of each kind.
func stockOf(b *bolt.Bucket) Stock {
	var st Stock
	if sub := b.Bucket(keyOTK); sub != nil {
		st.OneTime = sub.Stats().KeyN
	}
	if sub := b.Bucket(keyKEM); sub != nil {
		st.KEM = sub.Stats().KeyN
	}
	return st
}
