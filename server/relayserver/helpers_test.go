package relayserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// testRelay is a relay on a loopback port with its own store.
type testRelay struct {
	origin string
	relay  *relayserver.Relay
	st     *store.Store
	clock  *tstest.Clock
}

func startRelay(t testing.TB, tweak func(*relayserver.Config)) *testRelay {
	t.Helper()
	r := tstest.StartRelay(t, tweak)
	return &testRelay{origin: r.Origin, relay: r.Relay, st: r.Store, clock: r.Clock}
}

// user is an account with its devices; Devs[0] is the primary.
type user = tstest.User

func newUser(t testing.TB, handle string, ndev int) *user { return tstest.NewUser(t, handle, ndev) }

func (tr *testRelay) register(t testing.TB, handle string, ndev int) *user {
	t.Helper()
	return tstest.Register(ctx(t), t, tr.origin, handle, ndev)
}

// drop publishes the next list without device i.
func (tr *testRelay) drop(t testing.TB, u *user, i int) {
	t.Helper()
	next := u.List.Clone()
	next.Version++
	next.Entries = append(next.Entries[:i:i], next.Entries[i+1:]...)
	u.List = next
	if _, err := relayclient.Publish(ctx(t), tr.origin, u.Handle, u.Signed(t)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func (tr *testRelay) dial(t testing.TB, u *user, i int) *relayclient.Client {
	t.Helper()
	return tstest.Dial(ctx(t), t, tr.origin, u, i)
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func msgID() (id [16]byte) {
	rand.Read(id[:])
	return id
}

// sealed builds a send to the given devices with payload "p:<handle>/<i>".
func sealed(to ...relay.Addr) []relay.Sealed {
	out := make([]relay.Sealed, len(to))
	for i, a := range to {
		out[i] = relay.Sealed{To: a, Payload: []byte("ciphertext for " + a.Handle)}
	}
	return out
}

func recv(t testing.TB, c *relayclient.Client) *relay.Envelope {
	t.Helper()
	return tstest.Recv(t, c, 5*time.Second)
}

func relayCode(err error) relay.Code {
	var re *relay.RelayError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

func httpCode(err error) string {
	var he *relayclient.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	return ""
}
