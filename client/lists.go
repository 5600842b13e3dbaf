package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
)

// listFetchTimeout bounds one device-list fetch from the relay.
const listFetchTimeout = 10 * time.Second

// listLocked returns the verified device list of handle. Without refresh
// it uses the pinned copy when there is one. With refresh (or no pin) it
// asks the relay, and accepts the answer only if it verifies under the
// pinned account key and is not older than the pin: the relay can withhold
// a list, never forge or roll one back. It is the list a message from the
// account is checked against; a list a message is encrypted to comes from
// sendListLocked, which also refuses while a newer list announced by the
// account's own devices is withheld. e.mu must be held.
func (e *Engine) listLocked(ctx context.Context, handle string, refresh bool) (*devicelist.List, error) {
	l, _, err := e.heldListLocked(ctx, handle, refresh)
	return l, err
}

// sendListLocked is listLocked for a list a message is about to be
// encrypted to. While a device of the account has announced a newer list
// than the one held (noteListStampLocked), it asks the relay once more
// and, if that does not settle it, refuses with ErrListWithheld: the old
// set may still hold a device the account has revoked.
func (e *Engine) sendListLocked(ctx context.Context, handle string, refresh bool) (*devicelist.List, error) {
	l, want, err := e.heldListLocked(ctx, handle, refresh)
	if err == nil && want != nil && !refresh {
		l, want, err = e.heldListLocked(ctx, handle, true)
	}
	if err != nil {
		return nil, err
	}
	if want != nil {
		if l.Version == want.Version {
			return nil, newError(ErrBadList.Code, nil, "%s's device %s announced a version %d of its device list other than the one its account signed",
				handle, want.From, want.Version)
		}
		return nil, newError(ErrListWithheld.Code, nil, "%s's device %s announced version %d of its device list; the relay serves version %d",
			handle, want.From, want.Version, l.Version)
	}
	return l, nil
}

// heldListLocked is listLocked that also returns the announced list the
// held one has not settled yet, if any. Only a list with nothing pending
// is cached in e.lists.
func (e *Engine) heldListLocked(ctx context.Context, handle string, refresh bool) (*devicelist.List, *listWant, error) {
	if l, ok := e.lists[handle]; ok && !refresh {
		return l, nil, nil
	}
	pin, err := e.loadPin(ctx, handle)
	if err != nil {
		return nil, nil, err
	}
	if pin != nil && !refresh {
		l, err := devicelist.Verify(pin.AccountPub, handle, pin.Encoded)
		if err != nil {
			return nil, nil, newError(ErrStorage.Code, err, "the stored device list of %s no longer verifies", handle)
		}
		if pin.Want == nil {
			e.lists[handle] = l
		}
		return l, pin.Want, nil
	}
	l, err := e.fetchListLocked(ctx, handle, pin)
	if err != nil {
		return nil, nil, err
	}
	var want *listWant
	if pin != nil {
		want = pin.Want
	}
	return l, want, nil
}

// fetchListLocked asks the relay for handle's list and pins what verifies
// (listLocked); a pending announcement in pin is kept unless the new list
// settles it (wantSettled), in which case pin.Want is cleared.
func (e *Engine) fetchListLocked(ctx context.Context, handle string, pin *pinnedList) (*devicelist.List, error) {
	key, encoded, err := e.fetchAccountLocked(ctx, handle)
	if err != nil {
		return nil, err
	}
	own := e.acct != nil && handle == e.acct.Handle
	if pin != nil && !bytes.Equal(pin.AccountPub, key) {
		if own {
			// Our own account key never changes: this is the relay lying.
			return nil, newError(ErrBadList.Code, nil, "the relay served a different account key for this device's own account")
		}
		if err := e.noteKeyChangedLocked(ctx, handle, pin, key); err != nil {
			return nil, err
		}
		return nil, ErrSafetyChanged
	}
	l, err := devicelist.Verify(key, handle, encoded)
	if err != nil {
		return nil, newError(ErrBadList.Code, err, "the device list of %s does not verify: %v", handle, err)
	}
	if l.Legacy() && (pin == nil || !bytes.Equal(encoded, pin.Encoded)) {
		return nil, legacyListErr(handle)
	}
	same := false
	if pin != nil {
		prev, err := devicelist.Verify(pin.AccountPub, handle, pin.Encoded)
		if err == nil {
			if l.Version < prev.Version {
				return nil, newError(ErrListRollback.Code, devicelist.ErrRollback,
					"the relay served version %d of %s's device list after version %d", l.Version, handle, prev.Version)
			}
			if l.Version == prev.Version {
				if !bytes.Equal(encoded, pin.Encoded) {
					return nil, newError(ErrBadList.Code, nil, "two different device lists of %s carry version %d", handle, l.Version)
				}
				l, same = prev, true
			}
		}
	}
	var want *listWant
	if pin != nil && pin.Want != nil && !wantSettled(pin.Want, l, encoded) {
		want = pin.Want
	}
	wasWanted := pin != nil && pin.Want != nil
	if !same || wasWanted != (want != nil) {
		next := &pinnedList{AccountPub: key, Encoded: encoded, Want: want}
		if same {
			next = pin
			next.Want = want
		}
		var b storage.Batch
		b.Put(bLists, handle, next.marshal())
		if err := e.cfg.Store.Commit(ctx, &b); err != nil {
			return nil, storageErr(err)
		}
		if pin != nil {
			pin.Want = want
		}
	}
	if want == nil {
		e.lists[handle] = l
	} else {
		delete(e.lists, handle)
	}
	if own && !same {
		e.onOwnListChanged(l)
	}
	return l, nil
}

// legacyListErr refuses a list of format 1 (it names no handle, so it
// cannot show it is handle's) anywhere but as the very list already
// pinned: PROTOCOL.md 3.6. The account's primary republishes it in format
// 2 at its next start; until then the contact cannot be added.
func legacyListErr(handle string) error {
	return newError(ErrBadList.Code, devicelist.ErrLegacyList,
		"the device list of %s names no handle (format 1): it is accepted only once its account's primary has republished it", handle)
}

// fetchAccountLocked asks the relay for handle's account key and signed
// list (not verified yet).
func (e *Engine) fetchAccountLocked(ctx context.Context, handle string) (ed25519.PublicKey, []byte, error) {
	// Bounded: this runs under the engine lock, which every API call and
	// the receive loop wait on.
	actx, cancel := context.WithTimeout(ctx, listFetchTimeout)
	keyBytes, encoded, err := e.cfg.Relay.Account(actx, handle)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	if len(keyBytes) != ed25519.PublicKeySize {
		return nil, nil, newError(ErrBadList.Code, nil, "the relay served a malformed account key for %s", handle)
	}
	return ed25519.PublicKey(keyBytes), encoded, nil
}

// noteKeyChangedLocked records that the relay now serves key, not the
// pinned one, for a contact: sending stays blocked until the user
// acknowledges the safety number made from key (SafetyNumber shows it).
func (e *Engine) noteKeyChangedLocked(ctx context.Context, handle string, pin *pinnedList, key ed25519.PublicKey) error {
	if pin.KeyChanged && bytes.Equal(pin.NewKey, key) {
		return nil
	}
	pin.KeyChanged, pin.NewKey = true, key
	var b storage.Batch
	b.Put(bLists, handle, pin.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	go e.emit(Event{Type: "safety-number-changed", Chat: handle})
	return nil
}

// wantSettled reports whether the verified list l (encoded as enc)
// settles an announcement: it is newer, or the very list announced, or it
// no longer holds the announcing device (a device removed from the account
// speaks for it no more, so a stolen device cannot block its contacts for
// good by announcing a version that never comes).
func wantSettled(w *listWant, l *devicelist.List, enc []byte) bool {
	switch {
	case l.Version > w.Version:
		return true
	case l.Version == w.Version:
		return listHash(enc) == w.Hash
	default:
		return l.Find(w.From) == nil
	}
}

// noteListStampLocked records the list stamp of a payload from device
// from of handle's account (PROTOCOL.md §14.2): if it names a list newer
// than the one held (or the held version with other contents), the
// account's list is asked for at once, and until a verified list settles
// the announcement nothing is encrypted to the account (sendListLocked).
// A failed fetch is no reason to refuse the message itself, which came
// from a device of the held list.
func (e *Engine) noteListStampLocked(ctx context.Context, handle string, from identity.DeviceID, st listStamp) error {
	if st.Version == 0 {
		return nil // a version-1 payload
	}
	pin, err := e.loadPin(ctx, handle)
	if err != nil || pin == nil {
		return err
	}
	held, err := devicelist.Verify(pin.AccountPub, handle, pin.Encoded)
	if err != nil {
		return newError(ErrStorage.Code, err, "the stored device list of %s no longer verifies", handle)
	}
	if st.Version < held.Version || (st.Version == held.Version && st.Hash == listHash(pin.Encoded)) {
		return nil
	}
	if pin.Want != nil && pin.Want.Version >= st.Version {
		return nil
	}
	pin.Want = &listWant{listStamp: st, From: from}
	var b storage.Batch
	b.Put(bLists, handle, pin.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	delete(e.lists, handle)
	if _, err := e.fetchListLocked(ctx, handle, pin); err != nil {
		e.log.Warn("announced device list not fetched", "handle", handle, "code", code(err))
	}
	return nil
}

func (e *Engine) loadPin(ctx context.Context, handle string) (*pinnedList, error) {
	b, err := e.cfg.Store.Get(ctx, bLists, handle)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	p, err := unmarshalPinned(b)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "the pinned device list of %s is corrupt", handle)
	}
	return p, nil
}

// onOwnListChanged notices our own removal; the relay will refuse us too,
// but a device that learns it from a verified list stops at once.
func (e *Engine) onOwnListChanged(l *devicelist.List) {
	if l.Find(e.dev.ID) == nil && e.acct != nil && !e.acct.Revoked {
		e.log.Warn("own device list no longer contains this device")
	}
	go e.emit(Event{Type: "devices"})
}

// activeDevices are the entries a message must be encrypted to: every
// device of the list whose attestation has not expired (the relay refuses
// expired companions too). Primaries hold the account key and do not
// expire.
func (e *Engine) activeDevices(l *devicelist.List) []identity.DevicePublic {
	now := e.cfg.Now()
	var out []identity.DevicePublic
	for i := range l.Entries {
		en := &l.Entries[i]
		if !en.Primary && devicelist.CheckAttestation(en, now, e.cfg.AttestationAge) != nil {
			continue
		}
		out = append(out, en.Device)
	}
	return out
}

// AcknowledgeSafetyNumber accepts a contact's new account key after the
// user has compared the changed safety number; sending is possible again.
// shown is the number the user was shown (SafetyNumber's digits; spaces
// are ignored), and the key pinned is exactly the one it was made from
// (PROTOCOL.md 2.5): if the relay has served another key since, or serves
// one now, nothing is pinned, the number changes to the new key's and the
// acknowledgement fails with ErrSafetyChanged, so the user compares again.
// Without a changed key it does nothing.
func (e *Engine) AcknowledgeSafetyNumber(ctx context.Context, handle, shown string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return ErrNoAccount
	}
	pin, err := e.loadPin(ctx, handle)
	if err != nil || pin == nil || !pin.KeyChanged {
		return err
	}
	want, err := identity.ComputeSafetyNumber(e.acct.Handle, e.acct.AccountPub, handle, pin.NewKey)
	if err != nil {
		return err
	}
	// Safety numbers are public: no constant-time comparison is needed.
	switch digitsOnly(shown) {
	case "":
		return newError(CodeInvalidArgument, nil, "acknowledging a safety number takes the number the user was shown")
	case want.Digits:
	default:
		return newError(ErrSafetyChanged.Code, nil, "the safety number with %s changed again after it was shown; compare the new one", handle)
	}
	key, encoded, err := e.fetchAccountLocked(ctx, handle)
	if err != nil {
		return err
	}
	if !bytes.Equal(key, pin.NewKey) {
		if err := e.noteKeyChangedLocked(ctx, handle, pin, key); err != nil {
			return err
		}
		return newError(ErrSafetyChanged.Code, nil, "the relay serves another account key for %s than the one whose safety number was shown; compare the new one", handle)
	}
	l, err := devicelist.Verify(key, handle, encoded)
	if err != nil {
		return newError(ErrBadList.Code, err, "the device list of %s does not verify: %v", handle, err)
	}
	if l.Legacy() {
		// A new key is pinned from scratch, as at first contact.
		return legacyListErr(handle)
	}
	var b storage.Batch
	// The pin starts again from the acknowledged key; sessions with the
	// old devices are worthless under it.
	b.Put(bLists, handle, (&pinnedList{AccountPub: key, Encoded: encoded}).marshal())
	if err := e.cfg.Store.Scan(ctx, bSessions, handle+"/", storage.ScanOptions{}, func(k string, _ []byte) error {
		b.Delete(bSessions, k)
		return nil
	}); err != nil {
		return storageErr(err)
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.lists[handle] = l
	return nil
}

// SafetyNumber returns the safety number with a contact (digits grouped
// for reading aloud, and the QR payload). While the contact's key has
// changed and is not acknowledged, it is the number made from the new key:
// the one to compare, and to pass back to AcknowledgeSafetyNumber.
func (e *Engine) SafetyNumber(ctx context.Context, handle string) (identity.SafetyNumber, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return identity.SafetyNumber{}, ErrNoAccount
	}
	pin, err := e.loadPin(ctx, handle)
	if err != nil {
		return identity.SafetyNumber{}, err
	}
	if pin != nil && pin.KeyChanged {
		return identity.ComputeSafetyNumber(e.acct.Handle, e.acct.AccountPub, handle, pin.NewKey)
	}
	l, err := e.listLocked(ctx, handle, false)
	if err != nil {
		return identity.SafetyNumber{}, err
	}
	return identity.ComputeSafetyNumber(e.acct.Handle, e.acct.AccountPub, handle, l.Account)
}

// ownStampLocked is the stamp of this device's own account list, which
// every pairwise payload carries (PROTOCOL.md §14.2).
func (e *Engine) ownStampLocked(ctx context.Context) (listStamp, error) {
	own, err := e.listLocked(ctx, e.acct.Handle, false)
	if err != nil {
		return listStamp{}, err
	}
	if own == e.ownStampOf {
		return e.ownStamp, nil
	}
	pin, err := e.loadPin(ctx, e.acct.Handle)
	if err != nil {
		return listStamp{}, err
	}
	if pin == nil {
		return listStamp{}, newError(ErrStorage.Code, nil, "this device's own device list is not stored")
	}
	// own came from this pin (listLocked); the version is read from the
	// bytes hashed so the two cannot disagree.
	l, err := devicelist.Verify(pin.AccountPub, e.acct.Handle, pin.Encoded)
	if err != nil {
		return listStamp{}, newError(ErrStorage.Code, err, "the stored own device list no longer verifies")
	}
	e.ownStamp, e.ownStampOf = listStamp{Version: l.Version, Hash: listHash(pin.Encoded)}, own
	return e.ownStamp, nil
}

// digitsOnly drops the spaces a safety number is grouped with.
func digitsOnly(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// upgradeOwnListLocked is the primary's half of the migration to lists
// that name their handle (PROTOCOL.md 3.6): at each connection, if the
// account's own list is still of format 1, it publishes the next version
// in format 2 with the same devices (only the primary's own attestation
// is renewed; companions keep theirs). Relays and clients accept a format
// 1 list only as the one already stored, so this first update ends it.
// Companions have no account key and do nothing. e.mu must be held.
func (e *Engine) upgradeOwnListLocked(ctx context.Context) error {
	if e.account == nil {
		return nil
	}
	cur, err := e.listLocked(ctx, e.acct.Handle, false)
	if err != nil || !cur.Legacy() {
		return err
	}
	next, signed, err := devicelist.Reattest(e.account, cur, e.acct.Handle, e.cfg.Now(), e.dev.ID)
	if err != nil {
		return err
	}
	return e.publishSignedLocked(ctx, next, signed)
}
