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
}

// Stats returns counters and recent timings.
func (e *Engine) Stats() Stats {
	s := &e.stats
	s.mu.Lock()
	n := min(s.count, statsWindow)
	ds := slices.Clone(s.ring[:n])
	st := Stats{Received: s.count}
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
