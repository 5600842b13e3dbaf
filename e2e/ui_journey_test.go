package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestUIJourney is a person's first day, only through the page: Alice
// creates her account on A1, links A2 by pasting its link code into A1 and
// comparing check codes, closes A1, and talks to Bob from A2; the ticks
// turn to read when Bob opens the chat. Screenshots of each main screen,
// at desktop and phone width, are saved for review (PARLEY_SCREENSHOTS).
func TestUIJourney(t *testing.T) {
	srv := StartServer(t)
	a1 := NewBrowser(t)
	desktop(t, a1)
	a1.Navigate(srv.URL)
	waitUI(t, a1, "onboarding", visible("#form-create"))
	screenshot(t, a1, "onboarding-desktop", 1280, 800)
	screenshot(t, a1, "onboarding-phone", 390, 844)
	desktop(t, a1)
	checkAccessible(t, a1, []string{"#create-handle", "#create-device", "#form-create button", "#link-device", "#form-link button"})

	createAccountUI(t, a1, srv.URL, "alice", "Alice's phone")
	b := NewBrowser(t)
	phone(t, b)
	createAccountUI(t, b, srv.URL, "bob", "Bob's laptop")

	// A2 asks to be linked and shows its code.
	a2 := NewBrowser(t)
	desktop(t, a2)
	payload := startLinkUI(t, a2, srv.URL, "Alice's browser")
	screenshot(t, a2, "link-code-desktop", 1280, 800)

	// A1 pastes it and shows the check code at once; A2 shows the same
	// code and asks Alice to confirm it there first (PROTOCOL.md 7.5).
	click(t, a1, "#btn-link-device")
	pasteInto(t, a1, "#approve-payload", payload)
	click(t, a1, "#form-approve button[type=submit]")
	waitUI(t, a1, "the check code on the primary", visible("#approve-code")+` && document.getElementById('approve-code').textContent !== ''`)
	code := textOf(t, a1, "#approve-code")
	waitUI(t, a2, "the check code on the companion, with Confirm and Cancel", visible("#link-check-code")+` && `+visible("#btn-link-code-confirm")+` && `+visible("#btn-link-code-reject"))
	if got := textOf(t, a2, "#link-check-code"); got != code {
		t.Fatalf("check codes differ: primary %q, companion %q", code, got)
	}
	if MustEval[bool](a1, visible("#btn-approve-confirm")) {
		t.Fatal("the primary offers to confirm before the companion has")
	}
	screenshot(t, a1, "link-wait-companion-desktop", 1280, 800)
	screenshot(t, a2, "link-confirm-desktop", 1280, 800)
	screenshot(t, a2, "link-confirm-phone", 390, 844)
	desktop(t, a2)
	click(t, a2, "#btn-link-code-confirm")
	waitUI(t, a2, "the companion waiting for the primary", visible("#link-check-wait"))

	// Now A1 sees the new device's name and asks in turn.
	waitUI(t, a1, "the new device's name on the primary", visible("#approve-name")+` && `+visible("#btn-approve-confirm"))
	if name := textOf(t, a1, "#approve-name"); name != "Alice's browser" {
		t.Fatalf("primary shows device name %q", name)
	}
	screenshot(t, a1, "link-approve-desktop", 1280, 800)
	click(t, a1, "#btn-approve-confirm")
	waitUI(t, a1, "linked", `document.getElementById('approve-status').textContent.includes('is linked')`)
	waitUI(t, a2, "A2's success screen", visible("#btn-link-done"))
	click(t, a2, "#btn-link-done")
	waitUI(t, a2, "A2's chat list", visible("#view-main")+` && document.getElementById('me').textContent === 'alice'`)

	// The phone writes to Bob; the browser shows it as Alice's, sent from
	// her phone.
	click(t, a1, "#btn-new-chat")
	typeInto(t, a1, "#newchat-handle", "bob")
	click(t, a1, "#form-newchat button[type=submit]")
	typeInto(t, a1, "#composer-text", "from my phone")
	click(t, a1, "#composer-send")
	waitUI(t, a2, "the phone's message on the browser", `!!document.querySelector('#chat-list [data-chat="bob"]')`)
	click(t, a2, `#chat-list [data-chat="bob"]`)
	waitUI(t, a2, "the sending device", `[...document.querySelectorAll('#message-list .msg.out')].some(m => m.innerText.includes('from my phone') && m.querySelector('.via') && m.querySelector('.via').textContent.includes("Alice's phone"))`)

	// The primary's device list: both devices, a revoke button for A2.
	click(t, a1, "#btn-devices")
	waitUI(t, a1, "the device list", `document.querySelectorAll('#device-list li').length === 2`)
	if txt := textOf(t, a1, "#device-list"); !strings.Contains(txt, "Alice's browser") || !strings.Contains(txt, "This device") || !strings.Contains(txt, "Works until") {
		t.Fatalf("device list shows %q", txt)
	}
	screenshot(t, a1, "devices-desktop", 1280, 800)
	a1.Close() // the primary goes away

	// A2 writes to Bob in the same chat.
	waitUI(t, a2, "the conversation", visible("#composer-text")+` && document.getElementById('chat-title').textContent === 'bob'`)
	typeInto(t, a2, "#composer-text", "hi bob, from my browser")
	click(t, a2, "#composer-send")
	waitUI(t, a2, "the sent bubble", `[...document.querySelectorAll('#message-list .msg.out')].some(m => m.innerText.includes('hi bob, from my browser'))`)

	// Bob sees an unread chat from alice, opens it, reads, replies.
	waitUI(t, b, "alice's chat with an unread badge", `!!document.querySelector('#chat-list [data-chat="alice"] .badge')`)
	waitUI(t, b, "the unread count in the title", `document.title === '(' + parseInt(document.querySelector('#chat-list [data-chat="alice"] .badge').textContent, 10) + ') Parley'`)
	screenshot(t, b, "chat-list-phone", 390, 844)
	click(t, b, `#chat-list [data-chat="alice"]`)
	waitUI(t, b, "alice's message", `document.getElementById('message-list').innerText.includes('hi bob, from my browser')`)
	waitUI(t, b, "the title without an unread count once read", `document.title === 'Parley'`)
	typeInto(t, b, "#composer-text", "hello alice")
	if err := b.Do(chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitUI(t, a2, "Bob's reply", `document.getElementById('message-list').innerText.includes('hello alice')`)
	waitUI(t, a2, "the read ticks", `[...document.querySelectorAll('#message-list .msg.out')].some(m => m.innerText.includes('hi bob') && m.querySelector('.tick[data-status="read"]'))`)

	// An image through the attach button: Bob sees its preview.
	icon, err := filepath.Abs("../web/icons/icon-192.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{icon})); err != nil {
		t.Fatalf("attach: %v", err)
	}
	waitUI(t, b, "the image preview", `(() => { const i = document.querySelector('#message-list img.preview'); return !!i && i.complete && i.naturalWidth === 192; })()`)
	screenshot(t, b, "conversation-phone", 390, 844)
	screenshot(t, a2, "conversation-desktop", 1280, 800)
	darkScreenshot(t, a2, "conversation-dark-desktop")

	// A group, made from the page; Bob sees it by its name.
	newGroupUI(t, a2, "Weekend plans", "bob")
	typeInto(t, a2, "#composer-text", "saturday?")
	click(t, a2, "#composer-send")
	waitUI(t, b, "the group in Bob's list", `[...document.querySelectorAll('#chat-list .chat-item')].some(c => c.innerText.includes('Weekend plans') && c.innerText.includes('saturday?'))`)
	click(t, a2, "#btn-contact")
	waitUI(t, a2, "the group's members", `(() => { const t = document.getElementById('group-members').innerText; return t.includes('alice (you)') && t.includes('bob'); })()`)
	if !MustEval[bool](a2, visible(`#group-members button[aria-label="Remove bob"]`)+` && `+visible("#group-add-handle")) {
		t.Fatalf("the group's creator is not offered to change its members")
	}
	click(t, a2, "#pane-group .back")
	waitUI(t, a2, "back in the group", visible("#composer-text")+` && document.getElementById('chat-title').textContent === 'Weekend plans'`)

	// The main screen's controls are reachable by Tab, in order.
	checkAccessible(t, a2, []string{"#btn-new-chat", "#btn-new-group", `#chat-list [data-chat="bob"]`, "#btn-devices", "#btn-settings"})

	// Contact info: the safety number as digits and QR.
	click(t, a2, `#chat-list [data-chat="bob"]`)
	click(t, a2, "#btn-contact")
	waitUI(t, a2, "the safety number", `/^[0-9 ]{20,}$/.test(document.getElementById('contact-digits').textContent) && !!document.getElementById('contact-qr').src`)
	screenshot(t, a2, "safety-number-desktop", 1280, 800)
	screenshot(t, a2, "safety-number-phone", 390, 844)
	click(t, a2, "#pane-contact .back")
	waitUI(t, a2, "back in the conversation", visible("#composer-text"))

	desktop(t, a2)
	click(t, a2, "#btn-settings")
	waitUI(t, a2, "settings", visible("#form-lock")+` && document.getElementById('settings-fingerprint').textContent !== ''`)
	screenshot(t, a2, "settings-desktop", 1280, 800)

	// A passphrase lock set, used and opened through the page.
	setPassphraseLockUI(t, a2, "correct horse battery")
	click(t, a2, "#btn-lock-now")
	waitUI(t, a2, "the locked screen", visible("#unlock-passphrase"))
	if held := MustEval[bool](a2, `document.body.textContent.includes('hello alice') || document.body.textContent.includes('from my phone')`); held {
		t.Fatalf("the locked page still holds message text")
	}
	screenshot(t, a2, "locked-phone", 390, 844)
	typeInto(t, a2, "#unlock-passphrase", "not the passphrase")
	click(t, a2, "#form-unlock-passphrase button[type=submit]")
	waitUI(t, a2, "the refusal", `document.getElementById('unlock-error').textContent.includes('not right')`)
	typeInto(t, a2, "#unlock-passphrase", "correct horse battery")
	click(t, a2, "#form-unlock-passphrase button[type=submit]")
	waitUI(t, a2, "the chats again", visible("#view-main")+` && !!document.querySelector('#chat-list [data-chat="bob"]')`)
}

// darkScreenshot saves the page as a dark-scheme browser shows it.
// TestUICompanionCancelAbandonsLink: the companion's user presses Cancel
// next to the check code (it is not the code their primary shows). Nothing
// is linked, and both screens say why.
func TestUICompanionCancelAbandonsLink(t *testing.T) {
	srv := StartServer(t)
	a1 := NewBrowser(t)
	desktop(t, a1)
	createAccountUI(t, a1, srv.URL, "alice", "Alice's phone")
	a2 := NewBrowser(t)
	desktop(t, a2)
	payload := startLinkUI(t, a2, srv.URL, "Alice's browser")

	click(t, a1, "#btn-link-device")
	pasteInto(t, a1, "#approve-payload", payload)
	click(t, a1, "#form-approve button[type=submit]")
	waitUI(t, a2, "the check code on the companion", visible("#btn-link-code-reject"))
	click(t, a2, "#btn-link-code-reject")

	waitUI(t, a2, "the companion saying it cancelled", `document.getElementById('link-error').textContent.includes('Linking cancelled')`+` && !`+visible("#btn-link-code-confirm"))
	waitUI(t, a1, "the primary saying the new device cancelled", `document.getElementById('approve-error').textContent.includes('cancelled')`+` && !`+visible("#approve-check")+` && `+visible("#form-approve"))
	if MustEval[bool](a2, visible("#view-main")) {
		t.Fatal("the companion went to the main view after cancelling")
	}
	screenshot(t, a2, "link-rejected-companion-desktop", 1280, 800)
	screenshot(t, a1, "link-rejected-primary-desktop", 1280, 800)
	click(t, a1, "#btn-devices")
	waitUI(t, a1, "the device list", `document.querySelectorAll('#device-list li').length > 0`)
	if n := MustEval[int](a1, `document.querySelectorAll('#device-list li').length`); n != 1 {
		t.Fatalf("alice has %d devices after the companion cancelled, want 1", n)
	}
}

func darkScreenshot(t *testing.T, b *Browser, name string) {
	t.Helper()
	ctx, cancel := contextFor(b)
	defer cancel()
	dark := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, dark); err != nil {
		t.Fatal(err)
	}
	screenshot(t, b, name, 1280, 800)
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}
}

// checkAccessible is the accessibility smoke check: every form field on
// the page has a label, every button a name, and pressing Tab from the top
// reaches the given controls in this order.
func checkAccessible(t *testing.T, b *Browser, order []string) {
	t.Helper()
	unlabelled := MustEval[[]string](b, `[...document.querySelectorAll('input, textarea, select')].filter(el => {
	  if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
	  return !(el.labels && el.labels.length && el.labels[0].textContent.trim());
	}).map(el => el.id || el.outerHTML.slice(0, 60))`)
	if len(unlabelled) > 0 {
		t.Errorf("fields without a label: %v", unlabelled)
	}
	nameless := MustEval[[]string](b, `[...document.querySelectorAll('button')].filter(el =>
	  !(el.getAttribute('aria-label') || el.textContent.trim())).map(el => el.id || el.outerHTML.slice(0, 60))`)
	if len(nameless) > 0 {
		t.Errorf("buttons without a name: %v", nameless)
	}
	MustEval[chromedp.Void](b, `document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`)
	var seen []string
	next := 0
	for i := 0; i < 40 && next < len(order); i++ {
		if err := b.Do(chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		hit := MustEval[bool](b, `document.activeElement === document.querySelector(`+jsString(order[next])+`)`)
		desc := MustEval[string](b, `(() => { const e = document.activeElement; return e ? (e.id || e.tagName + ':' + e.textContent.trim().slice(0, 20)) : ''; })()`)
		seen = append(seen, desc)
		if hit {
			next++
		}
	}
	if next < len(order) {
		t.Errorf("Tab did not reach %s in order %v; focus went through %v", order[next], order, seen)
	}
}
