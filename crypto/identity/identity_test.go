package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

var t0 = time.Unix(1_780_000_000, 0)

func mustDevice(t testing.TB, seed string) *Device {
	t.Helper()
	d, err := NewDevice(newDetRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func makeBundle(t testing.TB, r io.Reader, d *Device, withOTP bool) (*Bundle, *SignedPrekey, *KEMPrekey, *OneTimePrekey) {
	t.Helper()
	spk, err := d.NewSignedPrekey(r, 7, t0)
	if err != nil {
		t.Fatal(err)
	}
	kpk, err := d.NewKEMPrekey(r, 9, t0, true)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Device: d.Public(), SignedPrekey: spk.Public, KEMPrekey: kpk.Public}
	var otp *OneTimePrekey
	if withOTP {
		otps, err := NewOneTimePrekeys(r, 100, 1)
		if err != nil {
			t.Fatal(err)
		}
		otp = otps[0]
		b.OneTime = &otp.Public
	}
	return b, spk, kpk, otp
}

func TestDeviceIDString(t *testing.T) {
	id, err := NewDeviceID(newDetRand("id"))
	if err != nil {
		t.Fatal(err)
	}
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("bad id string %q", s)
	}
	got, err := ParseDeviceID(s)
	if err != nil || got != id {
		t.Fatalf("ParseDeviceID(%q) = %v, %v", s, got, err)
	}
	for _, bad := range []string{"", s[:31], strings.ToUpper(s), s + "0", strings.Repeat("0", 32), strings.Repeat("g", 32)} {
		if _, err := ParseDeviceID(bad); !errors.Is(err, ErrBadDeviceID) {
			t.Errorf("ParseDeviceID(%q) err = %v", bad, err)
		}
	}
}

func TestAccountRoundTrip(t *testing.T) {
	a, err := NewAccount(newDetRand("account"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := a.MarshalBinary()
	a2, err := UnmarshalAccount(b)
	if err != nil {
		t.Fatal(err)
	}
	if !a2.Public().Equal(a.Public()) {
		t.Fatal("public key changed")
	}
	sig := a2.Sign(PurposeDeviceList, []byte("msg"))
	if err := VerifySignature(a.Public(), PurposeDeviceList, []byte("msg"), sig); err != nil {
		t.Fatal(err)
	}
	// The same signature must not verify for another purpose.
	if err := VerifySignature(a.Public(), PurposeAccountSignsDevice, []byte("msg"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cross-purpose verify: %v", err)
	}
	if err := VerifySignature(a.Public()[:31], PurposeDeviceList, []byte("msg"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("short key: %v", err)
	}
	if err := VerifySignature(a.Public(), "", []byte("msg"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("empty purpose: %v", err)
	}
	if _, err := UnmarshalAccount(append(b, 0)); !errors.Is(err, wire.ErrTrailing) {
		t.Fatalf("trailing: %v", err)
	}
	b[0] = 2
	if _, err := UnmarshalAccount(b); !errors.Is(err, wire.ErrVersion) {
		t.Fatalf("version: %v", err)
	}
}

func TestDeviceRoundTrip(t *testing.T) {
	d := mustDevice(t, "device")
	b, _ := d.MarshalBinary()
	d2, err := UnmarshalDevice(b)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Public().Equal(d.Public()) {
		t.Fatal("device changed")
	}
	if _, err := UnmarshalDevice(b[:len(b)-1]); !errors.Is(err, wire.ErrShort) {
		t.Fatalf("short: %v", err)
	}
	pb, _ := d.Public().MarshalBinary()
	p, err := UnmarshalDevicePublic(pb)
	if err != nil || !p.Equal(d.Public()) {
		t.Fatalf("public round trip: %v", err)
	}
	if p.Fingerprint() != d.Public().Fingerprint() || len(p.Fingerprint()) != 39 {
		t.Fatalf("fingerprint %q", p.Fingerprint())
	}
	if mustDevice(t, "other").Public().Fingerprint() == p.Fingerprint() {
		t.Fatal("fingerprints collide")
	}
	// DH between two devices agrees, and the public key is the one
	// crypto/ecdh computes from the same private key.
	o := mustDevice(t, "other")
	dk, ok := d.DHKey(), o.DHKey()
	op, dp := o.Public().DHPub, d.Public().DHPub
	s1, err1 := x25519.X25519(&dk, &op)
	s2, err2 := x25519.X25519(&ok, &dp)
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatal("DH mismatch")
	}
	ek, err := ecdh.X25519().NewPrivateKey(dk[:])
	if err != nil || !bytes.Equal(ek.PublicKey().Bytes(), dp[:]) {
		t.Fatalf("device public key differs from crypto/ecdh's: %v", err)
	}
}

func TestPrekeysAndBundle(t *testing.T) {
	r := newDetRand("bundle")
	d := mustDevice(t, "device")
	b, spk, kpk, otp := makeBundle(t, r, d, true)
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	enc, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := UnmarshalBundle(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Verify(); err != nil {
		t.Fatal(err)
	}
	enc2, _ := b2.MarshalBinary()
	if !bytes.Equal(enc, enc2) {
		t.Fatal("bundle re-encoding differs")
	}

	// The KEM key works end to end.
	ek, err := b2.KEMPrekey.EncapsulationKey()
	if err != nil {
		t.Fatal(err)
	}
	ss, ct := ek.Encapsulate()
	ss2, err := kpk.DecapsulationKey().Decapsulate(ct)
	if err != nil || !bytes.Equal(ss, ss2) {
		t.Fatal("KEM mismatch")
	}

	// Private halves round trip.
	sb, _ := spk.MarshalBinary()
	if s2, err := UnmarshalSignedPrekey(sb); err != nil || s2.PrivateKey() != spk.PrivateKey() {
		t.Fatalf("signed prekey: %v", err)
	}
	kb, _ := kpk.MarshalBinary()
	if k2, err := UnmarshalKEMPrekey(kb); err != nil || !bytes.Equal(k2.DecapsulationKey().Bytes(), kpk.DecapsulationKey().Bytes()) {
		t.Fatalf("KEM prekey: %v", err)
	}
	ob, _ := otp.MarshalBinary()
	if o2, err := UnmarshalOneTimePrekey(ob); err != nil || o2.Public != otp.Public {
		t.Fatalf("one-time prekey: %v", err)
	}

	// Without a one-time prekey.
	b.OneTime = nil
	enc, _ = b.MarshalBinary()
	if b3, err := UnmarshalBundle(enc); err != nil || b3.OneTime != nil {
		t.Fatalf("no OTP: %v", err)
	}
}

func TestBundleTamper(t *testing.T) {
	d := mustDevice(t, "device")
	b, _, _, _ := makeBundle(t, newDetRand("bundle"), d, false)

	c := *b
	c.SignedPrekey.Pub[0] ^= 1
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered SPK: %v", err)
	}
	c = *b
	c.KEMPrekey.LastResort = false
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("flipped last-resort flag: %v", err)
	}
	c = *b
	c.Device = mustDevice(t, "other").Public()
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other device: %v", err)
	}
	// A signed prekey signature must not pass as a KEM prekey signature.
	c = *b
	c.KEMPrekey.Sig = c.SignedPrekey.Sig
	if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("swapped signature: %v", err)
	}
	enc, _ := b.MarshalBinary()
	if _, err := UnmarshalBundle(append(enc, 1)); !errors.Is(err, wire.ErrTrailing) {
		t.Fatalf("trailing: %v", err)
	}
}

func TestUnmarshalMismatchedPrivate(t *testing.T) {
	d := mustDevice(t, "device")
	r := newDetRand("x")
	spk, _ := d.NewSignedPrekey(r, 1, t0)
	spk2, _ := d.NewSignedPrekey(r, 1, t0)
	enc, _ := spk.MarshalBinary()
	enc2, _ := spk2.MarshalBinary()
	copy(enc[1:33], enc2[1:33])
	if _, err := UnmarshalSignedPrekey(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("mismatched SPK: %v", err)
	}
	kpk, _ := d.NewKEMPrekey(r, 1, t0, false)
	kpk2, _ := d.NewKEMPrekey(r, 1, t0, false)
	kenc, _ := kpk.MarshalBinary()
	kenc2, _ := kpk2.MarshalBinary()
	copy(kenc[1:65], kenc2[1:65])
	if _, err := UnmarshalKEMPrekey(kenc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("mismatched KEM: %v", err)
	}
}

func TestBadKEMKeyRejected(t *testing.T) {
	d := mustDevice(t, "device")
	b, _, _, _ := makeBundle(t, newDetRand("bundle"), d, false)
	for i := range b.KEMPrekey.EncapKey[:mlkem.EncapsulationKeySize768-32] {
		b.KEMPrekey.EncapKey[i] = 0xff // coefficients >= q
	}
	enc, _ := b.MarshalBinary()
	if _, err := UnmarshalBundle(enc); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad KEM key: %v", err)
	}
}

func TestSafetyNumber(t *testing.T) {
	a, _ := NewAccount(newDetRand("alice"))
	b, _ := NewAccount(newDetRand("bob"))
	sa, err := ComputeSafetyNumber("alice", a.Public(), "bob", b.Public())
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := ComputeSafetyNumber("bob", b.Public(), "alice", a.Public())
	if sa.Digits != sb.Digits || len(sa.Digits) != SafetyNumberDigits {
		t.Fatalf("digits differ: %s vs %s", sa.Digits, sb.Digits)
	}
	if len(sa.Grouped()) != 71 {
		t.Fatalf("grouped %q", sa.Grouped())
	}
	if err := sa.CheckScanned(sb.QR); err != nil {
		t.Fatal(err)
	}
	if err := sb.CheckScanned(sa.QR); err != nil {
		t.Fatal(err)
	}
	if err := sa.CheckScanned(sa.QR); !errors.Is(err, ErrSafetyNumberMismatch) {
		t.Fatalf("own QR accepted: %v", err)
	}
	m, _ := NewAccount(newDetRand("mallory"))
	sm, _ := ComputeSafetyNumber("bob", m.Public(), "alice", a.Public())
	if sm.Digits == sa.Digits {
		t.Fatal("different key, same digits")
	}
	if err := sa.CheckScanned(sm.QR); !errors.Is(err, ErrSafetyNumberMismatch) {
		t.Fatalf("mallory QR accepted: %v", err)
	}
	if _, err := ComputeSafetyNumber(strings.Repeat("x", MaxHandleLen+1), a.Public(), "b", b.Public()); !errors.Is(err, ErrHandleTooLong) {
		t.Fatal(err)
	}
}

func TestX25519LowOrderRejected(t *testing.T) {
	// The all-zero public key gives an all-zero shared secret, which
	// x25519 (like crypto/ecdh) refuses; PQXDH relies on that.
	d := mustDevice(t, "device")
	var zero [32]byte
	k := d.DHKey()
	if _, err := x25519.X25519(&k, &zero); err == nil {
		t.Fatal("low-order point accepted")
	}
}

// TestSetVerifier: an installed verifier is the one VerifySignature uses,
// and nil restores crypto/ed25519.
func TestSetVerifier(t *testing.T) {
	acct, err := NewAccount(nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := acct.Sign(PurposeDeviceList, []byte("m"))
	calls := 0
	SetVerifier(func(ed25519.PublicKey, []byte, []byte) bool { calls++; return false })
	err = VerifySignature(acct.Public(), PurposeDeviceList, []byte("m"), sig)
	SetVerifier(nil)
	if err == nil || calls != 1 {
		t.Fatalf("with a refusing verifier: err %v after %d calls", err, calls)
	}
	if err := VerifySignature(acct.Public(), PurposeDeviceList, []byte("m"), sig); err != nil {
		t.Fatalf("after SetVerifier(nil): %v", err)
	}
}

// TestSigningKeyFromSeed: the start-up derivation of the device's signing
// key (no fixed-base tables) gives exactly ed25519.NewKeyFromSeed's key,
// and its signatures verify.
func TestSigningKeyFromSeed(t *testing.T) {
	for i := 0; i < 64; i++ {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			t.Fatal(err)
		}
		got, want := signingKeyFromSeed(seed), ed25519.NewKeyFromSeed(seed)
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %x: key %x, want %x", seed, got, want)
		}
		if sig := ed25519.Sign(got, seed); !ed25519.Verify(want.Public().(ed25519.PublicKey), seed, sig) {
			t.Fatal("signature does not verify")
		}
	}
}
