// Package wasmseg rewrites a WebAssembly module's data section so that the
// same initial memory is described by a few large segments instead of
// tens of thousands of small ones.
//
// Go's linker starts a new data segment wherever it meets a run of 8 or
// more zero bytes, which makes the raw module smaller: the client's 2.2 MB
// data section is about 70,000 segments. But each segment's header (an
// offset and a length, 6 to 8 bytes) is close to random to a compressor,
// while a run of zeros costs it almost nothing, so the module the server
// actually sends, brotli-compressed, is about 80 KB larger than it need
// be (issue 6's 1.2 MB budget). Coalesce joins segments separated by at
// most a few zero bytes: the raw module grows by those zeros, the
// compressed one shrinks, and the memory an instance starts with is
// byte for byte the same (memory starts zeroed, and the segments do not
// overlap).
//
// Only what Go's linker writes is accepted: active segments for memory 0
// whose offset is one i32.const. Anything else is refused with an error
// and the module is left as it was.
package wasmseg

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
)

const (
	// MaxModule bounds the module Coalesce reads (the client is ~7 MB).
	MaxModule = 256 << 20
	// MaxSegments bounds the data segments read (browsers refuse modules
	// with more than 100,000; Go's linker stops splitting there).
	MaxSegments = 1 << 20
	// DefaultMaxGap is the largest run of zeros joined into a segment.
	// Measured on the client (Go 1.26): joining gaps up to 16 bytes saves
	// 15 KB brotli, up to 24 bytes 76 KB, up to 64 bytes 79 KB (22
	// segments left); larger gaps are the few big zero areas and gain
	// nothing.
	DefaultMaxGap = 64

	secData      = 11
	secDataCount = 12
	opI32Const   = 0x41
	opEnd        = 0x0b
)

var (
	// ErrMalformed: the input is not a well-formed module (as far as
	// Coalesce reads it).
	ErrMalformed = errors.New("wasmseg: malformed module")
	// ErrUnsupported: a well-formed module whose data section Coalesce
	// does not rewrite (a passive segment, another memory, an offset that
	// is not a constant, overlapping segments).
	ErrUnsupported = errors.New("wasmseg: unsupported data section")
)

var magic = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// segment is one active data segment: Data is copied to Offset in memory 0.
type segment struct {
	Offset uint32
	Data   []byte
}

// Stats says what Coalesce did.
type Stats struct {
	Before, After int // data segments
	Zeros         int // zero bytes written out to join them
}

// section is a module section as read: its id and body.
type section struct {
	id   byte
	body []byte
}

// Coalesce returns mod with every two neighbouring data segments that are
// at most maxGap zero bytes apart joined into one. A module without a data
// section comes back unchanged.
func Coalesce(mod []byte, maxGap int) ([]byte, Stats, error) {
	var st Stats
	if maxGap < 0 {
		return nil, st, fmt.Errorf("wasmseg: negative gap %d", maxGap)
	}
	secs, err := sections(mod)
	if err != nil {
		return nil, st, err
	}
	var segs []segment
	if i := slices.IndexFunc(secs, func(s section) bool { return s.id == secData }); i >= 0 {
		if segs, err = segments(secs[i].body); err != nil {
			return nil, st, err
		}
	}
	// The data count section, where present, must say how many segments
	// there are; it is rewritten with the new count.
	if i := slices.IndexFunc(secs, func(s section) bool { return s.id == secDataCount }); i >= 0 {
		r := reader{b: secs[i].body}
		n, err := r.u32()
		if err != nil || len(r.b) != 0 || int(n) != len(segs) {
			return nil, st, fmt.Errorf("%w: a data count section that does not count the %d data segments", ErrMalformed, len(segs))
		}
	}
	if len(segs) == 0 {
		return mod, st, nil
	}
	st.Before = len(segs)
	merged, zeros := join(segs, maxGap)
	st.After, st.Zeros = len(merged), zeros
	out := make([]byte, 0, len(mod)+zeros)
	out = append(out, magic...)
	for _, s := range secs {
		body := s.body
		switch s.id {
		case secData:
			body = encodeSegments(merged)
		case secDataCount:
			body = appendU32(nil, uint32(len(merged)))
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, st, nil
}

// sections splits a module into its sections, checking only the framing.
func sections(mod []byte) ([]section, error) {
	if len(mod) > MaxModule {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrMalformed, len(mod), MaxModule)
	}
	if !bytes.HasPrefix(mod, magic) {
		return nil, fmt.Errorf("%w: not a version 1 WebAssembly module", ErrMalformed)
	}
	var secs []section
	seen := map[byte]bool{}
	r := reader{b: mod[len(magic):]}
	for len(r.b) > 0 {
		id := r.b[0]
		r.b = r.b[1:]
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		body, err := r.bytes(n)
		if err != nil {
			return nil, err
		}
		if id == secData || id == secDataCount {
			if seen[id] {
				return nil, fmt.Errorf("%w: section %d twice", ErrMalformed, id)
			}
			seen[id] = true
		}
		secs = append(secs, section{id, body})
	}
	return secs, nil
}

// segments decodes a data section's body.
func segments(body []byte) ([]segment, error) {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	// Each segment takes at least 2 bytes (a passive one: its mode and
	// length): refuse a count the body cannot hold before allocating.
	if n > MaxSegments || int(n) > len(r.b)/2 {
		return nil, fmt.Errorf("%w: %d data segments", ErrMalformed, n)
	}
	segs := make([]segment, 0, n)
	for range n {
		mode, err := r.u32()
		if err != nil {
			return nil, err
		}
		if mode != 0 {
			return nil, fmt.Errorf("%w: segment mode %d (only active segments of memory 0)", ErrUnsupported, mode)
		}
		if len(r.b) == 0 || r.b[0] != opI32Const {
			return nil, fmt.Errorf("%w: a segment offset that is not one i32.const", ErrUnsupported)
		}
		r.b = r.b[1:]
		off, err := r.s32()
		if err != nil {
			return nil, err
		}
		if len(r.b) == 0 || r.b[0] != opEnd {
			return nil, fmt.Errorf("%w: a segment offset that is not one i32.const", ErrUnsupported)
		}
		r.b = r.b[1:]
		l, err := r.u32()
		if err != nil {
			return nil, err
		}
		data, err := r.bytes(l)
		if err != nil {
			return nil, err
		}
		if uint64(uint32(off))+uint64(l) > 1<<32 {
			return nil, fmt.Errorf("%w: a segment past 4 GiB", ErrMalformed)
		}
		segs = append(segs, segment{Offset: uint32(off), Data: data})
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the data segments", ErrMalformed, len(r.b))
	}
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.Offset, b.Offset) })
	for i := 1; i < len(segs); i++ {
		p := segs[i-1]
		if uint64(p.Offset)+uint64(len(p.Data)) > uint64(segs[i].Offset) {
			return nil, fmt.Errorf("%w: overlapping segments at %#x and %#x", ErrUnsupported, p.Offset, segs[i].Offset)
		}
	}
	return segs, nil
}

// join merges sorted, non-overlapping segments at most maxGap apart and
// returns them with the number of zero bytes it wrote between them.
func join(segs []segment, maxGap int) ([]segment, int) {
	var out []segment
	zeros := 0
	for _, s := range segs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			gap := uint64(s.Offset) - (uint64(last.Offset) + uint64(len(last.Data)))
			if gap <= uint64(maxGap) {
				last.Data = append(last.Data, make([]byte, gap)...)
				last.Data = append(last.Data, s.Data...)
				zeros += int(gap)
				continue
			}
		}
		out = append(out, segment{Offset: s.Offset, Data: slices.Clip(slices.Clone(s.Data))})
	}
	return out, zeros
}

func encodeSegments(segs []segment) []byte {
	var b []byte
	b = appendU32(b, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, 0, opI32Const)
		b = appendS32(b, int32(s.Offset))
		b = append(b, opEnd)
		b = appendU32(b, uint32(len(s.Data)))
		b = append(b, s.Data...)
	}
	return b
}

// reader reads LEB128 numbers and byte strings, never past its input.
type reader struct{ b []byte }

func (r *reader) u32() (uint32, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if len(r.b) == 0 {
			return 0, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		c := r.b[0]
		r.b = r.b[1:]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if v > 1<<32-1 {
				return 0, fmt.Errorf("%w: number over 32 bits", ErrMalformed)
			}
			return uint32(v), nil
		}
	}
	return 0, fmt.Errorf("%w: number over 5 bytes", ErrMalformed)
}

func (r *reader) s32() (int32, error) {
	var v int64
	for i := 0; i < 5; i++ {
		if len(r.b) == 0 {
			return 0, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		c := r.b[0]
		r.b = r.b[1:]
		v |= int64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c&0x40 != 0 {
				v -= 1 << (7 * (i + 1))
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, fmt.Errorf("%w: number over 32 bits", ErrMalformed)
			}
			return int32(v), nil
		}
	}
	return 0, fmt.Errorf("%w: number over 5 bytes", ErrMalformed)
}

func (r *reader) bytes(n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b, nil
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
