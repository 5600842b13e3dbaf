package client

// Temporary: writes crypto/syncseal/testdata from the engine's own sealing
// code, before that code moves to crypto/syncseal, so the package's vectors
// pin today's bytes. Removed once crypto/syncseal replays them.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
	"github.com/parley-im/parley/crypto/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	KeySize       = link.SyncKeySize
	NonceSize     = chacha20poly1305.NonceSizeX
	HeaderSize    = sealedSyncHeader
	MaxCiphertext = maxSyncPlain + 2*maxSyncValueLen + chacha20poly1305.Overhead
	KindMutation  = kindSyncMutation
	KindSnapshot  = kindSyncSnapshot
)

var Seal = sealSync

func KeyID(k [KeySize]byte) [syncKeyIDSize]byte { return syncKeyID(k) }

func parseOpen(key [KeySize]byte, b []byte) (*sealedSync, []byte, error) {
	s, err := parseSealedSync(b)
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.open(key)
	return s, pt, err
}

func errName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, wire.ErrShort):
		return "short"
	case errors.Is(err, wire.ErrTrailing):
		return "trailing"
	case errors.Is(err, wire.ErrVersion):
		return "version"
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case strings.HasPrefix(err.Error(), "sealed sync: kind "):
		return "unknown_kind"
	case err.Error() == "sealed sync: does not open under the sync key":
		return "decrypt"
	}
	return "unexpected: " + err.Error()
}

type detRand struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

func (d *detRand) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], d.ctr)
			d.ctr++
			s := sha256.Sum256(append(append([]byte(nil), d.seed...), c[:]...))
			d.buf = s[:]
		}
		k := copy(p[n:], d.buf)
		d.buf = d.buf[k:]
		n += k
	}
	return n, nil
}

var vectortest = struct{ NewDetRand func(string) *detRand }{func(s string) *detRand { return &detRand{seed: []byte(s)} }}

type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

type vector struct {
	Comment string          `json:"comment"`
	Type    string          `json:"type"`
	Input   json.RawMessage `json:"input"`
	Output  json.RawMessage `json:"output,omitempty"`
	Error   string          `json:"error,omitempty"`
}

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

func TestOldCodeSyncSealVectors(t *testing.T) {
	dev := identity.DeviceID{0xd1, 2, 3}
	for name, b := range map[string]*syncBatch{
		"mutation": {Parts: 1, Entries: []syncEntry{{Key: "setting/theme", Clock: hlc{Wall: 1700000000000, Counter: 1, Device: dev}, Value: []byte("dark")}}},
		"snapshot": {Part: 1, Parts: 3, Entries: []syncEntry{
			{Key: "contact/bob", Clock: hlc{Wall: 1700000000123, Counter: 2, Device: dev}, Value: []byte("Bob")},
			{Key: "muted/bob", Clock: hlc{Wall: 1700000000124, Device: dev}, Value: []byte{1}},
		}},
		"empty": {Parts: 1},
	} {
		if got := hex.EncodeToString(b.marshal()); got != vectorPlaintexts[name] {
			t.Fatalf("%s plaintext: %s", name, got)
		}
	}
	for name, v := range scenarios(t) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "crypto", "syncseal", "testdata", name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
