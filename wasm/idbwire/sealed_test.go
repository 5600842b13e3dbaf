package idbwire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The vectors in testdata are sealed-record headers (PROTOCOL.md 13.1,
// 13.2) that web/boot.js's parser must read the same way: a good_ vector
// splits into epoch, iv and ciphertext; a fail_ vector is not a sealed
// record.
type sealedVector struct {
	Comment    string `json:"comment"`
	Sealed     string `json:"sealed"`
	Epoch      uint32 `json:"epoch"`
	IV         string `json:"iv"`
	Ciphertext string `json:"ciphertext"`
	Error      string `json:"error"`
}

func TestSealedVectors(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v sealedVector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sealed, _ := hex.DecodeString(v.Sealed)
		epoch, iv, ct, err := ParseSealed(sealed)
		if strings.HasPrefix(name, "fail_") {
			if !errors.Is(err, ErrSealedFormat) || v.Error != "not_sealed" {
				t.Errorf("%s (%s): err %v, want ErrSealedFormat", name, v.Comment, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (%s): %v", name, v.Comment, err)
			continue
		}
		if epoch != v.Epoch || hex.EncodeToString(iv) != v.IV || hex.EncodeToString(ct) != v.Ciphertext {
			t.Errorf("%s: epoch %d iv %x ct %x", name, epoch, iv, ct)
		}
		// The header a writer makes is the one the vector holds.
		if again := append(SealedHeader(epoch, iv), ct...); !bytes.Equal(again, sealed) {
			t.Errorf("%s: re-sealed header %x, vector %x", name, again, sealed)
		}
	}
}

func FuzzParseSealed(f *testing.F) {
	for _, e := range []uint32{0, 1, 1 << 31} {
		f.Add(append(SealedHeader(e, make([]byte, IVSize)), make([]byte, TagSize+3)...))
	}
	f.Add([]byte{SealV2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		epoch, iv, ct, err := ParseSealed(b)
		if err != nil {
			return
		}
		if len(iv) != IVSize || len(ct) < TagSize {
			t.Fatalf("iv %d bytes, ciphertext %d", len(iv), len(ct))
		}
		if again := append(SealedHeader(epoch, iv), ct...); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, input %x", again, b)
		}
	})
}
