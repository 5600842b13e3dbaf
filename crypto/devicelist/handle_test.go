package devicelist

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
)

// TestListCannotBeReplayedUnderAnotherHandle: Alice's genuine list, every
// signature valid, served for the handle "mallory" (issue 14 item 6: a
// relay, or a registration, putting a victim's list under an alias).
func TestListCannotBeReplayedUnderAnotherHandle(t *testing.T) {
	f := newFixture(t, "handle", 2)
	if _, err := Verify(f.account.Public(), "mallory", f.enc); !errors.Is(err, ErrOtherHandle) {
		t.Fatalf("Alice's list fetched for mallory: %v, want %v", err, ErrOtherHandle)
	}
	l, err := Verify(f.account.Public(), fixtureHandle, f.enc)
	if err != nil || l.Handle != fixtureHandle || l.Legacy() {
		t.Fatalf("Alice's list for alice: %+v, %v", l, err)
	}
	// Renaming the handle in the bytes breaks the account's signature, or
	// the check: either way the list is refused.
	enc := append([]byte(nil), f.enc...)
	enc[1+32+4] = 'm'
	if _, err := Verify(f.account.Public(), "mlice", enc); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("handle edited after signing: %v, want %v", err, ErrBadSignature)
	}
	// An update cannot move the account to another handle either.
	next := l.Clone()
	next.Version++
	next.Handle = "mallory"
	if _, err := Sign(f.account, next); err != nil {
		t.Fatal(err)
	}
	if err := CheckUpdate(l, next); !errors.Is(err, ErrOtherHandle) {
		t.Fatalf("update naming another handle: %v, want %v", err, ErrOtherHandle)
	}
}

// TestLegacyListStandsOnlyUntilTheNextUpdate is the migration rule of
// PROTOCOL.md 3.6: a list of format 1 still verifies (it is what relays
// and clients hold from before format 2), Sign never writes one, an update
// may replace it by a list naming the handle, and nothing may replace a
// list by one of format 1.
func TestLegacyListStandsOnlyUntilTheNextUpdate(t *testing.T) {
	f := newFixture(t, "legacy", 2)
	old := f.list.Clone()
	old.Handle = ""
	if _, err := Sign(f.account, old); !errors.Is(err, ErrLegacyList) {
		t.Fatalf("Sign without a handle: %v, want %v", err, ErrLegacyList)
	}
	enc, err := SignLegacy(f.account, old)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != legacyListVersion {
		t.Fatalf("SignLegacy wrote format %d", enc[0])
	}
	cur, err := Verify(f.account.Public(), "anyone", enc)
	if err != nil || !cur.Legacy() {
		t.Fatalf("legacy list: %+v, %v", cur, err)
	}
	up, _, err := Reattest(f.account, cur, fixtureHandle, t0.Add(time.Hour), f.devices[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckUpdate(cur, up); err != nil || up.Legacy() || up.Entries[1].Attested != cur.Entries[1].Attested {
		t.Fatalf("upgrade: %v (handle %q; companion attested %d, was %d)", err, up.Handle, up.Entries[1].Attested, cur.Entries[1].Attested)
	}
	back := cur.Clone()
	back.Version = up.Version + 1
	if _, err := SignLegacy(f.account, back); err != nil {
		t.Fatal(err)
	}
	if err := CheckUpdate(up, back); !errors.Is(err, ErrLegacyList) {
		t.Fatalf("format 1 after format 2: %v, want %v", err, ErrLegacyList)
	}
	if err := CheckUpdate(cur, back); !errors.Is(err, ErrLegacyList) {
		t.Fatalf("format 1 update of format 1: %v, want %v", err, ErrLegacyList)
	}
}

// TestLargestListFitsMaxEncodedSize: the largest valid list (MaxDevices
// entries with names of MaxNameLen and a handle of identity.MaxHandleLen)
// is the 5,080 bytes PROTOCOL.md 3.2 states, below MaxEncodedSize.
func TestLargestListFitsMaxEncodedSize(t *testing.T) {
	f := newFixture(t, "largest", MaxDevices)
	l := f.list.Clone()
	l.Handle = strings.Repeat("h", identity.MaxHandleLen)
	for i := range l.Entries {
		l.Entries[i].Name = strings.Repeat("n", MaxNameLen)
	}
	enc, err := Sign(f.account, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != 5080 || len(enc) > MaxEncodedSize {
		t.Fatalf("largest list: %d bytes, want 5080 (limit %d)", len(enc), MaxEncodedSize)
	}
	if _, err := Verify(f.account.Public(), l.Handle, enc); err != nil {
		t.Fatal(err)
	}
	l.Handle += "h"
	if _, err := Sign(f.account, l); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a handle over identity.MaxHandleLen: %v, want %v", err, ErrMalformed)
	}
}
