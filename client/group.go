package client

// Groups (PROTOCOL.md 14.6).
//
// A group is a signed, versioned state — id, name, members, admins — that
// an admin device changes and sends to every member device over the
// pairwise sessions (kindGroupState). Receivers accept a state only if an
// admin of the state they already hold signed it and its version is
// higher, so neither the relay nor a member can roll a group back or
// change it without an admin.
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

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/server/relay/frame"
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
	// maxGroupFanoutBytes is the relay's bound on ciphertext × recipients
	// for one send (server/relay maxFanoutBytes, PROTOCOL.md §10.5); a
	// larger group message goes out in several GroupSends.
	maxGroupFanoutBytes = 16 << 20
	// groupChatPrefix starts a group's chat id; handles cannot contain ':'.
	groupChatPrefix = "g:"
)

// Errors.
var (
	ErrUnknownGroup       = &Error{Code: "unknown_group", Message: "no such group on this device"}
	ErrNotGroupAdmin      = &Error{Code: "not_group_admin", Message: "only an admin device of the group can change it"}
	ErrNotGroupMember     = &Error{Code: "not_group_member", Message: "this account is not a member of the group"}
	ErrGroupFull          = &Error{Code: "group_full", Message: fmt.Sprintf("a group has at most %d members", MaxGroupMembers)}
	ErrGroupChangeRefused = &Error{Code: "group_change_refused", Message: "a group change was refused"}
	ErrLeftGroup          = &Error{Code: "left_group", Message: "this account left the group"}
	ErrAdminCannotLeave   = &Error{Code: "admin_cannot_leave", Message: "an admin cannot leave the group: handing it to another admin is not built yet, and a group without admins could never change again"}
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

// CreateGroup creates a group of this account and members (handles), with
// this account's active devices as its admins, and sends its state to every
// member device. It returns the group's id, which is also its chat id.
func (e *Engine) CreateGroup(ctx context.Context, name string, members []string) (string, error) {
	if err := checkGroupName(name); err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.canSendLocked(); err != nil {
		return "", err
	}
	all := []string{e.acct.Handle}
	for _, h := range members {
		if !handleRule.MatchString(h) {
			return "", ErrBadHandle
		}
		if !slices.Contains(all, h) {
			all = append(all, h)
		}
	}
	if len(all) > MaxGroupMembers {
		return "", ErrGroupFull
	}
	for _, h := range all[1:] {
		if err := e.checkContactLocked(ctx, h); err != nil {
			return "", err
		}
	}
	slices.Sort(all)
	g := &groupstate.State{Version: 1, Name: name, Members: all}
	if _, err := io.ReadFull(e.cfg.Rand, g.ID[:]); err != nil {
		return "", err
	}
	if err := e.commitGroupChangeLocked(ctx, nil, g, nil); err != nil {
		return "", err
	}
	return groupChatID(g.ID), nil
}

func checkGroupName(name string) error {
	if name == "" || len(name) > MaxGroupNameLen || !utf8.ValidString(name) {
		return newError("bad_name", nil, "a group name is 1 to %d bytes of UTF-8", MaxGroupNameLen)
	}
	return nil
}

// RenameGroup gives a group a new name (admin devices only): the next
// version, sent to every member device like a membership change. The
// devices stay the same, so no sender chain is remade.
func (e *Engine) RenameGroup(ctx context.Context, group, name string) error {
	if err := checkGroupName(name); err != nil {
		return err
	}
	return e.changeGroup(ctx, group, func(_, g *groupstate.State) ([]string, error) {
		if g.Name == name {
			return nil, errUnchanged
		}
		g.Name = name
		return nil, nil
	})
}

// AddMember adds handle to a group (admin devices only). The new member's
// devices get the group state; every sending device makes a new chain at
// its next message, so the newcomer reads nothing sent before.
func (e *Engine) AddMember(ctx context.Context, group, handle string) error {
	if !handleRule.MatchString(handle) {
		return ErrBadHandle
	}
	return e.changeGroup(ctx, group, func(old, g *groupstate.State) ([]string, error) {
		if g.IsMember(handle) {
			return nil, newError("already_member", nil, "%s is already a member of the group", handle)
		}
		if len(g.Members) >= MaxGroupMembers {
			return nil, ErrGroupFull
		}
		if err := e.checkContactLocked(ctx, handle); err != nil {
			return nil, err
		}
		g.Members = append(g.Members, handle)
		slices.Sort(g.Members)
		return []string{handle}, nil
	})
}

// RemoveMember removes handle from a group (admin devices only). The
// removed member's devices get the new state, so they know; every
// remaining device makes a new chain before its next message and gives it
// only to the remaining members, so the removed devices cannot read on.
func (e *Engine) RemoveMember(ctx context.Context, group, handle string) error {
	return e.changeGroup(ctx, group, func(old, g *groupstate.State) ([]string, error) {
		if !g.IsMember(handle) {
			return nil, newError("not_member", nil, "%s is not a member of the group", handle)
		}
		if old.IsAdminAccount(handle) {
			return nil, newError("cannot_remove_admin", nil, "%s administers the group and cannot be removed", handle)
		}
		g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == handle })
		return nil, nil
	})
}

// errUnchanged tells changeGroup that the change would change nothing.
var errUnchanged = errors.New("group unchanged")

// LeaveGroup asks the group's admins to remove this account (members who
// are no admin only; ErrAdminCannotLeave otherwise). The request goes to
// every device of every admin account (and our own other devices, which
// mark the group left too). From now on this account sends nothing to the
// group (ErrLeftGroup) and keeps its history; it reads on until an admin's
// device has removed it. Asking again sends the request again.
func (e *Engine) LeaveGroup(ctx context.Context, group string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.heldGroupLocked(ctx, group)
	if err != nil {
		return err
	}
	id := g.ID
	if !g.IsMember(e.acct.Handle) {
		return ErrNotGroupMember
	}
	if g.IsAdminAccount(e.acct.Handle) {
		return ErrAdminCannotLeave
	}
	var b storage.Batch
	e.markLeftLocked(&b, id)
	body := groupstate.LeaveBody(id, g.Version)
	for _, h := range g.AdminAccounts() {
		if err := e.queuePairwiseLocked(ctx, &b, kindGroupLeave, h, body); err != nil {
			return err
		}
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.log.Info("asked to leave a group", "admins", len(g.AdminAccounts()))
	go e.emit(Event{Type: "group", Chat: groupChatID(id)})
	e.kickLocked()
	return nil
}

func (e *Engine) markLeftLocked(b *storage.Batch, id groupID) {
	w := wire.NewWriter(9)
	w.U8(recordVersion)
	w.U64(uint64(e.cfg.Now().UnixMilli()))
	b.Put(bGroupLeft, hex.EncodeToString(id[:]), w.Bytes())
}

func (e *Engine) hasLeftLocked(ctx context.Context, id groupID) (bool, error) {
	_, err := e.cfg.Store.Get(ctx, bGroupLeft, hex.EncodeToString(id[:]))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storageErr(err)
	}
	return true, nil
}

func groupJoinedKey(id groupID, handle string) string {
	return hex.EncodeToString(id[:]) + "/" + handle
}

// stageJoinedLocked adds to b, for a state g this device is about to
// store in place of old (nil: the first it holds), the version at which
// each member of g that old lacks joined — g's — and deletes the entry of
// each member g removed. For a group seen first, every member counts as
// joined at g's version: this device knows nothing older.
func stageJoinedLocked(b *storage.Batch, old, g *groupstate.State) {
	for _, h := range g.Members {
		if old == nil || !old.IsMember(h) {
			w := wire.NewWriter(8)
			w.U64(g.Version)
			b.Put(bGroupJoined, groupJoinedKey(g.ID, h), w.Bytes())
		}
	}
	if old != nil {
		for _, h := range old.Members {
			if !g.IsMember(h) {
				b.Delete(bGroupJoined, groupJoinedKey(g.ID, h))
			}
		}
	}
}

// joinedVersionLocked returns the version of the state in which handle
// last joined group id as this device saw it; 0 if it has no entry (a
// group stored before entries were kept, or a member since removed), so
// that no request counts as stale then.
func (e *Engine) joinedVersionLocked(ctx context.Context, id groupID, handle string) (uint64, error) {
	v, err := e.cfg.Store.Get(ctx, bGroupJoined, groupJoinedKey(id, handle))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, storageErr(err)
	}
	r := wire.NewReader(v)
	version := r.U64()
	if err := r.Finish(); err != nil {
		return 0, newError(ErrStorage.Code, err, "joined record of group %x is corrupt", id)
	}
	return version, nil
}

// receiveGroupLeaveLocked handles a leave request from an account's
// device. From our own account it marks the group left here too. From
// another account, an admin device of the group removes that account
// exactly as RemoveMember does, in the receive batch b, so the new state
// leaves with the next flush after the request's Sync. Anything else — a
// group unknown here or not administered by this device, a sender who is
// not (or no longer) a member, or an admin — is ignored: two admin devices
// that both read one request sign the same members, and whichever state
// members keep (§14.6's tie rule) is the same change. A request made at a
// version older than the one in which the sender last joined (as this
// device saw it) is stale — the sender was removed and added again since
// — and is ignored too, on the admins' devices and the sender's own.
func (e *Engine) receiveGroupLeaveLocked(ctx context.Context, b *storage.Batch, p *payload, from string) ([]Event, error) {
	id, version, err := groupstate.ParseLeave(p.Body)
	if err != nil {
		return []Event{{Type: "error", Chat: from, Code: "malformed", Text: fmt.Sprintf("malformed group leave request from %s: %v", from, err)}}, nil
	}
	g, err := e.loadGroupLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	var joined uint64
	if g != nil {
		if joined, err = e.joinedVersionLocked(ctx, id, from); err != nil {
			return nil, err
		}
	}
	switch {
	case g == nil:
		e.log.Info("leave request for an unknown group ignored", "from", from)
		return nil, nil
	case g.IsAdminAccount(from):
		e.log.Warn("leave request from an admin account ignored", "from", from)
		return nil, nil
	case version < joined:
		e.log.Info("stale leave request ignored", "from", from, "version", version, "joined", joined)
		return nil, nil
	case from == e.acct.Handle:
		// Whether or not the removal got here first: a state that adds
		// this account again (sent after it) clears the mark.
		e.markLeftLocked(b, id)
		return []Event{{Type: "group", Chat: groupChatID(id)}}, nil
	case !g.IsMember(from):
		e.log.Info("leave request from a non-member ignored", "from", from, "version", g.Version)
		return nil, nil
	case g.Admin(e.dev.ID) == nil || e.acct.Revoked:
		return nil, nil // for the admins' devices
	}
	ng := &groupstate.State{ID: g.ID, Version: g.Version + 1, Name: g.Name,
		Members: slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return m == from })}
	staged := len(b.Ops)
	if err := e.stageGroupChangeLocked(ctx, b, g, ng, nil); err != nil {
		if code(err) == ErrStorage.Code {
			return nil, err
		}
		b.Ops = b.Ops[:staged] // none of a change half made
		e.log.Warn("leave request not carried out", "from", from, "code", code(err))
		return nil, nil
	}
	e.log.Info("member left the group", "member", from, "version", ng.Version)
	return []Event{{Type: "group", Chat: groupChatID(id)}, {Type: "chats"}}, nil
}

// heldGroupLocked is the state this device holds of group (its chat id
// or hex id), for a change or a message it is about to make: the
// device can send and the group is known.
func (e *Engine) heldGroupLocked(ctx context.Context, group string) (*groupstate.State, error) {
	id, err := parseGroupRef(group)
	if err != nil {
		return nil, err
	}
	if err := e.canSendLocked(); err != nil {
		return nil, err
	}
	g, err := e.loadGroupLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, ErrUnknownGroup
	}
	return g, nil
}

// changeGroup applies change to g, the next version of the current state
// old without its admins (stageGroupChangeLocked sets them), then signs
// and distributes it; change returns the handles to notify first (new
// members, so their state is ahead of any chain made for them), or
// errUnchanged to sign nothing.
func (e *Engine) changeGroup(ctx context.Context, group string, change func(old, g *groupstate.State) ([]string, error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, err := e.heldGroupLocked(ctx, group)
	if err != nil {
		return err
	}
	if old.Admin(e.dev.ID) == nil {
		return ErrNotGroupAdmin
	}
	g := &groupstate.State{ID: old.ID, Version: old.Version + 1, Name: old.Name, Members: slices.Clone(old.Members)}
	first, err := change(old, g)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	return e.commitGroupChangeLocked(ctx, old, g, first)
}

// commitGroupChangeLocked commits stageGroupChangeLocked's batch and tells
// the UI.
func (e *Engine) commitGroupChangeLocked(ctx context.Context, old, g *groupstate.State, first []string) error {
	var b storage.Batch
	if err := e.stageGroupChangeLocked(ctx, &b, old, g, first); err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.log.Info("group changed", "version", g.Version, "members", len(g.Members))
	go e.emit(Event{Type: "group", Chat: groupChatID(g.ID)})
	go e.emit(Event{Type: "chats"})
	e.kickLocked()
	return nil
}

// stageGroupChangeLocked makes this account's active devices the admins
// from this account (others' admin devices are kept), signs g, and adds
// to b the new state with its distribution to every member of old and g
// — first, then the rest.
func (e *Engine) stageGroupChangeLocked(ctx context.Context, b *storage.Batch, old, g *groupstate.State, first []string) error {
	own, err := e.ownList(ctx)
	if err != nil {
		return err
	}
	if old != nil {
		for _, a := range old.Admins {
			if a.Handle != e.acct.Handle && g.IsMember(a.Handle) {
				g.Admins = append(g.Admins, a)
			}
		}
	}
	for _, d := range e.activeDevices(own) {
		if len(g.Admins) < groupstate.MaxAdmins {
			g.Admins = append(g.Admins, groupstate.Admin{Handle: e.acct.Handle, Device: d.ID, Key: d.SignPub})
		}
	}
	if g.Admin(e.dev.ID) == nil {
		return newError(ErrNotGroupAdmin.Code, nil, "this device is not active in its own device list")
	}
	g.Sign(e.dev)

	b.Put(bGroups, hex.EncodeToString(g.ID[:]), g.Raw())
	stageJoinedLocked(b, old, g)
	notify := slices.Clone(first)
	for _, h := range g.Members {
		if !slices.Contains(notify, h) {
			notify = append(notify, h)
		}
	}
	var removed []string
	if old != nil {
		for _, h := range old.Members {
			if !g.IsMember(h) {
				removed = append(removed, h)
				notify = append(notify, h)
			}
		}
	}
	sent := false
	for _, h := range notify {
		if h == e.acct.Handle {
			continue
		}
		if err := e.queuePairwiseLocked(ctx, b, kindGroupState, h, g.Raw()); err != nil {
			return err
		}
		sent = true
	}
	if !sent {
		// Only our own other devices need to know (every pairwise send
		// reaches them too).
		if err := e.queuePairwiseLocked(ctx, b, kindGroupState, "", g.Raw()); err != nil {
			return err
		}
	}
	for _, h := range removed {
		if err := e.dropChainsLocked(ctx, b, g.ID, h); err != nil {
			return err
		}
	}
	return e.ensureGroupChatLocked(ctx, b, g.ID)
}

func (e *Engine) canSendLocked() error {
	if e.acct == nil {
		return ErrNoAccount
	}
	if e.acct.Revoked {
		return ErrRevoked
	}
	return nil
}

// checkContactLocked makes sure handle is an account whose verified list
// we hold and whose safety number is not waiting for acknowledgement.
func (e *Engine) checkContactLocked(ctx context.Context, handle string) error {
	pin, err := e.loadPin(ctx, handle)
	if err != nil {
		return err
	}
	if pin != nil && pin.KeyChanged {
		return ErrSafetyChanged
	}
	_, err = e.listLocked(ctx, handle, false)
	return err
}

// ensureGroupChatLocked gives a group a chat record so it shows in Chats
// before its first message.
func (e *Engine) ensureGroupChatLocked(ctx context.Context, b *storage.Batch, id groupID) error {
	chat := groupChatID(id)
	if _, err := e.cfg.Store.Get(ctx, bChats, chat); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storageErr(err)
	}
	c := &Chat{ID: chat, LastAt: e.cfg.Now().UnixMilli()}
	b.Put(bChats, chat, c.marshal())
	return nil
}

// queuePairwiseLocked adds a control payload for handle's devices (and our
// own other devices; to "" means only those) to the outbox in batch b.
func (e *Engine) queuePairwiseLocked(ctx context.Context, b *storage.Batch, kind uint8, to string, body []byte) error {
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return err
	}
	p := &payload{Kind: kind, ID: id, SentAt: e.nextSentAtLocked(), To: to, Body: body}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return err
	}
	b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal(), To: to}).marshal())
	return nil
}

// SendGroupText queues a text message to a group and returns its id. Like
// SendText it is stored first (status pending) and sent by the outbox,
// after any sender-key distribution it needs.
func (e *Engine) SendGroupText(ctx context.Context, group, text string) (string, error) {
	if len(text) == 0 || len(text) > MaxTextLen || !utf8.ValidString(text) {
		return "", newError(ErrTooLong.Code, nil, "a text message is 1 to %d bytes of UTF-8", MaxTextLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.heldGroupLocked(ctx, group)
	if err != nil {
		return "", err
	}
	gid := g.ID
	if left, err := e.hasLeftLocked(ctx, gid); err != nil {
		return "", err
	} else if left {
		return "", ErrLeftGroup
	}
	if !g.IsMember(e.acct.Handle) {
		return "", ErrNotGroupMember
	}
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return "", err
	}
	p := &payload{Kind: kindText, ID: id, SentAt: e.nextSentAtLocked(), Body: []byte(text)}
	msg := &Message{
		ID: hex.EncodeToString(id[:]), Chat: groupChatID(gid), From: e.acct.Handle, FromDevice: e.dev.ID.String(),
		Text: text, SentAt: int64(p.SentAt), Outgoing: true, Status: StatusPending,
	}
	var b storage.Batch
	if err := e.putMessage(ctx, &b, msg, false); err != nil {
		return "", err
	}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return "", err
	}
	b.Put(bGroupOutbox, seq, (&groupstate.OutRecord{GroupID: gid, Payload: p.marshal()}).Marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return "", storageErr(err)
	}
	go e.emit(Event{Type: "message", Message: msg, Chat: msg.Chat})
	e.kickLocked()
	return msg.ID, nil
}

// errQueuedPairwise means a group send queued distributions that must go
// (through the pairwise outbox) before it.
var errQueuedPairwise = errors.New("sender-key distributions queued")

// flushGroupLocked sends the oldest group outbox entry. sent reports
// whether the flush should go on (pairwise outbox first, then again);
// empty that the group outbox was found empty (not paused). With scan
// false the caller knows nothing was queued since it was last empty, and
// only the group states for own devices are checked.
func (e *Engine) flushGroupLocked(ctx context.Context, conn Conn, scan bool) (sent, empty bool) {
	if queued, err := e.syncGroupsToOwnLocked(ctx); err != nil {
		e.log.Warn("group states not synced to own devices", "err", err)
	} else if queued {
		return true, false
	}
	if !scan {
		return false, true
	}
	var key string
	var val []byte
	err := e.cfg.Store.Scan(ctx, bGroupOutbox, "", storage.ScanOptions{Limit: 1}, func(k string, v []byte) error {
		key, val = k, v
		return nil
	})
	if err != nil || key == "" {
		return false, err == nil
	}
	rec, err := groupstate.UnmarshalOut(val)
	if err == nil {
		err = e.sendGroupOutboxLocked(ctx, conn, key, rec)
	}
	switch {
	case err == nil, errors.Is(err, errQueuedPairwise):
		return true, false
	case isTransient(err):
		e.log.Warn("group outbox paused", "err", err)
		return false, false
	}
	var b storage.Batch
	b.Delete(bGroupOutbox, key)
	if rec != nil {
		if p, perr := unmarshalPayload(rec.Payload); perr == nil {
			e.setStatus(ctx, &b, p.ID, "failed")
		}
	}
	if cerr := e.cfg.Store.Commit(ctx, &b); cerr != nil {
		e.log.Error("could not record failed group message", "err", cerr)
		return false, false
	}
	e.log.Warn("group message could not be delivered", "code", code(err))
	go e.emit(Event{Type: "error", Code: code(err), Text: err.Error()})
	return true, false
}

// syncGroupsToOwnLocked sends every group state to our own devices that
// have not had them yet: a companion linked after a group was made learns
// the group (and can open the messages kept for it) from any of our other
// devices, the primary being off or not. It reports whether it queued.
func (e *Engine) syncGroupsToOwnLocked(ctx context.Context) (bool, error) {
	own, err := e.ownList(ctx)
	if err != nil {
		return false, err
	}
	var have []identity.DeviceID
	v, err := e.cfg.Store.Get(ctx, bSelf, keyGroupSync)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, storageErr(err)
	}
	for i := 0; i+identity.DeviceIDSize <= len(v); i += identity.DeviceIDSize {
		have = append(have, identity.DeviceID(v[i:i+identity.DeviceIDSize]))
	}
	var now []identity.DeviceID
	missing := false
	for _, d := range e.activeDevices(own) {
		if d.ID == e.dev.ID {
			continue
		}
		now = append(now, d.ID)
		if !slices.Contains(have, d.ID) {
			missing = true
		}
	}
	if !missing && len(now) == len(have) {
		return false, nil
	}
	if e.acct.Primary {
		if err := e.refreshGroupAdminsLocked(ctx, own); err != nil {
			return false, err
		}
	}
	var b storage.Batch
	if missing {
		// A group this account asked to leave goes with the leave request
		// again, after the state: a device linked since would otherwise
		// take part until an admin's device removes the account, which
		// may be days.
		left := map[string]bool{}
		err = e.cfg.Store.Scan(ctx, bGroupLeft, "", storage.ScanOptions{}, func(k string, _ []byte) error {
			left[k] = true
			return nil
		})
		if err != nil {
			return false, storageErr(err)
		}
		err = e.cfg.Store.Scan(ctx, bGroups, "", storage.ScanOptions{}, func(k string, raw []byte) error {
			if b.Len() >= storage.MaxBatchOps-8 {
				return storage.ErrStop // the rest reach them with their next change
			}
			if err := e.queuePairwiseLocked(ctx, &b, kindGroupState, "", raw); err != nil || !left[k] {
				return err
			}
			g, err := groupstate.Parse(raw)
			if err != nil {
				return newError(ErrStorage.Code, err, "group record %s is corrupt", k)
			}
			return e.queuePairwiseLocked(ctx, &b, kindGroupLeave, "", groupstate.LeaveBody(g.ID, g.Version))
		})
		if err != nil {
			return false, storageErr(err)
		}
	}
	slices.SortFunc(now, func(a, b identity.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	enc := make([]byte, 0, len(now)*identity.DeviceIDSize)
	for _, d := range now {
		enc = append(enc, d[:]...)
	}
	b.Put(bSelf, keyGroupSync, enc)
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return false, storageErr(err)
	}
	return b.Len() > 1, nil
}

// refreshGroupAdminsLocked, on the primary, signs a new version of every
// group it administers whose admin devices from this account are not this
// account's active devices: a companion linked later can then change the
// group with the primary off, and a revoked one cannot. Only the primary
// does it, so two of our devices never sign the same version.
func (e *Engine) refreshGroupAdminsLocked(ctx context.Context, own *devicelist.List) error {
	var want []identity.DeviceID
	for _, d := range e.activeDevices(own) {
		want = append(want, d.ID)
	}
	var stale []*groupstate.State
	err := e.cfg.Store.Scan(ctx, bGroups, "", storage.ScanOptions{}, func(_ string, raw []byte) error {
		g, err := groupstate.Parse(raw)
		if err != nil || g.Admin(e.dev.ID) == nil || !g.IsMember(e.acct.Handle) {
			return nil
		}
		var have []identity.DeviceID
		for _, a := range g.Admins {
			if a.Handle == e.acct.Handle {
				have = append(have, a.Device)
			}
		}
		if !slices.Equal(have, want[:min(len(want), groupstate.MaxAdmins)]) {
			stale = append(stale, g)
		}
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	for _, old := range stale {
		g := &groupstate.State{ID: old.ID, Version: old.Version + 1, Name: old.Name, Members: slices.Clone(old.Members)}
		if err := e.commitGroupChangeLocked(ctx, old, g, nil); err != nil {
			return err
		}
	}
	return nil
}

// groupTargetsLocked lists the devices a group message goes to: every
// active device of every other member and our own other active devices,
// sorted. A member whose account is gone is skipped.
func (e *Engine) groupTargetsLocked(ctx context.Context, g *groupstate.State, refresh bool) ([]target, error) {
	out, err := e.targetsLocked(ctx, "", refresh)
	if err != nil {
		return nil, err
	}
	for _, h := range g.Members {
		if h == e.acct.Handle {
			continue
		}
		pin, err := e.loadPin(ctx, h)
		if err != nil {
			return nil, err
		}
		if pin != nil && pin.KeyChanged {
			return nil, newError(ErrSafetyChanged.Code, nil, "the safety number of group member %s changed; acknowledge it before sending", h)
		}
		l, err := e.listLocked(ctx, h, refresh)
		if errors.Is(err, ErrUnknownAccount) {
			e.log.Warn("group member has no account; skipped", "member", h)
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, d := range e.activeDevices(l) {
			out = append(out, target{h, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].handle != out[j].handle {
			return out[i].handle < out[j].handle
		}
		return bytes.Compare(out[i].dev.ID[:], out[j].dev.ID[:]) < 0
	})
	return out, nil
}

func sameDevices(refs []groupstate.DeviceRef, targets []target) bool {
	if len(refs) != len(targets) {
		return false
	}
	for i := range refs {
		if refs[i].Handle != targets[i].handle || refs[i].Device != targets[i].dev.ID {
			return false
		}
	}
	return true
}

func (e *Engine) loadSenderLocked(ctx context.Context, gid groupID) (*groupstate.SenderRecord, error) {
	v, err := e.cfg.Store.Get(ctx, bGroupSender, hex.EncodeToString(gid[:]))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	s, err := groupstate.UnmarshalSenderRecord(v)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "group sender record %x is corrupt", gid)
	}
	return s, nil
}

func (e *Engine) sendGroupOutboxLocked(ctx context.Context, conn Conn, key string, rec *groupstate.OutRecord) error {
	p, err := unmarshalPayload(rec.Payload)
	if err != nil {
		return newError(ErrStorage.Code, err, "group outbox entry corrupt")
	}
	g, err := e.loadGroupLocked(ctx, rec.GroupID)
	if err != nil {
		return err
	}
	if g == nil || !g.IsMember(e.acct.Handle) {
		return ErrNotGroupMember
	}
	if left, err := e.hasLeftLocked(ctx, rec.GroupID); err != nil {
		return err
	} else if left {
		return ErrLeftGroup // queued before leaving: it fails rather than goes
	}
	gidHex := hex.EncodeToString(rec.GroupID[:])
	for attempt := 0; ; attempt++ {
		targets, err := e.groupTargetsLocked(ctx, g, attempt > 0)
		if err != nil {
			return err
		}
		sr, err := e.loadSenderLocked(ctx, rec.GroupID)
		if err != nil {
			return err
		}
		if sr == nil || !sameDevices(sr.Devices, targets) {
			if len(targets) == 0 {
				break // nobody else to tell: the message is only ours
			}
			return e.rekeyLocked(ctx, rec.GroupID, targets)
		}
		if len(rec.Sealed) == 0 || rec.Chain != sr.Sender.ChainID() {
			// Encrypt on the chain made for exactly these devices; the
			// advanced chain and the ciphertext are stored before the
			// ciphertext leaves, so a crash never reuses a message key.
			ct, err := sr.Sender.Encrypt(rec.Payload)
			if err != nil {
				return err
			}
			rec.Sealed = append([]byte{envGroup}, ct...)
			rec.Chain = sr.Sender.ChainID()
			enc, err := sr.Marshal()
			if err != nil {
				return err
			}
			var b storage.Batch
			b.Put(bGroupSender, gidHex, enc)
			b.Put(bGroupOutbox, key, rec.Marshal())
			if err := e.cfg.Store.Commit(ctx, &b); err != nil {
				return storageErr(err)
			}
		}
		stale, err := e.groupSendLocked(ctx, conn, p.ID, rec.Sealed, targets)
		if err != nil {
			return err
		}
		if stale {
			if attempt+1 >= maxStaleRetries {
				return newError(ErrRelayRefused.Code, nil, "the device lists keep changing; will retry")
			}
			continue
		}
		break
	}
	// Relaxed, like the pairwise outbox's (sendOutboxLocked).
	done := storage.Batch{Relaxed: true}
	done.Delete(bGroupOutbox, key)
	e.setStatus(ctx, &done, p.ID, StatusSent)
	if err := e.cfg.Store.Commit(ctx, &done); err != nil {
		return storageErr(err)
	}
	return nil
}

// groupSendLocked submits one group ciphertext to targets, in as few
// GroupSends as the relay's fan-out bound allows: whole accounts per send,
// each with our own other devices (the relay wants them in every send;
// they drop the copies after the first by message id). It reports a stale
// device set.
func (e *Engine) groupSendLocked(ctx context.Context, conn Conn, id MessageID, sealed []byte, targets []target) (bool, error) {
	var own, cur []frame.Addr
	var sends [][]frame.Addr
	perSend := max(1, maxGroupFanoutBytes/len(sealed))
	for _, t := range targets {
		if t.handle == e.acct.Handle {
			own = append(own, frame.Addr{Handle: t.handle, Device: t.dev.ID})
		}
	}
	for i := 0; i < len(targets); {
		j := i
		for j < len(targets) && targets[j].handle == targets[i].handle {
			j++
		}
		if targets[i].handle != e.acct.Handle {
			if len(cur) > 0 && len(own)+len(cur)+(j-i) > perSend {
				sends = append(sends, cur)
				cur = nil
			}
			for _, t := range targets[i:j] {
				cur = append(cur, frame.Addr{Handle: t.handle, Device: t.dev.ID})
			}
		}
		i = j
	}
	if len(cur) > 0 || len(sends) == 0 {
		sends = append(sends, cur)
	}
	for _, to := range sends {
		sctx, cancel := context.WithTimeout(ctx, opTimeout)
		err := conn.GroupSend(sctx, id, sealed, append(slices.Clone(own), to...))
		cancel()
		var stale *StaleError
		if errors.As(err, &stale) {
			return true, nil
		}
		if err != nil {
			return false, mapRelayErr(err)
		}
	}
	return false, nil
}

// rekeyLocked makes a new chain for exactly targets and queues its
// distribution to them through the pairwise outbox, in one batch. It
// returns errQueuedPairwise so the distributions go first.
func (e *Engine) rekeyLocked(ctx context.Context, gid groupID, targets []target) error {
	s, err := senderkey.NewSender(e.cfg.Rand, gid[:])
	if err != nil {
		return err
	}
	sr := &groupstate.SenderRecord{Sender: s}
	for _, t := range targets {
		sr.Devices = append(sr.Devices, groupstate.DeviceRef{Handle: t.handle, Device: t.dev.ID})
	}
	dist, err := s.Distribution().MarshalBinary()
	if err != nil {
		return err
	}
	enc, err := sr.Marshal()
	if err != nil {
		return err
	}
	var b storage.Batch
	b.Put(bGroupSender, hex.EncodeToString(gid[:]), enc)
	var handles []string
	for _, t := range targets {
		if t.handle != e.acct.Handle && !slices.Contains(handles, t.handle) {
			handles = append(handles, t.handle)
		}
	}
	if len(handles) == 0 {
		handles = []string{""} // only our own other devices
	}
	for _, h := range handles {
		if err := e.queuePairwiseLocked(ctx, &b, kindSenderKey, h, dist); err != nil {
			return err
		}
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.log.Info("group chain made", "devices", len(targets))
	return errQueuedPairwise
}

// receiveGroupStateLocked handles a group state sent over a pairwise
// session. A refused change is reported as an event; the ratchet step that
// carried it is still kept.
func (e *Engine) receiveGroupStateLocked(ctx context.Context, b *storage.Batch, p *payload, from string) ([]Event, error) {
	events, err := e.acceptGroupStateLocked(ctx, b, p.Body)
	if err != nil {
		if code(err) == ErrStorage.Code {
			return nil, err
		}
		e.log.Warn("group change refused", "from", from, "code", code(err))
		return []Event{{Type: "error", Chat: from, Code: ErrGroupChangeRefused.Code, Text: err.Error()}}, nil
	}
	return events, nil
}

func refused(cause error, format string, args ...any) error {
	return newError(ErrGroupChangeRefused.Code, cause, format, args...)
}

// verifyGroupState is g.Verify with the engine's errors: a state not signed
// by an admin of authority is a refused change.
func verifyGroupState(g *groupstate.State, authority []groupstate.Admin) (*groupstate.Admin, error) {
	signer, err := g.Verify(authority)
	if errors.Is(err, groupstate.ErrNotAuthority) {
		return nil, refused(nil, "version %d of a group is signed by a device that is not its admin", g.Version)
	}
	if err != nil {
		return nil, refused(err, "version %d of a group has a bad signature", g.Version)
	}
	return signer, nil
}

// acceptGroupStateLocked verifies a received group state and adds it to b.
func (e *Engine) acceptGroupStateLocked(ctx context.Context, b *storage.Batch, raw []byte) ([]Event, error) {
	g, err := groupstate.Parse(raw)
	if err != nil {
		return nil, refused(err, "malformed group state: %v", err)
	}
	old, err := e.loadGroupLocked(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	authority := g.Admins
	if old != nil {
		switch {
		case g.Version < old.Version:
			// A state behind the held one changes nothing. It is
			// reported only if it would bring back a member the held
			// state lacks, which is what replaying an old state is
			// for. One whose members are all still members is what an
			// admin device acting late sends (it read a leave request
			// before the states that followed it): nothing to report.
			if slices.ContainsFunc(g.Members, func(m string) bool { return !old.IsMember(m) }) {
				return nil, refused(nil, "the group's version %d came after version %d (rollback)", g.Version, old.Version)
			}
			e.log.Info("stale group state ignored", "version", g.Version, "held", old.Version)
			return nil, nil
		case g.Version == old.Version:
			if bytes.Equal(g.Raw(), old.Raw()) {
				return nil, nil // the same state again
			}
			// Two admin devices changed the group at once. Every device
			// keeps the one whose encoding sorts first, whatever the
			// order they arrive in, so members converge.
			if bytes.Compare(g.Raw(), old.Raw()) > 0 {
				if g.SameContent(old) {
					// Both made the same change (a leave request both
					// read): nothing is lost, nothing to report.
					return nil, nil
				}
				return nil, refused(nil, "a concurrent change of the group's version %d lost to the one held", g.Version)
			}
		}
		authority = old.Admins
	} else if !g.IsMember(e.acct.Handle) {
		return nil, nil // a group we are not in and never were
	}
	signer, err := verifyGroupState(g, authority)
	if err != nil {
		return nil, err
	}
	// The admin device must still be in its account's verified list: a
	// revoked device keeps its key, not its rights. For a group seen
	// first, this is also what ties the admin key to the account.
	entry, err := e.senderEntryLocked(ctx, signer.Handle, signer.Device)
	if err != nil {
		if code(err) == ErrStorage.Code {
			return nil, err
		}
		return nil, refused(err, "the group's admin device is not in %s's device list: %v", signer.Handle, err)
	}
	if !bytes.Equal(entry.SignPub, signer.Key) {
		return nil, refused(nil, "the group's admin key is not the key of %s's device %s", signer.Handle, signer.Device)
	}

	b.Put(bGroups, hex.EncodeToString(g.ID[:]), g.Raw())
	stageJoinedLocked(b, old, g)
	if err := e.ensureGroupChatLocked(ctx, b, g.ID); err != nil {
		return nil, err
	}
	var events []Event
	if old != nil {
		for _, h := range old.Members {
			if !g.IsMember(h) {
				if err := e.dropChainsLocked(ctx, b, g.ID, h); err != nil {
					return nil, err
				}
			}
		}
	}
	if old != nil && !old.IsMember(e.acct.Handle) && g.IsMember(e.acct.Handle) {
		b.Delete(bGroupLeft, hex.EncodeToString(g.ID[:])) // added again
	}
	if !g.IsMember(e.acct.Handle) {
		// We were removed: our chain and every chain we held go.
		b.Delete(bGroupSender, hex.EncodeToString(g.ID[:]))
		if err := e.dropChainsLocked(ctx, b, g.ID, ""); err != nil {
			return nil, err
		}
	} else if old == nil {
		// Messages that came before their group's state can open now.
		evs, err := e.replayGroupLocked(ctx, b, g)
		if err != nil {
			return nil, err
		}
		events = evs
	}
	e.log.Info("group state accepted", "version", g.Version, "members", len(g.Members))
	return append(events, Event{Type: "group", Chat: groupChatID(g.ID)}, Event{Type: "chats"}), nil
}

// dropChainsLocked deletes the chains (and their pending messages) held
// for group gid from handle's devices, or from everyone if handle is "".
func (e *Engine) dropChainsLocked(ctx context.Context, b *storage.Batch, gid groupID, handle string) error {
	prefix := hex.EncodeToString(gid[:]) + "/"
	var refs []string
	err := e.cfg.Store.Scan(ctx, bGroupRecv, prefix+handleKeyPrefix(handle), storage.ScanOptions{}, func(k string, _ []byte) error {
		b.Delete(bGroupRecv, k)
		refs = append(refs, strings.TrimPrefix(k, prefix))
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	for _, ref := range refs {
		b.Delete(bGroupChains, ref)
		if err := e.deletePendingLocked(ctx, b, ref); err != nil {
			return err
		}
	}
	return nil
}

func handleKeyPrefix(handle string) string {
	if handle == "" {
		return ""
	}
	return handle + "/"
}

func (e *Engine) deletePendingLocked(ctx context.Context, b *storage.Batch, ref string) error {
	err := e.cfg.Store.Scan(ctx, bGroupPend, ref+"/", storage.ScanOptions{}, func(k string, _ []byte) error {
		b.Delete(bGroupPend, k)
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	return nil
}

// receiveSenderKeyLocked files a chain distributed by from's device dev
// over a pairwise session, then opens the group messages that waited for
// it. A distribution for a chain already held is ignored: taking it again
// would rewind the chain and let old messages be replayed.
func (e *Engine) receiveSenderKeyLocked(ctx context.Context, b *storage.Batch, p *payload, from string, dev identity.DeviceID) ([]Event, error) {
	d, err := senderkey.UnmarshalDistribution(p.Body)
	if err == nil && len(d.GroupID) != GroupIDSize {
		err = fmt.Errorf("group id of %d bytes", len(d.GroupID))
	}
	if err != nil {
		return []Event{{Type: "error", Chat: from, Code: "malformed", Text: fmt.Sprintf("malformed sender-key distribution from %s: %v", from, err)}}, nil
	}
	var gid groupID
	copy(gid[:], d.GroupID)
	ref := chainRef(from, dev, d.ChainID)
	if _, err := e.cfg.Store.Get(ctx, bGroupChains, ref); err == nil {
		return nil, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, storageErr(err)
	}
	rv, err := senderkey.NewReceiver(d)
	if err != nil {
		return []Event{{Type: "error", Chat: from, Code: "malformed", Text: err.Error()}}, nil
	}
	// Keep this chain and the sender device's previous one in the group
	// (for messages still in flight); older ones go.
	type held struct {
		ref   string
		added uint64
	}
	var same []held
	total := 0
	err = e.cfg.Store.Scan(ctx, bGroupChains, from+"/"+dev.String()+"/", storage.ScanOptions{}, func(k string, v []byte) error {
		total++
		r := wire.NewReader(v)
		var g groupID
		r.FixedInto(g[:])
		added := r.U64()
		if r.Finish() == nil && g == gid {
			same = append(same, held{k, added})
		}
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	sort.Slice(same, func(i, j int) bool { return same[i].added > same[j].added })
	gidHex := hex.EncodeToString(gid[:])
	for i, h := range same {
		if i >= 1 {
			b.Delete(bGroupChains, h.ref)
			b.Delete(bGroupRecv, gidHex+"/"+h.ref)
			if err := e.deletePendingLocked(ctx, b, h.ref); err != nil {
				return nil, err
			}
			total--
		}
	}
	if total >= maxChainsPerDevice {
		return []Event{{Type: "error", Chat: from, Code: "too_many_chains", Text: fmt.Sprintf("%s's device %s distributed more group chains than kept (%d); refused", from, dev, maxChainsPerDevice)}}, nil
	}
	w := wire.NewWriter(24)
	w.Fixed(gid[:])
	w.U64(uint64(e.cfg.Now().UnixNano()))
	b.Put(bGroupChains, ref, w.Bytes())

	var events []Event
	g, err := e.loadGroupLocked(ctx, gid)
	if err != nil {
		return nil, err
	}
	if g != nil {
		msgs, errs, err := e.openPendingLocked(ctx, b, g, ref, rv, from, dev, maxReplay)
		if err != nil {
			return nil, err
		}
		events = append(events, errs...)
		evs, err := e.storeGroupMessagesLocked(ctx, b, g.ID, msgs)
		if err != nil {
			return nil, err
		}
		events = append(events, evs...)
	}
	enc, err := rv.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b.Put(bGroupRecv, gidHex+"/"+ref, enc)
	return events, nil
}

// replayGroupLocked opens the pending messages of every chain held for a
// group whose state just arrived.
func (e *Engine) replayGroupLocked(ctx context.Context, b *storage.Batch, g *groupstate.State) ([]Event, error) {
	prefix := hex.EncodeToString(g.ID[:]) + "/"
	type chain struct {
		key string
		rv  *senderkey.Receiver
	}
	var chains []chain
	err := e.cfg.Store.Scan(ctx, bGroupRecv, prefix, storage.ScanOptions{}, func(k string, v []byte) error {
		rv, err := senderkey.UnmarshalReceiver(v)
		if err != nil {
			return newError(ErrStorage.Code, err, "group chain record corrupt")
		}
		chains = append(chains, chain{k, rv})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var events []Event
	var msgs []*Message
	budget := maxReplay
	for _, c := range chains {
		ref := strings.TrimPrefix(c.key, prefix)
		parts := strings.Split(ref, "/")
		if len(parts) != 3 {
			continue
		}
		dev, err := identity.ParseDeviceID(parts[1])
		if err != nil {
			continue
		}
		got, errs, err := e.openPendingLocked(ctx, b, g, ref, c.rv, parts[0], dev, budget)
		if err != nil {
			return nil, err
		}
		budget -= len(got) + len(errs)
		events = append(events, errs...)
		msgs = append(msgs, got...)
		if len(got)+len(errs) > 0 {
			enc, err := c.rv.MarshalBinary()
			if err != nil {
				return nil, err
			}
			b.Put(bGroupRecv, c.key, enc)
		}
	}
	evs, err := e.storeGroupMessagesLocked(ctx, b, g.ID, msgs)
	if err != nil {
		return nil, err
	}
	return append(events, evs...), nil
}

// openPendingLocked opens (and deletes) up to limit pending messages of a
// chain with rv, oldest iteration first, advancing rv in memory.
func (e *Engine) openPendingLocked(ctx context.Context, b *storage.Batch, g *groupstate.State, ref string, rv *senderkey.Receiver, from string, dev identity.DeviceID, limit int) ([]*Message, []Event, error) {
	var msgs []*Message
	var events []Event
	if limit <= 0 {
		return nil, nil, nil
	}
	err := e.cfg.Store.Scan(ctx, bGroupPend, ref+"/", storage.ScanOptions{Limit: limit}, func(k string, v []byte) error {
		b.Delete(bGroupPend, k)
		pm, err := groupstate.UnmarshalPending(v)
		if err != nil {
			events = append(events, Event{Type: "error", Chat: from, Code: ErrStorage.Code, Text: err.Error()})
			return nil
		}
		m, err := e.openGroupMessage(g, rv, from, dev, pm.Msg)
		if errors.Is(err, errDuplicate) {
			return nil
		}
		if err != nil {
			events = append(events, Event{Type: "error", Chat: groupChatID(g.ID), Code: "undecryptable", Text: err.Error()})
			return nil
		}
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, nil, storageErr(err)
	}
	return msgs, events, nil
}

// openGroupMessage checks the sender's membership, then verifies and
// decrypts msg with rv (which advances only on success).
func (e *Engine) openGroupMessage(g *groupstate.State, rv *senderkey.Receiver, from string, dev identity.DeviceID, msg []byte) (*Message, error) {
	if !g.IsMember(e.acct.Handle) {
		return nil, newError(ErrNotGroupMember.Code, nil, "a group message arrived for a group this account was removed from")
	}
	if !g.IsMember(from) {
		return nil, newError(ErrNotGroupMember.Code, nil, "a group message came from %s, who is not a member", from)
	}
	pt, err := rv.Decrypt(msg)
	if errors.Is(err, senderkey.ErrDuplicate) {
		return nil, errDuplicate
	}
	if err != nil {
		return nil, newError("decrypt_failed", err, "a group message from %s failed to decrypt: %v", from, err)
	}
	p, err := unmarshalPayload(pt)
	if err != nil {
		return nil, newError("malformed", err, "undecodable group message from %s", from)
	}
	if p.Kind != kindText || len(p.Body) > MaxTextLen || !utf8.Valid(p.Body) {
		return nil, newError("malformed", nil, "unsupported group message (kind %d) from %s", p.Kind, from)
	}
	own := from == e.acct.Handle
	m := &Message{
		ID: hex.EncodeToString(p.ID[:]), Chat: groupChatID(g.ID), From: from, FromDevice: dev.String(),
		Text: string(p.Body), SentAt: int64(p.SentAt), Outgoing: own,
	}
	if own {
		m.Status = StatusSent
	}
	return m, nil
}

// storeGroupMessagesLocked adds msgs (skipping ones already stored) to b
// with one chat summary for the group.
func (e *Engine) storeGroupMessagesLocked(ctx context.Context, b *storage.Batch, gid groupID, msgs []*Message) ([]Event, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	chat, err := e.loadChat(ctx, groupChatID(gid))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var events []Event
	for _, m := range msgs {
		var id MessageID
		raw, _ := hex.DecodeString(m.ID)
		copy(id[:], raw)
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		if old, _, err := e.lookupMessage(ctx, id); err != nil {
			return nil, err
		} else if old != nil {
			continue
		}
		// putMessage puts the message, its index and a chat summary that
		// counts only this message; the summary is replaced below.
		if err := e.putMessage(ctx, b, m, false); err != nil {
			return nil, err
		}
		if m.SentAt >= chat.LastAt {
			chat.LastAt, chat.LastText, chat.LastFile = m.SentAt, m.Text, m.Attachment != nil
		}
		if !m.Outgoing {
			chat.Unread++
		}
		events = append(events, Event{Type: "message", Message: m, Chat: chat.ID})
	}
	b.Put(bChats, chat.ID, chat.marshal())
	return append(events, Event{Type: "chats"}), nil
}

// receiveGroupLocked handles a group envelope: one senderkey message from
// from's device dev (which receiveLocked found in its verified list).
func (e *Engine) receiveGroupLocked(ctx context.Context, env *frame.Envelope, from string, dev identity.DeviceID) ([]Event, error) {
	msg := env.Payload[1:]
	chain, iter, err := senderkey.MessageChainID(msg)
	if err != nil {
		return nil, newError("malformed", err, "malformed group message from %s", from)
	}
	ref := chainRef(from, dev, chain)
	v, err := e.cfg.Store.Get(ctx, bGroupChains, ref)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, e.pendGroupLocked(ctx, ref, from, dev, iter, env.MessageID, msg)
	}
	if err != nil {
		return nil, storageErr(err)
	}
	var gid groupID
	if len(v) < GroupIDSize {
		return nil, newError(ErrStorage.Code, nil, "group chain index corrupt")
	}
	copy(gid[:], v)
	g, err := e.loadGroupLocked(ctx, gid)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, e.pendGroupLocked(ctx, ref, from, dev, iter, env.MessageID, msg)
	}
	rkey := hex.EncodeToString(gid[:]) + "/" + ref
	rb, err := e.cfg.Store.Get(ctx, bGroupRecv, rkey)
	if err != nil {
		return nil, storageErr(err)
	}
	rv, err := senderkey.UnmarshalReceiver(rb)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "group chain record corrupt")
	}
	m, err := e.openGroupMessage(g, rv, from, dev, msg)
	if err != nil {
		return nil, err
	}
	b := storage.Batch{Relaxed: true} // acknowledged after a Sync (ackDurable)
	enc, err := rv.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b.Put(bGroupRecv, rkey, enc)
	events, err := e.storeGroupMessagesLocked(ctx, &b, gid, []*Message{m})
	if err != nil {
		return nil, err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return nil, storageErr(err)
	}
	if len(events) == 1 { // only "chats": the message was already stored
		return nil, errDuplicate
	}
	return events, nil
}

// pendGroupLocked keeps a group message whose chain or group is not known
// yet, bounded per sender device.
func (e *Engine) pendGroupLocked(ctx context.Context, ref, from string, dev identity.DeviceID, iter uint32, msgID MessageID, msg []byte) error {
	n := 0
	err := e.cfg.Store.Scan(ctx, bGroupPend, from+"/"+dev.String()+"/", storage.ScanOptions{Limit: maxPendingPerDevice}, func(string, []byte) error {
		n++
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	if n >= maxPendingPerDevice {
		return newError("group_pending_full", nil, "%d group messages from %s's device %s wait for their sender key; this one was dropped", n, from, dev)
	}
	var b storage.Batch
	b.Put(bGroupPend, fmt.Sprintf("%s/%08x%s", ref, iter, hex.EncodeToString(msgID[:])), (&groupstate.Pending{MessageID: msgID, Msg: msg}).Marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.log.Info("group message kept until its sender key arrives", "from", from)
	return nil
}
