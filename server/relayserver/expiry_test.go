package relayserver_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
)

// TestOpenSocketClosedAtAttestationExpiry is the attack of a companion
// (stolen, or its primary gone) that stays connected past its attestation:
// refused at its next login, it would keep receiving, sending and
// reserving blobs on the socket it has, pings keeping it alive forever.
// The socket ends with device_revoked the moment the attestation expires,
// and nothing is delivered or accepted on it after that moment; a list
// that re-attests a companion moves its moment.
func TestOpenSocketClosedAtAttestationExpiry(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.AttestationAge = time.Minute })
	alice := tr.register(t, "alice", 3)
	prim := tr.dial(t, alice, 0)
	comp := tr.dial(t, alice, 1) // never re-attested
	kept := tr.dial(t, alice, 2) // re-attested after 30 s

	tr.clock.Advance(30 * time.Second)
	next, enc, err := devicelist.Reattest(alice.Acct, alice.List, alice.Handle, tr.clock.Now(), alice.Devs[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	alice.List = next
	if _, err := relayclient.Publish(ctx(t), tr.origin, alice.Handle, enc); err != nil {
		t.Fatalf("publish the re-attesting list: %v", err)
	}

	tr.clock.Advance(29 * time.Second) // 59 s: both still valid
	if _, err := prim.Send(ctx(t), msgID(), sealed(alice.Addr(1), alice.Addr(2))); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*relayclient.Client{comp, kept} {
		if err := c.Ack(ctx(t), recv(t, c).Seq); err != nil {
			t.Fatal(err)
		}
	}

	tr.clock.Advance(2 * time.Second) // 61 s: the companion's attestation ran out
	start := time.Now()
	if _, err := comp.ReserveBlob(ctx(t)); err == nil {
		t.Errorf("the expired companion reserved a blob on its open socket")
	}
	if _, err := prim.Send(ctx(t), msgID(), sealed(alice.Addr(1), alice.Addr(2))); err != nil {
		t.Fatal(err)
	}
	tstest.NoEnvelope(t, comp, 300*time.Millisecond)
	if err := tstest.WaitClosed(t, comp, time.Second); relayCode(err) != relay.CodeRevoked {
		t.Fatalf("expired companion's socket ended with %v, want %s", err, relay.CodeRevoked)
	}
	t.Logf("closed %s after the expiry", time.Since(start).Round(time.Millisecond))
	if _, err := relayclient.Dial(ctx(t), tr.origin, alice.Handle, alice.Devs[1]); relayCode(err) != relay.CodeRevoked {
		t.Fatalf("expired companion's login: %v", err)
	}

	// The re-attested companion carries on until its own moment.
	if err := kept.Ack(ctx(t), recv(t, kept).Seq); err != nil {
		t.Fatal(err)
	}
	tr.clock.Advance(30 * time.Second) // 61 s after its re-attestation
	if err := tstest.WaitClosed(t, kept, time.Second); relayCode(err) != relay.CodeRevoked {
		t.Fatalf("re-attested companion's socket at its own expiry: %v", err)
	}
	// The primary never expires.
	if _, err := prim.Send(ctx(t), msgID(), sealed()); relayCode(err) != relay.CodeBadRequest {
		t.Fatalf("primary after every expiry: %v", err)
	}
}

// TestHostedSessionClosedAtAttestationExpiry is the same for a hosted
// session (the Workers build): the login asks the host for a call at the
// attestation moment, and from that moment the session delivers and
// accepts nothing and ends with device_revoked, whichever event comes
// first; a re-attesting list moves the moment.
func TestHostedSessionClosedAtAttestationExpiry(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.Hosted = true; c.AttestationAge = time.Minute })
	alice := tr.register(t, "alice", 2)
	sp, o := hostedLogin(t, tr, alice, 0, nil)
	if !o.Authed || o.Deadline != 0 {
		t.Fatalf("primary login: %+v (a primary has no attestation deadline)", o)
	}
	sc, o := hostedLogin(t, tr, alice, 1, nil)
	if !o.Authed || o.Deadline == 0 || o.Deadline != sc.Expires {
		t.Fatalf("companion login: %+v, expires %d", o, sc.Expires)
	}
	first := o.Deadline
	// Before the moment the host's call only re-arms.
	if o := tr.relay.SessionTimeout(sc); o.Close != 0 || o.Deadline != first {
		t.Fatalf("timeout before the moment: %+v", o)
	}

	// A re-attesting list after 30 s moves the moment 30 s on.
	tr.clock.Advance(30 * time.Second)
	next, enc, err := devicelist.Reattest(alice.Acct, alice.List, alice.Handle, tr.clock.Now(), alice.Devs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	alice.List = next
	if _, err := relayclient.Publish(ctx(t), tr.origin, alice.Handle, enc); err != nil {
		t.Fatal(err)
	}
	tr.clock.Advance(31 * time.Second) // past the first moment
	if o := tr.relay.SessionTimeout(sc); o.Close != 0 || o.Deadline < first+29_000 {
		t.Fatalf("timeout after re-attestation: %+v, first moment %d", o, first)
	}

	// Past the new moment: mail is queued for it, and nothing comes out.
	tr.clock.Advance(30 * time.Second)
	send := relay.Encode(&relay.Send{Req: 1, MessageID: msgID(), To: sealed(alice.Addr(1))})
	if o := tr.relay.SessionFrame(sp, send, true); o.Close != 0 {
		t.Fatalf("primary's send: %+v", o)
	}
	o = tr.relay.SessionDeliver(sc)
	if o.Close != relay.CloseBase+int(relay.CodeRevoked) {
		t.Fatalf("delivery after the moment: %+v, want close %d", o, relay.CloseBase+int(relay.CodeRevoked))
	}
	for _, f := range frames(t, o) {
		if _, ok := f.(*relay.Envelope); ok {
			t.Fatalf("an envelope was delivered after the attestation ran out")
		}
	}
	reserve := relay.Encode(&relay.BlobReserve{Req: 2})
	if o := tr.relay.SessionFrame(sc, reserve, true); o.Close != relay.CloseBase+int(relay.CodeRevoked) {
		t.Fatalf("blob reservation after the moment: %+v", o)
	}
	if o := tr.relay.SessionTimeout(sc); o.Close != relay.CloseBase+int(relay.CodeRevoked) {
		t.Fatalf("timeout after the moment: %+v", o)
	}
}
