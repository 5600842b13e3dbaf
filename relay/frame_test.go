package relay

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/wire"
)

func samples() []Frame {
	dev := DeviceID{1, 2, 3}
	return []Frame{
		&Auth{Handle: "alice", Device: dev, Timestamp: 1700000000000, Sig: [64]byte{9}},
		&Send{Req: 7, MessageID: [16]byte{4}, TTL: 60, To: []Sealed{{To: Addr{"bob", dev}, Payload: []byte("x")}, {To: Addr{"alice", dev}, Payload: []byte("yz")}}},
		&GroupSend{Req: 8, Payload: []byte("g"), To: []Addr{{"bob", dev}}},
		&Ack{Seqs: []uint64{1, 2, 3}},
		&Prekeys{Req: 9, SignedPrekey: []byte("s"), LastResortKEM: []byte("l"), OneTime: [][]byte{[]byte("o")}, KEM: [][]byte{[]byte("k")}},
		&Fetch{Req: 10, Of: Addr{"bob", dev}},
		&BlobReserve{Req: 11},
		&Challenge{Nonce: [32]byte{5}, ServerTime: 42},
		&Ready{Queued: 3, Stock: Stock{OneTime: 4, KEM: 5}},
		&Envelope{Seq: 99, From: Addr{"alice", dev}, MessageID: [16]byte{6}, ServerTime: 1, Payload: []byte("c")},
		&OK{Req: 12, ServerTime: 2},
		&Error{Req: 13, Code: CodeStaleDevices, Message: "m"},
		&Stale{Req: 14, Accounts: []StaleAccount{{Handle: "bob", Missing: []DeviceID{dev}, Extra: []DeviceID{{7}}}}},
		&Bundle{Req: 15, SignedPrekey: []byte("s"), OneTime: []byte("o"), KEM: []byte("k"), LastResort: true},
		&BlobID{Req: 16, ID: [16]byte{8}, Expires: 3},
		&LowStock{Stock: Stock{OneTime: 1, KEM: 2}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range samples() {
		b := Encode(f)
		g, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		if !reflect.DeepEqual(normalize(f), normalize(g)) {
			t.Fatalf("%T: round trip\n got %+v\nwant %+v", f, g, f)
		}
		// Every strict prefix fails, and so does trailing data.
		for i := 0; i < len(b); i++ {
			if _, err := Decode(b[:i]); err == nil {
				t.Fatalf("%T: prefix of %d bytes decoded", f, i)
			}
		}
		if _, err := Decode(append(b, 0)); !errors.Is(err, wire.ErrTrailing) {
			t.Fatalf("%T: trailing byte: %v", f, err)
		}
	}
}

// normalize re-encodes so nil and empty slices compare equal.
func normalize(f Frame) []byte { return Encode(f) }

func TestRefusals(t *testing.T) {
	cases := map[string][]byte{
		"empty":           {},
		"unknown type":    {0x40},
		"oversize frame":  make([]byte, MaxFrame+1),
		"handle too long": Encode(&Auth{Handle: string(bytes.Repeat([]byte("a"), MaxHandle+1))}),
		"bad bool":        append(Encode(&Bundle{})[:len(Encode(&Bundle{}))-1], 2),
		"empty prekey":    Encode(&Prekeys{OneTime: [][]byte{{}}}),
	}
	// A recipient count far above what the bytes can hold.
	w := wire.NewWriter(0)
	w.U8(uint8(TSend))
	w.U32(1)
	w.Fixed(make([]byte, 16))
	w.U32(0)
	w.U32(MaxRecipients)
	cases["count beyond input"] = w.Bytes()
	w = wire.NewWriter(0)
	w.U8(uint8(TAck))
	w.U32(MaxAcks + 1)
	cases["too many acks"] = w.Bytes()
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestValidHandle(t *testing.T) {
	for _, h := range []string{"abc", "a.b_c-9", "abcdefghijklmnopqrstuvwxyz012345"} {
		if !ValidHandle(h) {
			t.Errorf("%q refused", h)
		}
	}
	for _, h := range []string{"ab", "ABC", "a b", "abc\x00", "é.abc", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if ValidHandle(h) {
			t.Errorf("%q accepted", h)
		}
	}
}

func TestCodesNamed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Codes() {
		n := c.String()
		if seen[n] {
			t.Fatalf("duplicate name %s", n)
		}
		seen[n] = true
		if back, ok := ParseCode(n); !ok || back != c {
			t.Fatalf("ParseCode(%s) = %d", n, back)
		}
	}
}

// FuzzDecode: the decoder never panics, and whatever it accepts re-encodes
// to exactly the input (one encoding per value).
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		f.Add(Encode(s))
	}
	f.Add([]byte{})
	f.Add([]byte{0x02, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		if got := Encode(fr); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, got)
		}
	})
}

// TestMaxPreAuthFrame holds the pre-login read limit to the Auth frame's
// largest encoding: a longer limit gives a stranger memory, a shorter one
// refuses a valid login.
func TestMaxPreAuthFrame(t *testing.T) {
	longest := &Auth{Handle: strings.Repeat("a", MaxHandle), Timestamp: ^uint64(0)}
	if n := len(Encode(longest)); n != MaxPreAuthFrame {
		t.Fatalf("the longest Auth frame is %d bytes, MaxPreAuthFrame is %d", n, MaxPreAuthFrame)
	}
	if _, err := Decode(Encode(longest)); err != nil {
		t.Fatal(err)
	}
}
