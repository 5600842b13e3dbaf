package identity

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// FuzzUnmarshalBundle covers the public decoders (DevicePublic, both signed
// prekeys, one-time prekey, Bundle): they never panic, and whatever decodes
// re-encodes to the same bytes (the encoding is canonical). Signature
// checks are left out: they parse nothing, and their cost makes the fuzzer's
// minimization of 1.5 KiB inputs crawl.
func FuzzUnmarshalBundle(f *testing.F) {
	vectortest.Seed(f, "bundle")
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBundle(data)
		if err != nil {
			return
		}
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded bundle does not re-encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("non-canonical bundle accepted:\n%x\n%x", data, enc)
		}
	})
}

// FuzzUnmarshalPrivate covers the private-state decoders and the safety
// number QR decoder; the first byte chooses the decoder.
func FuzzUnmarshalPrivate(f *testing.F) {
	vectortest.Seed(f, "account_private", 0)
	vectortest.Seed(f, "device_private", 1)
	vectortest.Seed(f, "signed_prekey_private", 2)
	vectortest.Seed(f, "one_time_prekey_private", 3)
	vectortest.Seed(f, "kem_prekey_private", 4)
	vectortest.Seed(f, "scanned_qr", 5)
	vectortest.Seed(f, "device_public", 6)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		sel, data := data[0], data[1:]
		type marshaler interface{ MarshalBinary() ([]byte, error) }
		var m marshaler
		var err error
		switch sel % 7 {
		case 0:
			m, err = UnmarshalAccount(data)
		case 1:
			m, err = UnmarshalDevice(data)
		case 2:
			m, err = UnmarshalSignedPrekey(data)
		case 3:
			m, err = UnmarshalOneTimePrekey(data)
		case 4:
			m, err = UnmarshalKEMPrekey(data)
		case 5:
			sn := SafetyNumber{ours: make([]byte, 32), theirs: make([]byte, 32)}
			_ = sn.CheckScanned(data)
			return
		case 6:
			var p DevicePublic
			p, err = UnmarshalDevicePublic(data)
			m = p
		}
		if err != nil {
			return
		}
		enc, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("decoder %d accepted non-canonical input %x (re-encodes to %x, %v)", sel%7, data, enc, err)
		}
	})
}
