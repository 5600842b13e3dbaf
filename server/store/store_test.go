package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func addr(h string, d byte) Addr { return Addr{Handle: h, Device: DeviceID{d}} }

func env(to Addr, payload string) Envelope {
	return Envelope{To: to, From: addr("sender", 1), ServerTime: time.Now().UnixMilli(),
		Expires: time.Now().Add(time.Hour).UnixMilli(), Payload: []byte(payload)}
}

func TestSecondOpenIsLocked(t *testing.T) {
	_, dir := open(t)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestEnqueueConcurrentOrderAndPersistence(t *testing.T) {
	s, dir := open(t)
	const senders, each = 16, 50
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				// Each sender's messages must keep their order.
				if err := s.Enqueue([]Envelope{env(addr("bob", 1), fmt.Sprintf("%02d-%03d", i, j))}, 1<<20); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	commits, ops := s.Commits()
	t.Logf("%d ops in %d commits", ops, commits)
	if s.Queued() != senders*each {
		t.Fatalf("queued = %d", s.Queued())
	}
	s.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Queued() != senders*each {
		t.Fatalf("queued after reopen = %d", s.Queued())
	}
	envs, err := s.Mailbox(addr("bob", 1), 0, 10000, time.Now())
	if err != nil || len(envs) != senders*each {
		t.Fatalf("mailbox: %d, %v", len(envs), err)
	}
	last := map[string]string{}
	var prevSeq uint64
	for _, e := range envs {
		if e.Seq <= prevSeq {
			t.Fatal("seqs not increasing")
		}
		prevSeq = e.Seq
		p := string(e.Payload)
		if p[:2] != "" && last[p[:2]] > p {
			t.Fatalf("sender %s out of order", p[:2])
		}
		last[p[:2]] = p
	}
}

func TestMailboxFullIsAtomicAndDoesNotFailNeighbours(t *testing.T) {
	s, _ := open(t)
	full := addr("full", 1)
	for i := 0; i < 2; i++ {
		if err := s.Enqueue([]Envelope{env(full, "x")}, 2); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := []Envelope{env(addr("ok", byte(i)), "y")}
			if i%2 == 0 {
				to = append(to, env(full, "z")) // refused as a whole
			}
			errs[i] = s.Enqueue(to, 2)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && !errors.Is(err, ErrMailboxFull) {
			t.Fatalf("op %d: %v", i, err)
		}
		if i%2 == 1 && err != nil {
			t.Fatalf("neighbour %d failed: %v", i, err)
		}
	}
	if s.Queued() != 2+10 {
		t.Fatalf("queued = %d", s.Queued())
	}
	for i := 0; i < 20; i += 2 {
		if n, _ := s.MailboxLen(addr("ok", byte(i))); n != 0 {
			t.Fatalf("partial write for op %d", i)
		}
	}
}

func TestDeleteAndSweep(t *testing.T) {
	s, _ := open(t)
	a := addr("a", 1)
	var envs []Envelope
	for i := 0; i < 5; i++ {
		envs = append(envs, env(a, "p"))
	}
	envs[0].Expires = time.Now().Add(-time.Second).UnixMilli()
	if err := s.Enqueue(envs, 100); err != nil {
		t.Fatal(err)
	}
	// A neighbouring mailbox whose key extends a's must not be counted.
	if err := s.Enqueue([]Envelope{env(addr("a", 2), "q")}, 100); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Mailbox(a, 0, 100, time.Now())
	if len(got) != 4 {
		t.Fatalf("expired envelope served: %d", len(got))
	}
	if n, _ := s.MailboxLen(a); n != 5 {
		t.Fatalf("len = %d, want 5 until the sweep", n)
	}
	if n, err := s.LiveMailboxLen(a, time.Now()); err != nil || n != 4 {
		t.Fatalf("live len = %d, %v; want 4 (the expired one not counted)", n, err)
	}
	if n, _ := s.LiveMailboxLen(a, time.Now().Add(48*time.Hour)); n != 0 {
		t.Fatalf("live len two days on = %d", n)
	}
	if err := s.Delete([]Acked{{To: a, Seqs: []uint64{got[0].Seq, got[0].Seq, 999}}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MailboxLen(a); n != 4 {
		t.Fatalf("len after delete = %d", n)
	}
	if err := s.PutLink([]byte("link0"), []byte("m"), time.Now().Add(-time.Second), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(time.Now())
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d, %v", n, err)
	}
	if s.Queued() != 4 {
		t.Fatalf("queued = %d", s.Queued())
	}
}

// unlimited is a fetch budget no test here reaches.
var unlimited = FetchBudget{Burst: 1 << 20, PerSec: 1}

func TestPrekeysAtomicTake(t *testing.T) {
	s, _ := open(t)
	a := addr("a", 1)
	if _, err := s.TakeBundle(a, time.Now(), unlimited); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty: %v", err)
	}
	up := PrekeyUpload{SignedPrekey: []byte("spk"), LastResortKEM: []byte("lr")}
	for i := 0; i < 30; i++ {
		up.OneTime = append(up.OneTime, []byte(fmt.Sprint("o", i)))
	}
	if _, err := s.PutPrekeys(a, up, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPrekeys(a, up, 40); !errors.Is(err, ErrTooMany) {
		t.Fatalf("over cap: %v", err)
	}
	seen := sync.Map{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := s.TakeBundle(a, time.Now(), unlimited)
			if err != nil {
				t.Error(err)
				return
			}
			if !b.LastResort || !bytes.Equal(b.KEM, []byte("lr")) {
				t.Errorf("kem = %q", b.KEM)
			}
			if b.OneTime != nil {
				if _, dup := seen.LoadOrStore(string(b.OneTime), true); dup {
					t.Errorf("one-time prekey %s handed out twice", b.OneTime)
				}
			}
		}()
	}
	wg.Wait()
	if st, _ := s.PrekeyStock(a); st.OneTime != 0 {
		t.Fatalf("stock left %d", st.OneTime)
	}
}

func TestDeviceListReplacePurges(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateAccount(Account{Handle: "a", AccountKey: []byte("k"), Version: 1, DeviceList: []byte("l1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(Account{Handle: "a"}); !errors.Is(err, ErrExists) {
		t.Fatalf("dup: %v", err)
	}
	s.Enqueue([]Envelope{env(addr("a", 2), "x"), env(addr("a", 1), "y")}, 10)
	s.PutPrekeys(addr("a", 2), PrekeyUpload{SignedPrekey: []byte("s")}, 10)
	if _, err := s.ReplaceDeviceList("a", 5, 6, []byte("l"), nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("cas: %v", err)
	}
	purged, err := s.ReplaceDeviceList("a", 1, 2, []byte("l2"), []DeviceID{{2}})
	if err != nil || purged != 1 {
		t.Fatalf("replace: %d %v", purged, err)
	}
	acc, _ := s.Account("a")
	if acc.Version != 2 || string(acc.DeviceList) != "l2" {
		t.Fatalf("account = %+v", acc)
	}
	if _, err := s.TakeBundle(addr("a", 2), time.Now(), unlimited); !errors.Is(err, ErrNotFound) {
		t.Fatal("prekeys of removed device survive")
	}
	if s.Queued() != 1 {
		t.Fatalf("queued = %d", s.Queued())
	}
}

func TestLinkAndBlob(t *testing.T) {
	s, _ := open(t)
	now := time.Now()
	if err := s.PutLink([]byte("k"), []byte("v"), now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLink([]byte("k"), []byte("v"), now.Add(time.Minute), now); !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	if v, err := s.TakeLink([]byte("k"), now); err != nil || string(v) != "v" {
		t.Fatal(v, err)
	}
	if _, err := s.TakeLink([]byte("k"), now); !errors.Is(err, ErrGone) {
		t.Fatal(err)
	}
	id := []byte("0123456789abcdef")
	if err := s.PutBlob(id, []byte("b"), now, 100); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	s.ReserveBlob(id, "alice", now.Add(time.Hour))
	if _, err := s.Blob(id, now); !errors.Is(err, ErrNotFound) {
		t.Fatal("empty reservation served")
	}
	if err := s.PutBlob(id, []byte("b"), now, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(id, []byte("c"), now, 100); !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	// The owner's quota counts filled blobs until they are swept.
	id2 := []byte("fedcba9876543210")
	s.ReserveBlob(id2, "alice", now.Add(time.Hour))
	if err := s.PutBlob(id2, make([]byte, 100), now, 100); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := s.PutBlob(id2, make([]byte, 99), now, 100); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Blob(id, now); string(v) != "b" {
		t.Fatal(v)
	}
	// Contents live in a file beside the database; the sweep removes it.
	if _, err := os.Stat(s.blobPath(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.blobPath(id)); !os.IsNotExist(err) {
		t.Fatalf("swept blob file: %v", err)
	}
	if _, err := s.Blob(id, now); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	id3 := []byte("0000000000000003")
	s.ReserveBlob(id3, "alice", now.Add(3*time.Hour))
	if err := s.PutBlob(id3, make([]byte, 100), now, 100); err != nil {
		t.Fatalf("quota not released by the sweep: %v", err)
	}
}

func TestOrphanBlobFilesRemovedOnOpen(t *testing.T) {
	s, dir := open(t)
	id := []byte("0123456789abcdef")
	s.ReserveBlob(id, "alice", time.Now().Add(time.Hour))
	// An upload whose commit never happened (crash): file, no filled record.
	if err := writeFileSync(s.blobPath(id), []byte("partial")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(s.blobPath(id)); !os.IsNotExist(err) {
		t.Fatalf("orphan survived: %v", err)
	}
	if err := s.PutBlob(id, []byte("whole"), time.Now(), 1<<20); err != nil {
		t.Fatalf("retry after crash: %v", err)
	}
}

// BenchmarkEnqueueParallel measures durable envelope inserts with many
// producers sharing commits (1 KiB payloads).
func BenchmarkEnqueueParallel(b *testing.B) {
	s, _ := open(b)
	payload := bytes.Repeat([]byte{1}, 1024)
	b.SetParallelism(64)
	b.ResetTimer()
	var i sync.Mutex
	n := byte(0)
	b.RunParallel(func(pb *testing.PB) {
		i.Lock()
		n++
		to := addr("bench", n)
		i.Unlock()
		for pb.Next() {
			e := env(to, "")
			e.Payload = payload
			if err := s.Enqueue([]Envelope{e}, 1<<30); err != nil {
				b.Error(err)
				return
			}
		}
	})
	commits, ops := s.Commits()
	b.ReportMetric(float64(ops)/float64(commits), "ops/commit")
}

// TestEnqueueRefusesSupersededList: a send checked against list version 1
// is refused, whole, once version 2 is stored (the revocation that purged
// a device committed between the check and the send's commit).
func TestEnqueueRefusesSupersededList(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateAccount(Account{Handle: "a", AccountKey: []byte("k"), Version: 1, DeviceList: []byte("l1")}); err != nil {
		t.Fatal(err)
	}
	checked := func() []Envelope {
		e1, e2 := env(addr("a", 1), "x"), env(addr("b", 1), "y")
		e1.ListVersion = 1
		return []Envelope{e1, e2}
	}
	if err := s.Enqueue(checked(), 100); err != nil {
		t.Fatalf("send checked against the current list: %v", err)
	}
	if _, err := s.ReplaceDeviceList("a", 1, 2, []byte("l2"), []DeviceID{{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(checked(), 100); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("send checked against a superseded list: %v, want ErrSuperseded", err)
	}
	for _, a := range []Addr{addr("a", 1), addr("b", 1)} {
		if n, _ := s.MailboxLen(a); n != map[string]int{"a": 0, "b": 1}[a.Handle] {
			t.Errorf("mailbox of %s holds %d after the refused send", a.Handle, n)
		}
	}
}
