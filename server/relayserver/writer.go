package relayserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/relay"
)

// A socket's writer holds the envelopes it has read from the mailbox until
// they are written. Those bytes are bounded three ways, so that sockets
// that read slowly (or not at all) cannot pin the relay's memory: one
// socket's page is at most Config.SocketBytesInFlight, all sockets' pages
// together at most Config.BytesInFlight (a writer waits for its share), and
// a socket that does not take its page within Config.DrainTimeout is
// closed with StatusPolicyViolation.

// envelopeOverhead is what an Envelope frame adds to its payload (type,
// seq, sender address, message id, time), counted against the budgets
// with it.
const envelopeOverhead = 1 + 8 + 1 + relay.MaxHandle + 32 + 16 + 8 + 8

// envelopeCost is the most one stored envelope can cost a page.
const envelopeCost = relay.MaxPayload + envelopeOverhead

// byteBudget is a pool of bytes that writers take before they read a page
// and give back as they write it.
type byteBudget struct {
	mu    sync.Mutex
	free  int64
	inUse int64
	wake  chan struct{} // closed when bytes come back
}

func newByteBudget(n int64) *byteBudget { return &byteBudget{free: n} }

// take waits until n bytes are free or ctx ends.
func (b *byteBudget) take(ctx context.Context, n int64) bool {
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.inUse += n
			b.mu.Unlock()
			return true
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *byteBudget) give(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.free += n
	b.inUse -= n
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// used is the number of bytes taken now.
func (b *byteBudget) used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}

// writer sends queued replies and mailbox envelopes until there is
// nothing left it may send, then exits. At most one runs per socket.
func (c *conn) writer() {
	defer c.writers.Done()
	for {
		// Replies first: they answer requests the device is waiting on.
		for len(c.out) > 0 {
			if !c.write(<-c.out) {
				c.stopWriting()
				return
			}
		}
		c.mu.Lock()
		room := deliveryWindow - len(c.inflight)
		mail := c.mail && room > 0
		if !mail && len(c.out) == 0 {
			// Checked and cleared under mu, so a kick that follows a push
			// or a mailbox change either sees writing=true before this
			// check (and we see its work here) or starts a new writer.
			c.writing = false
			c.mu.Unlock()
			return
		}
		if mail {
			c.mail = false
		}
		after := c.lastSent
		c.mu.Unlock()
		if !mail {
			continue
		}
		if c.ended() || !c.writePage(after, min(room, mailboxPage)) {
			c.stopWriting()
			return
		}
	}
}

// writePage reads up to n envelopes after seq after, no more than the
// socket's page of bytes, and writes them; false if the socket ended.
func (c *conn) writePage(after uint64, n int) bool {
	r := c.r
	page := r.cfg.SocketBytesInFlight
	if !r.inFlight.take(c.ctx, page) {
		return false
	}
	held := page
	defer func() { r.inFlight.give(held) }()
	drain := time.AfterFunc(r.cfg.DrainTimeout, func() {
		r.metrics.slowReaders.Inc()
		c.shut(websocket.StatusPolicyViolation, fmt.Sprintf("slow reader: a page of envelopes was not taken within %s", r.cfg.DrainTimeout))
	})
	defer drain.Stop()

	// The page is read in pieces that cannot overrun what is left of it
	// whatever the envelopes' sizes (the store bounds a read by count).
	left, more := page, false
	var envs []*relayEnvelope
	for len(envs) < n {
		k := min(n-len(envs), int(left/envelopeCost))
		if k == 0 {
			more = true
			break
		}
		got, err := r.st.Mailbox(c.addr, after, k, r.cfg.Now())
		if err != nil {
			r.log.Error("reading mailbox", "err", err)
			c.fail(0, relay.CodeInternal, "could not read the mailbox")
			return false
		}
		for i := range got {
			e := &got[i]
			cost := int64(len(e.Payload) + envelopeOverhead)
			left -= cost
			envs = append(envs, &relayEnvelope{cost: cost, f: relay.Envelope{
				Seq: e.Seq, From: relay.Addr{Handle: e.From.Handle, Device: relay.DeviceID(e.From.Device)},
				MessageID: e.MessageID, ServerTime: uint64(e.ServerTime), Payload: e.Payload,
			}})
			after = e.Seq
		}
		if len(got) < k {
			break // the mailbox has no more
		}
		more = len(envs) == n
	}
	// What the page did not need goes back at once (left stays >= 0: a
	// piece is never more than left/envelopeCost envelopes).
	r.inFlight.give(left)
	held -= max(left, 0)
	if more {
		c.mu.Lock()
		c.mail = true // a full page: there may be more
		c.mu.Unlock()
	}
	for _, e := range envs {
		if c.ended() {
			return false
		}
		c.mu.Lock()
		c.inflight[e.f.Seq] = int64(e.f.ServerTime)
		c.lastSent = e.f.Seq
		c.mu.Unlock()
		frame := relay.Encode(&e.f)
		e.f.Payload = nil // written from frame; the page lets go of it
		ok := c.write(frame)
		r.inFlight.give(e.cost)
		held -= e.cost
		if !ok {
			return false
		}
	}
	return true
}

// relayEnvelope is one envelope of a page and what it is charged.
type relayEnvelope struct {
	cost int64
	f    relay.Envelope
}

func (c *conn) stopWriting() {
	c.mu.Lock()
	c.writing = false
	c.dead = true // a failed write ended the socket
	c.mu.Unlock()
}
