package e2e

import (
	"testing"
)

// The composer's everyday behaviour (issue 15): drafts, its growth, and
// what it says about handles.

// openChatUI opens the chat with handle through New chat, as a person
// does when the chat is not in the list yet.
func openChatUI(t *testing.T, b *Browser, handle string) {
	t.Helper()
	click(t, b, "#btn-new-chat")
	waitUI(t, b, "the new chat pane", visible("#newchat-handle"))
	typeInto(t, b, "#newchat-handle", handle)
	click(t, b, "#form-newchat button[type=submit]")
	waitUI(t, b, "the chat with "+handle, visible("#composer-text")+` && document.getElementById('chat-title').textContent === `+jsString(handle))
}

// TestUIDraftDoesNotFollowIntoAnotherChat: text typed in one chat and not
// sent stays with that chat. Opening another chat shows that chat's own
// (empty) composer, so a private line cannot be sent to a group by
// mistake; the first chat's draft is back when it is opened again, also
// after a reload, and sending it clears it.
func TestUIDraftDoesNotFollowIntoAnotherChat(t *testing.T) {
	srv := StartServer(t)
	NativeDevice(t, srv, "bob")
	NativeDevice(t, srv, "carol")
	a := NewBrowser(t)
	desktop(t, a)
	createAccountUI(t, a, srv.URL, "alice", "Alice's browser")

	composer := func() string { return MustEval[string](a, `document.getElementById('composer-text').value`) }
	openChatUI(t, a, "bob")
	typeInto(t, a, "#composer-text", "only for bob")
	openChatUI(t, a, "carol")
	if got := composer(); got != "" {
		t.Fatalf("carol's composer holds %q, typed in bob's chat", got)
	}
	typeInto(t, a, "#composer-text", "for carol")
	openChatUI(t, a, "bob")
	if got := composer(); got != "only for bob" {
		t.Fatalf("bob's draft is %q back in his chat, want %q", got, "only for bob")
	}

	a.Navigate(srv.URL)
	waitOnline(t, a)
	openChatUI(t, a, "carol")
	if got := composer(); got != "for carol" {
		t.Fatalf("carol's draft after a reload is %q, want %q", got, "for carol")
	}
	click(t, a, "#composer-send")
	waitUI(t, a, "the sent draft", `document.getElementById('message-list').innerText.includes('for carol')`)
	openChatUI(t, a, "bob")
	openChatUI(t, a, "carol")
	if got := composer(); got != "" {
		t.Fatalf("carol's composer holds %q after the draft was sent", got)
	}

	// Once a lock is set, no draft stays in the profile in plaintext:
	// they are kept in the tab's memory only, and locking drops them.
	typeInto(t, a, "#composer-text", "a draft worth locking")
	stored := `(localStorage.getItem('parley.drafts') || '').includes('a draft worth locking')`
	if !MustEval[bool](a, stored) {
		t.Fatal("without a lock, the draft is not kept for a reload")
	}
	click(t, a, "#btn-settings")
	click(t, a, "#lock-passphrase")
	typeInto(t, a, "#lock-pass1", "correct horse battery")
	typeInto(t, a, "#lock-pass2", "correct horse battery")
	click(t, a, "#form-lock button[type=submit]")
	waitUI(t, a, "the lock saved", `document.getElementById('lock-status').textContent.includes('locked with a passphrase')`)
	if MustEval[bool](a, stored) {
		t.Fatal("with a lock set, the draft is still in localStorage in plaintext")
	}
	openChatUI(t, a, "carol")
	if got := composer(); got != "a draft worth locking" {
		t.Fatalf("with a lock set, the draft in memory is %q", got)
	}
	click(t, a, "#btn-settings")
	click(t, a, "#btn-lock-now")
	waitUI(t, a, "the locked screen", visible("#unlock-passphrase"))
	typeInto(t, a, "#unlock-passphrase", "correct horse battery")
	click(t, a, "#form-unlock-passphrase button[type=submit]")
	waitUI(t, a, "the chats again", visible("#view-main"))
	openChatUI(t, a, "carol")
	if got := composer(); got != "" {
		t.Fatalf("a draft %q outlived the lock", got)
	}
}

// waitOnline waits until the page is connected and its offline banner
// gone: that banner shows while a reloaded page connects and moves every
// control below it, so a click aimed before it goes misses.
func waitOnline(t *testing.T, b *Browser) {
	t.Helper()
	waitUI(t, b, "the page online", `window.parley.state().then((s) => s.status === 'ready' && s.online === true && `+
		`document.getElementById('banner-offline').hidden && !!document.getElementById('me').textContent)`)
}
