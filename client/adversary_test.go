//go:build !js

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

// hostileRelay wraps the real relay and lies the ways a malicious relay
// can: it serves forged or old device lists and drops (delays),
// duplicates and reorders envelopes. It cannot make up ciphertext.
type hostileRelay struct {
	Relay
	mu    sync.Mutex
	serve map[string][]byte // handle → list bytes to serve instead
	// mangle turns on delivery games on sockets opened afterwards.
	mangle bool
	// sent records the devices each Send addressed, per message id.
	sent map[[16]byte][]relay.Addr
	// swallow are devices the relay keeps frames to for itself (hands
	// them to a stolen device it colludes with) instead of passing them
	// on, so the honest relay behind it sees no stale device set.
	swallow map[relay.DeviceID]bool
}

func (h *hostileRelay) Account(ctx context.Context, handle string) ([]byte, []byte, error) {
	k, l, err := h.Relay.Account(ctx, handle)
	h.mu.Lock()
	defer h.mu.Unlock()
	if forged, ok := h.serve[handle]; ok && err == nil {
		l = forged
	}
	return k, l, err
}

func (h *hostileRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error) {
	c, err := h.Relay.Connect(ctx, handle, dev)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	mangle := h.mangle
	h.mu.Unlock()
	hc := &hostileConn{Conn: c, h: h, out: make(chan *relay.Envelope, 256)}
	if mangle {
		go hc.games()
	} else {
		go func() {
			for env := range c.Envelopes() {
				hc.out <- env
			}
			close(hc.out)
		}()
	}
	return hc, nil
}

type hostileConn struct {
	Conn
	h   *hostileRelay
	out chan *relay.Envelope
}

func (c *hostileConn) Envelopes() <-chan *relay.Envelope { return c.out }

// Send records the devices of every send the relay accepted.
func (c *hostileConn) Send(ctx context.Context, id [16]byte, to []relay.Sealed) error {
	c.h.mu.Lock()
	pass := to
	if len(c.h.swallow) > 0 {
		pass = nil
		for _, s := range to {
			if !c.h.swallow[s.To.Device] {
				pass = append(pass, s)
			}
		}
	}
	c.h.mu.Unlock()
	if err := c.Conn.Send(ctx, id, pass); err != nil {
		return err
	}
	c.h.mu.Lock()
	if c.h.sent == nil {
		c.h.sent = map[[16]byte][]relay.Addr{}
	}
	for _, s := range to {
		c.h.sent[id] = append(c.h.sent[id], s.To)
	}
	c.h.mu.Unlock()
	return nil
}

// games collects envelopes for a moment, then delivers each batch in
// reverse order with every envelope twice, and holds every third one back
// until the next batch (a drop that the relay later repairs).
func (c *hostileConn) games() {
	defer close(c.out)
	var held []*relay.Envelope
	in := c.Conn.Envelopes()
	for {
		env, ok := <-in
		if !ok {
			for _, e := range held {
				c.out <- e
			}
			return
		}
		batch := []*relay.Envelope{env}
		timer := time.After(30 * time.Millisecond)
	collect:
		for {
			select {
			case env, ok := <-in:
				if !ok {
					break collect
				}
				batch = append(batch, env)
			case <-timer:
				break collect
			}
		}
		var deliver []*relay.Envelope
		for i := len(batch) - 1; i >= 0; i-- {
			if i%3 == 2 {
				held = append(held, batch[i])
				continue
			}
			deliver = append(deliver, batch[i], batch[i])
		}
		for _, e := range deliver {
			c.out <- e
		}
		// The held envelopes come later: with the next batch, or after a
		// pause if nothing else arrives.
		if len(held) > 0 {
			select {
			case env, ok := <-in:
				if ok {
					c.out <- env
				}
			case <-time.After(100 * time.Millisecond):
			}
			for _, e := range held {
				c.out <- e
			}
			held = nil
		}
	}
}

func (h *hostileRelay) sentTo(id string) []relay.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.sent {
		if fmt.Sprintf("%x", k[:]) == id {
			return v
		}
	}
	return nil
}

// TestHostileRelayDeliveryGames: duplicated, reordered and delayed
// envelopes still show every message exactly once, in the sender's order.
func TestHostileRelayDeliveryGames(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	hostile := &hostileRelay{mangle: true}
	bob := newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { hostile.Relay = r; return hostile }
	})
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run() // publishes prekeys
	bob.stop()
	bob.start()
	alice := newDevice(t, tr, "alice")
	if err := alice.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	alice.run()
	const n = 30
	for i := 0; i < n; i++ {
		if _, err := alice.eng.SendText(ctx, "bob", fmt.Sprintf("message %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.run() // everything is queued: one burst through the games
	bob.waitMessage("alice", fmt.Sprintf("message %02d", n-1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, _ := bob.eng.Messages(ctx, "alice", "", 0)
		if len(msgs) >= n {
			break
		}
		if time.Now().After(deadline) {
			var have []string
			for _, m := range msgs {
				have = append(have, m.Text[8:])
			}
			bob.mu.Lock()
			t.Fatalf("bob has %d of %d messages: %v; events: %+v", len(msgs), n, have, bob.events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let stragglers (duplicates) land
	msgs, err := bob.eng.Messages(ctx, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("bob shows %d messages, want exactly %d", len(msgs), n)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("message %02d", i); m.Text != want {
			t.Fatalf("message %d is %q, want %q (sender order lost)", i, m.Text, want)
		}
	}
	if bob.hasEvent("error", "undecryptable") {
		t.Fatalf("duplicates or reordering caused decryption errors: %v", bob.events)
	}
}

// TestHostileRelayForgedAndOldLists: a device slipped into Alice's list
// without her account's signature, and an old list replayed after a newer
// one was seen, are both refused.
func TestHostileRelayForgedAndOldLists(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	hostile := &hostileRelay{serve: map[string][]byte{}}
	bob := newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { hostile.Relay = r; return hostile }
	})
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	a1 := newDevice(t, tr, "alice-phone")
	if err := a1.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	a1.run()
	_, v1, err := hostile.Relay.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	// Forged: the relay adds its own device to Alice's list, signing with
	// a key of its own.
	l, err := devicelist.Verify(a1.eng.acct.AccountPub, "alice", v1)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := identity.NewAccount(nil)
	evil, _ := identity.NewDevice(nil)
	forged := l.Clone()
	forged.Version++
	forged.Entries = append(forged.Entries, devicelist.Entry{Device: evil.Public(), Name: "relay's device", Added: l.Timestamp, Attested: l.Timestamp,
		DeviceSig: devicelist.DeviceSignature(evil, mallory.Public())})
	// Sign as mallory, then put Alice's key back in: the list claims to
	// be Alice's but her key never signed it.
	forged.Account = mallory.Public()
	forged.Entries[0].DeviceSig = devicelist.DeviceSignature(a1.eng.dev, mallory.Public())
	forgedBytes, err := devicelist.Sign(mallory, forged)
	if err != nil {
		t.Fatal(err)
	}
	forgedBytes = bytes.Replace(forgedBytes, mallory.Public(), a1.eng.acct.AccountPub, 1)
	hostile.mu.Lock()
	hostile.serve["alice"] = forgedBytes
	hostile.mu.Unlock()
	if _, err := bob.eng.SendText(ctx, "alice", "hello?"); !errors.Is(err, ErrBadList) {
		t.Fatalf("send with a forged list: %v, want %s", err, ErrBadList.Code)
	}

	// Honest again: Bob pins version 2 (Alice links a companion).
	hostile.mu.Lock()
	delete(hostile.serve, "alice")
	hostile.mu.Unlock()
	a2 := newDevice(t, tr, "alice-browser")
	linkCompanion(t, a1, a2, "browser")
	a2.run()
	if _, err := bob.eng.SendText(ctx, "alice", "hello both"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "hello both")

	// Replay of version 1: refused, and version 2 stays pinned, so the
	// companion is still encrypted to.
	hostile.mu.Lock()
	hostile.serve["alice"] = v1
	hostile.mu.Unlock()
	bob.eng.mu.Lock()
	_, err = bob.eng.listLocked(ctx, "alice", true)
	bob.eng.mu.Unlock()
	if !errors.Is(err, ErrListRollback) {
		t.Fatalf("replayed old list: %v, want %s", err, ErrListRollback.Code)
	}
	id, err := bob.eng.SendText(ctx, "alice", "after the replay")
	if err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "after the replay")
	// The relay may deliver before Send returns to Bob and is recorded.
	eventually(t, "Bob's send to be recorded", func() bool { return hostile.sentTo(id) != nil })
	var toCompanion bool
	for _, a := range hostile.sentTo(id) {
		if a.Device == relay.DeviceID(a2.eng.Device().ID) {
			toCompanion = true
		}
	}
	if !toCompanion {
		t.Fatalf("after the replay Bob no longer encrypts to Alice's companion")
	}
}

// TestRelayCannotServeAListUnderAnotherHandle: the relay answers Bob's
// fetch of "mallory" with Alice's account key and her genuine signed list.
// Every signature verifies, so only the handle the list names can tell
// Bob that these are not mallory's devices: he must refuse the list, and
// encrypt nothing to Alice's devices believing they are mallory's.
func TestRelayCannotServeAListUnderAnotherHandle(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	swap := &keySwapRelay{alias: map[string]string{"mallory": "alice"}}
	bob := newWrappedAccount(t, tr, "bob", func(r Relay) Relay { swap.Relay = r; return swap })
	a1 := newAccount(t, tr, "alice-phone", "alice")
	if _, err := bob.eng.SendText(ctx, "mallory", "for mallory only"); !errors.Is(err, ErrBadList) {
		t.Fatalf("send to mallory with Alice's list served under that handle: %v, want %s", err, ErrBadList.Code)
	}
	if _, err := refetch(t, bob, "mallory"); !errors.Is(err, ErrBadList) {
		t.Fatalf("fetch of mallory answered with Alice's list: %v, want %s", err, ErrBadList.Code)
	}
	// Alice's own handle still works: the list is hers.
	if _, err := bob.eng.SendText(ctx, "alice", "for alice"); err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("bob", "for alice")
}

// TestRelayCannotWithholdRevocation: Alice revokes her stolen browser and
// the relay, colluding with the thief, keeps serving Bob the list that
// still holds it (and swallows what Bob sends it, so the honest relay
// behind sees no stale set). Alice's next message tells Bob her list's
// version; Bob must not encrypt to the old set again until he has
// verified the new list, and does once the relay serves it.
func TestRelayCannotWithholdRevocation(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	hostile := &hostileRelay{serve: map[string][]byte{}, swallow: map[relay.DeviceID]bool{}}
	bob := newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { hostile.Relay = r; return hostile }
	})
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	a1, a2 := aliceWithBrowser(t, tr)
	if _, err := bob.eng.SendText(ctx, "alice", "before"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "before")
	_, withBrowser, err := hostile.Relay.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	hostile.mu.Lock()
	hostile.serve["alice"] = withBrowser
	hostile.swallow[relay.DeviceID(a2.eng.Device().ID)] = true
	hostile.mu.Unlock()
	if err := a1.eng.RevokeDevice(ctx, a2.eng.Device().ID.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.eng.SendText(ctx, "bob", "I revoked my stolen browser"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "I revoked my stolen browser")

	reachedBrowser := func(id string) bool {
		for _, a := range hostile.sentTo(id) {
			if a.Device == relay.DeviceID(a2.eng.Device().ID) {
				return true
			}
		}
		return false
	}
	refused := func(when string) {
		t.Helper()
		id, err := bob.eng.SendText(ctx, "alice", "for your eyes only")
		if err == nil {
			time.Sleep(500 * time.Millisecond)
			if reachedBrowser(id) {
				t.Fatalf("%s: Bob encrypted his next message to Alice's revoked browser: the relay withheld the revocation", when)
			}
			t.Fatalf("%s: Bob queued a message while the relay withholds Alice's list", when)
		}
		if !errors.Is(err, ErrListWithheld) {
			t.Fatalf("%s: send while the relay withholds Alice's list: %v, want %s", when, err, ErrListWithheld.Code)
		}
	}
	refused("after Alice's message")
	// What was learnt is stored: a restart does not forget it.
	bob.restart()
	refused("after a restart")
	// A receipt (or anything else) already in the outbox is not
	// encrypted to the old set either.
	bob.eng.mu.Lock()
	_, err = bob.eng.targetsLocked(ctx, "alice", false)
	bob.eng.mu.Unlock()
	if !errors.Is(err, ErrListWithheld) {
		t.Fatalf("outbox targets while the relay withholds Alice's list: %v, want %s", err, ErrListWithheld.Code)
	}

	// The relay gives in: Bob verifies the new list and sends to Alice's
	// phone only.
	hostile.mu.Lock()
	delete(hostile.serve, "alice")
	hostile.mu.Unlock()
	id, err := bob.eng.SendText(ctx, "alice", "now that I see your list")
	if err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("bob", "now that I see your list")
	eventually(t, "Bob's send to be recorded", func() bool { return hostile.sentTo(id) != nil })
	if reachedBrowser(id) {
		t.Fatalf("Bob encrypted to the revoked browser after verifying the new list")
	}
}
