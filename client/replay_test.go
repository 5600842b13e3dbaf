//go:build !js

package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/relay"
)

// replayRelay is a hostile relay for session-start attacks: it records
// every envelope it delivers and every ciphertext it is given to send, so
// a test can replay old envelopes and read what a leaked state opens, and
// it can hand out a device's last-resort KEM prekey with no one-time
// prekey (as if the stock had run out), so a session start consumes
// nothing and could be answered again.
type replayRelay struct {
	Relay
	mu         sync.Mutex
	lastResort map[string][]byte // handle → last-resort KEM public to serve
	delivered  []*relay.Envelope
	sealed     []relay.Sealed
}

func (h *replayRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error) {
	c, err := h.Relay.Connect(ctx, handle, dev)
	if err != nil {
		return nil, err
	}
	rc := &replayConn{Conn: c, h: h, out: make(chan *relay.Envelope, 256)}
	go func() {
		for env := range c.Envelopes() {
			h.mu.Lock()
			h.delivered = append(h.delivered, env)
			h.mu.Unlock()
			rc.out <- env
		}
		close(rc.out)
	}()
	return rc, nil
}

type replayConn struct {
	Conn
	h   *replayRelay
	out chan *relay.Envelope
}

func (c *replayConn) Envelopes() <-chan *relay.Envelope { return c.out }

func (c *replayConn) Send(ctx context.Context, id [16]byte, to []relay.Sealed) error {
	if err := c.Conn.Send(ctx, id, to); err != nil {
		return err
	}
	c.h.mu.Lock()
	c.h.sealed = append(c.h.sealed, to...)
	c.h.mu.Unlock()
	return nil
}

func (c *replayConn) Fetch(ctx context.Context, of relay.Addr) (*relay.Bundle, error) {
	b, err := c.Conn.Fetch(ctx, of)
	if err != nil {
		return nil, err
	}
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if lrk, ok := c.h.lastResort[of.Handle]; ok {
		b.OneTime, b.KEM, b.LastResort = nil, lrk, true
	}
	return b, nil
}

// firstInitial is the first initial message delivered from dev.
func (h *replayRelay) firstInitial(dev identity.DeviceID) *relay.Envelope {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, env := range h.delivered {
		if identity.DeviceID(env.From.Device) == dev && env.Payload[0] == envInitial {
			return env
		}
	}
	return nil
}

// sealedFor is the ciphertexts sent to dev, oldest first.
func (h *replayRelay) sealedFor(dev identity.DeviceID) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]byte
	for _, s := range h.sealed {
		if identity.DeviceID(s.To.Device) == dev {
			out = append(out, s.Payload)
		}
	}
	return out
}

// lastResortPublic is the encoded public half of d's current last-resort
// KEM prekey, which the relay holds.
func lastResortPublic(t *testing.T, d *device) []byte {
	t.Helper()
	ctx := ctxT(t)
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	st, err := d.eng.loadPrekeyState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.eng.cfg.Store.Get(ctx, bPrekeys, kemKey(st.lastResortID()))
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.UnmarshalKEMPrekey(b)
	if err != nil {
		t.Fatal(err)
	}
	return encodePublic(k.Public.Encode)
}

func sessionsOf(t *testing.T, d *device, handle string, dev identity.DeviceID) *sessionRecord {
	t.Helper()
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	rec, err := d.eng.loadSessions(ctxT(t), sessionKey(handle, dev))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// renewOnce makes d start a new session with the device on its next
// send to it, as a repair would.
func renewOnce(d *device, handle string, dev identity.DeviceID) {
	d.eng.mu.Lock()
	d.eng.repair.init()
	d.eng.repair.renew[sessionKey(handle, dev)] = true
	d.eng.mu.Unlock()
}

// replayScene: Alice's device starts session S0 with Bob's device through
// a relay that hands out only Bob's last-resort KEM prekey, and says
// "one". Then Alice's device state leaks (the attacker keeps S0), and the
// session heals: Alice starts maxSessionsPerDevice new sessions, which
// push S0 out of Bob's record. It returns the leaked S0 state and the
// initial message that started S0 as Bob received it.
func replayScene(t *testing.T) (alice, bob *device, bobRelay *replayRelay, leaked []byte, env0 *relay.Envelope) {
	t.Helper()
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	aliceRelay := &replayRelay{lastResort: map[string][]byte{}}
	bobRelay = &replayRelay{}
	alice = newDevice(t, tr, "alice", func(d *device) {
		d.wrap = func(r Relay) Relay { aliceRelay.Relay = r; return aliceRelay }
	})
	bob = newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { bobRelay.Relay = r; return bobRelay }
	})
	for _, d := range []struct {
		d      *device
		handle string
	}{{alice, "alice"}, {bob, "bob"}} {
		if err := d.d.eng.CreateAccount(ctx, d.handle, d.handle); err != nil {
			t.Fatal(err)
		}
		d.d.run()
	}
	aliceRelay.mu.Lock()
	aliceRelay.lastResort["bob"] = lastResortPublic(t, bob)
	aliceRelay.mu.Unlock()
	aliceDev, bobDev := deviceOf(alice), deviceOf(bob)

	if _, err := alice.eng.SendText(ctx, "bob", "one"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "one")
	s0 := sessionsOf(t, alice, "bob", bobDev)
	var err error
	if leaked, err = s0.Sessions[0].State.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if env0 = bobRelay.firstInitial(aliceDev); env0 == nil {
		t.Fatal("no initial message reached Bob")
	}
	im0, err := pqxdh.UnmarshalInitialMessage(env0.Payload[1:])
	if err != nil || im0.HasOneTime {
		t.Fatalf("S0's start: %+v, %v (want no one-time prekey)", im0, err)
	}

	for i := range maxSessionsPerDevice {
		renewOnce(alice, "bob", bobDev)
		text := fmt.Sprintf("healed %d", i)
		if _, err := alice.eng.SendText(ctx, "bob", text); err != nil {
			t.Fatal(err)
		}
		bob.waitMessage("alice", text)
	}
	for _, s := range sessionsOf(t, bob, "alice", aliceDev).Sessions {
		if s.HasPeerEph && s.PeerEphemeral == im0.Ephemeral {
			t.Fatal("S0 is still among Bob's sessions after the healing")
		}
	}
	return alice, bob, bobRelay, leaked, env0
}

// TestReplayedInitialMessageCannotReviveSession: the relay replays the
// initial message that started S0 after the healing evicted S0. Bob must
// not take S0 back, so Bob's next message to Alice's device stays out of
// reach of the state leaked before the healing.
func TestReplayedInitialMessageCannotReviveSession(t *testing.T) {
	ctx := ctxT(t)
	alice, bob, bobRelay, leaked, env0 := replayScene(t)
	aliceDev := deviceOf(alice)
	before := len(sessionsOf(t, bob, "alice", aliceDev).Sessions)

	replay := *env0
	replay.Seq = 0
	bob.eng.receive(ctx, &replay)
	if texts := textsOf(t, bob, "alice"); texts != "[one healed 0 healed 1 healed 2]" {
		t.Fatalf("after the replay Bob shows %s", texts)
	}
	im0, _ := pqxdh.UnmarshalInitialMessage(env0.Payload[1:])
	rec := sessionsOf(t, bob, "alice", aliceDev)
	for i, s := range rec.Sessions {
		if s.HasPeerEph && s.PeerEphemeral == im0.Ephemeral {
			t.Errorf("the replay brought S0 back as Bob's session %d of %d", i, len(rec.Sessions))
		}
	}
	if len(rec.Sessions) != before {
		t.Errorf("the replay changed Bob's sessions with Alice's device: %d, had %d", len(rec.Sessions), before)
	}

	n := len(bobRelay.sealedFor(aliceDev))
	if _, err := bob.eng.SendText(ctx, "alice", "for Alice only"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "for Alice only")
	sent := bobRelay.sealedFor(aliceDev)
	if len(sent) <= n {
		t.Fatal("Bob's message was not seen leaving")
	}
	for _, ct := range sent[n:] {
		attacker, err := ratchet.Unmarshal(leaked)
		if err != nil {
			t.Fatal(err)
		}
		if ct[0] != envRatchet {
			continue
		}
		if pt, err := attacker.Decrypt(ct[1:]); err == nil {
			p, _ := unmarshalPayload(pt)
			t.Fatalf("the state leaked before the healing reads Bob's new messages (kind %d, %q)", p.Kind, p.Body)
		}
	}
}

// TestDuplicateFirstPayloadCommitsNoSession: a session whose first
// payload is a message Bob already has is not kept (nor is any prekey it
// names consumed): the message shows nothing new, and whether it is a
// replay or a resend, keeping it would only push a live session out. A
// real new session is kept with its first new message.
func TestDuplicateFirstPayloadCommitsNoSession(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	aliceRelay := &replayRelay{}
	alice := newDevice(t, tr, "alice", func(d *device) {
		d.wrap = func(r Relay) Relay { aliceRelay.Relay = r; return aliceRelay }
	})
	if err := alice.eng.CreateAccount(ctx, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	alice.run()
	bob := newAccount(t, tr, "bob", "bob")
	aliceDev, bobDev := deviceOf(alice), deviceOf(bob)
	if _, err := alice.eng.SendText(ctx, "bob", "one"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "one")
	msgs, err := bob.eng.Messages(ctx, "alice", "", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	raw, _ := hex.DecodeString(msgs[0].ID)
	var id MessageID
	copy(id[:], raw)

	// Bob is away; Alice starts a new session and its first payload is
	// "one" again.
	bob.stop()
	bob.start()
	renewOnce(alice, "bob", bobDev)
	n := len(aliceRelay.sealedFor(bobDev))
	alice.eng.mu.Lock()
	seq, err := alice.eng.nextOutboxSeqLocked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &payload{Kind: kindText, ID: id, SentAt: uint64(msgs[0].SentAt), To: "bob", Body: []byte("one")}
	var b storage.Batch
	b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal(), To: "bob"}).marshal())
	err = alice.eng.cfg.Store.Commit(ctx, &b)
	alice.eng.kickLocked()
	alice.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "Alice's resend in a new session", func() bool { return len(aliceRelay.sealedFor(bobDev)) > n })
	ct := aliceRelay.sealedFor(bobDev)[n]
	if ct[0] != envInitial {
		t.Fatalf("Alice's resend is of type %d, want a new session's start", ct[0])
	}
	bob.eng.receive(ctx, &relay.Envelope{From: relay.Addr{Handle: "alice", Device: relay.DeviceID(aliceDev)}, MessageID: id, Payload: ct})
	if n := len(sessionsOf(t, bob, "alice", aliceDev).Sessions); n != 1 {
		t.Fatalf("Bob kept %d sessions with Alice's device; the new one's first payload was a duplicate", n)
	}

	// Alice's next message on the same new session is kept with it (the
	// relay delivers the start again first).
	if _, err := alice.eng.SendText(ctx, "bob", "two"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	bob.waitMessage("alice", "two")
	if n := len(sessionsOf(t, bob, "alice", aliceDev).Sessions); n != 2 {
		t.Fatalf("Bob has %d sessions with Alice's device after her new session's first new message, want 2", n)
	}
	if texts := textsOf(t, bob, "alice"); texts != "[one two]" {
		t.Fatalf("Bob shows %s", texts)
	}
}

// TestGarbageDoesNotForceRenewal: bytes from the relay in the name of
// Alice's device that open under no session make Bob ask for the message
// again, over the session he has, and start no new session: only an
// authenticated retry request (from a device that holds the session)
// renews one, so the relay cannot churn Bob's sessions out.
func TestGarbageDoesNotForceRenewal(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice, bob := greeted(t, tr, "one")
	aliceDev := deviceOf(alice)
	if _, err := bob.eng.SendText(ctx, "alice", "two"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "two")
	for i := range 3 {
		garbage := &relay.Envelope{From: relay.Addr{Handle: "alice", Device: relay.DeviceID(aliceDev)}, Payload: []byte{envRatchet, 1, 2, 3}}
		garbage.MessageID[0] = byte(i)
		bob.eng.receive(ctx, garbage)
		tr.clock.Advance(repairInterval)
	}
	if !bob.hasEvent("error", CodeUndecryptable) {
		t.Fatal("the garbage was not reported")
	}
	if _, err := bob.eng.SendText(ctx, "alice", "three"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "three")
	rec := sessionsOf(t, bob, "alice", aliceDev)
	if len(rec.Sessions) != 1 || rec.Sessions[0].Initial != nil {
		t.Fatalf("garbage made Bob start a new session: %d sessions, active one initial=%v", len(rec.Sessions), rec.Sessions[0].Initial != nil)
	}
	bob.eng.mu.Lock()
	requests := bob.eng.repair.requests
	bob.eng.mu.Unlock()
	if requests != 3 {
		t.Fatalf("%d retry requests for 3 failures, want 3", requests)
	}
}

// TestLaterDeviceCannotFetchOldMessagesByRetry: a device linked to Bob's
// account after Alice sent him a message asks Alice's device for it by id
// (a retry request, as if it had failed to decrypt). Alice's device must
// not send it: the new device was not among the message's recipients. A
// retry request from an original recipient is answered, to that device
// alone.
func TestLaterDeviceCannotFetchOldMessagesByRetry(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	id, err := alice.eng.SendText(ctx, "bob", "before the new device")
	if err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "before the new device")
	later := newDevice(t, tr, "bob-later")
	linkCompanion(t, bob, later, "later")
	later.run()
	if _, err := alice.eng.SendText(ctx, "bob", "after"); err != nil {
		t.Fatal(err)
	}
	later.waitMessage("alice", "after")
	// The history bundle of the link may have given the later device a
	// copy; it asks as if it had none.
	forget(t, later, id)

	// The later device asks, over its session with Alice's device.
	aliceDev := deviceOf(alice)
	raw, _ := hex.DecodeString(id)
	body := append(append([]byte{}, aliceDev[:]...), raw...)
	if _, err := later.eng.queue(ctx, kindRetry, "alice", body, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := later.eng.SendText(ctx, "alice", "sync point"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "sync point")
	if _, err := alice.eng.SendText(ctx, "bob", "second sync point"); err != nil {
		t.Fatal(err)
	}
	later.waitMessage("alice", "second sync point")
	if has(t, later, id) {
		t.Fatal("the device linked later fetched a message sent before it existed")
	}

	// Bob's first device, an original recipient, asks: it alone gets the
	// message again.
	forget(t, bob, id)
	if _, err := bob.eng.queue(ctx, kindRetry, "alice", body, ""); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "before the new device")
	if _, err := alice.eng.SendText(ctx, "bob", "third sync point"); err != nil {
		t.Fatal(err)
	}
	later.waitMessage("alice", "third sync point")
	if has(t, later, id) {
		t.Fatal("the answer to Bob's first device went to the device linked later too")
	}
}

// forget deletes message id from d's store, as if it had never arrived.
func forget(t *testing.T, d *device, id string) {
	t.Helper()
	ctx := ctxT(t)
	raw, _ := hex.DecodeString(id)
	var mid MessageID
	copy(mid[:], raw)
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	m, key, err := d.eng.lookupMessage(ctx, mid)
	if err != nil || m == nil {
		return
	}
	var b storage.Batch
	b.Delete(bMessages, key)
	b.Delete(bMsgIndex, id)
	if err := d.eng.cfg.Store.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
}

func has(t *testing.T, d *device, id string) bool {
	t.Helper()
	raw, _ := hex.DecodeString(id)
	var mid MessageID
	copy(mid[:], raw)
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	m, _, err := d.eng.lookupMessage(ctxT(t), mid)
	if err != nil {
		t.Fatal(err)
	}
	return m != nil
}
