//go:build !js

package client

import (
	"strings"
	"testing"
)

// TestCompanionWorksWithPrimaryOff is the headline: Alice's primary links
// a companion, then stops entirely; Bob and the companion keep talking;
// the companion restarts from its stored state without relinking; the
// primary, started again, sees what the companion sent and received.
func TestCompanionWorksWithPrimaryOff(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)

	a1 := newDevice(t, tr, "alice-phone")
	if err := a1.eng.CreateAccount(ctx, "alice", "Alice's phone"); err != nil {
		t.Fatal(err)
	}
	a1.run()
	bob := newDevice(t, tr, "bob")
	if err := bob.eng.CreateAccount(ctx, "bob", "Bob's laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()

	a2 := newDevice(t, tr, "alice-browser")
	primaryCode, companionCode := linkCompanion(t, a1, a2, "Alice's browser")
	if primaryCode == "" || primaryCode != companionCode {
		t.Fatalf("check codes differ: primary %q, companion %q", primaryCode, companionCode)
	}
	if st := a2.eng.Status(); st.Status != "ready" || st.Handle != "alice" || st.Primary {
		t.Fatalf("companion status %+v", st)
	}
	a2.run()

	// Before going off, the primary says hello so Bob has sessions with
	// both of Alice's devices.
	if _, err := a1.eng.SendText(ctx, "bob", "hi bob, from my phone"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "hi bob, from my phone")
	a2.waitMessage("bob", "hi bob, from my phone") // self-sync to the companion

	// The primary's process stops entirely.
	a1.stop()

	if _, err := bob.eng.SendText(ctx, "alice", "are you there, alice?"); err != nil {
		t.Fatal(err)
	}
	got := a2.waitMessage("bob", "are you there, alice?")
	if got.Outgoing || got.From != "bob" {
		t.Fatalf("companion stored %+v", got)
	}
	if _, err := a2.eng.SendText(ctx, "bob", "yes, on my browser, phone is off"); err != nil {
		t.Fatal(err)
	}
	got = bob.waitMessage("alice", "yes, on my browser, phone is off")
	if got.FromDevice != a2.eng.Device().ID.String() {
		t.Fatalf("bob sees the reply from device %s, want the companion %s", got.FromDevice, a2.eng.Device().ID)
	}

	// The companion restarts from its store: no relink, history kept.
	a2.restart()
	a2.waitMessage("bob", "are you there, alice?")
	if _, err := bob.eng.SendText(ctx, "alice", "still there after your restart?"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "still there after your restart?")
	if _, err := a2.eng.SendText(ctx, "bob", "still here"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "still here")

	// The primary comes back and catches up from its mailbox.
	a1.start()
	a1.run()
	for _, text := range []string{"are you there, alice?", "yes, on my browser, phone is off", "still there after your restart?", "still here"} {
		m := a1.waitMessage("bob", text)
		if strings.HasPrefix(text, "yes") || text == "still here" {
			if !m.Outgoing || m.FromDevice != a2.eng.Device().ID.String() {
				t.Fatalf("primary shows %+v; want outgoing from the companion", m)
			}
		}
	}
}
