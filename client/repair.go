package client

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

// Repairing a pairwise message that failed to decrypt (PROTOCOL.md 14.7;
// PEERS.md: a decryption failure is surfaced and repaired, never silent).
// The usual causes are a ratchet that went out of step on one side (a
// restored or damaged store, a bug) or a prekey used up before the
// initial message arrived. Whoever failed:
//
//  1. shows the failure (an "undecryptable" error event);
//  2. sends a retry request naming the sending device and the message's
//     id (the relay's envelope carries it), over the session it has with
//     that device (a new one only if it has none).
//
// The failure itself starts no session: anyone on the path (the relay)
// can forge an envelope that fails, and a device that started a session
// for each would push its live sessions out (maxSessionsPerDevice) for
// whoever forges. A retry request is a message of a session, so only the
// peer device can send it; the device it names answers it by starting a
// new session with the requester, from a fresh prekey bundle (the old
// ones stay for messages in flight), and sending the message again, under
// the same id, to the requesting device alone and only if that device was
// one the message went to (the sentto record, sentto.go); a device that
// has it drops the copy by id (the store's insert-if-absent). Both sides
// are rate-limited, so neither can be made to loop or flood. Texts and
// files are resent; group messages are not repaired this way (one whose
// chain is not held yet waits for its distribution, PROTOCOL.md 14.6).
const (
	// repairInterval is how often one sending device can cause a new
	// session, the window for maxRetryRequests, and how often one message
	// is resent.
	repairInterval = 30 * time.Second
	// maxRetryRequests bounds the retry requests one sending device can
	// cause per repairInterval: enough for the few messages in flight
	// when a session broke, few enough that forged garbage cannot make
	// this device flood the relay.
	maxRetryRequests = 8
	// maxRetryAge is how old a message may be and still be resent.
	maxRetryAge = 7 * 24 * time.Hour
	// maxRepairState bounds the rate limiters' memory; past it they
	// forget everything (the worst case is one more repair).
	maxRepairState = 1024
)

// repairs is the engine's memory of recent repairs, under e.mu.
type repairs struct {
	renew    map[string]bool          // session keys to start anew on the next send
	renewed  map[string]time.Time     // session key → last renewal asked
	asked    map[string]*repairWindow // session key → retry requests this window
	resent   map[MessageID]time.Time
	requests int // retry requests queued since the engine started (tests)
}

type repairWindow struct {
	start time.Time
	n     int
}

func (r *repairs) init() {
	if r.renew == nil {
		r.renew, r.renewed, r.asked, r.resent = map[string]bool{}, map[string]time.Time{}, map[string]*repairWindow{}, map[MessageID]time.Time{}
	}
}

// repairable reports failures a new session and a resend can cure: the
// envelope's ciphertext did not open, or its session is unknown here.
func repairable(err error) bool {
	if errors.Is(err, errNoSession) {
		return true
	}
	var ee *Error
	return errors.As(err, &ee) && (ee.Code == CodeDecryptFailed || ee.Code == CodeSessionSetup)
}

// requestRetry runs the repair for a pairwise envelope that failed with a
// repairable error: it queues a retry request (at most maxRetryRequests
// per repairInterval per device). It renews no session: the envelope is
// unauthenticated (the retry request's receiver renews, receiveRetryLocked).
func (e *Engine) requestRetry(ctx context.Context, env *relay.Envelope) {
	if len(env.Payload) == 0 || env.Payload[0] == envGroup {
		return
	}
	dev := identity.DeviceID(env.From.Device)
	skey := sessionKey(env.From.Handle, dev)
	e.mu.Lock()
	if e.acct == nil || e.acct.Revoked {
		e.mu.Unlock()
		return
	}
	e.repair.init()
	now := e.cfg.Now()
	if len(e.repair.asked) >= maxRepairState {
		clear(e.repair.asked)
	}
	w := e.repair.asked[skey]
	if w == nil || now.Sub(w.start) >= repairInterval {
		w = &repairWindow{start: now}
		e.repair.asked[skey] = w
	}
	if w.n >= maxRetryRequests {
		e.mu.Unlock()
		return
	}
	w.n++
	e.mu.Unlock()

	body := make([]byte, 0, identity.DeviceIDSize+len(env.MessageID))
	body = append(body, dev[:]...)
	body = append(body, env.MessageID[:]...)
	if _, err := e.queue(ctx, kindRetry, env.From.Handle, body, ""); err != nil {
		e.log.Warn("retry request not queued", "code", code(err))
		return
	}
	e.mu.Lock()
	e.repair.requests++
	e.mu.Unlock()
	e.log.Info("asked a device to send a message again", "from", env.From.Handle)
}

// renewSessionLocked reports whether the session with the device at skey
// is to be started anew (receiveRetryLocked); sessionRenewedLocked clears
// the mark once a new one is made.
func (e *Engine) renewSessionLocked(skey string) bool { return e.repair.renew[skey] }

func (e *Engine) sessionRenewedLocked(skey string) { delete(e.repair.renew, skey) }

// receiveRetryLocked answers a retry request: if it names this device and
// a text or file message this device sent to from (or, from our own account, any
// chat), that went to the requesting device, younger than maxRetryAge and
// not resent within repairInterval, the message is queued again under its
// id, for the requesting device alone.
func (e *Engine) receiveRetryLocked(ctx context.Context, b *storage.Batch, p *payload, from string, dev identity.DeviceID) ([]Event, error) {
	if len(p.Body) != identity.DeviceIDSize+len(MessageID{}) {
		return nil, newError(CodeMalformed, nil, "malformed retry request")
	}
	if identity.DeviceID(p.Body[:identity.DeviceIDSize]) != e.dev.ID {
		return nil, nil // for another device of this account
	}
	var id MessageID
	copy(id[:], p.Body[identity.DeviceIDSize:])
	m, _, err := e.lookupMessage(ctx, id)
	if err != nil || m == nil {
		return nil, err
	}
	now := e.cfg.Now()
	switch {
	case !m.Outgoing || m.FromDevice != e.dev.ID.String():
		return nil, nil
	case from != e.acct.Handle && m.Chat != from:
		return nil, nil // only the chat's peer (or our own devices) may ask
	case now.Sub(time.UnixMilli(m.SentAt)) > maxRetryAge:
		return nil, nil
	}
	// Only a device the message went to may have it again: a device
	// linked later must not fetch old messages by their ids.
	if ok, err := e.wasSentToLocked(ctx, m, id, from, dev); err != nil || !ok {
		return nil, err
	}
	e.repair.init()
	if last, ok := e.repair.resent[id]; ok && now.Sub(last) < repairInterval {
		return nil, nil
	}
	if len(e.repair.resent) >= maxRepairState {
		clear(e.repair.resent)
	}
	e.repair.resent[id] = now
	// The request came over a session with the requesting device, so it
	// is that device's: the resend goes over a new session with it (at
	// most one per repairInterval), which it can open whatever state its
	// old ones are in.
	skey := sessionKey(from, dev)
	if len(e.repair.renewed) >= maxRepairState {
		clear(e.repair.renewed)
	}
	if last, ok := e.repair.renewed[skey]; !ok || now.Sub(last) >= repairInterval {
		e.repair.renewed[skey] = now
		e.repair.renew[skey] = true
	}
	// Into the receive batch: it goes with the next flush, after the Sync
	// that acknowledges the request (ackDurable).
	resend := &payload{Kind: kindText, ID: id, SentAt: uint64(m.SentAt), To: m.Chat, Body: []byte(m.Text)}
	if m.Attachment != nil {
		// The same blob reference again (the blob outlives maxRetryAge);
		// a file still waiting for its upload has none yet, and its
		// message has not been sent.
		rec, _, err := e.loadAttachment(ctx, m.ID)
		if errors.Is(err, ErrNoAttachment) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		ref, err := unmarshalBlobRef(rec.Ref)
		if err != nil {
			return nil, newError(ErrStorage.Code, err, "attachment record of %s is corrupt", m.ID)
		}
		resend.Kind = kindAttachment
		resend.Body = (&attachmentBody{Ref: ref, Name: m.Attachment.Name, Type: m.Attachment.Type, Caption: m.Text, Thumbnail: rec.Thumbnail}).marshal()
	}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return nil, err
	}
	b.Put(bOutbox, seq, (&outboxRecord{Payload: resend.marshal(), To: m.Chat, Only: &deviceRef{from, dev}}).marshal())
	e.log.Info("sending a message again on request", "chat", m.Chat, "id", hex.EncodeToString(id[:4]))
	return nil, nil
}
