package senderkey

import "testing"

// BenchmarkGroup is one 1 KiB group message: the sender encrypts and signs
// once, one member device verifies and decrypts.
func BenchmarkGroup(b *testing.B) {
	s := mustSender(b, newDetRand("bench-group"))
	rc := mustReceiver(b, s)
	pt := make([]byte, 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := s.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rc.Decrypt(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshal is a receiver round trip through its stored encoding.
func BenchmarkMarshal(b *testing.B) {
	s := mustSender(b, newDetRand("bench-marshal"))
	rc := mustReceiver(b, s)
	b.ReportAllocs()
	for b.Loop() {
		enc, err := rc.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := UnmarshalReceiver(enc); err != nil {
			b.Fatal(err)
		}
	}
}
