package client

// Receiving in a group (PROTOCOL.md 6, 14.6): a state accepted under the
// authority rule, a chain filed from its distribution, and the group
// messages opened with it, or kept until it (or the state) arrives.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// receiveGroupStateLocked handles a group state sent over a pairwise
// session. A refused change is reported as an event; the ratchet step that
// carried it is still kept.
func (e *Engine) receiveGroupStateLocked(ctx context.Context, b *storage.Batch, p *payload, from string) ([]Event, error) {
	events, err := e.acceptGroupStateLocked(ctx, b, p.Body, from)
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

// verifyFirstGroupStateLocked is the authority rule for a group this
// device holds no state of (§14.6): the state must come from this account
// or from an admin account of it (the only ones that send states), and
// VerifyFirst must tie its signer to the creator whose account key its id
// is made from, through the creator's verified device list.
func (e *Engine) verifyFirstGroupStateLocked(ctx context.Context, g *groupstate.State, from string) (*groupstate.Admin, error) {
	if from != e.acct.Handle && !g.IsAdminAccount(from) {
		return nil, refused(nil, "the first state of a group came from %s, neither an admin of it nor this account", from)
	}
	for refresh := false; ; refresh = true {
		l, err := e.listLocked(ctx, g.Creator, refresh)
		if err != nil {
			if code(err) == ErrStorage.Code {
				return nil, err
			}
			if refresh {
				return nil, refused(err, "the device list of the group's creator %s: %v", g.Creator, err)
			}
			continue
		}
		signer, err := g.VerifyFirst(l)
		switch {
		case err == nil:
			return signer, nil
		case errors.Is(err, groupstate.ErrNotCreator) && !refresh:
			continue // the creator may have linked the signing device since we fetched its list
		case errors.Is(err, groupstate.ErrNotCreator):
			return nil, refused(err, "a group seen first is not its creator's: %v", err)
		default:
			return nil, refused(err, "version %d of a group has a bad signature", g.Version)
		}
	}
}

// acceptGroupStateLocked verifies a group state that from's device sent
// and adds it to b.
func (e *Engine) acceptGroupStateLocked(ctx context.Context, b *storage.Batch, raw []byte, from string) ([]Event, error) {
	g, err := groupstate.Parse(raw)
	if err != nil {
		return nil, refused(err, "malformed group state: %v", err)
	}
	old, err := e.loadGroupLocked(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	if g.Legacy {
		// Format 1: an id bound to no creator, which anyone who knows
		// it could claim. No device takes one any more (§14.6).
		return nil, refused(groupstate.ErrLegacy, "a group state of format 1 (an id bound to no creator) is no longer accepted")
	}
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
	} else if !g.IsMember(e.acct.Handle) {
		return nil, nil // a group we are not in and never were
	}
	var signer *groupstate.Admin
	if old != nil {
		if old.Legacy {
			return nil, refused(groupstate.ErrLegacy, "a state for a group held in format 1")
		}
		// The floor only grows, and a state that drops a member of the
		// held one raised it after the held version (the removal may be
		// a version this device missed). Two states of one version are
		// the tie rule's: comparing their floors would split members.
		drops := slices.ContainsFunc(old.Members, func(m string) bool { return !g.IsMember(m) })
		if g.Version > old.Version && (g.Floor < old.Floor || (drops && g.Floor <= old.Version)) {
			return nil, refused(nil, "version %d of the group lowers its chain floor, or removes a member without raising it", g.Version)
		}
		if signer, err = verifyGroupState(g, old.Admins); err != nil {
			return nil, err
		}
	} else if signer, err = e.verifyFirstGroupStateLocked(ctx, g, from); err != nil {
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
	if err != nil {
		return []Event{{Type: "error", Chat: from, Code: CodeMalformed, Text: fmt.Sprintf("malformed sender-key distribution from %s: %v", from, err)}}, nil
	}
	gid, version, ok := groupstate.ParseChainGroupID(d.GroupID)
	if !ok {
		return []Event{{Type: "error", Chat: from, Code: CodeStaleChain,
			Text: fmt.Sprintf("a sender chain from %s is bound to no group state version (a group id of %d bytes); refused", from, len(d.GroupID))}}, nil
	}
	g, err := e.loadGroupLocked(ctx, gid)
	if err != nil {
		return nil, err
	}
	if g != nil && chainBelowFloor(d.GroupID, g) {
		return staleChain(g, from, version), nil
	}
	ref := chainRef(from, dev, d.ChainID)
	if _, err := e.cfg.Store.Get(ctx, bGroupChains, ref); err == nil {
		return nil, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, storageErr(err)
	}
	rv, err := senderkey.NewReceiver(d)
	if err != nil {
		return []Event{{Type: "error", Chat: from, Code: CodeMalformed, Text: err.Error()}}, nil
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
		return []Event{{Type: "error", Chat: from, Code: CodeTooManyChains, Text: fmt.Sprintf("%s's device %s distributed more group chains than kept (%d); refused", from, dev, maxChainsPerDevice)}}, nil
	}
	w := wire.NewWriter(24)
	w.Fixed(gid[:])
	w.U64(uint64(e.cfg.Now().UnixNano()))
	b.Put(bGroupChains, ref, w.Bytes())

	var events []Event
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

// staleChain is the event of a chain refused because it was made for a
// version of g that a removal has replaced (§14.6, chain floor).
func staleChain(g *groupstate.State, from string, version uint64) []Event {
	return []Event{{Type: "error", Chat: groupChatID(g.ID), Code: CodeStaleChain,
		Text: fmt.Sprintf("%s's sender chain was made for version %d of the group, which a removal replaced (version %d); refused", from, version, g.Floor)}}
}

// replayGroupLocked opens the pending messages of every chain held for a
// group whose state just arrived; a chain made for a version below the
// state's floor (filed before the state came) is dropped instead.
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
		if chainBelowFloor(c.rv.GroupID(), g) {
			_, version, _ := groupstate.ParseChainGroupID(c.rv.GroupID())
			b.Delete(bGroupRecv, c.key)
			b.Delete(bGroupChains, ref)
			if err := e.deletePendingLocked(ctx, b, ref); err != nil {
				return nil, err
			}
			events = append(events, staleChain(g, parts[0], version)...)
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
			events = append(events, Event{Type: "error", Chat: groupChatID(g.ID), Code: CodeUndecryptable, Text: err.Error()})
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
		return nil, newError(CodeDecryptFailed, err, "a group message from %s failed to decrypt: %v", from, err)
	}
	p, err := openPayload(pt)
	if err != nil {
		return nil, newError(CodeMalformed, err, "undecodable group message from %s", from)
	}
	own := from == e.acct.Handle
	m := &Message{
		ID: hex.EncodeToString(p.ID[:]), Chat: groupChatID(g.ID), From: from, FromDevice: dev.String(),
		SentAt: int64(p.SentAt), Outgoing: own,
	}
	switch {
	case p.Kind == kindText && len(p.Body) <= MaxTextLen && utf8.Valid(p.Body):
		m.Text = string(p.Body)
	case p.Kind == kindAttachment:
		if err := groupAttachment(p, m); err != nil {
			return nil, newError(CodeMalformed, err, "malformed group attachment from %s", from)
		}
	default:
		return nil, newError(CodeMalformed, nil, "unsupported group message (kind %d) from %s", p.Kind, from)
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
		if m.attach != nil {
			b.Put(bAttach, m.ID, m.attach)
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
func (e *Engine) receiveGroupLocked(ctx context.Context, env *relay.Envelope, from string, dev identity.DeviceID) ([]Event, error) {
	msg := env.Payload[1:]
	chain, iter, err := senderkey.MessageChainID(msg)
	if err != nil {
		return nil, newError(CodeMalformed, err, "malformed group message from %s", from)
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
		return newError(CodeGroupPendingFull, nil, "%d group messages from %s's device %s wait for their sender key; this one was dropped", n, from, dev)
	}
	var b storage.Batch
	b.Put(bGroupPend, fmt.Sprintf("%s/%08x%s", ref, iter, hex.EncodeToString(msgID[:])), (&groupstate.Pending{MessageID: msgID, Msg: msg}).Marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.log.Info("group message kept until its sender key arrives", "from", from)
	return nil
}
