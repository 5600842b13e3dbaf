package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley/crypto/identity"
)

// TestIndexedDBStoreConformanceCursor runs the same suite where the
// browser has no IDBObjectStore.getAllRecords (Chromium before 141, other
// engines): boot.js's read then walks a cursor.
func TestIndexedDBStoreConformanceCursor(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	ctx, cancel := contextFor(b)
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `delete IDBObjectStore.prototype.getAllRecords;`,
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	ready(t, b, srv.URL)
	if has := MustEval[bool](b, `'getAllRecords' in IDBObjectStore.prototype`); has {
		t.Fatal("getAllRecords is still there; the test would not test the cursor")
	}
	mustConform(t, b, "cursor", "cache", "the IndexedDB store without getAllRecords")
	b.CheckConsole()
}

// mustConform runs client/storage/storagetest in b's page (a test build)
// against a fresh sealed IndexedDB store named db, alone (layer "") or
// behind the engine's "cache" or "journal", and fails t on a violation.
func mustConform(t *testing.T, b *Browser, db, layer, what string) {
	t.Helper()
	if msg := MustEval[string](b, fmt.Sprintf(`window.parley.__test.conformance(%q, %q)`, db, layer)); msg != "" {
		t.Fatalf("%s fails the storage conformance suite: %s", what, msg)
	}
}

// TestIndexedDBStoreConformance runs client/storage/storagetest, the suite
// every storage.Store passes natively, against the browser's sealed
// IndexedDB store inside Chromium, and measures a sealed 1 KiB commit.
func TestIndexedDBStoreConformance(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	ready(t, b, srv.URL)
	mustConform(t, b, "conformance", "", "the IndexedDB store")
	// Everything the suite wrote is sealed: no value appears in the clear.
	recs := MustEval[[]map[string]any](b, strings.Replace(JSDumpRecords, `indexedDB.open('parley')`, `indexedDB.open('parley-test-conformance')`, 1))
	if len(recs) == 0 {
		t.Fatal("the conformance database is empty")
	}
	for _, r := range recs {
		if r["store"] == "records" && r["bytes"] != nil {
			if raw := toBytes(t, r["bytes"]); raw[0] != 1 || len(raw) < 29 {
				t.Errorf("record %s is not sealed (%d bytes, version %d)", r["key"], len(raw), raw[0])
			}
		}
	}
	// The same suite on a store whose data key has changed (epoch 3, a
	// retired key beside it): every record in the SealV2 layout.
	mustConform(t, b, "rekeyed", "journal", "the IndexedDB store after lock changes")
	recs = MustEval[[]map[string]any](b, strings.Replace(JSDumpRecords, `indexedDB.open('parley')`, `indexedDB.open('parley-test-rekeyed')`, 1))
	for _, r := range recs {
		if r["store"] == "records" && r["bytes"] != nil {
			if raw := toBytes(t, r["bytes"]); len(raw) < 33 || raw[0] != 2 || raw[4] != 3 {
				t.Errorf("record %s of the rekeyed store is not sealed under epoch 3 (%d bytes, %x)", r["key"], len(raw), raw[:min(5, len(raw))])
			}
		}
	}
	lat := MustEval[map[string]float64](b, `window.parley.__test.benchWrite('bench', 200)`)
	t.Logf("sealed 1 KiB commit in Chromium: median %.2f ms, p90 %.2f ms (200 commits)", lat["median"], lat["p90"])
	b.CheckConsole()
}

// TestCorruptEngineRecord flips one byte of one sealed engine record: that
// record reports storage_corrupt naming it, the others still open, and
// nothing is deleted.
func TestCorruptEngineRecord(t *testing.T) {
	srv := StartTestServer(t)
	b := NewBrowser(t)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	MustEval[chromedp.Void](b, `(async () => {
	  for (const k of ['a', 'b', 'c']) await window.parley.__test.put('corrupt', 'chat', 'm/' + k, 'text ' + k);
	})()`)
	MustEval[chromedp.Void](b, `(async () => {
	  const db = await new Promise((res, rej) => { const r = indexedDB.open('parley-test-corrupt'); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
	  const tx = db.transaction('records', 'readwrite');
	  const st = tx.objectStore('records');
	  const key = ['chat', new TextEncoder().encode('m/b')];
	  const rec = await new Promise((res) => { const r = st.get(key); r.onsuccess = () => res(r.result); });
	  rec[rec.length - 3] ^= 0x40;
	  st.put(rec, key);
	  await new Promise((res, rej) => { tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
	  db.close();
	})()`)
	got := MustEval[map[string]any](b, `(async () => {
	  const t = window.parley.__test;
	  const settle = (p) => p.then((v) => ({ok: v}), (e) => ({code: e.code, message: e.message}));
	  return {a: await settle(t.get('corrupt', 'chat', 'm/a')), b: await settle(t.get('corrupt', 'chat', 'm/b')),
	          c: await settle(t.get('corrupt', 'chat', 'm/c')), scan: await settle(t.scan('corrupt', 'chat', 'm/'))};
	})()`)
	j, _ := json.Marshal(got)
	t.Logf("after corrupting chat/m/b: %s", j)
	a, bb, c, scan := got["a"].(map[string]any), got["b"].(map[string]any), got["c"].(map[string]any), got["scan"].(map[string]any)
	if a["ok"] != "text a" || c["ok"] != "text c" {
		t.Fatalf("intact records do not open: a=%v c=%v", a, c)
	}
	if bb["code"] != "storage_corrupt" || !strings.Contains(bb["message"].(string), "chat/m/b") {
		t.Fatalf("corrupt record gives %v, want code storage_corrupt naming chat/m/b", bb)
	}
	if scan["code"] != "storage_corrupt" || !strings.Contains(scan["message"].(string), "chat/m/b") {
		t.Fatalf("scan over the corrupt record gives %v, want storage_corrupt naming it", scan)
	}
	n := MustEval[float64](b, `(async () => {
	  const db = await new Promise((res) => { const r = indexedDB.open('parley-test-corrupt'); r.onsuccess = () => res(r.result); });
	  const n = await new Promise((res) => { const r = db.transaction('records').objectStore('records').count(); r.onsuccess = () => res(r.result); });
	  db.close(); return n;
	})()`)
	if n != 3 {
		t.Fatalf("%v records after reading a corrupt one, want 3: something was wiped", n)
	}
	b.CheckConsole()
}

// jsWriteV1Profile writes a schema-1 profile (as the foundation's client
// did): a non-extractable storage key and the identity sealed under it.
const jsWriteV1Profile = `(async (identity) => {
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open('parley', 1);
    r.onupgradeneeded = () => { r.result.createObjectStore('keys'); r.result.createObjectStore('records'); };
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
  });
  const key = await crypto.subtle.generateKey({name: 'AES-GCM', length: 256}, false, ['encrypt', 'decrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({name: 'AES-GCM', iv,
    additionalData: new TextEncoder().encode('parley/record/v1\0records\0device/identity')}, key, new Uint8Array(identity)));
  const rec = new Uint8Array(13 + ct.length); rec[0] = 1; rec.set(iv, 1); rec.set(ct, 13);
  const tx = db.transaction(['keys', 'records'], 'readwrite');
  tx.objectStore('keys').put(key, 'storage');
  tx.objectStore('records').put(rec, 'device/identity');
  await new Promise((res, rej) => { tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
  db.close();
})`

// TestUpgradeFromV1KeepsIdentity: a profile made by the schema-1 client
// upgrades in place to the wrapped-data-key layout and keeps its device
// identity (the same fingerprint), across a browser restart.
func TestUpgradeFromV1KeepsIdentity(t *testing.T) {
	dev, err := identity.NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := dev.MarshalBinary()
	want := dev.Public().Fingerprint()
	ints := make([]int, len(raw))
	for i, c := range raw {
		ints[i] = int(c)
	}
	arg, _ := json.Marshal(ints)

	srv := StartServer(t)
	profile := t.TempDir()
	b := OpenBrowser(t, profile)
	b.Navigate(srv.URL + "/web/icon.svg") // same origin, no client running
	MustEval[chromedp.Void](b, jsWriteV1Profile+`(`+string(arg)+`)`)

	if got := bootPage(t, b, srv.URL); got != want {
		t.Fatalf("after upgrade fingerprint %q, want the v1 identity's %q", got, want)
	}
	layout := MustEval[map[string]any](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const v = db.version; db.close();
	  return {version: v, records: (await `+JSDumpRecords+`).map((r) => r.store + ':' + r.key).sort().join(' ')};
	})()`)
	// The wasm binding's records (with the sealed root, PROTOCOL.md
	// 13.7, and the naming key, 13.9), plus the engine's copy of the
	// device identity (self/device), which the engine writes when it
	// first opens.
	if layout["version"] != float64(2) || layout["records"] != "keys:datakey keys:device records:_device/identity records:_meta/canary records:_meta/names records:_meta/root records:self/device" {
		t.Fatalf("layout after upgrade = %v", layout)
	}
	b.Close()
	b = OpenBrowser(t, profile)
	if got := bootPage(t, b, srv.URL); got != want {
		t.Fatalf("after upgrade and restart fingerprint %q, want %q", got, want)
	}
	b.CheckConsole()
}

// TestEvictionDetected: the browser deleting the whole database (quota
// eviction) or part of it is reported as storage_evicted; Parley does not
// silently become a new device.
func TestEvictionDetected(t *testing.T) {
	srv := StartServer(t)
	b := NewBrowser(t)
	bootPage(t, b, srv.URL)
	st := MustEval[map[string]any](b, `window.parley.state()`)
	if st["canary"] != "ok" || st["role"] != "owner" {
		t.Fatalf("state = %v, want canary ok in the owner tab", st)
	}

	// Partial loss: the canary record is gone, the keys remain.
	b.Navigate(srv.URL + "/web/icon.svg")
	MustEval[chromedp.Void](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const tx = db.transaction('records', 'readwrite');
	  tx.objectStore('records').delete(['_meta', new TextEncoder().encode('canary')]);
	  await new Promise((res) => { tx.oncomplete = res; });
	  db.close();
	})()`)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	st = MustEval[map[string]any](b, `window.parley.state()`)
	if st["status"] != "error" || st["canary"] != "missing" || st["error"].(map[string]any)["code"] != "storage_evicted" {
		t.Fatalf("state after the canary vanished = %v, want error storage_evicted", st)
	}

	// Whole loss: the database is gone but this origin had a profile.
	b.Navigate(srv.URL + "/web/icon.svg")
	MustEval[chromedp.Void](b, `new Promise((res, rej) => { const r = indexedDB.deleteDatabase('parley'); r.onsuccess = res; r.onerror = () => rej(r.error); })`)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	st = MustEval[map[string]any](b, `window.parley.state()`)
	if st["status"] != "error" || st["error"].(map[string]any)["code"] != "storage_evicted" {
		t.Fatalf("state after the database vanished = %v, want error storage_evicted", st)
	}
	recs := MustEval[[]map[string]any](b, JSDumpRecords)
	if len(recs) != 0 {
		t.Fatalf("after eviction the client wrote %d records; it must not become a new device silently", len(recs))
	}
	b.CheckConsole()
}
