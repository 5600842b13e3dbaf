package link

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// The messages carried inside the sealed channel (PROTOCOL.md 7.5): the
// companion's join request or decline, and the primary's bundle.

const (
	// MaxHistoryPointer bounds the opaque history pointer in a Bundle (a
	// blob id and key, not the history itself).
	MaxHistoryPointer = 4096
	// MaxHandleLen bounds the account handle in a Bundle: the relay's
	// handle rule allows 3–32 characters.
	MaxHandleLen = 32
	// SyncKeySize is the size of the account's state-sync key.
	SyncKeySize = 32

	joinVersion   = 1
	bundleVersion = 1
)

// ErrNotInList means a link bundle's device list does not contain the
// companion with its own keys: the primary did not add this device.
var ErrNotInList = errors.New("link: companion is not in the bundle's device list")

// Decline is the plaintext of the companion's first sealed message when
// its user rejects the check code: empty, which no join request is. The
// primary then abandons the link and says so; because it is sealed, the
// relay cannot forge a decline any more than a join request.
var Decline = []byte{}

// IsDecline reports whether the companion's first sealed message,
// opened, is a Decline.
func IsDecline(plaintext []byte) bool { return len(plaintext) == 0 }

// JoinRequest is the companion's first sealed message when its user
// confirmed the check code: its public keys, its device-signs-account
// signature for the account named in the hello, and the name it proposes
// for itself.
type JoinRequest struct {
	Device    identity.DevicePublic
	DeviceSig []byte // devicelist.DeviceSignature, 64 bytes
	Name      string // at most devicelist.MaxNameLen bytes
}

// NewJoinRequest makes the companion's join request for account (from
// Session.Account).
func NewJoinRequest(dev *identity.Device, account ed25519.PublicKey, name string) *JoinRequest {
	return &JoinRequest{Device: dev.Public(), DeviceSig: devicelist.DeviceSignature(dev, account), Name: name}
}

// Verify checks, on the primary, that the device signed this account.
func (j *JoinRequest) Verify(account ed25519.PublicKey) error {
	return devicelist.VerifyDeviceSignature(account, j.Device, j.DeviceSig)
}

// MarshalBinary encodes u8 1 ‖ DevicePublic ‖ device signature (64) ‖
// str name.
func (j *JoinRequest) MarshalBinary() ([]byte, error) {
	if len(j.Device.SignPub) != ed25519.PublicKeySize || len(j.DeviceSig) != identity.SignatureSize {
		return nil, fmt.Errorf("%w: join request keys", ErrMalformed)
	}
	if len(j.Name) > devicelist.MaxNameLen {
		return nil, fmt.Errorf("%w: name of %d bytes", ErrTooLarge, len(j.Name))
	}
	w := wire.NewWriter(1 + 81 + 64 + 4 + len(j.Name))
	w.U8(joinVersion)
	j.Device.Encode(w)
	w.Fixed(j.DeviceSig)
	w.String(j.Name)
	return w.Bytes(), nil
}

// UnmarshalJoinRequest decodes MarshalBinary's output strictly; it does
// not check the signature (Verify does).
func UnmarshalJoinRequest(b []byte) (*JoinRequest, error) {
	r := wire.NewReader(b)
	r.Version(joinVersion)
	j := &JoinRequest{}
	j.Device = identity.DecodeDevicePublic(r)
	j.DeviceSig = r.Fixed(identity.SignatureSize)
	j.Name = r.String(devicelist.MaxNameLen)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: join request: %w", ErrMalformed, err)
	}
	return j, nil
}

// Bundle is the link bundle, the primary's sealed answer once the user has
// confirmed the check code: everything the companion needs to act as a
// device of the account.
type Bundle struct {
	Account    ed25519.PublicKey
	Handle     string            // the account's handle on the relay, ≤ MaxHandleLen
	DeviceID   identity.DeviceID // the companion's id, as the primary listed it
	DeviceList []byte            // signed device list (3.2) containing the companion
	SyncKey    [SyncKeySize]byte // key shared by the account's devices for state sync
	History    []byte            // opaque pointer to recent history, ≤ MaxHistoryPointer
}

// MarshalBinary encodes u8 1 ‖ account (32) ‖ device id (16) ‖
// var(device list) ‖ sync key (32) ‖ var(history).
func (b *Bundle) MarshalBinary() ([]byte, error) {
	if len(b.Account) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: account key of %d bytes", ErrMalformed, len(b.Account))
	}
	if len(b.DeviceList) > devicelist.MaxEncodedSize || len(b.History) > MaxHistoryPointer || len(b.Handle) > MaxHandleLen {
		return nil, fmt.Errorf("%w: bundle field over its limit", ErrTooLarge)
	}
	w := wire.NewWriter(1 + 32 + 4 + len(b.Handle) + 16 + 4 + len(b.DeviceList) + 32 + 4 + len(b.History))
	w.U8(bundleVersion)
	w.Fixed(b.Account)
	w.String(b.Handle)
	w.Fixed(b.DeviceID[:])
	w.Var(b.DeviceList)
	w.Fixed(b.SyncKey[:])
	w.Var(b.History)
	return w.Bytes(), nil
}

// UnmarshalBundle decodes MarshalBinary's output strictly; Check verifies
// it.
func UnmarshalBundle(data []byte) (*Bundle, error) {
	r := wire.NewReader(data)
	r.Version(bundleVersion)
	b := &Bundle{}
	b.Account = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	b.Handle = r.String(MaxHandleLen)
	r.FixedInto(b.DeviceID[:])
	b.DeviceList = r.Var(devicelist.MaxEncodedSize)
	r.FixedInto(b.SyncKey[:])
	b.History = r.Var(MaxHistoryPointer)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: bundle: %w", ErrMalformed, err)
	}
	return b, nil
}

// Check is the companion's verification of a received bundle: the account
// must be the one from the hello (Session.Account), the device list must
// verify under it, and the companion (self) must be in it, under the id
// the bundle names, with exactly its own keys. It returns the verified
// list, which the companion stores as its current one.
func (b *Bundle) Check(account ed25519.PublicKey, self identity.DevicePublic) (*devicelist.List, error) {
	if !b.Account.Equal(account) {
		return nil, fmt.Errorf("link: bundle: %w", devicelist.ErrWrongAccount)
	}
	l, err := devicelist.Verify(account, b.Handle, b.DeviceList)
	if err != nil {
		return nil, fmt.Errorf("link: bundle: %w", err)
	}
	e := l.Find(b.DeviceID)
	if b.DeviceID != self.ID || e == nil || !e.Device.Equal(self) {
		return nil, ErrNotInList
	}
	return l, nil
}
