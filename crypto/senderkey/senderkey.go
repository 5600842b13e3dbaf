// Package senderkey is Parley's group encryption: each device that sends to
// a group owns a sender-key chain (a symmetric hash ratchet plus an Ed25519
// signing key), hands it to every other member device once over the
// pairwise Double Ratchet sessions (a Distribution), and then encrypts each
// group message once, for the relay to fan out. docs/PROTOCOL.md section 6
// is the specification this package follows.
//
// Most callers want:
//
//   - NewSender when this device first sends to a group, and again (a new
//     chain id, chain key and signing key) whenever the group's membership
//     changes, so a removed device cannot read what follows and a new one
//     cannot read what came before.
//   - Sender.Distribution, marshaled and sent to each member device over its
//     pairwise session; NewReceiver on the receiving side.
//   - Sender.Encrypt and Receiver.Decrypt for each message; MessageChainID to
//     find the Receiver a message belongs to.
//   - MarshalBinary / UnmarshalSender / UnmarshalReceiver for sealed storage.
//
// Every member holds the chain key, so the AEAD alone would let any member
// forge messages in another member's name; the per-message signature under
// the sender's signing key is what authenticates the sender. Decrypt checks
// it before touching the chain, and, like the ratchet, is transactional:
// any error leaves the Receiver unchanged.
//
// SetEd25519 lets the browser binding sign and verify with WebCrypto, which
// is several times faster than Go compiled to wasm; the default is
// crypto/ed25519.
package senderkey

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-im/parley/crypto/wire"
)

// Limits.
const (
	// MaxSkip is how far ahead of the next expected iteration a message may
	// be; it bounds the HMACs a (signed) message can make a receiver compute.
	MaxSkip = 1000
	// MaxSkippedKeys caps the message keys a Receiver keeps for messages not
	// yet arrived; the oldest are deleted first.
	MaxSkippedKeys = 1000
	// MaxGroupIDSize bounds a group id (an opaque id chosen by the client).
	MaxGroupIDSize = 64
	// MaxPlaintextSize bounds one group message; attachments go as blobs.
	MaxPlaintextSize = 256 << 10

	// ChainIDSize is the random id of one sender chain.
	ChainIDSize = 16
	// KeySize is the size of chain and message keys.
	KeySize = 32
	// HeaderSize is version || chain id || iteration.
	HeaderSize = 1 + ChainIDSize + 4
	// Overhead is how much longer a message is than its plaintext.
	Overhead = HeaderSize + 4 + chacha20poly1305.Overhead + ed25519.SignatureSize
	// MaxMessageSize is the largest message Decrypt accepts.
	MaxMessageSize = MaxPlaintextSize + Overhead
)

// Format versions.
const (
	MessageVersion      = 1
	DistributionVersion = 1
	SenderVersion       = 1
	ReceiverVersion     = 1
)

// PurposeMessage is the domain-separation label of the per-message
// signature (the same "wire string then message" construction as
// identity.SigningInput).
const PurposeMessage = "parley/v1/sender-key-message"

// Errors, for errors.Is.
var (
	ErrAuth           = errors.New("senderkey: message authentication failed")
	ErrBadSignature   = errors.New("senderkey: bad message signature")
	ErrDuplicate      = errors.New("senderkey: message already decrypted (duplicate or replay)")
	ErrTooManySkipped = errors.New("senderkey: message is more than MaxSkip iterations ahead")
	ErrUnknownChain   = errors.New("senderkey: message is for another sender chain")
	ErrMalformed      = errors.New("senderkey: malformed encoding")
	ErrTooLarge       = errors.New("senderkey: plaintext exceeds MaxPlaintextSize")
	ErrExhausted      = errors.New("senderkey: chain iteration exhausted")
)

// Ed25519 is a signature implementation that can replace crypto/ed25519
// for group messages. The numbers say it is worth it in the browser: in
// Go-wasm an Ed25519 sign plus verify costs ≈ 430 µs, most of a group
// message, where WebCrypto takes ≈ 90 µs. It must be RFC 8032 Ed25519
// (deterministic: the test vectors still hold).
type Ed25519 interface {
	Sign(priv ed25519.PrivateKey, message []byte) ([]byte, error)
	Verify(pub ed25519.PublicKey, message, sig []byte) bool
}

var signatures atomic.Pointer[Ed25519]

// SetEd25519 installs impl for every later Encrypt and Decrypt in the
// process; nil restores crypto/ed25519. Call it once at start-up.
func SetEd25519(impl Ed25519) {
	if impl == nil {
		signatures.Store(nil)
		return
	}
	signatures.Store(&impl)
}

func sign(priv ed25519.PrivateKey, msg []byte) ([]byte, error) {
	if impl := signatures.Load(); impl != nil {
		return (*impl).Sign(priv, msg)
	}
	return ed25519.Sign(priv, msg), nil
}

func verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if impl := signatures.Load(); impl != nil {
		return (*impl).Verify(pub, msg, sig)
	}
	return ed25519.Verify(pub, msg, sig)
}

// chainStep is Signal's sender-key KDF: mk = HMAC-SHA256(ck, 0x01),
// ck' = HMAC-SHA256(ck, 0x02).
func chainStep(ck *[KeySize]byte) (mk, next [KeySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{0x01})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{0x02})
	h.Sum(next[:0])
	return mk, next
}

func checkGroupID(id []byte) error {
	if len(id) == 0 || len(id) > MaxGroupIDSize {
		return fmt.Errorf("%w: group id of %d bytes (1..%d)", ErrMalformed, len(id), MaxGroupIDSize)
	}
	return nil
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// signingInput is wire string(PurposeMessage) || var(group id) || the
// message up to its signature.
func signingInput(groupID, body []byte) []byte {
	w := wire.NewWriter(4 + len(PurposeMessage) + 4 + len(groupID) + len(body))
	w.String(PurposeMessage)
	w.Var(groupID)
	w.Fixed(body)
	return w.Bytes()
}

// aeadAD is var(group id) || header.
func aeadAD(groupID, header []byte) []byte {
	w := wire.NewWriter(4 + len(groupID) + len(header))
	w.Var(groupID)
	w.Fixed(header)
	return w.Bytes()
}

// Sender is this device's own chain in one group.
type Sender struct {
	groupID   []byte
	chainID   [ChainIDSize]byte
	iteration uint32
	chainKey  [KeySize]byte
	sign      ed25519.PrivateKey
}

// NewSender makes a new chain for groupID, reading 16 bytes (chain id), 32
// bytes (chain key) and 32 bytes (Ed25519 seed) from rand in that order
// (nil: crypto/rand).
func NewSender(r io.Reader, groupID []byte) (*Sender, error) {
	if err := checkGroupID(groupID); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	var b [ChainIDSize + KeySize + ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("senderkey: reading randomness: %w", err)
	}
	s := &Sender{groupID: append([]byte(nil), groupID...)}
	copy(s.chainID[:], b[:ChainIDSize])
	copy(s.chainKey[:], b[ChainIDSize:ChainIDSize+KeySize])
	s.sign = ed25519.NewKeyFromSeed(b[ChainIDSize+KeySize:])
	clear(b[:])
	return s, nil
}

// ChainID identifies this chain; it changes with every NewSender.
func (s *Sender) ChainID() [ChainIDSize]byte { return s.chainID }

// GroupID returns a copy of the group id.
func (s *Sender) GroupID() []byte { return append([]byte(nil), s.groupID...) }

// Distribution is what a new member device needs to read this chain from
// the next message on: it holds the current chain key, so it can decrypt
// nothing sent before it was made.
func (s *Sender) Distribution() *Distribution {
	return &Distribution{
		GroupID:    append([]byte(nil), s.groupID...),
		ChainID:    s.chainID,
		Iteration:  s.iteration,
		ChainKey:   s.chainKey,
		SigningKey: append(ed25519.PublicKey(nil), s.sign.Public().(ed25519.PublicKey)...),
	}
}

// Encrypt encrypts and signs one group message and advances the chain.
func (s *Sender) Encrypt(plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, ErrTooLarge
	}
	if s.iteration == math.MaxUint32 {
		return nil, ErrExhausted
	}
	mk, next := chainStep(&s.chainKey)
	w := wire.NewWriter(Overhead + len(plaintext))
	w.U8(MessageVersion)
	w.Fixed(s.chainID[:])
	w.U32(s.iteration)
	w.U32(uint32(len(plaintext) + chacha20poly1305.Overhead))
	msg := w.Bytes()
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, err
	}
	msg = aead.Seal(msg, zeroNonce[:], plaintext, aeadAD(s.groupID, msg[:HeaderSize]))
	sig, err := sign(s.sign, signingInput(s.groupID, msg))
	if err != nil {
		return nil, fmt.Errorf("senderkey: signing: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("senderkey: signing: %d-byte signature", len(sig))
	}
	msg = append(msg, sig...)
	s.chainKey = next
	s.iteration++
	clear(mk[:])
	return msg, nil
}

// MarshalBinary encodes u8 version (1) || var group id || chain id (16) ||
// u32 iteration || chain key (32) || Ed25519 seed (32).
func (s *Sender) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + 4 + len(s.groupID) + ChainIDSize + 4 + KeySize + ed25519.SeedSize)
	w.U8(SenderVersion)
	w.Var(s.groupID)
	w.Fixed(s.chainID[:])
	w.U32(s.iteration)
	w.Fixed(s.chainKey[:])
	w.Fixed(s.sign.Seed())
	return w.Bytes(), nil
}

// UnmarshalSender decodes Sender.MarshalBinary's output.
func UnmarshalSender(b []byte) (*Sender, error) {
	s := &Sender{}
	r := wire.NewReader(b)
	r.Version(SenderVersion)
	s.groupID = r.Var(MaxGroupIDSize)
	r.FixedInto(s.chainID[:])
	s.iteration = r.U32()
	r.FixedInto(s.chainKey[:])
	seed := r.Fixed(ed25519.SeedSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: sender state: %w", ErrMalformed, err)
	}
	if err := checkGroupID(s.groupID); err != nil {
		return nil, err
	}
	s.sign = ed25519.NewKeyFromSeed(seed)
	return s, nil
}

// Distribution carries one sender chain to one member device. It is secret
// (it holds the chain key) and must only travel inside a pairwise session,
// which also authenticates who sent it.
type Distribution struct {
	GroupID    []byte
	ChainID    [ChainIDSize]byte
	Iteration  uint32
	ChainKey   [KeySize]byte
	SigningKey ed25519.PublicKey
}

// MarshalBinary encodes u8 version (1) || var group id || chain id (16) ||
// u32 iteration || chain key (32) || Ed25519 public key (32).
func (d *Distribution) MarshalBinary() ([]byte, error) {
	if err := checkGroupID(d.GroupID); err != nil {
		return nil, err
	}
	if len(d.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signing key of %d bytes", ErrMalformed, len(d.SigningKey))
	}
	w := wire.NewWriter(1 + 4 + len(d.GroupID) + ChainIDSize + 4 + KeySize + ed25519.PublicKeySize)
	w.U8(DistributionVersion)
	w.Var(d.GroupID)
	w.Fixed(d.ChainID[:])
	w.U32(d.Iteration)
	w.Fixed(d.ChainKey[:])
	w.Fixed(d.SigningKey)
	return w.Bytes(), nil
}

// UnmarshalDistribution decodes Distribution.MarshalBinary's output.
func UnmarshalDistribution(b []byte) (*Distribution, error) {
	d := &Distribution{}
	r := wire.NewReader(b)
	r.Version(DistributionVersion)
	d.GroupID = r.Var(MaxGroupIDSize)
	r.FixedInto(d.ChainID[:])
	d.Iteration = r.U32()
	r.FixedInto(d.ChainKey[:])
	d.SigningKey = r.Fixed(ed25519.PublicKeySize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: distribution: %w", ErrMalformed, err)
	}
	if err := checkGroupID(d.GroupID); err != nil {
		return nil, err
	}
	return d, nil
}

type skippedKey struct {
	iteration uint32
	mk        [KeySize]byte
}

// Receiver reads one other device's chain in one group.
type Receiver struct {
	groupID    []byte
	chainID    [ChainIDSize]byte
	signingKey ed25519.PublicKey
	iteration  uint32 // the next iteration expected
	chainKey   [KeySize]byte
	skipped    []skippedKey // oldest first
}

// GroupID returns the group id the chain is bound to.
func (r *Receiver) GroupID() []byte { return append([]byte(nil), r.groupID...) }

// NewReceiver starts reading the chain d describes.
func NewReceiver(d *Distribution) (*Receiver, error) {
	if err := checkGroupID(d.GroupID); err != nil {
		return nil, err
	}
	if len(d.SigningKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signing key of %d bytes", ErrMalformed, len(d.SigningKey))
	}
	return &Receiver{
		groupID:    append([]byte(nil), d.GroupID...),
		chainID:    d.ChainID,
		signingKey: append(ed25519.PublicKey(nil), d.SigningKey...),
		iteration:  d.Iteration,
		chainKey:   d.ChainKey,
	}, nil
}

// ChainID is the chain this Receiver reads.
func (r *Receiver) ChainID() [ChainIDSize]byte { return r.chainID }

// SkippedKeys is the number of keys kept for messages not yet arrived.
func (r *Receiver) SkippedKeys() int { return len(r.skipped) }

type message struct {
	chainID   [ChainIDSize]byte
	iteration uint32
	ct        []byte
	sig       [ed25519.SignatureSize]byte
}

func parseMessage(b []byte) (message, error) {
	var m message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("%w: message of %d bytes, limit %d", ErrMalformed, len(b), MaxMessageSize)
	}
	r := wire.NewReader(b)
	r.Version(MessageVersion)
	r.FixedInto(m.chainID[:])
	m.iteration = r.U32()
	m.ct = r.Var(MaxPlaintextSize + chacha20poly1305.Overhead)
	r.FixedInto(m.sig[:])
	if err := r.Finish(); err != nil {
		return m, fmt.Errorf("%w: message: %w", ErrMalformed, err)
	}
	if len(m.ct) < chacha20poly1305.Overhead {
		return m, fmt.Errorf("%w: ciphertext shorter than the tag", ErrMalformed)
	}
	return m, nil
}

// MessageChainID returns the chain id and iteration of a group message, so
// the caller can pick the Receiver (and drop a message for a chain it no
// longer keeps) before decrypting.
func MessageChainID(msg []byte) ([ChainIDSize]byte, uint32, error) {
	m, err := parseMessage(msg)
	return m.chainID, m.iteration, err
}

// Decrypt verifies and decrypts a group message. On any error r is
// unchanged.
func (r *Receiver) Decrypt(msg []byte) ([]byte, error) {
	m, err := parseMessage(msg)
	if err != nil {
		return nil, err
	}
	if m.chainID != r.chainID {
		return nil, ErrUnknownChain
	}
	body := msg[:len(msg)-ed25519.SignatureSize]
	if !verify(r.signingKey, signingInput(r.groupID, body), m.sig[:]) {
		return nil, ErrBadSignature
	}
	ad := aeadAD(r.groupID, msg[:HeaderSize])

	if m.iteration < r.iteration {
		for i := range r.skipped {
			k := &r.skipped[i]
			if k.iteration == m.iteration {
				pt, err := open(&k.mk, m.ct, ad)
				if err != nil {
					return nil, err
				}
				clear(k.mk[:])
				r.skipped = append(r.skipped[:i], r.skipped[i+1:]...)
				return pt, nil
			}
		}
		return nil, ErrDuplicate
	}
	if m.iteration-r.iteration > MaxSkip {
		return nil, fmt.Errorf("%w: %d iterations ahead", ErrTooManySkipped, m.iteration-r.iteration)
	}
	ck := r.chainKey
	var skipped []skippedKey
	for n := r.iteration; n < m.iteration; n++ {
		mk, next := chainStep(&ck)
		skipped = append(skipped, skippedKey{iteration: n, mk: mk})
		ck = next
	}
	mk, next := chainStep(&ck)
	pt, err := open(&mk, m.ct, ad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	r.chainKey = next
	r.iteration = m.iteration + 1
	if len(skipped) > 0 {
		r.skipped = append(r.skipped, skipped...)
		if n := len(r.skipped) - MaxSkippedKeys; n > 0 {
			for i := range r.skipped[:n] {
				clear(r.skipped[i].mk[:])
			}
			r.skipped = append(r.skipped[:0], r.skipped[n:]...)
		}
	}
	return pt, nil
}

func open(mk *[KeySize]byte, ct, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(ct[:0], zeroNonce[:], ct, ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// MarshalBinary encodes u8 version (1) || var group id || chain id (16) ||
// Ed25519 public key (32) || u32 next iteration || chain key (32) || u32
// count (≤ MaxSkippedKeys) of (u32 iteration || message key (32)), oldest
// first.
func (r *Receiver) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + 4 + len(r.groupID) + ChainIDSize + 32 + 4 + KeySize + 4 + len(r.skipped)*(4+KeySize))
	w.U8(ReceiverVersion)
	w.Var(r.groupID)
	w.Fixed(r.chainID[:])
	w.Fixed(r.signingKey)
	w.U32(r.iteration)
	w.Fixed(r.chainKey[:])
	w.U32(uint32(len(r.skipped)))
	for i := range r.skipped {
		w.U32(r.skipped[i].iteration)
		w.Fixed(r.skipped[i].mk[:])
	}
	return w.Bytes(), nil
}

// UnmarshalReceiver decodes Receiver.MarshalBinary's output. Skipped keys
// must be for distinct iterations before the next expected one.
func UnmarshalReceiver(b []byte) (*Receiver, error) {
	rc := &Receiver{}
	r := wire.NewReader(b)
	r.Version(ReceiverVersion)
	rc.groupID = r.Var(MaxGroupIDSize)
	r.FixedInto(rc.chainID[:])
	rc.signingKey = r.Fixed(ed25519.PublicKeySize)
	rc.iteration = r.U32()
	r.FixedInto(rc.chainKey[:])
	if n := r.Count(MaxSkippedKeys); n > 0 {
		rc.skipped = make([]skippedKey, n)
		seen := make(map[uint32]struct{}, n)
		for i := range rc.skipped {
			k := &rc.skipped[i]
			k.iteration = r.U32()
			r.FixedInto(k.mk[:])
			if _, dup := seen[k.iteration]; r.Err() == nil && (dup || k.iteration >= rc.iteration) {
				r.Fail(fmt.Errorf("%w: skipped key for iteration %d", ErrMalformed, k.iteration))
			}
			seen[k.iteration] = struct{}{}
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: receiver state: %w", ErrMalformed, err)
	}
	if err := checkGroupID(rc.groupID); err != nil {
		return nil, err
	}
	return rc, nil
}
