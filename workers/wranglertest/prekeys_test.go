package wranglertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// prekeyDrain uploads stock one-time prekeys of each kind for a fresh
// device, fetches its bundle stock times from four attacking accounts and
// returns how many fetches took a one-time prekey, the stock the device
// was told about last (LowStock) or -1, and the most the budget may have
// refilled while the fetches ran (targetFetchRate, one per 10 s: a slow
// machine may let a few more through).
func prekeyDrain(t *testing.T, origin string, stock int) (taken, told, refill int) {
	run := fmt.Sprintf("%x", randBytes(3))
	victim := register(t, origin, "victim-"+run, 1)
	v := dial(t, origin, victim, 0)
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
	start := time.Now()
	for s := range 4 {
		m := dial(t, origin, register(t, origin, fmt.Sprintf("mallory%d-%s", s, run), 1), 0)
		for range stock / 4 {
			b, err := m.Fetch(ctx(t), victim.Addr(0))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if string(b.SignedPrekey) != "spk" || len(b.KEM) == 0 {
				t.Fatalf("a fetch got no bundle to start a session with: %+v", b)
			}
			if b.OneTime != nil {
				taken++
			}
		}
	}
	refill = int(time.Since(start) / (10 * time.Second))
	told = -1
	for deadline := time.After(2 * time.Second); ; {
		select {
		case st := <-v.LowStock():
			told = int(st.OneTime)
			continue
		case <-deadline:
		}
		return taken, told, refill
	}
}

// TestPrekeyFetchesRaised: a deployment (or a test) that needs many fetches
// of one device raises the budget, -prekey-fetches on the Go server and
// PREKEY_FETCHES on Workers, with the same effect.
func TestPrekeyFetchesRaised(t *testing.T) {
	const stock = 60
	for _, b := range []struct {
		name   string
		origin func(t *testing.T) string
	}{
		{"go", func(t *testing.T) string {
			return tstest.StartRelay(t, func(c *relayserver.Config) { c.PrekeyFetches = 1000 }).Origin
		}},
		{"workers", func(t *testing.T) string {
			return startWranglerWith(t, []string{"--var", "PREKEY_FETCHES:1000"}).origin
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			if taken, _, _ := prekeyDrain(t, b.origin(t), stock); taken != stock {
				t.Fatalf("with the budget raised to 1000, %d fetches took %d one-time prekeys", stock, taken)
			}
		})
	}
}
