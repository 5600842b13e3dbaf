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
// a list, never forge or roll one back. e.mu must be held.
func (e *Engine) listLocked(ctx context.Context, handle string, refresh bool) (*devicelist.List, error) {
	if l, ok := e.lists[handle]; ok && !refresh {
		return l, nil
	}
	pin, err := e.loadPin(ctx, handle)
	if err != nil {
		return nil, err
	}
	if pin != nil && !refresh {
		l, err := devicelist.Verify(pin.AccountPub, pin.Encoded)
		if err != nil {
			return nil, newError(ErrStorage.Code, err, "the stored device list of %s no longer verifies", handle)
		}
		e.lists[handle] = l
		return l, nil
	}
	// Bounded: this runs under the engine lock, which every API call and
	// the receive loop wait on.
	actx, cancel := context.WithTimeout(ctx, listFetchTimeout)
	keyBytes, encoded, err := e.cfg.Relay.Account(actx, handle)
	cancel()
	if err != nil {
		return nil, err
	}
	if len(keyBytes) != ed25519.PublicKeySize {
		return nil, newError(ErrBadList.Code, nil, "the relay served a malformed account key for %s", handle)
	}
	key := ed25519.PublicKey(keyBytes)
	own := e.acct != nil && handle == e.acct.Handle
	if pin != nil && !bytes.Equal(pin.AccountPub, key) {
		if own {
			// Our own account key never changes: this is the relay lying.
			return nil, newError(ErrBadList.Code, nil, "the relay served a different account key for this device's own account")
		}
		// A contact's account key changed: remember it, block sending
		// until the user acknowledges the new safety number.
		if !pin.KeyChanged || !bytes.Equal(pin.NewKey, key) {
			pin.KeyChanged, pin.NewKey = true, key
			var b storage.Batch
			b.Put(bLists, handle, pin.marshal())
			if err := e.cfg.Store.Commit(ctx, &b); err != nil {
				return nil, storageErr(err)
			}
			go e.emit(Event{Type: "safety-number-changed", Chat: handle})
		}
		return nil, ErrSafetyChanged
	}
	l, err := devicelist.Verify(key, encoded)
	if err != nil {
		return nil, newError(ErrBadList.Code, err, "the device list of %s does not verify: %v", handle, err)
	}
	if pin != nil {
		prev, err := devicelist.Verify(pin.AccountPub, pin.Encoded)
		if err == nil {
			if l.Version < prev.Version {
				return nil, newError(ErrListRollback.Code, devicelist.ErrRollback,
					"the relay served version %d of %s's device list after version %d", l.Version, handle, prev.Version)
			}
			if l.Version == prev.Version {
				if !bytes.Equal(encoded, pin.Encoded) {
					return nil, newError(ErrBadList.Code, nil, "two different device lists of %s carry version %d", handle, l.Version)
				}
				e.lists[handle] = prev
				return prev, nil
			}
		}
	}
	var b storage.Batch
	b.Put(bLists, handle, (&pinnedList{AccountPub: key, Encoded: encoded}).marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return nil, storageErr(err)
	}
	e.lists[handle] = l
	if own {
		e.onOwnListChanged(l)
	}
	return l, nil
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
// user has seen the changed safety number; sending is possible again.
func (e *Engine) AcknowledgeSafetyNumber(ctx context.Context, handle string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pin, err := e.loadPin(ctx, handle)
	if err != nil || pin == nil || !pin.KeyChanged {
		return err
	}
	var b storage.Batch
	b.Delete(bLists, handle)
	// Sessions with the old devices are worthless under the new key.
	if err := e.cfg.Store.Scan(ctx, bSessions, handle+"/", storage.ScanOptions{}, func(k string, _ []byte) error {
		b.Delete(bSessions, k)
		return nil
	}); err != nil {
		return storageErr(err)
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	delete(e.lists, handle)
	_, err = e.listLocked(ctx, handle, true)
	return err
}

// SafetyNumber returns the safety number with a contact (digits grouped
// for reading aloud, and the QR payload).
func (e *Engine) SafetyNumber(ctx context.Context, handle string) (identity.SafetyNumber, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return identity.SafetyNumber{}, ErrNoAccount
	}
	l, err := e.listLocked(ctx, handle, false)
	if err != nil {
		return identity.SafetyNumber{}, err
	}
	return identity.ComputeSafetyNumber(e.acct.Handle, e.acct.AccountPub, handle, l.Account)
}
