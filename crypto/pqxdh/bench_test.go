package pqxdh

import "testing"

// keepAll is a Prekeys that never deletes, so one bundle (with a one-time
// prekey) serves every iteration of BenchmarkSetup.
type keepAll struct{ *store }

func (keepAll) Consume(uint32, bool, uint32, bool) error { return nil }

// BenchmarkSetup is a whole session setup: the initiator verifies the
// bundle, runs PQXDH and encrypts a 1 KiB first message; the responder
// decodes it, runs PQXDH and decrypts.
func BenchmarkSetup(b *testing.B) {
	r := newDetRand("bench-setup")
	alice, bob := newParty(b, r, 1, true), newParty(b, r, 1, true)
	bundle := bob.bundle(100)
	pin := bob.dev.Public()
	keys := keepAll{bob.store}
	pt := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		st, m, err := Initiate(nil, alice.dev, pin, bundle)
		if err != nil {
			b.Fatal(err)
		}
		if m.Message, err = st.Encrypt(nil, pt); err != nil {
			b.Fatal(err)
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		m2, err := UnmarshalInitialMessage(enc)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Respond(bob.dev, keys, m2); err != nil {
			b.Fatal(err)
		}
	}
}
