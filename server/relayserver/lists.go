package relayserver

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/store"
)

// maxCachedAccounts bounds the verified-list cache. A miss costs one store
// read and one list verification (an Ed25519 check per device), so the
// cache only needs to hold the accounts that are active right now.
const maxCachedAccounts = 100_000

// account is a registered account with its current list, verified.
type account struct {
	handle string
	key    ed25519.PublicKey
	list   *devicelist.List
	raw    []byte
}

// device returns the entry of id, or nil.
func (a *account) device(id relay.DeviceID) *devicelist.Entry {
	return a.list.Find(identity.DeviceID(id))
}

// lists is the relay's view of device lists: every list it holds was
// verified by crypto/devicelist, and every replacement passed
// devicelist.CheckUpdate. The relay never interprets a list otherwise.
type lists struct {
	st    Store
	mu    sync.RWMutex
	cache map[string]*account
	upd   sync.Mutex // serialises replacements, which are rare
}

func newLists(st Store) *lists {
	return &lists{st: st, cache: make(map[string]*account)}
}

// errUnknownAccount is returned for handles that are not registered.
var errUnknownAccount = errors.New("relay: unknown account")

// get returns the current verified list of handle.
func (l *lists) get(handle string) (*account, error) {
	l.mu.RLock()
	a := l.cache[handle]
	l.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	sa, err := l.st.Account(handle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknownAccount
	}
	if err != nil {
		return nil, err
	}
	list, err := devicelist.Verify(ed25519.PublicKey(sa.AccountKey), sa.DeviceList)
	if err != nil {
		// Only verified lists are ever stored: this is corruption.
		return nil, fmt.Errorf("relay: stored list of %q does not verify: %w", handle, err)
	}
	a = &account{handle: handle, key: ed25519.PublicKey(sa.AccountKey), list: list, raw: sa.DeviceList}
	l.put(a)
	return a, nil
}

func (l *lists) put(a *account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cache) >= maxCachedAccounts {
		for k := range l.cache { // evict an arbitrary entry
			delete(l.cache, k)
			break
		}
	}
	l.cache[a.handle] = a
}

// listError maps a devicelist verification failure to a refusal.
func listError(err error) *relay.RelayError {
	switch {
	case errors.Is(err, devicelist.ErrRollback):
		return &relay.RelayError{Code: relay.CodeStaleVersion, Message: err.Error()}
	case errors.Is(err, devicelist.ErrTooManyDevices):
		return &relay.RelayError{Code: relay.CodeTooManyDevices, Message: err.Error()}
	default:
		return &relay.RelayError{Code: relay.CodeBadDeviceList, Message: err.Error()}
	}
}

// create registers handle with its first list; the account key is the one
// the list is signed by.
func (l *lists) create(handle string, encoded []byte) (*account, error) {
	key, err := devicelist.PeekAccount(encoded)
	if err != nil {
		return nil, listError(err)
	}
	list, err := devicelist.Verify(key, encoded)
	if err != nil {
		return nil, listError(err)
	}
	err = l.st.CreateAccount(store.Account{Handle: handle, AccountKey: key, Version: list.Version, DeviceList: encoded})
	if errors.Is(err, store.ErrExists) {
		return nil, &relay.RelayError{Code: relay.CodeHandleTaken, Message: fmt.Sprintf("handle %q is already registered", handle)}
	}
	if err != nil {
		return nil, err
	}
	a := &account{handle: handle, key: key, list: list, raw: encoded}
	l.put(a)
	return a, nil
}

// replace verifies encoded under the account's pinned key, checks it is
// newer than the current list, stores it (purging the dropped devices'
// mailboxes and prekeys in the same transaction) and returns the devices
// it dropped.
func (l *lists) replace(handle string, encoded []byte) (*account, []relay.DeviceID, error) {
	l.upd.Lock()
	defer l.upd.Unlock()
	cur, err := l.get(handle)
	if err != nil {
		return nil, nil, err
	}
	next, err := devicelist.Verify(cur.key, encoded)
	if err != nil {
		return nil, nil, listError(err)
	}
	if err := devicelist.CheckUpdate(cur.list, next); err != nil {
		return nil, nil, listError(err)
	}
	var removed []relay.DeviceID
	var sremoved []store.DeviceID
	for _, e := range cur.list.Entries {
		if next.Find(e.Device.ID) == nil {
			removed = append(removed, relay.DeviceID(e.Device.ID))
			sremoved = append(sremoved, store.DeviceID(e.Device.ID))
		}
	}
	_, err = l.st.ReplaceDeviceList(handle, cur.list.Version, next.Version, encoded, sremoved)
	if errors.Is(err, store.ErrConflict) {
		// Another relay instance replaced it first; drop our copy.
		l.mu.Lock()
		delete(l.cache, handle)
		l.mu.Unlock()
		return nil, nil, &relay.RelayError{Code: relay.CodeConflict, Message: "the device list changed concurrently; fetch it and retry"}
	}
	if err != nil {
		return nil, nil, err
	}
	a := &account{handle: handle, key: cur.key, list: next, raw: encoded}
	l.put(a)
	return a, removed, nil
}
