//go:build js && wasm

package main

// WebCrypto behind the pure-Go crypto seams (docs/PROTOCOL.md §13.5).
//
// crypto/ and client/ stay pure Go; three seams let the browser swap in
// the browser's own primitives where that is measurably faster:
//
//   - x25519.SetBackend: X25519 on raw 32-byte keys (the ratchet's DH step,
//     PQXDH);
//   - senderkey.SetEd25519: the per-message signature of group messages;
//   - client.Config.BulkCipher: AES-256-GCM over 256 KiB chunks of
//     attachments and history bundles.
//
// Every WebCrypto call is a Promise, and awaiting one from Go parks the
// goroutine, returns to the JS event loop, and resumes Go when it settles:
// ≈ 25–45 µs here, a fixed cost a small operation may not repay. So each
// backend does one await per operation (key imports and the operation are
// chained in JS through a Go callback that never blocks), and
// installWebCrypto installs only the backends that win end to end
// (medians in headless Chromium, e2e's BenchmarkWebCrypto; the table is
// in PROTOCOL.md §13.5):
//
//   - X25519 shared secrets: installed (≈ 150 µs against Go's 228 µs;
//     a ratchet DH step 1.5× faster);
//   - X25519 public keys (key generation): kept in Go, whose fixed-base
//     tables (78 µs) beat an import plus a deriveBits (130 µs);
//   - Ed25519 for group messages: installed, with imported keys cached
//     (sign + verify 150 µs against 362 µs; a group message ≈ 2×);
//   - AES-256-GCM for bulk objects: installed (6–8×).
//
// Each backend is checked against Go on a known answer when the owner tab
// starts, in the background (feature detection that also catches a wrong
// implementation); one that is missing or disagrees is not installed, and
// the pure-Go default stays. A WebCrypto call that fails later falls back
// to Go for that call, so a browser quirk can cost speed but never a
// message.
//
// The backends block on promises: like every Await, they must never run on
// a js.FuncOf callback's goroutine. The engine only calls them from its own
// goroutines and from API calls, which run in goroutines of their own.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"sync"
	"syscall/js"
	"time"

	"filippo.io/edwards25519"
	"github.com/hack-pad/safejs"

	engine "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/senderkey"
)

// PKCS#8 (RFC 8410) prefixes: WebCrypto imports X25519 and Ed25519
// private keys only as PKCS#8 or JWK, never raw. The 32 key bytes (the
// X25519 scalar, the Ed25519 seed) follow.
var (
	pkcs8X25519  = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20}
	pkcs8Ed25519 = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
)

// Key cache bounds. Only public keys and the device's own group signing
// keys are cached, never an X25519 private key: a ratchet key must be gone
// once the ratchet has deleted it.
const (
	// maxVerifyKeys bounds cached Ed25519 public keys: one per sender
	// chain of every group member device this device reads.
	maxVerifyKeys = 1024
	// maxSignKeys bounds cached Ed25519 signing keys: one per group this
	// device sends to; a rotated chain's key is evicted as others arrive.
	maxSignKeys = 16
)

// webCrypto holds what every call needs: crypto.subtle and the algorithm
// objects, made once.
type webCrypto struct {
	subtle  js.Value
	u8      js.Value // Uint8Array
	promise js.Value // Promise
	x25519  js.Value // {name: "X25519"}
	ed25519 js.Value // {name: "Ed25519"}
	aesGCM  js.Value // {name: "AES-GCM"}
}

func newWebCrypto() (*webCrypto, error) {
	s, err := subtle()
	if err != nil {
		return nil, err
	}
	obj := func(name string) js.Value { return js.ValueOf(map[string]any{"name": name}) }
	return &webCrypto{
		subtle:  safejs.Unsafe(s),
		u8:      js.Global().Get("Uint8Array"),
		promise: js.Global().Get("Promise"),
		x25519:  obj("X25519"),
		ed25519: obj("Ed25519"),
		aesGCM:  obj("AES-GCM"),
	}, nil
}

// call runs subtle[method](args...) and returns its promise; a synchronous
// throw (an unsupported algorithm in some browsers) becomes an error.
func (w *webCrypto) call(method string, args ...any) (p js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("webcrypto: " + method + " threw")
		}
	}()
	return w.subtle.Call(method, args...), nil
}

// then returns Promise.all(ps).then(f): f runs as a JS callback with the
// settled values and must not block (it only starts the next WebCrypto
// call, whose promise it returns). It lets an operation chain its key
// imports and the operation itself behind a single Go await.
func (w *webCrypto) then(ps []any, f func(vals js.Value) (js.Value, error)) (js.Value, func()) {
	cb := js.FuncOf(func(_ js.Value, args []js.Value) any {
		v, err := f(args[0])
		if err != nil {
			return w.promise.Call("reject", js.Global().Get("Error").New(err.Error()))
		}
		return v
	})
	all := w.promise.Call("all", js.ValueOf(ps))
	return all.Call("then", cb), cb.Release
}

// await waits for p (jsutil's Await; a variant with one persistent
// callback bound per call measured no faster); release (if any) runs
// after it settles.
func (w *webCrypto) await(p js.Value, release func()) (js.Value, error) {
	v, err := Await(safejs.Safe(p))
	if release != nil {
		release()
	}
	return safejs.Unsafe(v), err
}

// bytesJS copies parts, concatenated, into a new Uint8Array.
func (w *webCrypto) bytesJS(parts ...[]byte) js.Value {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	u := w.u8.New(n)
	js.CopyBytesToJS(u, b)
	clear(b)
	return u
}

// importSecret imports key material and zeroes the JS copy at once:
// importKey copies its keyData before it returns the promise.
func (w *webCrypto) importSecret(format string, alg js.Value, usage string, parts ...[]byte) (js.Value, error) {
	u := w.bytesJS(parts...)
	defer u.Call("fill", 0)
	return w.call("importKey", format, u, alg, false, []any{usage})
}

// bytesGo copies an ArrayBuffer into dst (which must have its length).
func (w *webCrypto) bytesGo(dst []byte, buf js.Value) error {
	u := w.u8.New(buf)
	if u.Length() != len(dst) {
		return errors.New("webcrypto: unexpected result length")
	}
	js.CopyBytesToGo(dst, u)
	return nil
}

// ---- X25519 ----

// webX25519 is an x25519.Backend. PublicKey stays in Go (see the file
// comment); X25519 imports the scalar (PKCS#8) and the peer's key (raw)
// and derives 256 bits, behind one await.
type webX25519 struct {
	w    *webCrypto
	base js.Value // the base point u = 9 as a public CryptoKey, for PublicKey
}

func (x *webX25519) PublicKey(priv *[x25519.Size]byte) [x25519.Size]byte {
	var out [x25519.Size]byte
	if err := x.derive(&out, priv, nil); err != nil {
		out = x25519.PurePublicKey(priv)
	}
	return out
}

func (x *webX25519) X25519(priv, pub *[x25519.Size]byte) ([x25519.Size]byte, error) {
	var out [x25519.Size]byte
	if err := x.derive(&out, priv, pub[:]); err == nil {
		return out, nil
	}
	// WebCrypto refuses a low-order peer key (an all-zero result) with an
	// OperationError, as it refuses anything it cannot do: compute in Go
	// and let the caller see the zero secret as x25519.ErrLowOrder.
	return x25519.PureX25519(priv, pub), nil
}

// derive computes X25519(priv, pub) into out; pub nil means the base point.
func (x *webX25519) derive(out *[x25519.Size]byte, priv *[x25519.Size]byte, pub []byte) error {
	w := x.w
	pk, err := w.importSecret("pkcs8", w.x25519, "deriveBits", pkcs8X25519, priv[:])
	if err != nil {
		return err
	}
	var peer any = x.base
	if pub != nil {
		if peer, err = w.call("importKey", "raw", w.bytesJS(pub), w.x25519, true, []any{}); err != nil {
			return err
		}
	}
	p, release := w.then([]any{pk, peer}, func(keys js.Value) (js.Value, error) {
		alg := js.Global().Get("Object").New()
		alg.Set("name", "X25519")
		alg.Set("public", keys.Index(1))
		return w.call("deriveBits", alg, keys.Index(0), 256)
	})
	bits, err := w.await(p, release)
	if err != nil {
		return err
	}
	return w.bytesGo(out[:], bits)
}

// ---- Ed25519 ----

// webEd25519 is a senderkey.Ed25519. Imported CryptoKeys are cached per
// key (bounded), so a steady group conversation costs one WebCrypto call
// per signature and one per verification.
type webEd25519 struct {
	w *webCrypto

	mu     sync.Mutex
	sign   map[string]js.Value // by the 64-byte private key
	verify map[string]js.Value // by the 32-byte public key
}

func newWebEd25519(w *webCrypto) *webEd25519 {
	return &webEd25519{w: w, sign: map[string]js.Value{}, verify: map[string]js.Value{}}
}

// key returns the CryptoKey for k from m, importing it with imp (one
// await) on a miss and caching it, evicting an arbitrary entry when m is
// full. A hit costs nothing: the operation itself is then the only await.
func (e *webEd25519) key(m map[string]js.Value, limit int, k string, imp func() (js.Value, error)) (js.Value, error) {
	e.mu.Lock()
	v, ok := m[k]
	e.mu.Unlock()
	if ok {
		return v, nil
	}
	p, err := imp()
	if err != nil {
		return js.Undefined(), err
	}
	if v, err = e.w.await(p, nil); err != nil {
		return js.Undefined(), err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(m) >= limit {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
	return v, nil
}

func (e *webEd25519) Sign(priv ed25519.PrivateKey, message []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("ed25519: bad private key length")
	}
	sig, err := e.signJS(priv, message)
	if err != nil {
		return ed25519.Sign(priv, message), nil
	}
	return sig, nil
}

func (e *webEd25519) signJS(priv ed25519.PrivateKey, message []byte) ([]byte, error) {
	w := e.w
	key, err := e.key(e.sign, maxSignKeys, string(priv), func() (js.Value, error) {
		return w.importSecret("pkcs8", w.ed25519, "sign", pkcs8Ed25519, priv.Seed())
	})
	if err != nil {
		return nil, err
	}
	p, err := w.call("sign", w.ed25519, key, w.bytesJS(message))
	if err != nil {
		return nil, err
	}
	v, err := w.await(p, nil)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, ed25519.SignatureSize)
	return sig, w.bytesGo(sig, v)
}

func (e *webEd25519) Verify(pub ed25519.PublicKey, message, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	ok, err := e.verifyJS(pub, message, sig)
	if err != nil {
		return ed25519.Verify(pub, message, sig)
	}
	return ok
}

func (e *webEd25519) verifyJS(pub ed25519.PublicKey, message, sig []byte) (bool, error) {
	w := e.w
	key, err := e.key(e.verify, maxVerifyKeys, string(pub), func() (js.Value, error) {
		return w.call("importKey", "raw", w.bytesJS(pub), w.ed25519, true, []any{"verify"})
	})
	if err != nil {
		return false, err
	}
	p, err := w.call("verify", w.ed25519, key, w.bytesJS(sig), w.bytesJS(message))
	if err != nil {
		return false, err
	}
	v, err := w.await(p, nil)
	if err != nil {
		return false, err
	}
	return v.Truthy(), nil
}

// ---- AES-256-GCM for bulk objects ----

// webAESGCM is a client.BulkCipher: SubtleCrypto AES-GCM with a 128-bit
// tag, whose output (ciphertext || tag) is the same bytes as Go's
// cipher.AEAD.Seal. The key is imported per chunk (one more promise per
// 256 KiB, noise) so no attachment key outlives its use.
type webAESGCM struct{ w *webCrypto }

func (a webAESGCM) Seal(key, nonce, plaintext, ad []byte) ([]byte, error) {
	return a.do("encrypt", key, nonce, plaintext, ad, len(plaintext)+16)
}

func (a webAESGCM) Open(key, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(ciphertext) < 16 {
		return nil, errors.New("bulk cipher: ciphertext too short")
	}
	return a.do("decrypt", key, nonce, ciphertext, ad, len(ciphertext)-16)
}

func (a webAESGCM) do(method string, key, nonce, in, ad []byte, outLen int) ([]byte, error) {
	if len(key) != 32 || len(nonce) != 12 {
		return nil, errors.New("bulk cipher: bad key or nonce size")
	}
	w := a.w
	k, err := w.importSecret("raw", w.aesGCM, method, key)
	if err != nil {
		return nil, err
	}
	alg := js.Global().Get("Object").New()
	alg.Set("name", "AES-GCM")
	alg.Set("iv", w.bytesJS(nonce))
	alg.Set("additionalData", w.bytesJS(ad))
	alg.Set("tagLength", 128)
	data := w.bytesJS(in)
	p, release := w.then([]any{k}, func(keys js.Value) (js.Value, error) {
		return w.call(method, alg, keys.Index(0), data)
	})
	v, err := w.await(p, release)
	if err != nil {
		if method == "decrypt" {
			return nil, errors.New("bulk cipher: message authentication failed")
		}
		return nil, err
	}
	out := make([]byte, outLen)
	return out, w.bytesGo(out, v)
}

// ---- detection and installation ----

// webBackends are the WebCrypto implementations this browser passed the
// start-up checks for (nil where it did not).
type webBackends struct {
	X25519  *webX25519
	Ed25519 *webEd25519
	Bulk    engine.BulkCipher
}

// detectWebCrypto checks each backend against Go on a fixed input. Errors
// are expected in browsers without the algorithm and are not reported.
func detectWebCrypto() webBackends {
	var b webBackends
	w, err := newWebCrypto()
	if err != nil {
		return b
	}
	seed := sha256.Sum256([]byte("parley/webcrypto-selftest"))

	// X25519: a shared secret equal to the pure-Go one (tested against
	// crypto/ecdh in crypto/ratchet/x25519).
	xb := &webX25519{w: w}
	if base, err := w.call("importKey", "raw", w.bytesJS(basePoint[:]), w.x25519, true, []any{}); err == nil {
		if xb.base, err = w.await(base, nil); err == nil {
			other := sha256.Sum256(seed[:])
			pub := x25519.PureX25519(&other, &basePoint)
			var got [32]byte
			if xb.derive(&got, &seed, pub[:]) == nil && got == x25519.PureX25519(&seed, &pub) {
				b.X25519 = xb
			}
		}
	}

	// Ed25519: RFC 8032 signatures are deterministic, so WebCrypto's must
	// be Go's byte for byte, and verify.
	eb := newWebEd25519(w)
	priv := ed25519.NewKeyFromSeed(seed[:])
	msg := []byte("parley webcrypto self-test")
	if sig, err := eb.signJS(priv, msg); err == nil && bytes.Equal(sig, ed25519.Sign(priv, msg)) {
		pub := priv.Public().(ed25519.PublicKey)
		ok, err := eb.verifyJS(pub, msg, sig)
		sig[0] ^= 1
		bad, err2 := eb.verifyJS(pub, msg, sig)
		if err == nil && err2 == nil && ok && !bad {
			b.Ed25519 = eb
		}
	}

	// AES-256-GCM: the same sealed bytes as crypto/cipher.
	ab := webAESGCM{w: w}
	nonce, ad, pt := seed[:12], []byte("ad"), bytes.Repeat(seed[:], 3)
	block, _ := aes.NewCipher(seed[:])
	g, _ := cipher.NewGCM(block)
	if ct, err := ab.Seal(seed[:], nonce, pt, ad); err == nil && bytes.Equal(ct, g.Seal(nil, nonce, pt, ad)) {
		if back, err := ab.Open(seed[:], nonce, ct, ad); err == nil && bytes.Equal(back, pt) {
			b.Bulk = ab
		}
	}
	return b
}

// basePoint is u = 9.
var basePoint = [32]byte{9}

// installed is what installWebCrypto put in place (nil: pure Go); read it
// only after installDone is closed.
var installed struct {
	x25519  x25519.Backend
	ed25519 senderkey.Ed25519
	bulk    engine.BulkCipher
	took    time.Duration // the start-up checks
}

var (
	installOnce sync.Once
	installDone = make(chan struct{})
)

// installWebCrypto starts the checks and returns the BulkCipher for the
// engine's Config. It runs in the owner tab before the engine opens, once.
// The checks (10–20 ms of promises) run in the background, off the path to
// parley.ready: until they finish, X25519 and Ed25519 are Go's (the seams
// are atomic, installing later is safe), and a bulk operation waits for
// them.
func installWebCrypto() engine.BulkCipher {
	installOnce.Do(func() {
		go func() {
			defer close(installDone)
			<-afterReady // not on the path to parley.ready (main.go)
			t0 := time.Now()
			b := detectWebCrypto()
			installed.took = time.Since(t0)
			if b.X25519 != nil {
				installed.x25519 = goPublicKey{b.X25519}
				x25519.SetBackend(installed.x25519)
			}
			if b.Ed25519 != nil {
				installed.ed25519 = b.Ed25519
				senderkey.SetEd25519(installed.ed25519)
				// Prekey, device-list and link signatures too.
				identity.SetVerifier(installed.ed25519.Verify)
			}
			installed.bulk = b.Bulk
		}()
	})
	return lazyBulk{}
}

// lazyBulk is WebCrypto's AES-GCM once the checks passed, else Go's.
// Reading installed after installDone is closed is race-free.
type lazyBulk struct{}

func (lazyBulk) cipher() engine.BulkCipher {
	select {
	case <-installDone:
		if installed.bulk != nil {
			return installed.bulk
		}
	case <-time.After(maxCheckWait):
		// Checks that never finish (a promise that never settles) cost
		// the speed-up, not the file.
	}
	return goBulk{}
}

// maxCheckWait bounds how long a bulk operation waits for the start-up
// checks, which take milliseconds.
const maxCheckWait = 5 * time.Second

func (l lazyBulk) Seal(key, nonce, plaintext, ad []byte) ([]byte, error) {
	return l.cipher().Seal(key, nonce, plaintext, ad)
}

func (l lazyBulk) Open(key, nonce, ciphertext, ad []byte) ([]byte, error) {
	return l.cipher().Open(key, nonce, ciphertext, ad)
}

// goBulk is the engine's default BulkCipher (crypto/aes), for when
// WebCrypto's is not installed.
type goBulk struct{}

func (goBulk) gcm(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != 32 || len(nonce) != 12 {
		return nil, errors.New("bulk cipher: bad key or nonce size")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (g goBulk) Seal(key, nonce, plaintext, ad []byte) ([]byte, error) {
	a, err := g.gcm(key, nonce)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nonce, plaintext, ad), nil
}

func (g goBulk) Open(key, nonce, ciphertext, ad []byte) ([]byte, error) {
	a, err := g.gcm(key, nonce)
	if err != nil {
		return nil, err
	}
	return a.Open(nil, nonce, ciphertext, ad)
}

// goPublicKey keeps key generation in Go and sends shared secrets to
// WebCrypto.
type goPublicKey struct{ web *webX25519 }

// PublicKey is x25519's own fixed-base computation (Edwards form, then
// u = (1+y)/(1-y)), which the package no longer reaches once a backend is
// installed.
func (goPublicKey) PublicKey(priv *[x25519.Size]byte) [x25519.Size]byte {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(priv[:])
	if err != nil {
		panic("x25519: clamping a 32-byte scalar failed: " + err.Error())
	}
	var out [x25519.Size]byte
	copy(out[:], new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery())
	return out
}

func (g goPublicKey) X25519(priv, pub *[x25519.Size]byte) ([x25519.Size]byte, error) {
	return g.web.X25519(priv, pub)
}
