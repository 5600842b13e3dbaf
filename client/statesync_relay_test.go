//go:build !js

package client

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/client/internal/statesync"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/syncseal"
)

// syncState returns a device's synced state.
func (d *device) syncState() *SyncedState {
	d.t.Helper()
	s, err := d.eng.SyncedState(context.Background())
	if err != nil {
		d.t.Fatalf("%s: SyncedState: %v", d.name, err)
	}
	return s
}

// waitSync polls until cond holds for d's synced state (10 s).
func (d *device) waitSync(what string, cond func(*SyncedState) bool) *SyncedState {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := d.syncState()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: timed out waiting for %s; state %+v", d.name, what, s)
		}
		select {
		case <-d.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sawEvent reports whether d emitted an error event with code.
func (d *device) sawEvent(code Code) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range d.events {
		if ev.Type == "error" && ev.Code == code {
			return true
		}
	}
	return false
}

// waitConverged waits until every device shows the same synced state.
func waitConverged(t *testing.T, devs ...*device) *SyncedState {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		first := devs[0].syncState()
		same := true
		for _, d := range devs[1:] {
			if !reflect.DeepEqual(first, d.syncState()) {
				same = false
			}
		}
		if same {
			return first
		}
		if time.Now().After(deadline) {
			for _, d := range devs {
				t.Logf("%s: %+v", d.name, d.syncState())
			}
			t.Fatal("devices did not converge")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tapSync makes e hand every sealed state-sync change it receives to tap,
// before opening it, until the test ends: a handle on one engine, where a
// global hook would see every engine of every test.
func tapSync(t *testing.T, e *Engine, tap func(sealed []byte)) {
	set := func(f func([]byte)) {
		e.mu.Lock()
		e.syncTap = f
		e.mu.Unlock()
	}
	set(tap)
	t.Cleanup(func() { set(nil) })
}

// threeDevices is Alice's primary and two companions, all running, plus
// Bob; every pair of Alice's devices has exchanged a change.
func threeDevices(t *testing.T) (a1, a2, a3, bob *device) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1 = newDevice(t, tr, "alice-phone")
	if err := a1.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	a1.run()
	bob = newDevice(t, tr, "bob")
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	a2 = newDevice(t, tr, "alice-browser")
	linkCompanion(t, a1, a2, "browser")
	a2.run()
	a3 = newDevice(t, tr, "alice-tablet")
	linkCompanion(t, a1, a3, "tablet")
	a3.run()
	for i, d := range []*device{a1, a2, a3} {
		if err := d.eng.SetSetting(ctx, fmt.Sprintf("hello-%d", i), d.name); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, a1, a2, a3)
	return
}

// TestStateSyncConverges: concurrent changes on two devices, to the same
// and to different keys, while the third is off; when it comes back all
// three show the same state. Then one device loses its state and rebuilds
// it from another's snapshot.
func TestStateSyncConverges(t *testing.T) {
	a1, a2, a3, bob := threeDevices(t)
	ctx := ctxT(t)

	if _, err := bob.eng.SendText(ctx, "alice", "unread until the browser reads it"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{a1, a2, a3} {
		d.waitMessage("bob", "unread until the browser reads it")
	}

	a3.stop()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Same keys on both running devices, different keys on each.
	must(a1.eng.SetContactName(ctx, "bob", "Bob (phone)"))
	must(a2.eng.SetContactName(ctx, "bob", "Bob (browser)"))
	must(a1.eng.SetSetting(ctx, "theme", "dark"))
	must(a2.eng.SetSetting(ctx, "theme", "light"))
	must(a1.eng.SetChatMuted(ctx, "bob", true))
	must(a2.eng.SetChatArchived(ctx, "carol", true))
	must(a2.eng.SetSetting(ctx, "lang", "en"))
	must(a1.eng.SetContactName(ctx, "carol", "Carol"))
	must(a2.eng.SetSetting(ctx, "hello-0", "")) // a removal
	must(a2.eng.MarkRead(ctx, "bob"))           // a read marker

	// The phone and the browser agree; then both go off, and the tablet
	// catches up from its mailbox alone.
	st := waitConverged(t, a1, a2)
	a1.stop()
	a2.stop()
	a3.start()
	a3.run()
	a3.waitSync("the changes made while it was off", func(s *SyncedState) bool { return reflect.DeepEqual(s, st) })
	a1.start()
	a1.run()
	a2.start()
	a2.run()
	if got := waitConverged(t, a1, a2, a3); !reflect.DeepEqual(got, st) {
		t.Fatalf("state changed on restart: %+v, want %+v", got, st)
	}

	if n := st.Contacts["bob"]; n != "Bob (phone)" && n != "Bob (browser)" {
		t.Fatalf("contact bob = %q", n)
	}
	if st.Settings["theme"] != "dark" && st.Settings["theme"] != "light" {
		t.Fatalf("theme = %q", st.Settings["theme"])
	}
	if st.Contacts["carol"] != "Carol" || st.Settings["lang"] != "en" || !st.Muted["bob"] || !st.Archived["carol"] {
		t.Fatalf("converged state misses a change: %+v", st)
	}
	if _, ok := st.Settings["hello-0"]; ok {
		t.Fatalf("removed setting still there: %+v", st.Settings)
	}
	if st.ReadMarkers["bob"] == 0 {
		t.Fatalf("no read marker for bob: %+v", st.ReadMarkers)
	}
	chats, err := a3.eng.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chats {
		if c.ID == "bob" && c.Unread != 0 {
			t.Fatalf("the tablet still shows %d unread in a chat read on the browser", c.Unread)
		}
	}

	// The tablet loses its synced state (and one record is damaged);
	// it rebuilds it from the phone's snapshot.
	var wipe storage.Batch
	first := true
	err = a3.store.Scan(ctx, bSync, syncEntryPfx, storage.ScanOptions{}, func(k string, _ []byte) error {
		if first {
			wipe.Put(bSync, k, []byte{0xff, 0x00})
			first = false
		} else {
			wipe.Delete(bSync, k)
		}
		return nil
	})
	must(err)
	must(a3.store.Commit(ctx, &wipe))
	if s := a3.syncState(); s.Corrupt != 1 || len(s.Settings) != 0 {
		t.Fatalf("after the wipe the tablet shows %+v", s)
	}
	must(a3.eng.ResyncState(ctx, a1.eng.Device().ID.String()))
	a3.waitSync("the snapshot", func(s *SyncedState) bool { return reflect.DeepEqual(s, st) })

	// A new change after the rebuild still flows everywhere.
	must(a3.eng.SetChatMuted(ctx, "bob", false))
	st = waitConverged(t, a1, a2, a3)
	if st.Muted["bob"] {
		t.Fatal("unmute from the tablet lost")
	}
}

// TestStateSyncRevocationRotatesKey: after the primary revokes a
// companion, changes are sealed under a new key epoch that the remaining
// devices receive and the revoked one cannot open.
func TestStateSyncRevocationRotatesKey(t *testing.T) {
	a1, a2, a3, _ := threeDevices(t)
	ctx := ctxT(t)

	a3.eng.mu.Lock()
	ring, _, err := a3.eng.keyringLocked(ctx)
	a3.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	oldKeys := ring.Keys

	// A companion cannot hand out a sync key: only the primary can.
	a2.eng.mu.Lock()
	var b storage.Batch
	err = a2.eng.queueOwnLocked(ctx, &b, kindSyncKey, statesync.MarshalKey(statesync.Key{Epoch: 99, Key: [32]byte{0xee}}))
	if err == nil {
		err = a2.eng.cfg.Store.Commit(ctx, &b)
	}
	a2.eng.kickLocked()
	a2.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{a1, a3} {
		deadline := time.Now().Add(10 * time.Second)
		for !d.sawEvent("sync_key_refused") {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not refuse a sync key from a companion", d.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s := d.syncState(); s.Epoch != 0 {
			t.Fatalf("%s took a companion's key: epoch %d", d.name, s.Epoch)
		}
	}

	var mu sync.Mutex
	var seen [][]byte
	tapSync(t, a2.eng, func(sealed []byte) {
		mu.Lock()
		seen = append(seen, bytes.Clone(sealed))
		mu.Unlock()
	})

	if err := a1.eng.RevokeDevice(ctx, a3.eng.Device().ID.String()); err != nil {
		t.Fatal(err)
	}
	if err := a1.eng.SetSetting(ctx, "after", "revocation"); err != nil {
		t.Fatal(err)
	}
	a2.waitSync("the change after the revocation", func(s *SyncedState) bool { return s.Settings["after"] == "revocation" })
	if s := a2.syncState(); s.Epoch != 1 {
		t.Fatalf("the browser seals with epoch %d after the revocation, want 1", s.Epoch)
	}
	if err := a2.eng.SetContactName(ctx, "bob", "Bob, after"); err != nil {
		t.Fatal(err)
	}
	a1.waitSync("the browser's change", func(s *SyncedState) bool { return s.Contacts["bob"] == "Bob, after" })
	if s := a1.syncState(); s.Epoch != 1 {
		t.Fatalf("primary epoch %d, want 1", s.Epoch)
	}

	// The change the primary made after revoking, as the browser received
	// it, does not open under any key the tablet ever had.
	mu.Lock()
	defer mu.Unlock()
	checked := 0
	for _, body := range seen {
		s, err := syncseal.Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if s.Epoch < 1 {
			continue
		}
		checked++
		for _, k := range oldKeys {
			if syncseal.KeyID(k.Key) == s.KeyID {
				t.Fatal("a change after the revocation names a key the revoked device has")
			}
			if _, err := s.Open(k.Key); err == nil {
				t.Fatal("a change after the revocation opens under the revoked device's key")
			}
		}
	}
	if checked == 0 {
		t.Fatal("no change sealed after the revocation was seen")
	}
	if _, ok := a3.syncState().Settings["after"]; ok {
		t.Fatal("the revoked device got a change made after its revocation")
	}
}
