package wasmseg

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata modules")

// Test modules: sections of (id, body); the header is added by module.
func module(secs ...section) []byte {
	out := append([]byte(nil), magic...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}

func seg(off uint32, data ...byte) segment { return segment{Offset: off, Data: data} }

func dataSec(segs ...segment) section { return section{secData, encodeSegments(segs)} }

// The vectors: good_ modules coalesce to the segment count given, fail_
// ones are refused with the error given.
var (
	custom = section{0, append([]byte{4}, "name"...)}
	memory = section{5, []byte{1, 0, 1}}
	goods  = map[string]struct {
		mod   []byte
		after int
	}{
		"good_sparse": {module(custom, memory, section{secDataCount, []byte{5}},
			dataSec(seg(100, 1, 2, 3), seg(0, 9, 9), seg(103+DefaultMaxGap, 7), seg(20, 5), seg(2000, 0, 0, 8)), custom), 3},
		"good_adjacent":    {module(memory, dataSec(seg(0, 1), seg(1, 2), seg(2, 3))), 1},
		"good_no_data":     {module(custom, memory), 0},
		"good_high_offset": {module(dataSec(seg(0x80000000, 1), seg(0x80000010, 2), seg(0xfffffffe, 3, 4))), 2},
	}
	fails = map[string]struct {
		mod  []byte
		want error
	}{
		"fail_bad_magic":        {append([]byte{0, 'a', 's', 'n', 1, 0, 0, 0}, 11, 1, 0), ErrMalformed},
		"fail_version_2":        {[]byte{0, 'a', 's', 'm', 2, 0, 0, 0}, ErrMalformed},
		"fail_truncated":        {module(dataSec(seg(0, 1, 2, 3)))[:15], ErrMalformed},
		"fail_section_too_long": {append(append([]byte(nil), magic...), 11, 0xff, 0xff, 0xff, 0xff, 0x0f), ErrMalformed},
		"fail_count_too_large":  {module(section{secData, []byte{0xff, 0xff, 0x3f}}), ErrMalformed},
		"fail_trailing":         {module(section{secData, append(encodeSegments([]segment{seg(0, 1)}), 0)}), ErrMalformed},
		"fail_data_count_wrong": {module(section{secDataCount, []byte{2}}, dataSec(seg(0, 1))), ErrMalformed},
		"fail_data_count_alone": {module(section{secDataCount, []byte{1}}), ErrMalformed},
		"fail_two_data":         {module(dataSec(seg(0, 1)), dataSec(seg(8, 1))), ErrMalformed},
		"fail_past_4gib":        {module(dataSec(seg(0xffffffff, 1, 2))), ErrMalformed},
		"fail_overlap":          {module(dataSec(seg(0, 1, 2, 3), seg(2, 4))), ErrUnsupported},
		"fail_passive":          {module(section{secData, []byte{1, 1, 1, 5}}), ErrUnsupported},
		"fail_offset_global":    {module(section{secData, []byte{1, 0, 0x23, 0, opEnd, 1, 5}}), ErrUnsupported},
		"fail_offset_two_ops":   {module(section{secData, []byte{1, 0, opI32Const, 0, opI32Const, 0, opEnd, 1, 5}}), ErrUnsupported},
	}
)

// image is the non-zero bytes a module's data segments put in memory,
// which (memory starting zeroed) is the whole initial memory.
func image(t testing.TB, mod []byte) map[uint64]byte {
	t.Helper()
	secs, err := sections(mod)
	if err != nil {
		t.Fatal(err)
	}
	img := map[uint64]byte{}
	for _, s := range secs {
		if s.id != secData {
			continue
		}
		segs, err := segments(s.body)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range segs {
			for i, c := range g.Data {
				if c != 0 {
					img[uint64(g.Offset)+uint64(i)] = c
				}
			}
		}
	}
	return img
}

func sameImage(a, b map[uint64]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkCoalesced: the output keeps every other section in order, starts
// with the same memory, and coalescing it again changes nothing.
func checkCoalesced(t testing.TB, in, out []byte, st Stats, gap int) {
	t.Helper()
	if !sameImage(image(t, in), image(t, out)) {
		t.Fatal("the coalesced module starts with different memory")
	}
	a, _ := sections(in)
	b, _ := sections(out)
	if len(a) != len(b) {
		t.Fatalf("%d sections became %d", len(a), len(b))
	}
	for i := range a {
		if a[i].id != b[i].id || (a[i].id != secData && a[i].id != secDataCount && !bytes.Equal(a[i].body, b[i].body)) {
			t.Fatalf("section %d (id %d) changed", i, a[i].id)
		}
		if b[i].id == secDataCount {
			r := reader{b: b[i].body}
			if n, err := r.u32(); err != nil || int(n) != st.After {
				t.Fatalf("data count %d, want %d (%v)", n, st.After, err)
			}
		}
	}
	if st.After > st.Before {
		t.Fatalf("%d segments became %d", st.Before, st.After)
	}
	again, st2, err := Coalesce(out, gap)
	if err != nil || !bytes.Equal(again, out) || st2.Before != st.After || st2.After != st.After || st2.Zeros != 0 {
		t.Fatalf("coalescing twice changed the module: %v %+v", err, st2)
	}
}

func TestVectors(t *testing.T) {
	if *update {
		for name, v := range goods {
			write(t, name, v.mod)
		}
		for name, v := range fails {
			write(t, name, v.mod)
		}
	}
	files, _ := filepath.Glob("testdata/*.wasm")
	if len(files) != len(goods)+len(fails) {
		t.Fatalf("%d vector files, want %d (run with -update)", len(files), len(goods)+len(fails))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".wasm")
		mod, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			out, st, err := Coalesce(mod, DefaultMaxGap)
			if g, ok := goods[name]; ok {
				if err != nil {
					t.Fatal(err)
				}
				if st.After != g.after {
					t.Fatalf("%d segments after, want %d", st.After, g.after)
				}
				checkCoalesced(t, mod, out, st, DefaultMaxGap)
				return
			}
			f, ok := fails[name]
			if !ok {
				t.Fatalf("vector %s is in neither table", name)
			}
			if !errors.Is(err, f.want) || out != nil {
				t.Fatalf("Coalesce = %v, want %v and no output", err, f.want)
			}
		})
	}
}

func write(t *testing.T, name string, mod []byte) {
	if err := os.WriteFile(filepath.Join("testdata", name+".wasm"), mod, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGapLimit: a gap of exactly maxGap is joined, one byte more is not,
// and maxGap 0 joins only touching segments.
func TestGapLimit(t *testing.T) {
	for _, tc := range []struct{ gap, maxGap, after int }{
		{8, 8, 1}, {9, 8, 2}, {0, 0, 1}, {1, 0, 2},
	} {
		mod := module(dataSec(seg(0, 1, 2), seg(uint32(2+tc.gap), 3)))
		out, st, err := Coalesce(mod, tc.maxGap)
		if err != nil || st.After != tc.after || (st.After == 1 && st.Zeros != tc.gap) {
			t.Fatalf("gap %d, max %d: %v %+v, want %d segments", tc.gap, tc.maxGap, err, st, tc.after)
		}
		checkCoalesced(t, mod, out, st, tc.maxGap)
	}
	if _, _, err := Coalesce(module(), -1); err == nil {
		t.Fatal("a negative gap was accepted")
	}
}

// FuzzCoalesce: no input panics; what is accepted starts with the same
// memory, keeps its other sections, and is a fixed point.
func FuzzCoalesce(f *testing.F) {
	for _, v := range goods {
		f.Add(v.mod, byte(DefaultMaxGap))
	}
	for _, v := range fails {
		f.Add(v.mod, byte(1))
	}
	f.Fuzz(func(t *testing.T, mod []byte, gap byte) {
		out, st, err := Coalesce(mod, int(gap))
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		checkCoalesced(t, mod, out, st, int(gap))
	})
}
