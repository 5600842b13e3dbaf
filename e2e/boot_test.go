package e2e

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// fingerprintShape is what DevicePublic.Fingerprint prints; the test only
// needs it non-trivial and stable.
var fingerprintShape = regexp.MustCompile(`^[0-9a-z ]{16,}$`)

// bootPage opens the client and waits for parley.ready and the page to
// show the fingerprint; it returns the fingerprint from the API.
func bootPage(t *testing.T, b *Browser, url string) string {
	t.Helper()
	b.Navigate(url)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	st := MustEval[map[string]any](b, `window.parley.state()`)
	if st["status"] != "new" {
		t.Fatalf("state after boot = %v, want status new (no account yet)", st)
	}
	fp := MustEval[string](b, `window.parley.deviceFingerprint()`)
	if !fingerprintShape.MatchString(fp) {
		t.Fatalf("fingerprint %q does not look like a fingerprint", fp)
	}
	shown := MustEval[string](b, `new Promise((res) => {
	  const el = document.getElementById('fingerprint');
	  const check = () => el.textContent ? res(el.textContent) : setTimeout(check, 20);
	  check();
	})`)
	if shown != fp {
		t.Fatalf("page shows fingerprint %q, API says %q", shown, fp)
	}
	return fp
}

func TestBootShowsFingerprint(t *testing.T) {
	srv := StartServer(t)
	b := NewBrowser(t)
	bootPage(t, b, srv.URL)
	v := MustEval[string](b, `window.parley.version`)
	if !strings.HasPrefix(v, "0.") {
		t.Errorf("parley.version = %q", v)
	}
	if err := b.Screenshot(filepath.Join(ScreenshotDir(t), "boot.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}
	b.CheckConsole()
}

func TestFingerprintSurvivesReloadAndRestart(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()

	b := OpenBrowser(t, profile)
	first := bootPage(t, b, srv.URL)

	if err := b.Do(chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if got := bootPage(t, b, srv.URL); got != first {
		t.Fatalf("after reload fingerprint %q, want %q", got, first)
	}
	b.Close()

	b = OpenBrowser(t, profile)
	if got := bootPage(t, b, srv.URL); got != first {
		t.Fatalf("after browser restart fingerprint %q, want %q", got, first)
	}

	other := NewBrowser(t)
	if got := bootPage(t, other, srv.URL); got == first {
		t.Fatalf("another profile has the same fingerprint %q", got)
	}
}

// TestKeysAtRest checks what a copy of the profile would reveal: the
// storage key is a non-extractable CryptoKey, and no record holds the
// identity's secret bytes in the clear. The test recovers those bytes the
// only way script can: by asking WebCrypto to decrypt the sealed record
// with the (usable but unexportable) key and the record's associated data.
func TestKeysAtRest(t *testing.T) {
	srv := StartServer(t)
	b := NewBrowser(t)
	bootPage(t, b, srv.URL)

	key := MustEval[map[string]any](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const k = await new Promise((res, rej) => {
	    const r = db.transaction('keys').objectStore('keys').get('storage');
	    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
	  });
	  db.close();
	  let exportError = null;
	  try { await crypto.subtle.exportKey('raw', k); } catch (e) { exportError = e.name; }
	  return {isKey: k instanceof CryptoKey, extractable: k.extractable, alg: k.algorithm.name,
	          length: k.algorithm.length, usages: k.usages, exportError};
	})()`)
	if key["isKey"] != true || key["extractable"] != false || key["alg"] != "AES-GCM" || key["length"] != float64(256) {
		t.Fatalf("storage key = %v, want a non-extractable AES-GCM-256 CryptoKey", key)
	}
	if key["exportError"] == nil {
		t.Fatalf("crypto.subtle.exportKey on the storage key succeeded; it must reject")
	}

	// Open the sealed identity with the right associated data, then check
	// the associated data really binds it: the same bytes under another
	// record name must not open.
	opened := MustEval[map[string]any](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const get = (store, k) => new Promise((res, rej) => {
	    const r = db.transaction(store).objectStore(store).get(k);
	    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
	  });
	  const key = await get('keys', 'storage');
	  const rec = await get('records', 'device/identity');
	  db.close();
	  const ad = (store, k) => new TextEncoder().encode('parley/record/v1\0' + store + '\0' + k);
	  const open = (store, k) => crypto.subtle.decrypt(
	    {name: 'AES-GCM', iv: rec.slice(1, 13), additionalData: ad(store, k)}, key, rec.slice(13));
	  const plain = new Uint8Array(await open('records', 'device/identity'));
	  let moved = 'opened';
	  try { await open('records', 'device/other'); } catch (e) { moved = e.name; }
	  return {version: rec[0], plain: Array.from(plain), moved};
	})()`)
	if opened["version"] != float64(1) {
		t.Fatalf("sealed record version = %v, want 1", opened["version"])
	}
	if opened["moved"] == "opened" {
		t.Fatalf("the sealed identity opened under another record name: associated data is not bound")
	}
	plain := toBytes(t, opened["plain"])
	if len(plain) < 64 {
		t.Fatalf("unsealed identity is only %d bytes", len(plain))
	}

	// No 16-byte window of the identity plaintext may appear in any record.
	records := MustEval[[]map[string]any](b, JSDumpRecords)
	if len(records) < 2 {
		t.Fatalf("dump has %d records, want the storage key and the identity", len(records))
	}
	const window = 16
	for _, r := range records {
		if r["bytes"] == nil {
			continue
		}
		raw := toBytes(t, r["bytes"])
		for i := 0; i+window <= len(plain); i++ {
			if bytes.Contains(raw, plain[i:i+window]) {
				t.Fatalf("record %s/%s contains identity plaintext bytes %d..%d in the clear", r["store"], r["key"], i, i+window)
			}
		}
	}
	b.CheckConsole()
}

// TestCorruptIdentityRecord flips one byte of the sealed identity: the page
// and the API must report a clear error state, and nothing may be wiped or
// replaced by a new identity.
func TestCorruptIdentityRecord(t *testing.T) {
	srv := StartServer(t)
	b := NewBrowser(t)
	bootPage(t, b, srv.URL)

	before := MustEval[[]map[string]any](b, JSDumpRecords)
	MustEval[chromedp.Void](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const tx = db.transaction('records', 'readwrite');
	  const st = tx.objectStore('records');
	  const rec = await new Promise((res) => { const r = st.get('device/identity'); r.onsuccess = () => res(r.result); });
	  rec[rec.length - 20] ^= 0x01;
	  st.put(rec, 'device/identity');
	  await new Promise((res, rej) => { tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
	  db.close();
	})()`)

	if err := b.Do(chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	MustEval[chromedp.Void](b, `window.parley.ready`)
	st := MustEval[map[string]any](b, `window.parley.state()`)
	if st["status"] != "error" {
		t.Fatalf("state after corruption = %v, want status error", st)
	}
	code := MustEval[string](b, `window.parley.state().then(s => s.error.code)`)
	if code != "storage_corrupt" {
		t.Fatalf("error code = %q, want storage_corrupt", code)
	}
	rej := MustEval[map[string]any](b, `window.parley.deviceFingerprint().then(
	  () => ({resolved: true}), (e) => ({code: e.code, message: e.message}))`)
	if rej["code"] != "storage_corrupt" || rej["message"] == "" {
		t.Fatalf("deviceFingerprint() on corrupt storage = %v, want rejection with code storage_corrupt", rej)
	}
	shown := MustEval[map[string]any](b, `new Promise((res) => {
	  const p = document.getElementById('problem');
	  const check = () => !p.hidden ? res({msg: document.getElementById('problem-message').textContent,
	      advice: document.getElementById('problem-advice').textContent,
	      fp: document.getElementById('fingerprint').textContent}) : setTimeout(check, 20);
	  check();
	})`)
	if shown["msg"] == "" || !strings.Contains(shown["advice"].(string), "Nothing has been deleted") || shown["fp"] != "" {
		t.Fatalf("page after corruption shows %v, want the problem explained and no fingerprint", shown)
	}

	after := MustEval[[]map[string]any](b, JSDumpRecords)
	if len(after) != len(before) {
		t.Fatalf("records before corruption %d, after reload %d: something was wiped or added", len(before), len(after))
	}
	b.CheckConsole()
}

func toBytes(t *testing.T, v any) []byte {
	t.Helper()
	arr, ok := v.([]any)
	if !ok {
		t.Fatalf("not a byte array: %T", v)
	}
	out := make([]byte, len(arr))
	for i, x := range arr {
		out[i] = byte(x.(float64))
	}
	return out
}
