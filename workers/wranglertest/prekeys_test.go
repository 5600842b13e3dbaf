package wranglertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/server/relayserver"
)

// TestPrekeyFetchesRaised: a deployment (or a test) that needs many fetches
// of one device raises the budget, -prekey-fetches on the Go server and
// PREKEY_FETCHES on Workers, with the same effect.
func TestPrekeyFetchesRaised(t *testing.T) {
	const stock = 40 // over the default burst (32)
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
			origin := b.origin(t) // before the context: wrangler may take long to start
			// Forty fetches and five logins take more than ctx's 30 s on
			// a loaded machine under wrangler.
			c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			d := tstest.PrekeyDrain(c, t, origin, fmt.Sprintf("-%x", randBytes(3)), stock)
			if d.Taken != stock {
				t.Fatalf("with the budget raised to 1000, %d fetches took %d one-time prekeys", stock, d.Taken)
			}
		})
	}
}
