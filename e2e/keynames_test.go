package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestLockedProfileCopyListsNoContact is the attacker of issue 20 item 6:
// a copy of a *locked* profile (PROTOCOL.md 13.9). Alice talks to bob
// pairwise and in a group, sets a passphrase and lets the re-seal finish;
// a dump of every IndexedDB key must then hold no handle, device id or
// group id of her contact.
//
// Send times are not looked for: msgs and sentto keys still begin with
// them until those buckets get a per-chat counter (PROTOCOL.md 13.9,
// Status; docs/THREAT_MODEL.md says what a locked copy still shows).
func TestLockedProfileCopyListsNoContact(t *testing.T) {
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
	recs := MustEval[[]map[string]any](b, JSDumpRecords)
	if len(recs) < 20 {
		t.Fatalf("only %d records in the dump: the conversation is not stored", len(recs))
	}
	for _, r := range recs {
		key := r["key"].(string)
		for what, s := range secrets {
			if strings.Contains(key, s) {
				t.Errorf("the locked profile's key %s/%q shows %s", r["store"], key, what)
			}
		}
	}
}

// namedValue splits a named bucket's plaintext (u8 1, u16 len, the
// original key, the value: PROTOCOL.md 13.9) into its key and value.
func namedValue(t *testing.T, plain []int) (string, []int) {
	t.Helper()
	if len(plain) < 3 || plain[0] != 1 || len(plain) < 3+(plain[1]<<8|plain[2]) {
		t.Fatalf("not a named value: %v", plain)
	}
	n := plain[1]<<8 | plain[2]
	key := make([]byte, n)
	for i := range key {
		key[i] = byte(plain[3+i])
	}
	return string(key), plain[3+n:]
}

// TestInterruptedRenameCarriesOnAtNextStart: a profile stopped while it
// was being renamed (its naming key made, the canary not yet marked, a
// record still under its clear key, as every record of a profile from
// before the layer is) is renamed at its next start and opens: the
// record is back under its name, nothing is lost, the canary is marked.
func TestInterruptedRenameCarriesOnAtNextStart(t *testing.T) {
	srv := StartTestServer(t) // its hooks tell lists/bob's stored name
	profile := t.TempDir()
	a := aliceTalksToBob(t, srv, profile, "hello")
	name := MustEval[string](a, `window.parley.__test.storedKey('lists', 'bob')`)
	key, val := namedValue(t, MustEval[[]int](a, JSOpenRecord("lists", name)))
	if key != "bob" || name == "bob" {
		t.Fatalf("lists/bob is stored as %q holding key %q", name, key)
	}
	canary := MustEval[[]int](a, JSOpenRecord("_meta", "canary"))
	a, st := restartAfter(t, a, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsSealRecord+`('lists', 'bob', `+mustJSON(val)+`)`)
		MustEval[chromedp.Void](b, jsPutRaw+`('lists', `+mustJSON(name)+`, null)`)
		MustEval[chromedp.Void](b, jsSealRecord+`('_meta', 'canary', `+mustJSON(append(canary[:16:16], 1))+`)`)
	})
	if st["status"] != "ready" {
		t.Fatalf("a half-renamed profile: state = %s, want it to open with its account", mustJSON(st))
	}
	raw := MustEval[map[string][]int](a, jsRawRecords("lists"))
	if _, ok := raw["lists/bob"]; ok {
		t.Fatal("lists/bob is still under its clear key")
	}
	if _, ok := raw["lists/"+name]; !ok {
		t.Fatalf("lists/bob is not back under its name: %v", raw)
	}
	if c := MustEval[[]int](a, JSOpenRecord("_meta", "canary")); mustJSON(c) != mustJSON(canary) {
		t.Fatalf("after the rename the canary is %v, want %v (marked)", c, canary)
	}
	send(t, a, "bob", "still here")
	waitDelivered(t, a, "bob", "still here")
}

// TestDeletedNamingKeyFailsClosed: deleting the naming key would leave
// every named record unreachable (bob's pinned key among them: a key the
// relay served next would be trusted afresh). Start-up refuses with
// storage_corrupt; with an older, unmarked canary brought back too, the
// sealed root refuses it as storage_rolled_back. Neither writes a record.
func TestDeletedNamingKeyFailsClosed(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	a := aliceTalksToBob(t, srv, profile, "hello")
	canary := MustEval[[]int](a, JSOpenRecord("_meta", "canary"))
	a, st := restartAfter(t, a, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsPutRaw+`('_meta', 'names', null)`)
	})
	if e, _ := st["error"].(map[string]any); st["status"] != "error" || e == nil || e["code"] != "storage_corrupt" {
		t.Fatalf("after deleting _meta/names: state = %s, want status error with code storage_corrupt", mustJSON(st))
	}
	a.AllowConsoleErrors()
	before := recordsBut(a, "_meta/canary")
	a, st = restartAfter(t, a, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsSealRecord+`('_meta', 'canary', `+mustJSON(append(canary[:16:16], 1))+`)`)
	})
	wantRolledBack(t, "deleting _meta/names and bringing back an unmarked canary", st)
	a.AllowConsoleErrors()
	if after := recordsBut(a, "_meta/canary"); after != before {
		t.Fatal("start-up wrote records of a profile whose naming key is gone")
	}
}

// recordsBut is the JSON of every stored record but the one named skip.
func recordsBut(b *Browser, skip string) string {
	var keep []map[string]any
	for _, r := range MustEval[[]map[string]any](b, JSDumpRecords) {
		if r["key"] != skip {
			keep = append(keep, r)
		}
	}
	return mustJSON(keep)
}
