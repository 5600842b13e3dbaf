package identity

import (
	"crypto/ed25519"
	"crypto/mlkem"
	"fmt"
	"io"
	"time"

	"github.com/parley-im/parley/crypto/ratchet/x25519"
	"github.com/parley-im/parley/crypto/wire"
)

// KEMSeedSize is the size of an ML-KEM-768 decapsulation key seed (d || z).
const KEMSeedSize = mlkem.SeedSize // 64

// SignedPrekeyPublic is a device's medium-term X25519 prekey, signed by the
// device's Ed25519 key so the relay cannot substitute its own.
type SignedPrekeyPublic struct {
	ID      uint32
	Created uint64 // Unix seconds
	Pub     [32]byte
	Sig     []byte // device signature, PurposeSignedPrekey, over signedBytes
}

// signedBytes is what the device signs: the encoding without the signature.
func (p *SignedPrekeyPublic) signedBytes() []byte {
	w := wire.NewWriter(1 + 4 + 8 + 32)
	w.U8(signedPrekeyVersion)
	w.U32(p.ID)
	w.U64(p.Created)
	w.Fixed(p.Pub[:])
	return w.Bytes()
}

// Verify checks the signature under the device's signing key.
func (p *SignedPrekeyPublic) Verify(deviceSignPub ed25519.PublicKey) error {
	if err := VerifySignature(deviceSignPub, PurposeSignedPrekey, p.signedBytes(), p.Sig); err != nil {
		return fmt.Errorf("signed prekey %d: %w", p.ID, err)
	}
	return nil
}

// Encode appends u8 version (1) || id u32 || created u64 || public (32) ||
// signature (64).
func (p *SignedPrekeyPublic) Encode(w *wire.Writer) {
	w.Fixed(p.signedBytes())
	w.Fixed(p.Sig)
}

// DecodeSignedPrekeyPublic reads what Encode wrote; errors stick in r.
// It does not verify the signature (Verify does).
func DecodeSignedPrekeyPublic(r *wire.Reader) SignedPrekeyPublic {
	var p SignedPrekeyPublic
	r.Version(signedPrekeyVersion)
	p.ID = r.U32()
	p.Created = r.U64()
	r.FixedInto(p.Pub[:])
	p.Sig = r.Fixed(SignatureSize)
	return p
}

// SignedPrekey is the private signed prekey with its public half.
type SignedPrekey struct {
	Public SignedPrekeyPublic
	priv   [x25519.Size]byte
}

// NewSignedPrekey makes a signed prekey from 32 bytes of rand and signs it.
func (d *Device) NewSignedPrekey(rand io.Reader, id uint32, created time.Time) (*SignedPrekey, error) {
	b, err := readRand(rand, 32)
	if err != nil {
		return nil, err
	}
	s := &SignedPrekey{priv: [x25519.Size]byte(b)}
	clear(b)
	s.Public.ID = id
	s.Public.Created = uint64(created.Unix())
	s.Public.Pub = x25519.PublicKey(&s.priv)
	s.Public.Sig = d.Sign(PurposeSignedPrekey, s.Public.signedBytes())
	return s, nil
}

// PrivateKey is a copy of the X25519 private key, for PQXDH; the caller
// clears it after use.
func (s *SignedPrekey) PrivateKey() [x25519.Size]byte { return s.priv }

// MarshalBinary encodes u8 version (1) || private key (32) || public
// encoding (as Encode).
func (s *SignedPrekey) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + 32 + 109)
	w.U8(signedPrekeyVersion)
	w.Fixed(s.priv[:])
	s.Public.Encode(w)
	return w.Bytes(), nil
}

// UnmarshalSignedPrekey decodes MarshalBinary's output and checks that the
// stored public key belongs to the private key.
func UnmarshalSignedPrekey(b []byte) (*SignedPrekey, error) {
	r := wire.NewReader(b)
	r.Version(signedPrekeyVersion)
	priv := r.Fixed(32)
	pub := DecodeSignedPrekeyPublic(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding signed prekey: %w", err)
	}
	k := [x25519.Size]byte(priv)
	if x25519.PublicKey(&k) != pub.Pub {
		return nil, fmt.Errorf("%w: signed prekey public key does not match private key", ErrMalformed)
	}
	return &SignedPrekey{Public: pub, priv: k}, nil
}

// OneTimePrekeyPublic is an unsigned one-time X25519 prekey. As in Signal it
// is not signed: a forged one only costs the forward-secrecy bonus of that
// session, because the signed prekey and identity keys still authenticate.
type OneTimePrekeyPublic struct {
	ID  uint32
	Pub [32]byte
}

// Encode appends u8 version (1) || id u32 || public (32).
func (p *OneTimePrekeyPublic) Encode(w *wire.Writer) {
	w.U8(oneTimePrekeyVersion)
	w.U32(p.ID)
	w.Fixed(p.Pub[:])
}

// DecodeOneTimePrekeyPublic reads what Encode wrote; errors stick in r.
func DecodeOneTimePrekeyPublic(r *wire.Reader) OneTimePrekeyPublic {
	var p OneTimePrekeyPublic
	r.Version(oneTimePrekeyVersion)
	p.ID = r.U32()
	r.FixedInto(p.Pub[:])
	return p
}

// OneTimePrekey is a private one-time prekey. The owner deletes it once a
// session has consumed it.
type OneTimePrekey struct {
	Public OneTimePrekeyPublic
	priv   [x25519.Size]byte
}

// MaxOneTimePrekeyBatch bounds how many one-time prekeys one call makes (and
// how many the relay accepts in one upload).
const MaxOneTimePrekeyBatch = 100

// NewOneTimePrekeys makes n one-time prekeys with ids firstID, firstID+1, ...
// reading 32 bytes of rand for each.
func NewOneTimePrekeys(rand io.Reader, firstID uint32, n int) ([]*OneTimePrekey, error) {
	if n < 0 || n > MaxOneTimePrekeyBatch {
		return nil, fmt.Errorf("identity: %d one-time prekeys requested, limit %d", n, MaxOneTimePrekeyBatch)
	}
	out := make([]*OneTimePrekey, 0, n)
	for i := 0; i < n; i++ {
		b, err := readRand(rand, 32)
		if err != nil {
			return nil, err
		}
		o := &OneTimePrekey{priv: [x25519.Size]byte(b)}
		clear(b)
		o.Public.ID = firstID + uint32(i)
		o.Public.Pub = x25519.PublicKey(&o.priv)
		out = append(out, o)
	}
	return out, nil
}

// PrivateKey is a copy of the X25519 private key, for PQXDH; the caller
// clears it after use.
func (o *OneTimePrekey) PrivateKey() [x25519.Size]byte { return o.priv }

// MarshalBinary encodes u8 version (1) || id u32 || private key (32).
func (o *OneTimePrekey) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(37)
	w.U8(oneTimePrekeyVersion)
	w.U32(o.Public.ID)
	w.Fixed(o.priv[:])
	return w.Bytes(), nil
}

// UnmarshalOneTimePrekey decodes MarshalBinary's output.
func UnmarshalOneTimePrekey(b []byte) (*OneTimePrekey, error) {
	r := wire.NewReader(b)
	r.Version(oneTimePrekeyVersion)
	id := r.U32()
	priv := r.Fixed(32)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding one-time prekey: %w", err)
	}
	o := &OneTimePrekey{priv: [x25519.Size]byte(priv)}
	o.Public.ID = id
	o.Public.Pub = x25519.PublicKey(&o.priv)
	return o, nil
}

// KEMPrekeyPublic is an ML-KEM-768 encapsulation key signed by the device.
// LastResort marks the key a device keeps serving once its one-time KEM
// prekeys run out (Signal's "last-resort" PQ prekey); it is covered by the
// signature so the relay cannot turn a one-time key into a reusable one.
type KEMPrekeyPublic struct {
	ID         uint32
	Created    uint64 // Unix seconds
	LastResort bool
	EncapKey   []byte // mlkem.EncapsulationKeySize768 (1184) bytes
	Sig        []byte // device signature, PurposeKEMPrekey, over signedBytes
}

func (p *KEMPrekeyPublic) signedBytes() []byte {
	w := wire.NewWriter(1 + 4 + 8 + 1 + len(p.EncapKey))
	w.U8(kemPrekeyVersion)
	w.U32(p.ID)
	w.U64(p.Created)
	w.Bool(p.LastResort)
	w.Fixed(p.EncapKey)
	return w.Bytes()
}

// Verify checks the signature under the device's signing key.
func (p *KEMPrekeyPublic) Verify(deviceSignPub ed25519.PublicKey) error {
	if err := VerifySignature(deviceSignPub, PurposeKEMPrekey, p.signedBytes(), p.Sig); err != nil {
		return fmt.Errorf("KEM prekey %d: %w", p.ID, err)
	}
	return nil
}

// EncapsulationKey parses EncapKey.
func (p *KEMPrekeyPublic) EncapsulationKey() (*mlkem.EncapsulationKey768, error) {
	k, err := mlkem.NewEncapsulationKey768(p.EncapKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return k, nil
}

// Encode appends u8 version (1) || id u32 || created u64 || last-resort
// bool || encapsulation key (1184) || signature (64).
func (p *KEMPrekeyPublic) Encode(w *wire.Writer) {
	w.Fixed(p.signedBytes())
	w.Fixed(p.Sig)
}

// DecodeKEMPrekeyPublic reads what Encode wrote and checks that the
// encapsulation key is well formed (FIPS 203 modulus check); errors stick
// in r. It does not verify the signature (Verify does).
func DecodeKEMPrekeyPublic(r *wire.Reader) KEMPrekeyPublic {
	var p KEMPrekeyPublic
	r.Version(kemPrekeyVersion)
	p.ID = r.U32()
	p.Created = r.U64()
	p.LastResort = r.Bool()
	p.EncapKey = r.Fixed(mlkem.EncapsulationKeySize768)
	p.Sig = r.Fixed(SignatureSize)
	if r.Err() == nil {
		if _, err := mlkem.NewEncapsulationKey768(p.EncapKey); err != nil {
			r.Fail(fmt.Errorf("%w: ML-KEM-768 encapsulation key: %v", ErrBadKey, err))
		}
	}
	return p
}

// KEMPrekey is the private ML-KEM-768 prekey with its public half.
type KEMPrekey struct {
	Public KEMPrekeyPublic
	dk     *mlkem.DecapsulationKey768
}

// NewKEMPrekey makes an ML-KEM-768 prekey from a 64-byte seed read from
// rand and signs it.
func (d *Device) NewKEMPrekey(rand io.Reader, id uint32, created time.Time, lastResort bool) (*KEMPrekey, error) {
	seed, err := readRand(rand, KEMSeedSize)
	if err != nil {
		return nil, err
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, err
	}
	k := &KEMPrekey{dk: dk}
	k.Public = KEMPrekeyPublic{ID: id, Created: uint64(created.Unix()), LastResort: lastResort,
		EncapKey: dk.EncapsulationKey().Bytes()}
	k.Public.Sig = d.Sign(PurposeKEMPrekey, k.Public.signedBytes())
	return k, nil
}

// DecapsulationKey is the ML-KEM-768 private key, for PQXDH.
func (k *KEMPrekey) DecapsulationKey() *mlkem.DecapsulationKey768 { return k.dk }

// MarshalBinary encodes u8 version (1) || seed (64) || public encoding (as
// Encode).
func (k *KEMPrekey) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(1 + 64 + 1262)
	w.U8(kemPrekeyVersion)
	w.Fixed(k.dk.Bytes())
	k.Public.Encode(w)
	return w.Bytes(), nil
}

// UnmarshalKEMPrekey decodes MarshalBinary's output and checks that the
// stored encapsulation key belongs to the seed.
func UnmarshalKEMPrekey(b []byte) (*KEMPrekey, error) {
	r := wire.NewReader(b)
	r.Version(kemPrekeyVersion)
	seed := r.Fixed(KEMSeedSize)
	pub := DecodeKEMPrekeyPublic(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding KEM prekey: %w", err)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, fmt.Errorf("identity: decoding KEM prekey: %w", err)
	}
	if string(dk.EncapsulationKey().Bytes()) != string(pub.EncapKey) {
		return nil, fmt.Errorf("%w: KEM prekey public key does not match seed", ErrMalformed)
	}
	return &KEMPrekey{Public: pub, dk: dk}, nil
}
