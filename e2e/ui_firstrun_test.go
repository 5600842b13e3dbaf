package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestUIStorageWarningExplainedOnce: on a browser that has not granted
// persistent storage (headless Chromium does not), the risk is explained
// once, on the chat list, with where to act (install the app), not as a
// banner over every screen; once the user says they have read it, it does
// not come back, and Settings keeps the explanation. The device
// fingerprint, which means nothing to someone arriving, is in Settings,
// not on the welcome screen.
func TestUIStorageWarningExplainedOnce(t *testing.T) {
	srv := StartServer(t)
	a := NewBrowser(t)
	desktop(t, a)
	a.Navigate(srv.URL)
	waitUI(t, a, "onboarding", visible("#form-create"))
	if txt := textOf(t, a, "#view-onboard"); strings.Contains(txt, "fingerprint") {
		t.Errorf("the welcome screen shows the device fingerprint:\n%s", txt)
	}
	createAccountUI(t, a, srv.URL, "alice", "Alice's browser")
	waitOnline(t, a)
	const note = "#persist-note"
	waitUI(t, a, "the storage note on the chat list", visible(note)+` && document.querySelector('#persist-note').innerText.includes('Install')`)
	screenshot(t, a, "storage-note-desktop", 1280, 800)
	screenshot(t, a, "storage-note-phone", 390, 844)
	desktop(t, a)

	// Not over every screen: Settings has its own explanation instead,
	// and the fingerprint.
	click(t, a, "#btn-settings")
	waitUI(t, a, "settings", visible("#form-lock")+` && document.getElementById('settings-fingerprint').textContent !== ''`)
	if shown := MustEval[[]string](a, `[...document.querySelectorAll('.banner, #persist-note')].filter((e) => e.getClientRects().length > 0).map((e) => e.id || e.className)`); len(shown) > 0 {
		t.Errorf("Settings shows the storage warning as well: %v", shown)
	}
	if txt := textOf(t, a, "#settings-storage"); !strings.Contains(txt, "Install") {
		t.Errorf("Settings does not say where to act on storage: %q", txt)
	}

	if err := a.Do(chromedp.KeyEvent("\x1b")); err != nil { // Escape: back to the chats
		t.Fatal(err)
	}
	waitUI(t, a, "the note again on the chat list", visible(note))
	click(t, a, "#btn-persist-dismiss")
	waitUI(t, a, "the note gone", `!`+visible(note))
	a.Navigate(srv.URL)
	waitOnline(t, a)
	if MustEval[bool](a, visible(note)) {
		t.Fatal("the storage note came back after the user dismissed it")
	}
}
