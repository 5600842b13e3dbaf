package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// jsSettle turns a promise into {ok: value} or {code, message}.
const jsSettle = `((p) => p.then((v) => ({ok: v === undefined ? null : v}), (e) => ({code: e.code, message: e.message})))`

func keysOf(t *testing.T, b *Browser) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, r := range MustEval[[]map[string]any](b, JSDumpRecords) {
		if r["store"] == "keys" {
			out[r["key"].(string)] = r
		}
	}
	return out
}

func mustJSON(v any) string {
	j, _ := json.Marshal(v)
	return string(j)
}

// TestPassphraseLock: with a passphrase set, a restarted browser is locked
// until unlock; a wrong passphrase is refused and changes nothing; the
// device key is gone from the profile (a copy cannot open anything);
// lock(), the idle lock and removing the lock work; the fingerprint is the
// same throughout.
func TestPassphraseLock(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	b := OpenBrowser(t, profile)
	fp := bootPage(t, b, srv.URL)

	ms := MustEval[float64](b, `(async () => {
	  const t0 = performance.now();
	  await window.parley.setLock({passphrase: 'correct horse battery staple'});
	  return performance.now() - t0;
	})()`)
	t.Logf("setLock({passphrase}) in Chromium (Argon2id t=6 m=64MiB p=1, then wrap): %.0f ms", ms)
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["lock"] != "passphrase" || st["status"] != "new" {
		t.Fatalf("state after setLock = %v", st)
	}
	keys := keysOf(t, b)
	if _, ok := keys["device"]; ok {
		t.Fatalf("the device wrapping key is still stored with a passphrase lock set: a profile copy would open")
	}
	if _, ok := keys["datakey"]; !ok {
		t.Fatalf("no data key record")
	}

	b.Close()
	b = OpenBrowser(t, profile)
	b.Navigate(srv.URL)
	MustEval[chromedp.Void](b, `window.parley.ready`)
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["status"] != "locked" || st["deviceId"] != nil {
		t.Fatalf("state after restart = %v, want locked with nothing opened", st)
	}
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.deviceFingerprint())`); r["code"] != "locked" {
		t.Fatalf("deviceFingerprint while locked = %v, want code locked", r)
	}
	if !WaitFor(b, `document.getElementById('status').textContent.includes('locked')`, 5*time.Second) {
		t.Fatalf("the page does not show the locked state")
	}
	before := mustJSON(MustEval[[]map[string]any](b, JSDumpRecords))
	wrong := MustEval[map[string]any](b, jsSettle+`(window.parley.unlock({passphrase: 'correct horse battery stapler'}))`)
	if wrong["code"] != "wrong_passphrase" {
		t.Fatalf("wrong passphrase gives %v, want code wrong_passphrase", wrong)
	}
	if after := mustJSON(MustEval[[]map[string]any](b, JSDumpRecords)); after != before {
		t.Fatalf("a wrong passphrase changed the stored data")
	}
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["status"] != "locked" {
		t.Fatalf("state after a wrong passphrase = %v, want still locked", st)
	}
	ms = MustEval[float64](b, `(async () => {
	  const t0 = performance.now();
	  await window.parley.unlock({passphrase: 'correct horse battery staple'});
	  return performance.now() - t0;
	})()`)
	t.Logf("unlock({passphrase}) in Chromium: %.0f ms", ms)
	if got := MustEval[string](b, `window.parley.deviceFingerprint()`); got != fp {
		t.Fatalf("fingerprint after unlock %q, want %q", got, fp)
	}
	if !WaitFor(b, `!document.getElementById('view-onboard').hidden`, 5*time.Second) {
		t.Fatalf("the page does not show the device after unlock")
	}

	// lock() drops the keys at once; an event tells every listener.
	ev := MustEval[map[string]any](b, `new Promise((res) => {
	  const off = window.parley.on('state', (s) => { off(); res(s); });
	  window.parley.lock();
	})`)
	if ev["status"] != "locked" {
		t.Fatalf("state event after lock() = %v", ev)
	}
	MustEval[chromedp.Void](b, `window.parley.unlock({passphrase: 'correct horse battery staple'})`)

	// Idle auto-lock.
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.setIdleLock(10))`); r["code"] != "invalid_argument" {
		t.Fatalf("setIdleLock(10) = %v, want invalid_argument", r)
	}
	MustEval[chromedp.Void](b, `window.parley.setIdleLock(1500)`)
	if !WaitFor(b, `window.parley.state().then((s) => s.status === 'locked' && s.lockReason === 'idle')`, 6*time.Second) {
		t.Fatalf("no idle lock within 6 s of a 1.5 s idle timeout")
	}
	MustEval[chromedp.Void](b, `window.parley.unlock({passphrase: 'correct horse battery staple'})`)
	MustEval[chromedp.Void](b, `window.parley.setIdleLock(0)`)

	// Removing the lock re-wraps under a new device key: no passphrase
	// after the next restart.
	MustEval[chromedp.Void](b, `window.parley.setLock(null)`)
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.lock())`); r["code"] != "no_lock" {
		t.Fatalf("lock() with no lock set = %v, want no_lock", r)
	}
	b.Close()
	b = OpenBrowser(t, profile)
	if got := bootPage(t, b, srv.URL); got != fp {
		t.Fatalf("fingerprint after removing the lock and restarting %q, want %q", got, fp)
	}
	b.CheckConsole()
}

// TestPasskeyLock locks with a passkey (WebAuthn PRF) through a CDP
// virtual authenticator: after the page is reloaded nothing opens until
// unlock({passkey: true}); a passphrase does not unlock a passkey lock;
// after a browser restart the profile is still locked.
func TestPasskeyLock(t *testing.T) {
	srv := StartServer(t)
	profile := t.TempDir()
	b := OpenBrowser(t, profile)
	auth := b.AddVirtualAuthenticator()
	fp := bootPage(t, b, srv.LocalhostURL())

	r := MustEval[map[string]any](b, jsSettle+`(window.parley.setLock({passkey: true}))`)
	if _, ok := r["ok"]; !ok {
		t.Fatalf("setLock({passkey: true}) = %v", r)
	}
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["lock"] != "passkey" {
		t.Fatalf("state after passkey setLock = %v", st)
	}
	if _, ok := keysOf(t, b)["device"]; ok {
		t.Fatalf("the device wrapping key is still stored with a passkey lock set")
	}
	// A reload is a fresh client: nothing in memory.
	if err := b.Do(chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	MustEval[chromedp.Void](b, `window.parley.ready`)
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["status"] != "locked" {
		t.Fatalf("state after reload = %v, want locked", st)
	}
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.unlock({passphrase: 'x'}))`); r["code"] != "wrong_lock_method" {
		t.Fatalf("passphrase unlock of a passkey lock = %v, want wrong_lock_method", r)
	}
	if r := MustEval[map[string]any](b, jsSettle+`(window.parley.unlock({passkey: true}))`); r["code"] != nil {
		t.Fatalf("unlock({passkey: true}) = %v", r)
	}
	if got := MustEval[string](b, `window.parley.deviceFingerprint()`); got != fp {
		t.Fatalf("fingerprint after passkey unlock %q, want %q", got, fp)
	}

	// A browser restart loses the virtual authenticator (it lives in the
	// DevTools session); carry its credential over to a new one.
	ctx, cancel := contextFor(b)
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
	cancel()
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("WebAuthn.getCredentials: %v (%d credentials)", err, len(creds.Credentials))
	}
	c := creds.Credentials[0]
	// This Chromium refuses any credential that mentions CMTG keys, and
	// cdproto always sends generateCmtgKeyOnNextOperation, so the command
	// goes out with only the fields Chromium knows.
	cred := addCredential{Credential: credential{
		CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential, RpID: c.RpID,
		PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: c.SignCount,
	}}
	b.Close()
	b = OpenBrowser(t, profile)
	cred.AuthenticatorID = b.AddVirtualAuthenticator()
	ctx, cancel = contextFor(b)
	_, err = chromedp.Call(ctx, cdp.Command[addCredential, cdp.Empty]{Method: webauthn.CommandAddCredential}, cred)
	cancel()
	if err != nil {
		t.Fatalf("WebAuthn.addCredential: %v", err)
	}
	b.Navigate(srv.LocalhostURL())
	MustEval[chromedp.Void](b, `window.parley.ready`)
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["status"] != "locked" {
		t.Fatalf("state after restart = %v, want locked", st)
	}
	// What this Chromium does: WebAuthn.getCredentials exports the
	// credential's id and private key but not its PRF (hmac-secret) seed,
	// so the re-added credential signs but returns no PRF result. That is
	// a limit of the virtual authenticator, and it also shows the lock's
	// property: a clone of the credential without the authenticator's
	// secret opens nothing. TestPassphraseLock covers unlock after a real
	// restart.
	before := mustJSON(MustEval[[]map[string]any](b, JSDumpRecords))
	r = MustEval[map[string]any](b, jsSettle+`(window.parley.unlock({passkey: true}))`)
	t.Logf("unlock({passkey: true}) after a browser restart with the credential re-added: %v", r)
	if r["code"] != "passkey_unsupported" {
		t.Fatalf("unlock after restart with a PRF-less clone of the credential = %v, want passkey_unsupported", r)
	}
	if st := MustEval[map[string]any](b, `window.parley.state()`); st["status"] != "locked" {
		t.Fatalf("state after the refused unlock = %v, want locked", st)
	}
	if after := mustJSON(MustEval[[]map[string]any](b, JSDumpRecords)); after != before {
		t.Fatalf("a refused passkey unlock changed the stored data")
	}
	b.CheckConsole()
}

type credential struct {
	CredentialID         []byte  `json:"credentialId"`
	IsResidentCredential bool    `json:"isResidentCredential"`
	RpID                 string  `json:"rpId"`
	PrivateKey           []byte  `json:"privateKey"`
	UserHandle           []byte  `json:"userHandle,omitempty"`
	SignCount            float64 `json:"signCount"`
}

type addCredential struct {
	AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      credential               `json:"credential"`
}

// TestPasskeyLockFromView sets and opens a passkey lock from a view tab:
// WebAuthn runs where the user acts, and the derived (non-extractable)
// wrapping key travels to the owner tab by structured clone.
func TestPasskeyLockFromView(t *testing.T) {
	srv := StartServer(t)
	br := NewBrowser(t)
	owner := br.OpenTab()
	owner.Navigate(srv.LocalhostURL())
	MustEval[chromedp.Void](owner, `window.parley.ready`)
	view := br.OpenTab()
	view.AddVirtualAuthenticator()
	view.Navigate(srv.LocalhostURL())
	MustEval[chromedp.Void](view, `window.parley.ready`)
	if st := MustEval[map[string]any](view, `window.parley.state()`); st["role"] != "view" {
		t.Fatalf("second tab state %v, want a view", st)
	}
	fp := MustEval[string](owner, `window.parley.deviceFingerprint()`)

	if r := MustEval[map[string]any](view, jsSettle+`(window.parley.setLock({passkey: true}))`); r["code"] != nil {
		t.Fatalf("setLock({passkey: true}) from the view = %v", r)
	}
	MustEval[chromedp.Void](view, `window.parley.lock()`)
	if st := MustEval[map[string]any](owner, `window.parley.state()`); st["status"] != "locked" || st["lock"] != "passkey" {
		t.Fatalf("owner state after the view locked = %v", st)
	}
	if r := MustEval[map[string]any](view, jsSettle+`(window.parley.unlock({passkey: true}))`); r["code"] != nil {
		t.Fatalf("unlock({passkey: true}) from the view = %v", r)
	}
	if got := MustEval[string](owner, `window.parley.deviceFingerprint()`); got != fp {
		t.Fatalf("fingerprint after unlock from the view %q, want %q", got, fp)
	}
	owner.CheckConsole()
	view.CheckConsole()
}
