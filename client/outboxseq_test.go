//go:build !js

package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/boltstore"
	"github.com/parley-im/parley/crypto/wire"
)

// commitLog is a store that keeps a copy of every batch committed through
// it and can refuse the next commit.
type commitLog struct {
	storage.Store
	mu      sync.Mutex
	batches []storage.Batch
	fail    bool // refuse the next Commit, applying nothing
}

var errRefused = errors.New("commit refused by the test")

// logCommits makes d's engine write through a commitLog, which it
// returns; newDevice's option.
func logCommits(d *device) *commitLog {
	l := &commitLog{}
	d.wrapStore = func(s storage.Store) storage.Store {
		l.Store = s
		return l
	}
	return l
}

func (l *commitLog) Commit(ctx context.Context, b *storage.Batch) error {
	l.mu.Lock()
	fail := l.fail
	l.fail = false
	l.mu.Unlock()
	if fail {
		return errRefused
	}
	// The lock is held across the commit: what it writes is visible to
	// the engine's readers from inside Store.Commit, so a test that saw a
	// message must also find its batch in the log.
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.Store.Commit(ctx, b)
	if err == nil {
		l.batches = append(l.batches, storage.Batch{Ops: slices.Clone(b.Ops), Relaxed: b.Relaxed})
	}
	return err
}

func (l *commitLog) Sync(ctx context.Context) error { return storage.Sync(ctx, l.Store) }

func (l *commitLog) committed() []storage.Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches)
}

// queuedKeys maps the text of every entry queued in d's pairwise and
// group outbox to its key.
func queuedKeys(t *testing.T, d *device) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, bucket := range []string{bOutbox, bGroupOutbox} {
		err := d.store.Scan(ctxT(t), bucket, "", storage.ScanOptions{}, func(k string, v []byte) error {
			var raw []byte
			if bucket == bOutbox {
				rec, err := unmarshalOutbox(v)
				if err != nil {
					return err
				}
				raw = rec.Payload
			} else {
				rec, err := groupstate.UnmarshalOut(v)
				if err != nil {
					return err
				}
				raw = rec.Payload
			}
			p, err := unmarshalPayload(raw)
			if err != nil {
				return err
			}
			if p.Kind == kindText {
				keys[string(p.Body)] = k
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// arrivalOrder is the order in which d was told of new messages in chat.
func arrivalOrder(d *device, chat string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var texts []string
	for _, ev := range d.events {
		if ev.Type == "message" && ev.Message != nil && ev.Message.Chat == chat && !slices.Contains(texts, ev.Message.Text) {
			texts = append(texts, ev.Message.Text)
		}
	}
	return texts
}

// TestReceiveWritesNoOutboxCounter: the batch of a received message
// queues its receipt without writing an outbox counter record
// (self/outbox-seq): the counter is the engine's, recovered from the
// outboxes' keys.
func TestReceiveWritesNoOutboxCounter(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	var log *commitLog
	bob := newDevice(t, tr, "bob", func(d *device) { log = logCommits(d) })
	if err := bob.eng.CreateAccount(ctx, "bob", "bob"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	for _, text := range []string{"one", "two", "three"} {
		if _, err := alice.eng.SendText(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
		bob.waitMessage("alice", text)
	}
	receives := 0
	for _, b := range log.committed() {
		received, receipt := false, false
		perBucket := map[string]int{}
		for _, op := range b.Ops {
			if op.Bucket == bSelf && op.Key == keyOutSeq {
				t.Fatalf("a batch of %d operations writes the outbox counter: %+v", b.Len(), b.Ops)
			}
			received = received || op.Bucket == bMsgIndex && op.IfAbsent
			receipt = receipt || op.Bucket == bOutbox && op.Value != nil
			perBucket[op.Bucket]++
		}
		if received {
			receives++
			if !receipt {
				t.Fatalf("a received message's batch queues no receipt: %v", perBucket)
			}
			t.Logf("received message's batch: %d records %v", b.Len(), perBucket)
		}
	}
	if receives != 3 {
		t.Fatalf("saw %d received messages' batches, want 3", receives)
	}
	if _, err := bob.store.Get(ctx, bSelf, keyOutSeq); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Bob's store holds an outbox counter record: %v", err)
	}
}

// TestOutboxOrderAcrossRestart: entries queued offline in both outboxes
// survive a restart of the engine, the entries queued after it get higher
// keys than every one before it (the counter is recovered from the keys of
// both outboxes), a commit that fails after taking a number does not give
// that number to anything else, and everything is delivered in the order
// it was queued.
func TestOutboxOrderAcrossRestart(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	var log *commitLog
	alice := newDevice(t, tr, "alice", func(d *device) { log = logCommits(d) })
	if err := alice.eng.CreateAccount(ctx, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	alice.run()
	bob := newAccount(t, tr, "bob", "bob")
	if _, err := alice.eng.SendText(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "hello")
	gid, err := alice.eng.CreateGroup(ctx, "club", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	waitGroup(t, bob, gid, "known", func(Group) bool { return true })

	// Offline: a pairwise message, then a group message, which holds the
	// highest key when the engine restarts.
	alice.stop()
	alice.start()
	order := []string{"q0", "g0", "q1", "g1", "q2"}
	send := func(text string) {
		t.Helper()
		var err error
		if text[0] == 'g' {
			_, err = alice.eng.SendGroupText(ctx, gid, text)
		} else {
			_, err = alice.eng.SendText(ctx, "bob", text)
		}
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
	}
	send("q0")
	send("g0")
	alice.stop()
	alice.start()
	send("q1")

	// A commit that fails after taking a number: the number is skipped.
	alice.eng.mu.Lock()
	taken := alice.eng.outboxSeq
	alice.eng.mu.Unlock()
	log.mu.Lock()
	log.fail = true
	log.mu.Unlock()
	if _, err := alice.eng.SendText(ctx, "bob", "lost"); err == nil {
		t.Fatal("a send whose commit failed succeeded")
	}
	send("g1")
	send("q2")

	keys := queuedKeys(t, alice)
	if len(keys) != len(order) {
		t.Fatalf("queued %v, want %v", keys, order)
	}
	for i := 1; i < len(order); i++ {
		if keys[order[i-1]] >= keys[order[i]] {
			t.Fatalf("%s queued after %s has key %s, not above %s", order[i], order[i-1], keys[order[i]], keys[order[i-1]])
		}
	}
	if want := fmt.Sprintf("%016x", taken+2); keys["g1"] != want {
		t.Fatalf("g1 after the failed commit has key %s, want %s", keys["g1"], want)
	}

	alice.stop()
	alice.start()
	alice.run()
	bob.waitMessage("alice", "q2")
	bob.waitMessage(gid, "g1")
	if got := fmt.Sprint(arrivalOrder(bob, "alice")); got != "[hello q0 q1 q2]" {
		t.Fatalf("Bob received %s", got)
	}
	if got := fmt.Sprint(arrivalOrder(bob, gid)); got != "[g0 g1]" {
		t.Fatalf("Bob received %s in the group", got)
	}
	for _, b := range log.committed() {
		for _, op := range b.Ops {
			if op.Bucket == bSelf && op.Key == keyOutSeq {
				t.Fatal("the outbox counter record was written")
			}
		}
	}
}

// TestLegacyOutboxCounter: a profile whose counter record
// (self/outbox-seq, written by earlier versions) is above every queued
// entry's key goes on above it, and the record is left as it was.
func TestLegacyOutboxCounter(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice, bob := greeted(t, tr, "hello")

	alice.stop()
	alice.start()
	if _, err := alice.eng.SendText(ctx, "bob", "queued"); err != nil {
		t.Fatal(err)
	}
	alice.stop()
	// The record as an earlier version left it.
	const legacy = 1000
	w := wire.NewWriter(8)
	w.U64(legacy)
	st, err := boltstore.Open(alice.path)
	if err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	b.Put(bSelf, keyOutSeq, w.Bytes())
	err = st.Commit(ctx, &b)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	alice.start()
	if _, err := alice.eng.SendText(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	keys := queuedKeys(t, alice)
	if keys["queued"] >= fmt.Sprintf("%016x", legacy) {
		t.Fatalf("the entry queued before has key %s; the test needs it below the record", keys["queued"])
	}
	if want := fmt.Sprintf("%016x", legacy+1); keys["after"] != want {
		t.Fatalf("the entry queued after has key %s, want %s", keys["after"], want)
	}
	alice.run()
	bob.waitMessage("alice", "after")
	if got := fmt.Sprint(arrivalOrder(bob, "alice")); got != "[hello queued after]" {
		t.Fatalf("Bob received %s", got)
	}
	v, err := alice.store.Get(ctx, bSelf, keyOutSeq)
	if err != nil || string(v) != string(w.Bytes()) {
		t.Fatalf("the counter record is now %x, %v; want it untouched", v, err)
	}
}
