package client

import (
	"slices"
	"sync"
	"time"
)

// statsWindow is how many recent receive timings Stats summarises.
const statsWindow = 256

// receiveStats keeps the durations of recent successful receives (decrypt,
// the sealed storage batch, everything but the network), so a benchmark
// and the diagnostics view can read them without instrumenting builds.
type receiveStats struct {
	mu    sync.Mutex
	count uint64
	ring  [statsWindow]time.Duration

	syncs, synced uint64 // Syncs before acknowledgements, envelopes they covered
	syncTime      time.Duration
}

// recordSync counts one Sync that made n received envelopes durable.
func (s *receiveStats) recordSync(d time.Duration, n int) {
	s.mu.Lock()
	s.syncs++
	s.synced += uint64(n)
	s.syncTime += d
	s.mu.Unlock()
}

func (s *receiveStats) record(d time.Duration) {
	s.mu.Lock()
	s.ring[s.count%statsWindow] = d
	s.count++
	s.mu.Unlock()
}

// Stats summarises the engine's recent work.
type Stats struct {
	Received     uint64  `json:"received"`     // envelopes processed since start
	ReceiveP50Ms float64 `json:"receiveP50Ms"` // median receive time, recent window
	ReceiveP99Ms float64 `json:"receiveP99Ms"`
	// AckSyncs is how many Syncs made received envelopes durable before
	// their acknowledgement, AckSyncMs their mean duration, and
	// AckSyncGroup the mean number of envelopes one covered.
	AckSyncs     uint64  `json:"ackSyncs"`
	AckSyncMs    float64 `json:"ackSyncMs"`
	AckSyncGroup float64 `json:"ackSyncGroup"`
}

// Stats returns counters and recent timings.
func (e *Engine) Stats() Stats {
	s := &e.stats
	s.mu.Lock()
	n := min(s.count, statsWindow)
	ds := slices.Clone(s.ring[:n])
	st := Stats{Received: s.count, AckSyncs: s.syncs}
	if s.syncs > 0 {
		st.AckSyncMs = float64(s.syncTime.Microseconds()) / 1000 / float64(s.syncs)
		st.AckSyncGroup = float64(s.synced) / float64(s.syncs)
	}
	s.mu.Unlock()
	if n == 0 {
		return st
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	st.ReceiveP50Ms = ms(ds[len(ds)/2])
	st.ReceiveP99Ms = ms(ds[min(len(ds)-1, len(ds)*99/100)])
	return st
}
