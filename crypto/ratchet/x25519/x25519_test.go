package x25519

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

func TestAgainstCryptoECDH(t *testing.T) {
	for i := 0; i < 50; i++ {
		a, apub, err := GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, bpub, _ := GenerateKey(rand.Reader)
		ea, _ := ecdh.X25519().NewPrivateKey(a[:])
		eb, _ := ecdh.X25519().NewPrivateKey(b[:])
		if !bytes.Equal(ea.PublicKey().Bytes(), apub[:]) || !bytes.Equal(eb.PublicKey().Bytes(), bpub[:]) {
			t.Fatalf("public key differs from crypto/ecdh")
		}
		s1, err := X25519(&a, &bpub)
		if err != nil {
			t.Fatal(err)
		}
		s2, _ := eb.ECDH(ea.PublicKey())
		if !bytes.Equal(s1[:], s2) {
			t.Fatalf("shared secret differs from crypto/ecdh")
		}
		if PurePublicKey(&a) != apub || PureX25519(&a, &bpub) != s1 {
			t.Fatalf("Pure functions differ")
		}
		if LadderPublicKey(&a) != apub || LadderPublicKey(&b) != bpub {
			t.Fatalf("LadderPublicKey differs from the fixed-base public key")
		}
	}
}

func TestRFC7748(t *testing.T) {
	// RFC 7748 §6.1.
	var a, bpub [32]byte
	hex.Decode(a[:], []byte("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	hex.Decode(bpub[:], []byte("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
	pub := PublicKey(&a)
	if hex.EncodeToString(pub[:]) != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("public key %x", pub)
	}
	s, err := X25519(&a, &bpub)
	if err != nil || hex.EncodeToString(s[:]) != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Fatalf("shared %x %v", s, err)
	}
	var zero [32]byte
	if _, err := X25519(&a, &zero); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("low order point accepted: %v", err)
	}
}

func BenchmarkGenerateKey(b *testing.B) {
	for b.Loop() {
		GenerateKey(nil)
	}
}

func BenchmarkX25519(b *testing.B) {
	a, _, _ := GenerateKey(nil)
	_, p, _ := GenerateKey(nil)
	for b.Loop() {
		X25519(&a, &p)
	}
}

func TestRFC7748Iterated(t *testing.T) {
	// RFC 7748 §5.2: k = u = 9, then repeatedly k, u = X25519(k, u), k.
	k := [32]byte{9}
	u := [32]byte{9}
	want := map[int]string{
		1:    "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
		1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
	}
	for i := 1; i <= 1000; i++ {
		var out [32]byte
		scalarMult(&out, &k, &u)
		u, k = k, out
		if w, ok := want[i]; ok && hex.EncodeToString(k[:]) != w {
			t.Fatalf("after %d iterations: %x", i, k)
		}
	}
}

// ecdhBackend is a Backend over crypto/ecdh, standing in for WebCrypto.
type ecdhBackend struct{ calls *int }

func (e ecdhBackend) PublicKey(priv *[32]byte) [32]byte {
	*e.calls++
	k, _ := ecdh.X25519().NewPrivateKey(priv[:])
	return [32]byte(k.PublicKey().Bytes())
}

func (e ecdhBackend) X25519(priv, pub *[32]byte) ([32]byte, error) {
	*e.calls++
	var out [32]byte
	scalarMult(&out, priv, pub) // ecdh itself refuses low-order points
	return out, nil
}

func TestBackend(t *testing.T) {
	calls := 0
	SetBackend(ecdhBackend{&calls})
	defer SetBackend(nil)
	a, apub, _ := GenerateKey(nil)
	_, bpub, _ := GenerateKey(nil)
	s1, err := X25519(&a, &bpub)
	if err != nil || calls != 3 {
		t.Fatalf("backend not used: %d calls, %v", calls, err)
	}
	SetBackend(nil)
	if publicKey(&a) != apub {
		t.Fatalf("backend public key differs")
	}
	s2, _ := X25519(&a, &bpub)
	if s1 != s2 || calls != 3 {
		t.Fatalf("backend result differs or still used")
	}
	SetBackend(ecdhBackend{&calls})
	var zero [32]byte
	if _, err := X25519(&a, &zero); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("low-order output from a backend accepted: %v", err)
	}
}
