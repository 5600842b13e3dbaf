package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// These tests write the profile the way an attacker with access to it
// would (IndexedDB directly, with the client closed): put back an older
// copy of a sealed record, or delete one. Sealing binds a record to its
// name, not to a version, so only the sealed root (PROTOCOL.md 13.7)
// can tell.

// jsRawRecords evaluates to {"bucket/key": [sealed bytes]} for the
// records of one bucket, as stored.
func jsRawRecords(bucket string) string {
	return `(async () => {
  const db = await ` + JSOpenDB + `;
  const st = db.transaction('records').objectStore('records');
  const range = IDBKeyRange.bound(['` + bucket + `', new Uint8Array()], ['` + bucket + `', []], false, true);
  const [keys, vals] = await Promise.all([
    new Promise((res, rej) => { const r = st.getAllKeys(range); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }),
    new Promise((res, rej) => { const r = st.getAll(range); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }),
  ]);
  db.close();
  const out = {};
  keys.forEach((k, i) => { out[k[0] + '/' + new TextDecoder().decode(k[1])] = Array.from(vals[i]); });
  return out;
})()`
}

// jsPutRaw(bucket, key, bytes or null) writes (or deletes) one stored
// record as is, without the client.
const jsPutRaw = `(async (bucket, key, bytes) => {
  const db = await ` + JSOpenDB + `;
  const tx = db.transaction('records', 'readwrite');
  const k = [bucket, new TextEncoder().encode(key)];
  if (bytes === null) tx.objectStore('records').delete(k);
  else tx.objectStore('records').put(new Uint8Array(bytes), k);
  await new Promise((res, rej) => { tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
  db.close();
})`

// jsCountRecords evaluates to the number of stored records.
const jsCountRecords = `(async () => {
  const db = await ` + JSOpenDB + `;
  const n = await new Promise((res) => { const r = db.transaction('records').objectStore('records').count(); r.onsuccess = () => res(r.result); });
  db.close(); return n;
})()`

// settled waits until b's journal is applied (PROTOCOL.md 13.6), so
// what IndexedDB holds is the records themselves, not batches that the
// next start would apply over a tampered record.
func settled(t *testing.T, b *Browser) {
	t.Helper()
	if !WaitFor(b, `(async () => Object.keys(await `+jsRawRecords("journal")+`).length === 0)()`, 10*time.Second) {
		t.Fatal("the journal was never applied")
	}
}

// aliceTalksToBob is a browser profile of alice that has sent text to a
// native bob and seen it delivered: it holds bob's pinned list and a
// session with him.
func aliceTalksToBob(t *testing.T, srv *Server, profile, text string) *Browser {
	t.Helper()
	NativeDevice(t, srv, "bob")
	a := OpenBrowser(t, profile)
	ready(t, a, srv.URL)
	MustEval[map[string]any](a, `window.parley.createAccount('alice', "Alice's browser")`)
	send(t, a, "bob", text)
	waitDelivered(t, a, "bob", text)
	return a
}

func waitDelivered(t *testing.T, b *Browser, chat, text string) {
	t.Helper()
	expr := `(async () => (await window.parley.messages(` + mustJSON(chat) + `, {limit: 50})).some((m) => m.text === ` + mustJSON(text) + ` && (m.status === 'delivered' || m.status === 'read')))()`
	if !WaitFor(b, expr, 20*time.Second) {
		t.Fatalf("%q to %s was never delivered", text, chat)
	}
	settled(t, b)
}

// restartAfter closes b, runs tamper in a page of the origin with no
// client running, and starts the client again; it returns the state
// after ready and fails t if the start-up deleted any record.
func restartAfter(t *testing.T, b *Browser, srv *Server, profile string, tamper func(*Browser)) (*Browser, map[string]any) {
	t.Helper()
	b.Close()
	b = OpenBrowser(t, profile)
	b.Navigate(srv.URL + "/web/icon.svg")
	tamper(b)
	before := MustEval[float64](b, jsCountRecords)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	st := MustEval[map[string]any](b, `window.parley.state()`)
	if after := MustEval[float64](b, jsCountRecords); after < before {
		t.Fatalf("%v records after start-up, %v before: something was deleted", after, before)
	}
	return b, st
}

func wantRolledBack(t *testing.T, what string, st map[string]any) {
	t.Helper()
	e, _ := st["error"].(map[string]any)
	if st["status"] != "error" || e == nil || e["code"] != "storage_rolled_back" {
		t.Fatalf("after %s: state = %s, want status error with code storage_rolled_back", what, mustJSON(st))
	}
	t.Logf("after %s: %s", what, e["message"])
}

// TestRestoredOldSessionRecordDetected: alice's session record with bob
// is put back as it was one message earlier, which would make her ratchet
// send under a message key it already used.
func TestRestoredOldSessionRecordDetected(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	a := aliceTalksToBob(t, srv, profile, "one")
	old := MustEval[map[string][]int](a, jsRawRecords("sessions"))
	if len(old) != 1 {
		t.Fatalf("alice has %d session records, want 1: %v", len(old), old)
	}
	send(t, a, "bob", "two")
	waitDelivered(t, a, "bob", "two")
	now := MustEval[map[string][]int](a, jsRawRecords("sessions"))
	for k, v := range old {
		if mustJSON(now[k]) == mustJSON(v) {
			t.Fatalf("the session record %s did not change with a sent message", k)
		}
	}
	a, st := restartAfter(t, a, srv, profile, func(b *Browser) {
		for k, v := range old {
			j, _ := json.Marshal(v)
			MustEval[chromedp.Void](b, jsPutRaw+`('sessions', `+mustJSON(strings.TrimPrefix(k, "sessions/"))+`, `+string(j)+`)`)
		}
	})
	wantRolledBack(t, "restoring an old session record", st)
	a.AllowConsoleErrors()
}

// TestDeletedPinnedListDetected: alice's pinned key and list for bob are
// deleted, which would make her trust whatever key the relay serves for
// bob next, with no safety-number warning.
func TestDeletedPinnedListDetected(t *testing.T) {
	srv := StartTestServer(t) // its hooks tell lists/bob's stored name
	profile := t.TempDir()
	a := aliceTalksToBob(t, srv, profile, "hello")
	// lists/bob is stored under its name (PROTOCOL.md 13.9).
	name := MustEval[string](a, `window.parley.__test.storedKey('lists', 'bob')`)
	if _, ok := MustEval[map[string][]int](a, jsRawRecords("lists"))["lists/"+name]; !ok {
		t.Fatal("alice has no pinned list for bob")
	}
	a, st := restartAfter(t, a, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsPutRaw+`('lists', `+mustJSON(name)+`, null)`)
	})
	wantRolledBack(t, "deleting lists/bob", st)
	a.AllowConsoleErrors()
}

// TestDeletedIdleLockFailsClosed: the idle auto-lock setting is deleted
// from a locked profile (absent used to mean off); unlocking must not
// come up with the idle lock silently turned off.
func TestDeletedIdleLockFailsClosed(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	b := OpenBrowser(t, profile)
	bootPage(t, b, srv.URL)
	MustEval[chromedp.Void](b, `window.parley.setLock({passphrase: 'correct horse battery staple'})`)
	MustEval[chromedp.Void](b, `window.parley.setIdleLock(60000)`)
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["idleLockMs"] != float64(60000) {
		t.Fatalf("state after setIdleLock = %v", st)
	}
	settled(t, b)
	b, st := restartAfter(t, b, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsPutRaw+`('_meta', 'idle-lock', null)`)
	})
	if st["status"] != "locked" {
		t.Fatalf("state before unlock = %v, want locked", st)
	}
	r := MustEval[map[string]any](b, jsSettle+`(window.parley.unlock({passphrase: 'correct horse battery staple'}))`)
	st = MustEval[map[string]any](b, `window.parley.state()`)
	if r["code"] != "storage_rolled_back" {
		t.Fatalf("unlock after deleting the idle-lock setting = %v (state %s), want storage_rolled_back", r, mustJSON(st))
	}
	wantRolledBack(t, "deleting _meta/idle-lock", st)
	b.AllowConsoleErrors()
}

// jsSealRecord(bucket, key, bytes) seals bytes as the client would and
// stores them, with the data key unwrapped by the device key (no lock
// set): how a profile from an older client is written.
const jsSealRecord = `(async (bucket, key, bytes) => {
  const db = await ` + JSOpenDB + `;
  const get = (store, k) => new Promise((res, rej) => {
    const r = db.transaction(store).objectStore(store).get(k);
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
  });
  const enc = (s) => new TextEncoder().encode(s);
  const device = await get('keys', 'device');
  const dk = await get('keys', 'datakey');
  const dataKey = await crypto.subtle.unwrapKey('raw', dk.wrapped, device,
    {name: 'AES-GCM', iv: dk.iv, additionalData: enc('parley/datakey/v1\0device')},
    {name: 'AES-GCM'}, false, ['encrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({name: 'AES-GCM', iv,
    additionalData: enc('parley/record/v1\0' + bucket + '\0' + key)}, dataKey, new Uint8Array(bytes)));
  const rec = new Uint8Array(13 + ct.length); rec[0] = 1; rec.set(iv, 1); rec.set(ct, 13);
  const tx = db.transaction('records', 'readwrite');
  tx.objectStore('records').put(rec, [bucket, enc(key)]);
  await new Promise((res, rej) => { tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
  db.close();
})`

// TestDeletedRootDetected: deleting the root record itself is refused
// like any other deletion; a profile from before roots (its canary
// without the root mark, no root) gets one at its next start.
func TestDeletedRootDetected(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	b := OpenBrowser(t, profile)
	bootPage(t, b, srv.URL)
	canary := MustEval[[]int](b, JSOpenRecord("_meta", "canary"))
	if len(canary) != 17 || canary[16] != 2 {
		t.Fatalf("a new profile's canary is %v, want 16 random bytes and the root-and-names mark 2", canary)
	}
	b, st := restartAfter(t, b, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsPutRaw+`('_meta', 'root', null)`)
	})
	wantRolledBack(t, "deleting _meta/root", st)
	b.AllowConsoleErrors()

	// The profile as an older client left it: no root, a 16-byte canary.
	b, st = restartAfter(t, b, srv, profile, func(b *Browser) {
		MustEval[chromedp.Void](b, jsSealRecord+`('_meta', 'canary', `+mustJSON(canary[:16])+`)`)
	})
	if st["status"] != "new" {
		t.Fatalf("a profile from before roots: state = %s, want it to open", mustJSON(st))
	}
	if c := MustEval[[]int](b, JSOpenRecord("_meta", "canary")); len(c) != 17 || mustJSON(c[:16]) != mustJSON(canary[:16]) || c[16] != 2 {
		t.Fatalf("after the upgrade the canary is %v, want the same 16 bytes and the root-and-names mark", c)
	}
	if _, ok := MustEval[map[string][]int](b, jsRawRecords("_meta"))["_meta/root"]; !ok {
		t.Fatal("the upgrade made no root")
	}
	b.CheckConsole()
}
