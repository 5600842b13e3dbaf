package devicelist

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzVerify feeds arbitrary lists to the decoder and verifier: no panics,
// and a list that decodes re-encodes to the same bytes (the encoding is
// canonical, which signatures over it rely on). Seeded from the vectors.
func FuzzVerify(f *testing.F) {
	vectortest.Seed(f, "list")
	vectortest.Seed(f, "next")
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _, sig, err := decode(data)
		if err != nil {
			return
		}
		if got := append(encodeBody(l), sig...); !bytes.Equal(got, data) {
			t.Fatalf("non-canonical list accepted")
		}
		// Verify against the key the list names; signatures will almost
		// never verify, but the structural checks run on every input.
		_ = checkStructure(l)
		if len(data) < 600 {
			_, _ = Verify(l.Account, data)
		}
	})
}
