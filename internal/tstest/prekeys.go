package tstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// Drain is what PrekeyDrain saw.
type Drain struct {
	Victim *User
	Taken  int // fetches that took a one-time prekey
	Told   int // the stock in the last LowStock the victim heard, or -1
	// Refill is the most the victim's fetch budget may have refilled
	// while the fetches ran (one per 10 s): a slow machine lets that many
	// more through.
	Refill int
}

// PrekeyDrain is the prekey-drain attack of issue 14 item 9: it registers
// a victim ("drained"+suffix) with stock one-time prekeys of each kind,
// fetches its bundle stock times from four attacking accounts, one socket
// each (stock a multiple of 4), and reports how many fetches took a
// one-time prekey. Every fetch must still get a bundle a session can
// start from.
func PrekeyDrain(ctx context.Context, t testing.TB, origin, suffix string, stock int) Drain {
	t.Helper()
	var attackers []*relayclient.Client
	for s := range 4 {
		attackers = append(attackers, Dial(ctx, t, origin, Register(ctx, t, origin, fmt.Sprintf("mallory%d%s", s, suffix), 1), 0))
	}
	d := Drain{Victim: Register(ctx, t, origin, "drained"+suffix, 1), Told: -1}
	v := Dial(ctx, t, origin, d.Victim, 0)
	up := relay.Prekeys{SignedPrekey: []byte("spk"), LastResortKEM: []byte("lrk")}
	for i := range stock {
		up.OneTime = append(up.OneTime, fmt.Appendf(nil, "otk%d", i))
		up.KEM = append(up.KEM, fmt.Appendf(nil, "kem%d", i))
	}
	if err := v.UploadPrekeys(ctx, up); err != nil {
		t.Fatal(err)
	}
	for len(v.LowStock()) > 0 { // the one sent with Ready (no prekeys yet)
		<-v.LowStock()
	}
	start := time.Now()
	for _, m := range attackers {
		for range stock / len(attackers) {
			b, err := m.Fetch(ctx, d.Victim.Addr(0))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if string(b.SignedPrekey) != "spk" || len(b.KEM) == 0 {
				t.Fatalf("a fetch got no bundle to start a session with: %+v", b)
			}
			if b.OneTime != nil {
				d.Taken++
			}
		}
	}
	d.Refill = int(time.Since(start) / (10 * time.Second))
	for deadline := time.After(2 * time.Second); ; {
		select {
		case st := <-v.LowStock():
			d.Told = int(st.OneTime)
			continue
		case <-deadline:
		}
		return d
	}
}
