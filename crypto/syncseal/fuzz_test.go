package syncseal

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzParse: the parser never panics, and a seal that parses and opens
// under good_seal_mutation's key is exactly what Seal makes from its
// fields and plaintext (the format has one encoding). Every sealed message
// of the vectors seeds the corpus.
func FuzzParse(f *testing.F) {
	var in sealInput
	decode(f, vectortest.Read[vector](f, filepath.Join(vectortest.Dir, "good_seal_mutation.json")).Input, &in)
	key := [KeySize]byte(in.Key)
	files, _ := filepath.Glob(filepath.Join(vectortest.Dir, "*.json"))
	for _, file := range files {
		v := vectortest.Read[vector](f, file)
		var in openInput
		decode(f, v.Input, &in)
		if len(in.Sealed) > 0 {
			f.Add([]byte(in.Sealed))
		}
		var out sealOutput
		if v.Output != nil {
			decode(f, v.Output, &out)
			f.Add([]byte(out.Sealed))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		pt, err := s.Open(key)
		if err != nil {
			return
		}
		again, err := Seal(bytes.NewReader(s.Nonce[:]), s.Kind, s.Epoch, key, pt)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("opened, but sealing the same fields gives %x", again)
		}
	})
}
