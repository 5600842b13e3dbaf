// Package devicelist is an account's signed, versioned list of devices: the
// one statement that says which devices may speak for an account. Peers use
// it to decide which devices to encrypt to; the relay uses it to decide
// which device keys may log in and publish prekeys for the account.
// docs/PROTOCOL.md section 3 is the specification.
//
// Each Entry carries two signatures: the account's over the entry ("account
// signs device", so the account vouches for the device) and the device's
// over the account key ("device signs account", so a device cannot be
// claimed by an account it never agreed to join). The whole encoded list is
// signed again by the account, with a Version that only grows, so a stale
// list cannot be replayed to resurrect a revoked device, and it names the
// handle it is published under, so it cannot be replayed under another
// handle either (a relay serving a victim's list under an alias).
//
// Most callers want:
//
//   - On a device joining an account: DeviceSignature (the device's half),
//     made at link time and handed to the primary.
//   - On the primary: build a List (Account, Version, Timestamp, Entries
//     with DeviceSig filled in) and call Sign; it adds every entry's
//     account signature and returns the encoding to publish. Reattest
//     re-signs the same devices with a fresh attestation time.
//   - On peers and the relay: Verify(accountPub, handle, encoded) with the
//     pinned account key and the handle the list was fetched for (or is
//     stored under), then CheckUpdate(current, next) before replacing a
//     stored list, then List.Find to look a device up. A relay registering
//     a new account, with no key pinned yet, reads the key with
//     PeekAccount and then calls Verify with it, and refuses a Legacy list.
//   - Lists of format 1 name no handle (Legacy). They are accepted only
//     as the list already stored or pinned, never as a new one: see
//     CheckUpdate and docs/PROTOCOL.md section 3.6.
//   - CheckAttestation / Expired to retire companions that have not been
//     re-attested within a chosen maximum age.
//
// All failures are sentinel errors usable with errors.Is.
package devicelist

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

const (
	// MaxDevices bounds a list: the primary plus 15 companions. Every send
	// is encrypted once per device, so the bound also bounds fan-out.
	MaxDevices = 16
	// MaxNameLen bounds a device's display name, in bytes of UTF-8.
	MaxNameLen = 64
	// MaxEncodedSize is larger than any valid encoded list (5,080 bytes
	// at MaxDevices, names of MaxNameLen and a handle of
	// identity.MaxHandleLen); the relay may refuse bigger uploads before parsing.
	MaxEncodedSize = 8192

	// listVersion is the format Sign writes: the list names its handle.
	listVersion = 2
	// legacyListVersion is the format before the handle was signed;
	// Verify still reads it (Legacy), nothing writes it but SignLegacy.
	legacyListVersion = 1
	membershipVersion = 1
	entryStmtVersion  = 1
)

var (
	// ErrBadSignature: the account's signature over the whole list fails.
	ErrBadSignature = errors.New("devicelist: bad list signature")
	// ErrAccountSignature: an entry lacks a valid account signature.
	ErrAccountSignature = errors.New("devicelist: device without a valid account signature")
	// ErrDeviceSignature: an entry's device did not sign this account (a
	// missing signature, or one made for another account).
	ErrDeviceSignature = errors.New("devicelist: device did not sign this account")
	// ErrWrongAccount: the list belongs to another account key.
	ErrWrongAccount = errors.New("devicelist: list is for another account")
	// ErrRollback: an update's version is not greater than the current one.
	ErrRollback = errors.New("devicelist: version not greater than current")
	// ErrDuplicateDevice: two entries share a device id or a public key.
	ErrDuplicateDevice = errors.New("devicelist: duplicate device")
	// ErrTooManyDevices: more than MaxDevices entries.
	ErrTooManyDevices = errors.New("devicelist: too many devices")
	// ErrPrimary: the list does not have exactly one primary device.
	ErrPrimary = errors.New("devicelist: list must have exactly one primary device")
	// ErrInvalidEntry: a bad name or inconsistent times.
	ErrInvalidEntry = errors.New("devicelist: invalid entry")
	// ErrMalformed: the encoding does not parse (wraps the wire error).
	ErrMalformed = errors.New("devicelist: malformed encoding")
	// ErrOtherHandle: the list names another handle than the one it was
	// fetched for or is stored under.
	ErrOtherHandle = errors.New("devicelist: list names another handle")
	// ErrLegacyList: a list of format 1, which names no handle, offered
	// as a new list (a registration, an update, a first pin).
	ErrLegacyList = errors.New("devicelist: list of format 1 names no handle")
	// ErrAttestationExpired: the entry was last attested too long ago.
	ErrAttestationExpired = errors.New("devicelist: device attestation expired")
)

// Entry is one device of the account.
type Entry struct {
	Device   identity.DevicePublic
	Name     string // display name, at most MaxNameLen bytes of UTF-8
	Added    uint64 // Unix seconds, when the device joined
	Attested uint64 // Unix seconds, when the account last signed this entry
	Primary  bool   // the device holding the account key

	// AccountSig is the account's signature (PurposeAccountSignsDevice)
	// over the entry statement; Sign fills it in.
	AccountSig []byte
	// DeviceSig is the device's signature (PurposeDeviceSignsAccount) over
	// the membership statement; see DeviceSignature.
	DeviceSig []byte
}

// List is an account's device list. Timestamp is when the primary signed
// it (Unix seconds); Version only grows. Handle is the handle the account
// is registered under, at most identity.MaxHandleLen bytes; it is empty
// only in a Legacy list.
type List struct {
	Account   ed25519.PublicKey
	Handle    string
	Version   uint64
	Timestamp uint64
	Entries   []Entry
}

// membershipStatement is what a device signs to join an account:
// u8 1 || account public key || DevicePublic.
func membershipStatement(account ed25519.PublicKey, dev identity.DevicePublic) []byte {
	w := wire.NewWriter(1 + 32 + 81)
	w.U8(membershipVersion)
	w.Fixed(account)
	dev.Encode(w)
	return w.Bytes()
}

// DeviceSignature is the device's half of the link: its signature stating
// that it belongs to the account with public key account. The companion
// makes it when linking and sends it to the primary.
func DeviceSignature(dev *identity.Device, account ed25519.PublicKey) []byte {
	return dev.Sign(identity.PurposeDeviceSignsAccount, membershipStatement(account, dev.Public()))
}

// VerifyDeviceSignature checks a DeviceSignature.
func VerifyDeviceSignature(account ed25519.PublicKey, dev identity.DevicePublic, sig []byte) error {
	if identity.VerifySignature(dev.SignPub, identity.PurposeDeviceSignsAccount, membershipStatement(account, dev), sig) != nil {
		return fmt.Errorf("%w: device %s", ErrDeviceSignature, dev.ID)
	}
	return nil
}

// entryStatement is what the account signs per device:
// u8 1 || account public key || DevicePublic || str name || u64 added ||
// u64 attested || bool primary.
func entryStatement(account ed25519.PublicKey, e *Entry) []byte {
	w := wire.NewWriter(1 + 32 + 81 + 4 + len(e.Name) + 17)
	w.U8(entryStmtVersion)
	w.Fixed(account)
	e.Device.Encode(w)
	w.String(e.Name)
	w.U64(e.Added)
	w.U64(e.Attested)
	w.Bool(e.Primary)
	return w.Bytes()
}

// encodeBody is the list encoding without the final signature; the account
// signs exactly these bytes (PurposeDeviceList). A list without a handle is
// written in the legacy format (SignLegacy only).
func encodeBody(l *List) []byte {
	w := wire.NewWriter(1024)
	if l.Handle == "" {
		w.U8(legacyListVersion)
		w.Fixed(l.Account)
	} else {
		w.U8(listVersion)
		w.Fixed(l.Account)
		w.String(l.Handle)
	}
	w.U64(l.Version)
	w.U64(l.Timestamp)
	w.U32(uint32(len(l.Entries)))
	for i := range l.Entries {
		e := &l.Entries[i]
		e.Device.Encode(w)
		w.String(e.Name)
		w.U64(e.Added)
		w.U64(e.Attested)
		w.Bool(e.Primary)
		w.Fixed(fixedSig(e.AccountSig))
		w.Fixed(fixedSig(e.DeviceSig))
	}
	return w.Bytes()
}

// fixedSig writes a missing signature as 64 zero bytes, which never
// verifies, so that an unsigned entry still encodes canonically.
func fixedSig(s []byte) []byte {
	if len(s) != identity.SignatureSize {
		return make([]byte, identity.SignatureSize)
	}
	return s
}

// checkStructure enforces everything that does not need a signature check.
func checkStructure(l *List) error {
	if len(l.Account) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: account key of %d bytes", ErrMalformed, len(l.Account))
	}
	if len(l.Handle) > identity.MaxHandleLen {
		return fmt.Errorf("%w: handle of %d bytes, limit %d", ErrMalformed, len(l.Handle), identity.MaxHandleLen)
	}
	if len(l.Entries) > MaxDevices {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyDevices, len(l.Entries), MaxDevices)
	}
	primaries := 0
	ids := make(map[identity.DeviceID]bool, len(l.Entries))
	keys := make(map[[32]byte]bool, 2*len(l.Entries))
	for i := range l.Entries {
		e := &l.Entries[i]
		if len(e.Device.SignPub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: device %s: signing key of %d bytes", ErrMalformed, e.Device.ID, len(e.Device.SignPub))
		}
		if e.Device.ID.IsZero() {
			return fmt.Errorf("%w: zero device id", ErrInvalidEntry)
		}
		if ids[e.Device.ID] {
			return fmt.Errorf("%w: id %s", ErrDuplicateDevice, e.Device.ID)
		}
		ids[e.Device.ID] = true
		for _, k := range [][32]byte{[32]byte(e.Device.SignPub), e.Device.DHPub} {
			if keys[k] {
				return fmt.Errorf("%w: device %s reuses a public key", ErrDuplicateDevice, e.Device.ID)
			}
			keys[k] = true
		}
		if err := checkName(e.Name); err != nil {
			return fmt.Errorf("%w: device %s: %v", ErrInvalidEntry, e.Device.ID, err)
		}
		if e.Added > e.Attested || e.Attested > l.Timestamp {
			return fmt.Errorf("%w: device %s: times must satisfy added <= attested <= list timestamp", ErrInvalidEntry, e.Device.ID)
		}
		if e.Primary {
			primaries++
		}
	}
	if primaries != 1 {
		return fmt.Errorf("%w: found %d", ErrPrimary, primaries)
	}
	return nil
}

func checkName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("name of %d bytes, limit %d", len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return errors.New("name is not UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New("name contains a control character")
		}
	}
	return nil
}

// Sign checks l (limits, duplicates, one primary, names, times, and every
// entry's DeviceSig), fills in every entry's AccountSig, signs the whole
// list with the account key and returns the encoding to publish. l.Account
// must be account's public key and l.Handle the handle it is published
// under.
func Sign(account *identity.Account, l *List) ([]byte, error) {
	if l.Handle == "" {
		return nil, ErrLegacyList
	}
	return sign(account, l)
}

// SignLegacy signs l in format 1, which names no handle (l.Handle must be
// empty). Nothing in Parley publishes such a list any more: it exists so
// that vectors and tests can make the lists published before format 2,
// and test what the relay and clients do with them.
func SignLegacy(account *identity.Account, l *List) ([]byte, error) {
	if l.Handle != "" {
		return nil, fmt.Errorf("%w: a legacy list names no handle", ErrMalformed)
	}
	return sign(account, l)
}

func sign(account *identity.Account, l *List) ([]byte, error) {
	if !account.Public().Equal(l.Account) {
		return nil, ErrWrongAccount
	}
	if err := checkStructure(l); err != nil {
		return nil, err
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		if err := VerifyDeviceSignature(l.Account, e.Device, e.DeviceSig); err != nil {
			return nil, err
		}
		e.AccountSig = account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, e))
	}
	body := encodeBody(l)
	return append(body, account.Sign(identity.PurposeDeviceList, body)...), nil
}

// decode parses an encoded list strictly, without checking signatures.
func decode(encoded []byte) (*List, []byte, []byte, error) {
	if len(encoded) > MaxEncodedSize {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(encoded), MaxEncodedSize)
	}
	r := wire.NewReader(encoded)
	format := r.U8()
	if r.Err() == nil && format != listVersion && format != legacyListVersion {
		return nil, nil, nil, fmt.Errorf("%w: %w: format %d", ErrMalformed, wire.ErrVersion, format)
	}
	l := &List{}
	l.Account = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	if format == listVersion {
		// Format 2 always names a handle: an empty one would read as a
		// legacy list that is not one.
		if l.Handle = r.String(identity.MaxHandleLen); r.Err() == nil && l.Handle == "" {
			return nil, nil, nil, fmt.Errorf("%w: empty handle", ErrMalformed)
		}
	}
	l.Version = r.U64()
	l.Timestamp = r.U64()
	n := r.Count(MaxDevices)
	if r.Err() != nil && errors.Is(r.Err(), wire.ErrTooLarge) {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrTooManyDevices, r.Err())
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		var e Entry
		e.Device = identity.DecodeDevicePublic(r)
		e.Name = r.String(MaxNameLen)
		e.Added = r.U64()
		e.Attested = r.U64()
		e.Primary = r.Bool()
		e.AccountSig = r.Fixed(identity.SignatureSize)
		e.DeviceSig = r.Fixed(identity.SignatureSize)
		l.Entries = append(l.Entries, e)
	}
	bodyLen := len(encoded) - r.Remaining()
	sig := r.Fixed(identity.SignatureSize)
	if err := r.Finish(); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return l, encoded[:bodyLen], sig, nil
}

// PeekAccount returns the account key a list claims to be for, without
// verifying anything. Only a relay registering a brand-new account (no key
// pinned yet) should use it, and must then call Verify with the result.
func PeekAccount(encoded []byte) (ed25519.PublicKey, error) {
	l, _, _, err := decode(encoded)
	if err != nil {
		return nil, err
	}
	return l.Account, nil
}

// Verify decodes an encoded list and checks that it is for accountPub and
// names handle (the handle it was fetched for, or is stored under), that
// the account signed it, that it is well formed (limits, no duplicates,
// exactly one primary) and that every entry carries both the account's and
// the device's signatures. A Legacy list names no handle and passes the
// handle check: the caller decides whether it may stand (PROTOCOL.md 3.6).
// It does not compare versions: call CheckUpdate against the stored list
// before accepting it as current.
func Verify(accountPub ed25519.PublicKey, handle string, encoded []byte) (*List, error) {
	l, body, sig, err := decode(encoded)
	if err != nil {
		return nil, err
	}
	if !l.Account.Equal(accountPub) {
		return nil, ErrWrongAccount
	}
	// Handles are public: no constant-time comparison is needed.
	if !l.Legacy() && l.Handle != handle {
		return nil, fmt.Errorf("%w: %q, fetched for %q", ErrOtherHandle, l.Handle, handle)
	}
	if identity.VerifySignature(accountPub, identity.PurposeDeviceList, body, sig) != nil {
		return nil, ErrBadSignature
	}
	if err := checkStructure(l); err != nil {
		return nil, err
	}
	for i := range l.Entries {
		e := &l.Entries[i]
		if identity.VerifySignature(accountPub, identity.PurposeAccountSignsDevice, entryStatement(accountPub, e), e.AccountSig) != nil {
			return nil, fmt.Errorf("%w: device %s", ErrAccountSignature, e.Device.ID)
		}
		if err := VerifyDeviceSignature(accountPub, e.Device, e.DeviceSig); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// CheckUpdate reports whether next may replace prev: same account, same
// handle, a strictly greater version, and next is not Legacy (a list of
// format 1 stays only until the account's next update). Both must already
// be verified. An equal version is refused too, so the relay cannot swap
// in a different list signed at the same version.
func CheckUpdate(prev, next *List) error {
	if !prev.Account.Equal(next.Account) {
		return ErrWrongAccount
	}
	if next.Legacy() {
		return ErrLegacyList
	}
	if !prev.Legacy() && prev.Handle != next.Handle {
		return fmt.Errorf("%w: %q after %q", ErrOtherHandle, next.Handle, prev.Handle)
	}
	if next.Version <= prev.Version {
		return fmt.Errorf("%w: have %d, got %d", ErrRollback, prev.Version, next.Version)
	}
	return nil
}

// Legacy reports whether l is of format 1, which names no handle.
func (l *List) Legacy() bool { return l.Handle == "" }

// Find returns the entry for id, or nil.
func (l *List) Find(id identity.DeviceID) *Entry {
	for i := range l.Entries {
		if l.Entries[i].Device.ID == id {
			return &l.Entries[i]
		}
	}
	return nil
}

// Primary returns the primary device's entry, or nil in an unchecked list.
func (l *List) Primary() *Entry {
	for i := range l.Entries {
		if l.Entries[i].Primary {
			return &l.Entries[i]
		}
	}
	return nil
}

// Clone returns a deep copy, for building the next version.
func (l *List) Clone() *List {
	c := *l
	c.Account = append(ed25519.PublicKey(nil), l.Account...)
	c.Entries = make([]Entry, len(l.Entries))
	for i, e := range l.Entries {
		e.Device.SignPub = append(ed25519.PublicKey(nil), e.Device.SignPub...)
		e.AccountSig = append([]byte(nil), e.AccountSig...)
		e.DeviceSig = append([]byte(nil), e.DeviceSig...)
		c.Entries[i] = e
	}
	return &c
}

// CheckAttestation returns ErrAttestationExpired if the entry was last
// attested more than maxAge before now.
func CheckAttestation(e *Entry, now time.Time, maxAge time.Duration) error {
	attested := time.Unix(int64(e.Attested), 0)
	if now.Sub(attested) > maxAge {
		return fmt.Errorf("%w: device %s last attested %s", ErrAttestationExpired, e.Device.ID, attested.UTC().Format(time.RFC3339))
	}
	return nil
}

// Expired lists the non-primary devices whose attestation is older than
// maxAge; the primary retires them by signing a list without them.
func (l *List) Expired(now time.Time, maxAge time.Duration) []identity.DeviceID {
	var out []identity.DeviceID
	for i := range l.Entries {
		e := &l.Entries[i]
		if !e.Primary && CheckAttestation(e, now, maxAge) != nil {
			out = append(out, e.Device.ID)
		}
	}
	return out
}

// Reattest makes the next version of prev under handle: the same devices,
// Version+1, Timestamp now, and Attested set to now for the devices in ids
// (every device if ids is empty), freshly signed by the account. It
// returns the new list and its encoding. prev is not modified; a Legacy
// prev gets its handle this way.
func Reattest(account *identity.Account, prev *List, handle string, now time.Time, ids ...identity.DeviceID) (*List, []byte, error) {
	next := prev.Clone()
	next.Handle = handle
	next.Version++
	if next.Version == 0 {
		return nil, nil, fmt.Errorf("%w: version overflow", ErrRollback)
	}
	ts := uint64(now.Unix())
	if ts < next.Timestamp {
		ts = next.Timestamp
	}
	next.Timestamp = ts
	for i := range next.Entries {
		e := &next.Entries[i]
		if len(ids) == 0 || contains(ids, e.Device.ID) {
			e.Attested = ts
		}
	}
	enc, err := Sign(account, next)
	if err != nil {
		return nil, nil, err
	}
	return next, enc, nil
}

func contains(ids []identity.DeviceID, id identity.DeviceID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
