//go:build js && wasm

package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/wasm/idbwire"
)

// Sealed record layout (docs/PROTOCOL.md 13.1; idbwire.ParseSealed, which
// also reads the layout of later data key epochs):
//
//	sealVersion (1 byte) || iv (12 bytes) || AES-256-GCM ciphertext+tag
//
// The associated data binds a record to where it is stored, so a record
// cannot be moved to another key or store without failing to open.
const (
	sealVersion = 1
	ivSize      = 12
	tagSize     = 16
	sealADLabel = "parley/record/v1"
)

// errUnseal means a sealed record did not open: it was altered, moved, or
// sealed under another key. Callers report it; they never delete the record.
var errUnseal = errors.New("sealed record failed authentication")

func subtle() (safejs.Value, error) {
	c, err := safejs.Global().Get("crypto")
	if err != nil {
		return safejs.Undefined(), err
	}
	s, err := c.Get("subtle")
	if err != nil || s.IsUndefined() {
		return safejs.Undefined(), errors.New("WebCrypto (crypto.subtle) is unavailable: the page must be served over https or from localhost")
	}
	return s, nil
}

// recordAD is the associated data for the record at store/key.
func recordAD(store, key string) []byte {
	return []byte(sealADLabel + "\x00" + store + "\x00" + key)
}

// unseal opens a record sealed (either layout of idbwire.ParseSealed) for
// the same store/key under the ring's key of its epoch.
func unseal(ring *keyring, store, key string, sealed []byte) ([]byte, error) {
	epoch, iv, ct, err := idbwire.ParseSealed(sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s is not in a sealed layout (%d bytes)", errUnseal, store, key, len(sealed))
	}
	k, ok := ring.key(epoch)
	if !ok {
		return nil, fmt.Errorf("%w: %s/%s is sealed under data key epoch %d, which this profile no longer holds", errUnseal, store, key, epoch)
	}
	s, err := subtle()
	if err != nil {
		return nil, err
	}
	alg := map[string]any{
		"name":           "AES-GCM",
		"iv":             bytesToJS(iv),
		"additionalData": bytesToJS(recordAD(store, key)),
	}
	p, err := s.Call("decrypt", alg, k, bytesToJS(ct))
	if err != nil {
		return nil, err
	}
	pt, err := Await(p)
	if err != nil {
		// WebCrypto reports any authentication failure as OperationError.
		return nil, fmt.Errorf("%w: %s/%s", errUnseal, store, key)
	}
	return bytesFromJS(pt)
}

// Key wrapping (docs/PROTOCOL.md 13.2). Records are sealed under a data
// key; the data key is stored only wrapped, by the device key when no lock
// is set and by a passphrase- or passkey-derived key when one is. Setting
// or changing the lock makes a new data key (keyring.go); removing it
// re-wraps the keys there are.
const (
	// wrapADLabel prefixes the associated data of a wrapped data key; the
	// wrapping kind follows, so a passphrase-wrapped key cannot be passed
	// off as device-wrapped or the reverse.
	wrapADLabel = "parley/datakey/v1"
	keyLen      = 32
)

func callSubtle(method string, args ...any) (safejs.Value, error) {
	s, err := subtle()
	if err != nil {
		return safejs.Undefined(), err
	}
	p, err := s.Call(method, args...)
	if err != nil {
		return safejs.Undefined(), err
	}
	return Await(p)
}

func aesGCM() map[string]any { return map[string]any{"name": "AES-GCM", "length": 256} }

// newWrappingKey makes a non-extractable AES-256-GCM key that can only
// wrap and unwrap: the device key of an unlocked profile.
func newWrappingKey() (safejs.Value, error) {
	return callSubtle("generateKey", aesGCM(), false, []any{"wrapKey", "unwrapKey"})
}

// newDataKey makes a data key. It is extractable only so that it can be
// wrapped once; the caller drops it after wrapping and uses the
// non-extractable copy that unwrapDataKey returns.
func newDataKey() (safejs.Value, error) {
	return callSubtle("generateKey", aesGCM(), true, []any{"encrypt", "decrypt"})
}

// importWrappingKey turns 32 derived bytes (Argon2id output) into a
// non-extractable wrap/unwrap key. The caller clears raw afterwards.
func importWrappingKey(raw []byte) (safejs.Value, error) {
	u8 := bytesToJS(raw)
	defer safejs.Unsafe(u8).Call("fill", 0)
	return callSubtle("importKey", "raw", u8, map[string]any{"name": "AES-GCM"}, false, []any{"wrapKey", "unwrapKey"})
}

func wrapAD(kind string, epoch uint32) safejs.Value {
	return bytesToJS([]byte(wrapADLabel + "\x00" + kind + epochAD(epoch)))
}

// wrapDataKey wraps an extractable data key of epoch under wrapper for the
// given lock kind, returning the random iv and the wrapped bytes.
func wrapDataKey(dataKey, wrapper safejs.Value, kind string, epoch uint32) (iv, wrapped []byte, err error) {
	iv = make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, err
	}
	v, err := callSubtle("wrapKey", "raw", dataKey, wrapper,
		map[string]any{"name": "AES-GCM", "iv": bytesToJS(iv), "additionalData": wrapAD(kind, epoch)})
	if err != nil {
		return nil, nil, fmt.Errorf("wrap data key: %w", err)
	}
	wrapped, err = bytesFromJS(v)
	return iv, wrapped, err
}

// errUnwrap means the wrapping key was not the one the data key was
// wrapped with (wrong passphrase or passkey), or the record was altered.
var errUnwrap = errors.New("data key did not unwrap")

// unwrapDataKey opens a wrapped data key. extractable is true only for the
// moment of re-wrapping it under a new lock.
func unwrapDataKey(wrapper safejs.Value, kind string, epoch uint32, iv, wrapped []byte, extractable bool) (safejs.Value, error) {
	k, err := callSubtle("unwrapKey", "raw", bytesToJS(wrapped), wrapper,
		map[string]any{"name": "AES-GCM", "iv": bytesToJS(iv), "additionalData": wrapAD(kind, epoch)},
		map[string]any{"name": "AES-GCM"}, extractable, []any{"encrypt", "decrypt"})
	if err != nil {
		return safejs.Undefined(), errUnwrap
	}
	return k, nil
}

// sealMany seals the values of a batch under an epoch-0 data key (a new
// profile's) with all WebCrypto calls in flight at once, returning each
// sealed record as a Uint8Array (undefined for a delete), in the SealV1
// layout. The whole batch costs one
// Go await (Promise.all), not one per value: each await is a round trip
// through the JS event loop (≈ 25–45 µs here).
func sealMany(storageKey safejs.Value, ops []storage.Op) ([]safejs.Value, error) {
	s, err := subtle()
	if err != nil {
		return nil, err
	}
	ivs := make([][]byte, len(ops))
	pending := make([]safejs.Value, len(ops))
	all := make([]any, 0, len(ops))
	for i, op := range ops {
		pending[i] = safejs.Undefined()
		if op.Value == nil {
			continue
		}
		ivs[i] = make([]byte, ivSize)
		if _, err := rand.Read(ivs[i]); err != nil {
			return nil, err
		}
		alg := map[string]any{
			"name":           "AES-GCM",
			"iv":             bytesToJS(ivs[i]),
			"additionalData": bytesToJS(recordAD(op.Bucket, op.Key)),
		}
		pending[i], err = s.Call("encrypt", alg, storageKey, bytesToJS(op.Value))
		if err != nil {
			return nil, err
		}
		all = append(all, safejs.Unsafe(pending[i]))
	}
	out := make([]safejs.Value, len(ops))
	for i := range out {
		out[i] = safejs.Undefined()
	}
	if len(all) == 0 {
		return out, nil
	}
	cts, err := Await(safejs.Safe(js.Global().Get("Promise").Call("all", all)))
	if err != nil {
		return nil, fmt.Errorf("seal %d records: %w", len(all), err)
	}
	u8 := js.Global().Get("Uint8Array")
	n := 0
	for i, p := range pending {
		if p.IsUndefined() {
			continue
		}
		ctv := u8.New(safejs.Unsafe(cts).Index(n))
		n++
		rec := u8.New(1 + ivSize + ctv.Length())
		rec.SetIndex(0, sealVersion)
		js.CopyBytesToJS(rec.Call("subarray", 1, 1+ivSize), ivs[i])
		rec.Call("set", ctv, 1+ivSize)
		out[i] = safejs.Safe(rec)
	}
	return out, nil
}
