//go:build js

package relayserver

import (
	"net/http"

	"github.com/parley-im/parley/relay"
)

// On GOOS=js (the Cloudflare Workers build) every request runs in a fresh
// instance, so in-process series would never count past one request; the
// platform's own analytics replace them. The no-op series keep Prometheus
// and protobuf (about 3 MB of wasm, and their init on every request) out
// of the worker.
type metrics struct {
	connected, messages, envelopes, delivered, delivery, durable, slowReaders noMetric
}

type noMetric struct{}

func (noMetric) Inc()            {}
func (noMetric) Dec()            {}
func (noMetric) Add(float64)     {}
func (noMetric) Observe(float64) {}

func newMetrics(*Relay) *metrics { return &metrics{} }

func (m *metrics) refused(relay.Code) {}

func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "metrics are not kept on this platform", http.StatusNotFound)
	})
}
