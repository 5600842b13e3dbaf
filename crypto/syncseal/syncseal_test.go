package syncseal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/parley-im/parley/crypto/link"
)

// The key a link bundle carries is the key this package seals with.
var _ [KeySize]byte = [link.SyncKeySize]byte{}

func TestRoundTrip(t *testing.T) {
	var k1, k2 [KeySize]byte
	k1[0], k2[0] = 1, 2
	plain := []byte("a batch")
	sealed, err := Seal(rand.Reader, KindMutation, 3, k1, plain)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if s.Epoch != 3 || s.KeyID != KeyID(k1) || s.Kind != KindMutation {
		t.Fatalf("%+v", s)
	}
	if got, err := s.Open(k1); err != nil || !bytes.Equal(got, plain) {
		t.Fatal("round trip", err)
	}
	if _, err := s.Open(k2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("opened under another key: %v", err)
	}
	// The header is authenticated: a changed epoch or kind fails.
	for _, off := range []int{1, 2} {
		bad := bytes.Clone(sealed)
		bad[off] ^= 1
		if s, err := Parse(bad); err == nil {
			if _, err := s.Open(k1); err == nil {
				t.Fatalf("header byte %d not authenticated", off)
			}
		}
	}
}

// TestErrorText: the engine reports these texts in its error events.
func TestErrorText(t *testing.T) {
	var k [KeySize]byte
	b, err := Seal(rand.Reader, 18, 0, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err == nil || err.Error() != "sealed sync: kind 18" {
		t.Fatalf("unknown kind: %v", err)
	}
}
