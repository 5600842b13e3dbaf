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
			_, _ = Verify(l.Account, l.Handle, data)
		}
	})
}

// FuzzVerifyHandle feeds arbitrary lists and handles to Verify: no panics,
// and whatever verifies for a handle names exactly that handle or none (a
// legacy list). An input is u8 n || handle (n bytes) || list; seeded from
// the vectors' lists under their own handle and under another.
func FuzzVerifyHandle(f *testing.F) {
	for _, h := range []string{fixtureHandle, "mallory"} {
		vectortest.Seed(f, "list", append([]byte{byte(len(h))}, h...)...)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1+int(data[0])+600 || len(data) < 1+int(data[0]) {
			return
		}
		handle, list := string(data[1:1+int(data[0])]), data[1+int(data[0]):]
		l, _, _, err := decode(list)
		if err != nil {
			return
		}
		got, err := Verify(l.Account, handle, list)
		if err == nil && !got.Legacy() && got.Handle != handle {
			t.Fatalf("list naming %q verified for %q", got.Handle, handle)
		}
	})
}
