package padding

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzOpen: Open never panics, and a frame it accepts is exactly what Pad
// makes of the payload it returned (the padded form is canonical); an
// unpadded payload comes back unchanged. Every frame of the vectors seeds
// the corpus.
func FuzzOpen(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(vectortest.Dir, "*.json"))
	for _, file := range files {
		op := vectortest.Read[vectortest.Op](f, file)
		for _, m := range []map[string]any{op.Input, op.Output} {
			if _, ok := m["frame"].(string); ok {
				f.Add(vectortest.Bytes(f, m, "frame"))
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, padded, err := Open(b)
		if err != nil {
			return
		}
		if !padded {
			if !bytes.Equal(p, b) || b[0] >= Tag {
				t.Fatal("an unpadded payload changed or has a padding tag")
			}
			return
		}
		again, err := Pad(p)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("opened, but padding the payload again gives %d bytes (%v)", len(again), err)
		}
	})
}
