package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
)

// TestUIGroupRenameAndLeave: in Chromium, an admin renames a group through
// window.parley.renameGroup and a native member shows the new name; in a
// group a native account administers, the browser's account, a member,
// cannot rename, leaves through window.parley.leaveGroup, can no longer
// send (left_group), and is removed by the admin's device. The group pane
// offers renaming to the admin only and leaving to the member only.
func TestUIGroupRenameAndLeave(t *testing.T) {
	srv := StartTestServer(t)
	ctx := context.Background()
	bob := NativeDevice(t, srv, "bob")
	alice := NewBrowser(t)
	ready(t, alice, srv.URL)
	MustEval[map[string]any](alice, `window.parley.createAccount('alice', "Alice's browser")`)

	// rejects evaluates a window.parley call and returns the code it
	// rejected with ("" if it resolved).
	rejects := func(call string) string {
		t.Helper()
		return MustEval[string](alice, call+`.then(() => '', (e) => e.code || String(e))`)
	}
	// nativeGroup waits until bob's engine holds group id in a state
	// satisfying ok.
	nativeGroup := func(id, what string, ok func(client.Group) bool) client.Group {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			gs, err := bob.Groups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gs {
				if g.ID == id && ok(g) {
					return g
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob's group %s never reached %s (have %+v)", id, what, gs)
			}
		}
	}
	// groupPane opens a group's info pane from the chat list.
	groupPane := func(id string) {
		t.Helper()
		click(t, alice, fmt.Sprintf(`#chat-list [data-chat=%q]`, id))
		click(t, alice, "#btn-contact")
	}

	// Alice's group: renamed in the browser, shown by bob's engine.
	own := MustEval[map[string]string](alice, `window.parley.createGroup('Garden', ['bob'])`)["id"]
	nativeGroup(own, "version 1", func(g client.Group) bool { return g.Version == 1 })
	if code := rejects(fmt.Sprintf(`window.parley.renameGroup(%q, '')`, own)); code != "bad_name" {
		t.Fatalf("an empty name: %q", code)
	}
	if code := rejects(fmt.Sprintf(`window.parley.renameGroup(%q, 'Allotment')`, own)); code != "" {
		t.Fatalf("renaming: %q", code)
	}
	nativeGroup(own, "the new name", func(g client.Group) bool { return g.Name == "Allotment" && g.Version == 2 })
	if code := rejects(fmt.Sprintf(`window.parley.leaveGroup(%q)`, own)); code != "admin_cannot_leave" {
		t.Fatalf("the admin leaving: %q", code)
	}
	groupPane(own)
	waitUI(t, alice, "the admin's group pane offering a rename, not leaving", visible("#form-group-rename")+` && !`+visible("#btn-group-leave")+
		` && document.getElementById('group-rename-name').value === 'Allotment' && document.getElementById('group-title').textContent === 'Allotment'`)
	screenshot(t, alice, "group-admin-desktop", 1280, 800)
	// A group with no message yet says nothing under its name (it used
	// to say "Attachment").
	if last := MustEval[string](alice, fmt.Sprintf(`document.querySelector('#chat-list [data-chat=%q] .chat-last').textContent`, own)); last != "" {
		t.Fatalf("the new group's chat list entry says %q", last)
	}

	// Bob's group: alice is a member who is no admin.
	theirs, err := bob.CreateGroup(ctx, "Five-a-side", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !WaitFor(alice, fmt.Sprintf(`window.parley.groups().then((gs) => gs.some((g) => g.id === %q && g.member))`, theirs), 10*time.Second) {
		t.Fatal("alice never got bob's group")
	}
	if code := rejects(fmt.Sprintf(`window.parley.renameGroup(%q, 'Alice FC')`, theirs)); code != "not_group_admin" {
		t.Fatalf("a member renaming: %q", code)
	}
	groupPane(theirs)
	waitUI(t, alice, "the member's group pane offering to leave, not a rename", visible("#btn-group-leave")+` && !`+visible("#form-group-rename"))
	screenshot(t, alice, "group-member-phone", 390, 844)
	// The page asks first; cancelled, nothing happens.
	click(t, alice, "#btn-group-leave")
	waitUI(t, alice, "the confirm step", visible("#confirm")+` && document.getElementById('confirm-title').textContent.startsWith('Leave')`)
	click(t, alice, "#confirm-cancel")
	if MustEval[bool](alice, fmt.Sprintf(`window.parley.groups().then((gs) => gs.some((g) => g.id === %q && g.left))`, theirs)) {
		t.Fatal("cancelling the confirm step left the group")
	}
	if code := rejects(fmt.Sprintf(`window.parley.leaveGroup(%q)`, theirs)); code != "" {
		t.Fatalf("leaving: %q", code)
	}
	if code := rejects(fmt.Sprintf(`window.parley.send(%q, 'still here?')`, theirs)); code != "left_group" {
		t.Fatalf("sending after leaving: %q", code)
	}
	g := nativeGroup(theirs, "alice removed", func(g client.Group) bool { return !slices.Contains(g.Members, "alice") })
	if g.Version != 2 || !slices.Equal(g.Members, []string{"bob"}) {
		t.Fatalf("bob's group after alice left: %+v", g)
	}
	if !WaitFor(alice, fmt.Sprintf(`window.parley.groups().then((gs) => gs.some((g) => g.id === %q && g.left && !g.member && g.version === 2))`, theirs), 10*time.Second) {
		t.Fatal("alice's browser never saw its removal")
	}
	waitUI(t, alice, "the group pane saying alice left", `!`+visible("#btn-group-leave")+` && document.getElementById('group-note').textContent.startsWith('You left this group')`)
}
