package ratchet

import (
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// MarshalBinary encodes the state for sealed storage (PROTOCOL.md section
// 8):
//
//	u8    version (1)
//	[32]  root key
//	var   associated data (≤ MaxADSize)
//	bool  sending; if 1: [32] ratchet private key, [32] its public key,
//	      [32] sending chain key
//	u32   Ns, u32 PN
//	bool  receiving; if 1: [32] peer ratchet key, [32] receiving chain key
//	u32   Nr
//	u32   count (≤ MaxPreviousChains) of [32] closed peer ratchet keys
//	u32   count (≤ MaxSkippedKeys) of skipped keys: [32] ratchet key, u32 N,
//	      [32] message key; oldest first
//
// The cached ratchet public key is stored so that loading a state costs no
// scalar multiplication; the record is sealed (authenticated) at rest, so it
// cannot be swapped for a mismatched one.
func (s *State) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(s.encodedSize())
	w.U8(StateVersion)
	w.Fixed(s.rootKey[:])
	w.Var(s.ad)
	w.Bool(s.sending)
	if s.sending {
		w.Fixed(s.dhsPriv[:])
		w.Fixed(s.dhsPub[:])
		w.Fixed(s.sendCK[:])
	}
	w.U32(s.ns)
	w.U32(s.pn)
	w.Bool(s.receiving)
	if s.receiving {
		w.Fixed(s.dhr[:])
		w.Fixed(s.recvCK[:])
	}
	w.U32(s.nr)
	w.U32(uint32(len(s.previous)))
	for i := range s.previous {
		w.Fixed(s.previous[i][:])
	}
	w.U32(uint32(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		w.Fixed(k.dh[:])
		w.U32(k.n)
		w.Fixed(k.mk[:])
	}
	return w.Bytes(), nil
}

func (s *State) encodedSize() int {
	return 1 + KeySize + 4 + len(s.ad) + 1 + 3*KeySize + 8 + 1 + 2*KeySize + 4 +
		4 + len(s.previous)*KeySize + 4 + len(s.skipped)*(2*KeySize+4)
}

// Unmarshal decodes MarshalBinary's output. Every error wraps ErrBadState
// (and the wire error, if any): besides the wire checks it refuses states
// that violate the invariants (no chain at all, duplicate skipped keys).
func Unmarshal(b []byte) (*State, error) {
	s := &State{}
	r := wire.NewReader(b)
	r.Version(StateVersion)
	r.FixedInto(s.rootKey[:])
	s.ad = r.Var(MaxADSize)
	s.sending = r.Bool()
	if s.sending {
		r.FixedInto(s.dhsPriv[:])
		r.FixedInto(s.dhsPub[:])
		r.FixedInto(s.sendCK[:])
	}
	s.ns = r.U32()
	s.pn = r.U32()
	s.receiving = r.Bool()
	if s.receiving {
		r.FixedInto(s.dhr[:])
		r.FixedInto(s.recvCK[:])
	}
	s.nr = r.U32()
	if n := r.Count(MaxPreviousChains); n > 0 {
		s.previous = make([][KeySize]byte, n)
		for i := range s.previous {
			r.FixedInto(s.previous[i][:])
		}
	}
	if n := r.Count(MaxSkippedKeys); n > 0 {
		s.skipped = make([]skippedKey, n)
		seen := make(map[[KeySize + 4]byte]struct{}, n)
		for i := range s.skipped {
			k := &s.skipped[i]
			r.FixedInto(k.dh[:])
			k.n = r.U32()
			r.FixedInto(k.mk[:])
			var id [KeySize + 4]byte
			copy(id[:], k.dh[:])
			id[KeySize], id[KeySize+1], id[KeySize+2], id[KeySize+3] = byte(k.n>>24), byte(k.n>>16), byte(k.n>>8), byte(k.n)
			if _, dup := seen[id]; dup && r.Err() == nil {
				r.Fail(fmt.Errorf("%w: skipped key listed twice", ErrBadState))
			}
			seen[id] = struct{}{}
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if !s.sending && !s.receiving {
		return nil, fmt.Errorf("%w: neither a sending nor a receiving chain", ErrBadState)
	}
	return s, nil
}
