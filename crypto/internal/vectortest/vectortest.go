// Package vectortest holds what the crypto packages' test vectors share:
// the deterministic randomness every vector is generated from, and the hex
// encoding of byte fields in the vector JSON (docs/PROTOCOL.md §9). It is
// used by tests only.
package vectortest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
)

// DetRand is the vectors' deterministic stream: block i is
// SHA-256(seed || u64be(i)), blocks concatenated. Another implementation
// replaying the vectors derives the same keys from the same seed.
type DetRand struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

// NewDetRand starts the stream for seed.
func NewDetRand(seed string) *DetRand { return &DetRand{seed: []byte(seed)} }

// Read fills p from the stream; it never fails.
func (d *DetRand) Read(p []byte) (int, error) {
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

// HexBytes is a byte field written as a lowercase hex string in the JSON.
type HexBytes []byte

// MarshalJSON writes h as a hex string.
func (h HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON reads a hex string.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}
