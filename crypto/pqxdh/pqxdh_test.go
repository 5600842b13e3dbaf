package pqxdh

import (
	"bytes"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

// Tests use derandomized ML-KEM encapsulation: the 32 bytes of encapsulation
// randomness come from the same reader as the ephemeral key, after it.
func init() {
	encapsulate = func(r io.Reader, ek *mlkem.EncapsulationKey768) ([]byte, []byte, error) {
		var m [32]byte
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return nil, nil, err
		}
		return mlkemtest.Encapsulate768(ek, m[:])
	}
}

var t0 = time.Unix(1_780_000_000, 0)

// store is an in-memory Prekeys.
type store struct {
	spk  map[uint32]*identity.SignedPrekey
	kem  map[uint32]*identity.KEMPrekey
	otp  map[uint32]*identity.OneTimePrekey
	fail error
}

func (s *store) SignedPrekey(id uint32) *identity.SignedPrekey   { return s.spk[id] }
func (s *store) KEMPrekey(id uint32) *identity.KEMPrekey         { return s.kem[id] }
func (s *store) OneTimePrekey(id uint32) *identity.OneTimePrekey { return s.otp[id] }
func (s *store) Consume(otpID uint32, hasOTP bool, kemID uint32, lastResort bool) error {
	if s.fail != nil {
		return s.fail
	}
	if hasOTP {
		delete(s.otp, otpID)
	}
	if !lastResort {
		delete(s.kem, kemID)
	}
	return nil
}

// party is a device with its published prekeys.
type party struct {
	dev   *identity.Device
	store *store
}

func newParty(t testing.TB, r io.Reader, oneTime int, lastResort bool) *party {
	t.Helper()
	d, err := identity.NewDevice(r)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := d.NewSignedPrekey(r, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	kem, err := d.NewKEMPrekey(r, 2, t0, lastResort)
	if err != nil {
		t.Fatal(err)
	}
	otps, err := identity.NewOneTimePrekeys(r, 100, oneTime)
	if err != nil {
		t.Fatal(err)
	}
	s := &store{spk: map[uint32]*identity.SignedPrekey{1: spk}, kem: map[uint32]*identity.KEMPrekey{2: kem},
		otp: map[uint32]*identity.OneTimePrekey{}}
	for _, o := range otps {
		s.otp[o.Public.ID] = o
	}
	return &party{dev: d, store: s}
}

// bundle is what the relay would serve: the signed prekeys and the lowest
// one-time prekey id still published (ids handed out are not removed from
// the relay by this test double, so a test can make it serve one twice).
func (p *party) bundle(otpID uint32) *identity.Bundle {
	b := &identity.Bundle{Device: p.dev.Public(), SignedPrekey: p.store.spk[1].Public, KEMPrekey: p.store.kem[2].Public}
	if o := p.store.otp[otpID]; o != nil {
		pub := o.Public
		b.OneTime = &pub
	}
	return b
}

func initiate(t testing.TB, r io.Reader, alice, bob *party, b *identity.Bundle, pt string) (*ratchet.State, []byte) {
	t.Helper()
	st, m, err := Initiate(r, alice.dev, bob.dev.Public(), b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Message, err = st.Encrypt(r, []byte(pt)); err != nil {
		t.Fatal(err)
	}
	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return st, enc
}

func respond(bob *party, enc []byte) (*ratchet.State, []byte, error) {
	m, err := UnmarshalInitialMessage(enc)
	if err != nil {
		return nil, nil, err
	}
	return Respond(bob.dev, bob.store, m)
}

func TestSetupAndMessages(t *testing.T) {
	for _, withOTP := range []bool{true, false} {
		t.Run(fmt.Sprint("one-time=", withOTP), func(t *testing.T) {
			r := newDetRand("setup")
			alice, bob := newParty(t, r, 1, true), newParty(t, r, 1, false)
			id := uint32(100)
			if !withOTP {
				id = 0
			}
			as, enc := initiate(t, r, alice, bob, bob.bundle(id), "hello bob")
			bs, pt, err := respond(bob, enc)
			if err != nil {
				t.Fatal(err)
			}
			if string(pt) != "hello bob" {
				t.Fatalf("got %q", pt)
			}
			if withOTP && len(bob.store.otp) != 0 {
				t.Fatalf("one-time prekey not consumed")
			}
			if len(bob.store.kem) != 0 {
				t.Fatalf("one-time KEM prekey not consumed")
			}
			if !bytes.Equal(as.AssociatedData(), bs.AssociatedData()) {
				t.Fatalf("associated data differs")
			}
			for i := 0; i < 4; i++ {
				for _, dir := range []struct {
					from, to *ratchet.State
					name     string
				}{{bs, as, "bob"}, {as, bs, "alice"}} {
					msg := fmt.Sprintf("%s %d", dir.name, i)
					c, err := dir.from.Encrypt(r, []byte(msg))
					if err != nil {
						t.Fatal(err)
					}
					got, err := dir.to.Decrypt(c)
					if err != nil || string(got) != msg {
						t.Fatalf("%q: got %q, %v", msg, got, err)
					}
				}
			}
		})
	}
}

func TestLastResortKEMPrekeyKept(t *testing.T) {
	r := newDetRand("last-resort")
	alice, bob := newParty(t, r, 0, false), newParty(t, r, 0, true)
	_, enc := initiate(t, r, alice, bob, bob.bundle(0), "hi")
	if _, _, err := respond(bob, enc); err != nil {
		t.Fatal(err)
	}
	if len(bob.store.kem) != 1 {
		t.Fatalf("last-resort KEM prekey was deleted")
	}
}

func TestBadSignedPrekeySignature(t *testing.T) {
	r := newDetRand("bad-spk")
	alice, bob := newParty(t, r, 1, true), newParty(t, r, 1, true)
	b := bob.bundle(100)
	b.SignedPrekey.Sig = bytes.Clone(b.SignedPrekey.Sig)
	b.SignedPrekey.Sig[5] ^= 1
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v", err)
	}
	// A relay substituting its own prekey (re-signed by nobody) likewise.
	b = bob.bundle(100)
	b.SignedPrekey.Pub[0] ^= 1
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestBadKEMPrekeySignature(t *testing.T) {
	r := newDetRand("bad-kem")
	alice, bob := newParty(t, r, 1, true), newParty(t, r, 1, true)
	b := bob.bundle(100)
	b.KEMPrekey.Sig = bytes.Clone(b.KEMPrekey.Sig)
	b.KEMPrekey.Sig[0] ^= 1
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v", err)
	}
	// A KEM prekey of another device (validly signed by it) is not Bob's.
	eve := newParty(t, r, 0, true)
	b = bob.bundle(100)
	b.KEMPrekey = eve.bundle(0).KEMPrekey
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), b); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestIdentityMismatch(t *testing.T) {
	r := newDetRand("mismatch")
	alice, bob, eve := newParty(t, r, 1, true), newParty(t, r, 1, true), newParty(t, r, 1, true)
	// The relay serves Eve's (validly self-signed) bundle for Bob.
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), eve.bundle(100)); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("got %v", err)
	}
	// Bob's prekeys under a device public with another DH identity key.
	b := bob.bundle(100)
	b.Device.DHPub = eve.dev.Public().DHPub
	if _, _, err := Initiate(r, alice.dev, bob.dev.Public(), b); !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestReusedOneTimePrekey(t *testing.T) {
	r := newDetRand("reuse")
	alice, carol, bob := newParty(t, r, 0, true), newParty(t, r, 0, true), newParty(t, r, 1, true)
	b := bob.bundle(100)
	_, enc1 := initiate(t, r, alice, bob, b, "first")
	_, enc2 := initiate(t, r, carol, bob, b, "second, same one-time prekey")
	if _, _, err := respond(bob, enc1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := respond(bob, enc2); !errors.Is(err, ErrOneTimePrekeyUsed) {
		t.Fatalf("got %v", err)
	}
	// The very same initial message again (a replay) is refused too.
	if _, _, err := respond(bob, enc1); !errors.Is(err, ErrOneTimePrekeyUsed) {
		t.Fatalf("replay: got %v", err)
	}
}

func TestTamperedInitialMessage(t *testing.T) {
	r := newDetRand("tamper")
	alice, bob := newParty(t, r, 1, true), newParty(t, r, 1, true)
	_, enc := initiate(t, r, alice, bob, bob.bundle(100), "hello")
	for _, off := range []int{1 + 20, 1 + 60, 1 + 81 + 14, 1 + 81 + 14 + 500, len(enc) - 5} {
		bad := bytes.Clone(enc)
		bad[off] ^= 1
		if _, _, err := respond(bob, bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", off)
		}
		if len(bob.store.otp) != 1 {
			t.Fatalf("byte %d flipped: one-time prekey consumed by a failed setup", off)
		}
	}
	if _, err := UnmarshalInitialMessage(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	for n := 0; n < len(enc); n += 7 {
		if _, err := UnmarshalInitialMessage(enc[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	if _, _, err := respond(bob, enc); err != nil {
		t.Fatalf("genuine message after tampered ones: %v", err)
	}
}

func TestUnknownPrekeysAndConsumeFailure(t *testing.T) {
	r := newDetRand("unknown")
	alice, bob := newParty(t, r, 1, true), newParty(t, r, 1, true)
	_, enc := initiate(t, r, alice, bob, bob.bundle(100), "hello")
	m, _ := UnmarshalInitialMessage(enc)
	m2 := *m
	m2.SignedPrekeyID = 9
	if _, _, err := Respond(bob.dev, bob.store, &m2); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("got %v", err)
	}
	m2 = *m
	m2.KEMPrekeyID = 9
	if _, _, err := Respond(bob.dev, bob.store, &m2); !errors.Is(err, ErrOneTimePrekeyUsed) {
		t.Fatalf("got %v", err)
	}
	bob.store.fail = errors.New("disk full")
	if _, _, err := Respond(bob.dev, bob.store, m); err == nil {
		t.Fatalf("consume failure ignored")
	}
}

func TestWrongResponder(t *testing.T) {
	r := newDetRand("wrong")
	alice, bob := newParty(t, r, 0, true), newParty(t, r, 0, true)
	_, enc := initiate(t, r, alice, bob, bob.bundle(0), "for bob")
	// Another device holding the same prekeys (impossible in practice) but
	// its own identity key: the transcript and DH2 differ.
	other := newParty(t, r, 0, true)
	other.store = bob.store
	if _, _, err := respond(other, enc); !errors.Is(err, ratchet.ErrAuth) {
		t.Fatalf("got %v", err)
	}
}
