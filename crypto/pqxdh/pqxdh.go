// Package pqxdh starts a pairwise session between two devices: Signal's
// PQXDH shape (four X25519 DHs plus an ML-KEM-768 encapsulation to a signed
// KEM prekey), ending in a Double Ratchet (package ratchet) ready to use.
// docs/PROTOCOL.md section 4 is the specification this package follows.
//
// Most callers want:
//
//   - Initiate, with the peer device's prekey bundle (from the relay) and
//     the peer device's public keys as found in its account's verified
//     device list (the pin). It checks the pin and both prekey signatures
//     and returns the session and an InitialMessage template: set its
//     Message to the session's first ratchet message and send it. Until the
//     responder's first reply decrypts, send every message this way.
//   - Respond, with the InitialMessage and a Prekeys lookup over the
//     device's private prekeys. It refuses a missing or already-used
//     one-time prekey, decrypts the first message, and only then consumes
//     the one-time prekeys through the lookup. The caller MUST check
//     InitialMessage.Initiator against the initiator account's verified
//     device list before trusting the session, and SHOULD look up an
//     existing session by InitialMessage.Ephemeral first (a repeated initial
//     message belongs to the session it already started).
//
// Everything the two sides agree on (both device keys, prekey ids and keys,
// the ephemeral key and the KEM ciphertext) is hashed into a transcript
// that the session key derivation binds, so a relay that swaps any of them
// gets two sessions that cannot talk.
package pqxdh

import (
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

// Sizes and limits.
const (
	// KEMCiphertextSize is an ML-KEM-768 ciphertext.
	KEMCiphertextSize = mlkem.CiphertextSize768
	// MaxInitialMessageSize bounds an encoded InitialMessage: the fixed
	// fields plus the largest ratchet message.
	MaxInitialMessageSize = 1 + 81 + 4 + 4 + 1 + 4 + 32 + KEMCiphertextSize + 4 + ratchet.MaxMessageSize
	// InitialMessageVersion is the format version of InitialMessage.
	InitialMessageVersion = 1
	transcriptVersion     = 1
)

// KDF labels (PROTOCOL.md section 4).
const (
	labelSession = "parley/v1/pqxdh"
)

// Errors, for errors.Is. Failures of the first ratchet message also wrap
// the ratchet error (ratchet.ErrAuth, ...).
var (
	ErrIdentityMismatch = errors.New("pqxdh: bundle is not for the pinned device")
	ErrBadSignature     = errors.New("pqxdh: bad prekey signature")
	// ErrUnknownPrekey: the signed prekey named is not (or no longer) held.
	ErrUnknownPrekey = errors.New("pqxdh: unknown signed prekey")
	// ErrOneTimePrekeyUsed: a one-time prekey named (X25519, or a KEM prekey
	// that is not last-resort) is missing or was already used.
	ErrOneTimePrekeyUsed = errors.New("pqxdh: one-time prekey missing or already used")
	ErrMalformed         = errors.New("pqxdh: malformed initial message")
	ErrKeyAgreement      = errors.New("pqxdh: key agreement failed")
)

// InitialMessage is what the initiator sends until the responder replies:
// what the responder needs to derive the session, and a ratchet message.
type InitialMessage struct {
	Initiator       identity.DevicePublic // the initiator device's public keys
	SignedPrekeyID  uint32
	KEMPrekeyID     uint32
	HasOneTime      bool
	OneTimePrekeyID uint32 // meaningful only if HasOneTime
	Ephemeral       [32]byte
	KEMCiphertext   [KEMCiphertextSize]byte
	Message         []byte // a ratchet message (ratchet.State.Encrypt)
}

// MarshalBinary encodes
//
//	u8 version (1) || initiator device public (81) || u32 signed prekey id
//	|| u32 KEM prekey id || bool has-one-time || [u32 one-time prekey id]
//	|| ephemeral (32) || KEM ciphertext (1088) || var ratchet message
func (m *InitialMessage) MarshalBinary() ([]byte, error) {
	if len(m.Initiator.SignPub) != identity.PublicKeySize {
		return nil, fmt.Errorf("%w: initiator signing key of %d bytes", ErrMalformed, len(m.Initiator.SignPub))
	}
	if len(m.Message) == 0 || len(m.Message) > ratchet.MaxMessageSize {
		return nil, fmt.Errorf("%w: ratchet message of %d bytes", ErrMalformed, len(m.Message))
	}
	w := wire.NewWriter(MaxInitialMessageSize - ratchet.MaxMessageSize + len(m.Message))
	w.U8(InitialMessageVersion)
	m.Initiator.Encode(w)
	w.U32(m.SignedPrekeyID)
	w.U32(m.KEMPrekeyID)
	w.Bool(m.HasOneTime)
	if m.HasOneTime {
		w.U32(m.OneTimePrekeyID)
	}
	w.Fixed(m.Ephemeral[:])
	w.Fixed(m.KEMCiphertext[:])
	w.Var(m.Message)
	return w.Bytes(), nil
}

// UnmarshalInitialMessage decodes MarshalBinary's output. It checks the
// shape only (and that the ratchet message is non-empty); Respond does the
// cryptography.
func UnmarshalInitialMessage(b []byte) (*InitialMessage, error) {
	if len(b) > MaxInitialMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxInitialMessageSize)
	}
	m := &InitialMessage{}
	r := wire.NewReader(b)
	r.Version(InitialMessageVersion)
	m.Initiator = identity.DecodeDevicePublic(r)
	m.SignedPrekeyID = r.U32()
	m.KEMPrekeyID = r.U32()
	m.HasOneTime = r.Bool()
	if m.HasOneTime {
		m.OneTimePrekeyID = r.U32()
	}
	r.FixedInto(m.Ephemeral[:])
	r.FixedInto(m.KEMCiphertext[:])
	m.Message = r.Var(ratchet.MaxMessageSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(m.Message) == 0 {
		return nil, fmt.Errorf("%w: empty ratchet message", ErrMalformed)
	}
	return m, nil
}

// encapsulate is ML-KEM-768 encapsulation. Tests replace it with the
// derandomized one (reading its 32 bytes from r) so that vectors are
// reproducible; in production it ignores r and uses crypto/rand, as Go's
// crypto/mlkem gives no other choice.
var encapsulate = func(_ io.Reader, ek *mlkem.EncapsulationKey768) (ss, ct []byte, err error) {
	ss, ct = ek.Encapsulate()
	return ss, ct, nil
}

// transcript is what the session key binds besides the DH and KEM
// secrets; its SHA-256 is the HKDF info suffix (PROTOCOL.md section 4.3).
type transcript struct {
	initiator, responder identity.DevicePublic
	spk                  *identity.SignedPrekeyPublic
	kem                  *identity.KEMPrekeyPublic
	otp                  *identity.OneTimePrekeyPublic // nil: none used
	ephemeral            [32]byte
	kemCiphertext        []byte
}

func (t *transcript) hash() [32]byte {
	w := wire.NewWriter(2 + 2*81 + 36 + 4 + mlkem.EncapsulationKeySize768 + 37 + 32 + KEMCiphertextSize)
	w.U8(transcriptVersion)
	t.initiator.Encode(w)
	t.responder.Encode(w)
	w.U32(t.spk.ID)
	w.Fixed(t.spk.Pub[:])
	w.U32(t.kem.ID)
	w.Fixed(t.kem.EncapKey)
	w.Bool(t.otp != nil)
	if t.otp != nil {
		w.U32(t.otp.ID)
		w.Fixed(t.otp.Pub[:])
	}
	w.Fixed(t.ephemeral[:])
	w.Fixed(t.kemCiphertext)
	return sha256.Sum256(w.Bytes())
}

// sessionKey is HKDF-SHA256(ikm = 0xFF×32 || DH1 || DH2 || DH3 || [DH4] ||
// SS, salt = 32 zero bytes, info = labelSession || TH), 32 bytes. The 0xFF
// prefix is Signal's X3DH/PQXDH "F" (domain separation from XEdDSA).
func sessionKey(dhs [][32]byte, ss []byte, th [32]byte) ([]byte, error) {
	ikm := make([]byte, 0, 32+len(dhs)*32+len(ss))
	for range 32 {
		ikm = append(ikm, 0xFF)
	}
	for i := range dhs {
		ikm = append(ikm, dhs[i][:]...)
	}
	ikm = append(ikm, ss...)
	sk, err := hkdf.Key(sha256.New, ikm, make([]byte, 32), labelSession+string(th[:]), ratchet.KeySize)
	clear(ikm)
	return sk, err
}

// associatedData is the ratchet's session AD: the initiator's then the
// responder's device public key encodings.
func associatedData(initiator, responder identity.DevicePublic) []byte {
	w := wire.NewWriter(2 * 81)
	initiator.Encode(w)
	responder.Encode(w)
	return w.Bytes()
}

func dh(priv, pub *[32]byte) ([32]byte, error) {
	s, err := x25519.X25519(priv, pub)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrKeyAgreement, err)
	}
	return s, nil
}

// Initiate starts a session with the device whose bundle is given. pinned
// is that device's public keys from its account's verified device list: a
// bundle for any other keys is refused (ErrIdentityMismatch), as is one
// whose signed or KEM prekey signature does not verify (ErrBadSignature).
// rand (nil: crypto/rand) provides the ephemeral key.
//
// The returned template has every field but Message: encrypt the first
// message with the returned state and send the template with it.
func Initiate(rand io.Reader, self *identity.Device, pinned identity.DevicePublic, bundle *identity.Bundle) (*ratchet.State, *InitialMessage, error) {
	if rand == nil {
		rand = defaultRand
	}
	if !bundle.Device.Equal(pinned) {
		return nil, nil, ErrIdentityMismatch
	}
	if err := bundle.Verify(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	ek, err := bundle.KEMPrekey.EncapsulationKey()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyAgreement, err)
	}
	ePriv, ePub, err := x25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("pqxdh: generating ephemeral key: %w", err)
	}
	ss, ct, err := encapsulate(rand, ek)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyAgreement, err)
	}

	ik := self.DHKey()
	dhs := make([][32]byte, 0, 4)
	for _, p := range []struct{ priv, pub *[32]byte }{
		{&ik, &bundle.SignedPrekey.Pub},    // DH1
		{&ePriv, &bundle.Device.DHPub},     // DH2
		{&ePriv, &bundle.SignedPrekey.Pub}, // DH3
	} {
		s, err := dh(p.priv, p.pub)
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, s)
	}
	if bundle.OneTime != nil {
		s, err := dh(&ePriv, &bundle.OneTime.Pub) // DH4
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, s)
	}
	clear(ik[:])

	t := transcript{initiator: self.Public(), responder: bundle.Device, spk: &bundle.SignedPrekey,
		kem: &bundle.KEMPrekey, otp: bundle.OneTime, ephemeral: ePub, kemCiphertext: ct}
	sk, err := sessionKey(dhs, ss, t.hash())
	clear(ss)
	for i := range dhs {
		clear(dhs[i][:])
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := ratchet.NewInitiator(sk, associatedData(t.initiator, t.responder), ePriv)
	clear(sk)
	clear(ePriv[:])
	if err != nil {
		return nil, nil, err
	}
	m := &InitialMessage{Initiator: t.initiator, SignedPrekeyID: bundle.SignedPrekey.ID,
		KEMPrekeyID: bundle.KEMPrekey.ID, Ephemeral: ePub}
	copy(m.KEMCiphertext[:], ct)
	if bundle.OneTime != nil {
		m.HasOneTime, m.OneTimePrekeyID = true, bundle.OneTime.ID
	}
	return st, m, nil
}

var defaultRand io.Reader = rand.Reader

// Prekeys is the responder's view of its own private prekeys.
type Prekeys interface {
	// SignedPrekey returns the signed prekey with this id, or nil.
	SignedPrekey(id uint32) *identity.SignedPrekey
	// KEMPrekey returns the KEM prekey with this id, or nil if unknown or
	// (for a one-time KEM prekey) already used.
	KEMPrekey(id uint32) *identity.KEMPrekey
	// OneTimePrekey returns the one-time prekey with this id, or nil if
	// unknown or already used.
	OneTimePrekey(id uint32) *identity.OneTimePrekey
	// Consume deletes the one-time prekeys a new session used: the
	// one-time X25519 prekey (if hasOneTime) and the KEM prekey unless it
	// is a last-resort key. Respond calls it once, after the first message
	// authenticated; an error aborts Respond. It should be made durable in
	// the same write as the new session.
	Consume(oneTimeID uint32, hasOneTime bool, kemID uint32, kemLastResort bool) error
}

// Respond derives the session an InitialMessage starts and decrypts its
// ratchet message. self is the responding device. On success the one-time
// prekeys have been consumed through keys.
func Respond(self *identity.Device, keys Prekeys, m *InitialMessage) (*ratchet.State, []byte, error) {
	var otp *identity.OneTimePrekey
	if m.HasOneTime {
		if otp = keys.OneTimePrekey(m.OneTimePrekeyID); otp == nil {
			return nil, nil, fmt.Errorf("%w: one-time prekey %d", ErrOneTimePrekeyUsed, m.OneTimePrekeyID)
		}
	}
	kem := keys.KEMPrekey(m.KEMPrekeyID)
	if kem == nil {
		// Unknown, or a one-time KEM prekey already consumed: the store
		// cannot tell the two apart, and neither may be used.
		return nil, nil, fmt.Errorf("%w: KEM prekey %d", ErrOneTimePrekeyUsed, m.KEMPrekeyID)
	}
	spk := keys.SignedPrekey(m.SignedPrekeyID)
	if spk == nil {
		return nil, nil, fmt.Errorf("%w: signed prekey %d", ErrUnknownPrekey, m.SignedPrekeyID)
	}
	ss, err := kem.DecapsulationKey().Decapsulate(m.KEMCiphertext[:])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyAgreement, err)
	}

	ik := self.DHKey()
	spkPriv := spk.PrivateKey()
	initiatorIK := m.Initiator.DHPub
	dhs := make([][32]byte, 0, 4)
	for _, p := range []struct{ priv, pub *[32]byte }{
		{&spkPriv, &initiatorIK}, // DH1
		{&ik, &m.Ephemeral},      // DH2
		{&spkPriv, &m.Ephemeral}, // DH3
	} {
		s, err := dh(p.priv, p.pub)
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, s)
	}
	var otpPub *identity.OneTimePrekeyPublic
	if otp != nil {
		otpPriv := otp.PrivateKey()
		s, err := dh(&otpPriv, &m.Ephemeral) // DH4
		clear(otpPriv[:])
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, s)
		otpPub = &otp.Public
	}
	clear(ik[:])
	clear(spkPriv[:])

	t := transcript{initiator: m.Initiator, responder: self.Public(), spk: &spk.Public,
		kem: &kem.Public, otp: otpPub, ephemeral: m.Ephemeral, kemCiphertext: m.KEMCiphertext[:]}
	sk, err := sessionKey(dhs, ss, t.hash())
	clear(ss)
	for i := range dhs {
		clear(dhs[i][:])
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := ratchet.NewResponder(sk, associatedData(t.initiator, t.responder), m.Ephemeral)
	clear(sk)
	if err != nil {
		return nil, nil, err
	}
	pt, err := st.Decrypt(m.Message)
	if err != nil {
		return nil, nil, fmt.Errorf("pqxdh: first message: %w", err)
	}
	if err := keys.Consume(m.OneTimePrekeyID, m.HasOneTime, m.KEMPrekeyID, kem.Public.LastResort); err != nil {
		return nil, nil, fmt.Errorf("pqxdh: consuming prekeys: %w", err)
	}
	return st, pt, nil
}
