package client

// Leaving a group (PROTOCOL.md 14.6): a member who is no admin asks the
// admins' devices, which remove it; the joined versions kept per member
// tell a stale request from a current one.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/wire"
)

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
		return []Event{{Type: "error", Chat: from, Code: CodeMalformed, Text: fmt.Sprintf("malformed group leave request from %s: %v", from, err)}}, nil
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
	ng := g.Next()
	ng.Members = slices.DeleteFunc(ng.Members, func(m string) bool { return m == from })
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
