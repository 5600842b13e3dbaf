package e2e

import (
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
)

// BenchmarkNavigationToReady measures, inside headless Chromium, the time
// from navigation start to window.parley.ready (performance.now() when
// ready settles), on an existing profile: the cost of a reload or a new
// visit with the identity already stored. Run it with
//
//	go test -run '^$' -bench NavigationToReady -benchtime 5x ./e2e
//
// It reports the median as ms-to-ready; the wall time per op includes the
// test's own CDP round trips.
func BenchmarkNavigationToReady(b *testing.B) {
	srv := StartServer(b)
	br := NewBrowser(b)
	br.Navigate(srv.URL)
	MustEval[chromedp.Void](br, `window.parley.ready`)
	var ms []float64
	for b.Loop() {
		if err := br.Do(chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL)); err != nil {
			b.Fatal(err)
		}
		v := MustEval[float64](br, `window.parley.ready.then(() => window.parley.timing.ready)`)
		ms = append(ms, v)
	}
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], "ms-to-ready")
	b.Logf("navigation→ready ms: %v", ms)
}
