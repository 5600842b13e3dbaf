// Package groupstate is the pure part of Parley's groups
// (docs/PROTOCOL.md §14.6): the signed, versioned group state — its
// encoding, its signature (purpose parley/v1/group-change), the checks a
// decoder must make, the binding of a group's id to its creator's account
// key (NewID) and the authority rule a receiver verifies (Verify for a
// held group, VerifyFirst for one seen first) — the group id a sender
// chain carries, which names the state version it was made for
// (ChainGroupID), and the
// records the engine stores beside it (a device's sender chain, a group
// message waiting to go out, one waiting for its chain) and the leave
// request's body.
//
// Nothing here touches storage, the relay or the engine's locks: Parse and
// Verify are what a receiver calls on a state from the wire, State.Sign
// what an admin device calls on the next version it made. Which state is
// held, which version wins and what a change sends are the engine's
// (client/group*.go).
package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// Purpose is the signature purpose of a group state (PROTOCOL.md §2.2).
const Purpose = "parley/v1/group-change"

// LegacyFormat is the first byte of a state of format 1 (Legacy).
const LegacyFormat = 1

// IDLabel starts the hash a group's id is made from (NewID).
const IDLabel = "parley/v1/group-id"

// Limits, enforced by Parse.
const (
	// stateVersion is the format version of a group state: 2 carries the
	// creator its id is bound to and the chain floor.
	stateVersion = 2
	// legacyVersion is the format of groups made before ids were bound
	// to their creator: still decoded (a device keeps its old groups to
	// read), never accepted from the wire nor changed (§14.6, Migration).
	legacyVersion = LegacyFormat
	// IDSize is the size of a group id: the first 16 bytes of NewID's
	// hash, so a second group with the same id would take a second
	// preimage (2^128 work), not a collision.
	IDSize = 16
	// NonceSize is the size of the creator's random nonce in the id.
	NonceSize = 16
	// ChainGroupIDSize is the size of the group id a sender chain carries
	// (ChainGroupID): the group's id and the state version it was made for.
	ChainGroupIDSize = IDSize + 8
	// MaxMembers bounds a group so that one GroupSend (at most
	// relay.MaxRecipients devices) reaches every device of every member:
	// 64 accounts × devicelist.MaxDevices (16) = 1024.
	MaxMembers = 64
	// MaxNameLen bounds a group name in bytes.
	MaxNameLen = 64
	// MaxAdmins bounds the admin devices of a group: one account's
	// devices (devicelist.MaxDevices).
	MaxAdmins = 16
	// MaxHandleLen bounds a member's handle: the relay's handle rule
	// (relay.ValidHandle), which Parse checks.
	MaxHandleLen = relay.MaxHandle
)

// ID is a group's id.
type ID = [IDSize]byte

// Admin is one device allowed to sign group changes.
type Admin struct {
	Handle string
	Device identity.DeviceID
	Key    ed25519.PublicKey
}

// State is one version of a group, signed by an admin device.
type State struct {
	ID ID
	// Legacy is set on a state of format 1 (no creator, no floor), as
	// Parse read it from storage.
	Legacy bool
	// Creator, CreatorKey and Nonce are what ID is made from (NewID): the
	// creating account's handle and account key, and a random nonce.
	Creator    string
	CreatorKey ed25519.PublicKey
	Nonce      [NonceSize]byte
	Version    uint64
	// Floor is the version of the latest state that removed a member (0:
	// none yet): a sender chain made for a lower version was made for a
	// device set that included a removed member, and is refused.
	Floor   uint64
	Name    string
	Members []string // sorted, unique handles
	Admins  []Admin
	Signer  identity.DeviceID
	Sig     []byte
	raw     []byte // the exact signed encoding
}

// Raw is the exact signed encoding of g, as Sign made it or Parse read it
// (nil before either).
func (g *State) Raw() []byte { return g.raw }

// SignedPart encodes every field before the signature: what the signer
// signs.
func (g *State) SignedPart() []byte {
	w := wire.NewWriter(160 + len(g.Name) + 40*len(g.Members) + 90*len(g.Admins))
	if g.Legacy {
		w.U8(legacyVersion)
		w.Fixed(g.ID[:])
		w.U64(g.Version)
	} else {
		w.U8(stateVersion)
		w.Fixed(g.ID[:])
		w.String(g.Creator)
		w.Fixed(g.CreatorKey)
		w.Fixed(g.Nonce[:])
		w.U64(g.Version)
		w.U64(g.Floor)
	}
	w.String(g.Name)
	w.U32(uint32(len(g.Members)))
	for _, m := range g.Members {
		w.String(m)
	}
	w.U32(uint32(len(g.Admins)))
	for _, a := range g.Admins {
		w.String(a.Handle)
		w.Fixed(a.Device[:])
		w.Fixed(a.Key)
	}
	w.Fixed(g.Signer[:])
	return w.Bytes()
}

// Sign signs g with dev, which becomes its signer.
func (g *State) Sign(dev *identity.Device) {
	g.Signer = dev.ID
	msg := g.SignedPart()
	g.Sig = dev.Sign(Purpose, msg)
	g.raw = append(msg, g.Sig...)
}

// Parse decodes and checks the form of a group state; the signature is
// checked by Verify against the right authority.
func Parse(b []byte) (*State, error) {
	r := wire.NewReader(b)
	g := &State{}
	if len(b) > 0 && b[0] == legacyVersion {
		r.Version(legacyVersion)
		g.Legacy = true
		r.FixedInto(g.ID[:])
		g.Version = r.U64()
	} else {
		r.Version(stateVersion)
		r.FixedInto(g.ID[:])
		g.Creator = r.String(MaxHandleLen)
		g.CreatorKey = ed25519.PublicKey(bytes.Clone(r.Fixed(ed25519.PublicKeySize)))
		r.FixedInto(g.Nonce[:])
		g.Version = r.U64()
		g.Floor = r.U64()
	}
	g.Name = r.String(MaxNameLen)
	n := r.Count(MaxMembers)
	for i := 0; i < n && r.Err() == nil; i++ {
		g.Members = append(g.Members, r.String(MaxHandleLen))
	}
	n = r.Count(MaxAdmins)
	for i := 0; i < n && r.Err() == nil; i++ {
		var a Admin
		a.Handle = r.String(MaxHandleLen)
		r.FixedInto(a.Device[:])
		a.Key = ed25519.PublicKey(bytes.Clone(r.Fixed(ed25519.PublicKeySize)))
		g.Admins = append(g.Admins, a)
	}
	r.FixedInto(g.Signer[:])
	g.Sig = bytes.Clone(r.Fixed(ed25519.SignatureSize))
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("group state: %w", err)
	}
	if g.Version == 0 {
		return nil, ErrVersionZero
	}
	if !g.Legacy {
		if !relay.ValidHandle(g.Creator) {
			return nil, detail(ErrBadMember, "group state: bad creator handle %q", g.Creator)
		}
		if NewID(g.Creator, g.CreatorKey, g.Nonce) != g.ID {
			return nil, ErrIDNotBound
		}
		if g.Floor > g.Version {
			return nil, ErrFloorAhead
		}
	}
	if g.Name == "" || !utf8.ValidString(g.Name) {
		return nil, ErrBadName
	}
	if len(g.Members) == 0 || len(g.Admins) == 0 {
		return nil, ErrEmpty
	}
	for i, m := range g.Members {
		if !relay.ValidHandle(m) {
			return nil, detail(ErrBadMember, "group state: bad member handle %q", m)
		}
		if i > 0 && g.Members[i-1] >= m {
			return nil, ErrMembersUnsorted
		}
	}
	for i, a := range g.Admins {
		if !g.IsMember(a.Handle) {
			return nil, detail(ErrAdminNotMember, "group state: admin %s is not a member", a.Handle)
		}
		for _, o := range g.Admins[:i] {
			if o.Device == a.Device {
				return nil, ErrAdminTwice
			}
		}
	}
	if g.Admin(g.Signer) == nil {
		return nil, ErrSignerNotAdmin
	}
	g.raw = bytes.Clone(b)
	return g, nil
}

// IsMember reports whether handle is a member of g.
func (g *State) IsMember(handle string) bool {
	_, ok := slices.BinarySearch(g.Members, handle)
	return ok
}

// SameContent reports whether g and o say the same thing (name, members,
// admins), whoever signed them.
func (g *State) SameContent(o *State) bool {
	return g.ID == o.ID && g.Version == o.Version && g.Name == o.Name && slices.Equal(g.Members, o.Members) &&
		slices.EqualFunc(g.Admins, o.Admins, func(a, b Admin) bool {
			return a.Handle == b.Handle && a.Device == b.Device && bytes.Equal(a.Key, b.Key)
		})
}

// IsAdminAccount reports whether any device of handle administers g.
func (g *State) IsAdminAccount(handle string) bool {
	return slices.ContainsFunc(g.Admins, func(a Admin) bool { return a.Handle == handle })
}

// AdminAccounts lists the accounts whose devices administer g.
func (g *State) AdminAccounts() []string {
	var out []string
	for _, a := range g.Admins {
		if !slices.Contains(out, a.Handle) {
			out = append(out, a.Handle)
		}
	}
	return out
}

// Admin returns the admin entry of device dev, or nil if dev is no admin
// of g.
func (g *State) Admin(dev identity.DeviceID) *Admin {
	for i := range g.Admins {
		if g.Admins[i].Device == dev {
			return &g.Admins[i]
		}
	}
	return nil
}

// NewID is the id of a group that the account handle, whose account key
// is accountKey, creates with nonce: the first IDSize bytes of
// SHA-256(str(IDLabel) ‖ str(handle) ‖ account key ‖ nonce). No one but
// that account can sign a first state for it (VerifyFirst).
func NewID(handle string, accountKey ed25519.PublicKey, nonce [NonceSize]byte) ID {
	w := wire.NewWriter(64 + len(handle))
	w.String(IDLabel)
	w.String(handle)
	w.Fixed(accountKey)
	w.Fixed(nonce[:])
	sum := sha256.Sum256(w.Bytes())
	var id ID
	copy(id[:], sum[:])
	return id
}

// Bind makes g a group that the account creator, whose account key is
// key, creates with nonce: it sets the creator fields and the id they make.
func (g *State) Bind(creator string, key ed25519.PublicKey, nonce [NonceSize]byte) {
	g.Creator, g.CreatorKey, g.Nonce = creator, bytes.Clone(key), nonce
	g.ID = NewID(creator, key, nonce)
}

// Next is the start of g's next version: the same group (id, creator,
// format), version + 1, the same floor, name and members, no admins and
// no signature yet.
func (g *State) Next() *State {
	return &State{ID: g.ID, Legacy: g.Legacy, Creator: g.Creator, CreatorKey: g.CreatorKey, Nonce: g.Nonce,
		Version: g.Version + 1, Floor: g.Floor, Name: g.Name, Members: slices.Clone(g.Members)}
}

// ChainGroupID is the group id a sender chain of group id made at state
// version carries (crypto/senderkey's group id): id ‖ u64 version. Every
// message on the chain is bound to it (AEAD and signature), and a
// receiver refuses a chain made for a version below its state's Floor.
func ChainGroupID(id ID, version uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(id[:]), version)
}

// ParseChainGroupID splits a sender chain's group id into the group's id
// and the state version the chain was made for; ok is false for any other
// size (a chain of a legacy group carried the bare 16-byte id).
func ParseChainGroupID(b []byte) (id ID, version uint64, ok bool) {
	if len(b) != ChainGroupIDSize {
		return id, 0, false
	}
	copy(id[:], b)
	return id, binary.BigEndian.Uint64(b[IDSize:]), true
}

// VerifyFirst is the authority rule for a group the receiver holds no
// state of: g must be of the current format (not Legacy), creatorList —
// the creator's device list, which the caller has verified under the
// account key it holds for g.Creator (§3) — must be for g.CreatorKey, and
// the signer must be an admin device of the creator's account that is in
// that list with that very key, and must have signed g. A removed member
// who knows the id can sign a state for it only as the creator, whose
// account key he lacks, or as himself, whose key does not make the id.
// The errors are ErrLegacy, ErrNotCreator and ErrBadSignature.
func (g *State) VerifyFirst(creatorList *devicelist.List) (*Admin, error) {
	if g.Legacy {
		return nil, ErrLegacy
	}
	if creatorList == nil || !creatorList.Account.Equal(g.CreatorKey) {
		return nil, detail(ErrNotCreator, "group state: %s's account key is not the one the group's id is made from", g.Creator)
	}
	signer := g.Admin(g.Signer)
	if signer == nil || signer.Handle != g.Creator {
		return nil, detail(ErrNotCreator, "group state: signed by a device that is not %s's, the group's creator", g.Creator)
	}
	if en := creatorList.Find(signer.Device); en == nil || !bytes.Equal(en.Device.SignPub, signer.Key) {
		return nil, detail(ErrNotCreator, "group state: the signing device %s is not in %s's device list with that key", signer.Device, g.Creator)
	}
	return g.Verify([]Admin{*signer})
}

// Verify checks that an admin of authority (the admins of the state the
// receiver holds) signed g, and returns that admin. The errors are
// ErrNotAuthority and ErrBadSignature (wrapping identity's). A group seen
// first is VerifyFirst's.
func (g *State) Verify(authority []Admin) (*Admin, error) {
	var signer *Admin
	for i := range authority {
		if authority[i].Device == g.Signer {
			signer = &authority[i]
		}
	}
	if signer == nil {
		return nil, ErrNotAuthority
	}
	if err := identity.VerifySignature(signer.Key, Purpose, g.raw[:len(g.raw)-ed25519.SignatureSize], g.Sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return signer, nil
}
