package ratchet

import (
	"testing"
)

// BenchmarkStream1KiB is one 1 KiB message encrypted and decrypted, always
// in the same direction: chain steps only, no DH.
func BenchmarkStream1KiB(b *testing.B) {
	alice, bob, r := newPair(b, "bench-stream")
	pt := make([]byte, 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := alice.Encrypt(r, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingPong is one 1 KiB message encrypted and decrypted, the
// direction alternating every message, so each one costs a full DH ratchet
// step (receive DH, then keygen and DH on the next send).
func BenchmarkPingPong(b *testing.B) {
	alice, bob, r := newPair(b, "bench-pingpong")
	pt := make([]byte, 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	from, to := alice, bob
	for b.Loop() {
		m, err := from.Encrypt(r, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(m); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}

// BenchmarkMarshal is a state round trip through its stored encoding
// (MarshalBinary then Unmarshal), with a few skipped keys, as the engine
// does around every message it persists.
func BenchmarkMarshal(b *testing.B) {
	alice, bob, r := newPair(b, "bench-marshal")
	var ms [][]byte
	for i := 0; i < 10; i++ {
		ms = append(ms, mustEncrypt(b, alice, r, "x"))
	}
	mustDecrypt(b, bob, ms[9], "x")
	mustDecrypt(b, alice, mustEncrypt(b, bob, r, "y"), "y")
	b.ReportAllocs()
	for b.Loop() {
		enc, err := bob.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}
