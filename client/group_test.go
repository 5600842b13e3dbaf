//go:build !js

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/relay"
)

// TestGroupThreeMembersTwoDevices: three accounts with a primary and a
// linked companion each. Every device of every member gets every group
// message, the sender's other device included; removing a member re-keys
// so its devices cannot read on; a change not signed by an admin, and an
// old state replayed, are refused.
func TestGroupThreeMembersTwoDevices(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a1, a2 := s.account("alice")
	b1, b2 := s.account("bob")
	c1, c2 := s.account("carol")
	all := []*device{a1, a2, b1, b2, c1, c2}
	bobCap := capture(b2)
	b2.run()

	gid := s.create(a1, "Hiking club", "bob", "carol")
	if !strings.HasPrefix(gid, "g:") {
		t.Fatalf("group id %q", gid)
	}
	for _, d := range all {
		g := waitGroup(t, d, gid, "version 1", func(g Group) bool { return g.Version == 1 })
		if g.Name != "Hiking club" || !slices.Equal(g.Members, []string{"alice", "bob", "carol"}) || !slices.Equal(g.Admins, []string{"alice"}) {
			t.Fatalf("%s sees %+v", d.name, g)
		}
		if wantAdmin := d == a1 || d == a2; g.Admin != wantAdmin || !g.Member {
			t.Fatalf("%s sees admin=%v member=%v", d.name, g.Admin, g.Member)
		}
	}

	// Every device of every member, including the sender's other device.
	send := func(from *device, text string, to ...*device) string {
		t.Helper()
		id, err := from.eng.SendGroupText(ctx, gid, text)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range to {
			if d == from {
				continue
			}
			m := d.waitMessage(gid, text)
			own := strings.HasPrefix(d.name, strings.Split(from.name, "-")[0])
			if m.ID != id || m.FromDevice != from.eng.Device().ID.String() || m.Outgoing != own ||
				m.From != strings.Split(from.name, "-")[0] {
				t.Fatalf("%s stored %+v for %q from %s", d.name, m, text, from.name)
			}
		}
		return id
	}
	send(a1, "hello group, from alice's phone", all...)
	send(b2, "bob's browser says hi", all...)
	send(c1, "carol here", all...)
	send(a2, "and alice's browser", all...)
	// The sender's own copy becomes sent.
	eventually(t, "alice's message marked sent", func() bool {
		msgs, _ := a1.eng.Messages(ctx, gid, "", 0)
		return len(msgs) > 0 && msgs[0].Status == StatusSent
	})
	chats, err := b1.eng.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chats) == 0 || chats[0].ID != gid || chats[0].Name != "Hiking club" || chats[0].LastText != "and alice's browser" || chats[0].LastFile {
		t.Fatalf("bob's chats: %+v", chats)
	}

	// Carol's devices hold chains of alice's phone and bob's browser now.
	before := map[*device][]*senderkey.Receiver{c1: storedReceivers(t, c1, gid), c2: storedReceivers(t, c2, gid)}
	if len(before[c1]) < 3 {
		t.Fatalf("carol's phone holds %d chains", len(before[c1]))
	}

	// Only an admin device may change the group.
	if err := b1.eng.RemoveMember(ctx, gid, "carol"); !errors.Is(err, ErrNotGroupAdmin) {
		t.Fatalf("bob removing carol: %v", err)
	}
	if err := a1.eng.RemoveMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		waitGroup(t, d, gid, "version 2", func(g Group) bool { return g.Version == 2 })
	}
	for _, d := range []*device{c1, c2} {
		if g := waitGroup(t, d, gid, "removed", func(Group) bool { return true }); g.Member {
			t.Fatalf("%s still a member: %+v", d.name, g)
		}
		if n := len(storedReceivers(t, d, gid)); n != 0 {
			t.Fatalf("%s keeps %d chains after its removal", d.name, n)
		}
	}
	if _, err := c1.eng.SendGroupText(ctx, gid, "still here?"); !errors.Is(err, ErrNotGroupMember) {
		t.Fatalf("removed carol sending: %v", err)
	}

	// Every remaining sender re-keys: carol's devices get nothing, and
	// the chains they held cannot open what follows.
	rest := []*device{a1, a2, b1, b2}
	send(a1, "after carol left, from alice", rest...)
	secretID := send(b2, "after carol left, from bob's browser", rest...)
	secret := bobCap.get(secretID)
	if len(secret) < 2 || secret[0] != envGroup {
		t.Fatalf("captured %d bytes", len(secret))
	}
	for d, rs := range before {
		for _, r := range rs {
			if _, err := r.Decrypt(secret[1:]); err == nil {
				t.Fatalf("%s's old chain opened a message sent after the removal", d.name)
			}
		}
		if hasMessage(t, d, gid, "after carol left, from alice") || hasMessage(t, d, gid, "after carol left, from bob's browser") {
			t.Fatalf("%s stored a message sent after its removal", d.name)
		}
		// Even handed the ciphertext directly, the device stores nothing.
		d.eng.mu.Lock()
		_, err := d.eng.receiveLocked(ctx, &relay.Envelope{
			From: relay.Addr{Handle: "bob", Device: b2.eng.Device().ID}, MessageID: [16]byte{1}, Payload: secret,
		})
		d.eng.mu.Unlock()
		_ = err // kept as pending (unknown chain) or refused; never stored
		if hasMessage(t, d, gid, "after carol left, from bob's browser") {
			t.Fatalf("%s stored the message when handed it", d.name)
		}
	}

	// A change signed by a member who is no admin is refused everywhere,
	// and so is one claiming the admin device but signed by another key.
	cur := loadState(t, b1, gid)
	forged := cur.Next()
	forged.Name = "Bob's club"
	forged.Admins = append(slices.Clone(cur.Admins), groupstate.Admin{Handle: "bob", Device: b1.eng.dev.ID, Key: b1.eng.Device().SignPub})
	forged.Sign(b1.eng.dev)
	queueForged(t, b1, kindGroupState, "alice", forged.Raw())
	posing := cur.Next()
	posing.Name, posing.Admins, posing.Signer = "Bob's club", cur.Admins, a1.eng.dev.ID
	msg := posing.SignedPart()
	queueForged(t, b1, kindGroupState, "alice", append(msg, b1.eng.dev.Sign(groupstate.Purpose, msg)...))
	// An old state replayed (the relay or a member could hold one).
	queueForged(t, b1, kindGroupState, "alice", loadStateV1(t, a1, gid))
	for _, d := range []*device{a1, a2, b2} {
		eventually(t, d.name+" refusing three group changes", func() bool {
			return countEvents(d, "error", ErrGroupChangeRefused.Code) >= 3
		})
		if g := loadState(t, d, gid); g.Version != 2 || g.Name != "Hiking club" {
			t.Fatalf("%s took a forged change: version %d name %q", d.name, g.Version, g.Name)
		}
	}

	// Carol comes back: her devices read what is sent from then on.
	if err := a2.eng.AddMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		waitGroup(t, d, gid, "version 3", func(g Group) bool { return g.Version == 3 && g.Member })
	}
	send(b1, "welcome back carol", all...)
	if hasMessage(t, c2, gid, "after carol left, from alice") {
		t.Fatal("carol reads what was sent while she was out")
	}
}

// TestGroupMessageBeforeDistribution: a group message whose chain is not
// known yet is kept, and shown in the same batch that files the chain.
func TestGroupMessageBeforeDistribution(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, b := s.phone("alice"), s.phone("bob")
	gid := s.create(a, "two", "bob")
	s.send(a, "first", b)

	// A new chain of alice's device: its message reaches bob before its
	// distribution does.
	id, _ := parseGroupRef(gid)
	chain, err := senderkey.NewSender(nil, groupstate.ChainGroupID(id, 1))
	if err != nil {
		t.Fatal(err)
	}
	dist, err := chain.Distribution().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range 3 {
		text := fmt.Sprintf("early %d", i)
		ct, err := chain.Encrypt((&payload{Kind: kindText, ID: MessageID{byte(i + 1)}, SentAt: uint64(i + 1), Body: []byte(text)}).marshal())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(append([]byte{envGroup}, ct...)))
	}
	from := relay.Addr{Handle: "alice", Device: a.eng.Device().ID}
	deliver := func(i int) {
		b.eng.mu.Lock()
		_, err := b.eng.receiveLocked(ctx, &relay.Envelope{From: from, MessageID: MessageID{byte(i + 1)}, Payload: []byte(out[i])})
		b.eng.mu.Unlock()
		if err != nil && !errors.Is(err, errDuplicate) {
			t.Fatalf("early message %d: %v", i, err)
		}
	}
	deliver(2)
	deliver(0)
	deliver(0) // the relay delivers again after a lost ack
	if hasMessage(t, b, gid, "early 0") {
		t.Fatal("shown before its chain is known")
	}
	b.eng.mu.Lock()
	var batch storage.Batch
	evs, err := b.eng.receiveSenderKeyLocked(ctx, &batch, &payload{Kind: kindSenderKey, Body: dist}, "alice", a.eng.Device().ID)
	if err == nil {
		err = b.eng.cfg.Store.Commit(ctx, &batch)
	}
	b.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 { // two messages and the chat list
		t.Fatalf("events %+v", evs)
	}
	for _, text := range []string{"early 0", "early 2"} {
		if !hasMessage(t, b, gid, text) {
			t.Fatalf("%q not shown after its distribution", text)
		}
	}
	deliver(1) // the chain is known now: it opens directly
	b.waitMessage(gid, "early 1")
	deliver(1)
	if msgs, _ := b.eng.Messages(ctx, gid, "", 0); len(msgs) != 4 {
		t.Fatalf("bob has %d messages, want 4", len(msgs))
	}
}

// TestGroupStateEngineRules: groupstate's limits and handle rule are the
// engine's and the relay's, and a state that does not verify is a refused
// change (ErrGroupChangeRefused).
func TestGroupStateEngineRules(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"handle length (engine)", groupstate.MaxHandleLen, maxHandleLen},
		{"handle length (relay)", groupstate.MaxHandleLen, relay.MaxHandle},
		{"devices of a chain", groupstate.MaxChainDevices, relay.MaxRecipients},
		{"outbox payload", groupstate.MaxOutPayload, maxPayloadBody + 256},
		{"GroupIDSize", GroupIDSize, 16},
		{"MaxGroupMembers", MaxGroupMembers, 64},
		{"MaxGroupNameLen", MaxGroupNameLen, 64},
	} {
		if c.got != c.want {
			t.Errorf("%s: groupstate says %d, want %d", c.name, c.got, c.want)
		}
	}
	admin, _ := identity.NewDevice(nil)
	other, _ := identity.NewDevice(nil)
	for _, h := range []string{"bob", "ab", "a-b.c_d", "Bob", "b b", "b\xffb", strings.Repeat("b", 32), strings.Repeat("b", 33), "b:c", "0_9"} {
		g := &groupstate.State{Version: 1, Name: "g", Members: []string{h},
			Admins: []groupstate.Admin{{Handle: h, Device: admin.ID, Key: admin.Public().SignPub}}}
		g.Bind("alice", admin.Public().SignPub, [groupstate.NonceSize]byte{1})
		g.Sign(admin)
		if _, err := groupstate.Parse(g.Raw()); (err == nil) != handleRule.MatchString(h) || (err == nil) != relay.ValidHandle(h) {
			t.Errorf("handle %q: parsed with %v, the engine's rule says %v", h, err, handleRule.MatchString(h))
		}
	}
	g := &groupstate.State{Version: 3, Name: "g", Members: []string{"alice", "bob"},
		Admins: []groupstate.Admin{{Handle: "alice", Device: admin.ID, Key: admin.Public().SignPub}}}
	g.Bind("alice", admin.Public().SignPub, [groupstate.NonceSize]byte{1})
	g.Sign(admin)
	got, err := groupstate.Parse(g.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyGroupState(got, g.Admins); err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(g.Raw())
	copy(forged[len(forged)-64:], other.Sign(groupstate.Purpose, g.Raw()[:len(forged)-64]))
	bad, err := groupstate.Parse(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyGroupState(bad, g.Admins); !errors.Is(err, ErrGroupChangeRefused) || !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	if _, err := verifyGroupState(got, []groupstate.Admin{{Handle: "bob", Device: other.ID, Key: other.Public().SignPub}}); !errors.Is(err, ErrGroupChangeRefused) {
		t.Fatalf("non-admin signer: %v", err)
	}
}

// BenchmarkGroupSendReceive: one group text from alice's device until both
// other members' devices have stored it, over the real relay on loopback
// (bbolt stores, fsync on every commit). The chain is made and distributed
// before the timer starts.
func BenchmarkGroupSendReceive(b *testing.B) {
	s := newGroupScenario(b)
	ctx := context.Background()
	devs := []*device{s.phone("alice"), s.phone("bob"), s.phone("carol")}
	gid := s.create(devs[0], "bench", "bob", "carol")
	if _, err := devs[0].eng.SendGroupText(ctx, gid, "warm-up"); err != nil {
		b.Fatal(err)
	}
	for _, d := range devs[1:] {
		d.waitMessage(gid, "warm-up")
	}
	count := func(d *device) int {
		d.mu.Lock()
		defer d.mu.Unlock()
		n := 0
		for _, ev := range d.events {
			if ev.Type == "message" && ev.Chat == gid {
				n++
			}
		}
		return n
	}
	base := []int{count(devs[1]), count(devs[2])}
	b.ResetTimer()
	for i := range b.N {
		if _, err := devs[0].eng.SendGroupText(ctx, gid, fmt.Sprintf("bench %d", i)); err != nil {
			b.Fatal(err)
		}
		for j, d := range devs[1:] {
			deadline := time.Now().Add(10 * time.Second)
			for count(d) < base[j]+i+1 {
				if time.Now().After(deadline) {
					b.Fatalf("%s: message %d never arrived", d.name, i)
				}
				select {
				case <-d.notify:
				case <-time.After(time.Millisecond):
				}
			}
		}
	}
}

type recordConn struct {
	Conn
	sends [][]relay.Addr
}

func (c *recordConn) GroupSend(_ context.Context, _ [16]byte, _ []byte, to []relay.Addr) error {
	c.sends = append(c.sends, to)
	return nil
}

// TestGroupSendSplitsFanout: a group message too big for one GroupSend at
// full fan-out goes in several, each within the relay's bound, each with
// whole accounts and our own other devices.
func TestGroupSendSplitsFanout(t *testing.T) {
	e := &Engine{acct: &accountRecord{Handle: "alice"}}
	var targets []target
	add := func(h string, n int) {
		for i := range n {
			targets = append(targets, target{h, identity.DevicePublic{ID: identity.DeviceID{byte(len(targets)), byte(i)}}})
		}
	}
	add("alice", 2)
	for i := range MaxGroupMembers - 1 {
		add(fmt.Sprintf("user%03d", i), 16)
	}
	sealed := make([]byte, MaxTextLen+200)
	c := &recordConn{}
	if stale, err := e.groupSendLocked(context.Background(), c, MessageID{}, sealed, targets); stale || err != nil {
		t.Fatal(stale, err)
	}
	if len(c.sends) < 2 {
		t.Fatalf("%d sends", len(c.sends))
	}
	seen := map[relay.Addr]int{}
	for _, to := range c.sends {
		if len(to)*len(sealed) > relay.MaxFanoutBytes {
			t.Fatalf("a send of %d devices × %d bytes", len(to), len(sealed))
		}
		accounts := map[string]int{}
		for _, a := range to {
			seen[a]++
			accounts[a.Handle]++
		}
		if accounts["alice"] != 2 {
			t.Fatal("a send without our own other devices")
		}
		for h, n := range accounts {
			if h != "alice" && n != 16 {
				t.Fatalf("account %s split across sends", h)
			}
		}
	}
	for _, tg := range targets {
		if n := seen[relay.Addr{Handle: tg.handle, Device: tg.dev.ID}]; n == 0 || (tg.handle != "alice" && n != 1) {
			t.Fatalf("%s got %d copies", tg.handle, n)
		}
	}
	// A small message goes in one send.
	c = &recordConn{}
	e.groupSendLocked(context.Background(), c, MessageID{}, make([]byte, 200), targets)
	if len(c.sends) != 1 || len(c.sends[0]) != len(targets) {
		t.Fatalf("%d sends", len(c.sends))
	}
}

// TestGroupCompanionLinkedLater: a companion linked after the group was
// made learns the group from its own account's devices, gets the members'
// new chains (its arrival changes their device sets), and takes part.
func TestGroupCompanionLinkedLater(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, b := s.phone("alice"), s.phone("bob")
	gid := s.create(a, "early", "bob")
	s.send(b, "before the browser", a)

	a2 := newDevice(t, s.tr, "alice-browser")
	linkCompanion(t, a, a2, "Alice's browser")
	a2.run()
	if _, err := a.eng.SendGroupText(ctx, gid, "the phone greets the browser"); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, a2, gid, "admin", func(g Group) bool { return g.Admin })
	if g.Version != 2 || !g.Member {
		t.Fatalf("the companion sees %+v", g)
	}
	a2.waitMessage(gid, "the phone greets the browser")
	s.send(b, "bob sees a new device", a2)
	s.send(a2, "from the browser", b, a)
	// The companion, an admin now, changes the group with the phone off.
	a.stop()
	c := s.phone("carol")
	if err := a2.eng.AddMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{c, b} {
		waitGroup(t, d, gid, "carol a member", func(g Group) bool { return slices.Contains(g.Members, "carol") })
	}
	s.send(b, "hi carol", c, a2)
}

// TestGroupRekeyOnRevokedDevice: when a member revokes a companion, the
// next group message finds the relay's stale-set refusal, refreshes the
// lists and goes on a new chain the revoked device never got.
func TestGroupRekeyOnRevokedDevice(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a := s.phone("alice")
	ac := capture(a)
	a.run()
	b1, b2 := s.account("bob")
	gid := s.create(a, "pair", "bob")
	s.send(a, "to both of bob's devices", b1, b2)
	old := storedReceivers(t, b2, gid)
	if len(old) == 0 {
		t.Fatal("the companion holds no chain")
	}

	if err := b1.eng.RevokeDevice(ctx, b2.eng.Device().ID.String()); err != nil {
		t.Fatal(err)
	}
	id, err := a.eng.SendGroupText(ctx, gid, "after the revocation")
	if err != nil {
		t.Fatal(err)
	}
	b1.waitMessage(gid, "after the revocation")
	ct := ac.get(id)
	if len(ct) < 2 {
		t.Fatal("no ciphertext captured")
	}
	for _, r := range old {
		if _, err := r.Decrypt(ct[1:]); err == nil {
			t.Fatal("the revoked device's chain opens a later message")
		}
	}
}

// TestGroupMessageBeforeState: a member's chain and message reach a device
// before the group's state does (different senders, different paths); the
// message is kept and shown in the batch that accepts the state.
func TestGroupMessageBeforeState(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, b := s.phone("alice"), s.idlePhone("bob")
	gid := s.create(a, "late state", "bob")
	state := loadState(t, a, gid)
	id, _ := parseGroupRef(gid)
	chain, _ := senderkey.NewSender(nil, groupstate.ChainGroupID(id, 1))
	dist, _ := chain.Distribution().MarshalBinary()
	ct, err := chain.Encrypt((&payload{Kind: kindText, ID: MessageID{7}, SentAt: 7, Body: []byte("ahead of the state")}).marshal())
	if err != nil {
		t.Fatal(err)
	}
	from := a.eng.Device().ID
	// Bob is not running; the test plays his receive path in order.
	b.eng.mu.Lock()
	defer b.eng.mu.Unlock()
	var batch storage.Batch
	if _, err := b.eng.receiveSenderKeyLocked(ctx, &batch, &payload{Kind: kindSenderKey, Body: dist}, "alice", from); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.cfg.Store.Commit(ctx, &batch); err != nil {
		t.Fatal(err)
	}
	if _, err := b.eng.receiveLocked(ctx, &relay.Envelope{From: relay.Addr{Handle: "alice", Device: from}, MessageID: MessageID{7}, Payload: append([]byte{envGroup}, ct...)}); err != nil {
		t.Fatalf("a message before its group's state: %v", err)
	}
	if msgs, _ := b.eng.Messages(ctx, gid, "", 0); len(msgs) != 0 {
		t.Fatal("shown before the group's state")
	}
	batch = storage.Batch{}
	evs, err := b.eng.acceptGroupStateLocked(ctx, &batch, state.Raw(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.eng.cfg.Store.Commit(ctx, &batch); err != nil {
		t.Fatal(err)
	}
	msgs, _ := b.eng.Messages(ctx, gid, "", 0)
	if len(msgs) != 1 || msgs[0].Text != "ahead of the state" || msgs[0].From != "alice" || msgs[0].FromDevice != from.String() {
		t.Fatalf("after the state: %+v (events %+v)", msgs, evs)
	}
}

// TestGroupConcurrentChanges: two admin devices sign the same next
// version; members that get them in opposite orders keep the same one.
func TestGroupConcurrentChanges(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, b, c := s.phone("alice"), s.idlePhone("bob"), s.idlePhone("carol")
	gid := s.create(a, "forked", "bob", "carol")
	v1 := loadState(t, a, gid)
	fork := func(name string) []byte {
		g := v1.Next()
		g.Name, g.Admins = name, v1.Admins
		g.Sign(a.eng.dev)
		return g.Raw()
	}
	x, y := fork("X"), fork("Y")
	for _, tc := range []struct {
		d     *device
		order [][]byte
	}{{b, [][]byte{v1.Raw(), x, y}}, {c, [][]byte{v1.Raw(), y, x}}} {
		tc.d.eng.mu.Lock()
		for _, raw := range tc.order {
			var batch storage.Batch
			if _, err := tc.d.eng.acceptGroupStateLocked(ctx, &batch, raw, "alice"); err != nil && !errors.Is(err, ErrGroupChangeRefused) {
				t.Fatal(err)
			}
			if err := tc.d.eng.cfg.Store.Commit(ctx, &batch); err != nil {
				t.Fatal(err)
			}
		}
		tc.d.eng.mu.Unlock()
	}
	gb, gc := loadState(t, b, gid), loadState(t, c, gid)
	if gb.Version != 2 || !bytes.Equal(gb.Raw(), gc.Raw()) || !bytes.Equal(gb.Raw(), []byte(min(string(x), string(y)))) {
		t.Fatalf("bob keeps %q, carol keeps %q", gb.Name, gc.Name)
	}
}

// TestGroupRename: an admin device renames the group; every device of
// every member shows the new name (Groups and Chats), and no sender chain
// is remade, since the devices did not change. A member who is no admin
// cannot rename, a bad name is refused, and the same name again signs
// nothing.
func TestGroupRename(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a1, a2 := s.account("alice")
	b1, b2 := s.account("bob")
	c := s.phone("carol")
	all := []*device{a1, a2, b1, b2, c}
	gid := s.create(a1, "Book club", "bob", "carol")
	s.send(a1, "before the rename", all[1:]...)
	chain := senderChain(t, a1, gid)

	for _, bad := range []string{"", strings.Repeat("x", MaxGroupNameLen+1), "\xff"} {
		if err := a2.eng.RenameGroup(ctx, gid, bad); code(err) != "bad_name" {
			t.Fatalf("renaming to %q: %v", bad, err)
		}
	}
	if err := b1.eng.RenameGroup(ctx, gid, "Bob's club"); !errors.Is(err, ErrNotGroupAdmin) {
		t.Fatalf("bob renaming: %v", err)
	}
	// The companion renames, the primary being one of the receivers.
	if err := a2.eng.RenameGroup(ctx, gid, "Reading circle"); err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		g := waitGroup(t, d, gid, "the new name", func(g Group) bool { return g.Name == "Reading circle" })
		if g.Version != 2 || !slices.Equal(g.Members, []string{"alice", "bob", "carol"}) || g.Left {
			t.Fatalf("%s sees %+v", d.name, g)
		}
	}
	chats, err := c.eng.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chats) != 1 || chats[0].ID != gid || chats[0].Name != "Reading circle" {
		t.Fatalf("carol's chats: %+v", chats)
	}
	if err := a1.eng.RenameGroup(ctx, gid, "Reading circle"); err != nil {
		t.Fatal(err)
	}
	if g := loadState(t, a1, gid); g.Version != 2 {
		t.Fatalf("renaming to the same name signed version %d", g.Version)
	}

	s.send(a1, "after the rename", all[1:]...)
	if senderChain(t, a1, gid) != chain {
		t.Fatal("a rename remade the sender chain")
	}
}

// TestGroupLeave: a member who is no admin leaves from one device. Both of
// its devices stop sending at once (left_group) and keep the history; an
// admin device removes the member, and a second admin device that reads
// the same request later signs the same change, which no device reports
// as a conflict; the leaver's chains go and what the others send next is
// on chains it never gets. An admin cannot leave; a leave request
// replayed, malformed or sent by a non-member changes nothing; added
// again, the member takes part again.
func TestGroupLeave(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a1, a2 := s.account("alice")
	c1, c2 := s.account("carol")
	b, dave := s.phone("bob"), s.phone("dave")
	bobCap := capture(b)
	b.run()
	all := []*device{a1, a2, b, c1, c2}
	gid := s.create(a1, "Choir", "bob", "carol")
	id, _ := parseGroupRef(gid)
	s.send(b, "before carol leaves", a1, a2, c1, c2)
	before := map[*device][]*senderkey.Receiver{c1: storedReceivers(t, c1, gid), c2: storedReceivers(t, c2, gid)}

	for _, d := range []*device{a1, a2} {
		if err := d.eng.LeaveGroup(ctx, gid); !errors.Is(err, ErrAdminCannotLeave) {
			t.Fatalf("%s leaving: %v", d.name, err)
		}
	}
	// Nor can an admin remove itself (the check once looked at a state
	// without admins and let it through).
	if err := a1.eng.RemoveMember(ctx, gid, "alice"); code(err) != "cannot_remove_admin" {
		t.Fatalf("alice removing herself: %v", err)
	}
	if err := c1.eng.LeaveGroup(ctx, groupChatID(groupID{9})); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("leaving an unknown group: %v", err)
	}

	// Alice's browser is off: it reads the request after her phone has
	// acted on it, and acts on it too.
	a2.stop()
	// Carol's phone is offline when she leaves: a message it queued just
	// before fails rather than goes.
	c1.stop()
	c1.start()
	queued, err := c1.eng.SendGroupText(ctx, gid, "queued before leaving")
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.eng.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	c1.run()
	eventually(t, "the queued message failing", func() bool {
		msgs, err := c1.eng.Messages(ctx, gid, "", 0)
		return err == nil && slices.ContainsFunc(msgs, func(m Message) bool { return m.ID == queued && m.Status == "failed" })
	})
	for _, d := range []*device{c1, c2} {
		waitGroup(t, d, gid, "left", func(g Group) bool { return g.Left })
		if _, err := d.eng.SendGroupText(ctx, gid, "one more thing"); !errors.Is(err, ErrLeftGroup) {
			t.Fatalf("%s sending after leaving: %v", d.name, err)
		}
	}
	removed := func(g Group) bool { return g.Version == 2 && !slices.Contains(g.Members, "carol") }
	for _, d := range []*device{a1, b, c1, c2} {
		waitGroup(t, d, gid, "carol removed", removed)
	}
	a2.start()
	a2.run()
	waitGroup(t, a2, gid, "carol removed", removed)
	eventually(t, "every device holding the same version 2", func() bool {
		raw := loadState(t, a1, gid).Raw()
		for _, d := range all {
			if !bytes.Equal(loadState(t, d, gid).Raw(), raw) {
				return false
			}
		}
		return true
	})
	for _, d := range []*device{c1, c2} {
		g := waitGroup(t, d, gid, "removed", func(Group) bool { return true })
		if g.Member || !g.Left {
			t.Fatalf("%s sees %+v", d.name, g)
		}
		if n := len(storedReceivers(t, d, gid)); n != 0 {
			t.Fatalf("%s keeps %d chains after leaving", d.name, n)
		}
		if _, err := d.eng.SendGroupText(ctx, gid, "one more thing"); !errors.Is(err, ErrLeftGroup) {
			t.Fatalf("%s sending after its removal: %v", d.name, err)
		}
		if !hasMessage(t, d, gid, "before carol leaves") {
			t.Fatalf("%s lost the history", d.name)
		}
	}

	// What bob sends next is on a chain carol's devices never get.
	secretID, err := b.eng.SendGroupText(ctx, gid, "after carol left")
	if err != nil {
		t.Fatal(err)
	}
	a1.waitMessage(gid, "after carol left")
	a2.waitMessage(gid, "after carol left")
	secret := bobCap.get(secretID)
	if len(secret) < 2 {
		t.Fatal("no ciphertext captured")
	}
	for d, rs := range before {
		for _, r := range rs {
			if _, err := r.Decrypt(secret[1:]); err == nil {
				t.Fatalf("%s's old chain opened a message sent after it left", d.name)
			}
		}
		if hasMessage(t, d, gid, "after carol left") {
			t.Fatalf("%s stored a message sent after it left", d.name)
		}
	}

	// The same request again, one from an account never in the group,
	// and a malformed one from a member: nothing changes. A body without
	// the version, or with a byte too many, is malformed.
	for _, body := range [][]byte{groupstate.LeaveBody(id, 1), id[:], append(groupstate.LeaveBody(id, 1), 0)} {
		a1.eng.mu.Lock()
		var batch storage.Batch
		evs, err := a1.eng.receiveGroupLeaveLocked(ctx, &batch, &payload{Kind: kindGroupLeave, Body: body}, "carol")
		a1.eng.mu.Unlock()
		if len(body) != groupstate.LeaveBodySize {
			if err != nil || len(evs) != 1 || evs[0].Code != "malformed" || batch.Len() != 0 {
				t.Fatalf("a leave request of %d bytes: events %+v, %d writes, %v", len(body), evs, batch.Len(), err)
			}
		} else if err != nil || len(evs) != 0 || batch.Len() != 0 {
			t.Fatalf("a replayed leave request: events %+v, %d writes, %v", evs, batch.Len(), err)
		}
	}
	queueForged(t, c1, kindGroupLeave, "alice", groupstate.LeaveBody(id, 2))
	queueForged(t, dave, kindGroupLeave, "alice", groupstate.LeaveBody(id, 2))
	queueForged(t, b, kindGroupLeave, "alice", []byte("short"))
	for _, d := range []*device{c1, dave} {
		if _, err := d.eng.SendText(ctx, "alice", "after the request from "+d.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*device{a1, a2} {
		d.waitMessage("carol", "after the request from carol-phone")
		d.waitMessage("dave", "after the request from dave")
		eventually(t, d.name+" reporting the malformed request", func() bool { return d.hasEvent("error", "malformed") })
	}
	for _, d := range []*device{a1, a2, b} {
		if g := loadState(t, d, gid); g.Version != 2 || !slices.Equal(g.Members, []string{"alice", "bob"}) {
			t.Fatalf("%s holds version %d with %v", d.name, g.Version, g.Members)
		}
		if hasMessage(t, d, gid, "queued before leaving") {
			t.Fatalf("%s got the message carol queued before leaving", d.name)
		}
	}
	for _, d := range all {
		if n := countEvents(d, "error", ErrGroupChangeRefused.Code); n != 0 {
			t.Fatalf("%s reported %d refused group changes", d.name, n)
		}
	}

	// Added again, carol is no longer marked left and sends again.
	if err := a1.eng.AddMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{c1, c2} {
		waitGroup(t, d, gid, "a member again", func(g Group) bool { return g.Member && !g.Left })
	}
	s.send(c2, "carol is back", b, a2)
}

// TestGroupLeaveStaleRequest: carol leaves from her phone while it is
// offline and alice's browser is off, so the request waits in the phone's
// outbox; meanwhile alice's phone removes carol and adds her again. When
// the phone comes online the request (made at version 1) reaches alice's
// devices — the browser after both changes — and carol's browser: every
// one of them ignores it as older than carol's return, so carol stays a
// member, not marked left, on every device, all of which hold the same
// version 3, and what she sends is read.
func TestGroupLeaveStaleRequest(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a1, a2 := s.account("alice")
	c1, c2 := s.account("carol")
	b := s.phone("bob")
	all := []*device{a1, a2, b, c1, c2}
	gid := s.create(a1, "Choir", "bob", "carol")

	a2.stop()
	c1.stop()
	c1.start()
	if err := c1.eng.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if err := a1.eng.RemoveMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := a1.eng.AddMember(ctx, gid, "carol"); err != nil {
		t.Fatal(err)
	}
	back := func(g Group) bool {
		return g.Version == 3 && slices.Equal(g.Members, []string{"alice", "bob", "carol"}) && g.Member && !g.Left
	}
	for _, d := range []*device{b, c2} {
		waitGroup(t, d, gid, "carol back", func(g Group) bool { return g.Version == 3 })
	}

	// The phone comes online: the stale request leaves, and a message
	// behind it tells when each device has read it.
	c1.run()
	if _, err := c1.eng.SendText(ctx, "alice", "after the stale request"); err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("carol", "after the stale request")
	c2.waitMessage("alice", "after the stale request")
	a2.start()
	a2.run()
	a2.waitMessage("carol", "after the stale request")
	for _, d := range all {
		if g := waitGroup(t, d, gid, "carol back", func(Group) bool { return true }); !back(g) {
			t.Fatalf("%s sees %+v after the stale request", d.name, g)
		}
	}
	eventually(t, "every device holding the same version 3", func() bool {
		raw := loadState(t, a1, gid).Raw()
		for _, d := range all {
			if !bytes.Equal(loadState(t, d, gid).Raw(), raw) {
				return false
			}
		}
		return true
	})

	s.send(c2, "still here", a1, a2, b, c1)
	for _, d := range all {
		if g := loadState(t, d, gid); g.Version != 3 || !g.IsMember("carol") {
			t.Fatalf("%s holds version %d with %v", d.name, g.Version, g.Members)
		}
		if n := countEvents(d, "error", ErrGroupChangeRefused.Code); n != 0 {
			t.Fatalf("%s reported %d refused group changes", d.name, n)
		}
	}
}

// TestGroupLeaveReachesLaterCompanion: carol asks to leave while the
// group's only admin device is off, then links a browser. The browser
// learns the group from her phone and must know she left it: it shows the
// group left and sends nothing to it, though no admin has removed her yet.
func TestGroupLeaveReachesLaterCompanion(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a, c1 := s.phone("alice"), s.phone("carol-phone")
	gid := s.create(a, "Choir", "carol-phone")
	a.stop()
	if err := c1.eng.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	c2 := newDevice(t, s.tr, "carol-browser")
	linkCompanion(t, c1, c2, "carol's browser")
	c2.run()
	g := waitGroup(t, c2, gid, "left", func(g Group) bool { return g.Left })
	if !g.Member || g.Version != 1 {
		t.Fatalf("the browser sees %+v, want still a member at version 1 (no admin acted)", g)
	}
	if _, err := c2.eng.SendGroupText(ctx, gid, "from the new browser"); !errors.Is(err, ErrLeftGroup) {
		t.Fatalf("the browser sending to a group its account left: %v", err)
	}
}

// TestGroupLeaveLateAdminDevice: alice's browser, an admin device, is off
// while her phone carries out carol's leave request and then renames the
// group. Back on, the browser reads the request first and signs its own
// removal of carol, a version behind what everyone holds by then. That
// stale state changes nothing and must not be reported as a refused
// change; an old state that would bring carol back still is.
func TestGroupLeaveLateAdminDevice(t *testing.T) {
	s := newGroupScenario(t)
	ctx := s.ctx
	a1, a2 := s.account("alice")
	b, c := s.phone("bob"), s.phone("carol")
	gid := s.create(a1, "Choir", "bob", "carol")
	v1 := loadStateV1(t, a1, gid)
	a2.stop()
	if err := c.eng.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, a1, gid, "carol removed", func(g Group) bool { return g.Version == 2 })
	if err := a1.eng.RenameGroup(ctx, gid, "Chamber choir"); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, b, gid, "renamed", func(g Group) bool { return g.Version == 3 })
	a2.start()
	a2.run()
	waitGroup(t, a2, gid, "renamed", func(g Group) bool { return g.Version == 3 })
	// What alice's browser sends bob after it caught up reaches him after
	// its stale removal of carol (one pairwise outbox, one mailbox).
	if _, err := a2.eng.SendText(ctx, "bob", "caught up"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("alice", "caught up")
	for _, d := range []*device{a1, b} {
		if n := countEvents(d, "error", ErrGroupChangeRefused.Code); n != 0 {
			t.Fatalf("%s reported %d refused group changes for a late admin device's stale state", d.name, n)
		}
		if g := loadState(t, d, gid); g.Version != 3 || g.Name != "Chamber choir" {
			t.Fatalf("%s holds version %d %q", d.name, g.Version, g.Name)
		}
	}
	// The old state with carol in it, replayed, is still reported.
	queueForged(t, a2, kindGroupState, "bob", v1)
	eventually(t, "bob reporting the replayed version 1", func() bool {
		return countEvents(b, "error", ErrGroupChangeRefused.Code) == 1
	})
	if g := loadState(t, b, gid); g.Version != 3 {
		t.Fatalf("bob went back to version %d", g.Version)
	}
}
