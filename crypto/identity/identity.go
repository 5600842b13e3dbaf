// Package identity holds Parley's long-term keys: the account identity key,
// each device's own keys and prekeys, the prekey bundle a device publishes,
// device fingerprints and safety numbers. docs/PROTOCOL.md section 2 is the
// specification this package follows.
//
// Most callers want:
//
//   - NewAccount, once per account, on the primary device only. The account
//     key signs device lists (package devicelist) and never leaves the
//     primary.
//   - NewDevice, once per device (primary and every companion). A device
//     has an Ed25519 key that signs (prekeys, its membership of the account,
//     relay challenges) and an X25519 key used in PQXDH.
//   - Device.NewSignedPrekey, NewOneTimePrekeys and Device.NewKEMPrekey to
//     refill the prekeys a device publishes, and Bundle (with Bundle.Verify)
//     for the set a peer fetches to start a session.
//   - ComputeSafetyNumber to show two users the digits (and QR payload)
//     that let them compare account keys out of band.
//
// Every signature is made over SigningInput(purpose, msg), where purpose is
// one of the Purpose* labels below, so a signature made for one purpose can
// never be replayed as another.
//
// Every private structure marshals to versioned bytes (MarshalBinary) for
// sealed storage, and every Unmarshal*/Decode* function is strict: it
// rejects unknown versions, wrong sizes and trailing bytes. Constructors
// take the randomness source as an io.Reader (nil means crypto/rand) and
// derive keys from bytes read from it, so test vectors are reproducible.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/parley-im/parley/crypto/wire"
)

// Signature purposes (domain-separation labels). Each is registered in
// docs/PROTOCOL.md section 2; a new use of a key gets a new label.
const (
	// PurposeSignedPrekey: a device signs its X25519 signed prekey.
	PurposeSignedPrekey = "parley/v1/signed-prekey"
	// PurposeKEMPrekey: a device signs its ML-KEM-768 prekey.
	PurposeKEMPrekey = "parley/v1/kem-prekey"
	// PurposeDeviceList: the account signs a whole encoded device list.
	PurposeDeviceList = "parley/v1/device-list"
	// PurposeAccountSignsDevice: the account signs one device-list entry.
	PurposeAccountSignsDevice = "parley/v1/account-signs-device"
	// PurposeDeviceSignsAccount: a device signs that it belongs to an account.
	PurposeDeviceSignsAccount = "parley/v1/device-signs-account"
	// PurposeRelayChallenge: a device signs a relay's login challenge.
	PurposeRelayChallenge = "parley/v1/relay-challenge"
)

// Sizes of the fixed-width values.
const (
	DeviceIDSize  = 16
	SignatureSize = ed25519.SignatureSize // 64
	PublicKeySize = ed25519.PublicKeySize // 32, for both Ed25519 and X25519
	// MaxPurposeLen bounds a purpose label; labels are short constants.
	MaxPurposeLen = 64
)

// Format versions of the encodings in this package.
const (
	accountVersion       = 1
	deviceVersion        = 1
	devicePublicVersion  = 1
	signedPrekeyVersion  = 1
	oneTimePrekeyVersion = 1
	kemPrekeyVersion     = 1
	bundleVersion        = 1
)

// Errors, for errors.Is. Decoding errors also wrap the wire error
// (wire.ErrShort, wire.ErrVersion, wire.ErrTrailing, ...).
var (
	ErrBadSignature  = errors.New("identity: bad signature")
	ErrMalformed     = errors.New("identity: malformed encoding")
	ErrBadKey        = errors.New("identity: invalid public key")
	ErrBadDeviceID   = errors.New("identity: invalid device id")
	ErrHandleTooLong = errors.New("identity: handle too long")
)

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

func readRand(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(randOrDefault(r), b); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	return b, nil
}

// SigningInput is the byte string every Parley Ed25519 signature covers:
// the purpose as a wire string (u32 length || label) followed by msg. A
// prefix rather than Ed25519ctx keeps signatures verifiable by WebCrypto,
// which only implements pure Ed25519.
func SigningInput(purpose string, msg []byte) []byte {
	if purpose == "" || len(purpose) > MaxPurposeLen {
		panic("identity: invalid signature purpose")
	}
	w := wire.NewWriter(4 + len(purpose) + len(msg))
	w.String(purpose)
	w.Fixed(msg)
	return w.Bytes()
}

// VerifySignature checks sig over SigningInput(purpose, msg) under pub and
// returns ErrBadSignature if it does not verify (including a public key or
// signature of the wrong length, which ed25519.Verify would panic on).
func VerifySignature(pub ed25519.PublicKey, purpose string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize ||
		purpose == "" || len(purpose) > MaxPurposeLen {
		return ErrBadSignature
	}
	verify := ed25519.Verify
	if v := verifier.Load(); v != nil {
		verify = *v
	}
	if !verify(pub, SigningInput(purpose, msg), sig) {
		return ErrBadSignature
	}
	return nil
}

// verifier, if set, replaces crypto/ed25519.Verify in VerifySignature.
var verifier atomic.Pointer[func(ed25519.PublicKey, []byte, []byte) bool]

// SetVerifier installs another RFC 8032 Ed25519 verifier for every
// signature check of this package's callers (prekeys, device lists, link
// requests, relay logins) — the browser passes WebCrypto's, about 5× faster
// than Go compiled to wasm, which makes device-list checks (two signatures
// per device) and session setup cheaper. nil restores crypto/ed25519. The
// implementation must agree with crypto/ed25519 on every valid signature.
func SetVerifier(v func(pub ed25519.PublicKey, msg, sig []byte) bool) {
	if v == nil {
		verifier.Store(nil)
		return
	}
	verifier.Store(&v)
}

// DeviceID names a device within Parley. It is random, so ids need no
// coordination and reveal nothing.
type DeviceID [DeviceIDSize]byte

// NewDeviceID reads a random device id.
func NewDeviceID(rand io.Reader) (DeviceID, error) {
	var id DeviceID
	b, err := readRand(rand, DeviceIDSize)
	if err != nil {
		return id, err
	}
	copy(id[:], b)
	return id, nil
}

// String is the id in lowercase hex (32 characters).
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the all-zero id, which is never valid.
func (id DeviceID) IsZero() bool { return id == DeviceID{} }

// ParseDeviceID parses the lowercase hex form made by String.
func ParseDeviceID(s string) (DeviceID, error) {
	var id DeviceID
	if len(s) != 2*DeviceIDSize {
		return id, fmt.Errorf("%w: %d characters", ErrBadDeviceID, len(s))
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, fmt.Errorf("%w: not lowercase hex", ErrBadDeviceID)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %v", ErrBadDeviceID, err)
	}
	if id.IsZero() {
		return id, fmt.Errorf("%w: all zero", ErrBadDeviceID)
	}
	return id, nil
}

// Account is the account identity key. It lives on the primary device only
// and signs device lists; peers pin its public half (see SafetyNumber).
type Account struct {
	priv ed25519.PrivateKey
}

// NewAccount makes an account key from 32 bytes of rand (nil: crypto/rand).
func NewAccount(rand io.Reader) (*Account, error) {
	seed, err := readRand(rand, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return &Account{priv: signingKeyFromSeed(seed)}, nil
}

// Public is the account public key.
func (a *Account) Public() ed25519.PublicKey {
	return a.priv.Public().(ed25519.PublicKey)
}

// Sign signs msg for purpose (one of the Purpose* labels).
func (a *Account) Sign(purpose string, msg []byte) []byte {
	return ed25519.Sign(a.priv, SigningInput(purpose, msg))
}

// MarshalBinary encodes the private key for sealed storage:
// u8 version (1) || 32-byte Ed25519 seed.
func (a *Account) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + ed25519.SeedSize)
	w.U8(accountVersion)
	w.Fixed(a.priv.Seed())
	return w.Bytes(), nil
}

// UnmarshalAccount decodes MarshalBinary's output.
func UnmarshalAccount(b []byte) (*Account, error) {
	r := wire.NewReader(b)
	r.Version(accountVersion)
	seed := r.Fixed(ed25519.SeedSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding account key: %w", err)
	}
	return &Account{priv: signingKeyFromSeed(seed)}, nil
}

// checkEd25519Public validates the length of an Ed25519 public key. Invalid
// curve points simply never verify.
func checkEd25519Public(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(pub))
	}
	return nil
}
