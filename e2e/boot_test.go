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

// bootPage opens the client and waits for parley.ready and the welcome
// screen; it returns the fingerprint from the API.
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
	// The welcome screen shows no fingerprint (it is in Settings, issue
	// 15 item 10), only the choices.
	if !WaitFor(b, `!document.getElementById('view-onboard').hidden`, actionTimeout) {
		t.Fatal("the page never showed the welcome screen")
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
// device key is a non-extractable CryptoKey, the data key exists only
// wrapped, and no record holds the identity's secret bytes in the clear.
// The test recovers those bytes the only way script can: by asking
// WebCrypto to unwrap the data key with the (usable but unexportable)
// device key and decrypt the sealed record with its associated data.
func TestKeysAtRest(t *testing.T) {
	srv := StartServer(t)
	b := NewBrowser(t)
	bootPage(t, b, srv.URL)

	key := MustEval[map[string]any](b, `(async () => {
	  const db = await `+JSOpenDB+`;
	  const get = (k) => new Promise((res, rej) => {
	    const r = db.transaction('keys').objectStore('keys').get(k);
	    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
	  });
	  const k = await get('device');
	  const dk = await get('datakey');
	  db.close();
	  let exportError = null;
	  try { await crypto.subtle.exportKey('raw', k); } catch (e) { exportError = e.name; }
	  return {isKey: k instanceof CryptoKey, extractable: k.extractable, alg: k.algorithm.name,
	          length: k.algorithm.length, usages: k.usages, exportError,
	          dataKeyKind: dk.kind, dataKeyIsBytes: dk.wrapped instanceof Uint8Array};
	})()`)
	if key["isKey"] != true || key["extractable"] != false || key["alg"] != "AES-GCM" || key["length"] != float64(256) {
		t.Fatalf("device key = %v, want a non-extractable AES-GCM-256 CryptoKey", key)
	}
	if key["exportError"] == nil {
		t.Fatalf("crypto.subtle.exportKey on the device key succeeded; it must reject")
	}
	if key["dataKeyKind"] != "device" || key["dataKeyIsBytes"] != true {
		t.Fatalf("data key record = %v, want kind device with wrapped bytes", key)
	}

	// Open the sealed identity with the right associated data, then check
	// the associated data really binds it: the same bytes under another
	// record name must not open.
	plain := toBytes(t, MustEval[any](b, JSOpenRecord("_device", "identity")))
	moved := MustEval[string](b, `(async () => {
	  try { await `+strings.Replace(JSOpenRecord("_device", "identity"), `\x00identity')`, `\x00other')`, 1)+`; return 'opened'; }
	  catch (e) { return e.name; }
	})()`)
	if moved == "opened" {
		t.Fatalf("the sealed identity opened under another record name: associated data is not bound")
	}
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
	  const key = ['_device', new TextEncoder().encode('identity')];
	  const rec = await new Promise((res) => { const r = st.get(key); r.onsuccess = () => res(r.result); });
	  rec[rec.length - 20] ^= 0x01;
	  st.put(rec, key);
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
	      fp: document.getElementById('settings-fingerprint').textContent}) : setTimeout(check, 20);
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
