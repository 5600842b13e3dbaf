package relayserver

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

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

// put caches a, unless a newer list of the account is cached already: a
// get that read the store just before a replacement must not put the
// old list back over the new one.
func (l *lists) put(a *account) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.cache[a.handle]; cur != nil && cur.list.Version > a.list.Version {
		return
	}
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
	if errors.Is(err, store.ErrKeyTaken) {
		return nil, &relay.RelayError{Code: relay.CodeKeyTaken, Message: "this list's account key is registered under another handle"}
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

// forget drops handle's cached list, so the next get reads the store.
func (l *lists) forget(handle string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cache, handle)
}

// superseded answers a send the store refused because a recipient's list
// changed between the send's coverage check and its commit (a revocation
// racing it): nothing was stored. The send is checked again against the
// lists now stored: if its device set is stale the sender learns which
// devices changed (Stale) and retries as for any stale send; if it is
// still right (the change only re-attested a companion, say) it is stored
// now, once, and a second race is answered with conflict.
func (r *Relay) superseded(req uint32, envs []store.Envelope, start time.Time) (relay.Frame, bool) {
	from := envs[0].From
	to := make([]relay.Addr, len(envs))
	for i, e := range envs {
		to[i] = relay.Addr{Handle: e.To.Handle, Device: relay.DeviceID(e.To.Device)}
		r.lists.forget(e.To.Handle)
	}
	stale, versions, rerr := r.coverage(from, to)
	switch {
	case rerr != nil:
		r.metrics.refused(rerr.Code)
		return &relay.Error{Req: req, Code: rerr.Code, Message: rerr.Message}, false
	case len(stale) > 0:
		r.metrics.refused(relay.CodeStaleDevices)
		return &relay.Stale{Req: req, Accounts: stale}, false
	}
	for i := range envs {
		envs[i].ListVersion = versions[envs[i].To.Handle]
	}
	err := r.st.EnqueueAsync(envs, r.cfg.MailboxLimit)()
	if errors.Is(err, store.ErrSuperseded) {
		r.metrics.refused(relay.CodeConflict)
		return &relay.Error{Req: req, Code: relay.CodeConflict, Message: "device lists changed while the send was stored; nothing was stored, retry"}, false
	}
	return r.sendResult(req, envs, err, start)
}
