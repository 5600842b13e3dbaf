// Package vectortest holds what the crypto packages' test vectors share
// (docs/PROTOCOL.md §9): the deterministic randomness every vector is
// generated from, the hex encoding of byte fields, the testdata files and
// their -update flag, error names, and Run, the body of every TestVectors.
// It is used by tests only.
package vectortest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/wire"
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
func Check(t testing.TB, f File, name string, err error, errs Errors) {
	t.Helper()
	if f.Good() {
		if name != "" || err != nil {
			t.Fatalf("good vector failed: %v (error name %q)", err, name)
		}
		return
	}
	if want := errs.Want(t, name); !errors.Is(err, want) {
		t.Fatalf("got %v, want %s", err, name)
	}
}

// update is -update: TestVectors rewrites testdata from the package's
// generator before it replays the files.
var update = flag.Bool("update", false, "rewrite testdata vectors")

// Run is a package's TestVectors: under -update it first writes every
// vector generate returns, by file name; then it replays each file in
// testdata, in name order, as a subtest.
func Run[V any](t *testing.T, generate func(*testing.T) map[string]V, replay func(t *testing.T, f File, v V)) {
	if *update {
		for name, v := range generate(t) {
			Write(t, name, v)
		}
	}
	for _, f := range Files(t) {
		t.Run(f.Name, func(t *testing.T) { replay(t, f, Read[V](t, f.Path)) })
	}
}

// Op is a vector of one operation, the layout of docs/PROTOCOL.md §9.1.
type Op struct {
	Comment string         `json:"comment"`
	Type    string         `json:"type"`
	Input   map[string]any `json:"input"`
	Output  map[string]any `json:"output,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// RunOps is TestVectors for Op vectors: replay performs the operation and
// returns its error, which Check holds against the vector's error name.
func RunOps(t *testing.T, generate func(*testing.T) map[string]Op, replay func(*testing.T, Op) error, errs Errors) {
	Run(t, generate, func(t *testing.T, f File, v Op) { Check(t, f, v.Error, replay(t, v), errs) })
}

// Errors maps the error names a package's vectors use (docs/PROTOCOL.md
// §9.3) to the package's sentinel errors. The decoding names every package
// shares (short, trailing, version, too_large: crypto/wire's errors) need
// not be listed; a package lists one only to mean its own sentinel.
type Errors map[string]error

// decodingErrors are §9.3's names for crypto/wire's errors.
var decodingErrors = Errors{
	"short":     wire.ErrShort,
	"trailing":  wire.ErrTrailing,
	"version":   wire.ErrVersion,
	"too_large": wire.ErrTooLarge,
}

// lookup is the sentinel for name: the package's own, else wire's.
func (e Errors) lookup(name string) (error, bool) {
	if err, ok := e[name]; ok {
		return err, true
	}
	err, ok := decodingErrors[name]
	return err, ok
}

// Name is the name of the sentinel err matches, for recording a failure in
// a vector: the package's names first, then the decoding ones, each in
// sorted order, so the answer is stable.
func (e Errors) Name(err error) string {
	for _, m := range []Errors{e, decodingErrors} {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if errors.Is(err, m[n]) {
				return n
			}
		}
	}
	return fmt.Sprintf("unexpected(%v)", err)
}

// Want is the sentinel a vector names; an unknown name fails t.
func (e Errors) Want(t testing.TB, name string) error {
	t.Helper()
	want, ok := e.lookup(name)
	if !ok {
		t.Fatalf("unknown error name %q", name)
	}
	return want
}

// Hex is b as a vector writes it: lowercase hex.
func Hex(b []byte) string { return hex.EncodeToString(b) }

// HexList is bs as a list of hex strings (empty, not null, when bs is).
func HexList(bs [][]byte) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, Hex(b))
	}
	return out
}

// Bytes is the hex field k of m (an Op's Input or Output); a missing or
// malformed field fails t.
func Bytes(t testing.TB, m map[string]any, k string) []byte {
	t.Helper()
	s, ok := m[k].(string)
	if !ok {
		t.Fatalf("field %q missing", k)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("field %q: %v", k, err)
	}
	return b
}

// BytesList is the list of hex strings k of m (nil when absent).
func BytesList(t testing.TB, m map[string]any, k string) [][]byte {
	t.Helper()
	l, _ := m[k].([]any)
	var out [][]byte
	for _, x := range l {
		b, err := hex.DecodeString(x.(string))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Int is the integer field k of m, read exactly (Read keeps json.Number).
func Int(t testing.TB, m map[string]any, k string) int64 {
	t.Helper()
	n, ok := m[k].(json.Number)
	if !ok {
		t.Fatalf("number %q missing", k)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// MustMarshal is m.MarshalBinary, failing t on error.
func MustMarshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Recorder passes reads through to R and keeps the bytes read, so a
// generator can store the randomness a step consumed.
type Recorder struct {
	R   io.Reader
	Got []byte
}

func (rc *Recorder) Read(p []byte) (int, error) {
	n, err := rc.R.Read(p)
	rc.Got = append(rc.Got, p[:n]...)
	return n, err
}

// NoRandom is a random source for steps that must read none: any read
// fails.
type NoRandom struct{}

func (NoRandom) Read([]byte) (int, error) { return 0, errors.New("no randomness expected here") }

// Seed adds to f, as fuzz seeds, prefix || every input field named key of
// the Op vectors in testdata: a string, or each string of a list, hex-
// decoded (a string that is not hex, such as a link code, as its bytes).
func Seed(f *testing.F, key string, prefix ...byte) {
	paths, _ := filepath.Glob(filepath.Join(Dir, "*.json"))
	for _, p := range paths {
		var vals []string
		switch x := Read[Op](f, p).Input[key].(type) {
		case string:
			vals = []string{x}
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok {
					vals = append(vals, s)
				}
			}
		}
		for _, s := range vals {
			b, err := hex.DecodeString(s)
			if err != nil {
				b = []byte(s)
			}
			f.Add(append(append([]byte(nil), prefix...), b...))
		}
	}
}
