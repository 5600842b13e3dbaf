package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// unreachableLinks is a relay whose link channel cannot be reached for its
// first failures reads, as a browser's fetch fails while the network is
// down: a plain error, no relay code.
type unreachableLinks struct {
	Relay
	failures atomic.Int32
}

func (r *unreachableLinks) GetLink(ctx context.Context, id []byte, slot int, wait time.Duration) ([]byte, error) {
	if r.failures.Add(-1) >= 0 {
		return nil, errors.New("relay unreachable: javascript TypeError: Failed to fetch")
	}
	return r.Relay.GetLink(ctx, id, slot, wait)
}

// TestLinkWaitSurvivesUnreachableRelay: the companion's wait for its
// primary's hello fails twice to reach the relay. Before the fix
// WaitLinked ended with the fetch's error text; now it says it is
// reconnecting (link-connection, offline), retries with backoff, says so
// when the relay answers again, and the link completes.
func TestLinkWaitSurvivesUnreachableRelay(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice-phone", "alice")
	flaky := &unreachableLinks{}
	flaky.failures.Store(2)
	comp := newDevice(t, tr, "alice-browser", func(d *device) {
		d.wrap = func(r Relay) Relay { flaky.Relay = r; return flaky }
	})
	start, err := comp.eng.StartLink(ctx, "Alice's browser")
	if err != nil {
		t.Fatal(err)
	}
	linked := make(chan error, 1)
	go func() {
		_, err := comp.eng.WaitLinked(ctx)
		linked <- err
	}()
	eventually(t, "the companion reconnecting", func() bool { return comp.hasEvent("link-connection", CodeOffline) })
	eventually(t, "the companion through again", func() bool {
		comp.mu.Lock()
		defer comp.mu.Unlock()
		for _, ev := range comp.events {
			if ev.Type == "link-connection" && ev.Code == "" {
				return true
			}
		}
		return false
	})
	select {
	case err := <-linked:
		t.Fatalf("WaitLinked ended while the relay was unreachable: %v", err)
	default:
	}

	approved := make(chan error, 1)
	go func() {
		p, err := alice.eng.ApproveLink(ctx, start.Payload)
		if err == nil {
			err = alice.eng.ConfirmLink(ctx, p.LinkID)
		}
		approved <- err
	}()
	eventually(t, "the companion's check code", func() bool { return comp.hasEvent("link-check", "") })
	if err := comp.eng.ConfirmLinkCode(); err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatalf("the primary's link: %v", err)
	}
	if err := <-linked; err != nil {
		t.Fatalf("WaitLinked after the outage: %v", err)
	}
}
