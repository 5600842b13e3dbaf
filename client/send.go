package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// maxStaleRetries bounds how often one send refreshes the device lists
// after the relay reports a stale device set; more means the lists change
// faster than we can follow, and the message waits for the next flush.
const maxStaleRetries = 3

// SendText queues a text message to handle and returns its id. The message
// is stored (status pending) before anything is sent, so it survives a
// crash or going offline; the outbox sends it, in order, when connected.
func (e *Engine) SendText(ctx context.Context, to, text string) (string, error) {
	if len(text) == 0 || len(text) > MaxTextLen || !utf8.ValidString(text) {
		return "", newError(ErrTooLong.Code, nil, "a text message is 1 to %d bytes of UTF-8", MaxTextLen)
	}
	if !handleRule.MatchString(to) {
		return "", ErrBadHandle
	}
	return e.queue(ctx, kindText, to, []byte(text), text)
}

// queue stores an outgoing payload (and, for texts, the message the UI
// shows) with its outbox entry in one batch, then wakes the sender.
func (e *Engine) queue(ctx context.Context, kind uint8, to string, body []byte, text string) (string, error) {
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return "", err
	}
	return e.queueID(ctx, id, kind, to, body, text, nil)
}

// queueID is queue with an id the caller chose (an attachment's progress
// events name it before the message exists); decorate, if set, completes
// the shown message and adds records to the same batch.
func (e *Engine) queueID(ctx context.Context, id MessageID, kind uint8, to string, body []byte, text string, decorate func(*storage.Batch, *Message)) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return "", ErrNoAccount
	}
	if e.acct.Revoked {
		return "", ErrRevoked
	}
	if to != "" && to != e.acct.Handle {
		pin, err := e.loadPin(ctx, to)
		if err != nil {
			return "", err
		}
		if pin != nil && pin.KeyChanged {
			return "", ErrSafetyChanged
		}
		if pin != nil && pin.Want != nil && e.conn != nil {
			// Refused now rather than failed in the outbox: the contact
			// announced a list the relay has not served yet.
			if _, err := e.sendListLocked(ctx, to, true); err != nil && !isTransient(err) {
				return "", err
			}
		}
		if pin == nil && e.conn != nil {
			// First message to this handle: find out now whether it
			// exists, instead of queueing something undeliverable.
			if _, err := e.listLocked(ctx, to, true); err != nil && !isTransient(err) {
				return "", err
			}
		}
	}
	p := &payload{Kind: kind, ID: id, SentAt: e.nextSentAtLocked(), To: to, Body: body}
	var b storage.Batch
	var msg *Message
	if kind == kindText || kind == kindAttachment {
		msg = &Message{
			ID: hex.EncodeToString(id[:]), Chat: to, From: e.acct.Handle, FromDevice: e.dev.ID.String(),
			Text: text, SentAt: int64(p.SentAt), Outgoing: true, Status: StatusPending,
		}
		if decorate != nil {
			decorate(&b, msg)
		}
		if err := e.putMessage(ctx, &b, msg, false); err != nil {
			return "", err
		}
	}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return "", err
	}
	b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal(), To: to}).marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return "", storageErr(err)
	}
	if msg != nil {
		go e.emit(Event{Type: "message", Message: msg, Chat: to})
	}
	e.kickLocked()
	return hex.EncodeToString(id[:]), nil
}

// nextSentAtLocked is the send time in unix ms, strictly increasing per
// device, so messages sent within one millisecond keep their order on
// every device (chats sort by sender time).
// maxSentAtLead is how far ahead of this device's clock a received
// message's send time may be and still move this device's next one
// (observeSentAtLocked): enough for clocks a little apart, not enough for
// a sender whose clock is off to drag this device's times along.
const maxSentAtLead = 1000 // ms

// observeSentAtLocked notes the send time of a received message, so that
// this device's next message sorts after it (chats order by send time,
// then id): a reply sent within the same millisecond as what it answers,
// or from a clock slightly behind the sender's, would otherwise show
// before it.
func (e *Engine) observeSentAtLocked(sentAt uint64) {
	if sentAt > e.lastSentAt && sentAt <= uint64(e.cfg.Now().UnixMilli())+maxSentAtLead {
		e.lastSentAt = sentAt
	}
}

func (e *Engine) nextSentAtLocked() uint64 {
	t := uint64(e.cfg.Now().UnixMilli())
	if t <= e.lastSentAt {
		t = e.lastSentAt + 1
	}
	e.lastSentAt = t
	return t
}

// nextOutboxSeqLocked returns the key of a new entry of the pairwise or
// the group outbox (one counter orders both): the counter in "%016x",
// which sorts like the number. The counter lives in the engine's memory
// only, so queueing an entry writes the entry and nothing else: one
// IndexedDB record less for every received message (its receipt) than
// when the counter was a record of its own.
//
// Why that is safe: the keys only have to increase among the entries
// that exist, the flusher sending each outbox in key order. Only the
// engine queues entries, under e.mu, and one engine owns a store (the
// owner lock in the browser, bbolt's file lock natively).
//   - The counter is recovered once per run (loadOutboxSeqLocked) as the
//     highest key in either outbox (or the record older versions kept
//     the counter in, if higher), so every entry in the store sorts below
//     the next one queued.
//   - Within a run it never goes back. A batch whose Commit fails after
//     taking a number leaves a gap, which is harmless, and no later entry
//     gets that number (a receipt that remembered it, openReceipts, finds
//     nothing there rather than some other entry).
//   - A restart may reuse the numbers of entries removed before it, never
//     that of an entry that exists. Removals are relaxed batches, but a
//     power cut loses relaxed batches only as a suffix of the commits
//     (storage.Batch), so it cannot bring back a removed entry and keep
//     one queued after it under a lower number.
func (e *Engine) nextOutboxSeqLocked(ctx context.Context) (string, error) {
	if err := e.loadOutboxSeqLocked(ctx); err != nil {
		return "", err
	}
	e.outboxSeq++
	return fmt.Sprintf("%016x", e.outboxSeq), nil
}

// loadOutboxSeqLocked recovers the outbox counter on its first use in this
// run: the highest key in the pairwise and the group outbox, and at least
// the counter record that versions before the in-memory counter wrote on
// every queued entry (self/outbox-seq, now only read), so the keys of a
// profile they used keep increasing too.
func (e *Engine) loadOutboxSeqLocked(ctx context.Context) error {
	if e.outboxSeqLoaded {
		return nil
	}
	var n uint64
	v, err := e.cfg.Store.Get(ctx, bSelf, keyOutSeq)
	switch {
	case err == nil:
		r := wire.NewReader(v)
		n = r.U64()
		if err := r.Finish(); err != nil {
			return newError(ErrStorage.Code, err, "outbox counter corrupt")
		}
	case !errors.Is(err, storage.ErrNotFound):
		return storageErr(err)
	}
	for _, bucket := range []string{bOutbox, bGroupOutbox} {
		var last string
		err := e.cfg.Store.Scan(ctx, bucket, "", storage.ScanOptions{Reverse: true, Limit: 1}, func(k string, _ []byte) error {
			last = k
			return nil
		})
		if err != nil {
			return storageErr(err)
		}
		if last == "" {
			continue
		}
		s, err := strconv.ParseUint(last, 16, 64)
		if err != nil || len(last) != 16 {
			return newError(ErrStorage.Code, err, "outbox key %q is not a counter", last)
		}
		n = max(n, s)
	}
	e.outboxSeq = max(e.outboxSeq, n)
	e.outboxSeqLoaded = true
	return nil
}

// kickLocked wakes the session loop to flush the outbox.
func (e *Engine) kickLocked() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// isTransient reports errors that mean "try again later" (network), as
// opposed to refusals that will never succeed.
func isTransient(err error) bool {
	var ee *Error
	if errors.As(err, &ee) {
		return ee.Code == ErrOffline.Code || ee.Code == ErrRelayRefused.Code
	}
	return true
}

// flushOutbox sends queued messages in order until the outbox is empty or
// the connection fails.
//
// One call is one pass: it sends what was queued when it began (and what
// it queues itself), not entries queued meanwhile, which the next pass
// sends (whoever queued them kicked the flusher). So the receipts a burst
// of incoming messages queues while one is on its way join one entry
// (queueReceiptLocked) instead of each going out alone.
func (e *Engine) flushOutbox(ctx context.Context) {
	passEnd := ""
	for ctx.Err() == nil {
		e.mu.Lock()
		conn := e.conn
		if conn == nil {
			e.mu.Unlock()
			return
		}
		if passEnd == "" {
			passEnd = e.outboxHighLocked(ctx)
		}
		// Scan only if something was queued since both outboxes were last
		// found empty (outboxWatch).
		gen := e.outboxGen.Load()
		scan := gen != e.outboxClean
		var key string
		var val []byte
		var err error
		if scan {
			err = e.cfg.Store.Scan(ctx, bOutbox, "", storage.ScanOptions{Limit: 1}, func(k string, v []byte) error {
				key, val = k, v
				return nil
			})
		}
		later := key > passEnd // queued during this pass
		if err == nil && (key == "" || later) {
			sent, empty := e.flushGroupLocked(ctx, conn, scan)
			if sent {
				// Nothing more of this pass in the pairwise outbox: one
				// group message went (or the distributions it needs were
				// queued, and go first, in this pass).
				passEnd = e.outboxHighLocked(ctx)
				e.mu.Unlock()
				continue
			}
			if empty && scan && key == "" {
				e.outboxClean = gen
			}
			e.mu.Unlock()
			return
		}
		if err != nil {
			e.mu.Unlock()
			return
		}
		rec, err := unmarshalOutbox(val)
		if err == nil {
			err = e.sendOutboxLocked(ctx, conn, key, rec)
		}
		if err != nil && isTransient(err) {
			e.mu.Unlock()
			e.log.Warn("outbox flush paused", "err", err)
			return
		}
		if err != nil {
			// A permanent refusal (unknown account, revoked contact…):
			// the message can never be delivered. Keep it, marked failed,
			// and move on so one bad message does not block the rest.
			e.failOutboxLocked(ctx, key, rec, err)
		}
		e.mu.Unlock()
	}
}

// outboxHighLocked is the key of the newest outbox entry queued so far
// (entries are keyed by a counter, nextOutboxSeqLocked), or a key above
// every entry if the counter cannot be recovered.
func (e *Engine) outboxHighLocked(ctx context.Context) string {
	if err := e.loadOutboxSeqLocked(ctx); err != nil {
		return "\xff"
	}
	return fmt.Sprintf("%016x", e.outboxSeq)
}

func (e *Engine) failOutboxLocked(ctx context.Context, key string, rec *outboxRecord, cause error) {
	var b storage.Batch
	b.Delete(bOutbox, key)
	if rec != nil {
		if p, err := unmarshalPayload(rec.Payload); err == nil && (p.Kind == kindText || p.Kind == kindAttachment) {
			e.setStatus(ctx, &b, p.ID, "failed")
		}
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		e.log.Error("could not record failed message", "err", err)
		return
	}
	e.log.Warn("message could not be delivered", "code", code(cause))
	go e.emit(Event{Type: "error", Code: code(cause), Text: cause.Error()})
}

type target struct {
	handle string
	dev    identity.DevicePublic
}

// targetsLocked lists the devices a message to `to` goes to: every active
// device of the recipient and every other active device of our account.
func (e *Engine) targetsLocked(ctx context.Context, to string, refresh bool) ([]target, error) {
	var out []target
	own, err := e.sendListLocked(ctx, e.acct.Handle, refresh)
	if err != nil {
		return nil, err
	}
	if own.Find(e.dev.ID) == nil {
		return nil, ErrRevoked
	}
	for _, d := range e.activeDevices(own) {
		if d.ID != e.dev.ID {
			out = append(out, target{e.acct.Handle, d})
		}
	}
	if to != "" && to != e.acct.Handle {
		l, err := e.sendListLocked(ctx, to, refresh)
		if err != nil {
			return nil, err
		}
		for _, d := range e.activeDevices(l) {
			out = append(out, target{to, d})
		}
	}
	return out, nil
}

func (e *Engine) sendOutboxLocked(ctx context.Context, conn Conn, key string, rec *outboxRecord) error {
	p, err := unmarshalPayload(rec.Payload)
	if err != nil {
		return newError(ErrStorage.Code, err, "outbox entry corrupt")
	}
	for attempt := 0; ; attempt++ {
		targets, err := e.targetsLocked(ctx, rec.To, attempt > 0)
		if err != nil {
			return err
		}
		// Every pairwise payload tells its recipients which list of our
		// account this device holds (PROTOCOL.md §14.2), so a relay that
		// withholds a revocation from them is found out.
		stamp, err := e.ownStampLocked(ctx)
		if err != nil {
			return err
		}
		if p.List != stamp {
			p.List = stamp
			rec.Payload = p.marshal()
		}
		var filler []byte // what devices other than rec.Only get
		if rec.Only != nil {
			if !slices.ContainsFunc(targets, func(t target) bool { return t.handle == rec.Only.Handle && t.dev.ID == rec.Only.Device }) {
				// The device left its account: nothing to send.
				var done storage.Batch
				done.Delete(bOutbox, key)
				if err := e.cfg.Store.Commit(ctx, &done); err != nil {
					return storageErr(err)
				}
				return nil
			}
			if filler, err = e.fillerLocked(rec.To); err != nil {
				return err
			}
		}
		// Keep the ciphertexts already made for devices still listed (a
		// retry resends exactly those bytes), encrypt for new devices,
		// drop devices no longer listed.
		have := map[string]sealedOut{}
		for _, s := range rec.Sealed {
			have[sessionKey(s.Handle, s.Device)] = s
		}
		var sealed []sealedOut
		var b storage.Batch
		for _, t := range targets {
			if s, ok := have[sessionKey(t.handle, t.dev.ID)]; ok {
				sealed = append(sealed, s)
				continue
			}
			pt := rec.Payload
			if rec.Only != nil && (t.handle != rec.Only.Handle || t.dev.ID != rec.Only.Device) {
				pt = filler
			}
			padded, err := padPayload(pt)
			if err != nil {
				return newError(ErrStorage.Code, err, "outbox entry too large")
			}
			ct, err := e.encryptLocked(ctx, conn, &b, t, padded)
			if err != nil {
				return err
			}
			sealed = append(sealed, sealedOut{Handle: t.handle, Device: t.dev.ID, Payload: ct})
		}
		rec.Sealed = sealed
		if b.Len() > 0 {
			// The advanced ratchets and the ciphertexts they made are
			// stored before anything leaves: a crash after the send
			// cannot make us reuse a message key.
			b.Put(bOutbox, key, rec.marshal())
			if err := e.cfg.Store.Commit(ctx, &b); err != nil {
				return storageErr(err)
			}
		}
		if len(sealed) > 0 {
			frames := make([]relay.Sealed, len(sealed))
			for i, s := range sealed {
				frames[i] = relay.Sealed{To: relay.Addr{Handle: s.Handle, Device: s.Device}, Payload: s.Payload}
			}
			// The ciphertexts and ratchets are committed: the network wait
			// need not hold the engine, so envelopes keep being received
			// (and acknowledged) while the relay fsyncs this send. Only
			// the session goroutine flushes, so the entry cannot be sent
			// twice meanwhile.
			sctx, cancel := context.WithTimeout(ctx, opTimeout)
			e.mu.Unlock()
			err = conn.Send(sctx, p.ID, frames)
			e.mu.Lock()
			cancel()
			var stale *StaleError
			if errors.As(err, &stale) {
				if attempt+1 >= maxStaleRetries {
					return newError(ErrRelayRefused.Code, err, "the device lists keep changing; will retry")
				}
				continue
			}
			if err != nil {
				return mapRelayErr(err)
			}
		}
		// Relaxed: losing this batch to a power cut only sends the
		// message again, which its recipients drop by its id; the
		// ratchet steps it used are durable (the strict commit above).
		done := storage.Batch{Relaxed: true}
		done.Delete(bOutbox, key)
		if (p.Kind == kindText || p.Kind == kindAttachment) && rec.Only == nil {
			e.setStatus(ctx, &done, p.ID, StatusSent)
			// Who it went to, for retry requests (sentto.go).
			if err := e.putSentToLocked(ctx, &done, p, sealed); err != nil {
				return err
			}
		}
		if err := e.cfg.Store.Commit(ctx, &done); err != nil {
			return storageErr(err)
		}
		return nil
	}
}

// fillerLocked is the payload a send for one device (outboxRecord.Only)
// carries to the other devices the relay makes it cover: a delivered
// receipt for no message, which changes nothing where it arrives.
func (e *Engine) fillerLocked(to string) ([]byte, error) {
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return nil, err
	}
	p := &payload{Kind: kindReceipt, ID: id, SentAt: e.nextSentAtLocked(), To: to, Body: receiptBody(receiptDelivered, nil)}
	return p.marshal(), nil
}

// encryptLocked encrypts plaintext for one device, opening a session from
// its prekey bundle if there is none, and adds the session to b.
func (e *Engine) encryptLocked(ctx context.Context, conn Conn, b *storage.Batch, t target, plaintext []byte) ([]byte, error) {
	skey := sessionKey(t.handle, t.dev.ID)
	rec, err := e.loadSessions(ctx, skey)
	if err != nil {
		return nil, err
	}
	if len(rec.Sessions) == 0 || e.renewSessionLocked(skey) {
		// No session yet, or one to start anew after a failed decryption
		// (repair.go): the older ones stay, behind it, for messages
		// still in flight.
		s, err := e.initiateLocked(ctx, conn, t)
		if err != nil {
			return nil, err
		}
		rec.Sessions = append([]*session{s}, rec.Sessions...)
		if len(rec.Sessions) > maxSessionsPerDevice {
			rec.Sessions = rec.Sessions[:maxSessionsPerDevice]
		}
		e.sessionRenewedLocked(skey)
	}
	s := rec.Sessions[0]
	ct, err := s.State.Encrypt(e.cfg.Rand, plaintext)
	if err != nil {
		return nil, err
	}
	var out []byte
	if s.Initial != nil {
		m := *s.Initial
		m.Message = ct
		im, err := m.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append([]byte{envInitial}, im...)
	} else {
		out = append([]byte{envRatchet}, ct...)
	}
	enc, err := rec.marshal()
	if err != nil {
		return nil, err
	}
	b.Put(bSessions, skey, enc)
	return out, nil
}

// initiateLocked starts a session with a device from the bundle the relay
// hands out, pinned to the device's keys in its verified list.
func (e *Engine) initiateLocked(ctx context.Context, conn Conn, t target) (*session, error) {
	fctx, cancel := context.WithTimeout(ctx, opTimeout)
	fb, err := conn.Fetch(fctx, relay.Addr{Handle: t.handle, Device: t.dev.ID})
	cancel()
	if err != nil {
		return nil, mapRelayErr(err)
	}
	bundle := &identity.Bundle{Device: t.dev}
	r := wire.NewReader(fb.SignedPrekey)
	bundle.SignedPrekey = identity.DecodeSignedPrekeyPublic(r)
	if err := r.Finish(); err != nil {
		return nil, newError(ErrRelayRefused.Code, err, "malformed signed prekey from the relay")
	}
	r = wire.NewReader(fb.KEM)
	bundle.KEMPrekey = identity.DecodeKEMPrekeyPublic(r)
	if err := r.Finish(); err != nil {
		return nil, newError(ErrRelayRefused.Code, err, "malformed KEM prekey from the relay")
	}
	if len(fb.OneTime) > 0 {
		r = wire.NewReader(fb.OneTime)
		otk := identity.DecodeOneTimePrekeyPublic(r)
		if err := r.Finish(); err != nil {
			return nil, newError(ErrRelayRefused.Code, err, "malformed one-time prekey from the relay")
		}
		bundle.OneTime = &otk
	}
	state, im, err := pqxdh.Initiate(e.cfg.Rand, e.dev, t.dev, bundle)
	if err != nil {
		return nil, newError(CodeBadBundle, err, "the prekey bundle of %s's device %s was refused: %v", t.handle, t.dev.ID, err)
	}
	return &session{State: state, Initial: im}, nil
}

func (e *Engine) loadSessions(ctx context.Context, skey string) (*sessionRecord, error) {
	v, err := e.cfg.Store.Get(ctx, bSessions, skey)
	if errors.Is(err, storage.ErrNotFound) {
		return &sessionRecord{}, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	rec, err := unmarshalSessions(v)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "session record %s is corrupt", skey)
	}
	return rec, nil
}
