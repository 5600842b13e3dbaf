//go:build !js

// Mailboxes: queued envelopes, their per-device index and counts.

package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/parley-im/parley/crypto/wire"
	bolt "go.etcd.io/bbolt"
)

func encodeEnvelope(e *Envelope) []byte {
	w := wire.NewWriter(96 + len(e.To.Handle) + len(e.From.Handle) + len(e.Payload))
	w.U8(recordVersion)
	w.String(e.To.Handle)
	w.Fixed(e.To.Device[:])
	w.String(e.From.Handle)
	w.Fixed(e.From.Device[:])
	w.Fixed(e.MessageID[:])
	w.U64(uint64(e.ServerTime))
	w.U64(uint64(e.Expires))
	w.Var(e.Payload)
	return w.Bytes()
}

func decodeEnvelope(seq uint64, b []byte) (Envelope, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	e := Envelope{Seq: seq}
	e.To.Handle = r.String(maxStoredHandle)
	r.FixedInto(e.To.Device[:])
	e.From.Handle = r.String(maxStoredHandle)
	r.FixedInto(e.From.Device[:])
	r.FixedInto(e.MessageID[:])
	e.ServerTime = int64(r.U64())
	e.Expires = int64(r.U64())
	e.Payload = r.Var(maxStoredPayload)
	if err := r.Finish(); err != nil {
		return Envelope{}, fmt.Errorf("store: envelope %d: %w", seq, err)
	}
	return e, nil
}

// envExpires reads only the expiry of an encoded envelope (for the
// upgrade to the expiry index).
func envExpires(b []byte) (int64, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	r.String(maxStoredHandle)
	r.Fixed(16)
	r.String(maxStoredHandle)
	r.Fixed(16 + 16 + 8)
	exp := int64(r.U64())
	return exp, r.Err()
}

func idxKey(mailbox []byte, seq uint64) []byte {
	k := make([]byte, 0, len(mailbox)+8)
	k = append(k, mailbox...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// purgeMailbox deletes every envelope of one mailbox and its count.
func purgeMailbox(tx *bolt.Tx, mailbox []byte) error {
	if _, err := expireMailbox(tx, mailbox, math.MaxInt64); err != nil {
		return err
	}
	return tx.Bucket(bucketMcount).Delete(mailbox)
}

// checkListVersions refuses envs with ErrSuperseded if the list of any
// recipient account is no longer the version the send was checked
// against. It runs in the send's transaction, which the writer orders with
// ReplaceDeviceList's: a send is stored either before a revocation (and
// purged by it) or refused.
func checkListVersions(tx *bolt.Tx, envs []Envelope) error {
	accounts := tx.Bucket(bucketAccounts)
	checked := map[string]bool{}
	for i := range envs {
		h := envs[i].To.Handle
		if envs[i].ListVersion == 0 || checked[h] {
			continue
		}
		checked[h] = true
		v := accounts.Get([]byte(h))
		if v == nil {
			return ErrSuperseded
		}
		a, err := decodeAccount(h, v)
		if err != nil {
			return err
		}
		if a.Version != envs[i].ListVersion {
			return ErrSuperseded
		}
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func addCount(tx *bolt.Tx, k []byte, delta int64) (uint64, error) {
	b := tx.Bucket(bucketMcount)
	var n uint64
	if v := b.Get(k); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + delta)
	if n == 0 {
		return 0, b.Delete(k)
	}
	return n, b.Put(k, u64(n))
}

// Enqueue stores envs (one message's fan-out) atomically and durably, and
// assigns each its Seq. If any mailbox would exceed limit live envelopes,
// nothing is stored and the error is a *MailboxFullError (ErrSuperseded if
// a recipient's list changed since the send was checked: ListVersion). Only envelopes
// unexpired at the send's ServerTime count: a mailbox at its limit first
// drops those whose TTL ran out, so a flood of short-TTL envelopes (never
// delivered, so never acked) cannot refuse sends until the next sweep.
func (s *Store) Enqueue(envs []Envelope, limit int) error {
	return s.EnqueueAsync(envs, limit)()
}

// EnqueueAsync is Enqueue split in two: it queues the write and returns at
// once; wait blocks until the envelopes are durable (or refused) and only
// then may envs be read again. Sends submitted by one goroutine are stored
// in submission order, so a socket can pipeline its sends and still have
// them delivered in the order it sent them.
func (s *Store) EnqueueAsync(envs []Envelope, limit int) (wait func() error) {
	recs := make([][]byte, len(envs))
	for i := range envs {
		recs[i] = encodeEnvelope(&envs[i])
	}
	expired := 0 // dropped by the last run of the op, for Queued
	o, err := s.submit(func(tx *bolt.Tx) error {
		expired = 0
		counts := tx.Bucket(bucketMcount)
		// Check every mailbox before writing anything: a refusal must
		// leave no partial write even within this op (the expired
		// envelopes it dropped are rolled back with it).
		for i := range envs {
			k := envs[i].To.key()
			var n uint64
			if v := counts.Get(k); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			if n >= uint64(limit) {
				gone, err := expireMailbox(tx, k, envs[i].ServerTime)
				if err != nil {
					return err
				}
				expired += gone
				if n-uint64(gone) >= uint64(limit) {
					return &MailboxFullError{To: envs[i].To}
				}
			}
		}
		if err := checkListVersions(tx, envs); err != nil {
			return err
		}
		env, idx, expiry := tx.Bucket(bucketEnv), tx.Bucket(bucketMbox), tx.Bucket(bucketExpiry)
		// Sequential appends: fill pages completely instead of splitting
		// them in half.
		env.FillPercent = 1.0
		for i := range envs {
			seq, err := env.NextSequence()
			if err != nil {
				return err
			}
			envs[i].Seq = seq
			if err := env.Put(u64(seq), recs[i]); err != nil {
				return err
			}
			k := envs[i].To.key()
			if err := idx.Put(idxKey(k, seq), u64(uint64(envs[i].Expires))); err != nil {
				return err
			}
			if err := expiry.Put(expKey(envs[i].Expires, u64(seq)), k); err != nil {
				return err
			}
			if _, err := addCount(tx, k, 1); err != nil {
				return err
			}
		}
		return nil
	}, func() { s.queued.Add(int64(len(envs) - expired)) })
	if err != nil {
		return func() error { return err }
	}
	return func() error {
		<-o.done
		return o.err
	}
}

// Mailbox returns up to limit unexpired envelopes of to with Seq > after, in
// order. Expiry is read from the index: an expired envelope's record is
// never read.
func (s *Store) Mailbox(to Addr, after uint64, limit int, now time.Time) ([]Envelope, error) {
	var out []Envelope
	nowMs := now.UnixMilli()
	k := to.key()
	err := s.db.View(func(tx *bolt.Tx) error {
		env := tx.Bucket(bucketEnv)
		c := tx.Bucket(bucketMbox).Cursor()
		for ik, iv := c.Seek(idxKey(k, after+1)); ik != nil && len(out) < limit; ik, iv = c.Next() {
			if len(ik) != len(k)+8 || !bytes.HasPrefix(ik, k) {
				break
			}
			if idxExpires(iv) <= nowMs {
				continue
			}
			seq := binary.BigEndian.Uint64(ik[len(k):])
			v := env.Get(ik[len(k):])
			if v == nil {
				continue
			}
			e, err := decodeEnvelope(seq, v)
			if err != nil {
				return err
			}
			if e.Expires <= nowMs {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// MailboxLen is the number of envelopes waiting for to.
func (s *Store) MailboxLen(to Addr) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMcount).Get(to.key()); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}

// LiveMailboxLen is the number of unexpired envelopes waiting for to at
// now: MailboxLen less those whose TTL ran out and that the next Sweep
// will delete. It reads only the mailbox's index.
func (s *Store) LiveMailboxLen(to Addr, now time.Time) (int, error) {
	var n int
	nowMs := now.UnixMilli()
	k := to.key()
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMbox).Cursor()
		for ik, iv := c.Seek(k); ik != nil && len(ik) == len(k)+8 && bytes.HasPrefix(ik, k); ik, iv = c.Next() {
			if idxExpires(iv) > nowMs {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Delete removes acknowledged envelopes of any number of mailboxes in one
// commit; seqs already gone are ignored.
func (s *Store) Delete(acks []Acked) error {
	var deleted int
	err := s.update(func(tx *bolt.Tx) error {
		deleted = 0
		idx := tx.Bucket(bucketMbox)
		for _, a := range acks {
			k := a.To.key()
			n := 0
			for _, seq := range a.Seqs {
				ik := idxKey(k, seq)
				iv := idx.Get(ik)
				if iv == nil {
					continue // not this mailbox's, or already gone
				}
				if err := dropEnvelope(tx, k, ik[len(k):], idxExpires(iv)); err != nil {
					return err
				}
				n++
			}
			if n > 0 {
				if _, err := addCount(tx, k, -int64(n)); err != nil {
					return err
				}
			}
			deleted += n
		}
		return nil
	})
	if err == nil {
		s.queued.Add(-int64(deleted))
	}
	return err
}
