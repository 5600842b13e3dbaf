package client

// Changing a group (PROTOCOL.md 14.6): an admin device makes the next
// version, signs it and queues it to every member device.

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
)

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
	// The id is made from this account's key and a fresh nonce, so only
	// this account can sign a state that a device seeing the group first
	// takes (§14.6).
	var nonce [groupstate.NonceSize]byte
	if _, err := io.ReadFull(e.cfg.Rand, nonce[:]); err != nil {
		return "", err
	}
	g.Bind(e.acct.Handle, e.acct.AccountPub, nonce)
	if err := e.commitGroupChangeLocked(ctx, nil, g, nil); err != nil {
		return "", err
	}
	return groupChatID(g.ID), nil
}

func checkGroupName(name string) error {
	if name == "" || len(name) > MaxGroupNameLen || !utf8.ValidString(name) {
		return newError(CodeBadName, nil, "a group name is 1 to %d bytes of UTF-8", MaxGroupNameLen)
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
			return nil, newError(CodeAlreadyMember, nil, "%s is already a member of the group", handle)
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
			return nil, newError(CodeNotMember, nil, "%s is not a member of the group", handle)
		}
		if old.IsAdminAccount(handle) {
			return nil, newError(CodeCannotRemoveAdmin, nil, "%s administers the group and cannot be removed", handle)
		}
		g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == handle })
		return nil, nil
	})
}

// errUnchanged tells changeGroup that the change would change nothing.
var errUnchanged = errors.New("group unchanged")

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
	g := old.Next()
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
	if g.Legacy {
		return ErrGroupOutdated
	}
	own, err := e.ownList(ctx)
	if err != nil {
		return err
	}
	if old != nil && slices.ContainsFunc(old.Members, func(m string) bool { return !g.IsMember(m) }) {
		// A member goes: every chain made for an earlier version was
		// made for devices that included it, and members refuse such a
		// chain from now on (§14.6, chain floor).
		g.Floor = g.Version
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
