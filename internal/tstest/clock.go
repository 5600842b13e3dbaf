package tstest

import (
	"sync"
	"time"
)

// Clock is a time source a test moves forward, shared by a relay and the
// engines that talk to it so that expiry can be tested without waiting.
// It runs with real time, offset by what Advance has added; the zero value
// is real time. Timers made by AfterFunc fire when either real time or
// Advance reaches them.
type Clock struct {
	mu     sync.Mutex
	off    time.Duration
	timers map[*clockTimer]struct{}
}

type clockTimer struct {
	at   time.Time // on the clock
	f    func()
	real *time.Timer
	once sync.Once
}

// Now is the real time plus every Advance so far; pass it as a Now hook
// (relay.Config.Now, client.Config.Now).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock d forward and runs, before it returns, every
// AfterFunc timer that is now due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	now := time.Now().Add(c.off)
	var due []*clockTimer
	for t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.real.Stop()
		t.once.Do(t.f)
	}
}

// AfterFunc runs f once the clock has moved d past now, by real time or by
// Advance, like time.AfterFunc; stop cancels it and reports whether it did
// (pass it as a relay's Config.AfterFunc).
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timers == nil {
		c.timers = make(map[*clockTimer]struct{})
	}
	t := &clockTimer{at: time.Now().Add(c.off + d), f: f}
	c.timers[t] = struct{}{}
	t.real = time.AfterFunc(d, func() {
		c.mu.Lock()
		delete(c.timers, t)
		c.mu.Unlock()
		t.once.Do(t.f)
	})
	return func() bool {
		c.mu.Lock()
		_, pending := c.timers[t]
		delete(c.timers, t)
		c.mu.Unlock()
		return t.real.Stop() && pending
	}
}
