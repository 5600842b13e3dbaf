// Package groupstate is the pure part of Parley's groups
// (docs/PROTOCOL.md §14.6): the signed, versioned group state — its
// encoding, its signature (purpose parley/v1/group-change), the checks a
// decoder must make and the authority rule a receiver verifies — and the
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
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// Purpose is the signature purpose of a group state (PROTOCOL.md §2.2).
const Purpose = "parley/v1/group-change"

// Limits, enforced by Parse.
const (
	// stateVersion is the format version of a group state.
	stateVersion = 1
	// IDSize is the size of a group id (random).
	IDSize = 16
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
	ID      ID
	Version uint64
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
	w := wire.NewWriter(64 + len(g.Name) + 40*len(g.Members) + 90*len(g.Admins))
	w.U8(stateVersion)
	w.Fixed(g.ID[:])
	w.U64(g.Version)
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
	r.Version(stateVersion)
	g := &State{}
	r.FixedInto(g.ID[:])
	g.Version = r.U64()
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

// Verify checks that an admin of authority (the admins of the state the
// receiver holds, or of g itself for a group seen first) signed g, and
// returns that admin. The errors are ErrNotAuthority and ErrBadSignature
// (wrapping identity's).
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
