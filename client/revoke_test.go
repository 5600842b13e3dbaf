//go:build !js

package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// TestRevokeCompanion: after the primary revokes the companion, the relay
// disconnects and refuses it, it marks itself revoked (from the signed
// list, not the relay's word), it cannot send, and Bob's next message is
// not encrypted to it.
func TestRevokeCompanion(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	hostile := &hostileRelay{} // here only to record whom Bob encrypts to
	bob := newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { hostile.Relay = r; return hostile }
	})
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	a1, a2 := aliceWithBrowser(t, tr)
	if _, err := bob.eng.SendText(ctx, "alice", "before"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "before")

	start := time.Now()
	if err := a1.eng.RevokeDevice(ctx, a2.eng.Device().ID.String()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a2.done:
		if !errors.Is(err, ErrRevoked) {
			t.Fatalf("companion's Run ended with %v, want %s", err, ErrRevoked.Code)
		}
		a2.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatal("revoked companion still running after 5 s")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("revocation took %v to reach the companion, want under 2 s", d)
	}
	if st := a2.eng.Status(); st.Status != "revoked" {
		t.Fatalf("companion status %+v, want revoked", st)
	}
	if _, err := a2.eng.SendText(ctx, "bob", "am I still here?"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("send from the revoked companion: %v, want %s", err, ErrRevoked.Code)
	}
	// A direct connection attempt is refused by the relay too.
	if _, err := NewRelay(tr.origin).Connect(ctx, "alice", a2.eng.dev); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked device connecting: %v, want %s", err, ErrRevoked.Code)
	}

	id, err := bob.eng.SendText(ctx, "alice", "after")
	if err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("bob", "after")
	eventually(t, "Bob's send to be recorded", func() bool { return hostile.sentTo(id) != nil })
	for _, a := range hostile.sentTo(id) {
		if a.Device == relay.DeviceID(a2.eng.Device().ID) {
			t.Fatalf("Bob encrypted to the revoked companion")
		}
	}
	// The revoked state survives a restart: no reconnect attempts.
	a2.stop()
	a2.start()
	if st := a2.eng.Status(); st.Status != "revoked" {
		t.Fatalf("after restart the companion is %+v", st)
	}
}

// TestCompanionExpiryAndReattestation: with a short attestation period and
// a fake clock, a companion the primary has not re-attested is refused;
// it is not marked revoked (its signed list still holds it), and the
// primary's re-attestation brings it back without a relink.
func TestCompanionExpiryAndReattestation(t *testing.T) {
	const age = time.Hour
	tr := startRelay(t, func(c *relayserver.Config) { c.AttestationAge = age })
	ctx := ctxT(t)
	short := func(d *device) { d.attestationAge = age }
	a1 := newDevice(t, tr, "alice-phone", short)
	if err := a1.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	a1.run()
	bob := newDevice(t, tr, "bob", short)
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	a2 := newDevice(t, tr, "alice-browser", short)
	linkCompanion(t, a1, a2, "browser")
	a2.run()

	tr.clock.Advance(2 * age)
	a2.stop() // reconnect under the new time
	a2.start()
	ctx2, cancel := context.WithCancel(context.Background())
	a2.cancel = cancel
	a2.done = make(chan error, 1)
	go func() { a2.done <- a2.eng.Run(ctx2) }()
	eventually(t, "the companion to notice its expired attestation", func() bool { return a2.eng.Status().Expired })
	if st := a2.eng.Status(); st.Status != "ready" || st.Online {
		t.Fatalf("expired companion status %+v; want ready (not revoked), offline", st)
	}
	// Bob does not encrypt to an expired companion (nor does the relay
	// accept it): his message reaches the primary only.
	if _, err := bob.eng.SendText(ctx, "alice", "while expired"); err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("bob", "while expired")

	if err := a1.eng.Reattest(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a2.eng.WaitOnline(wctx); err != nil {
		t.Fatalf("re-attested companion did not reconnect: %v", err)
	}
	if a2.eng.Status().Expired {
		t.Fatal("still marked expired after reconnecting")
	}
	if _, err := bob.eng.SendText(ctx, "alice", "after re-attestation"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "after re-attestation")
}

// TestRenameDevice: the primary renames a companion; every device of the
// account (and the relay's list) shows the new name; a companion cannot
// rename.
func TestRenameDevice(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1, a2 := aliceWithBrowser(t, tr)
	if err := a1.eng.RenameDevice(ctx, a2.eng.Device().ID.String(), "work laptop"); err != nil {
		t.Fatal(err)
	}
	devs, err := a2.eng.Devices(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, d := range devs {
		if d.This {
			got = d.Name
		}
	}
	if got != "work laptop" {
		t.Fatalf("companion sees its name as %q", got)
	}
	if err := a2.eng.RenameDevice(ctx, a1.eng.Device().ID.String(), "x"); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("companion renaming: %v, want %s", err, ErrNotPrimary.Code)
	}
}

// TestLastActive: each device's "last active" reaches the account's other
// devices through state sync.
func TestLastActive(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1, a2 := aliceWithBrowser(t, tr)
	id := a2.eng.Device().ID.String()
	eventually(t, "the primary to learn when the companion was last active", func() bool {
		devs, err := a1.eng.Devices(ctx, false)
		if err != nil {
			return false
		}
		for _, d := range devs {
			if d.ID == id {
				return d.LastActive > 0 && time.Since(time.Unix(d.LastActive, 0)) < time.Minute
			}
		}
		return false
	})
}

// aliceWithBrowser makes alice's primary ("phone") and links a running
// companion ("browser") to it.
func aliceWithBrowser(t *testing.T, tr *testRelay) (phone, browser *device) {
	t.Helper()
	phone = newDevice(t, tr, "alice-phone")
	if err := phone.eng.CreateAccount(ctxT(t), "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	phone.run()
	browser = newDevice(t, tr, "alice-browser")
	linkCompanion(t, phone, browser, "browser")
	browser.run()
	return phone, browser
}
