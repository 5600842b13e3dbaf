//go:build !js

package client

import (
	"errors"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/relay/relayclient"
)

// pinRaw stores enc as d's pinned list of handle, as a device that pinned
// it before an upgrade would hold it, and drops the cached copy.
func pinRaw(t *testing.T, d *device, handle string, enc []byte) {
	t.Helper()
	e := d.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	key, err := devicelist.PeekAccount(enc)
	if err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	b.Put(bLists, handle, (&pinnedList{AccountPub: key, Encoded: enc}).marshal())
	if err := e.cfg.Store.Commit(ctxT(t), &b); err != nil {
		t.Fatal(err)
	}
	delete(e.lists, handle)
}

// newWrappedAccount is newAccount (handle named after the device) for a
// device whose relay is wrapped by wrap.
func newWrappedAccount(t *testing.T, tr *testRelay, handle string, wrap func(Relay) Relay) *device {
	t.Helper()
	d := newDevice(t, tr, handle, func(d *device) { d.wrap = wrap })
	if err := d.eng.CreateAccount(ctxT(t), handle, "laptop"); err != nil {
		t.Fatal(err)
	}
	d.run()
	return d
}

// refetch is d's list of handle fetched from the relay again.
func refetch(t *testing.T, d *device, handle string) (*devicelist.List, error) {
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	return d.eng.listLocked(ctxT(t), handle, true)
}

// setServed makes h serve enc as handle's list (nil: the relay's own).
func (h *hostileRelay) setServed(handle string, enc []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if enc == nil {
		delete(h.serve, handle)
	} else {
		h.serve[handle] = enc
	}
}

// TestLegacyListMigration is the clients' side of PROTOCOL.md 3.6. A
// relay still serves Alice's list of format 1 (no handle): Bob, who
// pinned exactly that list before the upgrade, keeps using it; Carol, who
// meets Alice now, refuses it (it cannot show it is alice's); a format-1
// list other than the pinned one is refused even with a higher version.
// Alice's primary, started again, republishes in format 2, and then both
// accept her list.
func TestLegacyListMigration(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	hb := &hostileRelay{serve: map[string][]byte{}}
	hc := &hostileRelay{serve: map[string][]byte{}}
	a1 := newAccount(t, tr, "alice-phone", "alice")
	bob := newWrappedAccount(t, tr, "bob", func(r Relay) Relay { hb.Relay = r; return hb })
	carol := newWrappedAccount(t, tr, "carol", func(r Relay) Relay { hc.Relay = r; return hc })

	// Alice's list as a relay stored it before the upgrade: format 1,
	// version 2, the same devices.
	a1.eng.mu.Lock()
	cur, err := a1.eng.listLocked(ctx, "alice", false)
	acct := a1.eng.account
	a1.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	old := cur.Clone()
	old.Handle, old.Version = "", cur.Version+1
	legacy, err := devicelist.SignLegacy(acct, old)
	if err != nil {
		t.Fatal(err)
	}
	hb.setServed("alice", legacy)
	hc.setServed("alice", legacy)
	pinRaw(t, bob, "alice", legacy)
	pinRaw(t, a1, "alice", legacy)

	if _, err := carol.eng.SendText(ctx, "alice", "first contact"); !errors.Is(err, ErrBadList) || !errors.Is(err, devicelist.ErrLegacyList) {
		t.Fatalf("first contact with a format-1 list: %v, want %s (legacy list)", err, ErrBadList.Code)
	}
	if _, err := bob.eng.SendText(ctx, "alice", "pinned before the upgrade"); err != nil {
		t.Fatalf("send against the pinned format-1 list: %v", err)
	}
	a1.waitMessage("bob", "pinned before the upgrade")
	newer := old.Clone()
	newer.Version++
	enc, err := devicelist.SignLegacy(acct, newer)
	if err != nil {
		t.Fatal(err)
	}
	hb.setServed("alice", enc)
	if _, err := refetch(t, bob, "alice"); !errors.Is(err, devicelist.ErrLegacyList) {
		t.Fatalf("a format-1 list other than the pinned one: %v, want the legacy refusal", err)
	}

	// Alice's primary starts again and republishes in format 2.
	a1.restart()
	eventually(t, "Alice's primary to republish her list naming her handle", func() bool {
		a, err := relayclient.GetAccount(ctx, tr.origin, "alice")
		if err != nil {
			return false
		}
		l, err := devicelist.Verify(acct.Public(), "alice", a.DeviceList)
		return err == nil && !l.Legacy() && l.Version == old.Version+1
	})
	hb.setServed("alice", nil)
	hc.setServed("alice", nil)
	if l, err := refetch(t, bob, "alice"); err != nil || l.Legacy() || l.Version != old.Version+1 {
		t.Fatalf("Bob's fetch after the upgrade: %+v, %v; want version %d naming alice", l, err, old.Version+1)
	}
	for _, d := range []*device{bob, carol} {
		if _, err := d.eng.SendText(ctx, "alice", "after the upgrade from "+d.name); err != nil {
			t.Fatalf("%s after Alice republished: %v", d.name, err)
		}
		a1.waitMessage(d.name, "after the upgrade from "+d.name)
	}
}
