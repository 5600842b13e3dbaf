//go:build js && wasm

package main

import (
	"errors"
	"math"
	"strconv"
	"syscall/js"

	"github.com/hack-pad/safejs"
)

// Data key epochs (PROTOCOL.md 13.2). Setting or changing the lock makes a
// new data key, one epoch up, so a copy of the profile taken before opens
// nothing written after. Records sealed under the earlier keys stay
// readable: those keys are kept, wrapped under the new lock, as retired
// keys until the re-seal (reseal.go) has moved every record to the
// current key, and only then dropped.

// maxRetiredKeys bounds the retired keys a data key record holds (and a
// decoder accepts): each lock change while a re-seal still runs adds one.
// A change past it waits for the re-seal (code rekey_pending).
const maxRetiredKeys = 4

// wrappedKey is one retired data key, wrapped like the current one.
type wrappedKey struct {
	Epoch       uint32
	IV, Wrapped []byte
}

// keyring is the data keys a store opens records with: the current one,
// which seals every write, and the retired ones, by epoch. It is never
// changed once made; a lock change installs a new one.
type keyring struct {
	epoch uint32
	cur   safejs.Value
	old   []epochKey // at most maxRetiredKeys
	// byEpoch is every key in a JS Map from epoch to CryptoKey, for
	// boot.js's read and reseal.
	byEpoch js.Value
}

// epochKey is a retired data key and its epoch.
type epochKey struct {
	epoch uint32
	key   safejs.Value
}

func newKeyring(epoch uint32, cur safejs.Value, old []epochKey) *keyring {
	m := js.Global().Get("Map").New()
	m.Call("set", epoch, safejs.Unsafe(cur))
	for _, o := range old {
		m.Call("set", o.epoch, safejs.Unsafe(o.key))
	}
	return &keyring{epoch: epoch, cur: cur, old: old, byEpoch: m}
}

// key is the data key of epoch, if this ring holds it.
func (r *keyring) key(epoch uint32) (safejs.Value, bool) {
	if epoch == r.epoch {
		return r.cur, true
	}
	for _, o := range r.old {
		if o.epoch == epoch {
			return o.key, true
		}
	}
	return safejs.Undefined(), false
}

// next is the ring after a lock change: key at the next epoch, and this
// ring's keys retired.
func (r *keyring) next(key safejs.Value) *keyring {
	return newKeyring(r.epoch+1, key, append([]epochKey{{r.epoch, r.cur}}, r.old...))
}

// current is the ring without its retired keys, once nothing is sealed
// under them.
func (r *keyring) current() *keyring { return newKeyring(r.epoch, r.cur, nil) }

// epochAD is what a wrapped data key's associated data adds for its epoch:
// nothing at epoch 0 (the layout of earlier clients), else 0x00 and the
// decimal epoch, so a key cannot be passed off as another epoch's.
func epochAD(epoch uint32) string {
	if epoch == 0 {
		return ""
	}
	return "\x00" + strconv.FormatUint(uint64(epoch), 10)
}

// errRetiredUnwrap means the current data key unwrapped and a retired one
// did not: the record was altered, not the passphrase mistyped.
var errRetiredUnwrap = errors.New("a retired data key did not unwrap")

// unwrapRing opens every data key of rec under wrapper (non-extractable).
func unwrapRing(wrapper safejs.Value, rec *dataKeyRecord) (*keyring, error) {
	cur, err := unwrapDataKey(wrapper, rec.Kind, rec.Epoch, rec.IV, rec.Wrapped, false)
	if err != nil {
		return nil, err
	}
	var old []epochKey
	for _, w := range rec.Retired {
		k, err := unwrapDataKey(wrapper, rec.Kind, w.Epoch, w.IV, w.Wrapped, false)
		if err != nil {
			return nil, errRetiredUnwrap
		}
		old = append(old, epochKey{w.Epoch, k})
	}
	return newKeyring(rec.Epoch, cur, old), nil
}

// rewrapKey re-wraps the data key of epoch from (oldWrapper, oldKind) to
// (newWrapper, newKind).
func rewrapKey(oldWrapper safejs.Value, oldKind string, w wrappedKey, newWrapper safejs.Value, newKind string) (wrappedKey, error) {
	ext, err := unwrapDataKey(oldWrapper, oldKind, w.Epoch, w.IV, w.Wrapped, true)
	if err != nil {
		return w, err
	}
	iv, wrapped, err := wrapDataKey(ext, newWrapper, newKind, w.Epoch)
	return wrappedKey{Epoch: w.Epoch, IV: iv, Wrapped: wrapped}, err
}

// validRetired checks a decoded record's epochs: retired keys below the
// current epoch, distinct, at most maxRetiredKeys.
func validRetired(epoch uint32, retired []wrappedKey) bool {
	if len(retired) > maxRetiredKeys || epoch == math.MaxUint32 {
		return false
	}
	for i, w := range retired {
		if w.Epoch >= epoch {
			return false
		}
		for _, v := range retired[:i] {
			if v.Epoch == w.Epoch {
				return false
			}
		}
	}
	return true
}
