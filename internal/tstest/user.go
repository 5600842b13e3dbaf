package tstest

import (
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// User is an account with its devices, for tests that speak the relay
// protocol through relayclient rather than through an engine. Devs[0] is
// the primary; List is the device list last signed.
type User struct {
	Handle string
	Acct   *identity.Account
	Devs   []*identity.Device
	List   *devicelist.List
}

// NewUser makes an account with ndev devices and its first device list
// (version 1), without registering it.
func NewUser(t testing.TB, handle string, ndev int) *User {
	t.Helper()
	acct, err := identity.NewAccount(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Handle: handle, Acct: acct}
	now := uint64(time.Now().Unix())
	u.List = &devicelist.List{Account: acct.Public(), Handle: handle, Version: 1, Timestamp: now}
	for i := 0; i < ndev; i++ {
		d, err := identity.NewDevice(nil)
		if err != nil {
			t.Fatal(err)
		}
		u.Devs = append(u.Devs, d)
		u.List.Entries = append(u.List.Entries, devicelist.Entry{
			Device: d.Public(), Name: "device", Added: now, Attested: now, Primary: i == 0,
			DeviceSig: devicelist.DeviceSignature(d, acct.Public()),
		})
	}
	return u
}

// Register makes a user as NewUser does and registers it at the relay at
// origin.
func Register(ctx context.Context, t testing.TB, origin, handle string, ndev int) *User {
	t.Helper()
	u := NewUser(t, handle, ndev)
	if _, err := relayclient.Register(ctx, origin, handle, u.Signed(t)); err != nil {
		t.Fatalf("register %s: %v", handle, err)
	}
	return u
}

// Signed is u.List signed by the account.
func (u *User) Signed(t testing.TB) []byte {
	t.Helper()
	enc, err := devicelist.Sign(u.Acct, u.List)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// Addr is the address of device i.
func (u *User) Addr(i int) relay.Addr { return relay.Addr{Handle: u.Handle, Device: u.Devs[i].ID} }

// Dial logs device i of u in at the relay at origin; the socket is closed
// when the test ends.
func Dial(ctx context.Context, t testing.TB, origin string, u *User, i int) *relayclient.Client {
	t.Helper()
	c, err := relayclient.Dial(ctx, origin, u.Handle, u.Devs[i])
	if err != nil {
		t.Fatalf("dial %s/%d: %v", u.Handle, i, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Recv is the next envelope on c, failing the test if none comes within
// the given time or the socket closes.
func Recv(t testing.TB, c *relayclient.Client, within time.Duration) *relay.Envelope {
	t.Helper()
	select {
	case e, ok := <-c.Envelopes():
		if !ok {
			t.Fatalf("socket closed: %v", c.Err())
		}
		return e
	case <-time.After(within):
		t.Fatalf("no envelope within %s", within)
	}
	return nil
}

// NoEnvelope fails the test if an envelope arrives on c within d.
func NoEnvelope(t testing.TB, c *relayclient.Client, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-c.Envelopes():
		if ok {
			t.Fatalf("unexpected envelope seq %d", e.Seq)
		}
	case <-time.After(d):
	}
}

// WaitClosed waits for the socket to end and returns its error, failing
// the test if it is still open after within.
func WaitClosed(t testing.TB, c *relayclient.Client, within time.Duration) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(within):
		t.Fatalf("socket still open after %s", within)
	}
	return nil
}
