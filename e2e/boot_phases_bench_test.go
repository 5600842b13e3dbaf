package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// BenchmarkBootPhases breaks navigation→ready down by the milestones the
// client records in parley.timing (wasm/main.go, wasm/device.go) and the
// wasm fetch's resource timing, on an existing profile with an account.
// Run it with
//
//	go test -run '^$' -bench BootPhases -benchtime 5x ./e2e
//
// It logs the median of each milestone (ms since navigation start).
func BenchmarkBootPhases(b *testing.B) {
	srv := StartServer(b)
	br := NewBrowser(b)
	br.Navigate(srv.URL)
	MustEval[chromedp.Void](br, `window.parley.ready`)
	MustEval[map[string]any](br, `window.parley.createAccount('alice', 'Alice')`)
	runs := map[string][]float64{}
	for b.Loop() {
		if err := br.Do(chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL)); err != nil {
			b.Fatal(err)
		}
		t := MustEval[map[string]float64](br, `window.parley.ready.then(() => {
		  const t = Object.assign({}, window.parley.timing);
		  const w = performance.getEntriesByType('resource').find((e) => e.name.includes('parley.wasm'));
		  if (w) { t.wasmFetchStart = w.fetchStart; t.wasmResponseEnd = w.responseEnd; }
		  const n = performance.getEntriesByType('navigation')[0];
		  if (n) { t.domContentLoaded = n.domContentLoadedEventEnd; }
		  return t;
		})`)
		for k, v := range t {
			runs[k] = append(runs[k], v)
		}
	}
	type phase struct {
		name string
		ms   float64
	}
	var ps []phase
	for k, v := range runs {
		slices.Sort(v)
		ps = append(ps, phase{k, v[len(v)/2]})
	}
	slices.SortFunc(ps, func(a, b phase) int {
		switch {
		case a.ms < b.ms:
			return -1
		case a.ms > b.ms:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var sb strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&sb, " %s %.1f;", p.name, p.ms)
	}
	b.ReportMetric(ps[len(ps)-1].ms, "ms-to-ready")
	b.Logf("median ms since navigation:%s", sb.String())
}
