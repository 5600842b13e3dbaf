package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := NewWriter(0)
	w.U8(1)
	w.U16(0x0203)
	w.U32(0x04050607)
	w.U64(0x08090a0b0c0d0e0f)
	w.Bool(true)
	w.Bool(false)
	w.Fixed([]byte{0xaa, 0xbb})
	w.Var([]byte("var"))
	w.String("str")
	w.U32(2) // a count
	want := "01" + "0203" + "04050607" + "08090a0b0c0d0e0f" + "01" + "00" + "aabb" +
		"00000003" + "766172" + "00000003" + "737472" + "00000002"
	if got := hex.EncodeToString(w.Bytes()); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	if w.Len() != len(want)/2 {
		t.Fatal("Len")
	}

	r := NewReader(w.Bytes())
	r.Version(1)
	if r.U16() != 0x0203 || r.U32() != 0x04050607 || r.U64() != 0x08090a0b0c0d0e0f || !r.Bool() || r.Bool() {
		t.Fatal("integers")
	}
	var fx [2]byte
	r.FixedInto(fx[:])
	if fx != [2]byte{0xaa, 0xbb} || string(r.Var(3)) != "var" || r.String(3) != "str" || r.Count(2) != 2 {
		t.Fatal("bytes")
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		read func(r *Reader)
		want error
	}{
		{"short u32", "000000", func(r *Reader) { r.U32() }, ErrShort},
		{"short fixed", "00", func(r *Reader) { r.Fixed(2) }, ErrShort},
		{"var over limit", "00000005" + "0102030405", func(r *Reader) { r.Var(4) }, ErrTooLarge},
		{"string over limit", "00000005" + "0102030405", func(r *Reader) { r.String(4) }, ErrTooLarge},
		{"var longer than input", "00000005" + "01", func(r *Reader) { r.Var(10) }, ErrShort},
		{"huge var within limit", "7fffffff", func(r *Reader) { r.Var(1 << 31) }, ErrShort},
		{"count over limit", "00000011", func(r *Reader) { r.Count(16) }, ErrTooLarge},
		{"bool 2", "02", func(r *Reader) { r.Bool() }, ErrInvalid},
		{"version", "02", func(r *Reader) { r.Version(1) }, ErrVersion},
		{"trailing", "0100", func(r *Reader) { r.Version(1) }, ErrTrailing},
		{"empty", "", func(r *Reader) { r.U8() }, ErrShort},
	}
	for _, c := range cases {
		b, _ := hex.DecodeString(c.in)
		r := NewReader(b)
		c.read(r)
		if err := r.Finish(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestFirstErrorSticks(t *testing.T) {
	r := NewReader([]byte{0, 0})
	r.U32()
	r.Fail(ErrInvalid)
	if r.U8() != 0 || r.Var(10) != nil || r.String(10) != "" || r.Count(1) != 0 || r.Fixed(1) != nil {
		t.Fatal("reads after an error must return zero values")
	}
	if !errors.Is(r.Err(), ErrShort) || !errors.Is(r.Finish(), ErrShort) {
		t.Fatalf("first error lost: %v", r.Err())
	}
}

func TestReaderCopies(t *testing.T) {
	in := []byte{0, 0, 0, 2, 'a', 'b'}
	r := NewReader(in)
	v := r.Var(2)
	in[4] = 'x'
	if string(v) != "ab" {
		t.Fatal("Var aliases the input")
	}
}

// FuzzReader drives a Reader with a program taken from the input's first
// bytes: it must never panic or read out of bounds, must respect every
// limit, and whatever it decodes must re-encode to the bytes consumed.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x01, 0x02, 0x03}, []byte{1, 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0x05, 0x06, 0x07}, []byte{0, 0, 0, 2, 'h', 'i', 0, 0, 0, 1, 1})
	f.Add([]byte{0x08, 0x04}, []byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, prog, data []byte) {
		if len(prog) > 64 {
			return
		}
		const limit = 32
		r := NewReader(data)
		w := NewWriter(len(data))
		for _, op := range prog {
			if r.Err() != nil {
				break
			}
			switch op % 10 {
			case 0:
				w.U8(r.U8())
			case 1:
				w.U16(r.U16())
			case 2:
				w.U32(r.U32())
			case 3:
				w.U64(r.U64())
			case 4:
				w.Bool(r.Bool())
			case 5:
				b := r.Var(limit)
				if len(b) > limit {
					t.Fatal("Var exceeded its limit")
				}
				if r.Err() == nil {
					w.Var(b)
				}
			case 6:
				s := r.String(limit)
				if r.Err() == nil {
					w.String(s)
				}
			case 7:
				n := r.Count(limit)
				if n > limit {
					t.Fatal("Count exceeded its limit")
				}
				if r.Err() == nil {
					w.U32(uint32(n))
				}
			case 8:
				w.Fixed(r.Fixed(int(op / 10)))
			case 9:
				v := op / 10
				r.Version(v)
				if r.Err() == nil {
					w.U8(v)
				}
			}
		}
		if r.Err() != nil {
			if r.Remaining() < 0 || r.Remaining() > len(data) {
				t.Fatal("Remaining out of range")
			}
			return
		}
		consumed := len(data) - r.Remaining()
		if !bytes.Equal(w.Bytes(), data[:consumed]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", w.Bytes(), data[:consumed])
		}
		if err := r.Finish(); (err == nil) != (consumed == len(data)) {
			t.Fatalf("Finish = %v with %d bytes left", err, len(data)-consumed)
		}
	})
}
