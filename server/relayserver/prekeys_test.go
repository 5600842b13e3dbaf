package relayserver_test

import (
	"fmt"
	"testing"
	"time"

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
	victim := tr.register(t, "victim", 1)
	v := tr.dial(t, victim, 0)
	const stock = 48 // about a client's batch (50), a multiple of 4
	up := relay.Prekeys{SignedPrekey: []byte("spk"), LastResortKEM: []byte("lrk")}
	for i := range stock {
		up.OneTime = append(up.OneTime, fmt.Appendf(nil, "otk%d", i))
		up.KEM = append(up.KEM, fmt.Appendf(nil, "kem%d", i))
	}
	if err := v.UploadPrekeys(ctx(t), up); err != nil {
		t.Fatal(err)
	}
	for len(v.LowStock()) > 0 { // the one sent with Ready (no prekeys yet)
		<-v.LowStock()
	}
	taken, start := 0, time.Now()
	for s := range 4 { // four attacking accounts, one socket each
		m := tr.dial(t, tr.register(t, fmt.Sprintf("mallory%d", s), 1), 0)
		for range stock / 4 {
			b, err := m.Fetch(ctx(t), victim.Addr(0))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if len(b.SignedPrekey) == 0 || len(b.KEM) == 0 {
				t.Fatalf("a fetch past the budget got no bundle to start a session with: %+v", b)
			}
			if b.OneTime != nil {
				taken++
			}
		}
	}
	// One more per 10 s the fetches took (a slow machine).
	refill := int(time.Since(start) / (10 * time.Second))
	if budget := relayserver.DefaultPrekeyFetches; taken < budget || taken > budget+refill {
		t.Fatalf("%d fetches took %d one-time prekeys of one device, want its budget, %d (+%d refilled meanwhile)", stock, taken, budget, refill)
	}
	select {
	case st := <-v.LowStock():
		if st.OneTime >= 20 || int(st.OneTime) < stock-taken {
			t.Errorf("LowStock says %d left; the flood left %d", st.OneTime, stock-taken)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the victim was not told to refill")
	}
	// The budget refills with time: one fetch per 10 s.
	alice := tr.dial(t, tr.register(t, "alice", 1), 0)
	tr.clock.Advance(11 * time.Second)
	for i, want := range []bool{true, false} {
		b, err := alice.Fetch(ctx(t), victim.Addr(0))
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
