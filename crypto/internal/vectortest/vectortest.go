// Package vectortest holds what the crypto packages' test vectors share:
// the deterministic randomness every vector is generated from, and the hex
// encoding of byte fields in the vector JSON (docs/PROTOCOL.md §9). It is
// used by tests only.
package vectortest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// DetRand is the vectors' deterministic stream: block i is
// SHA-256(seed || u64be(i)), blocks concatenated. Another implementation
// replaying the vectors derives the same keys from the same seed.
type DetRand struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

// NewDetRand starts the stream for seed.
func NewDetRand(seed string) *DetRand { return &DetRand{seed: []byte(seed)} }

// Read fills p from the stream; it never fails.
func (d *DetRand) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], d.ctr)
			d.ctr++
			s := sha256.Sum256(append(append([]byte(nil), d.seed...), c[:]...))
			d.buf = s[:]
		}
		k := copy(p[n:], d.buf)
		d.buf = d.buf[k:]
		n += k
	}
	return n, nil
}

// HexBytes is a byte field written as a lowercase hex string in the JSON.
type HexBytes []byte

// MarshalJSON writes h as a hex string.
func (h HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON reads a hex string.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// Dir is where every package keeps its vectors.
const Dir = "testdata"

// Write stores v as testdata/<name>.json, indented with a final newline:
// what a package's TestVectors does under -update.
func Write(t testing.TB, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(Dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// File is one vector file.
type File struct {
	Name string // without .json; starts with good_ or fail_
	Path string
}

// Good reports whether the vector must succeed (good_) rather than fail.
func (f File) Good() bool { return strings.HasPrefix(f.Name, "good_") }

// Files lists testdata/*.json in name order. It fails t when there are no
// vectors or a name starts with neither good_ nor fail_, so the listing
// alone tells which cases are covered.
func Files(t testing.TB) []File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(Dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors in %s (%v); generate them with -update", Dir, err)
	}
	sort.Strings(paths)
	var out []File
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		if !strings.HasPrefix(name, "good_") && !strings.HasPrefix(name, "fail_") {
			t.Errorf("%s: vector names start with good_ or fail_", p)
			continue
		}
		out = append(out, File{Name: name, Path: p})
	}
	return out
}

// Read decodes the vector file at path. Numbers in untyped fields stay
// json.Number, so a vector's integers are read exactly.
func Read[T any](t testing.TB, path string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// Check fails t unless err, what replaying f gave, is what f promises: no
// error for a good_ vector (which must name none), and for a fail_ one the
// error errs maps the vector's error name to.
func Check(t testing.TB, f File, name string, err error, errs map[string]error) {
	t.Helper()
	if f.Good() {
		if name != "" || err != nil {
			t.Fatalf("good vector failed: %v (error name %q)", err, name)
		}
		return
	}
	want, ok := errs[name]
	if !ok {
		t.Fatalf("unknown error name %q", name)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %s", err, name)
	}
}
