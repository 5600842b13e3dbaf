package relayserver_test

import (
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// pageMeter is the store with a record of the largest mailbox read (in
// payload bytes) the relay made.
type pageMeter struct {
	*store.Store
	mu  sync.Mutex
	max int
}

func (p *pageMeter) Mailbox(to store.Addr, after uint64, limit int, now time.Time) ([]store.Envelope, error) {
	envs, err := p.Store.Mailbox(to, after, limit, now)
	n := 0
	for _, e := range envs {
		n += len(e.Payload)
	}
	p.mu.Lock()
	p.max = max(p.max, n)
	p.mu.Unlock()
	return envs, err
}

// loginSilent logs device i of u in on a raw socket and then never reads
// from it again: a reader that stopped (or reads at a trickle).
func loginSilent(t *testing.T, origin string, u *tstest.User, i int) *websocket.Conn {
	t.Helper()
	ws, ch, err := relayclient.DialRaw(ctx(t), origin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	a := &relay.Auth{Handle: u.Handle, Device: u.Devs[i].ID, Timestamp: uint64(time.Now().UnixMilli())}
	copy(a.Sig[:], u.Devs[i].Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, origin, a.Timestamp, a.Handle, a.Device)))
	if err := ws.Write(ctx(t), websocket.MessageBinary, relay.Encode(a)); err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestSlowReadersCannotPinMailboxPages is item 2 of issue 14, bounded: one
// account queues 40 envelopes of 256 KiB to its own companion, whose
// sockets log in and stop reading. The relay once read a page of 128
// envelopes (up to 32 MiB) per socket and held it while the peer trickled
// (60 such sockets took the heap from 27 MB to 2.25 GB). Now a mailbox
// read holds at most SocketBytesInFlight, all sockets together at most
// BytesInFlight, and a socket that does not take its page within
// DrainTimeout is closed with 1008 (policy violation).
func TestSlowReadersCannotPinMailboxPages(t *testing.T) {
	const socketBytes, totalBytes, queued = 512 << 10, 1 << 20, 40
	var meter *pageMeter
	tr := tstest.StartRelayOver(t, func(st *store.Store) relayserver.Store {
		meter = &pageMeter{Store: st}
		return meter
	}, func(c *relayserver.Config) {
		c.SocketBytesInFlight, c.BytesInFlight, c.DrainTimeout = socketBytes, totalBytes, 2*time.Second
	})
	origin := tr.Origin

	alice := tstest.Register(ctx(t), t, origin, "alice", 2)
	sender := tstest.Dial(ctx(t), t, origin, alice, 0)
	for i := 0; i < queued; i++ {
		if _, err := sender.Send(ctx(t), msgID(), []relay.Sealed{{To: alice.Addr(1), Payload: make([]byte, relay.MaxPayload)}}); err != nil {
			t.Fatal(err)
		}
	}
	var socks []*websocket.Conn
	for i := 0; i < 3; i++ {
		socks = append(socks, loginSilent(t, origin, alice, 1))
	}
	time.Sleep(time.Second) // the writers have read what they will read
	meter.mu.Lock()
	page := meter.max
	meter.mu.Unlock()
	if page > socketBytes {
		t.Fatalf("one mailbox read held %d bytes of payload for a socket that does not read, want at most %d", page, socketBytes)
	}
	if got := metric(t, origin, "parley_relay_write_bytes_in_flight"); got < 0 || got > totalBytes {
		t.Fatalf("bytes in flight to sockets that do not read: %v, want 0–%d", got, totalBytes)
	}

	// Past the drain time the stalled sockets are closed with 1008; a
	// socket that only waited for the budget may instead deliver all.
	time.Sleep(2 * time.Second)
	var closed int
	for i, ws := range socks {
		got := 0
		for {
			_, b, err := ws.Read(ctx(t))
			if err != nil {
				if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
					closed++
				} else if got < queued {
					t.Fatalf("socket %d ended with %v after %d envelopes, want close 1008 or all %d", i, err, got, queued)
				}
				break
			}
			if f, err := relay.Decode(b); err == nil && f.Type() == relay.TEnvelope {
				if got++; got == queued {
					break
				}
			}
		}
	}
	if closed == 0 {
		t.Fatal("no socket that stopped reading was closed with 1008")
	}
}
