package relayserver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

func TestRegisterAndFetchAccount(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 2)

	a, err := relayclient.GetAccount(ctx(t), tr.origin, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.AccountKey, alice.Acct.Public()) || a.Version != 1 {
		t.Fatalf("account = %+v", a)
	}
	if _, err := devicelist.Verify(alice.Acct.Public(), alice.Handle, a.DeviceList); err != nil {
		t.Fatalf("served list does not verify: %v", err)
	}

	// First come, first served.
	mallory := newUser(t, "alice", 1)
	_, err = relayclient.Register(ctx(t), tr.origin, "alice", mallory.Signed(t))
	if httpCode(err) != "handle_taken" {
		t.Fatalf("second registration: %v", err)
	}
	// Handle rules.
	for _, h := range []string{"al", "Alice", "al ice", strings.Repeat("a", 33), "alice/x"} {
		_, err := relayclient.Register(ctx(t), tr.origin, h, mallory.Signed(t))
		if httpCode(err) != "bad_handle" {
			t.Errorf("handle %q: %v", h, err)
		}
	}
	// A list with a bad signature.
	bad := newUser(t, "bob", 1).Signed(t)
	bad[len(bad)-1] ^= 1
	if _, err := relayclient.Register(ctx(t), tr.origin, "bob", bad); httpCode(err) != "bad_device_list" {
		t.Fatalf("bad signature: %v", err)
	}
	if _, err := relayclient.GetAccount(ctx(t), tr.origin, "bob"); httpCode(err) != "unknown_account" {
		t.Fatalf("refused registration left an account: %v", err)
	}
	// A list claiming more devices than crypto/devicelist allows (the
	// count follows version, account key, handle, list version and
	// timestamp).
	over := newUser(t, "bob", 1).Signed(t)
	binary.BigEndian.PutUint32(over[1+32+4+len("bob")+8+8:], 17)
	if _, err := relayclient.Register(ctx(t), tr.origin, "bob", over); httpCode(err) != "too_many_devices" {
		t.Fatalf("17 devices: %v", err)
	}
	// Oversize and malformed bodies.
	resp, err := http.Post(tr.origin+"/v1/accounts", "application/json", strings.NewReader(`{"handle":"bob","device_list":"`+strings.Repeat("A", 20000)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	checkHTTP(t, resp, http.StatusRequestEntityTooLarge, "too_large")
	resp, err = http.Post(tr.origin+"/v1/accounts", "application/json", strings.NewReader(`{"handle":"bob","extra":1}`))
	if err != nil {
		t.Fatal(err)
	}
	checkHTTP(t, resp, http.StatusBadRequest, "bad_request")
	resp, err = http.Get(tr.origin + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	checkHTTP(t, resp, http.StatusNotFound, "not_found")
}

func checkHTTP(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || !strings.Contains(string(b), `"code":"`+code+`"`) {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, status, code)
	}
}

func TestPublishDeviceList(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 2)
	old := alice.Signed(t)

	// Newer version: accepted.
	next := alice.List.Clone()
	next.Version = 2
	alice.List = next
	if a, err := relayclient.Publish(ctx(t), tr.origin, "alice", alice.Signed(t)); err != nil || a.Version != 2 {
		t.Fatalf("publish v2: %+v %v", a, err)
	}
	// Rollback to v1, and the same version again: refused.
	if _, err := relayclient.Publish(ctx(t), tr.origin, "alice", old); httpCode(err) != "stale_version" {
		t.Fatalf("rollback: %v", err)
	}
	if _, err := relayclient.Publish(ctx(t), tr.origin, "alice", alice.Signed(t)); httpCode(err) != "stale_version" {
		t.Fatalf("same version: %v", err)
	}
	// Bad signature.
	alice.List.Version = 3
	bad := alice.Signed(t)
	bad[len(bad)-5] ^= 1
	if _, err := relayclient.Publish(ctx(t), tr.origin, "alice", bad); httpCode(err) != "bad_device_list" {
		t.Fatalf("bad signature: %v", err)
	}
	// A list signed by another account key, even at a higher version.
	mallory := newUser(t, "alice", 1)
	mallory.List.Version = 9
	if _, err := relayclient.Publish(ctx(t), tr.origin, "alice", mallory.Signed(t)); httpCode(err) != "bad_device_list" {
		t.Fatalf("foreign key: %v", err)
	}
	a, _ := relayclient.GetAccount(ctx(t), tr.origin, "alice")
	if a.Version != 2 {
		t.Fatalf("version after refusals = %d", a.Version)
	}
	if _, err := relayclient.Publish(ctx(t), tr.origin, "nobody", old); httpCode(err) != "unknown_account" {
		t.Fatalf("unknown account: %v", err)
	}
}

func TestAuth(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	dev := alice.Devs[0]

	c := tr.dial(t, alice, 0)
	if c.Ready.Queued != 0 {
		t.Fatalf("ready = %+v", c.Ready)
	}

	answer := func(ch *relay.Challenge, origin string, ts time.Time, handle string, d *identity.Device) *relay.Auth {
		a := &relay.Auth{Handle: handle, Device: d.ID, Timestamp: uint64(ts.UnixMilli())}
		copy(a.Sig[:], d.Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, origin, a.Timestamp, handle, d.ID)))
		return a
	}

	// Replay: a valid answer to one socket's challenge, sent on another.
	ws1, ch1, err := relayclient.DialRaw(ctx(t), tr.origin)
	if err != nil {
		t.Fatal(err)
	}
	captured := answer(ch1, tr.origin, time.Now(), "alice", dev)
	ws1.CloseNow()
	ws2, _, err := relayclient.DialRaw(ctx(t), tr.origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Finish(ctx(t), ws2, captured); relayCode(err) != relay.CodeAuthFailed {
		t.Fatalf("replayed answer: %v", err)
	}

	cases := []struct {
		name string
		make func(ch *relay.Challenge) *relay.Auth
		want relay.Code
	}{
		{"wrong origin", func(ch *relay.Challenge) *relay.Auth {
			return answer(ch, "https://evil.example", time.Now(), "alice", dev)
		}, relay.CodeAuthFailed},
		{"old timestamp", func(ch *relay.Challenge) *relay.Auth {
			return answer(ch, tr.origin, time.Now().Add(-time.Hour), "alice", dev)
		}, relay.CodeAuthFailed},
		{"unknown account", func(ch *relay.Challenge) *relay.Auth {
			return answer(ch, tr.origin, time.Now(), "bob", dev)
		}, relay.CodeAuthFailed},
		{"device not in list", func(ch *relay.Challenge) *relay.Auth {
			stranger, _ := identity.NewDevice(nil)
			return answer(ch, tr.origin, time.Now(), "alice", stranger)
		}, relay.CodeRevoked},
		{"signature by another key", func(ch *relay.Challenge) *relay.Auth {
			stranger, _ := identity.NewDevice(nil)
			a := answer(ch, tr.origin, time.Now(), "alice", stranger)
			a.Device = dev.ID
			return a
		}, relay.CodeAuthFailed},
	}
	for _, tc := range cases {
		ws, ch, err := relayclient.DialRaw(ctx(t), tr.origin)
		if err != nil {
			t.Fatal(err)
		}
		_, err = relayclient.Finish(ctx(t), ws, tc.make(ch))
		if relayCode(err) != tc.want {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}

	// A frame other than Auth first.
	ws, _, err := relayclient.DialRaw(ctx(t), tr.origin)
	if err != nil {
		t.Fatal(err)
	}
	ws.Write(ctx(t), websocket.MessageBinary, relay.Encode(&relay.Ack{}))
	expectClose(t, ws, relay.CodeUnexpected)

	// No subprotocol.
	ws, _, err = websocket.Dial(ctx(t), relayclient.WSURL(tr.origin), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Read(ctx(t))
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("no subprotocol: %v", err)
	}

	// The first socket is unaffected by all of this.
	if _, err := c.Send(ctx(t), msgID(), nil); relayCode(err) != relay.CodeBadRequest {
		t.Fatalf("empty send on the good socket: %v", err)
	}
}

// expectClose reads until the relay closes ws and checks the close code
// (and the Error frame before it).
func expectClose(t *testing.T, ws *websocket.Conn, code relay.Code) {
	t.Helper()
	var sawError bool
	for {
		typ, b, err := ws.Read(ctx(t))
		if err != nil {
			if got := websocket.CloseStatus(err); got != websocket.StatusCode(relay.CloseBase+int(code)) {
				t.Fatalf("close status %d (%v), want %d", got, err, relay.CloseBase+int(code))
			}
			if !sawError {
				t.Fatalf("closed without an Error frame")
			}
			return
		}
		if typ == websocket.MessageBinary {
			if f, err := relay.Decode(b); err == nil {
				if e, ok := f.(*relay.Error); ok && e.Code == code && e.Message != "" {
					sawError = true
				}
			}
		}
	}
}

func TestSendDeliverAck(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 2)
	bob := tr.register(t, "bob", 2)

	a0 := tr.dial(t, alice, 0)
	b0 := tr.dial(t, bob, 0)

	// Bob's second device and Alice's companion are offline.
	to := []relay.Addr{bob.Addr(0), bob.Addr(1), alice.Addr(1)}
	const n = 20
	var ids [][16]byte
	for i := 0; i < n; i++ {
		id := msgID()
		ids = append(ids, id)
		if _, err := a0.Send(ctx(t), id, sealed(to...)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// Live delivery in order, sender stamped by the relay.
	var seqs []uint64
	for i := 0; i < n; i++ {
		e := recv(t, b0)
		if e.MessageID != ids[i] || e.From != alice.Addr(0) || string(e.Payload) != "ciphertext for bob" {
			t.Fatalf("envelope %d = %+v", i, e)
		}
		seqs = append(seqs, e.Seq)
	}
	if err := b0.Ack(ctx(t), seqs...); err != nil {
		t.Fatal(err)
	}
	// Offline devices get theirs on connect, in order.
	b1 := tr.dial(t, bob, 1)
	if b1.Ready.Queued != n {
		t.Fatalf("bob/1 ready queued = %d", b1.Ready.Queued)
	}
	for i := 0; i < n; i++ {
		if e := recv(t, b1); e.MessageID != ids[i] {
			t.Fatalf("bob/1 envelope %d out of order", i)
		}
	}
	a1 := tr.dial(t, alice, 1)
	for i := 0; i < n; i++ {
		e := recv(t, a1)
		if e.MessageID != ids[i] || string(e.Payload) != "ciphertext for alice" {
			t.Fatalf("alice/1 envelope %d = %+v", i, e)
		}
		if i < n/2 {
			a1.Ack(ctx(t), e.Seq)
		}
	}
	// Bob/0's mailbox drains once its acks are committed; unacked
	// envelopes come again on the next socket (at least once).
	waitFor(t, func() bool {
		n, _ := tr.st.MailboxLen(store.Addr{Handle: "bob", Device: store.DeviceID(bob.Devs[0].ID)})
		return n == 0
	})
	a1.Close()
	waitFor(t, func() bool {
		left, _ := tr.st.MailboxLen(store.Addr{Handle: "alice", Device: store.DeviceID(alice.Devs[1].ID)})
		return left == n/2
	})
	a1 = tr.dial(t, alice, 1)
	for i := n / 2; i < n; i++ {
		if e := recv(t, a1); e.MessageID != ids[i] {
			t.Fatalf("redelivery %d out of order", i)
		}
	}
	tstest.NoEnvelope(t, b0, 50*time.Millisecond)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAckUnknownSeqClosesOnlyThatSocket(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a := tr.dial(t, alice, 0)
	b := tr.dial(t, bob, 0)
	if err := a.Ack(ctx(t), 42); err != nil {
		t.Fatal(err)
	}
	if err := tstest.WaitClosed(t, a, 2*time.Second); relayCode(err) != relay.CodeUnexpected {
		t.Fatalf("ack of unknown seq: %v", err)
	}
	if _, err := b.Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
		t.Fatalf("other socket: %v", err)
	}
}

func TestStaleDeviceSet(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 3)
	bob := tr.register(t, "bob", 3)
	a0 := tr.dial(t, alice, 0)
	stranger, _ := identity.NewDevice(nil)

	// Missing bob/2 and alice/2, extra: an unknown bob device and the
	// sender itself.
	to := []relay.Addr{bob.Addr(0), bob.Addr(1), {Handle: "bob", Device: stranger.ID}, alice.Addr(1), alice.Addr(0)}
	_, err := a0.Send(ctx(t), msgID(), sealed(to...))
	var se *relayclient.StaleError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a stale refusal", err)
	}
	want := []relay.StaleAccount{
		{Handle: "alice", Missing: []relay.DeviceID{alice.Devs[2].ID}, Extra: []relay.DeviceID{alice.Devs[0].ID}},
		{Handle: "bob", Missing: []relay.DeviceID{bob.Devs[2].ID}, Extra: []relay.DeviceID{stranger.ID}},
	}
	if fmt.Sprint(se.Accounts) != fmt.Sprint(want) {
		t.Fatalf("difference\n got %v\nwant %v", se.Accounts, want)
	}
	if tr.st.Queued() != 0 {
		t.Fatalf("refused send stored %d envelopes", tr.st.Queued())
	}
	// After bob revokes bob/2 the old set is stale the other way.
	tr.drop(t, bob, 2)
	_, err = a0.Send(ctx(t), msgID(), sealed(bob.Addr(0), bob.Addr(1), bob.Addr(2), alice.Addr(1), alice.Addr(2)))
	if !errors.As(err, &se) || len(se.Accounts) != 1 || se.Accounts[0].Handle != "bob" ||
		len(se.Accounts[0].Missing) != 0 || len(se.Accounts[0].Extra) != 1 || se.Accounts[0].Extra[0] != bob.Devs[2].ID {
		t.Fatalf("after revocation: %v %+v", err, se)
	}
	// Unknown recipient account.
	if _, err := a0.Send(ctx(t), msgID(), sealed(relay.Addr{Handle: "carol"}, alice.Addr(1), alice.Addr(2))); relayCode(err) != relay.CodeUnknownAccount {
		t.Fatalf("unknown account: %v", err)
	}
	// A malformed recipient handle.
	if _, err := a0.Send(ctx(t), msgID(), sealed(relay.Addr{Handle: "Bad Handle"}, alice.Addr(1), alice.Addr(2))); relayCode(err) != relay.CodeBadHandle {
		t.Fatalf("bad handle: %v", err)
	}
	// Duplicate device.
	if _, err := a0.Send(ctx(t), msgID(), sealed(alice.Addr(1), alice.Addr(1), alice.Addr(2))); relayCode(err) != relay.CodeBadRequest {
		t.Fatalf("duplicate: %v", err)
	}
	// The correct set goes through.
	if _, err := a0.Send(ctx(t), msgID(), sealed(bob.Addr(0), bob.Addr(1), alice.Addr(1), alice.Addr(2))); err != nil {
		t.Fatal(err)
	}
	if tr.st.Queued() != 4 {
		t.Fatalf("queued = %d", tr.st.Queued())
	}
}

func TestGroupSend(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 2)
	carol := tr.register(t, "carol", 1)
	a := tr.dial(t, alice, 0)
	payload := []byte("one sender-key ciphertext")
	if _, err := a.GroupSend(ctx(t), msgID(), payload, []relay.Addr{bob.Addr(0), carol.Addr(0)}); err == nil {
		t.Fatal("group send missing bob/1 accepted")
	}
	if _, err := a.GroupSend(ctx(t), msgID(), payload, []relay.Addr{bob.Addr(0), bob.Addr(1), carol.Addr(0)}); err != nil {
		t.Fatal(err)
	}
	// Fan-out amplification is bounded.
	big := make([]byte, relay.MaxPayload)
	var many []relay.Addr
	for i := 0; i < 70; i++ {
		many = append(many, relay.Addr{Handle: "bob", Device: relay.DeviceID{byte(i), 1}})
	}
	if _, err := a.GroupSend(ctx(t), msgID(), big, many); relayCode(err) != relay.CodeTooLarge {
		t.Fatalf("amplified group send: %v", err)
	}
	for _, c := range []*relayclient.Client{tr.dial(t, bob, 0), tr.dial(t, bob, 1), tr.dial(t, carol, 0)} {
		if e := recv(t, c); !bytes.Equal(e.Payload, payload) {
			t.Fatalf("payload %q", e.Payload)
		}
	}
}

func TestMailboxFull(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.MailboxLimit = 3 })
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	carol := tr.register(t, "carol", 1)
	a := tr.dial(t, alice, 0)
	for i := 0; i < 3; i++ {
		if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0)))
	if relayCode(err) != relay.CodeMailboxFull {
		t.Fatalf("fourth send: %v", err)
	}
	// A group send with one full mailbox stores nothing at all.
	before := tr.st.Queued()
	if _, err := a.GroupSend(ctx(t), msgID(), []byte("x"), []relay.Addr{carol.Addr(0), bob.Addr(0)}); relayCode(err) != relay.CodeMailboxFull {
		t.Fatalf("group send: %v", err)
	}
	if tr.st.Queued() != before {
		t.Fatal("partial group send stored")
	}
	// Draining the mailbox makes room again.
	b := tr.dial(t, bob, 0)
	for i := 0; i < 3; i++ {
		b.Ack(ctx(t), recv(t, b).Seq)
	}
	waitFor(t, func() bool { return tr.st.Queued() == 0 })
	if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
		t.Fatal(err)
	}
}

func TestRevokedDeviceDisconnectedAndPurged(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 2)
	bob := tr.register(t, "bob", 1)
	b := tr.dial(t, bob, 0)
	comp := tr.dial(t, alice, 1)
	// Something queued for the companion, unacked.
	if _, err := b.Send(ctx(t), msgID(), sealed(alice.Addr(0), alice.Addr(1))); err != nil {
		t.Fatal(err)
	}
	recv(t, comp)

	start := time.Now()
	tr.drop(t, alice, 1)
	err := tstest.WaitClosed(t, comp, time.Second)
	if relayCode(err) != relay.CodeRevoked {
		t.Fatalf("revoked socket ended with %v", err)
	}
	t.Logf("revoked socket closed %s after publish started", time.Since(start))
	if n, _ := tr.st.MailboxLen(store.Addr{Handle: "alice", Device: store.DeviceID(alice.Devs[1].ID)}); n != 0 {
		t.Fatalf("revoked mailbox still holds %d", n)
	}
	_, err = relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[1])
	if relayCode(err) != relay.CodeRevoked {
		t.Fatalf("revoked device re-auth: %v", err)
	}
}

func TestExpiredCompanion(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.AttestationAge = time.Hour })
	alice := newUser(t, "alice", 2)
	past := uint64(time.Now().Add(-2 * time.Hour).Unix())
	alice.List.Entries[1].Added, alice.List.Entries[1].Attested = past, past
	if _, err := relayclient.Register(ctx(t), tr.origin, "alice", alice.Signed(t)); err != nil {
		t.Fatal(err)
	}
	bob := tr.register(t, "bob", 1)
	// A send need not cover the expired companion.
	if _, err := tr.dial(t, bob, 0).Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
		t.Fatalf("send without the expired companion: %v", err)
	}
	// The primary still logs in; the companion does not.
	tr.dial(t, alice, 0)
	if _, err := relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[1]); relayCode(err) != relay.CodeRevoked {
		t.Fatalf("expired companion: %v", err)
	}
	_ = bob
}

func TestPrekeysConcurrentFetch(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a := tr.dial(t, alice, 0)

	// No prekeys yet.
	b := tr.dial(t, bob, 0)
	if _, err := b.Fetch(ctx(t), alice.Addr(0)); relayCode(err) != relay.CodeNoPrekeys {
		t.Fatalf("fetch before upload: %v", err)
	}
	const stock = 40
	up := relay.Prekeys{SignedPrekey: []byte("spk"), LastResortKEM: []byte("last-resort")}
	for i := 0; i < stock; i++ {
		up.OneTime = append(up.OneTime, []byte(fmt.Sprintf("otk-%03d", i)))
		up.KEM = append(up.KEM, []byte(fmt.Sprintf("kem-%03d", i)))
	}
	if err := a.UploadPrekeys(ctx(t), up); err != nil {
		t.Fatal(err)
	}
	// Over the stock cap: refused, nothing stored.
	big := relay.Prekeys{}
	for i := 0; i < relay.MaxPrekeyBatch; i++ {
		big.OneTime = append(big.OneTime, []byte("x"))
	}
	for i := 0; i < 5; i++ {
		if err := a.UploadPrekeys(ctx(t), big); err != nil {
			if relayCode(err) != relay.CodePrekeyLimit {
				t.Fatalf("over cap: %v", err)
			}
			break
		}
		if i == 4 {
			t.Fatal("stock cap never enforced")
		}
	}

	// Fresh stock for the race, with a fetch budget it does not reach
	// (TestPrekeyDrainLimitedPerTargetDevice tests the budget).
	tr2 := startRelay(t, func(c *relayserver.Config) { c.PrekeyFetches = 1000 })
	alice = tr2.register(t, "alice", 1)
	a = tr2.dial(t, alice, 0)
	if err := a.UploadPrekeys(ctx(t), up); err != nil {
		t.Fatal(err)
	}
	const fetchers, each = 6, 10 // 60 fetches for 40 keys
	var mu sync.Mutex
	seen := map[string]int{}
	var empty, lastResort int
	var wg sync.WaitGroup
	for f := 0; f < fetchers; f++ {
		u := tr2.register(t, fmt.Sprintf("fetcher%d", f), 1)
		c := tr2.dial(t, u, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				bd, err := c.Fetch(context.Background(), alice.Addr(0))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if len(bd.OneTime) == 0 {
					empty++
				} else {
					seen[string(bd.OneTime)]++
				}
				if bd.LastResort {
					lastResort++
					if string(bd.KEM) != "last-resort" {
						t.Errorf("last-resort KEM = %q", bd.KEM)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("one-time prekey %s handed out %d times", k, n)
		}
	}
	if len(seen) != stock || empty != fetchers*each-stock || lastResort != fetchers*each-stock {
		t.Fatalf("distinct=%d empty=%d lastResort=%d", len(seen), empty, lastResort)
	}
	// The owner was told its stock is low.
	select {
	case st := <-a.LowStock():
		if st.OneTime >= 20 {
			t.Fatalf("low stock = %+v", st)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no LowStock notice")
	}
	// Fetch for a device that is not in the list.
	stranger, _ := identity.NewDevice(nil)
	if _, err := a.Fetch(ctx(t), relay.Addr{Handle: "alice", Device: stranger.ID}); relayCode(err) != relay.CodeUnknownDevice {
		t.Fatalf("unknown device: %v", err)
	}
}

func TestMalformedFramesCloseOnlyThatSocket(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	good := tr.dial(t, bob, 0)

	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
		code websocket.StatusCode
	}{
		{"garbage", websocket.MessageBinary, []byte{0x02, 1, 2, 3}, relay.CloseBase + websocket.StatusCode(relay.CodeBadRequest)},
		{"unknown type", websocket.MessageBinary, []byte{0x7f}, relay.CloseBase + websocket.StatusCode(relay.CodeBadRequest)},
		{"text", websocket.MessageText, []byte("hello"), relay.CloseBase + websocket.StatusCode(relay.CodeBadRequest)},
		{"relay frame from client", websocket.MessageBinary, relay.Encode(&relay.OK{Req: 1}), relay.CloseBase + websocket.StatusCode(relay.CodeUnexpected)},
		{"second auth", websocket.MessageBinary, relay.Encode(&relay.Auth{Handle: "alice"}), relay.CloseBase + websocket.StatusCode(relay.CodeUnexpected)},
		{"oversize", websocket.MessageBinary, make([]byte, relay.MaxFrame+1), websocket.StatusMessageTooBig},
	}
	for _, tc := range cases {
		c, err := relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Conn().Write(ctx(t), tc.typ, tc.msg); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		err = tstest.WaitClosed(t, c, 5*time.Second)
		if got := websocket.CloseStatus(err); got != tc.code && !(relayCode(err) != 0 && websocket.StatusCode(relay.CloseBase+int(relayCode(err))) == tc.code) {
			t.Errorf("%s: ended with %v, want close %d", tc.name, err, tc.code)
		}
	}
	// The relay still serves everyone else.
	if _, err := good.Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
		t.Fatalf("good socket after malformed ones: %v", err)
	}
	tr.dial(t, alice, 0)
}

func TestLinkChannel(t *testing.T) {
	tr := startRelay(t, nil)
	id := bytes.Repeat([]byte{7}, 16)
	bundle := []byte("sealed link bundle")

	// The companion waits; the primary posts.
	got := make(chan []byte, 1)
	go func() {
		b, err := relayclient.GetLink(context.Background(), tr.origin, id, 0, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	time.Sleep(50 * time.Millisecond)
	if err := relayclient.PutLink(ctx(t), tr.origin, id, 0, bundle); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, bundle) {
		t.Fatalf("companion got %q", b)
	}
	// One use only, both ways.
	if _, err := relayclient.GetLink(ctx(t), tr.origin, id, 0, 0); httpCode(err) != "already_used" {
		t.Fatalf("second take: %v", err)
	}
	if err := relayclient.PutLink(ctx(t), tr.origin, id, 0, bundle); httpCode(err) != "already_used" {
		t.Fatalf("second put: %v", err)
	}
	// Nothing there yet.
	if _, err := relayclient.GetLink(ctx(t), tr.origin, id, 1, 0); httpCode(err) != "not_found" {
		t.Fatalf("empty slot: %v", err)
	}
	// Expiry after ten minutes.
	if err := relayclient.PutLink(ctx(t), tr.origin, id, 2, bundle); err != nil {
		t.Fatal(err)
	}
	tr.clock.Advance(11 * time.Minute)
	if _, err := relayclient.GetLink(ctx(t), tr.origin, id, 2, 0); httpCode(err) != "not_found" {
		t.Fatalf("expired: %v", err)
	}
	// Bad ids and slots, oversize body.
	if _, err := relayclient.GetLink(ctx(t), tr.origin, []byte{1, 2}, 0, 0); httpCode(err) != "bad_request" {
		t.Fatalf("short id: %v", err)
	}
	if _, err := relayclient.GetLink(ctx(t), tr.origin, id, 99, 0); httpCode(err) != "bad_request" {
		t.Fatalf("bad slot: %v", err)
	}
	if err := relayclient.PutLink(ctx(t), tr.origin, id, 3, make([]byte, 65<<10)); httpCode(err) != "too_large" {
		t.Fatalf("oversize: %v", err)
	}
	// One address cannot hold more than its share (32) of long-polls.
	var wg sync.WaitGroup
	var limited atomic.Int32
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := relayclient.GetLink(context.Background(), tr.origin, bytes.Repeat([]byte{byte(100 + i)}, 16), 0, 2*time.Second)
			if httpCode(err) == "rate_limited" {
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	if limited.Load() != 8 {
		t.Fatalf("%d of 40 concurrent long-polls refused, want 8", limited.Load())
	}
}

func TestBlobs(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.BlobQuota = 100 << 10 })
	alice := tr.register(t, "alice", 1)
	a := tr.dial(t, alice, 0)
	res, err := a.ReserveBlob(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("encrypted chunk "), 4096)
	if err := relayclient.PutBlob(ctx(t), tr.origin, res.ID, data); err != nil {
		t.Fatal(err)
	}
	got, err := relayclient.GetBlob(ctx(t), tr.origin, res.ID)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v (%d bytes)", err, len(got))
	}
	if err := relayclient.PutBlob(ctx(t), tr.origin, res.ID, data); httpCode(err) != "already_used" {
		t.Fatalf("second upload: %v", err)
	}
	var unreserved [16]byte
	unreserved[0] = 1
	if err := relayclient.PutBlob(ctx(t), tr.origin, unreserved, data); httpCode(err) != "not_found" {
		t.Fatalf("unreserved: %v", err)
	}
	res2, _ := a.ReserveBlob(ctx(t))
	if err := relayclient.PutBlob(ctx(t), tr.origin, res2.ID, make([]byte, relay.MaxBlob+1)); httpCode(err) != "too_large" {
		t.Fatalf("oversize: %v", err)
	}
	// The account's quota (100 KiB here) counts what it has stored.
	if err := relayclient.PutBlob(ctx(t), tr.origin, res2.ID, make([]byte, 50<<10)); httpCode(err) != "quota_exceeded" {
		t.Fatalf("over quota: %v", err)
	}
	if err := relayclient.PutBlob(ctx(t), tr.origin, res2.ID, make([]byte, 30<<10)); err != nil {
		t.Fatalf("within quota: %v", err)
	}
	tr.clock.Advance(31 * 24 * time.Hour)
	if _, err := relayclient.GetBlob(ctx(t), tr.origin, res.ID); httpCode(err) != "not_found" {
		t.Fatalf("expired: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a := tr.dial(t, alice, 0)
	b := tr.dial(t, bob, 0)
	a.Send(ctx(t), msgID(), sealed(bob.Addr(0)))
	b.Ack(ctx(t), recv(t, b).Seq)
	a.Send(ctx(t), msgID(), sealed(alice.Addr(0)))
	waitFor(t, func() bool { return metric(t, tr.origin, "parley_relay_delivery_latency_seconds_count") == 1 })
	resp, err := http.Get(tr.origin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"parley_relay_connected_devices 2",
		"parley_relay_envelopes_accepted_total 1",
		"parley_relay_delivery_latency_seconds_count 1",
		`parley_relay_refusals_total{reason="stale_devices"} 1`,
		"parley_relay_queued_envelopes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestCloseGoingAway(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	c := tr.dial(t, alice, 0)
	// An acked envelope whose delete is still queued is flushed by Close.
	if _, err := c.Send(ctx(t), msgID(), nil); err == nil {
		t.Fatal("empty send accepted")
	}
	bob := tr.register(t, "bob", 1)
	b := tr.dial(t, bob, 0)
	for i := 0; i < 50; i++ {
		if _, err := c.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		b.Ack(ctx(t), recv(t, b).Seq)
	}
	// Acks the relay has read but whose deletes may still be queued.
	waitFor(t, func() bool { return metric(t, tr.origin, "parley_relay_envelopes_acked_total") == 50 })
	// A login in progress does not hold Close up.
	raw, _, err := relayclient.DialRaw(ctx(t), tr.origin)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := tr.relay.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("Close took %s", time.Since(start))
	}
	if q := tr.st.Queued(); q != 0 {
		t.Fatalf("%d acked envelopes not deleted by Close", q)
	}
	err = tstest.WaitClosed(t, c, 2*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("socket ended with %v", err)
	}
	_, err = relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[0])
	if err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

func TestLimits(t *testing.T) {
	// Per-IP budget for HTTP requests and socket opens.
	tr := startRelay(t, func(c *relayserver.Config) { c.IPRate, c.IPBurst = 0.001, 3 })
	for i := 0; i < 3; i++ {
		resp, err := http.Get(tr.origin + "/v1/accounts/nobody")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(tr.origin + "/v1/accounts/nobody")
	if err != nil {
		t.Fatal(err)
	}
	checkHTTP(t, resp, http.StatusTooManyRequests, "rate_limited")
	if _, _, err := relayclient.DialRaw(ctx(t), tr.origin); err == nil {
		t.Fatal("socket opened past the per-IP budget")
	}

	// Account creation has its own, stricter budget.
	tr = startRelay(t, func(c *relayserver.Config) { c.RegisterRate, c.RegisterBurst = 0.001, 1 })
	tr.register(t, "alice", 1)
	if _, err := relayclient.Register(ctx(t), tr.origin, "bob", newUser(t, "bob", 1).Signed(t)); httpCode(err) != "rate_limited" {
		t.Fatalf("second registration: %v", err)
	}

	// Connection cap.
	tr = startRelay(t, func(c *relayserver.Config) { c.MaxConnections = 1 })
	alice := tr.register(t, "alice", 1)
	tr.dial(t, alice, 0)
	if _, err := relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[0]); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("second socket past the cap: %v", err)
	}

	// Sockets per device.
	tr = startRelay(t, nil)
	alice = tr.register(t, "alice", 1)
	for i := 0; i < 4; i++ {
		tr.dial(t, alice, 0)
	}
	if _, err := relayclient.Dial(ctx(t), tr.origin, "alice", alice.Devs[0]); relayCode(err) != relay.CodeBusy {
		t.Fatalf("fifth socket of one device: %v", err)
	}

	// Per-socket budget for blob reservations.
	bob := tr.register(t, "bob", 1)
	b := tr.dial(t, bob, 0)
	var refused bool
	for i := 0; i < 60 && !refused; i++ {
		_, err := b.ReserveBlob(ctx(t))
		switch relayCode(err) {
		case 0:
		case relay.CodeRateLimited:
			refused = true
		default:
			t.Fatal(err)
		}
	}
	if !refused {
		t.Fatal("blob reservations never rate limited")
	}
	// The socket survives a rate-limit refusal.
	if _, err := b.Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
		t.Fatalf("send after refusal: %v", err)
	}
}

// metric reads one unlabelled series from /metrics (-1 if absent).
func metric(t *testing.T, origin, name string) float64 {
	t.Helper()
	resp, err := http.Get(origin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

func TestPipelinedSendsKeepOrder(t *testing.T) {
	tr := startRelay(t, nil)
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a := tr.dial(t, alice, 0)
	b := tr.dial(t, bob, 0)
	// Frames written back to back, without waiting for OKs, so many are
	// in the store's queue at once.
	const n = 200
	for i := 0; i < n; i++ {
		var id [16]byte
		id[0], id[1] = byte(i>>8), byte(i)
		f := &relay.Send{Req: uint32(1000 + i), MessageID: id, To: sealed(bob.Addr(0))}
		if err := a.Conn().Write(ctx(t), websocket.MessageBinary, relay.Encode(f)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		e := recv(t, b)
		if got := int(e.MessageID[0])<<8 | int(e.MessageID[1]); got != i {
			t.Fatalf("envelope %d carries message %d", i, got)
		}
		b.Ack(ctx(t), e.Seq)
	}
}

// Ready.Queued counts only envelopes the device will receive: those whose
// TTL ran out before any sweep deleted them are left out.
func TestReadyQueuedSkipsExpired(t *testing.T) {
	// A TTL under the login clock-skew limit, so the relay's clock can pass
	// it and devices still log in.
	tr := startRelay(t, func(c *relayserver.Config) { c.DefaultTTL = time.Minute })
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a := tr.dial(t, alice, 0)
	for i := 0; i < 2; i++ {
		if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
			t.Fatal(err)
		}
	}
	tr.clock.Advance(90 * time.Second) // past the TTL, before any sweep
	if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
		t.Fatal(err)
	}
	if n := tr.st.Queued(); n != 3 {
		t.Fatalf("store holds %d envelopes, want 3 (the sweep has not run)", n)
	}
	if b := tr.dial(t, bob, 0); b.Ready.Queued != 1 {
		t.Fatalf("Ready.Queued = %d, want 1 (two expired)", b.Ready.Queued)
	}
}
