package pqxdh

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzUnmarshalInitialMessage checks the InitialMessage decoder: no panics,
// and what it accepts re-encodes to the same bytes. (Respond itself is not
// fuzzed here: nearly every mutation still decodes, and four instrumented
// X25519 operations per input leave the fuzzer a few executions a second;
// its failure paths are covered by the fail_ vectors and by FuzzDecrypt in
// crypto/ratchet for the first message.)
func FuzzUnmarshalInitialMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		v := loadVector(f, file)
		for _, r := range v.Responses {
			f.Add([]byte(r.InitialMessage))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalInitialMessage(b)
		if err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted message does not re-encode to itself (%v)", err)
		}
	})
}
