//go:build !js

package client

import (
	"fmt"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// TestReceiptsJoinInABurst: Bob comes online to a burst of messages; every
// one of them ends up "delivered" on Alice's side, carried by fewer
// receipts than messages (receipts queued while one is not yet encrypted
// join it), and none is acknowledged twice.
func TestReceiptsJoinInABurst(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	bob := newAccount(t, tr, "bob", "bob") // publishes prekeys
	bob.stop()

	const n = 40
	for i := 0; i < n; i++ {
		if _, err := alice.eng.SendText(ctx, "bob", fmt.Sprint("burst ", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "Alice's outbox sent", func() bool {
		msgs, _ := alice.eng.Messages(ctx, "bob", "", 0)
		for _, m := range msgs {
			if m.Status != StatusSent {
				return false
			}
		}
		return len(msgs) == n
	})
	before := alice.eng.Stats().Received
	bob.start()
	bob.run()
	eventually(t, "every message delivered", func() bool {
		msgs, _ := alice.eng.Messages(ctx, "bob", "", 0)
		for _, m := range msgs {
			if m.Status != StatusDelivered {
				return false
			}
		}
		return len(msgs) == n
	})
	receipts := alice.eng.Stats().Received - before
	t.Logf("%d messages acknowledged by %d receipts", n, receipts)
	if receipts >= n {
		t.Fatalf("%d receipts for %d messages: none joined", receipts, n)
	}
	msgs, err := bob.eng.Messages(ctx, "alice", "", 0)
	if err != nil || len(msgs) != n {
		t.Fatalf("Bob has %d messages, %v", len(msgs), err)
	}
}

// TestResentMessageShownOnce: a message encrypted again under the same id
// (an outbox entry sent twice, say after its "sent" record was lost to a
// power cut and the recipient list changed) reaches Bob as a new
// ciphertext; his store refuses the id's second insert, he keeps the
// ratchet step and shows the message once.
func TestResentMessageShownOnce(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice, bob := greeted(t, tr, "first")

	// Queue "hello" with Alice offline and keep a copy of its outbox
	// entry as queued (nothing encrypted yet).
	alice.stop()
	alice.start()
	if _, err := alice.eng.SendText(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	var key string
	var queued []byte
	err := alice.store.Scan(ctx, bOutbox, "", storage.ScanOptions{}, func(k string, v []byte) error {
		key, queued = k, v
		return nil
	})
	if err != nil || queued == nil {
		t.Fatalf("no queued entry: %v", err)
	}
	alice.run()
	bob.waitMessage("alice", "hello")

	// The same entry again: encrypted anew, a later ratchet step.
	alice.stop()
	alice.start()
	var b storage.Batch
	b.Put(bOutbox, key, queued) // as if its removal had been lost
	if err := alice.store.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	alice.run()
	eventually(t, "the resend left Alice", func() bool {
		n := 0
		alice.store.Scan(ctx, bOutbox, "", storage.ScanOptions{}, func(string, []byte) error { n++; return nil })
		return n == 0
	})
	if _, err := alice.eng.SendText(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "after")
	if got := textsOf(t, bob, "alice"); got != "[first hello after]" {
		t.Fatalf("Bob shows %s, want first, hello, after once each", got)
	}
	// The same id is the same record, so a second store would not show
	// twice in the list; it would count twice as unread and notify twice.
	chats, err := bob.eng.Chats(ctx)
	if err != nil || len(chats) != 1 || chats[0].Unread != 3 {
		t.Fatalf("Bob's chats %+v, %v; want alice with 3 unread", chats, err)
	}
	bob.mu.Lock()
	hellos := 0
	for _, ev := range bob.events {
		if ev.Type == "message" && ev.Message != nil && ev.Message.Text == "hello" {
			hellos++
		}
	}
	bob.mu.Unlock()
	if hellos != 1 {
		t.Fatalf("Bob was told of hello %d times", hellos)
	}
	if bob.hasEvent("error", "undecryptable") {
		t.Fatal("the resend was reported undecryptable")
	}
}

// TestPrekeyRefill: when other devices use up Bob's one-time prekeys
// below the low mark, the relay tells Bob's socket and Bob makes and
// uploads a new batch (outside the engine lock), and sessions still open.
func TestPrekeyRefill(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.PrekeyFetches = 1000 }) // more fetches of one device than its default budget
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	bobDev := func() relay.Addr {
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		return relay.Addr{Handle: "bob", Device: bob.eng.dev.ID}
	}()
	alice.eng.mu.Lock()
	conn := alice.eng.conn
	alice.eng.mu.Unlock()
	// Bob's first batch goes up after login, outside the engine lock: a
	// fetch before it is no_prekeys (seen at load average 30).
	eventually(t, "Bob published his first prekeys", func() bool {
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		st, err := bob.eng.loadPrekeyState(ctx)
		return err == nil && st.Published && len(st.Pending) == 0
	})
	used := oneTimeBatch - lowOneTimeMark + 1
	for i := 0; i < used; i++ {
		if _, err := conn.Fetch(ctx, bobDev); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "Bob refilled and published", func() bool {
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		st, err := bob.eng.loadPrekeyState(ctx)
		return err == nil && st.NextOneTime > oneTimeBatch && st.Published && len(st.Pending) == 0
	})
	// The new batch is on the relay: more fetches than the first batch
	// had left all get a one-time prekey.
	for i := 0; i < lowOneTimeMark; i++ {
		b, err := conn.Fetch(ctx, bobDev)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.OneTime) == 0 {
			t.Fatalf("fetch %d after the refill got no one-time prekey", i)
		}
	}
	if _, err := alice.eng.SendText(ctx, "bob", "after the refill"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "after the refill")
}
