package relayserver_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/store"
)

// TestSendsRacingRevocationLeaveNothingQueued is issue 14 item 10: sends
// checked against the list before a revocation but stored after it (and
// after its purge) left 51–68 envelopes in the removed device's mailbox
// until their TTL, undeliverable. A send checked against a superseded
// list is refused (Stale, naming the removed device) and stores nothing.
func TestSendsRacingRevocationLeaveNothingQueued(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 2)
	bob := tr.register(t, "bob", 1)
	const senders, each = 4, 150
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, stale, other int
	var bs []*relayclient.Client
	for range senders {
		bs = append(bs, tr.dial(t, bob, 0))
	}
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var calls sync.WaitGroup
			for range each { // pipelined: many sends in flight at once
				calls.Add(1)
				go func() {
					defer calls.Done()
					_, err := b.Send(ctx(t), msgID(), sealed(alice.Addr(0), alice.Addr(1)))
					var se *relayclient.StaleError
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.As(err, &se):
						stale++
					default:
						other++
						t.Errorf("send: %v", err)
					}
				}()
			}
			calls.Wait()
		}()
	}
	for { // revoke while the sends are under way
		mu.Lock()
		n := ok
		mu.Unlock()
		if n >= 50 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	tr.drop(t, alice, 1)
	wg.Wait()
	removed := store.Addr{Handle: alice.Handle, Device: store.DeviceID(alice.Devs[1].ID)}
	n, err := tr.st.MailboxLen(removed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sends stored, %d refused as stale", ok, stale)
	if n != 0 {
		t.Fatalf("%d envelopes left in the removed device's mailbox after the revocation committed", n)
	}
	// Sends after the revocation name only the remaining device.
	if _, err := bs[0].Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
		t.Fatal(err)
	}
}
