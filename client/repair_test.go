//go:build !js

package client

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

func deviceOf(d *device) identity.DeviceID {
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	return d.eng.dev.ID
}

// TestUndecryptableIsRepaired: Bob loses his session with Alice's device
// (a damaged or restored store). Her next message fails to decrypt: Bob is
// told, asks her device for it again over a new session, and shows it
// once; both directions keep working afterwards.
func TestUndecryptableIsRepaired(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice, bob := greeted(t, tr, "one")
	if _, err := bob.eng.SendText(ctx, "alice", "two"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "two")

	bob.stop()
	bob.start()
	var b storage.Batch
	b.Delete(bSessions, sessionKey("alice", deviceOf(alice)))
	if err := bob.store.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	bob.run()

	if _, err := alice.eng.SendText(ctx, "bob", "three"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "three")
	if !bob.hasEvent("error", "undecryptable") {
		t.Fatal("the failed decryption was not reported")
	}
	if _, err := alice.eng.SendText(ctx, "bob", "four"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "four")
	if _, err := bob.eng.SendText(ctx, "alice", "five"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "five")
	if got := textsOf(t, bob, "alice"); got != "[one two three four five]" {
		t.Fatalf("Bob shows %s", got)
	}
	bob.eng.mu.Lock()
	requests := bob.eng.repair.requests
	bob.eng.mu.Unlock()
	if requests < 1 || requests > maxRetryRequests {
		t.Fatalf("%d retry requests", requests)
	}
}

// TestRetryRateLimited: failures from one device cause at most
// maxRetryRequests retry requests per repairInterval, however many arrive
// (a hostile relay can forge garbage in a device's name), and a retry
// request from someone outside the chat resends nothing.
func TestRetryRateLimited(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	newAccount(t, tr, "carol", "carol")
	id, err := alice.eng.SendText(ctx, "bob", "for bob only")
	if err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "for bob only")

	env := &relay.Envelope{From: relay.Addr{Handle: "alice", Device: deviceOf(alice)}, Payload: []byte{envRatchet, 1, 2, 3}}
	requests := func() int {
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		return bob.eng.repair.requests
	}
	for i := 0; i < 3*maxRetryRequests; i++ {
		bob.eng.requestRetry(ctx, env)
	}
	if n := requests(); n != maxRetryRequests {
		t.Fatalf("%d retry requests for %d failures within the interval, want %d", n, 3*maxRetryRequests, maxRetryRequests)
	}
	tr.clock.Advance(repairInterval)
	bob.eng.requestRetry(ctx, env)
	if n := requests(); n != maxRetryRequests+1 {
		t.Fatalf("%d retry requests after the interval, want %d", n, maxRetryRequests+1)
	}

	// Carol asks Alice's device for Alice's message to Bob: nothing.
	var mid MessageID
	raw, _ := hex.DecodeString(id)
	copy(mid[:], raw)
	dev := deviceOf(alice)
	p := &payload{Kind: kindRetry, Body: append(append([]byte{}, dev[:]...), mid[:]...)}
	alice.eng.mu.Lock()
	var b storage.Batch
	_, err = alice.eng.receiveRetryLocked(ctx, &b, p, "carol", dev)
	alice.eng.mu.Unlock()
	if err != nil || b.Len() != 0 {
		t.Fatalf("a retry request from outside the chat queued %d operations, %v", b.Len(), err)
	}
	// Bob's request is honoured once per interval.
	for i, want := range []int{1, 0} {
		alice.eng.mu.Lock()
		b = storage.Batch{}
		_, err = alice.eng.receiveRetryLocked(ctx, &b, p, "bob", deviceOf(bob))
		alice.eng.mu.Unlock()
		if err != nil || (b.Len() > 0) != (want == 1) {
			t.Fatalf("request %d from Bob queued %d operations, %v", i, b.Len(), err)
		}
	}
}

// TestRetryResendsFile: a retry request for a file message queues the
// attachment message again with the same blob reference.
func TestRetryResendsFile(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	data := randomBytes(t, 70_000)
	id, err := alice.eng.SendAttachment(ctx, "bob", File{Name: "f.bin", Data: data, Caption: "c"})
	if err != nil {
		t.Fatal(err)
	}
	waitMessageID(t, bob, "alice", id)
	raw, _ := hex.DecodeString(id)
	dev := deviceOf(alice)
	p := &payload{Kind: kindRetry, Body: append(append([]byte{}, dev[:]...), raw...)}
	alice.eng.mu.Lock()
	var b storage.Batch
	_, err = alice.eng.receiveRetryLocked(ctx, &b, p, "bob", deviceOf(bob))
	rec, _, lerr := alice.eng.loadAttachment(ctx, id)
	alice.eng.mu.Unlock()
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	var queued *outboxRecord
	for _, op := range b.Ops {
		if op.Bucket == bOutbox {
			if queued, err = unmarshalOutbox(op.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	if queued == nil {
		t.Fatal("no resend queued")
	}
	rp, err := unmarshalPayload(queued.Payload)
	if err != nil || rp.Kind != kindAttachment || hex.EncodeToString(rp.ID[:]) != id || queued.To != "bob" {
		t.Fatalf("resent payload %+v, %v", rp, err)
	}
	a, err := unmarshalAttachmentBody(rp.Body)
	if err != nil || !bytes.Equal(a.Ref.Marshal(), rec.Ref) || a.Name != "f.bin" || a.Caption != "c" {
		t.Fatalf("resent attachment %+v, %v", a, err)
	}
}

// textsOf is the texts of d's chat, oldest first, as fmt prints a slice.
func textsOf(t *testing.T, d *device, chat string) string {
	t.Helper()
	msgs, err := d.eng.Messages(ctxT(t), chat, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	return fmt.Sprint(texts)
}

// TestReplySortsAfterWhatItAnswers: a message sent after one was received
// gets a later send time even when both fall in the same millisecond or
// the sender's clock is slightly ahead (chats order by send time, then by
// random id, so the reply could show first); a clock far ahead does not
// drag this device's send times along.
func TestReplySortsAfterWhatItAnswers(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	e := &Engine{cfg: Config{Now: func() time.Time { return now }}}
	e.observeSentAtLocked(1_000_000)
	if got := e.nextSentAtLocked(); got != 1_000_001 {
		t.Fatalf("reply in the same millisecond: %d", got)
	}
	e.observeSentAtLocked(1_000_000 + 900)
	if got := e.nextSentAtLocked(); got != 1_000_901 {
		t.Fatalf("reply to a clock 0.9 s ahead: %d", got)
	}
	e.observeSentAtLocked(1_000_000 + 10*60*1000)
	if got := e.nextSentAtLocked(); got != 1_000_902 {
		t.Fatalf("a clock 10 min ahead moved ours: %d", got)
	}
}
