//go:build !js

package client

import (
	"testing"
	"time"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/relay"
)

// TestRemovedMemberCannotSquatGroupID: mallory, removed from alice's group,
// still knows its id. He signs a state for that id with a huge version and
// himself as its admin, its members the real ones and dave (a contact alice
// adds later), and sends it to dave, who holds nothing of the group yet.
// Dave must not take it: if he did, he would ignore alice's states as stale
// and give his sender chain to mallory, who would read dave's group
// messages while alice and bob accept them too.
func TestRemovedMemberCannotSquatGroupID(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	alice, bob, mallory, dave := s.phone("alice"), s.phone("bob"), s.phone("mallory"), s.phone("dave")
	gid := s.create(alice, "Book club", "bob", "mallory")
	s.send(alice, "before the removal", bob, mallory)
	if err := alice.eng.RemoveMember(ctx, gid, "mallory"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob, mallory} {
		waitGroup(t, d, gid, "version 2", func(g Group) bool { return g.Version == 2 })
	}

	// Mallory's squat: the real id, a version far ahead, himself the
	// admin, signed by his own device (in his verified list, so it ties
	// him to his account as the old rule asked).
	real := loadState(t, bob, gid)
	squat := squatState(real, mallory)
	squat.Bind("mallory", mallory.eng.acct.AccountPub, real.Nonce)
	squat.ID = real.ID // the id is alice's: his key does not make it
	squat.Sign(mallory.eng.dev)
	// The same in alice's name (her handle, key and nonce make the id),
	// signed by his device as his admin, then as one listed as hers.
	asCreator := squatState(real, mallory)
	asCreator.Bind(real.Creator, real.CreatorKey, real.Nonce)
	asCreator.Sign(mallory.eng.dev)
	asHers := squatState(real, mallory)
	asHers.Bind(real.Creator, real.CreatorKey, real.Nonce)
	asHers.Admins[0].Handle = "alice"
	asHers.Sign(mallory.eng.dev)
	for _, g := range []*groupstate.State{squat, asCreator, asHers} {
		queueForged(t, mallory, kindGroupState, "dave", g.Raw())
	}
	eventually(t, "dave reading mallory's states", func() bool {
		return countEvents(dave, "error", ErrGroupChangeRefused.Code) >= 3 || hasGroup(t, dave, gid)
	})
	if hasGroup(t, dave, gid) {
		g := loadState(t, dave, gid)
		t.Fatalf("dave took mallory's squatted state: version %d, admins %v", g.Version, g.AdminAccounts())
	}
	// Nor does a companion bob links now, which holds nothing of the
	// group until his phone sends it the state.
	bobBrowser := newDevice(t, s.tr, "bob-browser")
	linkCompanion(t, bob, bobBrowser, "bob's browser")
	bobBrowser.run()
	queueForged(t, mallory, kindGroupState, "bob", squat.Raw())
	queueForged(t, mallory, kindGroupState, "bob", asHers.Raw())
	eventually(t, "bob's browser refusing mallory's states", func() bool {
		return countEvents(bobBrowser, "error", ErrGroupChangeRefused.Code) >= 2
	})
	if g := waitGroup(t, bobBrowser, gid, "alice's version 2", func(g Group) bool { return g.Version == 2 }); len(g.Admins) != 1 || g.Admins[0] != "alice" {
		t.Fatalf("bob's browser holds admins %v", g.Admins)
	}

	// Alice adds dave: he takes her state, and his messages reach alice
	// and bob, not mallory.
	if err := alice.eng.AddMember(ctx, gid, "dave"); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, dave, gid, "alice's version 3", func(g Group) bool { return g.Version == 3 })
	if len(g.Admins) != 1 || g.Admins[0] != "alice" {
		t.Fatalf("dave holds admins %v", g.Admins)
	}
	s.send(dave, "dave's first words", alice, bob, bobBrowser)
	time.Sleep(200 * time.Millisecond)
	if hasMessage(t, mallory, gid, "dave's first words") {
		t.Fatal("mallory reads dave's group message")
	}
}

// squatState is a state for real's id that mallory signs: a version far
// ahead, mallory its only admin, dave a member.
func squatState(real *groupstate.State, mallory *device) *groupstate.State {
	g := &groupstate.State{ID: real.ID, Version: 1 << 40, Name: real.Name,
		Members: []string{"alice", "bob", "dave", "mallory"},
		Admins:  []groupstate.Admin{{Handle: "mallory", Device: mallory.eng.dev.ID, Key: mallory.eng.Device().SignPub}}}
	g.Sign(mallory.eng.dev)
	return g
}

func hasGroup(t *testing.T, d *device, gid string) bool {
	t.Helper()
	gs, err := d.eng.Groups(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == gid {
			return true
		}
	}
	return false
}

// TestChainForReplacedStateRefused: a sender chain is bound to the version
// of the group state it was made for. After alice removes carol, a chain
// that bob's device made for the state before the removal — one carol's
// devices were given too, as a device that missed the removal would make —
// is refused by the members, and what is sent on it is never shown; a
// chain made for the current state is taken. A sender whose chain is
// older than the removal makes a new one even when the devices are the
// same again (carol added back).
func TestChainForReplacedStateRefused(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	alice, bob, carol := s.phone("alice"), s.phone("bob"), s.phone("carol")
	gid := s.create(alice, "Choir", "bob", "carol")
	s.send(bob, "bob before", alice, carol)
	s.send(alice, "alice before", bob, carol)
	before := senderChain(t, alice, gid)
	if err := alice.eng.RemoveMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob, carol} {
		waitGroup(t, d, gid, "version 2", func(g Group) bool { return g.Version == 2 })
	}
	if g := loadState(t, alice, gid); g.Floor != 2 {
		t.Fatalf("the removal's state has floor %d, want 2", g.Floor)
	}

	id, _ := parseGroupRef(gid)
	stale, err := senderkey.NewSender(nil, groupstate.ChainGroupID(id, 1))
	if err != nil {
		t.Fatal(err)
	}
	dist, _ := stale.Distribution().MarshalBinary()
	queueForged(t, bob, kindSenderKey, "alice", dist)
	eventually(t, "alice refusing bob's chain for version 1", func() bool {
		return alice.hasEvent("error", CodeStaleChain)
	})
	ct, err := stale.Encrypt((&payload{Kind: kindText, ID: MessageID{9}, SentAt: 9, Body: []byte("on the old chain")}).marshal())
	if err != nil {
		t.Fatal(err)
	}
	alice.eng.mu.Lock()
	_, err = alice.eng.receiveLocked(ctx, &relay.Envelope{From: relay.Addr{Handle: "bob", Device: bob.eng.Device().ID}, MessageID: MessageID{9},
		Payload: append([]byte{envGroup}, ct...)})
	alice.eng.mu.Unlock()
	_ = err // kept for a chain it will never take, or refused
	if hasMessage(t, alice, gid, "on the old chain") {
		t.Fatal("alice shows a message on a chain made before the removal")
	}

	// Bob's next message goes on a chain made for version 2, which alice
	// takes; carol gets nothing.
	s.send(bob, "bob after", alice)
	if hasMessage(t, carol, gid, "bob after") {
		t.Fatal("carol reads after her removal")
	}

	// Carol back: the same devices as alice's chain, made for version 1
	// (alice has not sent since); her next chain is made for version 3.
	if err := alice.eng.AddMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob, carol} {
		waitGroup(t, d, gid, "version 3", func(g Group) bool { return g.Version == 3 })
	}
	s.send(alice, "welcome back", bob, carol)
	if after := senderChain(t, alice, gid); after == before {
		t.Fatal("alice kept the chain made before the removal")
	}
}

// TestGroupFloorAcrossMissedVersions: a device that held version 1 and
// missed the removal (version 2) takes version 3, whose floor the removal
// raised, and then refuses a chain made for version 1.
func TestGroupFloorAcrossMissedVersions(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, b := s.phone("alice"), s.idlePhone("bob")
	s.idlePhone("carol")
	gid := s.create(a, "Quartet", "bob", "carol")
	v1 := loadState(t, a, gid).Raw()
	if err := a.eng.RemoveMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := a.eng.RenameGroup(ctx, gid, "Trio"); err != nil {
		t.Fatal(err)
	}
	v3 := loadState(t, a, gid)
	if v3.Version != 3 || v3.Floor != 2 {
		t.Fatalf("version %d floor %d", v3.Version, v3.Floor)
	}
	b.eng.mu.Lock()
	defer b.eng.mu.Unlock()
	for _, raw := range [][]byte{v1, v3.Raw()} {
		var batch storage.Batch
		if _, err := b.eng.acceptGroupStateLocked(ctx, &batch, raw, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := b.eng.cfg.Store.Commit(ctx, &batch); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := parseGroupRef(gid)
	old, _ := senderkey.NewSender(nil, groupstate.ChainGroupID(id, 1))
	dist, _ := old.Distribution().MarshalBinary()
	var batch storage.Batch
	evs, err := b.eng.receiveSenderKeyLocked(ctx, &batch, &payload{Kind: kindSenderKey, Body: dist}, "alice", a.eng.Device().ID)
	if err != nil || len(evs) != 1 || evs[0].Code != CodeStaleChain || len(batch.Ops) != 0 {
		t.Fatalf("a chain for version 1 after the removal: %v %+v, %d ops", err, evs, len(batch.Ops))
	}
}
