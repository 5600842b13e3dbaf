package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/relay"
)

// errDuplicate marks an envelope already processed (the relay delivers at
// least once): it is acknowledged and otherwise ignored.
var errDuplicate = errors.New("duplicate envelope")

// errReplayedInitial is an initial message that started a session this
// device accepted once already, which is no longer live (PROTOCOL.md 4.2
// step 1): a redelivery or a relay replaying it to bring an evicted
// session back. Like a duplicate, it is acknowledged and ignored.
var errReplayedInitial = fmt.Errorf("%w: an initial message answered before", errDuplicate)

// receive processes one envelope: decrypt, store message and ratchet in
// one relaxed batch (storage.Batch.Relaxed), and reports whether the
// envelope may be acknowledged once a Sync made that batch durable (the
// session loop acknowledges in groups, PROTOCOL.md 13.6). Envelopes that
// can never be processed are acknowledged too (and reported), but not
// ones that failed for a local reason (storage), so the relay delivers
// those again.
func (e *Engine) receive(ctx context.Context, env *relay.Envelope) (ack bool) {
	start := time.Now()
	e.mu.Lock()
	events, err := e.receiveLocked(ctx, env)
	e.mu.Unlock()
	if err == nil {
		e.stats.record(time.Since(start))
	}
	var ee *Error
	if err != nil && errors.As(err, &ee) && ee.Code == ErrStorage.Code {
		e.log.Error("envelope not stored; it stays in the mailbox", "err", err)
		return false
	}
	if errors.Is(err, errReplayedInitial) {
		e.log.Warn("an initial message came again after its session ended; ignored", "from", env.From.Handle)
	}
	if err != nil && !errors.Is(err, errDuplicate) {
		// Never silent: the UI shows that a message from this device
		// could not be read (DESIGN.md: "Bad MAC storms" are surfaced).
		e.log.Warn("envelope refused", "from", env.From.Handle, "code", code(err))
		events = append(events, Event{Type: "error", Chat: env.From.Handle, Code: CodeUndecryptable, Text: err.Error()})
	}
	for _, ev := range events {
		e.emit(ev)
	}
	if err != nil && repairable(err) {
		e.requestRetry(ctx, env) // and repaired (repair.go)
	}
	return true
}

// ackDurable makes every batch received so far durable (one strict
// commit for the whole group) and only then acknowledges the group's
// envelopes, so the relay never deletes an envelope whose message a power
// cut could still lose. If the Sync fails nothing is acknowledged: the
// relay delivers the envelopes again and the ratchet reports the ones
// already stored as duplicates.
func (e *Engine) ackDurable(ctx context.Context, conn Conn, seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	start := time.Now()
	if err := storage.Sync(ctx, e.cfg.Store); err != nil {
		e.log.Error("received messages not made durable; they stay in the mailbox", "err", err)
		return
	}
	e.stats.recordSync(time.Since(start), len(seqs))
	if err := conn.Ack(ctx, seqs...); err != nil {
		e.log.Warn("ack failed; the envelopes will be delivered again", "err", err)
	}
	// Whatever the group queued (receipts, above all) goes now, once per
	// group rather than once per envelope: receipts queued meanwhile join
	// one entry (queueReceiptLocked), and the flusher's transactions do
	// not queue up in front of every received message's.
	e.kickLocked()
}

func (e *Engine) receiveLocked(ctx context.Context, env *relay.Envelope) ([]Event, error) {
	if e.acct == nil {
		return nil, ErrNoAccount
	}
	if len(env.Payload) < 2 {
		return nil, newError(CodeMalformed, nil, "empty envelope")
	}
	from := env.From.Handle
	devID := identity.DeviceID(env.From.Device)
	entry, err := e.senderEntryLocked(ctx, from, devID)
	if err != nil {
		return nil, err
	}
	if env.Payload[0] == envGroup {
		return e.receiveGroupLocked(ctx, env, from, devID)
	}
	skey := sessionKey(from, devID)
	rec, err := e.loadSessions(ctx, skey)
	if err != nil {
		return nil, err
	}
	// Relaxed: the envelope is acknowledged only after a Sync (ackDurable),
	// so a batch a power cut loses is delivered again.
	b := storage.Batch{Relaxed: true}
	var pt []byte
	newSession := false
	switch env.Payload[0] {
	case envInitial:
		im, err := pqxdh.UnmarshalInitialMessage(env.Payload[1:])
		if err != nil {
			return nil, newError(CodeMalformed, err, "malformed initial message")
		}
		if !im.Initiator.Equal(entry) {
			return nil, newError(CodeIdentityMismatch, pqxdh.ErrIdentityMismatch,
				"an initial message claims %s's device %s with keys not in its device list", from, devID)
		}
		if pt, err = decryptExisting(rec, im.Message, &im.Ephemeral); err != nil && !errors.Is(err, errNoSession) {
			return nil, err
		}
		if pt == nil {
			// Not a live session's: a start this device answered before
			// is refused (its session was evicted, and must not come
			// back), else a new session begins.
			seen := initialSeenKey(im.SignedPrekeyID, devID, im.Ephemeral)
			if _, err := e.cfg.Store.Get(ctx, bPrekeys, seen); err == nil {
				return nil, errReplayedInitial
			} else if !errors.Is(err, storage.ErrNotFound) {
				return nil, storageErr(err)
			}
			state, plain, err := pqxdh.Respond(e.dev, &prekeyView{ctx: ctx, e: e, batch: &b}, im)
			if err != nil {
				return nil, newError(CodeSessionSetup, err, "could not start a session with %s's device %s: %v", from, devID, err)
			}
			b.Put(bPrekeys, seen, marshalInitialSeen(e.cfg.Now()))
			newSession = true
			s := &session{State: state, PeerEphemeral: im.Ephemeral, HasPeerEph: true}
			rec.Sessions = append([]*session{s}, rec.Sessions...)
			if len(rec.Sessions) > maxSessionsPerDevice {
				rec.Sessions = rec.Sessions[:maxSessionsPerDevice]
			}
			pt = plain
		}
	case envRatchet:
		if pt, err = decryptExisting(rec, env.Payload[1:], nil); err != nil {
			return nil, err
		}
	default:
		return nil, newError(CodeMalformed, nil, "unknown envelope type %d", env.Payload[0])
	}
	enc, err := rec.marshal()
	if err != nil {
		return nil, err
	}
	b.Put(bSessions, skey, enc)
	ratchetOnly := len(b.Ops) // the ratchet step (and prekey use) alone
	if newSession {
		// A new session is kept only with a message this device did not
		// have: a start whose first payload is a duplicate (a replay, or
		// a resend in a new session) keeps nothing, not even the prekeys
		// it consumed, so it cannot push a live session out. A real
		// session is kept with its first new message.
		ratchetOnly = 0
	}

	p, err := openPayload(pt)
	if err != nil {
		// The ratchet advanced; keep that, report the garbage.
		if cerr := e.cfg.Store.Commit(ctx, &b); cerr != nil {
			return nil, storageErr(cerr)
		}
		return nil, newError(CodeMalformed, err, "undecodable message from %s", from)
	}
	if err := e.noteListStampLocked(ctx, from, devID, p.List); err != nil {
		return nil, err
	}
	// The same message again (a resend after a lost ack) keeps the
	// ratchet step and shows nothing new. A text or file is stored with
	// an Insert of its id (putMessage), so the commit below finds a
	// duplicate without a read first: in the browser that read is an
	// IndexedDB transaction on every received message. Other kinds are
	// looked up.
	if p.Kind != kindText && p.Kind != kindAttachment {
		if m, _, err := e.lookupMessage(ctx, p.ID); err != nil {
			return nil, err
		} else if m != nil {
			return nil, e.commitDuplicateLocked(ctx, &b, ratchetOnly)
		}
	}
	var events []Event
	switch p.Kind {
	case kindText:
		events, err = e.receiveTextLocked(ctx, &b, p, from, devID)
	case kindReceipt:
		events, err = e.receiveReceiptLocked(ctx, &b, p, from)
	case kindSyncMutation, kindSyncSnapshot, kindSyncRequest, kindSyncKey:
		events, err = e.receiveSyncLocked(ctx, &b, p, from, devID)
	case kindAttachment:
		events, err = e.receiveAttachmentLocked(ctx, &b, p, from, devID)
	case kindGroupState:
		events, err = e.receiveGroupStateLocked(ctx, &b, p, from)
	case kindSenderKey:
		events, err = e.receiveSenderKeyLocked(ctx, &b, p, from, devID)
	case kindGroupLeave:
		events, err = e.receiveGroupLeaveLocked(ctx, &b, p, from)
	case kindRetry:
		events, err = e.receiveRetryLocked(ctx, &b, p, from, devID)
	}
	if err != nil {
		return nil, err
	}
	if err := e.cfg.Store.Commit(ctx, &b); errors.Is(err, storage.ErrExists) {
		return nil, e.commitDuplicateLocked(ctx, &b, ratchetOnly)
	} else if err != nil {
		return nil, storageErr(err)
	}
	return events, nil
}

// commitDuplicateLocked commits only the first n operations of b (the
// ratchet step) for a message already stored, and returns errDuplicate.
// Receipts the rest of b queued are dropped with it, so none joins an
// entry that does not exist.
func (e *Engine) commitDuplicateLocked(ctx context.Context, b *storage.Batch, n int) error {
	b.Ops = b.Ops[:n]
	clear(e.openReceipts)
	if n == 0 {
		return errDuplicate
	}
	if err := e.cfg.Store.Commit(ctx, b); err != nil {
		return storageErr(err)
	}
	return errDuplicate
}

// senderEntryLocked finds the sending device in its account's verified
// list, refreshing the list once if the device is unknown (it may have
// just been linked).
func (e *Engine) senderEntryLocked(ctx context.Context, handle string, id identity.DeviceID) (identity.DevicePublic, error) {
	for refresh := false; ; refresh = true {
		l, err := e.listLocked(ctx, handle, refresh)
		if err != nil {
			if refresh {
				return identity.DevicePublic{}, err
			}
			continue
		}
		if en := l.Find(id); en != nil {
			return en.Device, nil
		}
		if refresh {
			return identity.DevicePublic{}, newError(ErrUnknownDevice.Code, nil,
				"a message came from device %s, which is not in %s's device list", id, handle)
		}
	}
}

var errNoSession = errors.New("no session")

// decryptExisting tries the stored sessions (active first; with eph, only
// the one that initial message started). On success the session becomes
// active and, having heard from the peer, stops sending initial messages.
func decryptExisting(rec *sessionRecord, msg []byte, eph *[32]byte) ([]byte, error) {
	var firstErr error
	for i, s := range rec.Sessions {
		if eph != nil && (!s.HasPeerEph || s.PeerEphemeral != *eph) {
			continue
		}
		pt, err := s.State.Decrypt(msg)
		if err != nil {
			if errors.Is(err, ratchet.ErrDuplicate) {
				return nil, errDuplicate
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if eph == nil {
			s.Initial = nil
		}
		copy(rec.Sessions[1:i+1], rec.Sessions[:i])
		rec.Sessions[0] = s
		return pt, nil
	}
	if firstErr == nil {
		return nil, errNoSession
	}
	return nil, newError(CodeDecryptFailed, firstErr, "message failed to decrypt: %v", firstErr)
}

func (e *Engine) receiveTextLocked(ctx context.Context, b *storage.Batch, p *payload, from string, dev identity.DeviceID) ([]Event, error) {
	if len(p.Body) > MaxTextLen {
		return nil, newError(ErrTooLong.Code, nil, "text over the limit")
	}
	own := from == e.acct.Handle
	chat := from
	if own {
		// Sent by another device of ours: file it under its recipient.
		if p.To == "" || !handleRule.MatchString(p.To) {
			return nil, newError(CodeMalformed, nil, "a synced message names no chat")
		}
		chat = p.To
	}
	msg := &Message{
		ID: hex.EncodeToString(p.ID[:]), Chat: chat, From: from, FromDevice: dev.String(),
		Text: string(p.Body), SentAt: int64(p.SentAt), Outgoing: own,
	}
	if own {
		msg.Status = StatusSent
	}
	if err := e.putMessage(ctx, b, msg, !own); err != nil {
		return nil, err
	}
	if !own {
		// Tell the sender (and our other devices) it arrived; queued in
		// the same batch, so it is sent exactly when the message is kept.
		if err := e.queueReceiptLocked(ctx, b, from, receiptDelivered, []MessageID{p.ID}); err != nil {
			return nil, err
		}
	}
	return []Event{{Type: "message", Message: msg, Chat: chat}, {Type: "chats"}}, nil
}

func (e *Engine) receiveReceiptLocked(ctx context.Context, b *storage.Batch, p *payload, from string) ([]Event, error) {
	st, ids, err := parseReceipt(p.Body)
	if err != nil {
		return nil, newError(CodeMalformed, err, "malformed receipt")
	}
	status := StatusDelivered
	if st == receiptRead {
		status = StatusRead
	}
	var events []Event
	if from == e.acct.Handle {
		// Our other device received or read messages of chat p.To:
		// mirror the read marker so all our devices agree.
		if st == receiptRead && p.To != "" {
			chat, err := e.loadChat(ctx, p.To)
			if err != nil {
				return nil, err
			}
			if chat.Unread != 0 {
				chat.Unread = 0
				b.Put(bChats, chat.ID, chat.marshal())
				events = append(events, Event{Type: "chats"})
			}
		}
		return events, nil
	}
	for _, id := range ids {
		if m := e.setStatus(ctx, b, id, status); m != nil {
			// Only the sender of a message can mark it delivered/read for
			// us: a receipt for a message to someone else is ignored.
			if m.Chat != from {
				continue
			}
			events = append(events, Event{Type: "receipt", Message: m, Chat: m.Chat})
		}
	}
	return events, nil
}

// queueReceiptLocked adds a receipt to the outbox inside batch b: to the
// receipt of the same status for the same recipient that is queued and
// not yet encrypted, if there is one with room, or as a new entry.
func (e *Engine) queueReceiptLocked(ctx context.Context, b *storage.Batch, to string, status uint8, ids []MessageID) error {
	open := fmt.Sprintf("%s/%d", to, status)
	if key, ok := e.openReceipts[open]; ok {
		merged, err := e.mergeReceiptLocked(ctx, b, key, status, ids)
		if err != nil || merged {
			return err
		}
	}
	var id MessageID
	if _, err := e.cfg.Rand.Read(id[:]); err != nil {
		return err
	}
	p := &payload{Kind: kindReceipt, ID: id, SentAt: e.nextSentAtLocked(), To: to, Body: receiptBody(status, ids)}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return err
	}
	b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal(), To: to}).marshal())
	if len(ids) < maxReceiptIDs {
		e.openReceipts[open] = seq
	}
	return nil
}

// mergeReceiptLocked adds ids to the queued receipt at outbox key if it
// is still there, not yet encrypted (so nothing of it left), of the same
// status, and has room. Everything runs under the engine lock, as does
// the flusher's encryption, so the entry cannot be sent meanwhile.
func (e *Engine) mergeReceiptLocked(ctx context.Context, b *storage.Batch, key string, status uint8, ids []MessageID) (bool, error) {
	v, err := e.cfg.Store.Get(ctx, bOutbox, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storageErr(err)
	}
	rec, err := unmarshalOutbox(v)
	if err != nil || len(rec.Sealed) > 0 {
		return false, nil
	}
	p, err := unmarshalPayload(rec.Payload)
	if err != nil || p.Kind != kindReceipt {
		return false, nil
	}
	st, have, err := parseReceipt(p.Body)
	if err != nil || st != status || len(have)+len(ids) > maxReceiptIDs {
		return false, nil
	}
	p.Body = receiptBody(status, append(have, ids...))
	rec.Payload = p.marshal()
	b.Put(bOutbox, key, rec.marshal())
	return true, nil
}

// MarkRead marks a chat read: its unread count drops to zero on every own
// device, and the senders get read receipts.
func (e *Engine) MarkRead(ctx context.Context, chat string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return ErrNoAccount
	}
	c, err := e.loadChat(ctx, chat)
	if err != nil {
		return err
	}
	if c.Unread == 0 {
		return nil
	}
	var ids []MessageID
	err = e.cfg.Store.Scan(ctx, bMessages, chat+sep, storage.ScanOptions{Reverse: true, Limit: min(c.Unread, maxReceiptIDs)}, func(_ string, v []byte) error {
		m, err := unmarshalMessage(v)
		if err != nil || m.Outgoing {
			return nil
		}
		raw, err := hex.DecodeString(m.ID)
		if err == nil && len(raw) == 16 {
			var id MessageID
			copy(id[:], raw)
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	c.Unread = 0
	var b storage.Batch
	b.Put(bChats, chat, c.marshal())
	if err := e.markReadSyncedLocked(ctx, &b, c); err != nil {
		return err
	}
	if len(ids) > 0 && handleRule.MatchString(chat) {
		if err := e.queueReceiptLocked(ctx, &b, chat, receiptRead, ids); err != nil {
			return err
		}
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.kickLocked()
	go e.emit(Event{Type: "chats"})
	return nil
}
