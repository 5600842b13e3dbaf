package relayserver_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// TestShortTTLFloodDoesNotJamMailbox is issue 14 item 3: 10,000 sends with
// ttl_s=1 filled a victim's mailbox with envelopes that expired before
// delivery, were never acked, and counted toward the cap until a sweep
// reached them, so every legitimate sender got mailbox_full. Here a
// one-second TTL is raised to relay.MinTTL (the flood is delivered if the
// victim is there), and once the flood expired it no longer counts.
func TestShortTTLFloodDoesNotJamMailbox(t *testing.T) {
	const limit = 50
	tr := startRelay(t, func(c *relayserver.Config) { c.MailboxLimit = limit })
	mallory := tr.register(t, "mallory", 1)
	alice := tr.register(t, "alice", 1)
	victim := tr.register(t, "victim", 1)
	v := tr.dial(t, victim, 0) // online, but it never acks the flood
	m := tr.dial(t, mallory, 0)
	for i := range limit {
		if _, err := m.SendTTL(ctx(t), msgID(), 1, sealed(victim.Addr(0))); err != nil {
			t.Fatalf("flood send %d: %v", i, err)
		}
	}
	a := tr.dial(t, alice, 0)
	tr.clock.Advance(2 * time.Second)
	if _, err := a.Send(ctx(t), msgID(), sealed(victim.Addr(0))); relayCode(err) != relay.CodeMailboxFull {
		t.Fatalf("send while the flood is live (a 1 s TTL raised to %s): %v, want mailbox_full", relay.MinTTL, err)
	}
	tr.clock.Advance(relay.MinTTL)
	id := msgID()
	if _, err := a.Send(ctx(t), id, sealed(victim.Addr(0))); err != nil {
		t.Fatalf("legitimate send after the flood expired: %v", err)
	}
	for e := recv(t, v); e.MessageID != id; e = recv(t, v) {
		if e.From != mallory.Addr(0) {
			t.Fatalf("victim got an envelope from %v", e.From)
		}
	}
}
