// Package link is the handshake that adds a companion device (a browser tab)
// to an account whose primary device is at hand: the QR/link payload, the
// check code both screens show, and the encrypted channel that carries the
// link bundle from the primary to the companion through the relay.
// docs/PROTOCOL.md section 7 is the specification.
//
// The flow, and the functions for each step:
//
//  1. Companion: NewCompanion makes a one-time link key pair and secret and
//     returns the Payload to show as a QR code (Payload.String is both the
//     QR content and the copyable text).
//  2. Primary: ParsePayload on the scanned or pasted text, then
//     StartPrimary, which returns the primary's Session and the hello
//     message to send to the companion through the relay (addressed by
//     Payload.LinkID). The hello carries the account public key.
//  3. Companion: Companion.Accept(hello) returns its Session; it fails with
//     ErrBadConfirmation if the hello was not made from this payload (wrong
//     secret, wrong link key, tampered).
//  4. Both show Session.CheckCode; the user confirms they match. Only then
//     does the companion Seal its JoinRequest (device public keys and its
//     device-signs-account signature); the primary opens it, checks it
//     with JoinRequest.Verify, signs a device list with the new device and
//     Seals the link Bundle (account key, signed list, device id,
//     state-sync key, history pointer).
//  5. Companion: Open the bundle and call Bundle.Check before using
//     anything in it.
//
// The session keys come from an X25519 exchange between the primary's
// ephemeral key and the companion's link key, with the one-time secret
// (which only travels in the QR code) as the HKDF salt: the relay, which
// carries the hello and the sealed messages, can neither read nor alter
// them, and cannot complete a handshake of its own without the secret.
package link

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

const (
	// Prefix starts the text form of a payload; the "1" is the payload
	// format version, so an old client recognises a newer code and says so.
	Prefix = "parley-link:1:"
	// Lifetime is how long a payload is valid; it is carried in the payload
	// (Expires) so both sides enforce the same deadline.
	Lifetime = 10 * time.Minute
	// SecretSize is the one-time secret's size: 256 bits, never guessable.
	SecretSize = 32
	// LinkIDSize is the size of the relay mailbox id for the handshake.
	LinkIDSize = 16
	// MaxOriginLen bounds the relay origin in a payload.
	MaxOriginLen = 256
	// MaxPayloadTextLen is the longest valid text form (480 characters);
	// longer input is refused before decoding.
	MaxPayloadTextLen = len(Prefix) + (maxPayloadSize*4+2)/3
	maxPayloadSize    = 1 + LinkIDSize + 32 + SecretSize + 8 + 4 + MaxOriginLen
	// MaxMessageSize bounds the plaintext of one sealed message, the link
	// bundle included: it carries keys, a signed device list and a pointer
	// to history, not the history itself.
	MaxMessageSize = 256 << 10
	// MaxMessages bounds the messages one side may seal in a session.
	MaxMessages = 1 << 16
	// CheckCodeDigits is the length of the check code, shown as two groups
	// of three: a one-in-a-million chance that a wrong pairing matches.
	CheckCodeDigits = 6

	payloadVersion   = 1
	companionVersion = 1
	helloVersion     = 1
	messageVersion   = 1
	tagSize          = 32
	overhead         = 1 + 4 + chacha20poly1305.Overhead
)

// HKDF labels (info strings), listed in PROTOCOL.md section 7.
const (
	labelTranscript = "parley/v1/link-transcript"
	labelConfirm    = "parley/v1/link-confirm"
	labelP2C        = "parley/v1/link-primary-to-companion"
	labelC2P        = "parley/v1/link-companion-to-primary"
	labelCheckCode  = "parley/v1/link-check-code"
)

var (
	// ErrMalformed: a payload, hello or message does not parse.
	ErrMalformed = errors.New("link: malformed")
	// ErrExpired: the payload's 10 minutes are over; show a new QR code.
	ErrExpired = errors.New("link: link code expired")
	// ErrWrongLink: the hello names another link id.
	ErrWrongLink = errors.New("link: message is for another link")
	// ErrBadConfirmation: the hello was not made from this payload: the
	// secret or link key differs, or the hello was tampered with.
	ErrBadConfirmation = errors.New("link: handshake does not match this link code (wrong secret or key)")
	// ErrDecrypt: a sealed message was tampered with or is for another
	// session.
	ErrDecrypt = errors.New("link: message authentication failed")
	// ErrReplay: a sealed message arrived out of order or twice.
	ErrReplay = errors.New("link: message replayed or out of order")
	// ErrTooLarge: a message over MaxMessageSize.
	ErrTooLarge = errors.New("link: message too large")
)

// Payload is what the companion shows in its QR code.
type Payload struct {
	LinkID      [LinkIDSize]byte // relay mailbox for the handshake
	LinkPub     [32]byte         // companion's one-time X25519 link key
	Secret      [SecretSize]byte // one-time secret, bound into the keys
	Expires     uint64           // Unix seconds
	RelayOrigin string           // e.g. "https://parley.example"
}

// MarshalBinary encodes u8 1 ‖ link id (16) ‖ link public key (32) ‖
// secret (32) ‖ u64 expires ‖ str relay origin.
func (p *Payload) MarshalBinary() ([]byte, error) {
	if err := checkOrigin(p.RelayOrigin); err != nil {
		return nil, err
	}
	w := wire.NewWriter(1 + LinkIDSize + 32 + SecretSize + 8 + 4 + len(p.RelayOrigin))
	w.U8(payloadVersion)
	w.Fixed(p.LinkID[:])
	w.Fixed(p.LinkPub[:])
	w.Fixed(p.Secret[:])
	w.U64(p.Expires)
	w.String(p.RelayOrigin)
	return w.Bytes(), nil
}

// UnmarshalPayload decodes MarshalBinary's output strictly. It does not
// check expiry (CheckExpiry does).
func UnmarshalPayload(b []byte) (*Payload, error) {
	r := wire.NewReader(b)
	r.Version(payloadVersion)
	p := &Payload{}
	r.FixedInto(p.LinkID[:])
	r.FixedInto(p.LinkPub[:])
	r.FixedInto(p.Secret[:])
	p.Expires = r.U64()
	p.RelayOrigin = r.String(MaxOriginLen)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	if err := checkOrigin(p.RelayOrigin); err != nil {
		return nil, err
	}
	return p, nil
}

// String is the text form: Prefix followed by the binary form in unpadded
// base64url. It is also what the QR code holds, so a phone's camera app
// shows the same text a user could paste.
func (p *Payload) String() string {
	b, err := p.MarshalBinary()
	if err != nil {
		return ""
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParsePayload parses the text form (surrounding white space is ignored).
func ParsePayload(s string) (*Payload, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxPayloadTextLen {
		return nil, fmt.Errorf("%w: link code of %d characters", ErrMalformed, len(s))
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		if strings.HasPrefix(s, "parley-link:") {
			return nil, fmt.Errorf("%w: %w: unsupported link code version", ErrMalformed, wire.ErrVersion)
		}
		return nil, fmt.Errorf("%w: not a Parley link code", ErrMalformed)
	}
	// Go's base64 decoder skips CR and LF even in Strict mode, so a code
	// with a line break inside would decode to the same payload as the
	// canonical one. One payload has exactly one text form; refuse others.
	if strings.ContainsAny(rest, "\r\n") {
		return nil, fmt.Errorf("%w: link code contains a line break", ErrMalformed)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: link code: %v", ErrMalformed, err)
	}
	return UnmarshalPayload(b)
}

// CheckExpiry returns ErrExpired if now is past p.Expires.
func (p *Payload) CheckExpiry(now time.Time) error {
	if now.Unix() < 0 || uint64(now.Unix()) > p.Expires {
		return ErrExpired
	}
	return nil
}

// checkOrigin accepts exactly "https://host[:port]" or "http://host[:port]",
// the form browsers use for an origin, so the same relay always encodes the
// same way: a lowercase scheme, a host name or IPv4 address (ASCII letters,
// digits, '-', '.', '_') or a bracketed IPv6 address, and an optional port
// of 1 to maxPortDigits digits; no user info, path, query or fragment.
// (Written out rather than through net/url, which would bring net/netip and
// unique into the wasm client for this one check.)
func checkOrigin(o string) error {
	if len(o) > MaxOriginLen {
		return fmt.Errorf("%w: relay origin of %d bytes", ErrMalformed, len(o))
	}
	host, ok := strings.CutPrefix(o, "https://")
	if !ok {
		host, ok = strings.CutPrefix(o, "http://")
	}
	if !ok || !validHostPort(host) {
		return fmt.Errorf("%w: relay origin %q is not scheme://host[:port]", ErrMalformed, o)
	}
	return nil
}

// maxPortDigits bounds the port of a relay origin (65535 has five).
const maxPortDigits = 5

const (
	digits    = "0123456789"
	hostBytes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + digits + "-._"
	ipv6Bytes = "abcdefABCDEF" + digits + ":."
)

// validHostPort reports whether s is host[:port] as checkOrigin describes.
func validHostPort(s string) bool {
	port := ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || !onlyBytes(s[1:end], ipv6Bytes) || !strings.Contains(s[1:end], ":") {
			return false
		}
		port = s[end+1:]
	} else {
		host := s
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		if host == "" || !onlyBytes(host, hostBytes) {
			return false
		}
	}
	if port == "" {
		return true
	}
	p, ok := strings.CutPrefix(port, ":")
	return ok && p != "" && len(p) <= maxPortDigits && onlyBytes(p, digits)
}

// onlyBytes reports whether every byte of s is in set.
func onlyBytes(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Companion is the new device's side before the hello arrives.
type Companion struct {
	payload Payload
	priv    [x25519.Size]byte
}

// NewCompanion reads link id (16), link private key (32) and secret (32)
// from rand (nil: crypto/rand) and returns a payload valid for Lifetime.
func NewCompanion(rnd io.Reader, relayOrigin string, now time.Time) (*Companion, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := checkOrigin(relayOrigin); err != nil {
		return nil, err
	}
	b := make([]byte, LinkIDSize+32+SecretSize)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("link: reading randomness: %w", err)
	}
	c := &Companion{priv: [x25519.Size]byte(b[16:48])}
	copy(c.payload.LinkID[:], b[:16])
	c.payload.LinkPub = x25519.PublicKey(&c.priv)
	copy(c.payload.Secret[:], b[48:])
	c.payload.Expires = uint64(now.Add(Lifetime).Unix())
	c.payload.RelayOrigin = relayOrigin
	return c, nil
}

// Payload is what to show in the QR code.
func (c *Companion) Payload() *Payload { p := c.payload; return &p }

// MarshalBinary encodes the companion's pending state (it holds the link
// private key and secret: store it sealed) so a reload within Lifetime can
// resume: u8 1 ‖ link private key (32) ‖ payload encoding.
func (c *Companion) MarshalBinary() ([]byte, error) {
	pb, err := c.payload.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w := wire.NewWriter(1 + 32 + len(pb))
	w.U8(companionVersion)
	w.Fixed(c.priv[:])
	w.Fixed(pb)
	return w.Bytes(), nil
}

// UnmarshalCompanion decodes MarshalBinary's output.
func UnmarshalCompanion(b []byte) (*Companion, error) {
	r := wire.NewReader(b)
	r.Version(companionVersion)
	priv := r.Fixed(32)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: companion: %w", ErrMalformed, err)
	}
	p, err := UnmarshalPayload(b[33:])
	if err != nil {
		return nil, err
	}
	k := [x25519.Size]byte(priv)
	if x25519.PublicKey(&k) != p.LinkPub {
		return nil, fmt.Errorf("%w: companion: link key does not match payload", ErrMalformed)
	}
	return &Companion{payload: *p, priv: k}, nil
}

// Session is one side of an established link channel. It is not safe for
// concurrent use; the link runs on one goroutine.
type Session struct {
	account ed25519.PublicKey
	th      [32]byte
	code    string
	send    cipherState
	recv    cipherState
}

type cipherState struct {
	key [32]byte
	seq uint32
}

// keys runs the key schedule shared by both sides.
func keys(p *Payload, ephPub []byte, account ed25519.PublicKey, dh []byte) (th [32]byte, confirm, p2c, c2p []byte, code string, err error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return
	}
	w := wire.NewWriter(128 + len(pb))
	w.String(labelTranscript)
	w.Var(pb)
	w.Fixed(ephPub)
	w.Fixed(account)
	th = sha256.Sum256(w.Bytes())
	prk, err := hkdf.Extract(sha256.New, dh, p.Secret[:])
	if err != nil {
		return
	}
	expand := func(label string, n int) []byte {
		if err != nil {
			return nil
		}
		var out []byte
		out, err = hkdf.Expand(sha256.New, prk, label+string(th[:]), n)
		return out
	}
	confirm = expand(labelConfirm, 32)
	p2c = expand(labelP2C, 32)
	c2p = expand(labelC2P, 32)
	cc := expand(labelCheckCode, 8)
	if err != nil {
		return
	}
	n := binary.BigEndian.Uint64(cc) % 1_000_000
	code = fmt.Sprintf("%03d %03d", n/1000, n%1000)
	return
}

func confirmTag(key []byte, th [32]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(th[:])
	return m.Sum(nil)
}

// StartPrimary is the primary's first step after parsing the payload and
// checking it has not expired: it makes an ephemeral X25519 key (32 bytes
// from rand, nil: crypto/rand) and returns the session and the hello to
// send to the companion through the relay. account is the account public
// key the companion will be asked to join.
//
// hello = u8 1 ‖ link id (16) ‖ ephemeral public (32) ‖ account (32) ‖
// confirm tag (32).
func StartPrimary(rnd io.Reader, p *Payload, account ed25519.PublicKey, now time.Time) (*Session, []byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(account) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%w: account key of %d bytes", ErrMalformed, len(account))
	}
	if err := p.CheckExpiry(now); err != nil {
		return nil, nil, err
	}
	seed := make([]byte, 32)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return nil, nil, fmt.Errorf("link: reading randomness: %w", err)
	}
	eph := [x25519.Size]byte(seed)
	clear(seed)
	dhOut, err := x25519.X25519(&eph, &p.LinkPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: link key: %v", ErrMalformed, err)
	}
	dh := dhOut[:]
	ephPubA := x25519.PublicKey(&eph)
	clear(eph[:])
	ephPub := ephPubA[:]
	th, confirm, p2c, c2p, code, err := keys(p, ephPub, account, dh)
	if err != nil {
		return nil, nil, err
	}
	w := wire.NewWriter(1 + 16 + 32 + 32 + tagSize)
	w.U8(helloVersion)
	w.Fixed(p.LinkID[:])
	w.Fixed(ephPub)
	w.Fixed(account)
	w.Fixed(confirmTag(confirm, th))
	s := &Session{account: append(ed25519.PublicKey(nil), account...), th: th, code: code}
	copy(s.send.key[:], p2c)
	copy(s.recv.key[:], c2p)
	return s, w.Bytes(), nil
}

// Accept is the companion's step on receiving the hello. It checks the
// link id, the expiry and the confirm tag (ErrBadConfirmation if the hello
// was not made with this payload's secret and link key) and returns the
// companion's session. Session.Account is the account the primary asks it
// to join.
func (c *Companion) Accept(hello []byte, now time.Time) (*Session, error) {
	if err := c.payload.CheckExpiry(now); err != nil {
		return nil, err
	}
	r := wire.NewReader(hello)
	r.Version(helloVersion)
	linkID := r.Fixed(LinkIDSize)
	ephPub := r.Fixed(32)
	account := ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	tag := r.Fixed(tagSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: hello: %w", ErrMalformed, err)
	}
	if !hmac.Equal(linkID, c.payload.LinkID[:]) {
		return nil, ErrWrongLink
	}
	dhOut, err := x25519.X25519(&c.priv, (*[x25519.Size]byte)(ephPub))
	if err != nil {
		// A low-order point: nobody honest sends one.
		return nil, ErrBadConfirmation
	}
	dh := dhOut[:]
	th, confirm, p2c, c2p, code, err := keys(&c.payload, ephPub, account, dh)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(tag, confirmTag(confirm, th)) {
		return nil, ErrBadConfirmation
	}
	s := &Session{account: account, th: th, code: code}
	copy(s.send.key[:], c2p)
	copy(s.recv.key[:], p2c)
	return s, nil
}

// CheckCode is the code both screens show, "123 456".
func (s *Session) CheckCode() string { return s.code }

// Account is the account public key carried in the hello.
func (s *Session) Account() ed25519.PublicKey { return s.account }

func nonce(seq uint32) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	binary.BigEndian.PutUint32(n[8:], seq)
	return n
}

func ad(th [32]byte, seq uint32) []byte {
	w := wire.NewWriter(32 + 5)
	w.Fixed(th[:])
	w.U8(messageVersion)
	w.U32(seq)
	return w.Bytes()
}

// Seal encrypts the next message to the other side:
// u8 1 ‖ u32 seq ‖ ChaCha20-Poly1305(key, nonce = 0^8 ‖ u32 seq,
// plaintext, ad = transcript hash ‖ u8 1 ‖ u32 seq).
func (s *Session) Seal(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxMessageSize)
	}
	if s.send.seq >= MaxMessages {
		return nil, fmt.Errorf("%w: message limit reached", ErrTooLarge)
	}
	aead, err := chacha20poly1305.New(s.send.key[:])
	if err != nil {
		return nil, err
	}
	seq := s.send.seq
	w := wire.NewWriter(overhead + len(plaintext))
	w.U8(messageVersion)
	w.U32(seq)
	out := aead.Seal(w.Bytes(), nonce(seq), plaintext, ad(s.th, seq))
	s.send.seq++
	return out, nil
}

// Open decrypts the next message from the other side. Messages must arrive
// in order, each once (ErrReplay otherwise); a failed Open leaves the
// session unchanged.
func (s *Session) Open(msg []byte) ([]byte, error) {
	if len(msg) > overhead+MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	r := wire.NewReader(msg)
	r.Version(messageVersion)
	seq := r.U32()
	if r.Err() == nil && r.Remaining() < chacha20poly1305.Overhead {
		r.Fail(wire.ErrShort)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: message: %w", ErrMalformed, err)
	}
	if seq != s.recv.seq {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrReplay, seq, s.recv.seq)
	}
	aead, err := chacha20poly1305.New(s.recv.key[:])
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce(seq), msg[5:], ad(s.th, seq))
	if err != nil {
		return nil, ErrDecrypt
	}
	s.recv.seq++
	return pt, nil
}
