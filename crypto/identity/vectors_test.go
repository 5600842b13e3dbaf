package identity

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata are written by `go test ./crypto/identity -run
// TestVectors -update` and replayed by TestVectors. The JSON layout is
// described in docs/PROTOCOL.md section 9.
type vector = vectortest.Op

// vectorErrors maps the error names used in vectors to sentinels.
var vectorErrors = vectortest.Errors{
	"bad_signature":          ErrBadSignature,
	"bad_key":                ErrBadKey,
	"malformed":              ErrMalformed,
	"safety_number_mismatch": ErrSafetyNumberMismatch,
}

var (
	hx          = vectortest.Hex
	mustMarshal = vectortest.MustMarshal
)

func generateVectors(t *testing.T) map[string]vector {
	r := newDetRand("parley identity vectors")
	v := map[string]vector{}

	acct, _ := NewAccount(r)
	v["good_account"] = vector{Comment: "account private key encoding and its public key", Type: "identity/account",
		Input:  map[string]any{"account_private": hx(mustMarshal(t, acct))},
		Output: map[string]any{"account_public": hx(acct.Public())}}

	dev, _ := NewDevice(r)
	v["good_device"] = vector{Comment: "device private encoding, its public encoding, id and fingerprint", Type: "identity/device",
		Input: map[string]any{"device_private": hx(mustMarshal(t, dev))},
		Output: map[string]any{"device_public": hx(mustMarshal(t, dev.Public())), "device_id": dev.ID.String(),
			"fingerprint": dev.Public().Fingerprint()}}
	trunc := mustMarshal(t, dev)
	v["fail_truncated_device"] = vector{Comment: "device private encoding missing its last byte", Type: "identity/device",
		Input: map[string]any{"device_private": hx(trunc[:len(trunc)-1])}, Error: "short"}

	msg := []byte("relay challenge 0123456789")
	sig := dev.Sign(PurposeRelayChallenge, msg)
	v["good_signature"] = vector{Comment: "a purpose-labelled signature: Ed25519 over u32 len(purpose) || purpose || message", Type: "identity/signature",
		Input: map[string]any{"public_key": hx(dev.Public().SignPub), "purpose": PurposeRelayChallenge,
			"message": hx(msg), "signature": hx(sig), "signing_input": hx(SigningInput(PurposeRelayChallenge, msg))}}
	v["fail_signature_wrong_purpose"] = vector{Comment: "the same signature presented for another purpose", Type: "identity/signature",
		Input: map[string]any{"public_key": hx(dev.Public().SignPub), "purpose": PurposeDeviceSignsAccount,
			"message": hx(msg), "signature": hx(sig), "signing_input": hx(SigningInput(PurposeDeviceSignsAccount, msg))},
		Error: "bad_signature"}

	b, spk, kpk, otp := makeBundle(t, r, dev, true)
	v["good_prekeys"] = vector{Comment: "private prekey encodings and the public halves they must yield", Type: "identity/prekeys",
		Input: map[string]any{"device_public": hx(mustMarshal(t, dev.Public())),
			"signed_prekey_private": hx(mustMarshal(t, spk)), "kem_prekey_private": hx(mustMarshal(t, kpk)),
			"one_time_prekey_private": hx(mustMarshal(t, otp))},
		Output: map[string]any{"one_time_prekey_public": hx(encodeWith(otp.Public.Encode))}}
	enc := mustMarshal(t, b)
	v["good_bundle"] = vector{Comment: "a bundle with a one-time prekey; both signatures verify", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(enc)}, Output: map[string]any{"device_id": dev.ID.String(), "has_one_time": true}}
	nb := *b
	nb.OneTime = nil
	v["good_bundle_no_one_time"] = vector{Comment: "a bundle after the one-time prekeys ran out", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(mustMarshal(t, &nb))}, Output: map[string]any{"device_id": dev.ID.String(), "has_one_time": false}}

	bad := *b
	bad.SignedPrekey.Pub[5] ^= 0x40
	v["fail_bad_signature"] = vector{Comment: "signed prekey public key altered after signing", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(mustMarshal(t, &bad))}, Error: "bad_signature"}
	bad = *b
	bad.KEMPrekey.LastResort = false
	v["fail_last_resort_flag_flipped"] = vector{Comment: "the relay turned a last-resort KEM prekey into a one-time one; the flag is signed", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(mustMarshal(t, &bad))}, Error: "bad_signature"}
	bad = *b
	bad.KEMPrekey.EncapKey = bytes.Repeat([]byte{0xff}, len(b.KEMPrekey.EncapKey))
	v["fail_bad_kem_key"] = vector{Comment: "ML-KEM-768 encapsulation key failing the FIPS 203 modulus check", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(mustMarshal(t, &bad))}, Error: "bad_key"}
	v["fail_trailing_data"] = vector{Comment: "a valid bundle followed by one extra byte", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(append(append([]byte(nil), enc...), 0))}, Error: "trailing"}
	v2 := append([]byte(nil), enc...)
	v2[0] = 2
	v["fail_unknown_version"] = vector{Comment: "bundle format version 2", Type: "identity/bundle",
		Input: map[string]any{"bundle": hx(v2)}, Error: "version"}

	alice, _ := NewAccount(r)
	bob, _ := NewAccount(r)
	sn, _ := ComputeSafetyNumber("alice", alice.Public(), "bob", bob.Public())
	snb, _ := ComputeSafetyNumber("bob", bob.Public(), "alice", alice.Public())
	v["good_safety_number"] = vector{Comment: "safety number between two accounts, as computed by the first; scanned_qr is the second's QR", Type: "identity/safety_number",
		Input: map[string]any{"our_handle": "alice", "our_key": hx(alice.Public()), "their_handle": "bob", "their_key": hx(bob.Public()),
			"scanned_qr": hx(snb.QR)},
		Output: map[string]any{"digits": sn.Digits, "grouped": sn.Grouped(), "qr": hx(sn.QR)}}
	mallory, _ := NewAccount(r)
	snm, _ := ComputeSafetyNumber("bob", mallory.Public(), "alice", alice.Public())
	v["fail_safety_number_mismatch"] = vector{Comment: "the scanned QR was made with a different key for bob", Type: "identity/safety_number",
		Input: map[string]any{"our_handle": "alice", "our_key": hx(alice.Public()), "their_handle": "bob", "their_key": hx(bob.Public()),
			"scanned_qr": hx(snm.QR)},
		Error: "safety_number_mismatch"}
	return v
}

func encodeWith(f func(*wire.Writer)) []byte {
	w := wire.NewWriter(64)
	f(w)
	return w.Bytes()
}

// replay runs one vector and returns its error (nil for success), checking
// outputs on the way.
func replay(t *testing.T, v vector) error {
	in := func(k string) []byte { return vectortest.Bytes(t, v.Input, k) }
	out := func(k string) string { s, _ := v.Output[k].(string); return s }
	switch v.Type {
	case "identity/account":
		a, err := UnmarshalAccount(in("account_private"))
		if err != nil {
			return err
		}
		if hx(a.Public()) != out("account_public") {
			t.Error("account public key differs")
		}
	case "identity/device":
		d, err := UnmarshalDevice(in("device_private"))
		if err != nil {
			return err
		}
		if hx(mustMarshal(t, d.Public())) != out("device_public") || d.ID.String() != out("device_id") ||
			d.Public().Fingerprint() != out("fingerprint") {
			t.Error("device outputs differ")
		}
	case "identity/signature":
		if !bytes.Equal(SigningInput(v.Input["purpose"].(string), in("message")), in("signing_input")) {
			t.Error("signing input differs")
		}
		return VerifySignature(in("public_key"), v.Input["purpose"].(string), in("message"), in("signature"))
	case "identity/prekeys":
		dp, err := UnmarshalDevicePublic(in("device_public"))
		if err != nil {
			return err
		}
		spk, err := UnmarshalSignedPrekey(in("signed_prekey_private"))
		if err != nil {
			return err
		}
		if err := spk.Public.Verify(dp.SignPub); err != nil {
			return err
		}
		kpk, err := UnmarshalKEMPrekey(in("kem_prekey_private"))
		if err != nil {
			return err
		}
		if err := kpk.Public.Verify(dp.SignPub); err != nil {
			return err
		}
		otp, err := UnmarshalOneTimePrekey(in("one_time_prekey_private"))
		if err != nil {
			return err
		}
		if hx(encodeWith(otp.Public.Encode)) != out("one_time_prekey_public") {
			t.Error("one-time prekey public differs")
		}
	case "identity/bundle":
		b, err := UnmarshalBundle(in("bundle"))
		if err != nil {
			return err
		}
		if err := b.Verify(); err != nil {
			return err
		}
		if b.Device.ID.String() != out("device_id") || (b.OneTime != nil) != v.Output["has_one_time"].(bool) {
			t.Error("bundle outputs differ")
		}
	case "identity/safety_number":
		sn, err := ComputeSafetyNumber(v.Input["our_handle"].(string), in("our_key"), v.Input["their_handle"].(string), in("their_key"))
		if err != nil {
			return err
		}
		if err := sn.CheckScanned(in("scanned_qr")); err != nil {
			return err
		}
		if sn.Digits != out("digits") || sn.Grouped() != out("grouped") || hx(sn.QR) != out("qr") {
			t.Error("safety number outputs differ")
		}
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	return nil
}

func TestVectors(t *testing.T) { vectortest.RunOps(t, generateVectors, replay, vectorErrors) }
