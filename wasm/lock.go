//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"errors"
	engine "github.com/parley-im/parley/client"
	"math"
	"strconv"
	"syscall/js"
	"time"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"
	"golang.org/x/crypto/argon2"

	"github.com/parley-im/parley/client/storage"
)

// The optional lock (PROTOCOL.md 13.2). With a lock set, the data key is
// stored only wrapped by a key derived from a passphrase (Argon2id) or a
// passkey (WebAuthn PRF → HKDF); the device wrapping key is deleted, so a
// copy of the profile cannot open anything without the user.

// Argon2id parameters for new passphrase locks (stored with each lock, so
// they can be raised later without breaking existing locks). Go's argon2
// compiled to wasm runs single-threaded without SIMD, so threads > 1 buys
// nothing here and only p = 1 keeps the cost per guess honest. Measured in
// headless Chromium on the two-core test machine (parleytest hook
// __test.argon2, three runs each):
//
//	t=3 m=32 MiB  ≈ 0.18–0.27 s    t=3 m=64 MiB  ≈ 0.35–0.43 s
//	t=6 m=64 MiB  ≈ 0.53–0.57 s    t=3 m=128 MiB ≈ 0.56–0.88 s
//
// We take m = 64 MiB (RFC 9106's second recommended memory size; memory is
// what makes GPU guessing expensive) and raise the passes to t = 6 to land
// in the 0.5–1 s an unlock may cost. 128 MiB was not chosen because a wasm
// heap never shrinks: every unlock would leave the tab 128 MiB larger.
const (
	argonTime      = 6
	argonMemoryKiB = 64 * 1024
	argonThreads   = 1
	argonSaltLen   = 16
)

// Limits on parameters read back from storage, so an altered record cannot
// make an unlock allocate gigabytes or spin for minutes.
const (
	maxArgonTime      = 16
	maxArgonMemoryKiB = 256 * 1024
	maxArgonThreads   = 8
)

// minIdleLock is the shortest idle auto-lock accepted; anything shorter is
// a unit mistake (seconds for milliseconds) that would lock while typing.
const minIdleLock = time.Second

// prfSaltLen is the size of the PRF evaluation input (the WebAuthn PRF
// extension takes 32-byte salts by convention; any length works).
const prfSaltLen = 32

// passkeyInfo is the HKDF info string turning a PRF output into the
// wrapping key.
const passkeyInfo = "parley/lock/passkey/v1"

// derivePassphraseKey runs Argon2id and imports the result as a
// non-extractable wrapping key.
func derivePassphraseKey(pass string, salt []byte, t, mKiB uint32, p uint8) (safejs.Value, error) {
	raw := argon2.IDKey([]byte(pass), salt, t, mKiB, p, keyLen)
	defer clear(raw)
	return importWrappingKey(raw)
}

// rewrap stores rec (the new lock's kind and parameters) with the data
// keys re-wrapped under newWrapper, in one transaction with the device key
// changes kw. With fresh it first makes a new data key one epoch up and
// retires the current one (PROTOCOL.md 13.2): what is written from then on
// is sealed under a key no earlier copy of the profile holds, and the
// re-seal (reseal.go) moves the older records to it in the background.
// Without fresh (removing the lock) the keys stay as they are.
func (c *client) rewrap(ctx context.Context, newWrapper safejs.Value, rec *dataKeyRecord, kw []keyWrite, fresh bool) error {
	old := c.dk
	ring, err := c.store.dataKey()
	if err != nil {
		return err
	}
	wrap := func(w wrappedKey) (wrappedKey, error) {
		nw, err := rewrapKey(c.wrapper, old.Kind, w, newWrapper, rec.Kind)
		if err != nil {
			return nw, newAPIError(engine.CodeStorageCorrupt, "the stored data key could not be re-opened to change the lock")
		}
		return nw, nil
	}
	cur := wrappedKey{Epoch: old.Epoch, IV: old.IV, Wrapped: old.Wrapped}
	retired := old.Retired
	rec.Epoch = old.Epoch
	if fresh {
		if len(old.Retired) >= maxRetiredKeys || old.Epoch >= math.MaxUint32-1 {
			return newAPIError(engine.CodeRekeyPending, "the data is still being re-sealed after the last %d lock changes; try again once state().rekey is null", len(old.Retired))
		}
		retired = append(append([]wrappedKey(nil), old.Retired...), cur)
		ext, err := newDataKey()
		if err != nil {
			return newAPIError(engine.CodeStorageUnavailable, "WebCrypto could not make a key: %v", err)
		}
		rec.Epoch++
		if rec.IV, rec.Wrapped, err = wrapDataKey(ext, newWrapper, rec.Kind, rec.Epoch); err != nil {
			return err
		}
		key, err := unwrapDataKey(newWrapper, rec.Kind, rec.Epoch, rec.IV, rec.Wrapped, false)
		if err != nil {
			return err
		}
		ring = ring.next(key)
	} else {
		w, err := wrap(cur)
		if err != nil {
			return err
		}
		rec.IV, rec.Wrapped = w.IV, w.Wrapped
	}
	rec.Retired = nil
	for _, w := range retired {
		nw, err := wrap(w)
		if err != nil {
			return err
		}
		rec.Retired = append(rec.Retired, nw)
	}
	kw = append([]keyWrite{{name: keyDataKey, value: rec.toJS()}}, kw...)
	if err := writeTxnWith(ctx, c.db, idb.DurabilityStrict, kw, nil); err != nil {
		return newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
	c.dk, c.wrapper = rec, newWrapper
	if fresh {
		c.store.setRing(ring)
		c.startResealLocked()
	}
	c.touchLocked()
	return nil
}

func (c *client) requireUnlocked() error {
	switch {
	case c.status == "locked":
		return errStoreLocked
	case c.err != nil:
		return c.err
	case c.store == nil:
		return newAPIError(engine.CodeNotReady, "the client is still starting; await parley.ready first")
	}
	return nil
}

// setLock: opts null removes the lock, {passphrase} sets a passphrase.
func (c *client) setLock(ctx context.Context, opts js.Value) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.requireUnlocked(); err != nil {
		return nil, err
	}
	if opts.IsNull() || opts.IsUndefined() {
		if c.dk.Kind == lockNone {
			return nil, nil
		}
		wk, err := newWrappingKey()
		if err != nil {
			return nil, err
		}
		return nil, c.emitAfter(c.rewrap(ctx, wk, &dataKeyRecord{Kind: lockNone}, []keyWrite{{name: keyDevice, value: wk}}, false))
	}
	pass := opts.Get("passphrase")
	if pass.Type() != js.TypeString || pass.String() == "" {
		return nil, newAPIError(engine.CodeInvalidArgument, "setLock takes null, {passphrase: 'non-empty string'} or {passkey: true}")
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	wk, err := derivePassphraseKey(pass.String(), salt, argonTime, argonMemoryKiB, argonThreads)
	if err != nil {
		return nil, err
	}
	rec := &dataKeyRecord{Kind: lockPassphrase, Salt: salt, Time: argonTime, MemoryKiB: argonMemoryKiB, Threads: argonThreads}
	return nil, c.emitAfter(c.rewrap(ctx, wk, rec, []keyWrite{{name: keyDevice, value: safejs.Undefined()}}, true))
}

// setPasskeyLock is the owner's half of setLock({passkey: true}): the
// calling tab made the credential and derived the wrapping key.
func (c *client) setPasskeyLock(ctx context.Context, a js.Value) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.requireUnlocked(); err != nil {
		return nil, err
	}
	credID, err1 := bytesFromJS(safejs.Safe(a.Get("credId")))
	prfSalt, err2 := bytesFromJS(safejs.Safe(a.Get("prfSalt")))
	if err := errors.Join(err1, err2); err != nil {
		return nil, newAPIError(engine.CodeInvalidArgument, "bad passkey lock arguments")
	}
	rec := &dataKeyRecord{Kind: lockPasskey, CredID: credID, PRFSalt: prfSalt}
	return nil, c.emitAfter(c.rewrap(ctx, safejs.Safe(a.Get("key")), rec, []keyWrite{{name: keyDevice, value: safejs.Undefined()}}, true))
}

// lock drops every secret this tab holds: the data key, the wrapping key,
// the store and the device identity. Only the non-secret lock record stays.
func (c *client) lock(reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.requireUnlocked(); err != nil {
		if c.status == "locked" {
			return nil
		}
		return err
	}
	if c.dk.Kind == lockNone {
		return newAPIError(engine.CodeNoLock, "no lock is set: set a passphrase or passkey with setLock first")
	}
	c.lockedLocked()
	c.lockReason = reason
	c.emitStateLocked()
	return nil
}

func (c *client) lockedLocked() {
	if c.stopEngine != nil {
		c.stopEngine()
		c.stopEngine = nil
	}
	if c.store != nil {
		c.store.close()
	}
	c.store, c.dev = nil, nil
	c.wrapper = safejs.Undefined()
	c.resealGen++ // the next unlock starts the re-seal again
	c.status = "locked"
	c.idleGen++
}

// lockInfo tells a tab how to unlock (non-secret: the kind and, for a
// passkey, the credential id and PRF salt).
func (c *client) lockInfo() (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dk == nil {
		return nil, newAPIError(engine.CodeNotReady, "the client is not started")
	}
	o := js.Global().Get("Object").New()
	o.Set("kind", c.dk.Kind)
	if c.dk.Kind == lockPasskey {
		o.Set("credId", safejs.Unsafe(bytesToJS(c.dk.CredID)))
		o.Set("prfSalt", safejs.Unsafe(bytesToJS(c.dk.PRFSalt)))
	}
	return o, nil
}

// unlock with {passphrase}. A wrong passphrase changes nothing.
func (c *client) unlock(ctx context.Context, opts js.Value) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != "locked" {
		if c.err != nil {
			return nil, c.err
		}
		return nil, nil // already unlocked
	}
	if c.dk.Kind != lockPassphrase {
		return nil, newAPIError(engine.CodeWrongLockMethod, "this browser is locked with a %s, not a passphrase", c.dk.Kind)
	}
	pass := opts.Get("passphrase")
	if pass.Type() != js.TypeString {
		return nil, newAPIError(engine.CodeInvalidArgument, "unlock takes {passphrase: string} or {passkey: true}")
	}
	d := c.dk
	if d.Time == 0 || d.Time > maxArgonTime || d.MemoryKiB < 8 || d.MemoryKiB > maxArgonMemoryKiB || d.Threads == 0 || d.Threads > maxArgonThreads || len(d.Salt) < 8 {
		return nil, newAPIError(engine.CodeStorageCorrupt, "the stored passphrase parameters are outside Parley's limits: the lock record was altered")
	}
	wk, err := derivePassphraseKey(pass.String(), d.Salt, d.Time, d.MemoryKiB, d.Threads)
	if err != nil {
		return nil, err
	}
	return nil, c.unlockWith(ctx, wk, engine.CodeWrongPassphrase, "wrong passphrase")
}

// unlockWithKey is the owner's half of unlock({passkey: true}).
func (c *client) unlockWithKey(ctx context.Context, a js.Value) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != "locked" {
		return nil, c.err
	}
	if c.dk.Kind != lockPasskey {
		return nil, newAPIError(engine.CodeWrongLockMethod, "this browser is locked with a %s, not a passkey", c.dk.Kind)
	}
	return nil, c.unlockWith(ctx, safejs.Safe(a.Get("key")), engine.CodeWrongPasskey, "this passkey does not unlock Parley on this browser")
}

func (c *client) unlockWith(ctx context.Context, wk safejs.Value, wrongCode engine.Code, wrongMsg string) error {
	ring, err := unwrapRing(wk, c.dk)
	if errors.Is(err, errRetiredUnwrap) {
		return newAPIError(engine.CodeStorageCorrupt, "a retired data key in keys/%s failed its integrity check: the record is damaged or was altered", keyDataKey)
	}
	if err != nil {
		return newAPIError(wrongCode, "%s", wrongMsg)
	}
	if err := c.open(ctx, ring, wk, nil); err != nil {
		c.status, c.err = "error", err
		c.emitStateLocked()
		return err
	}
	// A lock set by a client from before data key epochs kept the key a
	// copy of the unlocked profile holds: its first unlock here makes a
	// new one (PROTOCOL.md 13.2, migration). If that fails it is tried
	// again at the next unlock; the unlock itself stands.
	if c.dk.Epoch == 0 {
		rec := *c.dk
		_ = c.rewrap(ctx, wk, &rec, nil, true)
	}
	c.lockReason = ""
	c.touchLocked()
	c.emitStateLocked()
	return nil
}

// setIdleLock sets the idle auto-lock in milliseconds (0 turns it off). It
// is stored sealed, so it cannot be changed without unlocking.
func (c *client) setIdleLock(ctx context.Context, v js.Value) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.requireUnlocked(); err != nil {
		return nil, err
	}
	if v.Type() != js.TypeNumber || v.Float() < 0 {
		return nil, newAPIError(engine.CodeInvalidArgument, "setIdleLock takes a number of milliseconds (0 to turn it off)")
	}
	d := time.Duration(v.Float()) * time.Millisecond
	if d > 0 && c.dk.Kind == lockNone {
		return nil, newAPIError(engine.CodeNoLock, "idle lock needs a lock: set a passphrase or passkey with setLock first")
	}
	if d > 0 && d < minIdleLock {
		return nil, newAPIError(engine.CodeInvalidArgument, "idle lock must be at least %v", minIdleLock)
	}
	// Through the sealed root (PROTOCOL.md 13.7): a deleted or older
	// setting is found at the next start.
	host.mu.Lock()
	root := host.root
	host.mu.Unlock()
	if root == nil {
		return nil, newAPIError(engine.CodeNotReady, "the client is still starting; await parley.ready first")
	}
	var b storage.Batch
	b.Put(bucketMeta, recIdleLock, []byte(strconv.FormatInt(d.Milliseconds(), 10)))
	if err := root.Commit(ctx, &b); err != nil {
		return nil, err
	}
	c.idle = d
	c.touchLocked()
	return nil, nil
}

// parseIdleLock reads the idle-lock record (v, or err from reading it).
func parseIdleLock(v []byte, err error) (time.Duration, error) {
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ms, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || ms < 0 {
		return 0, errors.New("the idle-lock setting is malformed")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// touch records user or API activity: it restarts the idle timer.
func (c *client) touch() {
	c.mu.Lock()
	c.touchLocked()
	c.mu.Unlock()
}

func (c *client) touchLocked() {
	c.idleGen++
	if c.idle <= 0 || c.status == "locked" || c.dk == nil || c.dk.Kind == lockNone {
		return
	}
	gen := c.idleGen
	time.AfterFunc(c.idle, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.idleGen != gen || c.status == "locked" || c.store == nil {
			return
		}
		c.lockedLocked()
		c.lockReason = "idle"
		c.emitStateLocked()
	})
}

func (c *client) emitAfter(err error) error {
	if err == nil {
		c.emitStateLocked()
	}
	return err
}
