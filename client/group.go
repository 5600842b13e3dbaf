package client

// Groups (PROTOCOL.md 14.6).
//
// A group is a signed, versioned state — id, name, members, admins — that
// an admin device changes and sends to every member device over the
// pairwise sessions (kindGroupState). Receivers accept a state only if an
// admin of the state they already hold signed it and its version is
// higher, so neither the relay nor a member can roll a group back or
// change it without an admin. A group's id is a hash of its creator's
// account key and a nonce, and a device that holds no state of a group
// takes only one its creator's account signed (a device in that account's
// verified list), so no one who merely knows the id — a removed member —
// can claim the group on a device that does not hold it yet.
//
// Messages use sender keys (crypto/senderkey, PROTOCOL.md 6): each device
// that sends to a group owns one chain there, made for an exact set of
// recipient devices (every active device of every other member plus this
// account's other devices). Its distribution travels over the pairwise
// sessions (kindSenderKey) before the first message on it, and every
// message is one ciphertext the relay copies to each device (GroupSend).
// Whenever the current set of recipient devices differs from the set a
// chain was made for — a member added or removed, a device linked or
// revoked — the next send makes a new chain (PROTOCOL.md 6.4), so a removed
// device never holds a key for what follows, and an added one none for
// what came before.
//
// A group message whose chain is not known yet (its distribution is still
// behind it, or the group state is) is kept in bGroupPend and opened when
// the distribution or state arrives, in the same batch.
//
// Renaming is a new version like a membership change (RenameGroup); the
// device set stays, so no chain is remade. A member who is no admin cannot
// sign a state, so leaving is a request (LeaveGroup, kindGroupLeave) to the
// admins' devices: the leaver marks the group left (bGroupLeft) and stops
// sending at once, and the first admin device to read the request removes
// the member as RemoveMember would; the state without the leaver then ends
// its reading like any removed member's. The request carries the version
// of the state the leaver held, and every device keeps, per group member,
// the version of the state in which it last joined (bGroupJoined): a
// request older than the member's latest joining was made before it came
// back and is ignored, so a request delivered late cannot remove (or mark
// left) a member added again since.
//
// The state's encoding, signature, form checks and authority rule are in
// internal/groupstate. The engine's side is split by protocol step: this
// file holds the buckets, limits, errors and the view the UI gets;
// group_change.go an admin's changes; group_leave.go the leave request,
// both ways; group_send.go the group outbox, re-keying and fan-out;
// group_receive.go accepting a state, filing a chain and opening messages.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
)

// Buckets. A chain ref is <sender handle>/<sender device hex>/<chain id hex>.
const (
	bGroups      = "groups"   // <group id hex> → signed group state, as verified
	bGroupSender = "gsend"    // <group id hex> → senderRecord: this device's chain
	bGroupChains = "gchain"   // <chain ref> → group id (16) || u64 added (unix ns)
	bGroupRecv   = "grecv"    // <group id hex>/<chain ref> → senderkey.Receiver
	bGroupOutbox = "goutbox"  // <seq, 16 hex> → groupOutRecord
	bGroupPend   = "gpending" // <chain ref>/<iteration, 8 hex><message id hex> → pendingGroupMsg
	bGroupLeft   = "gleft"    // <group id hex> → u8 1 || u64 unix ms: this account asked to leave
	bGroupJoined = "gjoined"  // <group id hex>/<handle> → u64 version of the state that (re)added the member

	// keyGroupSync (bucket self) lists our own other devices that have
	// been sent every group state (sorted device ids, 16 bytes each).
	keyGroupSync = "group-sync"
)

// envGroup is the envelope type of a group message: the byte is followed
// by one senderkey message, the same for every recipient device.
const envGroup = 0x03

// Limits.
const (
	// GroupIDSize is the size of a group id (random).
	GroupIDSize = groupstate.IDSize
	// MaxGroupMembers bounds a group so that one GroupSend (at most
	// frame.MaxRecipients devices) reaches every device of every member:
	// 64 accounts × devicelist.MaxDevices (16) = 1024.
	MaxGroupMembers = groupstate.MaxMembers
	// MaxGroupNameLen bounds a group name in bytes.
	MaxGroupNameLen = groupstate.MaxNameLen
	// maxChainsPerDevice bounds the chains kept from one sender device
	// over all groups: the current and previous chain of each of the
	// MaxGroups-ish groups a contact shares with us.
	maxChainsPerDevice = 512
	// maxPendingPerDevice bounds the group messages kept from one sender
	// device while their chain is unknown; past it they are refused
	// (reported), so a contact cannot fill our storage.
	maxPendingPerDevice = 256
	// maxReplay bounds the pending messages opened in one batch.
	maxReplay = 512
	// groupChatPrefix starts a group's chat id; handles cannot contain ':'.
	groupChatPrefix = "g:"
)

// Errors.
var (
	ErrUnknownGroup       = &Error{Code: CodeUnknownGroup, Message: "no such group on this device"}
	ErrNotGroupAdmin      = &Error{Code: CodeNotGroupAdmin, Message: "only an admin device of the group can change it"}
	ErrNotGroupMember     = &Error{Code: CodeNotGroupMember, Message: "this account is not a member of the group"}
	ErrGroupFull          = &Error{Code: CodeGroupFull, Message: fmt.Sprintf("a group has at most %d members", MaxGroupMembers)}
	ErrGroupChangeRefused = &Error{Code: CodeGroupChangeRefused, Message: "a group change was refused"}
	ErrLeftGroup          = &Error{Code: CodeLeftGroup, Message: "this account left the group"}
	ErrGroupOutdated      = &Error{Code: CodeGroupOutdated, Message: "this group was made before group ids were bound to their creator (format 1); it can be read but not sent to or changed: its creator makes it again"}
	ErrAdminCannotLeave   = &Error{Code: CodeAdminCannotLeave, Message: "an admin cannot leave the group: handing it to another admin is not built yet, and a group without admins could never change again"}
)

type groupID = groupstate.ID

func groupChatID(id groupID) string { return groupChatPrefix + hex.EncodeToString(id[:]) }

// parseGroupRef accepts a group's chat id ("g:" + 32 hex) or the bare hex.
func parseGroupRef(s string) (groupID, error) {
	var id groupID
	raw, err := hex.DecodeString(strings.TrimPrefix(s, groupChatPrefix))
	if err != nil || len(raw) != GroupIDSize {
		return id, newError(ErrUnknownGroup.Code, err, "not a group id: %q", s)
	}
	copy(id[:], raw)
	return id, nil
}

func chainRef(handle string, dev identity.DeviceID, chain [senderkey.ChainIDSize]byte) string {
	return handle + "/" + dev.String() + "/" + hex.EncodeToString(chain[:])
}

// Group is a group as the UI sees it.
type Group struct {
	ID      string   `json:"id"` // also the group's chat id
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Admins  []string `json:"admins"` // accounts whose devices may change the group
	Version uint64   `json:"version"`
	Admin   bool     `json:"admin"`  // this device may change the group
	Member  bool     `json:"member"` // false once this account was removed
	// Left is set once this account asked to leave (LeaveGroup, on any of
	// its devices), until it is added again; Member stays true until an
	// admin's device has removed it.
	Left bool `json:"left"`
}

func (e *Engine) groupView(g *groupstate.State, left bool) Group {
	return Group{ID: groupChatID(g.ID), Name: g.Name, Members: slices.Clone(g.Members), Admins: g.AdminAccounts(),
		Version: g.Version, Admin: g.Admin(e.dev.ID) != nil, Member: g.IsMember(e.acct.Handle), Left: left}
}

// Groups lists the groups this device knows, including ones this account
// was removed from (Member false), by name.
func (e *Engine) Groups(ctx context.Context) ([]Group, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return nil, ErrNoAccount
	}
	left := map[string]bool{}
	err := e.cfg.Store.Scan(ctx, bGroupLeft, "", storage.ScanOptions{}, func(k string, _ []byte) error {
		left[k] = true
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	var out []Group
	err = e.cfg.Store.Scan(ctx, bGroups, "", storage.ScanOptions{}, func(k string, v []byte) error {
		g, err := groupstate.Parse(v)
		if err != nil {
			return newError(ErrStorage.Code, err, "group record %s is corrupt", k)
		}
		out = append(out, e.groupView(g, left[k]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// groupName is the name Chats shows for a group's chat ("" if unknown).
func (e *Engine) groupName(ctx context.Context, chat string) string {
	id, err := parseGroupRef(chat)
	if err != nil {
		return ""
	}
	g, err := e.loadGroupLocked(ctx, id)
	if err != nil || g == nil {
		return ""
	}
	return g.Name
}

func (e *Engine) loadGroupLocked(ctx context.Context, id groupID) (*groupstate.State, error) {
	v, err := e.cfg.Store.Get(ctx, bGroups, hex.EncodeToString(id[:]))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	g, err := groupstate.Parse(v)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "group record %x is corrupt", id)
	}
	return g, nil
}
