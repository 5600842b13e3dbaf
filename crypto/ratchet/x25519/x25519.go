// Package x25519 is the X25519 function (RFC 7748) as the ratchet and PQXDH
// use it: on raw 32-byte keys, with a fast key generation.
//
// Why not crypto/ecdh directly: ecdh.NewPrivateKey always computes the public
// key, so rebuilding a stored ratchet key (every load from IndexedDB) would
// cost a full scalar multiplication (≈ 240 µs in Go-wasm) before any DH, and
// GenerateKey uses the generic Montgomery ladder for the base point. Here
//
//   - GenerateKey multiplies the fixed base point on the Edwards form with
//     precomputed tables (filippo.io/edwards25519, the code behind
//     crypto/ed25519) and maps the result to Montgomery u = (1+y)/(1-y), about
//     twice as fast as the ladder;
//   - X25519 is the constant-time Montgomery ladder of RFC 7748, over the
//     same field arithmetic (filippo.io/edwards25519/field), on a raw scalar.
//
// Both agree with crypto/ecdh bit for bit; the tests check it on random keys
// and on the RFC 7748 vectors.
//
// The package is also the seam for a faster implementation: in Chromium,
// WebCrypto's X25519 is 5–6× faster than Go compiled to wasm, so the wasm
// binding may install one with SetBackend. crypto/ never imports
// syscall/js; the default stays pure Go.
package x25519

import (
	"crypto/rand"
	"errors"
	"io"
	"sync/atomic"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Size is the length of scalars, public keys and shared secrets.
const Size = 32

// ErrLowOrder is returned when the peer's public key yields the all-zero
// shared secret (a low-order point), which RFC 7748 §6.1 says to refuse: it
// would make the DH contribute nothing.
var ErrLowOrder = errors.New("x25519: low-order public key")

// GenerateKey reads 32 bytes from rand (crypto/rand if nil) as the private
// scalar and returns it with its public key. Reading the scalar from rand,
// rather than letting a library pick it, is what makes the test vectors
// reproducible from a seed.
func GenerateKey(r io.Reader) (priv, pub [Size]byte, err error) {
	if r == nil {
		r = rand.Reader
	}
	if _, err = io.ReadFull(r, priv[:]); err != nil {
		return priv, pub, err
	}
	pub = PublicKey(&priv)
	return priv, pub, nil
}

// Backend is an X25519 implementation that can replace the pure-Go one. It
// must compute exactly RFC 7748's function (scalars are clamped, the top bit
// of a u-coordinate is ignored); the caller still refuses an all-zero
// shared secret.
type Backend interface {
	// PublicKey returns X25519(priv, 9).
	PublicKey(priv *[Size]byte) [Size]byte
	// X25519 returns X25519(priv, pub), or an error if the backend failed.
	X25519(priv, pub *[Size]byte) ([Size]byte, error)
}

var backend atomic.Pointer[Backend]

// SetBackend installs b for every later call in the process; nil restores
// the pure-Go implementation. Call it once at start-up.
func SetBackend(b Backend) {
	if b == nil {
		backend.Store(nil)
		return
	}
	backend.Store(&b)
}

// PublicKey returns X25519(priv, 9), computed on the Edwards curve with the
// fixed-base tables (or by the installed Backend).
func PublicKey(priv *[Size]byte) [Size]byte {
	if b := backend.Load(); b != nil {
		return (*b).PublicKey(priv)
	}
	return publicKey(priv)
}

// LadderPublicKey is X25519(priv, 9) by the Montgomery ladder, without the
// fixed-base tables PublicKey uses: for a key derived while nothing else
// has built them yet (the device key, loaded at start-up), where building
// them costs ≈ 8 ms in Go-wasm against ≈ 0.2–0.4 ms for one ladder.
func LadderPublicKey(priv *[Size]byte) [Size]byte {
	base := [Size]byte{9}
	var out [Size]byte
	scalarMult(&out, priv, &base)
	return out
}

// PurePublicKey is PublicKey in pure Go, whatever Backend is installed: the
// fallback for a Backend that fails.
func PurePublicKey(priv *[Size]byte) [Size]byte { return publicKey(priv) }

// PureX25519 is RFC 7748's function in pure Go, whatever Backend is
// installed: the fallback for a Backend that fails. Unlike X25519 it
// returns the all-zero output of a low-order point as it is.
func PureX25519(priv, pub *[Size]byte) [Size]byte {
	var out [Size]byte
	scalarMult(&out, priv, pub)
	return out
}

func publicKey(priv *[Size]byte) [Size]byte {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(priv[:])
	if err != nil {
		panic("x25519: clamping a 32-byte scalar failed: " + err.Error())
	}
	var out [Size]byte
	copy(out[:], new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery())
	return out
}

// X25519 returns the shared secret of priv and the peer's pub, or
// ErrLowOrder.
func X25519(priv, pub *[Size]byte) ([Size]byte, error) {
	var out [Size]byte
	if b := backend.Load(); b != nil {
		var err error
		if out, err = (*b).X25519(priv, pub); err != nil {
			return out, err
		}
	} else {
		scalarMult(&out, priv, pub)
	}
	var acc byte
	for _, b := range out {
		acc |= b
	}
	if acc == 0 {
		return out, ErrLowOrder
	}
	return out, nil
}

// scalarMult is the Montgomery ladder of RFC 7748 section 5, written from
// its pseudocode: constant time (a fixed 255 steps, conditional swaps by
// masking), on the clamped scalar, with a24 = 121665.
func scalarMult(dst, scalar, point *[Size]byte) {
	var k [32]byte
	copy(k[:], scalar[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64

	var x1, x2, z2, x3, z3 field.Element
	var a, aa, b, bb, e, c, d, da, cb, t field.Element
	if _, err := x1.SetBytes(point[:]); err != nil { // ignores the top bit, as RFC 7748 says
		panic("x25519: SetBytes on 32 bytes failed: " + err.Error())
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()

	swap := 0
	for pos := 254; pos >= 0; pos-- {
		bit := int(k[pos/8]>>uint(pos%8)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, &x1)
		x2.Multiply(&aa, &bb)
		t.Mult32(&e, 121665)
		t.Add(&aa, &t)
		z2.Multiply(&e, &t)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2) // z^(p-2); 0 for z = 0, giving the all-zero output
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())
	clear(k[:])
}
