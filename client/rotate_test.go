//go:build !js

package client

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

func prekeyStateOf(t *testing.T, d *device) *prekeyState {
	t.Helper()
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	st, err := d.eng.loadPrekeyState(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func hasPrekey(t *testing.T, d *device, key string) bool {
	t.Helper()
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	_, err := d.eng.cfg.Store.Get(ctxT(t), bPrekeys, key)
	if err != nil && err != storage.ErrNotFound {
		t.Fatal(err)
	}
	return err == nil
}

// fetchUntilLastResort takes bundles of dev from the relay, through from's
// connection, until the relay hands out the last-resort KEM prekey, and
// returns that bundle's signed prekey and KEM prekey.
func fetchUntilLastResort(t *testing.T, from *device, handle string, dev identity.DeviceID) (identity.SignedPrekeyPublic, identity.KEMPrekeyPublic) {
	t.Helper()
	ctx := ctxT(t)
	from.eng.mu.Lock()
	conn := from.eng.conn
	from.eng.mu.Unlock()
	for range 4 * kemBatch {
		b, err := conn.Fetch(ctx, relay.Addr{Handle: handle, Device: relay.DeviceID(dev)})
		if err != nil {
			t.Fatal(err)
		}
		if !b.LastResort {
			continue
		}
		r := wire.NewReader(b.SignedPrekey)
		spk := identity.DecodeSignedPrekeyPublic(r)
		if err := r.Finish(); err != nil {
			t.Fatal(err)
		}
		r = wire.NewReader(b.KEM)
		kem := identity.DecodeKEMPrekeyPublic(r)
		if err := r.Finish(); err != nil {
			t.Fatal(err)
		}
		return spk, kem
	}
	t.Fatal("the relay never handed out the last-resort KEM prekey")
	return identity.SignedPrekeyPublic{}, identity.KEMPrekeyPublic{}
}

// TestSignedPrekeyRotates: a device that was off for longer than
// signedPrekeyRotation makes a new signed prekey and a new last-resort KEM
// prekey at its next start and publishes both, so what a later compromise
// of the device opens is bounded; the previous ones stay for the grace
// period, for session starts still in flight.
func TestSignedPrekeyRotates(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	bob := newAccount(t, tr, "bob", "bob")
	alice := newAccount(t, tr, "alice", "alice")
	bobDev := deviceOf(bob)
	before := prekeyStateOf(t, bob)
	oldSPK, oldLR := before.SignedID, before.lastResortID()

	bob.stop()
	tr.clock.Advance(signedPrekeyRotation + time.Minute)
	bob.start()
	bob.run()
	after := prekeyStateOf(t, bob)
	if after.SignedID == oldSPK || after.lastResortID() == oldLR {
		t.Fatalf("after %v off, signed prekey %d (was %d), last-resort KEM prekey %d (was %d): not rotated",
			signedPrekeyRotation, after.SignedID, oldSPK, after.lastResortID(), oldLR)
	}
	// Publishing is the connection's first upload, after run returns: wait
	// for it (a clean-clone run at a load average of 15 checked too soon).
	eventually(t, "the new prekeys published", func() bool { return prekeyStateOf(t, bob).Published })
	if !hasPrekey(t, bob, spkKey(oldSPK)) || !hasPrekey(t, bob, kemKey(oldLR)) {
		t.Fatal("the previous prekeys went before their grace period")
	}
	bob.stop() // no refill while the relay's stock drains
	spk, kem := fetchUntilLastResort(t, alice, "bob", bobDev)
	if spk.ID != after.SignedID || kem.ID != after.lastResortID() || !kem.LastResort {
		t.Fatalf("the relay serves signed prekey %d and last-resort KEM prekey %d, want %d and %d",
			spk.ID, kem.ID, after.SignedID, after.lastResortID())
	}
	bob.start()
	bob.run()
	if _, err := alice.eng.SendText(ctx, "bob", "after the rotation"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "after the rotation")

	// Running, it rotates again once the period is over.
	tr.clock.Advance(signedPrekeyRotation + time.Minute)
	bob.eng.maintainPrekeys(ctx)
	if again := prekeyStateOf(t, bob); again.SignedID == after.SignedID {
		t.Fatal("a running device did not rotate its signed prekey")
	}
}

// TestOldSignedPrekeyDeletedAfterGrace: once the grace period after a
// rotation is over, the previous signed prekey and last-resort KEM prekey
// are deleted, and with them the record of the session starts made under
// them. A session start that names them, replayed by the relay, opens
// nothing even if it had no record (a session from before the record
// existed): the window the replayed start of item 20.2 had is closed.
func TestOldSignedPrekeyDeletedAfterGrace(t *testing.T) {
	ctx := ctxT(t)
	alice, bob, _, _, env0 := replayScene(t)
	aliceDev := deviceOf(alice)
	im0, err := pqxdh.UnmarshalInitialMessage(env0.Payload[1:])
	if err != nil {
		t.Fatal(err)
	}
	old := prekeyStateOf(t, bob)
	seenPrefix := initialSeenSPKPrefix(old.SignedID)
	countSeen := func() int {
		n := 0
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		if err := bob.eng.cfg.Store.Scan(ctx, bPrekeys, seenPrefix, storage.ScanOptions{}, func(k string, _ []byte) error {
			if strings.HasPrefix(k, seenPrefix) {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if countSeen() == 0 {
		t.Fatal("no record of the session starts under the signed prekey")
	}

	bob.stop()
	tr := bob.clock
	tr.Advance(signedPrekeyRotation + time.Minute)
	bob.start()
	bob.run()
	if !hasPrekey(t, bob, spkKey(old.SignedID)) {
		t.Fatal("the previous signed prekey went at the rotation")
	}
	bob.stop()
	tr.Advance(signedPrekeyGrace + time.Minute)
	bob.start()
	bob.run()
	if hasPrekey(t, bob, spkKey(old.SignedID)) || hasPrekey(t, bob, kemKey(old.lastResortID())) {
		t.Fatalf("the signed prekey %d and last-resort KEM prekey %d outlived their grace period", old.SignedID, old.lastResortID())
	}
	if n := countSeen(); n != 0 {
		t.Fatalf("%d records of session starts under the deleted signed prekey remain", n)
	}

	replay := *env0
	replay.Seq = 0
	bob.eng.receive(ctx, &replay)
	for _, s := range sessionsOf(t, bob, "alice", aliceDev).Sessions {
		if s.HasPeerEph && s.PeerEphemeral == im0.Ephemeral {
			t.Fatal("a start under a deleted signed prekey brought its session back")
		}
	}
}
