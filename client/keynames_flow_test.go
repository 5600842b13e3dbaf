//go:build !js

package client

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/keyname"
)

// TestCopiedProfileListsNoContact is issue 20 item 6 against the engine:
// alice and bob talk pairwise and in a group, with a contact name and a
// muted chat synced; with the engine's store behind the naming layer and
// KeyNameRules, no stored key of alice's names bob's handle, his device
// or the group, and the engine still works after a restart (Scans of
// chats, history pages, sessions and groups through the layer).
func TestCopiedProfileListsNoContact(t *testing.T) {
	tr := startRelay(t, nil)
	var nk [keyname.KeySize]byte
	nk[0] = 7
	named := func(d *device) {
		d.wrapStore = func(s storage.Store) storage.Store { return keyname.New(s, &nk, KeyNameRules()) }
	}
	account := func(name string) *device {
		d := newDevice(t, tr, name, named)
		if err := d.eng.CreateAccount(ctxT(t), name, name); err != nil {
			t.Fatal(err)
		}
		d.run()
		return d
	}
	alice, bob := account("alice"), account("bob")
	ctx := ctxT(t)
	if _, err := alice.eng.SendText(ctx, "bob", "hi bob"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "hi bob")
	if _, err := bob.eng.SendText(ctx, "alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "hi alice")
	gid, err := alice.eng.CreateGroup(ctx, "the group", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	waitGroup(t, bob, gid, "version 1", func(g Group) bool { return g.Version == 1 })
	if _, err := bob.eng.SendGroupText(ctx, gid, "hello group"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage(gid, "hello group")
	if err := alice.eng.SetContactName(ctx, "bob", "Bobby"); err != nil {
		t.Fatal(err)
	}
	if err := alice.eng.SetChatMuted(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}

	alice.restart()
	chats, err := alice.eng.Chats(ctx)
	if err != nil || len(chats) != 2 {
		t.Fatalf("after a restart alice has chats %+v, %v; want bob's and the group", chats, err)
	}
	msgs, err := alice.eng.Messages(ctx, "bob", "", 1)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "hi alice" {
		t.Fatalf("the last page of bob's chat is %+v, %v", msgs, err)
	}
	older, err := alice.eng.Messages(ctx, "bob", msgs[0].ID, 10)
	if err != nil || len(older) != 1 || older[0].Text != "hi bob" {
		t.Fatalf("the page before it is %+v, %v", older, err)
	}
	if _, err := alice.eng.SendText(ctx, "bob", "after restart"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "after restart")

	secrets := []string{"bob", bob.eng.Device().ID.String(), gid}
	n := 0
	for _, b := range []string{bLists, bSessions, bMessages, bChats, bGroups, bGroupSender, bGroupRecv, bGroupChains, bGroupJoined, bGroupLeft, bGroupPend, bPrekeys, bSync} {
		err := alice.store.Scan(context.Background(), b, "", storage.ScanOptions{}, func(k string, _ []byte) error {
			n++
			for _, s := range secrets {
				if strings.Contains(k, s) {
					t.Errorf("alice's stored key %s/%q names %q", b, k, s)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 10 {
		t.Fatalf("only %d stored keys in the named buckets", n)
	}
}
