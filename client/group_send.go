package client

// Sending to a group (PROTOCOL.md 6, 14.6): the group outbox, the chain
// made for the exact set of recipient devices, its distribution, and the
// GroupSends within the relay's fan-out bound; and the group states sent
// to this account's own devices.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"sort"
	"unicode/utf8"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/relay"
)

// SendGroupText queues a text message to a group and returns its id. Like
// SendText it is stored first (status pending) and sent by the outbox,
// after any sender-key distribution it needs.
func (e *Engine) SendGroupText(ctx context.Context, group, text string) (string, error) {
	if len(text) == 0 || len(text) > MaxTextLen || !utf8.ValidString(text) {
		return "", newError(ErrTooLong.Code, nil, "a text message is 1 to %d bytes of UTF-8", MaxTextLen)
	}
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	gid, err := e.sendableGroupLocked(ctx, group)
	if err != nil {
		return "", err
	}
	return e.queueGroupLocked(ctx, gid, id, kindText, []byte(text), text, nil)
}

// sendableGroupLocked returns the id of a group this account may send to
// now: held, not legacy, a member that has not asked to leave.
func (e *Engine) sendableGroupLocked(ctx context.Context, group string) (groupID, error) {
	g, err := e.heldGroupLocked(ctx, group)
	if err != nil {
		return groupID{}, err
	}
	if left, err := e.hasLeftLocked(ctx, g.ID); err != nil {
		return groupID{}, err
	} else if left {
		return groupID{}, ErrLeftGroup
	}
	if !g.IsMember(e.acct.Handle) {
		return groupID{}, ErrNotGroupMember
	}
	if g.Legacy {
		return groupID{}, ErrGroupOutdated
	}
	return g.ID, nil
}

// queueGroupLocked stores our message id of kind (text or attachment) to
// group gid, pending, and queues it in the group outbox, in one batch;
// decorate adds what the kind keeps beside the message (an attachment's
// reference and file description).
func (e *Engine) queueGroupLocked(ctx context.Context, gid groupID, id MessageID, kind uint8, body []byte, text string, decorate func(*storage.Batch, *Message)) (string, error) {
	p := &payload{Kind: kind, ID: id, SentAt: e.nextSentAtLocked(), Body: body}
	msg := &Message{
		ID: hex.EncodeToString(id[:]), Chat: groupChatID(gid), From: e.acct.Handle, FromDevice: e.dev.ID.String(),
		Text: text, SentAt: int64(p.SentAt), Outgoing: true, Status: StatusPending,
	}
	var b storage.Batch
	if decorate != nil {
		decorate(&b, msg)
	}
	if err := e.putMessage(ctx, &b, msg, false); err != nil {
		return "", err
	}
	if err := e.putGroupOutboxLocked(ctx, &b, gid, p); err != nil {
		return "", err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return "", storageErr(err)
	}
	go e.emit(Event{Type: "message", Message: msg, Chat: msg.Chat})
	e.kickLocked()
	return msg.ID, nil
}

// putGroupOutboxLocked adds p, to group gid, at the end of the group outbox.
func (e *Engine) putGroupOutboxLocked(ctx context.Context, b *storage.Batch, gid groupID, p *payload) error {
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return err
	}
	b.Put(bGroupOutbox, seq, (&groupstate.OutRecord{GroupID: gid, Payload: p.marshal()}).Marshal())
	return nil
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
			if len(raw) > 0 && raw[0] == groupstate.LegacyFormat {
				return nil // no device takes a legacy group any more (§14.6)
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
		if err != nil || g.Legacy || g.Admin(e.dev.ID) == nil || !g.IsMember(e.acct.Handle) {
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
		if err := e.commitGroupChangeLocked(ctx, old, old.Next(), nil); err != nil {
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
		l, err := e.sendListLocked(ctx, h, refresh)
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
	if g.Legacy {
		return ErrGroupOutdated
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
		if sr == nil || !sameDevices(sr.Devices, targets) || chainBelowFloor(sr.Sender.GroupID(), g) {
			if len(targets) == 0 {
				break // nobody else to tell: the message is only ours
			}
			return e.rekeyLocked(ctx, g, targets)
		}
		if len(rec.Sealed) == 0 || rec.Chain != sr.Sender.ChainID() {
			// Encrypt on the chain made for exactly these devices; the
			// advanced chain and the ciphertext are stored before the
			// ciphertext leaves, so a crash never reuses a message key.
			frame, err := padPayload(rec.Payload)
			if err != nil {
				return newError(ErrStorage.Code, err, "group outbox entry too large")
			}
			ct, err := sr.Sender.Encrypt(frame)
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
	var own, cur []relay.Addr
	var sends [][]relay.Addr
	// The relay stores at most relay.MaxFanoutBytes of ciphertext ×
	// recipients for one send (§10.5): a larger group message goes out in
	// several GroupSends.
	perSend := max(1, relay.MaxFanoutBytes/len(sealed))
	for _, t := range targets {
		if t.handle == e.acct.Handle {
			own = append(own, relay.Addr{Handle: t.handle, Device: t.dev.ID})
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
				cur = append(cur, relay.Addr{Handle: t.handle, Device: t.dev.ID})
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
func (e *Engine) rekeyLocked(ctx context.Context, g *groupstate.State, targets []target) error {
	gid := g.ID
	// The chain is bound to the version it is made for (§14.6): members
	// refuse it once a removal has replaced that version.
	s, err := senderkey.NewSender(e.cfg.Rand, groupstate.ChainGroupID(gid, g.Version))
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

// chainBelowFloor reports whether a chain bound to chainGID (a sender's or
// a distribution's group id) was made for a version of g that a removal
// has replaced, or is bound to no version at all (a legacy chain): members
// refuse such a chain (§14.6).
func chainBelowFloor(chainGID []byte, g *groupstate.State) bool {
	id, version, ok := groupstate.ParseChainGroupID(chainGID)
	return !ok || id != g.ID || version < g.Floor
}
