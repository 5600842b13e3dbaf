package bulk

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzUnmarshalRef feeds arbitrary references to the decoder, seeded from
// the vectors: no panics, what decodes re-encodes to the same bytes (the
// encoding is canonical), and a decoded reference keeps every limit
// UnmarshalRef promises, so Open can trust its sizes.
func FuzzUnmarshalRef(f *testing.F) {
	vectortest.Seed(f, "ref")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRef(b, maxBlob)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("a reference does not re-encode to the same bytes")
		}
		n := uint64(len(r.Blobs))
		if len(b) > MaxRefLen || r.Size > MaxSize || r.ChunkSize < MinChunkSize || r.ChunkSize > MaxChunkSize ||
			n == 0 || n > r.Chunks() || r.SealedSize() > n*maxBlob {
			t.Fatalf("accepted a reference outside the limits: %+v", r)
		}
	})
}
