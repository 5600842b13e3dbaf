package identity

import (
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// Bundle is what a device publishes (and the relay serves) so a peer can
// start a PQXDH session with it while it is offline: its public keys, a
// signed X25519 prekey, a signed ML-KEM-768 prekey and, while supplies
// last, one one-time X25519 prekey.
//
// Verify checks the two prekey signatures against Device.SignPub. It does
// not say Device belongs to anyone: the caller must also find Device in the
// account's verified device list (devicelist.Verify, then List.Find and
// DevicePublic.Equal) before trusting the bundle.
type Bundle struct {
	Device       DevicePublic
	SignedPrekey SignedPrekeyPublic
	KEMPrekey    KEMPrekeyPublic
	OneTime      *OneTimePrekeyPublic // nil when the relay has none left
}

// Verify checks both prekey signatures.
func (b *Bundle) Verify() error {
	if err := checkEd25519Public(b.Device.SignPub); err != nil {
		return err
	}
	if err := b.SignedPrekey.Verify(b.Device.SignPub); err != nil {
		return fmt.Errorf("identity: bundle: %w", err)
	}
	if err := b.KEMPrekey.Verify(b.Device.SignPub); err != nil {
		return fmt.Errorf("identity: bundle: %w", err)
	}
	return nil
}

// MarshalBinary encodes u8 version (1) || device public || signed prekey
// public || KEM prekey public || bool has-one-time || [one-time prekey
// public]. Each nested object carries its own version byte.
func (b *Bundle) MarshalBinary() ([]byte, error) {
	if err := checkEd25519Public(b.Device.SignPub); err != nil {
		return nil, err
	}
	if len(b.SignedPrekey.Sig) != SignatureSize || len(b.KEMPrekey.Sig) != SignatureSize {
		return nil, fmt.Errorf("%w: bundle signature of wrong size", ErrMalformed)
	}
	w := wire.NewWriter(1 + 81 + 109 + 1262 + 1 + 37)
	w.U8(bundleVersion)
	b.Device.Encode(w)
	b.SignedPrekey.Encode(w)
	b.KEMPrekey.Encode(w)
	w.Bool(b.OneTime != nil)
	if b.OneTime != nil {
		b.OneTime.Encode(w)
	}
	return w.Bytes(), nil
}

// UnmarshalBundle decodes MarshalBinary's output. It does not verify the
// signatures; call Verify.
func UnmarshalBundle(data []byte) (*Bundle, error) {
	r := wire.NewReader(data)
	r.Version(bundleVersion)
	b := &Bundle{}
	b.Device = DecodeDevicePublic(r)
	b.SignedPrekey = DecodeSignedPrekeyPublic(r)
	b.KEMPrekey = DecodeKEMPrekeyPublic(r)
	if r.Bool() {
		o := DecodeOneTimePrekeyPublic(r)
		b.OneTime = &o
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("identity: decoding bundle: %w", err)
	}
	return b, nil
}
