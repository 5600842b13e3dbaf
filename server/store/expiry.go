//go:build !js

// The expiry index: every queued envelope's expiry, kept beside it so
// that counting, reading and sweeping a mailbox never read a payload that
// has expired (issue 14 item 3).

package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// expKey orders the expiry index: expiry, then seq (unique).
func expKey(expires int64, seq []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(expires))
	return append(k, seq...)
}

// idxExpires is the expiry an index entry holds.
func idxExpires(v []byte) int64 {
	if len(v) != 8 {
		return 0 // unreadable: treated as expired, so the sweep removes it
	}
	return int64(binary.BigEndian.Uint64(v))
}

// dropEnvelope deletes one queued envelope of mailbox: the record, its
// index entry and its expiry entry. It does not change the mailbox count.
func dropEnvelope(tx *bolt.Tx, mailbox, seq []byte, expires int64) error {
	if err := tx.Bucket(bucketEnv).Delete(seq); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMbox).Delete(append(append([]byte(nil), mailbox...), seq...)); err != nil {
		return err
	}
	return tx.Bucket(bucketExpiry).Delete(expKey(expires, seq))
}

// expireMailbox deletes the envelopes of one mailbox that expired at
// nowMs, reading only its index, and returns how many it deleted. Enqueue
// calls it when a mailbox is at its limit, so expired envelopes never
// refuse a send.
func expireMailbox(tx *bolt.Tx, mailbox []byte, nowMs int64) (int, error) {
	type dead struct {
		seq []byte
		exp int64
	}
	var gone []dead
	c := tx.Bucket(bucketMbox).Cursor()
	for k, v := c.Seek(mailbox); k != nil && len(k) == len(mailbox)+8 && bytes.HasPrefix(k, mailbox); k, v = c.Next() {
		if exp := idxExpires(v); exp <= nowMs {
			gone = append(gone, dead{append([]byte(nil), k[len(mailbox):]...), exp})
		}
	}
	for _, d := range gone {
		if err := dropEnvelope(tx, mailbox, d.seq, d.exp); err != nil {
			return 0, err
		}
	}
	if len(gone) > 0 {
		if _, err := addCount(tx, mailbox, -int64(len(gone))); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// migrateExpiryIndex upgrades a schema-2 database, whose index entries
// were empty, to schema 3: each entry gets its envelope's expiry and an
// entry in the expiry index. It runs once, in the transaction of Open.
func migrateExpiryIndex(tx *bolt.Tx) error {
	env, idx, expiry := tx.Bucket(bucketEnv), tx.Bucket(bucketMbox), tx.Bucket(bucketExpiry)
	type entry struct{ ik, seq []byte }
	var todo []entry
	err := idx.ForEach(func(k, v []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("store: index key %x too short", k)
		}
		todo = append(todo, entry{append([]byte(nil), k...), append([]byte(nil), k[len(k)-8:]...)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range todo {
		var exp int64 // a missing or unreadable envelope: expired now
		if v := env.Get(e.seq); v != nil {
			if x, err := envExpires(v); err == nil {
				exp = x
			}
		}
		if err := idx.Put(e.ik, u64(uint64(exp))); err != nil {
			return err
		}
		if err := expiry.Put(expKey(exp, e.seq), e.ik[:len(e.ik)-8]); err != nil {
			return err
		}
	}
	return nil
}
