package relayserver_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// TestPrekeyDrainLimitedPerTargetDevice is issue 14 item 9: one socket
// took a victim's 100 one-time prekeys in 0.06 s, and more sockets (or
// accounts) multiply any per-socket limit. The victim's device hands out
// at most its burst of one-time prekeys, however many sockets ask; later
// fetches still get a bundle (signed and last-resort prekey, so a session
// can start) but take nothing, and the victim is told to refill.
func TestPrekeyDrainLimitedPerTargetDevice(t *testing.T) {
	tr := startRelay(t, nil)
	const stock = 48 // about a client's batch (50), a multiple of 4
	d := tstest.PrekeyDrain(ctx(t), t, tr.origin, "", stock)
	if budget := relayserver.DefaultPrekeyFetches; d.Taken < budget || d.Taken > budget+d.Refill {
		t.Fatalf("%d fetches took %d one-time prekeys of one device, want its budget, %d (+%d refilled meanwhile)", stock, d.Taken, budget, d.Refill)
	}
	if d.Told >= 20 || d.Told < stock-d.Taken {
		t.Errorf("the victim was last told %d left (-1: never); the flood left %d", d.Told, stock-d.Taken)
	}
	// The budget refills with time: one fetch per 10 s.
	alice := tr.dial(t, tr.register(t, "alice", 1), 0)
	tr.clock.Advance(11 * time.Second)
	for i, want := range []bool{true, false} {
		b, err := alice.Fetch(ctx(t), d.Victim.Addr(0))
		if err != nil || (b.OneTime != nil) != want {
			t.Fatalf("fetch %d, 11 s later: %v, one-time %q; want one only for the first", i, err, b.OneTime)
		}
	}
}

// TestPrekeyFetchesConfigRaisesBurst: tests and deployments that need many
// fetches of one device (the -prekey-fetches flag, PREKEY_FETCHES on
// Workers) raise the burst.
func TestPrekeyFetchesConfigRaisesBurst(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.PrekeyFetches = 1000 })
	victim := tr.register(t, "victim", 1)
	v := tr.dial(t, victim, 0)
	up := relay.Prekeys{SignedPrekey: []byte("spk"), LastResortKEM: []byte("lrk")}
	for i := range 100 {
		up.OneTime = append(up.OneTime, fmt.Appendf(nil, "otk%d", i))
	}
	if err := v.UploadPrekeys(ctx(t), up); err != nil {
		t.Fatal(err)
	}
	m := tr.dial(t, tr.register(t, "bob", 1), 0)
	for i := range 100 {
		b, err := m.Fetch(ctx(t), victim.Addr(0))
		if err != nil || b.OneTime == nil {
			t.Fatalf("fetch %d with a raised burst: %v, one-time %q", i, err, b.OneTime)
		}
	}
}
