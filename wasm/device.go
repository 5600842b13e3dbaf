//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	engine "github.com/parley-im/parley/client"
	"math"
	"syscall/js"

	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/journal"
	"github.com/parley-im/parley/client/storage/keyname"
	"github.com/parley-im/parley/client/storage/sealroot"
	"github.com/parley-im/parley/crypto/identity"
)

// Lock kinds: how the data key is wrapped (dataKeyRecord.Kind).
const (
	lockNone       = "device"
	lockPassphrase = "passphrase"
	lockPasskey    = "passkey"
)

// canaryMarker is the localStorage item set once this origin has a
// profile. IndexedDB evicted as a whole leaves an empty database; the
// marker (kept by Chromium outside quota eviction) tells that apart from a
// first visit, so Parley reports storage_evicted instead of silently
// becoming a new device.
const canaryMarker = "parley.canary"

// dataKeyRecord is keys/"datakey": the data key wrapped for one lock kind,
// with its epoch and the retired keys a re-seal has not finished with
// (keyring.go), plus the non-secret parameters needed to rebuild the
// wrapping key. Version 1 is epoch 0 with no retired keys, the record of
// a profile whose data key never changed; it is still written as such.
type dataKeyRecord struct {
	Kind        string
	IV, Wrapped []byte
	Epoch       uint32
	Retired     []wrappedKey
	// Passphrase (Argon2id).
	Salt            []byte
	Time, MemoryKiB uint32
	Threads         uint8
	// Passkey (WebAuthn PRF).
	CredID, PRFSalt []byte
}

func (r *dataKeyRecord) toJS() safejs.Value {
	o := js.Global().Get("Object").New()
	o.Set("v", 1)
	o.Set("kind", r.Kind)
	o.Set("iv", safejs.Unsafe(bytesToJS(r.IV)))
	o.Set("wrapped", safejs.Unsafe(bytesToJS(r.Wrapped)))
	if r.Epoch > 0 || len(r.Retired) > 0 {
		o.Set("v", 2)
		o.Set("epoch", r.Epoch)
		ret := js.Global().Get("Array").New()
		for _, w := range r.Retired {
			e := js.Global().Get("Object").New()
			e.Set("epoch", w.Epoch)
			e.Set("iv", safejs.Unsafe(bytesToJS(w.IV)))
			e.Set("wrapped", safejs.Unsafe(bytesToJS(w.Wrapped)))
			ret.Call("push", e)
		}
		o.Set("retired", ret)
	}
	switch r.Kind {
	case lockPassphrase:
		o.Set("salt", safejs.Unsafe(bytesToJS(r.Salt)))
		o.Set("time", r.Time)
		o.Set("memoryKiB", r.MemoryKiB)
		o.Set("threads", r.Threads)
	case lockPasskey:
		o.Set("credId", safejs.Unsafe(bytesToJS(r.CredID)))
		o.Set("prfSalt", safejs.Unsafe(bytesToJS(r.PRFSalt)))
	}
	return safejs.Safe(o)
}

func parseDataKeyRecord(v safejs.Value) (rec *dataKeyRecord, err error) {
	defer func() {
		if recover() != nil {
			rec, err = nil, errors.New("malformed")
		}
	}()
	o := safejs.Unsafe(v)
	if o.Type() != js.TypeObject {
		return nil, errors.New("not an object")
	}
	ver := o.Get("v").Int()
	if ver != 1 && ver != 2 {
		return nil, errors.New("unknown version")
	}
	b := func(o js.Value, name string) []byte {
		out, err := bytesFromJS(safejs.Safe(o.Get(name)))
		if err != nil {
			panic(err)
		}
		return out
	}
	u32 := func(o js.Value, name string) uint32 {
		f := o.Get(name).Float()
		if f < 0 || f > math.MaxUint32 || f != math.Trunc(f) {
			panic("bad epoch")
		}
		return uint32(f)
	}
	rec = &dataKeyRecord{Kind: o.Get("kind").String(), IV: b(o, "iv"), Wrapped: b(o, "wrapped")}
	if ver == 2 {
		rec.Epoch = u32(o, "epoch")
		ret := o.Get("retired")
		if n := ret.Length(); n > maxRetiredKeys {
			return nil, fmt.Errorf("%d retired data keys, at most %d", n, maxRetiredKeys)
		}
		for i := range ret.Length() {
			e := ret.Index(i)
			rec.Retired = append(rec.Retired, wrappedKey{Epoch: u32(e, "epoch"), IV: b(e, "iv"), Wrapped: b(e, "wrapped")})
		}
		if rec.Epoch == 0 || !validRetired(rec.Epoch, rec.Retired) {
			return nil, errors.New("data key epochs out of order")
		}
	}
	switch rec.Kind {
	case lockNone:
	case lockPassphrase:
		rec.Salt = b(o, "salt")
		rec.Time = uint32(o.Get("time").Int())
		rec.MemoryKiB = uint32(o.Get("memoryKiB").Int())
		rec.Threads = uint8(o.Get("threads").Int())
	case lockPasskey:
		rec.CredID, rec.PRFSalt = b(o, "credId"), b(o, "prfSalt")
	default:
		return nil, fmt.Errorf("unknown lock kind %q", rec.Kind)
	}
	return rec, nil
}

// start decides the client's state from what is stored (PROTOCOL.md 13.3).
// It returns nil with c.status "new" (unlocked) or "locked", or an error
// state. No path deletes or replaces anything the user had.
func (c *client) start(ctx context.Context) error {
	for attempt := 0; attempt < 2; attempt++ {
		snap, err := readSnapshot(ctx, c.db)
		if err != nil {
			return newAPIError(engine.CodeStorageUnavailable, "IndexedDB could not be read: %v", err)
		}
		mark("snapshot")
		if !present(snap.dataKey) && (present(snap.v1Key) || present(snap.v1Identity)) {
			switch {
			case !present(snap.v1Identity):
				return newAPIError(engine.CodeIdentityMissing, "this browser's device identity record is missing while its storage key is present")
			case !present(snap.v1Key):
				return newAPIError(engine.CodeStorageKeyMissing, "this browser's storage key is missing, so its sealed records cannot be opened")
			}
			if err := c.migrateV1(ctx, snap); err != nil {
				return err
			}
			continue // read the migrated layout
		}
		if !present(snap.dataKey) {
			if snap.records > 0 {
				return newAPIError(engine.CodeStorageKeyMissing, "this browser's data key is missing while %d sealed records remain, so they cannot be opened", snap.records)
			}
			if localStorageGet(canaryMarker) != "" {
				c.canary = "missing"
				return newAPIError(engine.CodeStorageEvicted, "the browser has deleted Parley's stored data on this device (storage eviction); this browser's device keys are gone")
			}
			err := c.create(ctx, nil, nil)
			if errors.Is(err, errExists) {
				continue
			}
			if err != nil {
				return err
			}
			continue // open what was just made, the same way as a restart
		}
		rec, err := parseDataKeyRecord(snap.dataKey)
		if err != nil {
			return newAPIError(engine.CodeStorageCorrupt, "the stored data key (keys/%s) is not in Parley's format: %v", keyDataKey, err)
		}
		c.dk = rec
		if !snap.canaryPresent() {
			c.canary = "missing"
			return newAPIError(engine.CodeStorageEvicted, "part of Parley's stored data on this device was deleted by the browser (the canary record %s/%s is gone)", bucketMeta, recCanary)
		}
		c.canary = "present"
		if rec.Kind != lockNone {
			c.status = "locked"
			return nil
		}
		if !present(snap.deviceKey) {
			return newAPIError(engine.CodeStorageKeyMissing, "this browser's device key is missing, so its sealed records cannot be opened")
		}
		ring, err := unwrapRing(snap.deviceKey, rec)
		if err != nil {
			return newAPIError(engine.CodeStorageCorrupt, "the stored data key (keys/%s) failed its integrity check: it is damaged or was altered", keyDataKey)
		}
		mark("unwrapped")
		return c.open(ctx, ring, snap.deviceKey, snap.recs)
	}
	return newAPIError(engine.CodeStorageUnavailable, "IndexedDB changed while Parley was starting")
}

// startupRefs are the records opening the store reads: its own three
// and the engine's first ones. They are read in one transaction and
// unsealed behind one await (each separate Get cost ~10 ms while the page
// loads), with the number of journal records a previous run left (the
// engine applies them first, client/storage/journal).
var startupRefs = append([]recordRef{{bucketMeta, recCanary}, {bucketDevice, recIdentity}, {bucketMeta, recIdleLock}}, engineStartRefs...)

// open loads the device from a store under the data keys of ring and
// makes the client ready; wrapper is the key that wrapped them (kept to
// re-wrap them when the lock changes). A re-seal left unfinished starts
// again (reseal.go). pre, if not nil, is startupRefs as start-up's
// snapshot read them, in its transaction; otherwise open reads them.
func (c *client) open(ctx context.Context, ring *keyring, wrapper safejs.Value, pre *sealedRecords) error {
	st := newIDBStore(c.db, dbName, ring)
	var vals [][]byte
	var errs []error
	var journaled uint
	if pre != nil {
		vals, errs = pre.unseal(ring)
		journaled = pre.count
	} else {
		var err error
		if vals, errs, journaled, err = st.getManyCount(ctx, startupRefs, journal.Bucket); err != nil {
			return newAPIError(engine.CodeStorageUnavailable, "%v", err)
		}
	}
	mark("records")
	canary, err := vals[0], errs[0]
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.canary = "missing"
		return newAPIError(engine.CodeStorageEvicted, "part of Parley's stored data on this device was deleted by the browser (the canary record %s/%s is gone)", bucketMeta, recCanary)
	case errors.Is(err, storage.ErrCorrupt):
		c.canary = "corrupt"
		return newAPIError(engine.CodeStorageCorrupt, "%v", err)
	case err != nil:
		return newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
	plain, err := vals[1], errs[1]
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return newAPIError(engine.CodeIdentityMissing, "this browser's device identity record is missing while its keys are present")
	case errors.Is(err, storage.ErrCorrupt):
		return newAPIError(engine.CodeStorageCorrupt, "%v", err)
	case err != nil:
		return newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
	dev, err := identity.UnmarshalDevice(plain)
	clear(plain)
	if err != nil {
		return newAPIError(engine.CodeStorageCorrupt, "the device identity record opened but could not be decoded: %v", err)
	}
	idle, err := parseIdleLock(vals[2], errs[2])
	if err != nil {
		return newAPIError(engine.CodeStorageCorrupt, "%v", err)
	}
	localStorageSet(canaryMarker, hex.EncodeToString(canary))
	c.canary = "ok"
	c.store, c.dev, c.wrapper, c.idle = st, dev, wrapper, idle
	c.status = "new"
	mark("opened")
	if startEngine != nil {
		read := startRead{journaled: journaled, vals: vals[3:], errs: errs[3:], canary: canary}
		stop, err := startEngine(st, read, dev, c.bus)
		if err != nil {
			// The records do not match their sealed root: report it and
			// open nothing (nothing is deleted or rewritten).
			st.close()
			c.store, c.dev, c.wrapper, c.idle = nil, nil, safejs.Undefined(), 0
			return err
		}
		c.stopEngine = stop
	}
	for _, v := range vals[3:] {
		clear(v) // the engine's cache holds its own copies
	}
	if len(c.dk.Retired) > 0 {
		c.startResealLocked()
	}
	return nil
}

// create makes a fresh device wrapping key and data key and stores the
// identity (dev, or a new one) and the canary; migrating from v1 also
// deletes the v1 entries in the same transaction.
func (c *client) create(ctx context.Context, dev *identity.Device, extraRec []recWrite) error {
	wk, err := newWrappingKey()
	if err != nil {
		return newAPIError(engine.CodeStorageUnavailable, "WebCrypto could not make a key: %v", err)
	}
	ext, err := newDataKey()
	if err != nil {
		return newAPIError(engine.CodeStorageUnavailable, "WebCrypto could not make a key: %v", err)
	}
	iv, wrapped, err := wrapDataKey(ext, wk, lockNone, 0)
	if err != nil {
		return err
	}
	dataKey, err := unwrapDataKey(wk, lockNone, 0, iv, wrapped, false)
	if err != nil {
		return err
	}
	if dev == nil {
		if dev, err = identity.NewDevice(rand.Reader); err != nil {
			return err
		}
	}
	plain, err := dev.MarshalBinary()
	if err != nil {
		return err
	}
	canary := make([]byte, canaryLen, canaryLen+1)
	if _, err := rand.Read(canary); err != nil {
		return err
	}
	root, err := sealroot.NewRecord()
	if err != nil {
		return err
	}
	var b storage.Batch
	b.Put(bucketDevice, recIdentity, plain)
	b.Put(bucketMeta, recCanary, canary)
	b.Put(bucketMeta, recRoot, root)
	// A fresh profile has its naming key (names.go) from the start; one
	// migrated from v1 brings records under their clear keys, so it is
	// left unmarked and renamed when its engine first starts.
	var nameKey [keyname.KeySize]byte
	if len(extraRec) == 0 {
		if _, err := rand.Read(nameKey[:]); err != nil {
			return err
		}
		b.Put(bucketMeta, recNames, nameKey[:])
		canary = append(canary, canaryHasNames)
	} else {
		canary = append(canary, canaryHasRoot)
	}
	b.Ops[1].Value = canary
	sealed, err := sealMany(dataKey, b.Ops)
	clear(plain)
	clear(nameKey[:])
	if err != nil {
		return err
	}
	rec := &dataKeyRecord{Kind: lockNone, IV: iv, Wrapped: wrapped}
	kw := []keyWrite{{name: keyDataKey, value: rec.toJS(), add: true}, {name: keyDevice, value: wk}}
	rw := append([]recWrite{
		{key: recordKey(bucketDevice, recIdentity), value: sealed[0]},
		{key: recordKey(bucketMeta, recCanary), value: sealed[1]},
		{key: recordKey(bucketMeta, recRoot), value: sealed[2]},
	}, extraRec...)
	if len(sealed) > 3 {
		rw = append(rw, recWrite{key: recordKey(bucketMeta, recNames), value: sealed[3]})
	}
	if len(extraRec) > 0 {
		kw = append(kw, keyWrite{name: keyV1Storage, value: safejs.Undefined()})
	}
	if err := writeTxn(ctx, c.db, kw, rw); err != nil {
		if errors.Is(err, errExists) {
			return err
		}
		return newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
	localStorageSet(canaryMarker, hex.EncodeToString(canary))
	return nil
}

// migrateV1 moves a version-1 profile to the v2 layout keeping its
// identity (and so its fingerprint): unseal with the v1 key, then one
// transaction stores the new keys and records and removes the v1 entries.
// If the identity does not open, nothing is changed.
func (c *client) migrateV1(ctx context.Context, snap *snapshot) error {
	sealed, err := bytesFromJS(snap.v1Identity)
	if err != nil {
		return newAPIError(engine.CodeStorageCorrupt, "the device identity record (%s/%s) is not in Parley's format", storeRecords, keyV1Identity)
	}
	plain, err := unseal(newKeyring(0, snap.v1Key, nil), storeRecords, keyV1Identity, sealed)
	if err != nil {
		return newAPIError(engine.CodeStorageCorrupt, "the device identity record (%s/%s) is damaged or was altered: it failed its integrity check", storeRecords, keyV1Identity)
	}
	dev, err := identity.UnmarshalDevice(plain)
	clear(plain)
	if err != nil {
		return newAPIError(engine.CodeStorageCorrupt, "the device identity record opened but could not be decoded: %v", err)
	}
	err = c.create(ctx, dev, []recWrite{{key: js.ValueOf(keyV1Identity), value: safejs.Undefined()}})
	if errors.Is(err, errExists) {
		return nil // done by an earlier attempt; the caller re-reads
	}
	return err
}

func present(v safejs.Value) bool { return !v.IsUndefined() && !v.IsNull() }

func localStorageGet(name string) string {
	ls := js.Global().Get("localStorage")
	if ls.IsUndefined() || ls.IsNull() {
		return ""
	}
	v := ls.Call("getItem", name)
	if v.IsNull() {
		return ""
	}
	return v.String()
}

func localStorageSet(name, value string) {
	ls := js.Global().Get("localStorage")
	if !ls.IsUndefined() && !ls.IsNull() {
		ls.Call("setItem", name, value)
	}
}
