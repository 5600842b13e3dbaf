//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/journal"
)

// IndexedDB layout (docs/PROTOCOL.md 13). The database is versioned so
// older profiles upgrade in place instead of starting over.
//
// Version 1 (foundation): keys/"storage" is a non-extractable AES-GCM key,
// records/"device/identity" the identity sealed directly under it.
//
// Version 2: records are sealed under a data key that is stored only
// wrapped (keys/"datakey"); with no lock, the wrapping key is the
// non-extractable device key keys/"device". Engine records live in
// `records` under array keys [bucket, Uint8Array(key)], so IndexedDB orders
// them by bucket and then by the key's bytes, the order storage.Store
// promises. The structural upgrade 1→2 adds nothing; the data migration
// (re-sealing the v1 identity) needs WebCrypto, which cannot run inside
// an upgrade transaction, so migrateV1 does it right after opening, in one
// read-write transaction, and is repeated if the tab dies before it.
const (
	dbName    = "parley"
	dbVersion = 2

	storeKeys    = "keys"
	storeRecords = "records"

	// In storeKeys.
	keyV1Storage = "storage" // v1 only, removed by the migration
	keyDevice    = "device"  // device wrapping key, present while no lock is set
	keyDataKey   = "datakey" // the wrapped data key record (dataKeyRecord)
	keySyncMark  = "sync"    // a counter idbStore.Sync writes (PROTOCOL.md 13.6)

	// The v1 identity record's string key in storeRecords.
	keyV1Identity = "device/identity"

	// Buckets the wasm binding keeps for itself inside the engine's
	// keyspace. Engine buckets never start with "_".
	bucketDevice = "_device" // "identity": identity.Device.MarshalBinary()
	bucketMeta   = "_meta"   // "canary", "idle-lock", "root", "names"

	recIdentity = "identity"
	recCanary   = "canary"
	recIdleLock = "idle-lock"
	recRoot     = "root"  // the sealed root over the security records (client/storage/sealroot)
	recNames    = "names" // the naming key of client/storage/keyname (names.go)
)

// canaryLen is the canary's random part. A canary of canaryLen bytes is
// from before sealed roots; one with a trailing canaryHasRoot byte says
// this profile keeps a root (PROTOCOL.md 13.7), so a missing root is a
// deletion, not an old profile. canaryHasNames says that, and also that
// its records are renamed under the naming key (names.go, PROTOCOL.md
// 13.9), so a missing naming key is a deletion.
const (
	canaryLen      = 16
	canaryHasRoot  = 1
	canaryHasNames = 2
)

// openDB opens (and on first use creates or upgrades) the database name.
func openDB(ctx context.Context, name string) (*idb.Database, error) {
	req, err := idb.Global().Open(ctx, name, dbVersion, func(db *idb.Database, oldVersion, newVersion uint) error {
		// Upgrades are step by step, so a profile at any older version
		// reaches the current one without losing records.
		if oldVersion < 1 {
			if _, err := db.CreateObjectStore(storeKeys, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
			if _, err := db.CreateObjectStore(storeRecords, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
		}
		// 1→2: same object stores; see migrateV1 for the data step.
		return nil
	})
	if err != nil {
		return nil, err
	}
	return req.Await(ctx)
}

// recordKey is the IndexedDB key of an engine record.
func recordKey(bucket, key string) js.Value {
	return js.ValueOf([]any{bucket, safejs.Unsafe(bytesToJS([]byte(key)))})
}

// snapshot is everything start-up needs, read in one read-only transaction
// so it is consistent. Absent entries are undefined. recs holds the sealed
// records of startupRefs, opened once the data key is unwrapped, and the
// number of journal records.
type snapshot struct {
	v1Key, v1Identity  safejs.Value
	deviceKey, dataKey safejs.Value
	recs               *sealedRecords
	records            uint // number of entries in storeRecords
}

// canaryPresent reports whether the canary record (startupRefs[0]) exists.
func (s *snapshot) canaryPresent() bool { return !errors.Is(s.recs.errs[0], storage.ErrNotFound) }

func readSnapshot(ctx context.Context, db *idb.Database) (*snapshot, error) {
	txn, err := db.Transaction(idb.TransactionReadOnly, storeKeys, storeRecords)
	if err != nil {
		return nil, err
	}
	keys, err := txn.ObjectStore(storeKeys)
	if err != nil {
		return nil, err
	}
	recs, err := txn.ObjectStore(storeRecords)
	if err != nil {
		return nil, err
	}
	var reqs []*idb.Request
	get := func(st *idb.ObjectStore, k js.Value) {
		if err != nil {
			return
		}
		var r *idb.Request
		r, err = st.Get(k)
		reqs = append(reqs, r)
	}
	get(keys, js.ValueOf(keyV1Storage))
	get(recs, js.ValueOf(keyV1Identity))
	get(keys, js.ValueOf(keyDevice))
	get(keys, js.ValueOf(keyDataKey))
	if err != nil {
		return nil, err
	}
	reads, err := issueReads(recs, startupRefs, journal.Bucket)
	if err != nil {
		return nil, err
	}
	count, err := recs.Count()
	if err != nil {
		return nil, err
	}
	// One await for the whole transaction (see recordReads).
	if err := txn.Await(ctx); err != nil {
		return nil, err
	}
	vals := make([]safejs.Value, len(reqs))
	for i, r := range reqs {
		v, err := r.Result()
		if err != nil {
			return nil, err
		}
		vals[i] = safejs.Safe(v)
	}
	sealed, err := reads.results()
	if err != nil {
		return nil, err
	}
	n, err := count.Result()
	if err != nil {
		return nil, err
	}
	return &snapshot{
		v1Key: vals[0], v1Identity: vals[1],
		deviceKey: vals[2], dataKey: vals[3],
		recs:    sealed,
		records: n,
	}, nil
}

// errExists means another context created the entry first.
var errExists = errors.New("record already exists")

// keyWrite is one change to storeKeys in a write transaction.
type keyWrite struct {
	name  string
	value safejs.Value // undefined means delete
	add   bool         // add instead of put: fail if present
}

// recWrite is one change to storeRecords.
type recWrite struct {
	key   js.Value
	value safejs.Value // undefined means delete
}

// writeTxn applies key and record changes in one read-write transaction.
// All WebCrypto work must be done before: a transaction with nothing
// pending auto-commits.
func writeTxn(ctx context.Context, db *idb.Database, kw []keyWrite, rw []recWrite) error {
	return writeTxnWith(ctx, db, idb.DurabilityDefault, kw, rw)
}

// writeTxnWith is writeTxn with the given durability.
func writeTxnWith(ctx context.Context, db *idb.Database, d idb.TransactionDurability, kw []keyWrite, rw []recWrite) error {
	txn, err := db.TransactionWithOptions(idb.TransactionOptions{Mode: idb.TransactionReadWrite, Durability: d}, storeKeys, storeRecords)
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
	for _, w := range kw {
		k := js.ValueOf(w.name)
		switch {
		case w.value.IsUndefined():
			_, err = keys.Delete(k)
		case w.add:
			_, err = keys.AddKey(k, safejs.Unsafe(w.value))
		default:
			_, err = keys.PutKey(k, safejs.Unsafe(w.value))
		}
		if err != nil {
			_ = txn.Abort()
			return err
		}
	}
	for _, w := range rw {
		if w.value.IsUndefined() {
			_, err = recs.Delete(w.key)
		} else {
			_, err = recs.PutKey(w.key, safejs.Unsafe(w.value))
		}
		if err != nil {
			_ = txn.Abort()
			return err
		}
	}
	if err := txn.Await(ctx); err != nil {
		if errors.Is(err, idb.NewDOMException("ConstraintError")) {
			return errExists
		}
		return fmt.Errorf("indexeddb write: %w", err)
	}
	return nil
}
