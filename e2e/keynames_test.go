package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLockedProfileCopyListsNoContact is the attacker of issue 20 item 6:
// a copy of a *locked* profile (PROTOCOL.md 13.9). Alice talks to bob
// pairwise and in a group, sets a passphrase and lets the re-seal finish;
// a dump of every IndexedDB key must then hold no handle, device id or
// group id of her contact, nor the send time of any message.
//
// It fails on this branch (seen: "the locked profile's key
// records/"lists/bobcontact" shows bob's handle", and sessions, msgs,
// chats, groups, gsend, gjoined, prekeys/seen and sentto keys likewise):
// the browser does not use client/storage/keyname yet, and msgs and
// sentto keys still begin with the send time (PROTOCOL.md 13.9, Status).
func TestLockedProfileCopyListsNoContact(t *testing.T) {
	t.Skip("issue 20 item 6 is not wired into the browser yet (PROTOCOL.md 13.9, Status)")
	srv := StartTestServer(t)
	b := OpenBrowser(t, t.TempDir())
	bootPage(t, b, srv.URL)
	MustEval[map[string]any](b, `window.parley.createAccount('alicehandle', "Alice's laptop")`)
	bob := NativeDevice(t, srv, "bobcontact")
	send(t, b, "bobcontact", "hi bob")
	ctx := t.Context()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := bob.SendText(ctx, "alicehandle", "hi alice"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("bob cannot reply: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitText(t, b, "bobcontact", "hi alice")
	gid := MustEval[map[string]any](b, `window.parley.createGroup('the group', ['bobcontact'])`)["id"].(string)
	send(t, b, gid, "hello group")
	MustEval[chromedp.Void](b, `window.parley.setLock({passphrase: 'correct horse battery staple'})`)
	if !WaitFor(b, `window.parley.state().then((s) => s.rekey == null)`, 30*time.Second) {
		t.Fatalf("the re-seal did not finish within 30 s")
	}

	secrets := map[string]string{
		"bob's handle":    "bobcontact",
		"bob's device id": bob.Device().ID.String(),
		"the group id":    strings.TrimPrefix(gid, "g:"),
	}
	for _, chat := range []string{"bobcontact", gid} {
		for _, m := range MustEval[[]map[string]any](b, fmt.Sprintf(`window.parley.messages(%q, {limit: 50})`, chat)) {
			at := int64(m["sentAt"].(float64))
			secrets["the send time of "+m["text"].(string)] = fmt.Sprintf("%016x", at)
			secrets["the send time (decimal) of "+m["text"].(string)] = strconv.FormatInt(at, 10)
		}
	}
	if len(secrets) < 9 {
		t.Fatalf("only %d secrets to look for: the conversation is not set up", len(secrets))
	}
	for _, r := range MustEval[[]map[string]any](b, JSDumpRecords) {
		key := r["key"].(string)
		for what, s := range secrets {
			if strings.Contains(key, s) {
				t.Errorf("the locked profile's key %s/%q shows %s", r["store"], key, what)
			}
		}
	}
}
