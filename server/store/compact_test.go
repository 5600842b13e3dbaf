package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestCompactShrinksAfterSweep is issue 14 item 8's disk half: a backlog
// that was delivered or swept left parley.db at its largest size forever.
// Compact (parley-server compact) gives the space back and keeps every
// live record.
func TestCompactShrinksAfterSweep(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(Account{Handle: "alice", AccountKey: []byte("key"), Version: 1, DeviceList: []byte("list")}); err != nil {
		t.Fatal(err)
	}
	bob := addr("bob", 1)
	t0 := time.Now()
	big := bytes.Repeat([]byte{7}, 32<<10)
	for range 40 {
		batch := make([]Envelope, 25)
		for i := range batch {
			batch[i] = Envelope{To: bob, From: addr("alice", 1), ServerTime: t0.UnixMilli(), Expires: t0.Add(time.Second).UnixMilli(), Payload: big}
		}
		if err := s.Enqueue(batch, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	keep := []Envelope{shortEnv(bob, t0, time.Hour)}
	if err := s.Enqueue(keep, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(t0.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Compact(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("compacting a database in use: %v, want ErrLocked", err)
	}
	s.Close()
	before, after, err := Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parley.db: %d bytes before, %d after", before, after)
	if after > before/4 {
		t.Fatalf("compaction left %d of %d bytes after 32 MiB was swept", after, before)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("opening the compacted database: %v", err)
	}
	defer s.Close()
	if a, err := s.Account("alice"); err != nil || a.Version != 1 {
		t.Fatalf("account after compaction: %+v, %v", a, err)
	}
	if got, err := s.Mailbox(bob, 0, 10, t0); err != nil || len(got) != 1 || got[0].Seq != keep[0].Seq {
		t.Fatalf("mailbox after compaction: %d envelopes, %v", len(got), err)
	}
	if s.Queued() != 1 {
		t.Fatalf("Queued after compaction = %d", s.Queued())
	}
	// The sequence continues: a new envelope sorts after the kept one.
	next := []Envelope{shortEnv(bob, t0, time.Hour)}
	if err := s.Enqueue(next, 1<<20); err != nil || next[0].Seq <= keep[0].Seq {
		t.Fatalf("enqueue after compaction: seq %d after %d, %v", next[0].Seq, keep[0].Seq, err)
	}
}
