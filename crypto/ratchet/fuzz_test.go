package ratchet

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/crypto/ratchet/x25519"
)

// seedVectors adds every message (or, with states, every final state) of
// the testdata vectors to the corpus.
func seedVectors(f *testing.F, states bool) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		v := loadVector(f, file)
		if states {
			for _, s := range v.FinalStates {
				b, _ := hex.DecodeString(s)
				f.Add(b)
			}
			continue
		}
		for _, st := range v.Steps {
			if len(st.Message) > 0 {
				f.Add([]byte(st.Message))
			}
		}
	}
}

// FuzzDecrypt feeds arbitrary messages to a fixed responder state (the
// good_ratchet_pingpong session): a failure must leave the state unchanged
// and a success must never repeat for the same bytes.
func FuzzDecrypt(f *testing.F) {
	seedVectors(f, false)
	v := loadVector(f, filepath.Join("testdata", "good_ratchet_pingpong.json"))
	priv := [KeySize]byte(v.InitiatorRatchetPrivate)
	bob, err := NewResponder(v.SharedSecret, v.AssociatedData, x25519.PublicKey(&priv))
	if err != nil {
		f.Fatal(err)
	}
	before, _ := bob.MarshalBinary()
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := Unmarshal(before)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decrypt(msg); err != nil {
			after, _ := s.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Fatalf("failed decrypt (%v) changed the state", err)
			}
			return
		}
		if _, err := s.Decrypt(msg); err == nil {
			t.Fatalf("the same message decrypted twice")
		}
	})
}

// FuzzUnmarshalState checks that the state decoder never panics and that
// what it accepts re-encodes to the same bytes (one encoding per state).
func FuzzUnmarshalState(f *testing.F) {
	seedVectors(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted state does not re-encode to itself")
		}
	})
}
