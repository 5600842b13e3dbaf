package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
)

// Link channel slots (PROTOCOL.md §14.3): the relay's rendezvous for one
// link id holds one message per slot, written once and read once.
const (
	slotHello  = 0 // primary → companion: hello
	slotJoin   = 1 // companion → primary: sealed join request
	slotBundle = 2 // primary → companion: sealed link bundle

	// linkPoll is one long-poll of the link channel; the wait repeats until
	// the link expires.
	linkPoll = 25 * time.Second

	// A link-channel call that fails for a passing reason (the relay is
	// unreachable or busy) is tried again after linkRetryFirst, then after
	// twice as long each time up to linkRetryMax, until the link expires:
	// a person holding a QR code up to a camera should never have to
	// start over because a network blinked, and a relay coming back is
	// not met by every waiting browser at once.
	linkRetryFirst = time.Second
	linkRetryMax   = 16 * time.Second
)

// LinkStart is what a companion shows: the payload text (also the QR
// content) and the QR code as SVG.
type LinkStart struct {
	Payload string `json:"payload"`
	QRSVG   string `json:"qrSvg"`
	Expires int64  `json:"expires"` // unix seconds
}

// StartLink begins linking this new device to an existing account. It
// returns the payload to show; WaitLinked then completes the handshake.
func (e *Engine) StartLink(ctx context.Context, deviceName string) (*LinkStart, error) {
	if len(deviceName) == 0 || len(deviceName) > devicelist.MaxNameLen {
		return nil, newError(CodeBadName, nil, "a device name is 1 to %d bytes", devicelist.MaxNameLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct != nil {
		return nil, ErrHasAccount
	}
	comp, err := link.NewCompanion(e.cfg.Rand, e.cfg.Relay.Origin(), e.cfg.Now())
	if err != nil {
		return nil, err
	}
	e.companion, e.companionName = comp, deviceName
	p := comp.Payload()
	text := p.String()
	svg, err := QRSVG(text)
	if err != nil {
		return nil, err
	}
	return &LinkStart{Payload: text, QRSVG: svg, Expires: int64(p.Expires)}, nil
}

// WaitLinked completes a link started by StartLink: it waits for the
// primary's hello, reports the check code (event link-check) and waits for
// the user's answer. Only after ConfirmLinkCode does it send the join
// request, wait for the primary's confirmation bundle, verify it and store
// the account; it returns the account handle. After RejectLinkCode it
// tells the primary (a sealed decline), abandons the link and returns
// ErrLinkRejected. Whoever answers the QR code first is the one whose code
// the companion shows, so the user's confirmation, not the order of
// arrival, decides which account the device joins (PROTOCOL.md 7.5).
func (e *Engine) WaitLinked(ctx context.Context) (string, error) {
	e.mu.Lock()
	comp, name := e.companion, e.companionName
	e.mu.Unlock()
	if comp == nil {
		return "", ErrLinkUnknown
	}
	p := comp.Payload()
	id := p.LinkID[:]
	deadline := time.Unix(int64(p.Expires), 0)
	hello, err := e.waitLink(ctx, id, slotHello, deadline)
	if err != nil {
		return "", err
	}
	sess, err := comp.Accept(hello, e.cfg.Now())
	if err != nil {
		return "", linkErr(err)
	}
	confirmed, err := e.awaitLinkAnswer(ctx, comp, sess.CheckCode(), deadline)
	if err != nil {
		return "", err
	}
	if !confirmed {
		e.mu.Lock()
		if e.companion == comp {
			e.companion = nil
		}
		e.mu.Unlock()
		if sealed, err := sess.Seal(link.Decline); err == nil {
			if err := e.putLink(ctx, id, slotJoin, sealed, deadline); err != nil {
				e.log.Warn("the primary was not told of the rejected check code", "err", err)
			}
		}
		return "", ErrLinkRejected
	}
	join, err := link.NewJoinRequest(e.dev, sess.Account(), name).MarshalBinary()
	if err != nil {
		return "", err
	}
	sealed, err := sess.Seal(join)
	if err != nil {
		return "", err
	}
	if err := e.putLink(ctx, id, slotJoin, sealed, deadline); err != nil {
		return "", err
	}
	msg, err := e.waitLink(ctx, id, slotBundle, deadline)
	if err != nil {
		return "", err
	}
	plain, err := sess.Open(msg)
	if err != nil {
		return "", linkErr(err)
	}
	bundle, err := link.UnmarshalBundle(plain)
	if err != nil {
		return "", linkErr(err)
	}
	list, err := bundle.Check(sess.Account(), e.dev.Public())
	if err != nil {
		return "", linkErr(err)
	}
	if bundle.Handle == "" && len(bundle.DeviceList) == 0 {
		return "", ErrLinkCancelled
	}
	if !handleRule.MatchString(bundle.Handle) {
		return "", newError(ErrLinkMismatch.Code, nil, "the link bundle names an invalid handle")
	}
	// The relay must serve the same account under that handle, or this
	// device would talk to the wrong account.
	key, _, err := e.cfg.Relay.Account(ctx, bundle.Handle)
	if err != nil {
		return "", netErr(err)
	}
	if !bytes.Equal(sess.Account(), key) {
		return "", newError(ErrLinkMismatch.Code, nil, "the relay's account %s has a different key than the primary's", bundle.Handle)
	}
	// History is stored before the account, so the device shows it before
	// it can go online. Losing it (an expired or altered blob) costs the
	// history, not the link.
	if len(bundle.History) > 0 {
		if err := e.restoreHistory(ctx, bundle.History); err != nil {
			e.log.Warn("linked without history", "err", err)
			e.emit(Event{Type: "error", Code: code(err), Text: "recent history could not be restored: " + err.Error()})
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	rec := &accountRecord{Handle: bundle.Handle, AccountPub: sess.Account(), SyncKey: bundle.SyncKey, DeviceName: name}
	var b storage.Batch
	b.Put(bSelf, keyAccount, rec.marshal())
	// The synced state (contacts, settings, read markers…) made before
	// this device existed reaches it as a snapshot, asked for on its first
	// connection.
	b.Put(bSelf, keyResyncPending, []byte{1})
	b.Put(bLists, bundle.Handle, (&pinnedList{AccountPub: sess.Account(), Encoded: bundle.DeviceList}).marshal())
	if err := e.addPrekeys(ctx, &b, true); err != nil {
		return "", err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return "", storageErr(err)
	}
	e.acct, e.companion = rec, nil
	e.lists[bundle.Handle] = list
	e.statusLocked()
	e.log.Info("linked", "handle", bundle.Handle, "device", e.dev.ID.String())
	go e.emit(Event{Type: "state"})
	return bundle.Handle, nil
}

// awaitLinkAnswer shows the check code (event link-check) and waits for
// the user to confirm or reject it, until the link expires.
func (e *Engine) awaitLinkAnswer(ctx context.Context, comp *link.Companion, code string, deadline time.Time) (bool, error) {
	answer := make(chan bool, 1)
	e.mu.Lock()
	if e.companion != comp {
		e.mu.Unlock()
		return false, ErrLinkUnknown
	}
	e.linkAnswer = answer
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.linkAnswer == answer {
			e.linkAnswer = nil
		}
		e.mu.Unlock()
	}()
	e.emit(Event{Type: "link-check", CheckCode: code})
	expiry := time.NewTimer(deadline.Sub(e.cfg.Now()))
	defer expiry.Stop()
	select {
	case ok := <-answer:
		return ok, nil
	case <-expiry.C:
		return false, ErrLinkExpired
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// ConfirmLinkCode is the companion user's answer that the check code
// matches the primary's: WaitLinked sends the join request.
func (e *Engine) ConfirmLinkCode() error { return e.answerLinkCode(true) }

// RejectLinkCode is the companion user's answer that the check code does
// not match (or that they did not start this link): WaitLinked tells the
// primary, abandons the link and returns ErrLinkRejected.
func (e *Engine) RejectLinkCode() error { return e.answerLinkCode(false) }

func (e *Engine) answerLinkCode(ok bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.linkAnswer == nil {
		return newError(CodeLinkUnknown, nil, "no check code is waiting for an answer")
	}
	e.linkAnswer <- ok // buffered, and only one answer is taken
	e.linkAnswer = nil
	return nil
}

// waitLink long-polls a link slot until a message arrives or the link
// expires, through relay outages (linkRetry).
func (e *Engine) waitLink(ctx context.Context, id []byte, slot int, deadline time.Time) ([]byte, error) {
	var msg []byte
	err := e.linkRetry(ctx, deadline, func(left time.Duration, retry bool) error {
		poll := min(left, linkPoll)
		if retry {
			// A short poll first, so the page hears at once that the
			// relay is back rather than after a long poll.
			poll = 0
		}
		m, err := e.cfg.Relay.GetLink(ctx, id, slot, poll)
		var ee *Error
		switch {
		case errors.As(err, &ee) && ee.Code == CodeNotFound:
			return errPollAgain // nothing yet
		case errors.As(err, &ee) && ee.Code == ErrLinkUsed.Code:
			return ErrLinkUsed
		}
		msg = m
		return err
	})
	return msg, err
}

// errPollAgain is a link-channel call's answer that the relay was reached
// and has nothing yet: linkRetry calls again at once.
var errPollAgain = errors.New("nothing in the link slot yet")

// putLink writes a link slot, through relay outages (linkRetry).
func (e *Engine) putLink(ctx context.Context, id []byte, slot int, data []byte, deadline time.Time) error {
	return e.linkRetry(ctx, deadline, func(time.Duration, bool) error {
		err := e.cfg.Relay.PutLink(ctx, id, slot, data)
		var ee *Error
		if errors.As(err, &ee) && ee.Code == ErrLinkUsed.Code {
			return ErrLinkUsed
		}
		return err
	})
}

// linkRetry runs call (with the time the link has left, and whether the
// last call failed) until it succeeds or fails for good, while the link
// lasts: errPollAgain calls again at once, a passing failure (isTransient)
// after a backoff from linkRetryFirst doubling to linkRetryMax. Event
// link-connection tells the page: with code offline at the first failure,
// without a code once the relay answers again. What the network said
// never reaches the caller: the link ends as expired, never with a
// fetch's error text.
func (e *Engine) linkRetry(ctx context.Context, deadline time.Time, call func(left time.Duration, retry bool) error) error {
	delay, failing := linkRetryFirst, false
	for {
		left := deadline.Sub(e.cfg.Now())
		if left <= 0 {
			return ErrLinkExpired
		}
		err := call(left, failing)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reached := err == nil || err == errPollAgain || !isTransient(err)
		if reached && failing {
			failing, delay = false, linkRetryFirst
			e.emit(Event{Type: "link-connection"})
		}
		if err == errPollAgain {
			continue
		}
		if reached {
			return err
		}
		if !failing {
			failing = true
			e.log.Warn("link channel unreachable; retrying", "err", err)
			e.emit(Event{Type: "link-connection", Code: CodeOffline})
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, linkRetryMax)
	}
}

// netErr gives a failure to reach the relay its code (offline), so what
// the page shows for it is words, not the transport's error text.
func netErr(err error) error {
	var ee *Error
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return newError(CodeOffline, err, "%s", ErrOffline.Message)
}

func linkErr(err error) error {
	switch {
	case errors.Is(err, link.ErrExpired):
		return newError(ErrLinkExpired.Code, err, "%s", ErrLinkExpired.Message)
	case errors.Is(err, link.ErrReplay):
		return newError(ErrLinkUsed.Code, err, "%s", ErrLinkUsed.Message)
	case errors.Is(err, link.ErrBadConfirmation), errors.Is(err, link.ErrDecrypt), errors.Is(err, link.ErrWrongLink):
		return newError(ErrLinkMismatch.Code, err, "%s", ErrLinkMismatch.Message)
	}
	return newError(ErrLinkMismatch.Code, err, "the link handshake failed: %v", err)
}

// pendingLink is a link the primary has started and not yet confirmed.
// join is nil while the companion's user has not confirmed the code.
type pendingLink struct {
	payload *link.Payload
	sess    *link.Session
	join    *link.JoinRequest
	cancel  context.CancelFunc // ends ApproveLink's wait for the join
}

// PendingLink is what the primary shows before the user confirms.
type PendingLink struct {
	LinkID     string `json:"linkId"`
	CheckCode  string `json:"checkCode"`
	DeviceName string `json:"deviceName"`
}

// ApproveLink starts linking a companion from its payload (pasted or
// scanned). It sends the hello and reports the check code at once (event
// link-check, with the link id), so the companion's user can compare it;
// then it waits for the companion's answer. When the companion's user
// confirmed, it returns the check code and the companion's name for this
// user to compare in turn; when they rejected it, ErrLinkRejected.
// Nothing changes on the account until ConfirmLink; CancelLink ends the
// wait.
func (e *Engine) ApproveLink(ctx context.Context, payloadText string) (*PendingLink, error) {
	p, err := link.ParsePayload(payloadText)
	if err != nil {
		return nil, newError(CodeBadLinkCode, err, "that is not a Parley link code")
	}
	if err := p.CheckExpiry(e.cfg.Now()); err != nil {
		return nil, linkErr(err)
	}
	e.mu.Lock()
	if e.acct == nil {
		e.mu.Unlock()
		return nil, ErrNoAccount
	}
	if !e.acct.Primary {
		e.mu.Unlock()
		return nil, ErrNotPrimary
	}
	accountPub := e.acct.AccountPub
	e.mu.Unlock()
	if p.RelayOrigin != e.cfg.Relay.Origin() {
		return nil, newError(ErrLinkMismatch.Code, nil, "the link code is for relay %s, this device uses %s", p.RelayOrigin, e.cfg.Relay.Origin())
	}
	sess, hello, err := link.StartPrimary(e.cfg.Rand, p, accountPub, e.cfg.Now())
	if err != nil {
		return nil, linkErr(err)
	}
	if err := e.putLink(ctx, p.LinkID[:], slotHello, hello, time.Unix(int64(p.Expires), 0)); err != nil {
		return nil, err
	}
	lid := hex.EncodeToString(p.LinkID[:])
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pl := &pendingLink{payload: p, sess: sess, cancel: cancel}
	e.mu.Lock()
	e.links[lid] = pl
	e.mu.Unlock()
	join, err := e.awaitJoin(wctx, pl, accountPub)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.links[lid] != pl {
		return nil, ErrLinkCancelled // CancelLink, while we waited
	}
	if err != nil {
		delete(e.links, lid)
		return nil, err
	}
	pl.join = join
	return &PendingLink{LinkID: lid, CheckCode: sess.CheckCode(), DeviceName: join.Name}, nil
}

// awaitJoin reports the check code and waits for the companion's first
// sealed message: a verified join request, or its decline.
func (e *Engine) awaitJoin(ctx context.Context, pl *pendingLink, accountPub []byte) (*link.JoinRequest, error) {
	p := pl.payload
	e.emit(Event{Type: "link-check", LinkID: hex.EncodeToString(p.LinkID[:]), CheckCode: pl.sess.CheckCode()})
	msg, err := e.waitLink(ctx, p.LinkID[:], slotJoin, time.Unix(int64(p.Expires), 0))
	if err != nil {
		return nil, err
	}
	plain, err := pl.sess.Open(msg)
	if err != nil {
		return nil, linkErr(err)
	}
	if link.IsDecline(plain) {
		return nil, ErrLinkRejected
	}
	join, err := link.UnmarshalJoinRequest(plain)
	if err != nil {
		return nil, linkErr(err)
	}
	if err := join.Verify(accountPub); err != nil {
		return nil, linkErr(err)
	}
	return join, nil
}

// ConfirmLink adds the companion to the account after the user confirmed
// the check codes match: a new signed device list is published, then the
// companion gets its sealed bundle.
func (e *Engine) ConfirmLink(ctx context.Context, linkID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pl, ok := e.links[linkID]
	if !ok || pl.join == nil {
		return ErrLinkUnknown // unknown, or the companion has not confirmed yet
	}
	delete(e.links, linkID)
	if err := pl.payload.CheckExpiry(e.cfg.Now()); err != nil {
		return linkErr(err)
	}
	cur, err := e.listLocked(ctx, e.acct.Handle, true)
	if err != nil {
		return err
	}
	if cur.Find(pl.join.Device.ID) != nil {
		return newError(ErrLinkUsed.Code, nil, "that device is already linked")
	}
	if len(cur.Entries) >= devicelist.MaxDevices {
		return ErrTooManyDevices
	}
	now := uint64(e.cfg.Now().Unix())
	next := cur.Clone()
	next.Version++
	next.Timestamp = now
	next.Entries = append(next.Entries, devicelist.Entry{
		Device: pl.join.Device, Name: pl.join.Name, Added: now, Attested: now, DeviceSig: pl.join.DeviceSig,
	})
	if err := e.publishListLocked(ctx, next); err != nil {
		return err
	}
	signed := e.pinnedEncoded(ctx)
	// Recent history travels as a bulk object the bundle points to
	// (history.go). Without it the link still stands: the companion
	// just starts empty, and the user is told.
	progress := make(chan Event, bulk.MaxRefBlobs+4) // ordered, never blocks
	go func() {
		for ev := range progress {
			e.emit(ev)
		}
	}()
	history, herr := e.historyPointerLocked(ctx, func(ev Event) { progress <- ev })
	close(progress)
	if herr != nil {
		e.log.Warn("linking without history", "err", herr)
		go e.emit(Event{Type: "error", Code: code(herr), Text: "recent history could not be sent to the new device: " + herr.Error()})
	}
	bundle := &link.Bundle{Account: e.acct.AccountPub, Handle: e.acct.Handle, DeviceID: pl.join.Device.ID, DeviceList: signed, SyncKey: e.acct.SyncKey, History: history}
	plain, err := bundle.MarshalBinary()
	if err != nil {
		return err
	}
	sealed, err := pl.sess.Seal(plain)
	if err != nil {
		return err
	}
	if err := e.cfg.Relay.PutLink(ctx, pl.payload.LinkID[:], slotBundle, sealed); err != nil {
		return netErr(err)
	}
	go e.emit(Event{Type: "devices"})
	return nil
}

// CancelLink abandons a pending link, also while ApproveLink still waits
// for the companion's answer (it returns ErrLinkCancelled); the
// companion's wait ends when the link expires.
func (e *Engine) CancelLink(linkID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pl, ok := e.links[linkID]
	if !ok {
		return ErrLinkUnknown
	}
	delete(e.links, linkID)
	pl.cancel()
	return nil
}

// publishListLocked signs next with the account key, publishes it and pins
// it. Primary only.
func (e *Engine) publishListLocked(ctx context.Context, next *devicelist.List) error {
	if e.account == nil {
		return ErrNotPrimary
	}
	signed, err := devicelist.Sign(e.account, next)
	if err != nil {
		return err
	}
	return e.publishSignedLocked(ctx, next, signed)
}

// publishSignedLocked publishes an own list already signed by the account
// key and pins it once the relay has taken it.
func (e *Engine) publishSignedLocked(ctx context.Context, next *devicelist.List, signed []byte) error {
	if err := e.cfg.Relay.Publish(ctx, e.acct.Handle, signed); err != nil {
		return err
	}
	var b storage.Batch
	b.Put(bLists, e.acct.Handle, (&pinnedList{AccountPub: e.acct.AccountPub, Encoded: signed}).marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.lists[e.acct.Handle] = next
	return nil
}

func (e *Engine) pinnedEncoded(ctx context.Context) []byte {
	pin, err := e.loadPin(ctx, e.acct.Handle)
	if err != nil || pin == nil {
		return nil
	}
	return pin.Encoded
}

// Device is one device of the account as the UI lists it.
type Device struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Primary  bool   `json:"primary"`
	Added    int64  `json:"added"`    // unix seconds
	Attested int64  `json:"attested"` // unix seconds
	Expires  int64  `json:"expires"`  // unix seconds; 0 for the primary
	This     bool   `json:"thisDevice"`
	// LastActive is when the device last connected (unix seconds, to
	// within activeEvery), or 0 if it has not said yet.
	LastActive int64 `json:"lastActive"`
}

// Devices lists the account's devices from the verified list, with when
// each was last active as its own synced marker says (lastactive.go).
func (e *Engine) Devices(ctx context.Context, refresh bool) ([]Device, error) {
	active := e.lastActive(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return nil, ErrNoAccount
	}
	l, err := e.listLocked(ctx, e.acct.Handle, refresh)
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, en := range l.Entries {
		d := Device{ID: en.Device.ID.String(), Name: en.Name, Primary: en.Primary, Added: int64(en.Added), Attested: int64(en.Attested), This: en.Device.ID == e.dev.ID}
		d.LastActive = active[d.ID]
		if !en.Primary {
			d.Expires = int64(en.Attested) + int64(e.cfg.AttestationAge/time.Second)
		}
		out = append(out, d)
	}
	return out, nil
}

// RevokeDevice removes a companion from the account (primary only): a new
// signed list without it is published; the relay disconnects and refuses
// it, and peers stop encrypting to it.
func (e *Engine) RevokeDevice(ctx context.Context, deviceID string) error {
	id, err := identity.ParseDeviceID(deviceID)
	if err != nil {
		return newError(ErrUnknownDevice.Code, err, "not a device id: %q", deviceID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return ErrNoAccount
	}
	if e.account == nil {
		return ErrNotPrimary
	}
	if id == e.dev.ID {
		return ErrCannotRevokeSelf
	}
	cur, err := e.listLocked(ctx, e.acct.Handle, true)
	if err != nil {
		return err
	}
	if cur.Find(id) == nil {
		return ErrUnknownDevice
	}
	next := cur.Clone()
	next.Version++
	next.Timestamp = uint64(e.cfg.Now().Unix())
	next.Entries = next.Entries[:0]
	for _, en := range cur.Entries {
		if en.Device.ID != id {
			next.Entries = append(next.Entries, en)
		}
	}
	if err := e.publishListLocked(ctx, next); err != nil {
		return err
	}
	var b storage.Batch
	b.Delete(bSessions, sessionKey(e.acct.Handle, id))
	// Changes made from now on are sealed under a key the removed device
	// never gets (statesync.go).
	acct, err := e.rotateSyncKeyLocked(ctx, &b)
	if err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.acct = acct
	e.kickLocked()
	go e.emit(Event{Type: "devices"})
	return nil
}

// Reattest re-signs the account's companions with a fresh attestation
// time (primary only), so they do not expire while the primary is in use.
func (e *Engine) Reattest(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.account == nil {
		return ErrNotPrimary
	}
	cur, err := e.listLocked(ctx, e.acct.Handle, true)
	if err != nil {
		return err
	}
	next, signed, err := devicelist.Reattest(e.account, cur, e.cfg.Now())
	if err != nil {
		return err
	}
	return e.publishSignedLocked(ctx, next, signed)
}

// RenameDevice changes a device's display name (primary only, since names
// are part of the signed device list): a new list version with the new
// name is signed and published. The attestation time is unchanged.
func (e *Engine) RenameDevice(ctx context.Context, deviceID, name string) error {
	id, err := identity.ParseDeviceID(deviceID)
	if err != nil {
		return newError(ErrUnknownDevice.Code, err, "not a device id: %q", deviceID)
	}
	if len(name) == 0 || len(name) > devicelist.MaxNameLen {
		return newError(CodeBadName, nil, "a device name is 1 to %d bytes", devicelist.MaxNameLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return ErrNoAccount
	}
	if e.account == nil {
		return ErrNotPrimary
	}
	cur, err := e.listLocked(ctx, e.acct.Handle, true)
	if err != nil {
		return err
	}
	if cur.Find(id) == nil {
		return ErrUnknownDevice
	}
	next := cur.Clone()
	next.Version++
	next.Timestamp = uint64(e.cfg.Now().Unix())
	next.Find(id).Name = name
	if err := e.publishListLocked(ctx, next); err != nil {
		return err
	}
	if id == e.dev.ID {
		a := *e.acct
		a.DeviceName = name
		var b storage.Batch
		b.Put(bSelf, keyAccount, a.marshal())
		if err := e.cfg.Store.Commit(ctx, &b); err != nil {
			return storageErr(err)
		}
		e.acct = &a
	}
	go e.emit(Event{Type: "devices"})
	return nil
}
