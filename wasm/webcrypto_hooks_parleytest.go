//go:build js && wasm && parleytest

package main

// Test hooks for the WebCrypto backends (webcrypto_backends.go), compiled
// only with -tags parleytest: e2e's TestWebCryptoBackends checks each
// backend against Go on random inputs, and BenchmarkWebCrypto times the
// workloads with and without them, in the page's Go runtime.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall/js"
	"time"

	"github.com/hack-pad/safejs"

	engine "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/senderkey"
)

func init() { testHooks = append(testHooks, installWebCryptoHooks) }

var testBackends = sync.OnceValue(detectWebCrypto)

func installWebCryptoHooks(_ *client, parley js.Value) {
	t := parley.Get("__test")
	if t.IsUndefined() {
		t = js.Global().Get("Object").New()
		parley.Set("__test", t)
	}
	fn := func(name string, f func(args []js.Value) (any, error)) {
		t.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return f(args) })
		}))
	}
	// webcryptoInstalled() names what installWebCrypto put in place in this
	// tab (the owner's engine uses exactly these) and how long its start-up
	// checks took.
	fn("webcryptoInstalled", func([]js.Value) (any, error) {
		select {
		case <-installDone:
		case <-time.After(10 * time.Second):
			return nil, errors.New("the WebCrypto checks never finished (is this tab the owner?)")
		}
		return map[string]any{"x25519": installed.x25519 != nil, "ed25519": installed.ed25519 != nil, "bulk": installed.bulk != nil,
			"checkMs": float64(installed.took.Microseconds()) / 1000}, nil
	})
	// webcryptoCheck(n) compares every detected backend with Go on n random
	// inputs and the §14.4 known answer; resolves {name: problem} for each
	// backend, "" when it agrees.
	fn("webcryptoCheck", func(a []js.Value) (any, error) {
		b := testBackends()
		if b.X25519 == nil || b.Ed25519 == nil || b.Bulk == nil {
			return nil, fmt.Errorf("not detected: x25519 %v, ed25519 %v, bulk %v", b.X25519 != nil, b.Ed25519 != nil, b.Bulk != nil)
		}
		n := a[0].Int()
		res := map[string]any{}
		for name, check := range map[string]func(webBackends, int) error{
			"x25519": checkX25519, "ed25519": checkEd25519, "bulk": checkBulk, "bulkKnownAnswer": checkBulkKnownAnswer,
		} {
			res[name] = ""
			if err := check(b, n); err != nil {
				res[name] = err.Error()
			}
		}
		return res, nil
	})
	// webcryptoBench(workload, rounds, n) runs rounds of n operations with
	// pure Go and with the WebCrypto backends, alternately, and resolves
	// {go, web}: the µs per operation of each round, sorted.
	fn("webcryptoBench", func(a []js.Value) (any, error) {
		b := testBackends()
		w := benchWorkloads[a[0].String()]
		if w == nil {
			return nil, errors.New("unknown workload " + a[0].String())
		}
		rounds, n := a[1].Int(), a[2].Int()
		defer restoreInstalled()
		ops := map[bool]func() error{}
		for _, web := range []bool{false, true} {
			setBackends(b, web)
			var bulk engine.BulkCipher = goBulk{}
			if web {
				bulk = b.Bulk
			}
			op, err := w(b, web, bulk)
			if err != nil {
				return nil, err
			}
			if err := op(); err != nil { // warm caches and check once
				return nil, err
			}
			ops[web] = op
		}
		// Rounds alternate Go and WebCrypto, so a machine busy with other
		// work slows both alike.
		res := map[string][]float64{}
		for range rounds {
			for _, web := range []bool{false, true} {
				setBackends(b, web)
				t0 := time.Now()
				for range n {
					if err := ops[web](); err != nil {
						return nil, err
					}
				}
				name := map[bool]string{false: "go", true: "web"}[web]
				res[name] = append(res[name], float64(time.Since(t0).Microseconds())/float64(n))
			}
		}
		out := map[string]any{}
		for k, v := range res {
			slices.Sort(v)
			l := make([]any, len(v))
			for i, x := range v {
				l[i] = x
			}
			out[k] = l
		}
		return out, nil
	})
}

// setBackends installs the candidate WebCrypto backends (web) or none.
func setBackends(b webBackends, web bool) {
	if web {
		x25519.SetBackend(goPublicKey{b.X25519})
		senderkey.SetEd25519(b.Ed25519)
		identity.SetVerifier(b.Ed25519.Verify)
	} else {
		x25519.SetBackend(nil)
		senderkey.SetEd25519(nil)
		identity.SetVerifier(nil)
	}
}

// benchResponder is a device's prekeys for the setup workload
// (pqxdh.Prekeys), with one-time prekeys made ahead, as devices upload
// them.
type benchResponder struct {
	dev     *identity.Device
	spk     *identity.SignedPrekey
	kem     *identity.KEMPrekey
	oneTime []*identity.OneTimePrekey
}

func (r *benchResponder) SignedPrekey(id uint32) *identity.SignedPrekey { return r.spk }
func (r *benchResponder) KEMPrekey(id uint32) *identity.KEMPrekey       { return r.kem }
func (r *benchResponder) OneTimePrekey(id uint32) *identity.OneTimePrekey {
	for _, k := range r.oneTime {
		if k.Public.ID == id {
			return k
		}
	}
	return nil
}
func (r *benchResponder) Consume(uint32, bool, uint32, bool) error {
	r.oneTime = r.oneTime[1:]
	return nil
}

func restoreInstalled() {
	<-installDone
	if installed.x25519 != nil {
		x25519.SetBackend(installed.x25519)
	} else {
		x25519.SetBackend(nil)
	}
	if installed.ed25519 != nil {
		senderkey.SetEd25519(installed.ed25519)
		identity.SetVerifier(installed.ed25519.Verify)
	} else {
		senderkey.SetEd25519(nil)
		identity.SetVerifier(nil)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randLen(max int) int {
	var b [4]byte
	rand.Read(b[:])
	return int(binary.BigEndian.Uint32(b[:]) % uint32(max+1))
}

// pureX25519 is the x25519 package with no backend.
func pureX25519(priv, pub *[32]byte) ([32]byte, error) {
	x25519.SetBackend(nil)
	defer restoreInstalled()
	return x25519.X25519(priv, pub)
}

func checkX25519(b webBackends, n int) error {
	for i := range n {
		var priv, pub [32]byte
		copy(priv[:], random(32))
		copy(pub[:], random(32)) // any u, top bit set half the time
		if i%4 == 0 {
			pub = x25519.PublicKey(&priv) // a real key too
		}
		want, werr := pureX25519(&priv, &pub)
		got, gerr := b.X25519.X25519(&priv, &pub)
		if got != want || (werr == nil) != (gerr == nil) {
			return fmt.Errorf("X25519(%x, %x) = %x, %v; Go %x, %v", priv, pub, got, gerr, want, werr)
		}
		if b.X25519.PublicKey(&priv) != (goPublicKey{}).PublicKey(&priv) {
			return fmt.Errorf("PublicKey(%x) differs", priv)
		}
	}
	// A low-order point (u = 0 and u = 1): WebCrypto refuses, the backend
	// answers zeros, and the package turns that into ErrLowOrder.
	x25519.SetBackend(b.X25519)
	defer restoreInstalled()
	for _, u := range [][32]byte{{0}, {1}} {
		var priv [32]byte
		copy(priv[:], random(32))
		if _, err := x25519.X25519(&priv, &u); !errors.Is(err, x25519.ErrLowOrder) {
			return fmt.Errorf("low-order u=%x: %v, want ErrLowOrder", u[0], err)
		}
	}
	return nil
}

func checkEd25519(b webBackends, n int) error {
	for range n {
		_, priv, _ := ed25519.GenerateKey(nil)
		pub := priv.Public().(ed25519.PublicKey)
		msg := random(randLen(2048))
		sig, err := b.Ed25519.Sign(priv, msg)
		if err != nil {
			return err
		}
		if !bytes.Equal(sig, ed25519.Sign(priv, msg)) {
			return fmt.Errorf("signature differs from Go's (deterministic RFC 8032)")
		}
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("Go does not verify WebCrypto's signature")
		}
		if !b.Ed25519.Verify(pub, msg, ed25519.Sign(priv, msg)) {
			return errors.New("WebCrypto does not verify Go's signature")
		}
		bad := slices.Clone(sig)
		bad[randLen(63)] ^= 1 << randLen(7)
		if b.Ed25519.Verify(pub, msg, bad) {
			return errors.New("WebCrypto verified a altered signature")
		}
		if len(msg) > 0 && b.Ed25519.Verify(pub, append(msg[:len(msg)-1:len(msg)-1], msg[len(msg)-1]^1), sig) {
			return errors.New("WebCrypto verified an altered message")
		}
	}
	return nil
}

func checkBulk(b webBackends, n int) error {
	for i := range n {
		key, nonce, ad := random(32), random(12), random(randLen(64))
		size := randLen(4096)
		if i%16 == 0 {
			size = engine.ChunkSize - randLen(1)
		}
		pt := random(size)
		ct, err := b.Bulk.Seal(key, nonce, pt, ad)
		if err != nil {
			return err
		}
		want, _ := goBulk{}.Seal(key, nonce, pt, ad)
		if !bytes.Equal(ct, want) {
			return fmt.Errorf("Seal of %d bytes differs from Go's", size)
		}
		if back, err := (goBulk{}).Open(key, nonce, ct, ad); err != nil || !bytes.Equal(back, pt) {
			return fmt.Errorf("Go does not open WebCrypto's seal: %v", err)
		}
		if back, err := b.Bulk.Open(key, nonce, want, ad); err != nil || !bytes.Equal(back, pt) {
			return fmt.Errorf("WebCrypto does not open Go's seal: %v", err)
		}
		ct[randLen(len(ct)-1)] ^= 1
		if _, err := b.Bulk.Open(key, nonce, ct, ad); err == nil {
			return errors.New("WebCrypto opened an altered ciphertext")
		}
	}
	return nil
}

// sealChunks seals pt as a bulk object (PROTOCOL.md §14.4: nonce_i =
// 0x00000000 ‖ u64 i, ad_i = label ‖ 0x00 ‖ u64 i ‖ u8 final) and returns
// the sealed object; digest, if set, hashes it as it goes (as the engine
// does for the reference's digest).
func sealChunks(c engine.BulkCipher, key []byte, label string, pt []byte, digest bool) ([]byte, error) {
	chunks := max((len(pt)+engine.ChunkSize-1)/engine.ChunkSize, 1)
	out := make([]byte, 0, len(pt)+16*chunks)
	h := sha256.New()
	for i := range chunks {
		lo, hi := i*engine.ChunkSize, min((i+1)*engine.ChunkSize, len(pt))
		nonce := binary.BigEndian.AppendUint64(make([]byte, 4, 12), uint64(i))
		ad := binary.BigEndian.AppendUint64(append([]byte(label), 0), uint64(i))
		ad = append(ad, map[bool]byte{false: 0, true: 1}[i == chunks-1])
		ct, err := c.Seal(key, nonce, pt[lo:hi], ad)
		if err != nil {
			return nil, err
		}
		if digest {
			h.Write(ct)
		}
		out = append(out, ct...)
	}
	return out, nil
}

// checkBulkKnownAnswer is PROTOCOL.md §14.4's vector through WebCrypto.
func checkBulkKnownAnswer(b webBackends, _ int) error {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	pt := make([]byte, 655360)
	for i := range pt {
		pt[i] = byte(i % 251)
	}
	sealed, err := sealChunks(b.Bulk, key, "parley/attachment/v1", pt, false)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(sealed)
	switch {
	case len(sealed) != 655408:
		return fmt.Errorf("sealed %d bytes, want 655408", len(sealed))
	case hex.EncodeToString(sum[:]) != "5f0fa4d824615de0e184907d337213213255ee2f843d87324fc214f8aa7875de":
		return fmt.Errorf("sealed object SHA-256 %x", sum)
	case hex.EncodeToString(sealed[len(sealed)-16:]) != "eef6d44f0902041fc21ab04b018e6cad":
		return fmt.Errorf("last tag %x", sealed[len(sealed)-16:])
	}
	return nil
}

// A benchWorkload builds fixtures and returns one operation.
type benchWorkload func(b webBackends, web bool, bulk engine.BulkCipher) (func() error, error)

// setupBenchPrekeys is how many one-time prekeys a setup workload makes
// ahead: one per op of the benchmark's rounds (15 × 20) plus the check.
const setupBenchPrekeys = 400

// bulkBenchSize is the object the bulk workloads seal: 16 chunks, one blob.
const bulkBenchSize = 16 * engine.ChunkSize

var benchWorkloads = map[string]benchWorkload{
	// await: one Go await of an already resolved promise, the fixed cost
	// every WebCrypto call pays on top of its own work (the same either
	// way: a floor, not a comparison).
	"await": func(webBackends, bool, engine.BulkCipher) (func() error, error) {
		p := js.Global().Get("Promise")
		return func() error {
			_, err := Await(safejs.Safe(p.Call("resolve", 1)))
			return err
		}, nil
	},
	"x25519": func(webBackends, bool, engine.BulkCipher) (func() error, error) {
		var priv, pub [32]byte
		copy(priv[:], random(32))
		copy(pub[:], random(32))
		return func() error {
			_, err := x25519.X25519(&priv, &pub)
			priv[0]++ // a fresh key every time, as in the ratchet
			return err
		}, nil
	},
	// x25519-keygen: the public key of a fresh scalar (WebCrypto: import
	// plus deriveBits with the base point; Go: the fixed-base tables).
	"x25519-keygen": func(b webBackends, web bool, _ engine.BulkCipher) (func() error, error) {
		var priv [32]byte
		copy(priv[:], random(32))
		var impl x25519.Backend = goPublicKey{}
		if web {
			impl = b.X25519
		}
		return func() error {
			impl.PublicKey(&priv)
			priv[0]++
			return nil
		}, nil
	},
	// ed25519: sign then verify a 1 KiB message with the same cached keys,
	// as a group conversation does.
	"ed25519": func(b webBackends, web bool, _ engine.BulkCipher) (func() error, error) {
		_, priv, _ := ed25519.GenerateKey(nil)
		pub := priv.Public().(ed25519.PublicKey)
		msg := random(1024)
		var impl senderkey.Ed25519 = goEd25519{}
		if web {
			impl = b.Ed25519
		}
		return func() error {
			sig, err := impl.Sign(priv, msg)
			if err != nil {
				return err
			}
			if !impl.Verify(pub, msg, sig) {
				return errors.New("signature does not verify")
			}
			return nil
		}, nil
	},
	// group: a 1 KiB sender-key message encrypted and signed, then
	// verified and decrypted by a member (bench/cryptobench Group1KiB).
	"group": func(webBackends, bool, engine.BulkCipher) (func() error, error) {
		s, err := senderkey.NewSender(nil, []byte("bench-group"))
		if err != nil {
			return nil, err
		}
		enc, err := s.Distribution().MarshalBinary()
		if err != nil {
			return nil, err
		}
		dist, err := senderkey.UnmarshalDistribution(enc)
		if err != nil {
			return nil, err
		}
		rc, err := senderkey.NewReceiver(dist)
		if err != nil {
			return nil, err
		}
		pt := random(1024)
		return func() error {
			m, err := s.Encrypt(pt)
			if err != nil {
				return err
			}
			got, err := rc.Decrypt(m)
			if err == nil && !bytes.Equal(got, pt) {
				err = errors.New("group message differs")
			}
			return err
		}, nil
	},
	// pingpong: 1 KiB ratchet messages whose sender alternates, so each
	// costs a DH step (keygen + 2 X25519; bench/cryptobench PingPong1KiB).
	// setup: a session start as bench/cryptobench measures it (the
	// Setup row of make bench): the initiator checks the bundle and runs
	// PQXDH, encrypts a first 1 KiB message; the responder decodes it,
	// runs PQXDH and decrypts. Each op uses a fresh one-time prekey.
	"setup": func(webBackends, bool, engine.BulkCipher) (func() error, error) {
		initiator, err := identity.NewDevice(nil)
		if err != nil {
			return nil, err
		}
		r := &benchResponder{}
		if r.dev, err = identity.NewDevice(nil); err != nil {
			return nil, err
		}
		now := time.Now()
		if r.spk, err = r.dev.NewSignedPrekey(nil, 1, now); err != nil {
			return nil, err
		}
		if r.kem, err = r.dev.NewKEMPrekey(nil, 1, now, true); err != nil {
			return nil, err
		}
		for id := uint32(1); len(r.oneTime) < setupBenchPrekeys; id += 100 { // 100: NewOneTimePrekeys' limit
			ks, err := identity.NewOneTimePrekeys(nil, id, 100)
			if err != nil {
				return nil, err
			}
			r.oneTime = append(r.oneTime, ks...)
		}
		pt := random(1024)
		return func() error {
			if len(r.oneTime) == 0 {
				return errors.New("setup bench: out of one-time prekeys")
			}
			bundle := &identity.Bundle{Device: r.dev.Public(), SignedPrekey: r.spk.Public, KEMPrekey: r.kem.Public, OneTime: &r.oneTime[0].Public}
			a, tmpl, err := pqxdh.Initiate(nil, initiator, r.dev.Public(), bundle)
			if err != nil {
				return err
			}
			if tmpl.Message, err = a.Encrypt(nil, pt); err != nil {
				return err
			}
			enc, err := tmpl.MarshalBinary()
			if err != nil {
				return err
			}
			m, err := pqxdh.UnmarshalInitialMessage(enc)
			if err != nil {
				return err
			}
			_, got, err := pqxdh.Respond(r.dev, r, m)
			if err == nil && !bytes.Equal(got, pt) {
				err = errors.New("first message differs")
			}
			return err
		}, nil
	},
	"pingpong": func(webBackends, bool, engine.BulkCipher) (func() error, error) {
		sk, ad := random(32), random(32)
		var priv [32]byte
		copy(priv[:], random(32))
		a, err := ratchet.NewInitiator(sk, ad, priv)
		if err != nil {
			return nil, err
		}
		b, err := ratchet.NewResponder(sk, ad, x25519.PublicKey(&priv))
		if err != nil {
			return nil, err
		}
		pt := random(1024)
		from, to := b, a
		return func() error {
			m, err := from.Encrypt(nil, pt)
			if err != nil {
				return err
			}
			got, err := to.Decrypt(m)
			if err == nil && !bytes.Equal(got, pt) {
				err = errors.New("ratchet message differs")
			}
			from, to = to, from
			return err
		}, nil
	},
	// bulk-seal: AES-256-GCM over a 4 MiB object in 256 KiB chunks.
	"bulk-seal": func(_ webBackends, _ bool, c engine.BulkCipher) (func() error, error) {
		pt, key := random(bulkBenchSize), random(32)
		return func() error {
			_, err := sealChunks(c, key, "parley/attachment/v1", pt, false)
			return err
		}, nil
	},
	// attachment-seal: bulk-seal plus the SHA-256 digest the engine
	// computes over the sealed bytes (Go in both cases).
	"attachment-seal": func(_ webBackends, _ bool, c engine.BulkCipher) (func() error, error) {
		pt, key := random(bulkBenchSize), random(32)
		return func() error {
			_, err := sealChunks(c, key, "parley/attachment/v1", pt, true)
			return err
		}, nil
	},
	// bulk-open: the receiver's side of bulk-seal.
	"bulk-open": func(_ webBackends, _ bool, c engine.BulkCipher) (func() error, error) {
		pt, key := random(bulkBenchSize), random(32)
		sealed, err := sealChunks(goBulk{}, key, "parley/attachment/v1", pt, false)
		if err != nil {
			return nil, err
		}
		step := engine.ChunkSize + 16
		return func() error {
			for i := 0; i*step < len(sealed); i++ {
				nonce := binary.BigEndian.AppendUint64(make([]byte, 4, 12), uint64(i))
				ad := binary.BigEndian.AppendUint64(append([]byte("parley/attachment/v1"), 0), uint64(i))
				ad = append(ad, map[bool]byte{false: 0, true: 1}[(i+1)*step >= len(sealed)])
				if _, err := c.Open(key, nonce, sealed[i*step:min((i+1)*step, len(sealed))], ad); err != nil {
					return err
				}
			}
			return nil
		}, nil
	},
}

type goEd25519 struct{}

func (goEd25519) Sign(priv ed25519.PrivateKey, msg []byte) ([]byte, error) {
	return ed25519.Sign(priv, msg), nil
}

func (goEd25519) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	return ed25519.Verify(pub, msg, sig)
}
