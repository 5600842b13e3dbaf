package e2e

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// axe-core (npm, pinned in e2e/package-lock.json, installed by `make
// e2e-deps`) is read from node_modules and evaluated in the page under test
// through CDP, never served by Parley: the page's CSP stays as users get it.
const axePath = "node_modules/axe-core/axe.min.js"

var axeSource struct {
	once sync.Once
	src  string
	err  error
}

func axeScript(t *testing.T) string {
	t.Helper()
	axeSource.once.Do(func() {
		b, err := os.ReadFile(axePath)
		axeSource.src, axeSource.err = string(b), err
	})
	if axeSource.err != nil {
		t.Fatalf("axe-core is not installed (%v): run `make e2e-deps` (make test does)", axeSource.err)
	}
	return axeSource.src
}

// axeViolation is one failed axe rule and the first nodes that fail it.
type axeViolation struct {
	ID    string   `json:"id"`
	Help  string   `json:"help"`
	Nodes []string `json:"nodes"`
}

// checkAxe runs every axe rule enabled by default (WCAG A and AA and the
// best practices, such as region) on the page as it shows now, in the
// light and then the dark colour scheme, and fails on any violation.
func checkAxe(t *testing.T, b *Browser, screen string) {
	t.Helper()
	if !MustEval[bool](b, `typeof window.axe === 'object'`) {
		MustEval[bool](b, axeScript(t)+"\n;true")
	}
	run := func(scheme string) {
		t.Helper()
		vs := MustEval[[]axeViolation](b, `axe.run(document).then((r) => r.violations.map((v) => ({
		  id: v.id, help: v.help,
		  nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\s+/g, ' ')),
		})))`)
		for _, v := range vs {
			t.Errorf("%s (%s): axe %s, %s:\n\t%s", screen, scheme, v.ID, v.Help, strings.Join(v.Nodes, "\n\t"))
		}
	}
	run("light")
	setDark(t, b, true)
	defer setDark(t, b, false)
	run("dark")
}

// setDark emulates a browser that prefers the dark colour scheme.
func setDark(t *testing.T, b *Browser, on bool) {
	t.Helper()
	ctx, cancel := contextFor(b)
	defer cancel()
	p := emulation.SetEmulatedMediaParams{}
	if on {
		p.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, p); err != nil {
		t.Fatal(err)
	}
}

// TestUIAxeEveryScreen: axe-core finds no violation on any main screen,
// light and dark: welcome, the new browser's link code, the chat list,
// a conversation, group info, linked devices, Link a device, settings,
// the safety number and the lock screen.
func TestUIAxeEveryScreen(t *testing.T) {
	srv := StartServer(t)
	bob := NativeDevice(t, srv, "bob")
	a := NewBrowser(t)
	desktop(t, a)
	a.Navigate(srv.URL)
	waitUI(t, a, "onboarding", visible("#form-create"))
	checkAxe(t, a, "welcome")

	c := NewBrowser(t)
	desktop(t, c)
	startLinkUI(t, c, srv.URL, "Alice's laptop")
	checkAxe(t, c, "link code")
	c.Close()

	createAccountUI(t, a, srv.URL, "alice", "Alice's browser")
	waitOnline(t, a)
	if _, err := bob.SendText(context.Background(), "alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	waitUI(t, a, "bob's chat with an unread badge", `!!document.querySelector('#chat-list [data-chat="bob"] .badge')`)
	checkAxe(t, a, "chat list")

	click(t, a, `#chat-list [data-chat="bob"]`)
	waitUI(t, a, "bob's message", `document.getElementById('message-list').innerText.includes('hi alice')`)
	typeInto(t, a, "#composer-text", "hello bob")
	if err := a.Do(chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitUI(t, a, "the sent bubble", `[...document.querySelectorAll('#message-list .msg.out')].some((m) => m.innerText.includes('hello bob'))`)
	checkAxe(t, a, "conversation")

	click(t, a, "#btn-contact")
	waitUI(t, a, "the safety number", `/^[0-9 ]{20,}$/.test(document.getElementById('contact-digits').textContent)`)
	checkAxe(t, a, "safety number")

	newGroupUI(t, a, "Weekend plans", "bob")
	click(t, a, "#btn-contact")
	waitUI(t, a, "the group's members", `document.getElementById('group-members').innerText.includes('bob')`)
	checkAxe(t, a, "group info")

	click(t, a, "#btn-devices")
	waitUI(t, a, "the device list", `document.querySelectorAll('#device-list li').length === 1`)
	checkAxe(t, a, "devices")

	click(t, a, "#btn-link-device")
	waitUI(t, a, "Link a device", visible("#approve-payload"))
	checkAxe(t, a, "link a device")

	click(t, a, "#btn-settings")
	waitUI(t, a, "settings", visible("#form-lock")+` && document.getElementById('settings-fingerprint').textContent !== ''`)
	checkAxe(t, a, "settings")

	setPassphraseLockUI(t, a, "correct horse battery")
	click(t, a, "#btn-lock-now")
	waitUI(t, a, "the locked screen", visible("#unlock-passphrase"))
	checkAxe(t, a, "lock")
}
