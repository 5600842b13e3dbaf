package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"filippo.io/edwards25519"

	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

// Device is one device's identity: a random id, an Ed25519 signing key and
// an X25519 Diffie-Hellman key. Parley keeps the two keys separate instead
// of deriving signatures from the DH key (XEdDSA) because both halves then
// map onto standard primitives that WebCrypto and Go's standard library
// implement directly (see PROTOCOL.md section 12).
type Device struct {
	ID    DeviceID
	sign  ed25519.PrivateKey
	dh    [x25519.Size]byte // X25519 private key
	dhPub [x25519.Size]byte // its public key
}

// DevicePublic is the public half of a Device, as published in device lists
// and prekey bundles.
type DevicePublic struct {
	ID      DeviceID
	SignPub ed25519.PublicKey // 32 bytes
	DHPub   [32]byte          // X25519 public key
}

// NewDevice reads 16 bytes (id), 32 bytes (Ed25519 seed) and 32 bytes
// (X25519 private key) from rand, in that order (nil: crypto/rand).
func NewDevice(rand io.Reader) (*Device, error) {
	b, err := readRand(rand, DeviceIDSize+ed25519.SeedSize+32)
	if err != nil {
		return nil, err
	}
	return newDevice(b[:16], b[16:48], b[48:])
}

func newDevice(id, seed, dh []byte) (*Device, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 seed of %d bytes", ErrBadKey, len(seed))
	}
	d := &Device{sign: signingKeyFromSeed(seed)}
	copy(d.ID[:], id)
	if d.ID.IsZero() {
		return nil, fmt.Errorf("%w: all zero", ErrBadDeviceID)
	}
	if len(dh) != x25519.Size {
		return nil, fmt.Errorf("%w: X25519 key of %d bytes", ErrBadKey, len(dh))
	}
	copy(d.dh[:], dh)
	// The ladder, not the fixed-base tables: this runs when the browser
	// client starts, before anything else needs the tables (PROTOCOL.md
	// 13.3), and building them would add ≈ 8 ms to start-up.
	d.dhPub = x25519.LadderPublicKey(&d.dh)
	return d, nil
}

// signingKeyFromSeed is ed25519.NewKeyFromSeed (RFC 8032 §5.1.5: the
// public key is [s]B for s the clamped first half of SHA-512(seed)) with
// a variable-base multiplication instead of the fixed-base tables: the
// browser client loads its device and account keys at start-up, when
// building those tables would cost ≈ 9 ms of Go-wasm before the client is
// ready; the first signature (the relay's challenge, made while the
// network is waited on anyway) builds them instead. The tests check it
// against ed25519.NewKeyFromSeed.
func signingKeyFromSeed(seed []byte) ed25519.PrivateKey {
	h := sha512.Sum512(seed)
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		panic("identity: clamping a 32-byte scalar failed: " + err.Error())
	}
	pub := new(edwards25519.Point).ScalarMult(s, edwards25519.NewGeneratorPoint()).Bytes()
	k := make(ed25519.PrivateKey, ed25519.PrivateKeySize)
	copy(k, seed)
	copy(k[ed25519.SeedSize:], pub)
	return k
}

// Public returns the device's public keys.
func (d *Device) Public() DevicePublic {
	p := DevicePublic{ID: d.ID, SignPub: d.sign.Public().(ed25519.PublicKey)}
	p.DHPub = d.dhPub
	return p
}

// Sign signs msg for purpose with the device's Ed25519 key.
func (d *Device) Sign(purpose string, msg []byte) []byte {
	return ed25519.Sign(d.sign, SigningInput(purpose, msg))
}

// DHKey is a copy of the device's X25519 identity private key, for PQXDH
// (crypto/ratchet/x25519); the caller clears it after use.
func (d *Device) DHKey() [x25519.Size]byte { return d.dh }

// MarshalBinary encodes the private device for sealed storage:
// u8 version (1) || id (16) || Ed25519 seed (32) || X25519 private key (32).
func (d *Device) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + 16 + 32 + 32)
	w.U8(deviceVersion)
	w.Fixed(d.ID[:])
	w.Fixed(d.sign.Seed())
	w.Fixed(d.dh[:])
	return w.Bytes(), nil
}

// UnmarshalDevice decodes MarshalBinary's output.
func UnmarshalDevice(b []byte) (*Device, error) {
	r := wire.NewReader(b)
	r.Version(deviceVersion)
	id := r.Fixed(DeviceIDSize)
	seed := r.Fixed(ed25519.SeedSize)
	dh := r.Fixed(32)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding device: %w", err)
	}
	return newDevice(id, seed, dh)
}

// Equal reports whether p and q are the same device with the same keys.
func (p DevicePublic) Equal(q DevicePublic) bool {
	return p.ID == q.ID && subtle.ConstantTimeCompare(p.SignPub, q.SignPub) == 1 &&
		p.DHPub == q.DHPub
}

// Encode appends the public device to w:
// u8 version (1) || id (16) || Ed25519 public (32) || X25519 public (32).
func (p DevicePublic) Encode(w *wire.Writer) {
	w.U8(devicePublicVersion)
	w.Fixed(p.ID[:])
	w.Fixed(p.SignPub)
	w.Fixed(p.DHPub[:])
}

// DecodeDevicePublic reads what Encode wrote. Errors are recorded in r (so
// the caller checks r.Finish or r.Err once); semantic problems (zero id)
// are reported through r.Fail with ErrMalformed.
func DecodeDevicePublic(r *wire.Reader) DevicePublic {
	var p DevicePublic
	r.Version(devicePublicVersion)
	r.FixedInto(p.ID[:])
	p.SignPub = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	r.FixedInto(p.DHPub[:])
	if r.Err() == nil && p.ID.IsZero() {
		r.Fail(fmt.Errorf("%w: zero device id", ErrMalformed))
	}
	return p
}

// MarshalBinary is Encode on its own.
func (p DevicePublic) MarshalBinary() ([]byte, error) {
	if err := checkEd25519Public(p.SignPub); err != nil {
		return nil, err
	}
	w := wire.NewWriter(81)
	p.Encode(w)
	return w.Bytes(), nil
}

// UnmarshalDevicePublic decodes MarshalBinary's output.
func UnmarshalDevicePublic(b []byte) (DevicePublic, error) {
	r := wire.NewReader(b)
	p := DecodeDevicePublic(r)
	if err := r.Finish(); err != nil {
		return DevicePublic{}, fmt.Errorf("identity: decoding device public keys: %w", err)
	}
	return p, nil
}

// Fingerprint is a short, stable, human-comparable digest of the device's
// id and both public keys: the first 16 bytes of
// SHA-256("parley/v1/device-fingerprint" || encoding) as 8 groups of 4
// lowercase hex digits separated by spaces.
func (p DevicePublic) Fingerprint() string {
	w := wire.NewWriter(128)
	w.String("parley/v1/device-fingerprint")
	p.Encode(w)
	sum := sha256.Sum256(w.Bytes())
	h := hex.EncodeToString(sum[:16])
	var sb strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(h[i : i+4])
	}
	return sb.String()
}
