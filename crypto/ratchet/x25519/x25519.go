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
//   - X25519 is the constant-time Montgomery ladder of Go's crypto/ecdh, over
//     the same field arithmetic, on a raw scalar.
//
// Both agree with crypto/ecdh bit for bit; the tests check it on random keys
// and on the RFC 7748 vectors. The package is the seam where a faster backend
// (WebCrypto in the browser) could be plugged in later.
package x25519

import (
	"crypto/rand"
	"errors"
	"io"

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

// PublicKey returns X25519(priv, 9), computed on the Edwards curve with the
// fixed-base tables.
func PublicKey(priv *[Size]byte) [Size]byte {
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
	scalarMult(&out, priv, pub)
	var acc byte
	for _, b := range out {
		acc |= b
	}
	if acc == 0 {
		return out, ErrLowOrder
	}
	return out, nil
}

// scalarMult is crypto/ecdh's x25519ScalarMult (Go 1.26), unchanged but for
// the array types.
func scalarMult(dst, scalar, point *[Size]byte) {
	var e [32]byte
	copy(e[:], scalar[:])
	e[0] &= 248
	e[31] &= 127
	e[31] |= 64

	var x1, x2, z2, x3, z3, tmp0, tmp1 field.Element
	if _, err := x1.SetBytes(point[:]); err != nil {
		panic("x25519: SetBytes on 32 bytes failed: " + err.Error())
	}
	x2.One()
	x3.Set(&x1)
	z3.One()

	swap := 0
	for pos := 254; pos >= 0; pos-- {
		b := e[pos/8] >> uint(pos&7)
		b &= 1
		swap ^= int(b)
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = int(b)

		tmp0.Subtract(&x3, &z3)
		tmp1.Subtract(&x2, &z2)
		x2.Add(&x2, &z2)
		z2.Add(&x3, &z3)
		z3.Multiply(&tmp0, &x2)
		z2.Multiply(&z2, &tmp1)
		tmp0.Square(&tmp1)
		tmp1.Square(&x2)
		x3.Add(&z3, &z2)
		z2.Subtract(&z3, &z2)
		x2.Multiply(&tmp1, &tmp0)
		tmp1.Subtract(&tmp1, &tmp0)
		z2.Square(&z2)

		z3.Mult32(&tmp1, 121666)
		x3.Square(&x3)
		tmp0.Add(&tmp0, &z3)
		z3.Multiply(&x1, &z2)
		z2.Multiply(&tmp1, &tmp0)
	}

	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())
}
