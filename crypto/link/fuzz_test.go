package link

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzParsePayload: the link-code parser never panics, and a code that
// parses prints back to the same canonical text.
func FuzzParsePayload(f *testing.F) {
	vectortest.Seed(f, "text")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(string(data))
		if err != nil {
			return
		}
		q, err := ParsePayload(p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("payload does not round-trip: %v", err)
		}
		if !bytes.Equal(bytes.TrimSpace(data), []byte(p.String())) {
			t.Fatalf("non-canonical link code accepted: %q", data)
		}
	})
}

// FuzzCompanion covers the link's other decoders: the first byte picks the
// stored companion state (0), the hello (1), a sealed message opened on the
// good_handshake session (2), a join request (3) or a link bundle (4).
// None may panic; a failed Open must leave the session able to open the
// genuine message; what decodes must re-encode to the same bytes.
func FuzzCompanion(f *testing.F) {
	vectortest.Seed(f, "companion_state", 0)
	vectortest.Seed(f, "hello", 1)
	vectortest.Seed(f, "p2c_messages", 2)
	vectortest.Seed(f, "join_request", 3)
	vectortest.Seed(f, "bundle", 4)
	good := vectortest.Read[vector](f, "testdata/good_companion.json")
	state, _ := hex.DecodeString(good.Input["companion_state"].(string))
	hello, _ := hex.DecodeString(good.Input["hello"].(string))
	msgs := good.Input["p2c_messages"].([]any)
	genuine, _ := hex.DecodeString(msgs[0].(string))
	c, err := UnmarshalCompanion(state)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		sel, data := data[0]%5, data[1:]
		switch sel {
		case 0:
			if c2, err := UnmarshalCompanion(data); err == nil {
				enc, _ := c2.MarshalBinary()
				if !bytes.Equal(enc, data) {
					t.Fatal("non-canonical companion state accepted")
				}
			}
		case 1:
			_, _ = c.Accept(data, t0)
		case 2:
			s, err := c.Accept(hello, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Open(data); err != nil {
				if _, err := s.Open(genuine); err != nil {
					t.Fatalf("failed Open broke the session: %v", err)
				}
			}
		case 3:
			if j, err := UnmarshalJoinRequest(data); err == nil {
				if enc, err := j.MarshalBinary(); err != nil || !bytes.Equal(enc, data) {
					t.Fatalf("non-canonical join request accepted: %v", err)
				}
			}
		case 4:
			if b, err := UnmarshalBundle(data); err == nil {
				if enc, err := b.MarshalBinary(); err != nil || !bytes.Equal(enc, data) {
					t.Fatalf("non-canonical bundle accepted: %v", err)
				}
			}
		}
	})
}
