//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"
)

// IndexedDB layout (docs/PROTOCOL.md, "Keys at rest"). The database is
// versioned so later schemas upgrade in place instead of starting over.
const (
	dbName    = "parley"
	dbVersion = 1
	// storeKeys holds the non-extractable WebCrypto storage key, as a
	// CryptoKey object (structured clone), never as bytes.
	storeKeys = "keys"
	// storeRecords holds sealed records: Uint8Array(seal(...)).
	storeRecords = "records"

	keyStorage  = "storage"
	keyIdentity = "device/identity"
)

// openDB opens (and on first use creates or upgrades) the database.
func openDB(ctx context.Context) (*idb.Database, error) {
	req, err := idb.Global().Open(ctx, dbName, dbVersion, func(db *idb.Database, oldVersion, newVersion uint) error {
		// Upgrades are additive and step by step, so a profile at any
		// older version reaches the current one without losing records.
		if oldVersion < 1 {
			if _, err := db.CreateObjectStore(storeKeys, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
			if _, err := db.CreateObjectStore(storeRecords, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return req.Await(ctx)
}

// getBoth reads the storage key and one sealed record in a single
// read-only transaction, so they are seen in a consistent state.
// A missing entry is returned as undefined.
func getBoth(ctx context.Context, db *idb.Database, recordKey string) (storageKey, record safejs.Value, err error) {
	txn, err := db.Transaction(idb.TransactionReadOnly, storeKeys, storeRecords)
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	keys, err := txn.ObjectStore(storeKeys)
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	recs, err := txn.ObjectStore(storeRecords)
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	kreq, err := keys.Get(js.ValueOf(keyStorage))
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	rreq, err := recs.Get(js.ValueOf(recordKey))
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	k, err := kreq.Await(ctx)
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	r, err := rreq.Await(ctx)
	if err != nil {
		return safejs.Undefined(), safejs.Undefined(), err
	}
	return safejs.Safe(k), safejs.Safe(r), nil
}

// errExists means another tab created the entry first.
var errExists = errors.New("record already exists")

// addBoth stores a new storage key and its first sealed record in one
// read-write transaction with add (not put): if another tab of the same
// profile got there first, nothing is overwritten and errExists is
// returned. All WebCrypto work is done before the transaction opens,
// because a transaction with nothing pending auto-commits.
func addBoth(ctx context.Context, db *idb.Database, storageKey safejs.Value, recordKey string, sealed []byte) error {
	txn, err := db.Transaction(idb.TransactionReadWrite, storeKeys, storeRecords)
	if err != nil {
		return err
	}
	keys, err := txn.ObjectStore(storeKeys)
	if err != nil {
		return err
	}
	recs, err := txn.ObjectStore(storeRecords)
	if err != nil {
		return err
	}
	if _, err := keys.AddKey(js.ValueOf(keyStorage), safejs.Unsafe(storageKey)); err != nil {
		return err
	}
	if _, err := recs.AddKey(js.ValueOf(recordKey), safejs.Unsafe(bytesToJS(sealed))); err != nil {
		return err
	}
	if err := txn.Await(ctx); err != nil {
		if errors.Is(err, idb.NewDOMException("ConstraintError")) {
			return errExists
		}
		return fmt.Errorf("store new identity: %w", err)
	}
	return nil
}
