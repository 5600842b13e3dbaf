package tstest

import (
	"sync"
	"time"
)

// Clock is a time source a test moves forward, shared by a relay and the
// engines that talk to it so that expiry can be tested without waiting.
// It runs with real time, offset by what Advance has added; the zero value
// is real time.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now is the real time plus every Advance so far; pass it as a Now hook
// (relay.Config.Now, client.Config.Now).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}
