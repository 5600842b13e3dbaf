package relayserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
)

// TestPreAuthFrameOverLimitCloses is the attack of a stranger who opens
// sockets and starts a 1 MiB message on each without ever finishing it,
// so that every socket holds a megabyte of the relay's memory until the
// login deadline. Before Auth succeeds a socket may hold no more than
// relay.MaxPreAuthFrame: the relay closes it (1009, message too big) as
// soon as that many bytes of one message have come, long before the
// deadline; after login the limit is relay.MaxFrame again.
func TestPreAuthFrameOverLimitCloses(t *testing.T) {
	tr := startRelay(t, nil)

	ws, _, err := relayclient.DialRaw(ctx(t), tr.origin)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	start := time.Now()
	// The first 64 KiB of a message announced as 1 MiB, never finished.
	w, err := ws.Writer(ctx(t), websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	chunk[0] = byte(relay.TAuth)
	w.Write(chunk)
	_, _, err = ws.Read(ctx(t))
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("unfinished 1 MiB message before login: %v (close %d) after %s, want close %d at once",
			err, got, time.Since(start).Round(time.Millisecond), websocket.StatusMessageTooBig)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %s: the socket held the message until the login deadline", d)
	}

	// The longest valid Auth still logs in, and a logged-in socket takes
	// frames far larger than the pre-login limit.
	long := tr.register(t, strings.Repeat("h", relay.MaxHandle), 2)
	c := tr.dial(t, long, 0)
	big := []relay.Sealed{{To: long.Addr(1), Payload: make([]byte, relay.MaxPayload)}}
	if _, err := c.Send(ctx(t), msgID(), big); err != nil {
		t.Fatalf("a %d-byte send after login: %v", relay.MaxPayload, err)
	}
}

// TestHostedPreAuthFrameOverLimitCloses is the same limit for a hosted
// session (the Workers build): a message over relay.MaxPreAuthFrame before
// login ends the session with 1009 without being decoded.
func TestHostedPreAuthFrameOverLimitCloses(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.Hosted = true })
	s, _, err := tr.relay.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadLimit != relay.MaxPreAuthFrame {
		t.Fatalf("a new session tells its host a read limit of %d, want %d", s.ReadLimit, relay.MaxPreAuthFrame)
	}
	msg := make([]byte, relay.MaxPreAuthFrame+1)
	msg[0] = byte(relay.TAuth)
	o := tr.relay.SessionFrame(roundTrip(t, s), msg, true)
	if o.Close != int(websocket.StatusMessageTooBig) || len(o.Frames) != 0 {
		t.Fatalf("over-limit message before login: %+v, want close %d and no frames", o, websocket.StatusMessageTooBig)
	}

	u := tr.register(t, "alice", 2)
	s, o = hostedLogin(t, tr, u, 0, nil)
	if !o.Authed || s.ReadLimit != relay.MaxFrame {
		t.Fatalf("login: %+v, read limit %d", o, s.ReadLimit)
	}
	send := relay.Encode(&relay.Send{Req: 1, MessageID: msgID(), To: []relay.Sealed{{To: u.Addr(1), Payload: make([]byte, relay.MaxPayload)}}})
	if o := tr.relay.SessionFrame(s, send, true); o.Close != 0 {
		t.Fatalf("a %d-byte frame after login: %+v", len(send), o)
	}
}
