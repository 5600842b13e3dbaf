package relayserver_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// hostedLogin runs a hosted session's challenge and answer for device i
// of u and returns the session (round-tripped through JSON, as a host
// stores it) with the login's output.
func hostedLogin(t *testing.T, tr *testRelay, u *user, i int, tamper func(*relay.Auth)) (*relayserver.Session, relayserver.Output) {
	t.Helper()
	s, o, err := tr.relay.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	f, err := relay.Decode(o.Frames[0])
	if err != nil || o.Deadline == 0 {
		t.Fatalf("open: %v, deadline %d", err, o.Deadline)
	}
	ch := f.(*relay.Challenge)
	auth := &relay.Auth{Handle: u.Handle, Device: u.Devs[i].ID, Timestamp: uint64(time.Now().UnixMilli())}
	copy(auth.Sig[:], u.Devs[i].Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, tr.origin, auth.Timestamp, u.Handle, u.Devs[i].ID)))
	if tamper != nil {
		tamper(auth)
	}
	s = roundTrip(t, s)
	o = tr.relay.SessionFrame(s, relay.Encode(auth), true)
	return roundTrip(t, s), o
}

func roundTrip(t *testing.T, s *relayserver.Session) *relayserver.Session {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out relayserver.Session
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func frames(t *testing.T, o relayserver.Output) []relay.Frame {
	t.Helper()
	var out []relay.Frame
	for _, b := range o.Frames {
		f, err := relay.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// TestHostedSession holds a hosted session (as the Workers build uses it)
// to the socket loop's rules: login, send, delivery window, acks, stale
// sets and refusals with the same codes.
func TestHostedSession(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.Hosted = true })
	alice := tr.register(t, "alice", 2)
	bob := tr.register(t, "bob", 1)

	sa, o := hostedLogin(t, tr, alice, 0, nil)
	if !o.Authed || o.Close != 0 {
		t.Fatalf("login: %+v", o)
	}
	if _, ok := frames(t, o)[0].(*relay.Ready); !ok {
		t.Fatalf("first frame after login is %T", frames(t, o)[0])
	}

	// A stale set names the missing device; nothing is stored.
	send := &relay.Send{Req: 1, MessageID: msgID(), To: sealed(bob.Addr(0))}
	fs := frames(t, tr.relay.SessionFrame(sa, relay.Encode(send), true))
	st, ok := fs[0].(*relay.Stale)
	if !ok || len(st.Accounts) != 1 || st.Accounts[0].Handle != "alice" || len(st.Accounts[0].Missing) != 1 {
		t.Fatalf("stale: %#v", fs[0])
	}
	send.Req = 2
	send.To = sealed(bob.Addr(0), alice.Addr(1))
	if ok, _ := frames(t, tr.relay.SessionFrame(sa, relay.Encode(send), true))[0].(*relay.OK); ok == nil {
		t.Fatal("send not accepted")
	}

	// Bob logs in and gets the envelope after Ready; an ack empties it;
	// an ack of something not in flight closes with unexpected.
	sb, o := hostedLogin(t, tr, bob, 0, nil)
	fs = frames(t, o)
	if len(fs) != 3 { // Ready, LowStock (no prekeys), Envelope
		t.Fatalf("login of bob: %d frames", len(fs))
	}
	env, ok := fs[2].(*relay.Envelope)
	if !ok || string(env.Payload) != "ciphertext for bob" || env.From.Handle != "alice" {
		t.Fatalf("delivery: %#v", fs[2])
	}
	if o := tr.relay.SessionFrame(sb, relay.Encode(&relay.Ack{Seqs: []uint64{env.Seq}}), true); o.Close != 0 || len(o.Frames) != 0 {
		t.Fatalf("ack: %+v", o)
	}
	if n, _ := tr.st.MailboxLen(store.Addr{Handle: "bob", Device: store.DeviceID(bob.Devs[0].ID)}); n != 0 {
		t.Fatalf("mailbox after ack: %d", n)
	}
	if o := tr.relay.SessionFrame(sb, relay.Encode(&relay.Ack{Seqs: []uint64{env.Seq}}), true); o.Close != relay.CloseBase+int(relay.CodeUnexpected) {
		t.Fatalf("second ack: %+v", o)
	}

	// Refusals close with the socket loop's codes.
	for name, c := range map[string]struct {
		tamper func(*relay.Auth)
		code   relay.Code
	}{
		"bad signature": {func(a *relay.Auth) { a.Sig[0] ^= 1 }, relay.CodeAuthFailed},
		"old clock":     {func(a *relay.Auth) { a.Timestamp -= uint64(time.Hour.Milliseconds()) }, relay.CodeAuthFailed},
		"unknown":       {func(a *relay.Auth) { a.Handle = "nobody" }, relay.CodeAuthFailed},
	} {
		_, o := hostedLogin(t, tr, bob, 0, c.tamper)
		if o.Close != relay.CloseBase+int(c.code) || o.Authed {
			t.Errorf("%s: %+v", name, o)
		}
	}
	s, _, _ := tr.relay.OpenSession()
	if o := tr.relay.SessionFrame(s, []byte("hello"), false); o.Close != relay.CloseBase+int(relay.CodeBadRequest) {
		t.Errorf("text frame: %+v", o)
	}
	if o := tr.relay.SessionTimeout(s); o.Close != 0 {
		t.Errorf("timeout before the deadline: %+v", o)
	}
	tr.clock.Advance(time.Minute)
	if o := tr.relay.SessionTimeout(s); o.Close != relay.CloseBase+int(relay.CodeAuthFailed) {
		t.Errorf("timeout: %+v", o)
	}
}

// TestLinkPollSeesOtherWriters: with LinkPoll a long-poll finds a message
// another process wrote straight to the store (no in-process wake-up).
func TestLinkPollSeesOtherWriters(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.LinkPoll = 50 * time.Millisecond })
	id := msgID()
	go func() {
		time.Sleep(200 * time.Millisecond)
		now := time.Now()
		tr.st.PutLink(append(id[:], 0), []byte("hello"), now.Add(time.Minute), now)
	}()
	start := time.Now()
	got, err := relayclient.GetLink(ctx(t), tr.origin, id[:], 0, 5*time.Second)
	if err != nil || string(got) != "hello" {
		t.Fatalf("GetLink: %q, %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long-poll returned after %s, want about 250ms", d)
	}
}

// TestHostedDeliveryWindow: a hosted session delivers in pages up to the
// window, and only an ack that makes room delivers more.
func TestHostedDeliveryWindow(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.Hosted = true })
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	to := store.Addr{Handle: "bob", Device: store.DeviceID(bob.Devs[0].ID)}
	const total = relay.MaxAcks + 1 // one more than the window
	envs := make([]store.Envelope, total)
	for i := range envs {
		envs[i] = store.Envelope{To: to, From: store.Addr{Handle: "alice", Device: store.DeviceID(alice.Devs[0].ID)},
			MessageID: msgID(), ServerTime: time.Now().UnixMilli(), Expires: time.Now().Add(time.Hour).UnixMilli(), Payload: []byte("x")}
	}
	if err := tr.st.Enqueue(envs, relayserver.DefaultMailboxLimit); err != nil {
		t.Fatal(err)
	}
	s, o := hostedLogin(t, tr, bob, 0, nil)
	var seqs []uint64
	collect := func(o relayserver.Output) {
		for _, f := range frames(t, o) {
			if e, ok := f.(*relay.Envelope); ok {
				seqs = append(seqs, e.Seq)
			}
		}
	}
	collect(o)
	for o.More {
		o = tr.relay.SessionDeliver(s)
		collect(o)
	}
	if len(seqs) != relay.MaxAcks {
		t.Fatalf("delivered %d before any ack, want the window %d", len(seqs), relay.MaxAcks)
	}
	if o := tr.relay.SessionDeliver(s); len(o.Frames) != 0 {
		t.Fatalf("a full window delivered %d more", len(o.Frames))
	}
	o = tr.relay.SessionFrame(s, relay.Encode(&relay.Ack{Seqs: seqs[:1]}), true)
	collect(o)
	if len(seqs) != total {
		t.Fatalf("after an ack that made room: %d delivered, want %d", len(seqs), total)
	}
	if o := tr.relay.SessionFrame(s, relay.Encode(&relay.Ack{Seqs: seqs[1:2]}), true); len(o.Frames) != 0 {
		t.Fatalf("an ack with room to spare read the mailbox again: %d frames", len(o.Frames))
	}
}
