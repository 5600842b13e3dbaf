package devicelist

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// The vectors in testdata are written by `go test ./crypto/devicelist -run
// TestVectors -update` and replayed by TestVectors. The JSON layout is
// described in docs/PROTOCOL.md section 9.
type vector = vectortest.Op

var vectorErrors = vectortest.Errors{
	"malformed":                   ErrMalformed,
	"bad_signature":               ErrBadSignature,
	"wrong_account":               ErrWrongAccount,
	"rollback":                    ErrRollback,
	"duplicate_device":            ErrDuplicateDevice,
	"too_many_devices":            ErrTooManyDevices,
	"primary":                     ErrPrimary,
	"invalid_entry":               ErrInvalidEntry,
	"missing_account_signature":   ErrAccountSignature,
	"device_signed_other_account": ErrDeviceSignature,
	"attestation_expired":         ErrAttestationExpired,
	"other_handle":                ErrOtherHandle,
	"legacy_list":                 ErrLegacyList,
}

var hx = vectortest.Hex

// resign encodes l as is (entry signatures untouched) and signs the whole
// list, to build lists that only fail the per-entry or structural checks.
func resign(a *identity.Account, l *List) []byte {
	body := encodeBody(l)
	return append(body, a.Sign(identity.PurposeDeviceList, body)...)
}

func listOutput(l *List) map[string]any {
	ids := []string{}
	primary := ""
	for _, e := range l.Entries {
		ids = append(ids, e.Device.ID.String())
		if e.Primary {
			primary = e.Device.ID.String()
		}
	}
	return map[string]any{"version": l.Version, "timestamp": l.Timestamp, "device_ids": ids, "primary": primary}
}

func generateVectors(t *testing.T) map[string]vector {
	v := map[string]vector{}
	f := newFixture(t, "parley devicelist vectors", 3)
	acct := hx(f.account.Public())
	verifyAs := func(comment, handle string, enc []byte, errName string) vector {
		vec := vector{Comment: comment, Type: "devicelist/verify", Input: map[string]any{"account_public": acct, "handle": handle, "list": hx(enc)}, Error: errName}
		if errName == "" {
			l, err := Verify(f.account.Public(), handle, enc)
			if err != nil {
				t.Fatal(err)
			}
			vec.Output = listOutput(l)
		}
		return vec
	}
	verify := func(comment string, enc []byte, errName string) vector {
		return verifyAs(comment, fixtureHandle, enc, errName)
	}
	v["good_list"] = verify("a primary and two companions", f.enc, "")
	v["fail_list_other_handle"] = verifyAs("Alice's valid list fetched for handle mallory", "mallory", f.enc, "other_handle")
	legacy := f.list.Clone()
	legacy.Handle = ""
	legacyEnc, err := SignLegacy(f.account, legacy)
	if err != nil {
		t.Fatal(err)
	}
	v["good_list_legacy"] = verifyAs("format 1 (names no handle): verifies under any handle; callers accept it only as the list already held (3.6)", "mallory", legacyEnc, "")
	l := f.list.Clone()
	l.Handle = ""
	emptyHandle := resign(f.account, l)
	emptyHandle[0] = listVersion
	emptyHandle = append(append(append([]byte(nil), emptyHandle[:33]...), 0, 0, 0, 0), emptyHandle[33:]...)
	v["fail_list_empty_handle"] = verify("format 2 naming the empty handle (a format-1 list in disguise)", emptyHandle, "malformed")

	big := newFixture(t, "parley devicelist vectors, full", MaxDevices)
	v["good_list_full"] = vector{Comment: "MaxDevices (16) devices", Type: "devicelist/verify",
		Input: map[string]any{"account_public": hx(big.account.Public()), "handle": fixtureHandle, "list": hx(big.enc)}}
	bl, _ := Verify(big.account.Public(), fixtureHandle, big.enc)
	vv := v["good_list_full"]
	vv.Output = listOutput(bl)
	v["good_list_full"] = vv

	over := big.list.Clone()
	d, _ := identity.NewDevice(newDetRand("parley devicelist vectors, one too many"))
	over.Entries = append(over.Entries, Entry{Device: d.Public(), Name: "17th", Added: over.Timestamp, Attested: over.Timestamp,
		DeviceSig: DeviceSignature(d, over.Account)})
	over.Entries[MaxDevices].AccountSig = big.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(over.Account, &over.Entries[MaxDevices]))
	v["fail_over_limit"] = vector{Comment: "17 devices, every signature valid", Type: "devicelist/verify",
		Input: map[string]any{"account_public": hx(big.account.Public()), "handle": fixtureHandle, "list": hx(resign(big.account, over))}, Error: "too_many_devices"}

	bad := append([]byte(nil), f.enc...)
	bad[len(bad)-10] ^= 1
	v["fail_bad_signature"] = verify("list signature altered", bad, "bad_signature")
	bad = append([]byte(nil), f.enc...)
	bad[1+32+4+len(fixtureHandle)+7] ^= 1 // the version's low byte
	v["fail_bad_signature_version_changed"] = verify("version field altered after signing", bad, "bad_signature")

	other, _ := identity.NewAccount(newDetRand("parley devicelist vectors, other account"))
	v["fail_wrong_account"] = vector{Comment: "a valid list verified against another account key", Type: "devicelist/verify",
		Input: map[string]any{"account_public": hx(other.Public()), "handle": fixtureHandle, "list": hx(f.enc)}, Error: "wrong_account"}

	l = f.list.Clone()
	l.Entries[2].AccountSig = nil
	v["fail_missing_account_signature"] = verify("third entry has no account signature (64 zero bytes); list signature valid", resign(f.account, l), "missing_account_signature")
	l = f.list.Clone()
	l.Entries[2].Name = "renamed"
	v["fail_stale_account_signature"] = verify("entry changed after the account signed it; list signature valid", resign(f.account, l), "missing_account_signature")

	l = f.list.Clone()
	l.Entries[2].DeviceSig = DeviceSignature(f.devices[2], other.Public())
	l.Entries[2].AccountSig = f.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, &l.Entries[2]))
	v["fail_device_signed_other_account"] = verify("third device's self-signature names another account", resign(f.account, l), "device_signed_other_account")

	l = f.list.Clone()
	l.Entries = append(l.Entries, l.Entries[1])
	l.Entries[3].Primary = false
	v["fail_duplicate_device"] = verify("the same device listed twice", resign(f.account, l), "duplicate_device")
	l = f.list.Clone()
	e := l.Entries[1]
	e.Device.ID[0] ^= 0xff
	e.DeviceSig = f.devices[1].Sign(identity.PurposeDeviceSignsAccount, membershipStatement(l.Account, e.Device))
	e.AccountSig = f.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, &e))
	l.Entries = append(l.Entries, e)
	v["fail_duplicate_key"] = verify("a second id with the same device keys, every signature valid", resign(f.account, l), "duplicate_device")

	l = f.list.Clone()
	l.Entries[1].Primary = true
	l.Entries[1].AccountSig = f.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, &l.Entries[1]))
	v["fail_two_primaries"] = verify("two entries flagged primary", resign(f.account, l), "primary")

	l = f.list.Clone()
	l.Entries[1].Attested = l.Timestamp + 1
	l.Entries[1].AccountSig = f.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, &l.Entries[1]))
	v["fail_attested_after_list"] = verify("an entry attested after the list's timestamp", resign(f.account, l), "invalid_entry")

	v["fail_trailing_data"] = verify("a valid list followed by one byte", append(append([]byte(nil), f.enc...), 0), "trailing")
	bad = append([]byte(nil), f.enc...)
	bad[0] = 3
	v["fail_unknown_version"] = verify("list format version 3", bad, "version")

	cur, _ := Verify(f.account.Public(), fixtureHandle, f.enc)
	later := time.Unix(int64(cur.Timestamp), 0).Add(24 * time.Hour)
	_, enc2, err := Reattest(f.account, cur, fixtureHandle, later)
	if err != nil {
		t.Fatal(err)
	}
	upd := func(comment string, a, b []byte, errName string) vector {
		return vector{Comment: comment, Type: "devicelist/update",
			Input: map[string]any{"account_public": acct, "handle": fixtureHandle, "current": hx(a), "next": hx(b)}, Error: errName}
	}
	v["good_update_reattest"] = upd("re-attestation: same devices, version 2, attested a day later", f.enc, enc2, "")
	v["fail_rollback"] = upd("version 1 offered while version 2 is current", enc2, f.enc, "rollback")
	l = cur.Clone()
	l.Entries = l.Entries[:2]
	sameVersion, err := Sign(f.account, l)
	if err != nil {
		t.Fatal(err)
	}
	v["fail_equal_version"] = upd("a different list signed with the current version", f.enc, sameVersion, "rollback")
	legacyCur, _ := Verify(f.account.Public(), fixtureHandle, legacyEnc)
	_, fromLegacy, err := Reattest(f.account, legacyCur, fixtureHandle, later, f.devices[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	v["good_update_from_legacy"] = upd("migration: a format-1 list replaced by version 2 in format 2, naming the handle", legacyEnc, fromLegacy, "")
	l = legacyCur.Clone()
	l.Version = 2
	legacyNext, err := SignLegacy(f.account, l)
	if err != nil {
		t.Fatal(err)
	}
	v["fail_update_legacy"] = upd("a format-1 list offered as an update (format 1 stands only until the next update)", legacyEnc, legacyNext, "legacy_list")

	att := func(comment string, now time.Time, errName string) vector {
		return vector{Comment: comment, Type: "devicelist/attestation",
			Input: map[string]any{"account_public": acct, "handle": fixtureHandle, "list": hx(f.enc), "device_id": f.devices[1].ID.String(),
				"now": now.Unix(), "max_age_seconds": int64(30 * 24 * 3600)}, Error: errName}
	}
	v["good_attestation"] = att("attested exactly 30 days ago, max age 30 days", t0.Add(30*24*time.Hour), "")
	v["fail_attestation_expired"] = att("attested 30 days and 1 second ago, max age 30 days", t0.Add(30*24*time.Hour+time.Second), "attestation_expired")
	return v
}

func replay(t *testing.T, v vector) error {
	in := func(k string) []byte { return vectortest.Bytes(t, v.Input, k) }
	acct := in("account_public")
	handle, _ := v.Input["handle"].(string)
	switch v.Type {
	case "devicelist/verify":
		l, err := Verify(acct, handle, in("list"))
		if err != nil {
			return err
		}
		got, _ := json.Marshal(listOutput(l))
		want, _ := json.Marshal(v.Output)
		if string(got) != string(want) {
			t.Errorf("outputs differ:\n got %s\nwant %s", got, want)
		}
	case "devicelist/update":
		cur, err := Verify(acct, handle, in("current"))
		if err != nil {
			t.Fatal("current list must verify:", err)
		}
		next, err := Verify(acct, handle, in("next"))
		if err != nil {
			return err
		}
		return CheckUpdate(cur, next)
	case "devicelist/attestation":
		l, err := Verify(acct, handle, in("list"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := identity.ParseDeviceID(v.Input["device_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		e := l.Find(id)
		if e == nil {
			t.Fatal("device not in list")
		}
		return CheckAttestation(e, time.Unix(vectortest.Int(t, v.Input, "now"), 0), time.Duration(vectortest.Int(t, v.Input, "max_age_seconds"))*time.Second)
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	return nil
}

func TestVectors(t *testing.T) { vectortest.RunOps(t, generateVectors, replay, vectorErrors) }
