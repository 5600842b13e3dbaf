package e2e

import (
	"fmt"
	"testing"
)

// inView is a JS condition: the element is shown whole inside the viewport
// with the page scrolled to its top, so a person sees it without
// scrolling.
func inView(sel string) string {
	return fmt.Sprintf(`(() => {
	  const e = document.querySelector(%q);
	  if (!e || e.getClientRects().length === 0) return false;
	  const r = e.getBoundingClientRect();
	  return window.scrollY === 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
	})()`, sel)
}

// scrollTop puts the page back at its top, as it is when a screen opens.
func scrollTop(t *testing.T, b *Browser) {
	t.Helper()
	MustEval[bool](b, `window.scrollTo(0, 0); document.activeElement && document.activeElement.blur(); true`)
}

// TestUILinkFinishesTheStory: Alice links her phone-sized browser (issue
// 15 item 7). Once her primary answered, the used QR code is gone and the
// check code is on the phone's screen without scrolling (small phones
// too); once linked, the page says "Linked as alice — 3 messages of
// history received" and waits for her to open the chats. Before the fix
// the check code sat below the steps, and the page jumped straight into
// the chat list with nothing said about the history.
func TestUILinkFinishesTheStory(t *testing.T) {
	srv := StartServer(t)
	NativeDevice(t, srv, "bob") // someone to have a history with
	a1 := NewBrowser(t)
	desktop(t, a1)
	createAccountUI(t, a1, srv.URL, "alice", "Alice's phone")
	for i := 1; i <= 3; i++ {
		MustEval[map[string]any](a1, fmt.Sprintf(`window.parley.send('bob', 'history %d')`, i))
	}

	a2 := NewBrowser(t)
	phone(t, a2)
	payload := startLinkUI(t, a2, srv.URL, "Alice's browser")
	pasteLinkCode(t, a1, payload)
	waitUI(t, a2, "the check code", visible("#link-check-code")+` && document.getElementById('link-check-code').textContent !== ''`)
	if MustEval[bool](a2, visible("#link-qr")+` || `+visible("#link-payload")) {
		t.Fatal("the used QR code is still shown after the primary answered")
	}
	for _, size := range [][2]int64{{390, 844}, {360, 640}} {
		viewport(t, a2, size[0], size[1])
		scrollTop(t, a2)
		if !MustEval[bool](a2, inView("#link-check-code")+` && `+inView("#btn-link-code-confirm")) {
			r := MustEval[string](a2, `JSON.stringify(document.getElementById('link-check-code').getBoundingClientRect())`)
			t.Fatalf("at %dx%d the check code and its Confirm button are not both on screen without scrolling: the code is at %s", size[0], size[1], r)
		}
	}
	screenshot(t, a2, "link-check-phone", 390, 844)
	screenshot(t, a2, "link-check-small-phone", 360, 640)
	screenshot(t, a2, "link-check-desktop", 1280, 800)
	phone(t, a2)
	click(t, a2, "#btn-link-code-confirm")

	// The primary, at phone size too: its code is on screen as it asks.
	waitUI(t, a1, "the primary asking to confirm", visible("#btn-approve-confirm"))
	viewport(t, a1, 360, 640)
	scrollTop(t, a1)
	if !MustEval[bool](a1, inView("#approve-code")+` && `+inView("#btn-approve-confirm")) {
		t.Fatal("on a small phone the primary's check code and its confirm button are not both on screen without scrolling")
	}
	screenshot(t, a1, "link-approve-small-phone", 360, 640)
	desktop(t, a1)
	click(t, a1, "#btn-approve-confirm")

	const want = "Linked as alice — 3 messages of history received"
	waitUI(t, a2, "the success screen", visible("#link-done")+` && document.getElementById('link-done').innerText.includes(`+jsString(want)+`)`)
	if MustEval[bool](a2, visible("#view-main")) {
		t.Fatal("the chat list replaced the success screen before Alice asked for it")
	}
	screenshot(t, a2, "link-done-phone", 390, 844)
	screenshot(t, a2, "link-done-desktop", 1280, 800)
	phone(t, a2)
	checkAxe(t, a2, "linked")
	click(t, a2, "#btn-link-done")
	waitUI(t, a2, "the chats", visible("#view-main")+` && document.getElementById('me').textContent === 'alice' && !!document.querySelector('#chat-list [data-chat="bob"]')`)
	if n := MustEval[int](a2, `window.parley.messages('bob', {limit: 10}).then((ms) => ms.length)`); n != 3 {
		t.Fatalf("the linked browser holds %d messages with bob, want the 3 of the history", n)
	}
}
