// Package wire is Parley's canonical binary encoding: the one way every
// signed structure, envelope and stored state object is turned into bytes.
//
// The format is deliberately small so that another implementation can write
// it from docs/PROTOCOL.md ("Encoding") in an afternoon:
//
//   - integers are big-endian and fixed width (u8, u16, u32, u64);
//   - a byte string is a u32 length followed by the bytes, and every read
//     names the largest length the caller will accept;
//   - fixed-size values (keys, ids, nonces) are written without a length;
//   - every encoded object starts with a one-byte format version.
//
// Because there is exactly one encoding per value (no optional fields, no
// map ordering, no varint alternatives) signatures can be computed over the
// encoded bytes directly.
//
// A Reader is strict: it never reads past its input, refuses any length over
// the caller's bound before allocating, and Finish reports trailing bytes.
// The first error sticks, so decoders read every field and check once.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors a Reader reports; callers wrap them with the name of the field or
// object that was wrong, and test for them with errors.Is.
var (
	ErrShort    = errors.New("wire: input too short")
	ErrTooLarge = errors.New("wire: field exceeds its size limit")
	ErrTrailing = errors.New("wire: trailing data after object")
	ErrVersion  = errors.New("wire: unknown format version")
	ErrInvalid  = errors.New("wire: invalid value")
)

// Writer appends canonical encodings to a byte slice. The zero value is
// ready to use.
type Writer struct {
	buf []byte
}

// NewWriter returns a Writer whose buffer has room for sizeHint bytes, so
// hot paths (ratchet messages) encode with a single allocation.
func NewWriter(sizeHint int) *Writer {
	return &Writer{buf: make([]byte, 0, sizeHint)}
}

// Bytes returns the encoded bytes. The Writer must not be used afterwards if
// the caller keeps the slice.
func (w *Writer) Bytes() []byte { return w.buf }

// Len is the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

func (w *Writer) U8(v uint8)   { w.buf = append(w.buf, v) }
func (w *Writer) U16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }
func (w *Writer) U32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }
func (w *Writer) U64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool writes 0 or 1; Reader.Bool refuses any other byte so the encoding
// stays canonical.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Fixed writes b without a length; the reader must know its size.
func (w *Writer) Fixed(b []byte) { w.buf = append(w.buf, b...) }

// Var writes a u32 length and then b.
func (w *Writer) Var(b []byte) {
	w.U32(uint32(len(b)))
	w.buf = append(w.buf, b...)
}

// String writes s like Var.
func (w *Writer) String(s string) {
	w.U32(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// Reader decodes a canonical encoding. Once a read fails, every later read
// returns zero values and Err reports the first failure.
type Reader struct {
	b   []byte
	off int
	err error
}

// NewReader reads from b. It never modifies b; byte slices it returns are
// copies, so decoded objects do not alias the input buffer.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Remaining is the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Fail records err (if no error was recorded yet) so a decoder can report a
// semantic problem through the same path as a short read.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = ErrShort
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *Reader) U8() uint8 {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *Reader) U16() uint16 {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (r *Reader) U32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *Reader) U64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	v := r.U8()
	if v > 1 {
		r.Fail(fmt.Errorf("%w: boolean byte %d", ErrInvalid, v))
		return false
	}
	return v == 1
}

// Version reads the leading format-version byte and fails unless it equals
// want.
func (r *Reader) Version(want uint8) {
	v := r.U8()
	if r.err == nil && v != want {
		r.err = fmt.Errorf("%w: got %d, want %d", ErrVersion, v, want)
	}
}

// Fixed reads exactly n bytes and returns a copy.
func (r *Reader) Fixed(n int) []byte {
	p := r.take(n)
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// FixedInto fills dst completely (for arrays such as [32]byte keys).
func (r *Reader) FixedInto(dst []byte) {
	p := r.take(len(dst))
	if p != nil {
		copy(dst, p)
	}
}

// Var reads a length-prefixed byte string of at most max bytes. The bound is
// checked before anything is allocated.
func (r *Reader) Var(max int) []byte {
	n := r.U32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
		return nil
	}
	return r.Fixed(int(n))
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string {
	n := r.U32()
	if r.err != nil {
		return ""
	}
	if uint64(n) > uint64(max) {
		r.err = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
		return ""
	}
	p := r.take(int(n))
	return string(p)
}

// Count reads a u32 element count of at most max, for lists. Decoders must
// use it instead of U32 so a hostile count cannot drive a huge allocation.
func (r *Reader) Count(max int) int {
	n := r.U32()
	if r.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) {
		r.err = fmt.Errorf("%w: %d elements, limit %d", ErrTooLarge, n, max)
		return 0
	}
	return int(n)
}

// Finish returns the first error, or ErrTrailing if input is left over.
func (r *Reader) Finish() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, len(r.b)-r.off)
	}
	return nil
}
