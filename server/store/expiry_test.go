package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// shortEnv is an envelope accepted at at that expires ttl later.
func shortEnv(to Addr, at time.Time, ttl time.Duration) Envelope {
	return Envelope{To: to, From: addr("flooder", 1), ServerTime: at.UnixMilli(),
		Expires: at.Add(ttl).UnixMilli(), Payload: []byte("flood")}
}

// TestExpiredEnvelopesDoNotJamMailbox is issue 14 item 3: a flood of
// short-TTL envelopes fills a mailbox to its limit; once they expired they
// are never delivered (so never acked), yet they used to count toward the
// limit until a sweep reached them, refusing every legitimate send with
// mailbox_full.
func TestExpiredEnvelopesDoNotJamMailbox(t *testing.T) {
	s, _ := open(t)
	victim := addr("victim", 1)
	const limit = 20
	t0 := time.Now()
	flood := make([]Envelope, 0, limit)
	for range limit {
		flood = append(flood, shortEnv(victim, t0, time.Second))
	}
	for i := range flood {
		if err := s.Enqueue(flood[i:i+1], limit); err != nil {
			t.Fatalf("flood %d: %v", i, err)
		}
	}
	if err := s.Enqueue([]Envelope{shortEnv(victim, t0, time.Hour)}, limit); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("send while the flood is live: %v, want mailbox full", err)
	}
	later := t0.Add(2 * time.Second)
	if err := s.Enqueue([]Envelope{shortEnv(victim, later, time.Hour)}, limit); err != nil {
		t.Fatalf("legitimate send after the flood expired: %v", err)
	}
	if n, _ := s.LiveMailboxLen(victim, later); n != 1 {
		t.Fatalf("live envelopes after the flood: %d, want 1", n)
	}
	if q := s.Queued(); q != 1 {
		t.Fatalf("Queued = %d after the expired flood was dropped, want 1", q)
	}
}

// TestSweepReachesExpiredBehindLive: the sweep walks an expiry index, so an
// expired envelope queued after a live one (a long-TTL message, then a
// short-TTL flood) is deleted by the next sweep instead of waiting for
// every envelope before it to expire (up to 30 days).
func TestSweepReachesExpiredBehindLive(t *testing.T) {
	s, _ := open(t)
	victim := addr("victim", 1)
	t0 := time.Now()
	if err := s.Enqueue([]Envelope{shortEnv(victim, t0, 30*24*time.Hour)}, 100); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := s.Enqueue([]Envelope{shortEnv(victim, t0, time.Second)}, 100); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Sweep(t0.Add(2 * time.Second))
	if err != nil || n != 5 {
		t.Fatalf("sweep removed %d (%v), want the 5 expired envelopes behind the live one", n, err)
	}
	if got, _ := s.MailboxLen(victim); got != 1 {
		t.Fatalf("mailbox after sweep: %d, want 1", got)
	}
}

// TestMailboxReadSkipsExpiredWithoutReadingThem: a login after a flood of
// short-TTL envelopes must not read their payloads (2,000 × 256 KiB took
// 665 ms per login). Expired records are overwritten with garbage here:
// a read that decoded them would fail.
func TestMailboxReadSkipsExpiredWithoutReadingThem(t *testing.T) {
	s, _ := open(t)
	victim := addr("victim", 1)
	t0 := time.Now()
	var seqs []uint64
	for range 3 {
		e := []Envelope{shortEnv(victim, t0, time.Second)}
		if err := s.Enqueue(e, 100); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e[0].Seq)
	}
	live := []Envelope{shortEnv(victim, t0, time.Hour)}
	if err := s.Enqueue(live, 100); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, seq := range seqs {
			if err := tx.Bucket(bucketEnv).Put(u64(seq), []byte("not an envelope")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(2 * time.Second)
	got, err := s.Mailbox(victim, 0, 100, later)
	if err != nil || len(got) != 1 || got[0].Seq != live[0].Seq {
		t.Fatalf("mailbox read after expiry: %d envelopes, %v; want only the live one, no expired record read", len(got), err)
	}
	if n, err := s.LiveMailboxLen(victim, later); err != nil || n != 1 {
		t.Fatalf("live count: %d, %v", n, err)
	}
}

// TestSchema2UpgradesToExpiryIndex: a database written before the expiry
// index (empty index entries, schema 2) is upgraded on open, so its
// envelopes are still delivered, counted and swept.
func TestSchema2UpgradesToExpiryIndex(t *testing.T) {
	s, dir := open(t)
	bob := addr("bob", 1)
	t0 := time.Now()
	for _, ttl := range []time.Duration{time.Hour, time.Second} {
		if err := s.Enqueue([]Envelope{shortEnv(bob, t0, ttl)}, 100); err != nil {
			t.Fatal(err)
		}
	}
	// Rewrite it as schema 2 had it.
	err := s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketMbox)
		var keys [][]byte
		idx.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		for _, k := range keys {
			if err := idx.Put(k, nil); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketExpiry); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte{2})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("opening a schema-2 database: %v", err)
	}
	defer s.Close()
	later := t0.Add(2 * time.Second)
	if got, err := s.Mailbox(bob, 0, 10, later); err != nil || len(got) != 1 {
		t.Fatalf("mailbox after upgrade: %d, %v; want the live envelope", len(got), err)
	}
	if n, err := s.Sweep(later); err != nil || n != 1 {
		t.Fatalf("sweep after upgrade: %d, %v; want the expired envelope", n, err)
	}
	if n, _ := s.MailboxLen(bob); n != 1 {
		t.Fatalf("mailbox length after upgrade and sweep: %d", n)
	}
}
