package wranglertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
)

// conformance is the relay protocol as a native client sees it, run
// against both back ends (the Go relay and the Workers build under
// wrangler): the same calls and the same assertions, codes included.
// Handles carry a per-run suffix so a back end's state can be reused.
func conformance(t *testing.T, origin string) {
	run := fmt.Sprintf("%x", randBytes(3))
	h := func(name string) string { return name + "-" + run }

	alice := register(t, origin, h("alice"), 2)
	bob := register(t, origin, h("bob"), 1)

	// A socket that never answers its challenge is closed at the login
	// deadline (10 s); it waits alongside the other subtests.
	silent := make(chan error, 1)
	go func() { silent <- loginDeadline(origin) }()

	t.Run("accounts", func(t *testing.T) {
		a, err := relayclient.GetAccount(ctx(t), origin, alice.Handle)
		if err != nil || a.Version != 1 || !bytes.Equal(a.AccountKey, alice.Acct.Public()) {
			t.Fatalf("GetAccount: %+v, %v", a, err)
		}
		_, err = relayclient.Register(ctx(t), origin, alice.Handle, alice.Signed(t))
		wantHTTP(t, "second registration", err, "handle_taken")
		_, err = relayclient.GetAccount(ctx(t), origin, h("nobody"))
		wantHTTP(t, "unknown account", err, "unknown_account")
		// Publishing the same version again is a rollback.
		_, err = relayclient.Publish(ctx(t), origin, alice.Handle, alice.Signed(t))
		wantHTTP(t, "same version", err, "stale_version")
	})

	t.Run("subprotocol required", func(t *testing.T) {
		ws, _, err := websocket.Dial(ctx(t), relayclient.WSURL(origin), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		_, _, err = ws.Read(ctx(t))
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("socket without the subprotocol: %v, want close 1008", err)
		}
	})

	t.Run("pre-auth frame over limit closes", func(t *testing.T) {
		// Before login a socket takes no message longer than the largest
		// Auth frame: one byte more closes it with 1009, undecoded.
		ws, _, err := relayclient.DialRaw(ctx(t), origin)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		big := make([]byte, relay.MaxPreAuthFrame+1)
		big[0] = byte(relay.TAuth)
		if err := ws.Write(ctx(t), websocket.MessageBinary, big); err != nil {
			t.Fatal(err)
		}
		_, _, err = ws.Read(ctx(t))
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("%d-byte message before login: %v (close %d), want close %d", len(big), err, got, websocket.StatusMessageTooBig)
		}
		// The longest handle's Auth is within the limit.
		long := register(t, origin, (h("maxlen") + strings.Repeat("x", relay.MaxHandle))[:relay.MaxHandle], 1)
		dial(t, origin, long, 0).Close()
	})

	t.Run("auth refusals", func(t *testing.T) {
		_, err := dialTampered(t, origin, bob, 0, func(a *relay.Auth) { a.Sig[0] ^= 1 })
		wantCode(t, "bad signature", err, relay.CodeAuthFailed)
		_, err = dialTampered(t, origin, bob, 0, func(a *relay.Auth) { a.Handle = h("nobody") })
		wantCode(t, "unknown account", err, relay.CodeAuthFailed)
		_, err = dialTampered(t, origin, bob, 0, func(a *relay.Auth) { a.Timestamp -= uint64(time.Hour.Milliseconds()) })
		wantCode(t, "clock skew", err, relay.CodeAuthFailed)

		// A valid answer replayed on another socket (another challenge).
		ws1, ch1, err := relayclient.DialRaw(ctx(t), origin)
		if err != nil {
			t.Fatal(err)
		}
		defer ws1.CloseNow()
		answer := authFor(origin, bob, 0, ch1.Nonce)
		ws2, _, err := relayclient.DialRaw(ctx(t), origin)
		if err != nil {
			t.Fatal(err)
		}
		_, err = relayclient.Finish(ctx(t), ws2, answer)
		wantCode(t, "replayed answer", err, relay.CodeAuthFailed)
		// The original socket still logs in with it.
		c, err := relayclient.Finish(ctx(t), ws1, answer)
		if err != nil {
			t.Fatalf("original answer: %v", err)
		}
		c.Close()
	})

	t.Run("send receive ack", func(t *testing.T) {
		a0 := dial(t, origin, alice, 0)
		b0 := dial(t, origin, bob, 0)
		id := msgID()
		if _, err := a0.Send(ctx(t), id, sealed(bob.Addr(0), alice.Addr(1))); err != nil {
			t.Fatalf("send: %v", err)
		}
		e := recv(t, b0)
		if string(e.Payload) != "for "+bob.Handle || e.From != alice.Addr(0) || e.MessageID != id {
			t.Fatalf("bob got %+v", e)
		}
		if err := b0.Ack(ctx(t), e.Seq); err != nil {
			t.Fatal(err)
		}
		// Alice's other device was offline: its copy waits, and after an
		// ack it is gone for good.
		a1 := dial(t, origin, alice, 1)
		if a1.Ready.Queued != 1 {
			t.Fatalf("alice's companion has %d queued, want 1", a1.Ready.Queued)
		}
		e = recv(t, a1)
		if string(e.Payload) != "for "+alice.Handle {
			t.Fatalf("companion got %q", e.Payload)
		}
		if err := a1.Ack(ctx(t), e.Seq); err != nil {
			t.Fatal(err)
		}
		// A group send is one payload the relay copies.
		if _, err := a0.GroupSend(ctx(t), msgID(), []byte("group"), []relay.Addr{bob.Addr(0), alice.Addr(1)}); err != nil {
			t.Fatalf("group send: %v", err)
		}
		if e := recv(t, b0); string(e.Payload) != "group" {
			t.Fatalf("bob got %q", e.Payload)
		} else if err := b0.Ack(ctx(t), e.Seq); err != nil {
			t.Fatal(err)
		}
		if e := recv(t, a1); string(e.Payload) != "group" {
			t.Fatalf("companion got %q", e.Payload)
		}
		// An ack for something not in flight closes only that socket.
		if err := b0.Ack(ctx(t), 1<<40); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "unknown ack", waitClosed(t, b0), relay.CodeUnexpected)
		// The companion's group copy was never acked: it comes again.
		// (The first may too, if its batched delete is not done yet.)
		a1.Close()
		a1 = dial(t, origin, alice, 1)
		for e := recv(t, a1); string(e.Payload) != "group"; e = recv(t, a1) {
		}
	})

	t.Run("short TTL raised to the minimum", func(t *testing.T) {
		// A sender's ttl_s under relay.MinTTL is raised to it (issue 14
		// item 3): two seconds after a send with ttl_s=1 it is still
		// delivered.
		a0 := dial(t, origin, alice, 0)
		id := msgID()
		if _, err := a0.SendTTL(ctx(t), id, 1, sealed(bob.Addr(0), alice.Addr(1))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		b0 := dial(t, origin, bob, 0)
		for e := recv(t, b0); e.MessageID != id; e = recv(t, b0) {
		}
		a1 := dial(t, origin, alice, 1)
		for e := recv(t, a1); e.MessageID != id; e = recv(t, a1) {
		}
	})

	t.Run("stale device set", func(t *testing.T) {
		a0 := dial(t, origin, alice, 0)
		refused := msgID()
		_, err := a0.Send(ctx(t), refused, sealed(bob.Addr(0)))
		var stale *relayclient.StaleError
		if !errors.As(err, &stale) {
			t.Fatalf("send missing a device: %v", err)
		}
		if len(stale.Accounts) != 1 || stale.Accounts[0].Handle != alice.Handle ||
			len(stale.Accounts[0].Missing) != 1 || stale.Accounts[0].Missing[0] != alice.Devs[1].ID {
			t.Fatalf("stale: %+v", stale.Accounts)
		}
		extra := relay.Addr{Handle: bob.Handle, Device: relay.DeviceID(randBytes16())}
		_, err = a0.Send(ctx(t), refused, sealed(bob.Addr(0), alice.Addr(1), extra))
		if !errors.As(err, &stale) || len(stale.Accounts) != 1 || len(stale.Accounts[0].Extra) != 1 {
			t.Fatalf("send with an extra device: %v", err)
		}
		_, err = a0.Send(ctx(t), refused, sealed(relay.Addr{Handle: h("nobody"), Device: relay.DeviceID(randBytes16())}, alice.Addr(1)))
		wantCode(t, "unknown recipient", err, relay.CodeUnknownAccount)
		// Nothing was stored by the refused sends. (Earlier envelopes may
		// come again: an ack's delete is batched, delivery at least once.)
		b0 := dial(t, origin, bob, 0)
		deadline := time.After(500 * time.Millisecond)
		for {
			select {
			case e := <-b0.Envelopes():
				if string(e.Payload) == "for "+bob.Handle && e.From == alice.Addr(0) && e.MessageID == refused {
					t.Fatalf("a refused send was delivered")
				}
				continue
			case <-deadline:
			}
			break
		}
	})

	t.Run("prekeys", func(t *testing.T) {
		b0 := dial(t, origin, bob, 0)
		up := relay.Prekeys{SignedPrekey: []byte("spk"), LastResortKEM: []byte("lrk"),
			OneTime: [][]byte{[]byte("otk1"), []byte("otk2")}, KEM: [][]byte{[]byte("kem1")}}
		if err := b0.UploadPrekeys(ctx(t), up); err != nil {
			t.Fatal(err)
		}
		for len(b0.LowStock()) > 0 { // the one sent with Ready (no prekeys yet)
			<-b0.LowStock()
		}
		a0 := dial(t, origin, alice, 0)
		seen := map[string]bool{}
		for i := 0; i < 3; i++ {
			b, err := a0.Fetch(ctx(t), bob.Addr(0))
			if err != nil {
				t.Fatalf("fetch %d: %v", i, err)
			}
			if string(b.SignedPrekey) != "spk" {
				t.Fatalf("fetch %d: signed prekey %q", i, b.SignedPrekey)
			}
			if b.OneTime != nil {
				if seen[string(b.OneTime)] {
					t.Fatalf("one-time prekey %q handed out twice", b.OneTime)
				}
				seen[string(b.OneTime)] = true
			}
			if wantLR := i >= 1; b.LastResort != wantLR || (wantLR && string(b.KEM) != "lrk") {
				t.Fatalf("fetch %d: KEM %q last resort %v", i, b.KEM, b.LastResort)
			}
		}
		if len(seen) != 2 {
			t.Fatalf("one-time prekeys handed out: %v", seen)
		}
		// The owner is told its stock is low, on its open socket.
		select {
		case st := <-b0.LowStock():
			if st.OneTime > 1 {
				t.Fatalf("low stock %+v", st)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no LowStock pushed to the owner")
		}
		_, err := a0.Fetch(ctx(t), relay.Addr{Handle: bob.Handle, Device: relay.DeviceID(randBytes16())})
		wantCode(t, "unknown device", err, relay.CodeUnknownDevice)
		_, err = b0.Fetch(ctx(t), alice.Addr(1))
		wantCode(t, "no prekeys", err, relay.CodeNoPrekeys)

		// A rotation (PROTOCOL.md 4.4): a new signed and last-resort
		// prekey replace the stored ones; an upload without them keeps
		// them.
		if err := b0.UploadPrekeys(ctx(t), relay.Prekeys{SignedPrekey: []byte("spk2"), LastResortKEM: []byte("lrk2")}); err != nil {
			t.Fatal(err)
		}
		if err := b0.UploadPrekeys(ctx(t), relay.Prekeys{OneTime: [][]byte{[]byte("otk3")}}); err != nil {
			t.Fatal(err)
		}
		b, err := a0.Fetch(ctx(t), bob.Addr(0))
		if err != nil {
			t.Fatal(err)
		}
		if string(b.SignedPrekey) != "spk2" || string(b.OneTime) != "otk3" || !b.LastResort || string(b.KEM) != "lrk2" {
			t.Fatalf("after a rotation: signed prekey %q, one-time %q, KEM %q (last resort %v); want spk2, otk3, lrk2",
				b.SignedPrekey, b.OneTime, b.KEM, b.LastResort)
		}
	})

	t.Run("prekey drain limited per target device", func(t *testing.T) {
		// Issue 14 item 9: fetches from every socket and account together
		// take at most the device's budget of one-time prekeys; the rest
		// get the signed and last-resort prekeys, and the owner is told
		// to refill.
		const stock = 48
		d := tstest.PrekeyDrain(ctx(t), t, origin, "-"+run, stock)
		if budget := relayserver.DefaultPrekeyFetches; d.Taken < budget || d.Taken > budget+d.Refill {
			t.Fatalf("%d fetches from four accounts took %d one-time prekeys of one device, want its budget, %d (+%d refilled meanwhile)", stock, d.Taken, budget, d.Refill)
		}
		// Pushes from concurrent fetches may arrive in any order.
		if d.Told < stock-d.Taken || d.Told >= 20 {
			t.Fatalf("the owner was last told its stock is %d; it is %d, low under 20", d.Told, stock-d.Taken)
		}
	})

	t.Run("blobs", func(t *testing.T) {
		a0 := dial(t, origin, alice, 0)
		id, err := a0.ReserveBlob(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		data := randBytes(300 << 10)
		_, err = relayclient.GetBlob(ctx(t), origin, id.ID)
		wantHTTP(t, "blob before upload", err, "not_found")
		if err := relayclient.PutBlob(ctx(t), origin, id.ID, data); err != nil {
			t.Fatalf("put: %v", err)
		}
		got, err := relayclient.GetBlob(ctx(t), origin, id.ID)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get: %d bytes, %v", len(got), err)
		}
		wantHTTP(t, "second upload", relayclient.PutBlob(ctx(t), origin, id.ID, data), "already_used")
		wantHTTP(t, "unreserved", relayclient.PutBlob(ctx(t), origin, randBytes16(), data), "not_found")
	})

	t.Run("link channel", func(t *testing.T) {
		id := randBytes(16)
		got := make(chan []byte, 1)
		errc := make(chan error, 1)
		go func() {
			b, err := relayclient.GetLink(ctx(t), origin, id, 0, 10*time.Second)
			got <- b
			errc <- err
		}()
		time.Sleep(300 * time.Millisecond)
		if err := relayclient.PutLink(ctx(t), origin, id, 0, []byte("bundle")); err != nil {
			t.Fatal(err)
		}
		if b, err := <-got, <-errc; err != nil || string(b) != "bundle" {
			t.Fatalf("long-poll: %q, %v", b, err)
		}
		_, err := relayclient.GetLink(ctx(t), origin, id, 0, 0)
		wantHTTP(t, "second take", err, "already_used")
		wantHTTP(t, "second write", relayclient.PutLink(ctx(t), origin, id, 0, []byte("again")), "already_used")
		_, err = relayclient.GetLink(ctx(t), origin, id, 1, 0)
		wantHTTP(t, "empty slot", err, "not_found")
	})

	t.Run("large envelopes", func(t *testing.T) {
		// Twelve sends of 250 KiB per device (3 MB) while Bob is away: his login
		// gets all twelve, in order, however the relay pages them.
		a0 := dial(t, origin, alice, 0)
		var ids [][16]byte
		for i := range 12 {
			big := randBytes(250 << 10)
			big[0] = byte(i)
			id := msgID()
			ids = append(ids, id)
			to := []relay.Sealed{{To: bob.Addr(0), Payload: big}, {To: alice.Addr(1), Payload: big}}
			if _, err := a0.Send(ctx(t), id, to); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		for _, who := range []struct {
			u *user
			i int
		}{{bob, 0}, {alice, 1}} {
			c := dial(t, origin, who.u, who.i)
			next := 0
			for next < len(ids) {
				e := recv(t, c)
				if e.MessageID != ids[next] {
					continue // an earlier envelope whose batched delete is not done
				}
				if len(e.Payload) != 250<<10 || e.Payload[0] != byte(next) {
					t.Fatalf("%s: envelope %d has %d bytes", who.u.Handle, next, len(e.Payload))
				}
				if err := c.Ack(ctx(t), e.Seq); err != nil {
					t.Fatal(err)
				}
				next++
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		a1 := dial(t, origin, alice, 1)
		b0 := dial(t, origin, bob, 0)
		next := alice.List.Clone()
		next.Version++
		next.Entries = next.Entries[:1]
		alice.List = next
		if _, err := relayclient.Publish(ctx(t), origin, alice.Handle, alice.Signed(t)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		wantCode(t, "revoked socket", waitClosed(t, a1), relay.CodeRevoked)
		_, err := relayclient.Dial(ctx(t), origin, alice.Handle, alice.Devs[1])
		wantCode(t, "revoked login", err, relay.CodeRevoked)
		// Sends now name the one remaining device.
		_, err = b0.Send(ctx(t), msgID(), sealed(alice.Addr(0), alice.Addr(1)))
		var stale *relayclient.StaleError
		if !errors.As(err, &stale) || len(stale.Accounts[0].Extra) != 1 {
			t.Fatalf("send to the revoked device: %v", err)
		}
		if _, err := b0.Send(ctx(t), msgID(), sealed(alice.Addr(0))); err != nil {
			t.Fatalf("send after revoke: %v", err)
		}
	})

	t.Run("account key unique", func(t *testing.T) {
		// Issue 14 item 6: the victim's public version-1 list,
		// registered again under a new handle, gave the device the
		// victim later removed an identity of its own on the relay.
		u := register(t, origin, h("victim"), 2)
		v1 := u.Signed(t)
		next := u.List.Clone()
		next.Version++
		next.Entries = next.Entries[:1]
		u.List = next
		if _, err := relayclient.Publish(ctx(t), origin, u.Handle, u.Signed(t)); err != nil {
			t.Fatal(err)
		}
		_, err := relayclient.Register(ctx(t), origin, h("alias"), v1)
		wantHTTP(t, "the victim's old list under another handle", err, "key_taken")
		_, err = relayclient.GetAccount(ctx(t), origin, h("alias"))
		wantHTTP(t, "the alias", err, "unknown_account")
		_, err = relayclient.Dial(ctx(t), origin, h("alias"), u.Devs[1])
		wantCode(t, "the removed device under the alias", err, relay.CodeAuthFailed)
	})

	t.Run("attestation expiry closes open socket", func(t *testing.T) {
		// Two companions whose attestations run out in a few seconds (the
		// relay's age is the default 30 days); the primary re-attests one.
		// The other's open socket ends at that moment with
		// device_revoked; the re-attested one carries on.
		const left = 6 // seconds
		u := tstest.NewUser(t, h("expiring"), 3)
		attested := uint64(time.Now().Add(-relay.DefaultAttestationAge).Unix()) + left
		for i := 1; i <= 2; i++ {
			u.List.Entries[i].Added, u.List.Entries[i].Attested = attested, attested
		}
		moment := time.Unix(int64(attested), 0).Add(relay.DefaultAttestationAge)
		if _, err := relayclient.Register(ctx(t), origin, u.Handle, u.Signed(t)); err != nil {
			t.Fatal(err)
		}
		p := dial(t, origin, u, 0)
		gone, kept := dial(t, origin, u, 1), dial(t, origin, u, 2)
		next, enc, err := devicelist.Reattest(u.Acct, u.List, time.Now(), u.Devs[2].ID)
		if err != nil {
			t.Fatal(err)
		}
		u.List = next
		if _, err := relayclient.Publish(ctx(t), origin, u.Handle, enc); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(moment) {
			t.Fatalf("set-up took past the attestation moment; raise left")
		}
		if _, err := p.Send(ctx(t), msgID(), sealed(u.Addr(1), u.Addr(2))); err != nil {
			t.Fatal(err)
		}
		recv(t, gone)
		recv(t, kept)
		wantCode(t, "socket at its attestation moment", waitClosed(t, gone), relay.CodeRevoked)
		if early := moment.Sub(time.Now()); early > time.Second {
			t.Errorf("closed %s before the attestation ran out", early)
		}
		_, err = relayclient.Dial(ctx(t), origin, u.Handle, u.Devs[1])
		wantCode(t, "expired login", err, relay.CodeRevoked)
		if _, err := p.Send(ctx(t), msgID(), sealed(u.Addr(2))); err != nil {
			t.Fatalf("send to the re-attested companion: %v", err)
		}
		recv(t, kept)
	})

	t.Run("login deadline", func(t *testing.T) {
		wantCode(t, "silent socket", <-silent, relay.CodeAuthFailed)
	})
}

// loginDeadline opens a socket, answers nothing, and returns the relay's
// refusal.
func loginDeadline(origin string) error {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := relayclient.DialRaw(c, origin)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	_, b, err := ws.Read(c)
	if err != nil {
		return err
	}
	f, err := relay.Decode(b)
	if e, ok := f.(*relay.Error); ok {
		return &relay.RelayError{Code: e.Code, Message: e.Message}
	}
	return fmt.Errorf("got %T (%v) instead of an Error frame", f, err)
}

// user is an account with its devices; Devs[0] is the primary.
type user = tstest.User

func register(t *testing.T, origin, handle string, ndev int) *user {
	t.Helper()
	return tstest.Register(ctx(t), t, origin, handle, ndev)
}

func authFor(origin string, u *user, i int, nonce [32]byte) *relay.Auth {
	a := &relay.Auth{Handle: u.Handle, Device: u.Devs[i].ID, Timestamp: uint64(time.Now().UnixMilli())}
	copy(a.Sig[:], u.Devs[i].Sign(identity.PurposeRelayChallenge, relay.AuthMessage(nonce, origin, a.Timestamp, a.Handle, a.Device)))
	return a
}

func dial(t *testing.T, origin string, u *user, i int) *relayclient.Client {
	t.Helper()
	return tstest.Dial(ctx(t), t, origin, u, i)
}

// dialTampered logs in with an answer changed by tamper (signed first).
func dialTampered(t *testing.T, origin string, u *user, i int, tamper func(*relay.Auth)) (*relayclient.Client, error) {
	t.Helper()
	ws, ch, err := relayclient.DialRaw(ctx(t), origin)
	if err != nil {
		t.Fatal(err)
	}
	a := authFor(origin, u, i, ch.Nonce)
	tamper(a)
	c, err := relayclient.Finish(ctx(t), ws, a)
	if err == nil {
		c.Close()
	}
	return c, err
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randBytes16() (id [16]byte) { rand.Read(id[:]); return id }

func msgID() [16]byte { return randBytes16() }

func sealed(to ...relay.Addr) []relay.Sealed {
	out := make([]relay.Sealed, len(to))
	for i, a := range to {
		out[i] = relay.Sealed{To: a, Payload: []byte("for " + a.Handle)}
	}
	return out
}

func recv(t *testing.T, c *relayclient.Client) *relay.Envelope {
	t.Helper()
	return tstest.Recv(t, c, 10*time.Second)
}

func waitClosed(t *testing.T, c *relayclient.Client) error {
	t.Helper()
	return tstest.WaitClosed(t, c, 10*time.Second)
}

func wantCode(t *testing.T, what string, err error, want relay.Code) {
	t.Helper()
	var re *relay.RelayError
	if !errors.As(err, &re) || re.Code != want {
		t.Errorf("%s: got %v, want relay code %s", what, err, want)
	}
}

func wantHTTP(t *testing.T, what string, err error, want string) {
	t.Helper()
	var he *relayclient.HTTPError
	if !errors.As(err, &he) || he.Code != want {
		t.Errorf("%s: got %v, want HTTP code %s", what, err, want)
	}
}

// median of durations, for the figures the test logs.
func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
