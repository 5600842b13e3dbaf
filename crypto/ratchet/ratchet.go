// Package ratchet is Parley's Double Ratchet: the per-device-pair session
// that encrypts every pairwise message after PQXDH (package pqxdh) has
// agreed on a shared secret. docs/PROTOCOL.md section 5 is the
// specification this package follows, KDF by KDF and byte by byte.
//
// Most callers want:
//
//   - pqxdh.Initiate / pqxdh.Respond, which return a ready *State. NewInitiator
//     and NewResponder are the lower-level constructors they use.
//   - State.Encrypt and State.Decrypt for every message afterwards.
//   - State.MarshalBinary and Unmarshal to keep the state in sealed storage.
//     The state MUST be persisted together with the message it produced or
//     consumed (one atomic write): a ratchet that is rolled back re-uses
//     message keys.
//
// Decrypt is transactional: it works on local copies and commits to the
// State only when the message authenticates, so a tampered, replayed,
// duplicated or too-far-ahead message returns a sentinel error (ErrAuth,
// ErrDuplicate, ErrTooManySkipped, ErrMalformed) and leaves the state
// exactly as it was.
//
// Messages are encrypted with ChaCha20-Poly1305 rather than AES-GCM because
// the client runs as Go compiled to WebAssembly, where AES has no hardware
// support: measured, AES-GCM is 85–110× slower than native there, and
// ChaCha20-Poly1305 10–15× (PROTOCOL.md section 5.1).
//
// A State is not safe for concurrent use; the engine owns one per session.
package ratchet

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

// Limits. Each is enforced before any work that it bounds.
const (
	// MaxSkip is how many message keys one message may make the receiver
	// derive and keep for messages not yet arrived, per chain. It bounds the
	// work a forged header can cause (MaxSkip HMACs) and the state growth,
	// while tolerating a long burst of lost or reordered messages.
	MaxSkip = 1000
	// MaxSkippedKeys caps the skipped message keys a State keeps in total.
	// When a new skip would exceed it, the oldest keys are deleted first (a
	// message that old is treated as lost). 2×MaxSkip so that one message can
	// close the old chain and skip into the new one.
	MaxSkippedKeys = 2 * MaxSkip
	// MaxPreviousChains is how many earlier receiving ratchet keys a State
	// remembers so that a replay from a closed chain is reported as
	// ErrDuplicate at no cost instead of triggering a DH computation.
	MaxPreviousChains = 8
	// MaxPlaintextSize bounds one message. Attachments travel as separately
	// encrypted blobs referenced from a message, never inline.
	MaxPlaintextSize = 256 << 10
	// MaxADSize bounds the session associated data (both identities).
	MaxADSize = 1024

	// KeySize is the size of root, chain and message keys and of X25519 keys.
	KeySize = 32
	// HeaderSize is the encoded header: version || ratchet key || PN || N.
	HeaderSize = 1 + KeySize + 4 + 4
	// Overhead is how much longer a message is than its plaintext: the
	// header, the ciphertext length and the Poly1305 tag.
	Overhead = HeaderSize + 4 + chacha20poly1305.Overhead
	// MaxMessageSize is the largest message Decrypt accepts.
	MaxMessageSize = MaxPlaintextSize + Overhead
)

// Format versions.
const (
	MessageVersion = 1
	StateVersion   = 1
)

// KDF labels (HKDF info strings), listed in PROTOCOL.md section 5.2.
const (
	labelInit = "parley/v1/ratchet/init"
	labelRoot = "parley/v1/ratchet/root"
)

// Errors, for errors.Is.
var (
	// ErrAuth: the message did not authenticate (tampered, forged, or for
	// another session). The state is unchanged.
	ErrAuth = errors.New("ratchet: message authentication failed")
	// ErrDuplicate: the message's key was already used and deleted, so this
	// is a replay or a duplicate delivery. The state is unchanged.
	ErrDuplicate = errors.New("ratchet: message already decrypted (duplicate or replay)")
	// ErrTooManySkipped: accepting the message would skip more than MaxSkip
	// keys in one chain. The state is unchanged; later messages that are
	// within the window still decrypt.
	ErrTooManySkipped = errors.New("ratchet: message is more than MaxSkip messages ahead")
	// ErrMalformed: the message is not a well-formed version-1 message.
	ErrMalformed = errors.New("ratchet: malformed message")
	// ErrTooLarge: the plaintext exceeds MaxPlaintextSize.
	ErrTooLarge = errors.New("ratchet: plaintext exceeds MaxPlaintextSize")
	// ErrBadState: a stored state failed to decode or violates an invariant.
	ErrBadState = errors.New("ratchet: invalid state encoding")
	// ErrExhausted: a chain reached 2^32-1 messages (never in practice).
	ErrExhausted = errors.New("ratchet: message counter exhausted")
)

// skippedKey is a message key kept for a message that has not arrived yet.
type skippedKey struct {
	dh [KeySize]byte // the sender's ratchet public key of its chain
	n  uint32
	mk [KeySize]byte
}

// State is one side of a Double Ratchet session.
//
// It always holds a sending chain, a receiving chain, or both. After a
// receive step the sending half is empty until the next Encrypt, which does
// the deferred send step (new ratchet key, one DH): this keeps a DH step at
// three X25519 operations in total (one on receive, keygen plus one on
// send) and means the old ratchet private key is deleted as soon as it has
// served.
type State struct {
	rootKey [KeySize]byte
	ad      []byte

	sending bool          // dhsPriv, dhsPub and sendCK are set
	dhsPriv [KeySize]byte // our current ratchet private key
	dhsPub  [KeySize]byte // its public key, cached (a scalar mult to recompute)
	sendCK  [KeySize]byte
	ns, pn  uint32

	receiving bool          // dhr and recvCK are set
	dhr       [KeySize]byte // the peer's current ratchet public key
	recvCK    [KeySize]byte
	nr        uint32

	previous [][KeySize]byte // closed receiving ratchet keys, newest last
	skipped  []skippedKey    // oldest first

	adBuf []byte // scratch: ad || header, reused across calls
}

// Header is a message header, sent in clear and authenticated.
type Header struct {
	RatchetKey [KeySize]byte // the sender's current ratchet public key
	PN         uint32        // messages in the sender's previous sending chain
	N          uint32        // this message's number in its chain
}

func checkAD(ad []byte) error {
	if len(ad) > MaxADSize {
		return fmt.Errorf("ratchet: associated data of %d bytes, limit %d", len(ad), MaxADSize)
	}
	return nil
}

// initKeys derives the first root key and the first chain key from the
// PQXDH secret: HKDF-SHA256(ikm=sk, salt=none, info=labelInit), 64 bytes.
func initKeys(sk []byte) (rk, ck [KeySize]byte, err error) {
	if len(sk) != KeySize {
		return rk, ck, fmt.Errorf("ratchet: shared secret of %d bytes, want %d", len(sk), KeySize)
	}
	out, err := hkdf.Key(sha256.New, sk, nil, labelInit, 2*KeySize)
	if err != nil {
		return rk, ck, err
	}
	copy(rk[:], out[:KeySize])
	copy(ck[:], out[KeySize:])
	return rk, ck, nil
}

// NewInitiator starts the initiator's side. sk is the 32-byte PQXDH secret,
// ad the session associated data (both identities), and ratchetPriv the
// initiator's first ratchet key: PQXDH uses its ephemeral key, whose public
// half the responder already has from the initial message. The first
// sending chain key comes from sk directly, so the first message costs no
// DH of its own.
func NewInitiator(sk, ad []byte, ratchetPriv [KeySize]byte) (*State, error) {
	if err := checkAD(ad); err != nil {
		return nil, err
	}
	rk, ck, err := initKeys(sk)
	if err != nil {
		return nil, err
	}
	s := &State{rootKey: rk, ad: append([]byte(nil), ad...), sending: true,
		dhsPriv: ratchetPriv, sendCK: ck}
	s.dhsPub = x25519.PublicKey(&ratchetPriv)
	return s, nil
}

// NewResponder starts the responder's side from the same sk and ad and the
// initiator's first ratchet public key (its PQXDH ephemeral key). The
// responder's receiving chain is the initiator's first sending chain; its
// first Encrypt makes its first ratchet key.
func NewResponder(sk, ad []byte, peerRatchetPub [KeySize]byte) (*State, error) {
	if err := checkAD(ad); err != nil {
		return nil, err
	}
	rk, ck, err := initKeys(sk)
	if err != nil {
		return nil, err
	}
	return &State{rootKey: rk, ad: append([]byte(nil), ad...), receiving: true,
		dhr: peerRatchetPub, recvCK: ck}, nil
}

// kdfRoot is KDF_RK: HKDF-SHA256(salt=rk, ikm=dh, info=labelRoot), 64
// bytes split into the new root key and a chain key.
func kdfRoot(rk, dh *[KeySize]byte) (newRK, ck [KeySize]byte) {
	out, err := hkdf.Key(sha256.New, dh[:], rk[:], labelRoot, 2*KeySize)
	if err != nil {
		panic("ratchet: HKDF failed: " + err.Error()) // only on absurd lengths
	}
	copy(newRK[:], out[:KeySize])
	copy(ck[:], out[KeySize:])
	return newRK, ck
}

// chainStep is KDF_CK: mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck,
// 0x02). One HMAC instance serves both so the keyed pad blocks are hashed
// once.
func chainStep(ck *[KeySize]byte) (mk, next [KeySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{0x01})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{0x02})
	h.Sum(next[:0])
	return mk, next
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// Encrypt encrypts plaintext and advances the sending chain. rand (nil:
// crypto/rand) is read only when a send step makes a new ratchet key.
func (s *State) Encrypt(rand io.Reader, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, ErrTooLarge
	}
	if !s.sending {
		if err := s.sendStep(rand); err != nil {
			return nil, err
		}
	}
	if s.ns == math.MaxUint32 {
		return nil, ErrExhausted
	}
	mk, next := chainStep(&s.sendCK)

	w := wire.NewWriter(Overhead + len(plaintext))
	w.U8(MessageVersion)
	w.Fixed(s.dhsPub[:])
	w.U32(s.pn)
	w.U32(s.ns)
	w.U32(uint32(len(plaintext) + chacha20poly1305.Overhead))
	msg := w.Bytes()

	aead, err := chacha20poly1305.New(mk[:])
	if err != nil {
		return nil, err
	}
	msg = aead.Seal(msg, zeroNonce[:], plaintext, s.assoc(msg[:HeaderSize]))
	s.sendCK = next
	s.ns++
	clear(mk[:])
	return msg, nil
}

// sendStep is the deferred half of a DH ratchet step: a new ratchet key
// pair and KDF_RK over DH(new key, peer's ratchet key).
func (s *State) sendStep(r io.Reader) error {
	if !s.receiving {
		return ErrBadState // unreachable: a state always has one of the chains
	}
	if r == nil {
		r = rand.Reader
	}
	priv, pub, err := x25519.GenerateKey(r)
	if err != nil {
		return fmt.Errorf("ratchet: generating ratchet key: %w", err)
	}
	dh, err := x25519.X25519(&priv, &s.dhr)
	if err != nil {
		return fmt.Errorf("ratchet: peer ratchet key: %w", err)
	}
	s.rootKey, s.sendCK = kdfRoot(&s.rootKey, &dh)
	clear(dh[:])
	s.dhsPriv, s.dhsPub = priv, pub
	s.pn, s.ns = s.ns, 0
	s.sending = true
	return nil
}

// assoc returns ad || header in the reused scratch buffer.
func (s *State) assoc(header []byte) []byte {
	s.adBuf = append(append(s.adBuf[:0], s.ad...), header...)
	return s.adBuf
}

// ParseHeader decodes the header of a message without decrypting it.
func ParseHeader(msg []byte) (Header, error) {
	h, _, err := parse(msg)
	return h, err
}

// parse splits a message into its header and ciphertext. The ciphertext is
// a copy (wire.Reader never aliases its input), which Decrypt then opens in
// place, so decryption allocates the plaintext buffer only once.
func parse(msg []byte) (Header, []byte, error) {
	var h Header
	if len(msg) > MaxMessageSize {
		return h, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(msg), MaxMessageSize)
	}
	r := wire.NewReader(msg)
	r.Version(MessageVersion)
	r.FixedInto(h.RatchetKey[:])
	h.PN = r.U32()
	h.N = r.U32()
	ct := r.Var(MaxPlaintextSize + chacha20poly1305.Overhead)
	if err := r.Finish(); err != nil {
		return h, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(ct) < chacha20poly1305.Overhead {
		return h, nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrMalformed)
	}
	return h, ct, nil
}

// pending collects what a successful Decrypt commits.
type pending struct {
	step    bool // a receive step: new root key, new receiving chain
	rootKey [KeySize]byte
	recvCK  [KeySize]byte
	nr      uint32
	skipped []skippedKey
}

// Decrypt authenticates and decrypts msg. On any error the State is
// unchanged.
func (s *State) Decrypt(msg []byte) ([]byte, error) {
	h, ct, err := parse(msg)
	if err != nil {
		return nil, err
	}
	ad := s.assoc(msg[:HeaderSize])

	// A key kept for a message that had not arrived yet.
	for i := range s.skipped {
		k := &s.skipped[i]
		if k.n == h.N && hmac.Equal(k.dh[:], h.RatchetKey[:]) {
			pt, err := open(&k.mk, ct, ad)
			if err != nil {
				return nil, err
			}
			clear(k.mk[:])
			s.skipped = append(s.skipped[:i], s.skipped[i+1:]...)
			return pt, nil
		}
	}

	var p pending
	var ck [KeySize]byte
	switch {
	case s.receiving && h.RatchetKey == s.dhr:
		// The current receiving chain.
		if h.N < s.nr {
			return nil, ErrDuplicate
		}
		if h.N-s.nr > MaxSkip {
			return nil, fmt.Errorf("%w: %d keys to skip", ErrTooManySkipped, h.N-s.nr)
		}
		ck = s.recvCK
		p.skipped = skipKeys(nil, &ck, s.dhr, s.nr, h.N)
	default:
		// A new ratchet key from the peer: a receive step.
		for i := range s.previous {
			if s.previous[i] == h.RatchetKey {
				return nil, ErrDuplicate
			}
		}
		if !s.sending {
			// We have not sent since our last receive step, so the peer
			// cannot have a new ratchet key yet: not a genuine message.
			return nil, ErrAuth
		}
		if h.N > MaxSkip || (s.receiving && h.PN > s.nr && h.PN-s.nr > MaxSkip) {
			return nil, fmt.Errorf("%w: header PN %d, N %d", ErrTooManySkipped, h.PN, h.N)
		}
		if s.receiving && h.PN > s.nr {
			old := s.recvCK
			p.skipped = skipKeys(nil, &old, s.dhr, s.nr, h.PN)
		}
		dh, err := x25519.X25519(&s.dhsPriv, &h.RatchetKey)
		if err != nil {
			return nil, ErrAuth
		}
		p.step = true
		p.rootKey, ck = kdfRoot(&s.rootKey, &dh)
		clear(dh[:])
		p.skipped = skipKeys(p.skipped, &ck, h.RatchetKey, 0, h.N)
	}
	mk, next := chainStep(&ck)
	pt, err := open(&mk, ct, ad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}

	// Authenticated: commit.
	if p.step {
		if s.receiving {
			s.previous = append(s.previous, s.dhr)
			if n := len(s.previous) - MaxPreviousChains; n > 0 {
				s.previous = append(s.previous[:0], s.previous[n:]...)
			}
		}
		s.rootKey = p.rootKey
		s.dhr = h.RatchetKey
		s.receiving = true
		// Our ratchet private key has served its last DH: delete it now and
		// make a new one at the next Encrypt.
		clear(s.dhsPriv[:])
		clear(s.sendCK[:])
		s.sending = false
	}
	s.recvCK = next
	s.nr = h.N + 1
	s.addSkipped(p.skipped)
	return pt, nil
}

// skipKeys advances ck from message from to message to (exclusive),
// appending the message keys to dst.
func skipKeys(dst []skippedKey, ck *[KeySize]byte, dh [KeySize]byte, from, to uint32) []skippedKey {
	for n := from; n < to; n++ {
		mk, next := chainStep(ck)
		dst = append(dst, skippedKey{dh: dh, n: n, mk: mk})
		*ck = next
	}
	return dst
}

func (s *State) addSkipped(keys []skippedKey) {
	if len(keys) == 0 {
		return
	}
	s.skipped = append(s.skipped, keys...)
	if n := len(s.skipped) - MaxSkippedKeys; n > 0 {
		for i := range s.skipped[:n] {
			clear(s.skipped[i].mk[:])
		}
		s.skipped = append(s.skipped[:0], s.skipped[n:]...)
	}
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

// RatchetKey is the public ratchet key the next message will carry, or
// false if the next Encrypt makes a new one.
func (s *State) RatchetKey() ([KeySize]byte, bool) { return s.dhsPub, s.sending }

// SkippedKeys is the number of message keys kept for messages not yet
// arrived.
func (s *State) SkippedKeys() int { return len(s.skipped) }

// AssociatedData returns a copy of the session associated data.
func (s *State) AssociatedData() []byte { return append([]byte(nil), s.ad...) }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := *s
	c.ad = append([]byte(nil), s.ad...)
	c.previous = append([][KeySize]byte(nil), s.previous...)
	c.skipped = append([]skippedKey(nil), s.skipped...)
	c.adBuf = nil
	return &c
}
