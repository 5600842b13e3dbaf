//go:build js && wasm

package main

import (
	"crypto/rand"
	engine "github.com/parley-im/parley/client"
	"syscall/js"

	"github.com/hack-pad/safejs"
)

// Passkey lock, the calling tab's half. WebAuthn needs a focused window,
// so these run in whichever tab the user acts in (owner or view); the
// result is a non-extractable wrapping CryptoKey, which the tab hands to
// the owner by structured clone (it stays non-extractable). The PRF output
// never enters Go memory: it goes from the authenticator's result straight
// into WebCrypto's HKDF and is then zeroed.
//
// No server verifies the assertion: the lock's security is that only the
// authenticator holding the credential can compute PRF(credential, salt).

func randomJS(n int) safejs.Value {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return bytesToJS(b)
}

func credentials() (js.Value, error) {
	cr := js.Global().Get("navigator").Get("credentials")
	if cr.IsUndefined() || js.Global().Get("PublicKeyCredential").IsUndefined() {
		return js.Undefined(), newAPIError(engine.CodePasskeyUnsupported, "this browser has no WebAuthn (passkeys)")
	}
	return cr, nil
}

// createPasskeyLock makes a new credential with the PRF extension and
// derives the wrapping key from it.
func createPasskeyLock() (key safejs.Value, credID, prfSalt safejs.Value, err error) {
	cr, err := credentials()
	if err != nil {
		return key, credID, prfSalt, err
	}
	obj := func() js.Value { return js.Global().Get("Object").New() }
	pk := obj()
	rp := obj()
	rp.Set("name", "Parley")
	pk.Set("rp", rp)
	user := obj()
	user.Set("id", safejs.Unsafe(randomJS(16)))
	user.Set("name", "parley")
	user.Set("displayName", "Parley on this browser")
	pk.Set("user", user)
	pk.Set("challenge", safejs.Unsafe(randomJS(32)))
	pk.Set("pubKeyCredParams", js.ValueOf([]any{
		map[string]any{"type": "public-key", "alg": -7},
		map[string]any{"type": "public-key", "alg": -257},
	}))
	pk.Set("authenticatorSelection", js.ValueOf(map[string]any{"userVerification": "required", "residentKey": "discouraged"}))
	ext := obj()
	ext.Set("prf", obj())
	pk.Set("extensions", ext)
	opts := obj()
	opts.Set("publicKey", pk)
	p, err := safejs.Safe(cr).Call("create", opts)
	if err != nil {
		return key, credID, prfSalt, newAPIError(engine.CodePasskeyFailed, "creating a passkey failed: %v", err)
	}
	cred, err := Await(p)
	if err != nil {
		return key, credID, prfSalt, newAPIError(engine.CodePasskeyFailed, "creating a passkey failed: %v", err)
	}
	res := safejs.Unsafe(cred).Call("getClientExtensionResults")
	if prf := res.Get("prf"); prf.IsUndefined() || !prf.Get("enabled").Truthy() {
		return key, credID, prfSalt, newAPIError(engine.CodePasskeyUnsupported, "this passkey does not support the PRF extension, so it cannot protect Parley's keys; use a passphrase")
	}
	credID = safejs.Safe(js.Global().Get("Uint8Array").New(safejs.Unsafe(cred).Get("rawId")))
	prfSalt = randomJS(prfSaltLen)
	key, err = derivePasskeyKey(credID, prfSalt)
	return key, credID, prfSalt, err
}

// derivePasskeyKey asks the authenticator for PRF(credID, prfSalt) and
// derives the wrapping key: HKDF-SHA-256(ikm = PRF output, salt = prfSalt,
// info = passkeyInfo) → AES-256-GCM, non-extractable, wrapKey/unwrapKey.
func derivePasskeyKey(credID, prfSalt safejs.Value) (safejs.Value, error) {
	cr, err := credentials()
	if err != nil {
		return safejs.Undefined(), err
	}
	obj := func() js.Value { return js.Global().Get("Object").New() }
	pk := obj()
	pk.Set("challenge", safejs.Unsafe(randomJS(32)))
	allow := obj()
	allow.Set("type", "public-key")
	allow.Set("id", safejs.Unsafe(credID))
	pk.Set("allowCredentials", js.ValueOf([]any{allow}))
	pk.Set("userVerification", "required")
	eval := obj()
	eval.Set("first", safejs.Unsafe(prfSalt))
	prf := obj()
	prf.Set("eval", eval)
	ext := obj()
	ext.Set("prf", prf)
	pk.Set("extensions", ext)
	opts := obj()
	opts.Set("publicKey", pk)
	p, err := safejs.Safe(cr).Call("get", opts)
	if err != nil {
		return safejs.Undefined(), newAPIError(engine.CodePasskeyFailed, "the passkey was not used: %v", err)
	}
	assertion, err := Await(p)
	if err != nil {
		return safejs.Undefined(), newAPIError(engine.CodePasskeyFailed, "the passkey was not used: %v", err)
	}
	res := safejs.Unsafe(assertion).Call("getClientExtensionResults").Get("prf")
	if res.IsUndefined() || res.Get("results").IsUndefined() {
		return safejs.Undefined(), newAPIError(engine.CodePasskeyUnsupported, "the authenticator returned no PRF result")
	}
	out := js.Global().Get("Uint8Array").New(res.Get("results").Get("first"))
	defer out.Call("fill", 0)
	base, err := callSubtle("importKey", "raw", out, "HKDF", false, []any{"deriveKey"})
	if err != nil {
		return safejs.Undefined(), err
	}
	params := obj()
	params.Set("name", "HKDF")
	params.Set("hash", "SHA-256")
	params.Set("salt", safejs.Unsafe(prfSalt))
	params.Set("info", safejs.Unsafe(bytesToJS([]byte(passkeyInfo))))
	return callSubtle("deriveKey", params, base, aesGCM(), false, []any{"wrapKey", "unwrapKey"})
}
