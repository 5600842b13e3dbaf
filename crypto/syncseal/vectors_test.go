package syncseal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/wire"
)

// Test vectors: testdata/{good,fail}_*.json in the layout of PROTOCOL.md
// §9.1, types syncseal/seal and syncseal/open (§9.2). They were first
// written by the engine's sealing code before it moved here, so they pin
// the bytes devices already exchange. Regenerate with:
// go test ./crypto/syncseal -run TestVectors -update

type hexBytes = vectortest.HexBytes

type vector struct {
	Comment string          `json:"comment"`
	Type    string          `json:"type"` // "syncseal/seal" or "syncseal/open"
	Input   json.RawMessage `json:"input"`
	Output  json.RawMessage `json:"output,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// sealInput and sealOutput: Seal(nonce as its randomness, kind, epoch,
// key, plaintext) returns sealed, which then opens to the same fields.
type sealInput struct {
	Key       hexBytes `json:"key"`
	Kind      uint8    `json:"kind"`
	Epoch     uint32   `json:"epoch"`
	Nonce     hexBytes `json:"nonce"`
	Plaintext hexBytes `json:"plaintext"`
}

type sealOutput struct {
	KeyID  hexBytes `json:"key_id"`
	Sealed hexBytes `json:"sealed"`
}

// openInput and openOutput: Parse(sealed), then Open(key).
type openInput struct {
	Key    hexBytes `json:"key"`
	Sealed hexBytes `json:"sealed"`
}

type openOutput struct {
	Kind      uint8    `json:"kind"`
	Epoch     uint32   `json:"epoch"`
	KeyID     hexBytes `json:"key_id"`
	Plaintext hexBytes `json:"plaintext"`
}

var vectorErrors = map[string]error{
	"short":        wire.ErrShort,
	"trailing":     wire.ErrTrailing,
	"version":      wire.ErrVersion,
	"too_large":    wire.ErrTooLarge,
	"unknown_kind": ErrUnknownKind,
	"decrypt":      ErrDecrypt,
}

func errName(err error) string {
	if err == nil {
		return ""
	}
	for n, e := range vectorErrors {
		if errors.Is(err, e) {
			return n
		}
	}
	return fmt.Sprintf("unexpected(%v)", err)
}

func parseOpen(key [KeySize]byte, b []byte) (*Sealed, []byte, error) {
	s, err := Parse(b)
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.Open(key)
	return s, pt, err
}

// vectorPlaintexts are batches (PROTOCOL.md §14.5) as the engine makes
// them; to the seal they are opaque bytes.
var vectorPlaintexts = map[string]string{
	// one entry: setting/theme = "dark"
	"mutation": "0100000001000000010000000d73657474696e672f7468656d650000018bcfe5680000000001d1020300000000000000000000000000000000046461726b",
	// part 1 of 3: contact/bob = "Bob", muted/bob = 1
	"snapshot": "0100010003000000020000000b636f6e746163742f626f620000018bcfe5687b00000002d102030000000000000000000000000000000003426f62000000096d757465642f626f620000018bcfe5687c00000000d10203000000000000000000000000000000000101",
	// the one part of an empty state
	"empty": "010000000100000000",
}

// scenarios builds every vector from the seed's deterministic stream.
func scenarios(t *testing.T) map[string]vector {
	out := map[string]vector{}
	r := vectortest.NewDetRand("parley syncseal vectors")
	newKey := func() (k [KeySize]byte) {
		r.Read(k[:])
		return k
	}
	plain := func(name string) []byte {
		b, err := hex.DecodeString(vectorPlaintexts[name])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seal := func(name, comment string, kind uint8, epoch uint32, key [KeySize]byte, pt []byte) []byte {
		nonce := make([]byte, NonceSize)
		r.Read(nonce)
		sealed, err := Seal(bytes.NewReader(nonce), kind, epoch, key, pt)
		if err != nil {
			t.Fatal(err)
		}
		if name != "" {
			id := KeyID(key)
			out[name] = vector{Comment: comment, Type: "syncseal/seal",
				Input:  raw(sealInput{Key: key[:], Kind: kind, Epoch: epoch, Nonce: nonce, Plaintext: pt}),
				Output: raw(sealOutput{KeyID: id[:], Sealed: sealed})}
		}
		return sealed
	}
	open := func(name, comment string, key [KeySize]byte, sealed []byte, wantErr string) {
		v := vector{Comment: comment, Type: "syncseal/open", Input: raw(openInput{Key: key[:], Sealed: sealed})}
		s, pt, err := parseOpen(key, sealed)
		if got := errName(err); got != wantErr {
			t.Fatalf("%s: error %q (%v), want %q", name, got, err, wantErr)
		}
		if err == nil {
			v.Output = raw(openOutput{Kind: s.Kind, Epoch: s.Epoch, KeyID: s.KeyID[:], Plaintext: pt})
		} else {
			v.Error = wantErr
		}
		out[name] = v
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}

	k1, k2 := newKey(), newKey()
	mut := seal("good_seal_mutation", "a change (kind 16) at epoch 0", KindMutation, 0, k1, plain("mutation"))
	snap := seal("good_seal_snapshot", "a snapshot part (kind 17) at epoch 3, under the key of that epoch", KindSnapshot, 3, k2, plain("snapshot"))
	seal("good_seal_empty_snapshot", "the one part of an empty state's snapshot", KindSnapshot, 1, k1, plain("empty"))
	open("good_open_snapshot", "good_seal_snapshot opened: the header fields and the batch", k2, snap, "")

	open("fail_wrong_key", "good_seal_snapshot opened under another sync key", k1, snap, "decrypt")
	open("fail_tampered_tag", "the last byte of the Poly1305 tag flipped", k1, flip(mut, len(mut)-1), "decrypt")
	open("fail_tampered_ciphertext", "the first ciphertext byte flipped", k1, flip(mut, HeaderSize+4), "decrypt")
	open("fail_tampered_epoch", "the epoch changed: the header is associated data", k1, flip(mut, 5), "decrypt")
	open("fail_tampered_key_id", "one bit of the key id flipped", k1, flip(mut, 6), "decrypt")
	open("fail_tampered_kind", "a change relabelled as a snapshot part (kind 16 to 17)", k1, flip(mut, 1), "decrypt")
	open("fail_truncated", "the last byte cut off", k1, mut[:len(mut)-1], "short")
	open("fail_truncated_header", "the header alone, without the ciphertext's length", k1, mut[:HeaderSize], "short")
	open("fail_trailing_data", "a byte appended", k1, append(bytes.Clone(mut), 0), "trailing")
	v2 := bytes.Clone(mut)
	v2[0] = 2
	open("fail_unknown_version", "format version 2", k1, v2, "version")
	open("fail_unknown_kind", "sealed correctly under the key, but as kind 18 (a snapshot request is never sealed)", k1,
		seal("", "", 18, 0, k1, plain("empty")), "unknown_kind")
	big := binary.BigEndian.AppendUint32(bytes.Clone(mut[:HeaderSize]), MaxCiphertext+1)
	open("fail_too_large", "a ciphertext length one over the limit", k1, big, "too_large")
	return out
}

func TestVectors(t *testing.T) {
	vectortest.Run(t, scenarios, func(t *testing.T, f vectortest.File, v vector) {
		vectortest.Check(t, f, v.Error, replay(t, &v), vectorErrors)
	})
}

func decode(t testing.TB, raw json.RawMessage, into any) {
	t.Helper()
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatal(err)
	}
}

// replay runs v from its inputs alone, fails t on any output that differs,
// and returns the error the operation gave.
func replay(t *testing.T, v *vector) error {
	switch v.Type {
	case "syncseal/seal":
		var in sealInput
		var want sealOutput
		decode(t, v.Input, &in)
		decode(t, v.Output, &want)
		key := [KeySize]byte(in.Key)
		r := bytes.NewReader(in.Nonce)
		sealed, err := Seal(r, in.Kind, in.Epoch, key, in.Plaintext)
		if err != nil {
			return err
		}
		if id := KeyID(key); r.Len() != 0 || !bytes.Equal(sealed, want.Sealed) || !bytes.Equal(id[:], want.KeyID) {
			t.Fatalf("sealed %x (key id %x), want %x (key id %x)", sealed, id, want.Sealed, want.KeyID)
		}
		s, pt, err := parseOpen(key, sealed)
		if err != nil {
			return err
		}
		if s.Kind != in.Kind || s.Epoch != in.Epoch || !bytes.Equal(pt, in.Plaintext) {
			t.Fatalf("opened to kind %d epoch %d %x", s.Kind, s.Epoch, pt)
		}
	case "syncseal/open":
		var in openInput
		decode(t, v.Input, &in)
		s, pt, err := parseOpen([KeySize]byte(in.Key), in.Sealed)
		if err != nil {
			return err
		}
		if v.Output == nil {
			return nil // a fail_ vector that opened: Check reports it
		}
		var want openOutput
		decode(t, v.Output, &want)
		if s.Kind != want.Kind || s.Epoch != want.Epoch || !bytes.Equal(s.KeyID[:], want.KeyID) || !bytes.Equal(pt, want.Plaintext) {
			t.Fatalf("opened to kind %d epoch %d key id %x: %x", s.Kind, s.Epoch, s.KeyID, pt)
		}
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	return nil
}
