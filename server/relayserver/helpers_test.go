package relayserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
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
	clock  *clock
}

// clock is an adjustable time source for expiry tests.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func startRelay(t testing.TB, tweak func(*relayserver.Config)) *testRelay {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRelay{origin: "http://" + ln.Addr().String(), st: st, clock: &clock{}}
	cfg := relayserver.Config{Origin: tr.origin, Now: tr.clock.Now, IPRate: 1e6, IPBurst: 1e6, RegisterRate: 1e6, RegisterBurst: 1e6, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := relayserver.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.relay = r
	mux := http.NewServeMux()
	mux.Handle("/v1/", r.Handler())
	mux.Handle("/metrics", r.Metrics())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		r.Close(ctx)
		st.Close()
	})
	return tr
}

// user is an account with its devices; devs[0] is the primary.
type user struct {
	handle string
	acct   *identity.Account
	devs   []*identity.Device
	list   *devicelist.List
}

func newUser(t testing.TB, handle string, ndev int) *user {
	t.Helper()
	acct, err := identity.NewAccount(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &user{handle: handle, acct: acct}
	now := uint64(time.Now().Unix())
	u.list = &devicelist.List{Account: acct.Public(), Version: 1, Timestamp: now}
	for i := 0; i < ndev; i++ {
		d, err := identity.NewDevice(nil)
		if err != nil {
			t.Fatal(err)
		}
		u.devs = append(u.devs, d)
		u.list.Entries = append(u.list.Entries, devicelist.Entry{
			Device: d.Public(), Name: "device", Added: now, Attested: now, Primary: i == 0,
			DeviceSig: devicelist.DeviceSignature(d, acct.Public()),
		})
	}
	return u
}

func (u *user) signed(t testing.TB) []byte {
	t.Helper()
	enc, err := devicelist.Sign(u.acct, u.list)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func (tr *testRelay) register(t testing.TB, handle string, ndev int) *user {
	t.Helper()
	u := newUser(t, handle, ndev)
	if _, err := relayclient.Register(ctx(t), tr.origin, handle, u.signed(t)); err != nil {
		t.Fatalf("register %s: %v", handle, err)
	}
	return u
}

// drop publishes the next list without device i.
func (tr *testRelay) drop(t testing.TB, u *user, i int) {
	t.Helper()
	next := u.list.Clone()
	next.Version++
	next.Entries = append(next.Entries[:i:i], next.Entries[i+1:]...)
	u.list = next
	if _, err := relayclient.Publish(ctx(t), tr.origin, u.handle, u.signed(t)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func (tr *testRelay) dial(t testing.TB, u *user, i int) *relayclient.Client {
	t.Helper()
	c, err := relayclient.Dial(ctx(t), tr.origin, u.handle, u.devs[i])
	if err != nil {
		t.Fatalf("dial %s/%d: %v", u.handle, i, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (u *user) addr(i int) relay.Addr { return relay.Addr{Handle: u.handle, Device: u.devs[i].ID} }

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
	select {
	case e, ok := <-c.Envelopes():
		if !ok {
			t.Fatalf("socket closed: %v", c.Err())
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no envelope within 5s")
	}
	return nil
}

func noEnvelope(t testing.TB, c *relayclient.Client, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-c.Envelopes():
		if ok {
			t.Fatalf("unexpected envelope seq %d", e.Seq)
		}
	case <-time.After(d):
	}
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

// waitClosed waits for the socket to end and returns its error.
func waitClosed(t testing.TB, c *relayclient.Client, within time.Duration) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(within):
		t.Fatalf("socket still open after %s", within)
	}
	return nil
}
