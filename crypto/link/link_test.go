package link

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

var t0 = time.Unix(1_780_000_000, 0)

const origin = "https://relay.parley.example"

func accountKey(seed string) ed25519.PublicKey {
	b := make([]byte, 32)
	newDetRand(seed).Read(b)
	return ed25519.NewKeyFromSeed(b).Public().(ed25519.PublicKey)
}

func handshake(t *testing.T) (*Companion, *Session, *Session) {
	t.Helper()
	c, err := NewCompanion(newDetRand("companion"), origin, t0)
	if err != nil {
		t.Fatal(err)
	}
	text := c.Payload().String()
	p, err := ParsePayload(text)
	if err != nil {
		t.Fatal(err)
	}
	ps, hello, err := StartPrimary(newDetRand("primary"), p, accountKey("acct"), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Accept(hello, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return c, ps, cs
}

func TestHandshake(t *testing.T) {
	c, ps, cs := handshake(t)
	if ps.CheckCode() != cs.CheckCode() || len(ps.CheckCode()) != 7 {
		t.Fatalf("check codes %q vs %q", ps.CheckCode(), cs.CheckCode())
	}
	if !cs.Account().Equal(accountKey("acct")) {
		t.Fatal("account not carried")
	}
	join, err := cs.Seal([]byte("join request"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ps.Open(join)
	if err != nil || string(got) != "join request" {
		t.Fatalf("open join: %q %v", got, err)
	}
	bundle := bytes.Repeat([]byte("bundle"), 1000)
	sealed, _ := ps.Seal(bundle)
	// Tampered: fails and leaves the session usable.
	bad := append([]byte(nil), sealed...)
	bad[len(bad)-3] ^= 1
	if _, err := cs.Open(bad); !errors.Is(err, ErrDecrypt) {
		t.Fatal(err)
	}
	got, err = cs.Open(sealed)
	if err != nil || !bytes.Equal(got, bundle) {
		t.Fatal(err)
	}
	if _, err := cs.Open(sealed); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// A message sealed for the other direction does not open.
	c2, _ := cs.Seal([]byte("x"))
	if _, err := cs.Open(c2); err == nil {
		t.Fatal("reflected message opened")
	}
	// Companion state survives a reload.
	cb, _ := c.MarshalBinary()
	c3, err := UnmarshalCompanion(cb)
	if err != nil || c3.Payload().String() != c.Payload().String() {
		t.Fatal(err)
	}
}

func TestWrongSecretOrKey(t *testing.T) {
	c, _ := NewCompanion(newDetRand("companion"), origin, t0)
	p := c.Payload()
	p.Secret[0] ^= 1
	_, hello, err := StartPrimary(newDetRand("primary"), p, accountKey("acct"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Accept(hello, t0); !errors.Is(err, ErrBadConfirmation) {
		t.Fatalf("wrong secret: %v", err)
	}
	p = c.Payload()
	other, _ := NewCompanion(newDetRand("other"), origin, t0)
	p.LinkPub = other.Payload().LinkPub
	_, hello, _ = StartPrimary(newDetRand("primary"), p, accountKey("acct"), t0)
	if _, err := c.Accept(hello, t0); !errors.Is(err, ErrBadConfirmation) {
		t.Fatalf("wrong key: %v", err)
	}
	// Relay swaps the account key in the hello.
	_, hello, _ = StartPrimary(newDetRand("primary"), c.Payload(), accountKey("acct"), t0)
	copy(hello[49:81], accountKey("mallory"))
	if _, err := c.Accept(hello, t0); !errors.Is(err, ErrBadConfirmation) {
		t.Fatalf("swapped account: %v", err)
	}
	// Hello for another link.
	_, hello, _ = StartPrimary(newDetRand("primary"), other.Payload(), accountKey("acct"), t0)
	if _, err := c.Accept(hello, t0); !errors.Is(err, ErrWrongLink) {
		t.Fatalf("other link: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	c, _ := NewCompanion(newDetRand("companion"), origin, t0)
	late := t0.Add(Lifetime + time.Second)
	if _, _, err := StartPrimary(nil, c.Payload(), accountKey("acct"), late); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
	_, hello, _ := StartPrimary(nil, c.Payload(), accountKey("acct"), t0.Add(Lifetime))
	if _, err := c.Accept(hello, late); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
	if _, err := c.Accept(hello, t0.Add(Lifetime)); err != nil {
		t.Fatal(err)
	}
}

func TestPayloadParsing(t *testing.T) {
	c, _ := NewCompanion(newDetRand("companion"), origin, t0)
	text := c.Payload().String()
	if !strings.HasPrefix(text, Prefix) || len(text) > MaxPayloadTextLen {
		t.Fatalf("text %q", text)
	}
	if _, err := ParsePayload("  " + text + "\n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "hello", "parley-link:2:" + text[len(Prefix):], text + "A", text + "=", text[:len(text)-2],
		Prefix + strings.Repeat("A", MaxPayloadTextLen)} {
		if _, err := ParsePayload(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePayload(%.40q): %v", bad, err)
		}
	}
	for _, o := range []string{"", "relay.example", "ftp://x", "https://x/path", "https://x?q", "https://u@x", "https://x/",
		"HTTPS://x", "https://", "https://:443", "https://x:", "https://x:123456", "https://x:8a", "https://x#f",
		"https://x y", "https://[::1", "https://[]", "https://[::1]x", "https://x%41", "https://[::1%25eth0]", "https://x:1:2"} {
		if _, err := NewCompanion(nil, o, t0); !errors.Is(err, ErrMalformed) {
			t.Errorf("origin %q: %v", o, err)
		}
	}
	for _, o := range []string{"http://127.0.0.1:8080", "https://relay.parley.example", "http://localhost",
		"https://[::1]:8443", "https://[2001:db8::1]", "https://my_host-1.example:65535"} {
		if _, err := NewCompanion(nil, o, t0); err != nil {
			t.Errorf("origin %q: %v", o, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	_, ps, _ := handshake(t)
	if _, err := ps.Seal(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, err := ps.Seal(make([]byte, MaxMessageSize)); err != nil {
		t.Fatal(err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestMaxPayloadTextLen(t *testing.T) {
	if MaxPayloadTextLen != 480 {
		t.Fatalf("MaxPayloadTextLen = %d; PROTOCOL.md says 480", MaxPayloadTextLen)
	}
	o := "https://" + strings.Repeat("a", MaxOriginLen-len("https://"))
	c, err := NewCompanion(nil, o, t0)
	if err != nil {
		t.Fatal(err)
	}
	text := c.Payload().String()
	if len(text) != MaxPayloadTextLen {
		t.Fatalf("longest payload is %d characters", len(text))
	}
	if _, err := ParsePayload(text); err != nil {
		t.Fatal(err)
	}
}
