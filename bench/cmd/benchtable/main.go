// Command benchtable turns the raw output of one `make bench` run into the
// single comparison table the crypto issue asks for: Parley's Go benchmarks
// natively and compiled to wasm (under Node), next to libsignal's native
// addon running the same workloads, with the wasm/libsignal ratio and the
// pass/fail verdict for each target.
//
// Inputs are the text output of `go test -bench` (several -count runs) for
// native and for wasm, and the JSON lines printed by bench/libsignal/bench.mjs.
// Every number in the table is a median over the runs, in µs/op: the
// machine is shared and noisy, and a median is less moved by a burst of
// someone else's work than a mean.
//
// Usage:
//
//	benchtable -native native.txt -wasm wasm.txt -libsignal libsignal.json [-strict]
//
// With -strict it exits 1 when a target fails or cannot be measured.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// A target is the bar one workload has to clear in Go-wasm (issue 3,
// "Performance"): an absolute ceiling in µs/op, a ceiling on the ratio to
// libsignal native, or both. Zero means "no such bar".
type target struct {
	maxWasmUS float64
	maxRatio  float64
}

func (t target) String() string {
	var parts []string
	if t.maxWasmUS > 0 {
		parts = append(parts, fmt.Sprintf("wasm ≤ %g µs", t.maxWasmUS))
	}
	if t.maxRatio > 0 {
		parts = append(parts, fmt.Sprintf("ratio ≤ %g", t.maxRatio))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

// workloads lists the rows in order; names match the Go benchmarks
// (without the "Benchmark" prefix) and the keys in libsignal's JSON.
var workloads = []struct {
	name   string
	target target
}{
	{"Setup", target{maxRatio: 2.0}},
	{"Stream1KiB", target{maxRatio: 1.0}},
	{"PingPong1KiB", target{maxWasmUS: 700, maxRatio: 2.5}},
	{"Group1KiB", target{maxWasmUS: 400}},
	{"DeviceListVerify5", target{}},
	{"StateMarshal", target{}},
	{"StateUnmarshal", target{}},
}

// libsignalRun is one line that bench/libsignal/bench.mjs prints.
type libsignalRun struct {
	Version   string `json:"version"`
	Node      string `json:"node"`
	Workloads map[string]struct {
		RunsUS []float64 `json:"runs_us"`
		NA     string    `json:"na"`
	} `json:"workloads"`
}

// libsignalReport gathers every run of every libsignal invocation.
type libsignalReport struct {
	Version, Node string
	Workloads     map[string]libsignalWorkload
}

type libsignalWorkload struct {
	RunsUS []float64 // µs/op of every run; empty if never measured
	NA     string    // why libsignal has no equivalent, if it has none
}

func main() {
	nativePath := flag.String("native", "", "go test -bench output, native")
	wasmPath := flag.String("wasm", "", "go test -bench output, GOOS=js GOARCH=wasm under Node")
	libsignalPath := flag.String("libsignal", "", "JSON from bench/libsignal/bench.mjs")
	strict := flag.Bool("strict", false, "exit 1 if any target fails or is unmeasured")
	flag.Parse()
	if *nativePath == "" || *wasmPath == "" || *libsignalPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	native, err := readGoBench(*nativePath)
	check(err)
	wasm, err := readGoBench(*wasmPath)
	check(err)
	ls, err := readLibsignal(*libsignalPath)
	check(err)
	if failed := writeTable(os.Stdout, native, wasm, ls); failed && *strict {
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// benchLine matches "BenchmarkName-2   1234   567.8 ns/op ..."; the -N
// GOMAXPROCS suffix is absent under wasm, where it is always 1.
var benchLine = regexp.MustCompile(`^Benchmark([A-Za-z0-9_/]+?)(?:-\d+)?\s+\d+\s+([0-9.e+]+) ns/op`)

// readGoBench returns the µs/op samples of every benchmark in a go test
// -bench output, one per -count run.
func readGoBench(path string) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad ns/op in %q: %v", path, sc.Text(), err)
		}
		runs[m[1]] = append(runs[m[1]], ns/1e3)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return runs, nil
}

// readLibsignal reads one or more JSON lines from bench.mjs (crypto.sh runs
// it once per round) and gathers all their runs.
func readLibsignal(path string) (*libsignalReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &libsignalReport{Workloads: map[string]libsignalWorkload{}}
	runs := map[string][]float64{}
	dec := json.NewDecoder(f)
	for n := 0; ; n++ {
		var run libsignalRun
		if err := dec.Decode(&run); err == io.EOF {
			if n == 0 {
				return nil, fmt.Errorf("%s: no libsignal results", path)
			}
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		r.Version, r.Node = run.Version, run.Node
		for name, w := range run.Workloads {
			if w.NA != "" {
				r.Workloads[name] = libsignalWorkload{NA: w.NA}
				continue
			}
			runs[name] = append(runs[name], w.RunsUS...)
		}
	}
	for name, xs := range runs {
		if len(xs) > 0 {
			r.Workloads[name] = libsignalWorkload{RunsUS: xs}
		}
	}
	return r, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func us(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// stat is one cell's samples: median, spread and count.
type stat struct {
	med, min, max float64
	n             int
}

func statOf(xs []float64) (stat, bool) {
	if len(xs) == 0 {
		return stat{}, false
	}
	return stat{med: median(xs), min: slices.Min(xs), max: slices.Max(xs), n: len(xs)}, true
}

func (s stat) spread() string {
	return fmt.Sprintf("%s–%s (n=%d)", us(s.min, true), us(s.max, true), s.n)
}

// writeTable prints the table, then the spread of the samples behind each
// median so a reader can see how noisy the run was, and reports whether
// any target failed or could not be measured.
func writeTable(w io.Writer, native, wasm map[string][]float64, ls *libsignalReport) (failed bool) {
	fmt.Fprintf(w, "Parley crypto vs libsignal %s (Node %s), 1 KiB messages, medians in µs/op\n\n", ls.Version, ls.Node)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tGo native\tGo wasm\tlibsignal\twasm/libsignal\ttarget\tresult")
	var notes []string
	var spreads []string
	for _, wl := range workloads {
		ns, nok := statOf(native[wl.name])
		ws, wok := statOf(wasm[wl.name])
		lsEntry, lsSeen := ls.Workloads[wl.name]
		lst, lok := statOf(lsEntry.RunsUS)
		if !nok && !wok && !lsSeen {
			continue // not run at all (BENCH_RE)
		}
		lsCell := us(lst.med, lok)
		if lsSeen && lsEntry.NA != "" {
			lsCell = "n/a"
			notes = append(notes, fmt.Sprintf("%s: libsignal n/a: %s", wl.name, lsEntry.NA))
		}
		ratio, rok := 0.0, wok && lok && lst.med > 0
		ratioCell := "—"
		if rok {
			ratio = ws.med / lst.med
			ratioCell = fmt.Sprintf("%.2f×", ratio)
		}
		result := verdict(wl.target, ws.med, wok, ratio, rok)
		if result == "FAIL" || strings.HasPrefix(result, "unmeasured") {
			failed = true
		}
		if !nok || !wok {
			notes = append(notes, fmt.Sprintf("%s: no Go benchmark result (native %v, wasm %v)", wl.name, nok, wok))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			wl.name, us(ns.med, nok), us(ws.med, wok), lsCell, ratioCell, wl.target, result)
		sp := wl.name + ":"
		for _, c := range []struct {
			label string
			s     stat
			ok    bool
		}{{"native", ns, nok}, {"wasm", ws, wok}, {"libsignal", lst, lok}} {
			if c.ok {
				sp += fmt.Sprintf("  %s %s", c.label, c.s.spread())
			}
		}
		spreads = append(spreads, sp)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nspread of the samples behind each median (min–max µs/op):")
	for _, sp := range spreads {
		fmt.Fprintln(w, "  "+sp)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "note:", n)
		}
	}
	return failed
}

func verdict(t target, wv float64, wok bool, ratio float64, rok bool) string {
	if t.maxWasmUS == 0 && t.maxRatio == 0 {
		return "—"
	}
	if !wok || (t.maxRatio > 0 && !rok) {
		return "unmeasured"
	}
	pass := true
	if t.maxWasmUS > 0 && wv > t.maxWasmUS {
		pass = false
	}
	if t.maxRatio > 0 && (math.IsNaN(ratio) || ratio > t.maxRatio) {
		pass = false
	}
	if pass {
		return "pass"
	}
	return "FAIL"
}
