//go:build js && wasm

package main

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/hack-pad/safejs"
)

// Sealed record layout (docs/PROTOCOL.md, "Keys at rest"):
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

// newStorageKey makes the device's AES-256-GCM storage key with
// extractable=false: its bytes can never be read by script, only used.
// IndexedDB stores the CryptoKey by structured clone, which keeps that
// property across reloads and restarts.
func newStorageKey() (safejs.Value, error) {
	s, err := subtle()
	if err != nil {
		return safejs.Undefined(), err
	}
	alg := map[string]any{"name": "AES-GCM", "length": 256}
	usages := []any{"encrypt", "decrypt"}
	p, err := s.Call("generateKey", alg, false, usages)
	if err != nil {
		return safejs.Undefined(), err
	}
	return Await(p)
}

// recordAD is the associated data for the record at store/key.
func recordAD(store, key string) []byte {
	return []byte(sealADLabel + "\x00" + store + "\x00" + key)
}

// seal encrypts plaintext under the storage key for the record store/key.
func seal(storageKey safejs.Value, store, key string, plaintext []byte) ([]byte, error) {
	s, err := subtle()
	if err != nil {
		return nil, err
	}
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	alg := map[string]any{
		"name":           "AES-GCM",
		"iv":             bytesToJS(iv),
		"additionalData": bytesToJS(recordAD(store, key)),
	}
	p, err := s.Call("encrypt", alg, storageKey, bytesToJS(plaintext))
	if err != nil {
		return nil, err
	}
	ct, err := Await(p)
	if err != nil {
		return nil, fmt.Errorf("seal %s/%s: %w", store, key, err)
	}
	ctb, err := bytesFromJS(ct)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+ivSize+len(ctb))
	out = append(out, sealVersion)
	out = append(out, iv...)
	return append(out, ctb...), nil
}

// unseal opens a record sealed by seal for the same store/key.
func unseal(storageKey safejs.Value, store, key string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+ivSize+tagSize {
		return nil, fmt.Errorf("%w: %s/%s is too short (%d bytes)", errUnseal, store, key, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: %s/%s has unknown format version %d", errUnseal, store, key, sealed[0])
	}
	s, err := subtle()
	if err != nil {
		return nil, err
	}
	alg := map[string]any{
		"name":           "AES-GCM",
		"iv":             bytesToJS(sealed[1 : 1+ivSize]),
		"additionalData": bytesToJS(recordAD(store, key)),
	}
	p, err := s.Call("decrypt", alg, storageKey, bytesToJS(sealed[1+ivSize:]))
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
