//go:build !js

package client

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

// sizeRelay is an observing relay: it delivers everything faithfully and
// records the length of every ciphertext a device submits, the one thing
// about a payload it can see (PROTOCOL.md §14.2, padding).
type sizeRelay struct {
	Relay
	mu   sync.Mutex
	seen []sizeSeen
}

type sizeSeen struct {
	group bool
	typ   byte // the envelope type byte (§14.1)
	n     int
}

func (r *sizeRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error) {
	c, err := r.Relay.Connect(ctx, handle, dev)
	if err != nil {
		return nil, err
	}
	return &sizeConn{Conn: c, r: r}, nil
}

func (r *sizeRelay) reset() []sizeSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

type sizeConn struct {
	Conn
	r *sizeRelay
}

func (c *sizeConn) Send(ctx context.Context, id [16]byte, to []relay.Sealed) error {
	c.r.mu.Lock()
	for _, s := range to {
		c.r.seen = append(c.r.seen, sizeSeen{typ: s.Payload[0], n: len(s.Payload)})
	}
	c.r.mu.Unlock()
	return c.Conn.Send(ctx, id, to)
}

func (c *sizeConn) GroupSend(ctx context.Context, id [16]byte, payload []byte, to []relay.Addr) error {
	c.r.mu.Lock()
	c.r.seen = append(c.r.seen, sizeSeen{group: true, typ: payload[0], n: len(payload)})
	c.r.mu.Unlock()
	return c.Conn.GroupSend(ctx, id, payload, to)
}

func lengths(seen []sizeSeen, group bool, typ byte) []int {
	var ns []int
	for _, s := range seen {
		if s.group == group && s.typ == typ {
			ns = append(ns, s.n)
		}
	}
	return ns
}

// TestRelaySeesOnlyBucketSizes: a relay that only watches ciphertext
// lengths must not tell a delivered or read receipt, a state-sync change
// and texts of different lengths apart, nor group texts of different
// lengths, as long as they fall in one padding bucket.
func TestRelaySeesOnlyBucketSizes(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	obs := &sizeRelay{}
	alice := newDevice(t, tr, "alice", func(d *device) {
		d.wrap = func(r Relay) Relay { obs.Relay = r; return obs }
	})
	if err := alice.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	alice.run()
	browser := newDevice(t, tr, "alice-browser")
	linkCompanion(t, alice, browser, "alice's browser")
	browser.run()
	bob := newAccount(t, tr, "bob", "bob")

	// Sessions both ways between every pair, so every envelope below is a
	// ratchet message (a session start shows anyway, by its envelope
	// type byte, PROTOCOL.md §14.1).
	sendTo := func(from *device, peer, text string, to ...*device) {
		t.Helper()
		if _, err := from.eng.SendText(ctx, peer, text); err != nil {
			t.Fatal(err)
		}
		for _, d := range to {
			chat := "bob"
			if d == bob {
				chat = "alice"
			}
			d.waitMessage(chat, text)
		}
	}
	sendTo(alice, "bob", "hello", bob, browser)
	sendTo(bob, "alice", "hi", alice, browser)
	sendTo(browser, "bob", "from the browser", bob, alice)
	if err := alice.eng.MarkRead(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, browser, bob} {
		if err := d.eng.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	obs.reset()

	// What the observer must not tell apart: texts of 1 and 150 bytes,
	// the delivered receipt for bob's next message, the read receipt and
	// read-marker sync of MarkRead, a contact-name sync change.
	sendTo(alice, "bob", "k", bob, browser)
	sendTo(alice, "bob", strings.Repeat("a longer text. ", 10), bob, browser)
	sendTo(bob, "alice", "ping", alice, browser)
	if err := alice.eng.MarkRead(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.eng.SetContactName(ctx, "bob", "Bobby"); err != nil {
		t.Fatal(err)
	}
	if err := alice.eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := obs.reset()
	if ns := lengths(seen, false, envInitial); len(ns) > 0 {
		t.Fatalf("sessions not established: %d initial messages %v", len(ns), ns)
	}
	ns := lengths(seen, false, envRatchet)
	// 2 texts × 2 devices, ≥1 delivered and 1 read receipt to bob, the
	// read-marker and contact-name syncs to the browser.
	if len(ns) < 8 {
		t.Fatalf("only %d pairwise envelopes observed: %v", len(ns), ns)
	}
	if slices.Min(ns) != slices.Max(ns) {
		t.Errorf("the relay tells pairwise payloads apart by length: %v", ns)
	}

	// Groups: two texts of different lengths from one sender.
	gid, err := alice.eng.CreateGroup(ctx, "pad", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	waitGroup(t, bob, gid, "version 1", func(g Group) bool { return g.Version == 1 })
	for _, text := range []string{"x", strings.Repeat("group text ", 12)} {
		if _, err := alice.eng.SendGroupText(ctx, gid, text); err != nil {
			t.Fatal(err)
		}
		bob.waitMessage(gid, text)
	}
	gs := lengths(obs.reset(), true, envGroup)
	if len(gs) != 2 {
		t.Fatalf("%d group sends observed, want 2: %v", len(gs), gs)
	}
	if gs[0] != gs[1] {
		t.Fatalf("the relay tells group payloads apart by length: %v", gs)
	}
	t.Logf("pairwise envelope length %d, group %d", ns[0], gs[0])
}

// sendRawPairwise encrypts plaintext, as it is, on from's sessions with
// every device of to, and sends it: a client that frames its payloads
// otherwise than this one.
func sendRawPairwise(t *testing.T, from *device, to string, id MessageID, plaintext []byte) {
	t.Helper()
	ctx := ctxT(t)
	e := from.eng
	e.mu.Lock()
	conn := e.conn
	targets, err := e.targetsLocked(ctx, to, false)
	var frames []relay.Sealed
	var b storage.Batch
	for _, tg := range targets {
		if err != nil || tg.handle != to {
			continue
		}
		var ct []byte
		if ct, err = e.encryptLocked(ctx, conn, &b, tg, plaintext); err == nil {
			frames = append(frames, relay.Sealed{To: relay.Addr{Handle: tg.handle, Device: tg.dev.ID}, Payload: ct})
		}
	}
	if err == nil {
		err = e.cfg.Store.Commit(ctx, &b)
	}
	e.mu.Unlock()
	if err == nil {
		err = conn.Send(ctx, id, frames)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnpaddedPayloadFromOldClientAccepted: a client from before padding
// encrypts the payload itself (its first byte the payload version, 1);
// the receiver reads it as before.
func TestUnpaddedPayloadFromOldClientAccepted(t *testing.T) {
	tr := startRelay(t, nil)
	alice, bob := greeted(t, tr, "hello")
	id := MessageID{0x01, 0xd}
	p := &payload{Kind: kindText, ID: id, SentAt: uint64(tr.clock.Now().UnixMilli()) + 10, To: "bob", Body: []byte("sent unpadded")}
	sendRawPairwise(t, alice, "bob", id, p.marshal())
	bob.waitMessage("alice", "sent unpadded")
}

// TestBadPaddingRefused: a padded frame whose padding is not all zero (a
// covert channel, or a frame some other encoder got wrong) is refused and
// reported, never shown.
func TestBadPaddingRefused(t *testing.T) {
	tr := startRelay(t, nil)
	alice, bob := greeted(t, tr, "hello")
	id := MessageID{0xba, 0xd}
	p := &payload{Kind: kindText, ID: id, SentAt: uint64(tr.clock.Now().UnixMilli()) + 10, To: "bob", Body: []byte("smuggled")}
	frame, err := padPayload(p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)-1] = 0x42
	sendRawPairwise(t, alice, "bob", id, frame)
	eventually(t, "bob refusing the frame", func() bool { return bob.hasEvent("error", CodeUndecryptable) })
	if hasMessage(t, bob, "alice", "smuggled") {
		t.Fatal("a frame with non-zero padding was shown")
	}
}
