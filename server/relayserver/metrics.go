//go:build !js

package relayserver

import (
	"net/http"

	"github.com/parley-im/parley/relay"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the relay's Prometheus series, on a registry of its own so
// several relays (tests) can run in one process.
type metrics struct {
	reg       *prometheus.Registry
	connected prometheus.Gauge
	messages  prometheus.Counter
	envelopes prometheus.Counter
	delivered prometheus.Counter
	delivery  prometheus.Histogram
	durable   prometheus.Histogram
	refusals  *prometheus.CounterVec
	// slowReaders counts sockets closed for not taking a page in time.
	slowReaders prometheus.Counter
}

func newMetrics(r *Relay) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_relay_connected_devices", Help: "Authenticated device sockets open now.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_relay_messages_accepted_total", Help: "Sends and group sends stored durably.",
		}),
		envelopes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_relay_envelopes_accepted_total", Help: "Per-device envelopes stored durably.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_relay_envelopes_acked_total", Help: "Envelopes delivered and acknowledged by their device.",
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_relay_delivery_latency_seconds",
			Help:    "Time from durable acceptance of an envelope to its device's ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 24),
		}),
		durable: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_relay_durable_ack_seconds",
			Help:    "Time from a send frame's arrival to its OK (after fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_relay_refusals_total", Help: "Refused requests and closed sockets, by reason.",
		}, []string{"reason"}),
	}
	m.slowReaders = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_relay_slow_readers_closed_total", Help: "Sockets closed because they did not take a page of envelopes within the drain time.",
	})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_relay_write_bytes_in_flight", Help: "Envelope bytes read from mailboxes and not yet written to their sockets.",
	}, func() float64 { return float64(r.inFlight.used()) })
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_relay_queued_envelopes", Help: "Envelopes waiting in all mailboxes.",
	}, func() float64 { return float64(r.st.Queued()) })
	m.reg.MustRegister(m.connected, m.messages, m.envelopes, m.delivered, m.delivery, m.durable, m.refusals, m.slowReaders, inFlight, queued,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	for _, c := range relay.Codes() {
		if c != relay.CodeOK {
			m.refusals.WithLabelValues(c.String())
		}
	}
	return m
}

func (m *metrics) refused(c relay.Code) { m.refusals.WithLabelValues(c.String()).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
