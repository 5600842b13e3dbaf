//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"errors"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/crypto/identity"
)

// Error codes the page and the API report for storage trouble. Each comes
// with guidance in the UI; none of them ever deletes anything.
const (
	codeStorageUnavailable = "storage_unavailable"
	codeStorageCorrupt     = "storage_corrupt"
	codeStorageKeyMissing  = "storage_key_missing"
	codeIdentityMissing    = "identity_missing"
)

// loadOrCreateDevice returns this browser's device identity. On first run
// it makes a storage key and an identity and stores both; afterwards it
// unseals the stored identity. Any inconsistency (a key without its record,
// a record without its key, a record that fails to open) is an error state:
// replacing the identity silently would turn this browser into a stranger
// to its own account, which is exactly the failure users of other web
// messengers suffer.
func loadOrCreateDevice(ctx context.Context) (*identity.Device, error) {
	db, err := openDB(ctx)
	if err != nil {
		return nil, newAPIError(codeStorageUnavailable, "IndexedDB could not be opened: %v", err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		key, rec, err := getBoth(ctx, db, keyIdentity)
		if err != nil {
			return nil, newAPIError(codeStorageUnavailable, "IndexedDB could not be read: %v", err)
		}
		switch haveKey, haveRec := present(key), present(rec); {
		case haveKey && haveRec:
			return openDevice(key, rec)
		case haveKey:
			return nil, newAPIError(codeIdentityMissing, "this browser's device identity record is missing while its storage key is present")
		case haveRec:
			return nil, newAPIError(codeStorageKeyMissing, "this browser's storage key is missing, so its sealed records cannot be opened")
		}
		dev, err := createDevice(ctx, db)
		if errors.Is(err, errExists) {
			continue // another tab created it first: load theirs
		}
		return dev, err
	}
	return nil, newAPIError(codeStorageUnavailable, "IndexedDB changed while the identity was being created")
}

func present(v safejs.Value) bool { return !v.IsUndefined() && !v.IsNull() }

func openDevice(key, rec safejs.Value) (*identity.Device, error) {
	sealed, err := bytesFromJS(rec)
	if err != nil {
		return nil, newAPIError(codeStorageCorrupt, "the device identity record is not in Parley's format")
	}
	plain, err := unseal(key, storeRecords, keyIdentity, sealed)
	if err != nil {
		return nil, newAPIError(codeStorageCorrupt, "the device identity record is damaged or was altered: it failed its integrity check")
	}
	dev, err := identity.UnmarshalDevice(plain)
	clear(plain)
	if err != nil {
		return nil, newAPIError(codeStorageCorrupt, "the device identity record opened but could not be decoded: %v", err)
	}
	return dev, nil
}

// createDevice makes the storage key and a fresh identity, seals the
// identity (WebCrypto work first, then one transaction) and stores both.
func createDevice(ctx context.Context, db *idb.Database) (*identity.Device, error) {
	key, err := newStorageKey()
	if err != nil {
		return nil, newAPIError(codeStorageUnavailable, "WebCrypto could not make a storage key: %v", err)
	}
	dev, err := identity.NewDevice(rand.Reader)
	if err != nil {
		return nil, err
	}
	plain, err := dev.MarshalBinary()
	if err != nil {
		return nil, err
	}
	sealed, err := seal(key, storeRecords, keyIdentity, plain)
	clear(plain)
	if err != nil {
		return nil, err
	}
	if err := addBoth(ctx, db, key, keyIdentity, sealed); err != nil {
		if errors.Is(err, errExists) {
			return nil, err
		}
		return nil, newAPIError(codeStorageUnavailable, "%v", err)
	}
	return dev, nil
}
