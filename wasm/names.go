//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"errors"

	engine "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/keyname"
)

// openNames puts the naming layer (client/storage/keyname, PROTOCOL.md
// 13.9) over st, the sealed IndexedDB store, and returns it with its
// naming key (the caller zeroes it when the engine stops) and the canary
// as it is to be once the profile keeps a root.
//
// The naming key is the sealed record _meta/names. The canary's last byte
// is the separate mark that the profile's records are renamed
// (canaryHasNames): a profile without it (from before the layer, or
// stopped while renaming) gets a key if it has none, has its records
// renamed (resumable, keyname.Store.Rename) and is then marked. This runs
// before the journal is applied and before the sealed root is checked:
// both read and write through the layer, and a record still under its
// clear key would read as corrupt there.
//
// It fails closed: a marked profile without its naming key is
// storage_corrupt, never a fresh key (which would make every named record
// unreachable, pinned keys included). An unmarked profile without a key
// has its sealed root checked below the layer first: with an older,
// unmarked canary brought back as well, the named records do not match
// it, and start-up stops with storage_rolled_back (PROTOCOL.md 13.7)
// before anything is written.
func openNames(ctx context.Context, st storage.Store, canary []byte) (*keyname.Store, *[keyname.KeySize]byte, []byte, error) {
	marked := len(canary) == canaryLen+1 && canary[canaryLen] == canaryHasNames
	key := new([keyname.KeySize]byte)
	raw, err := st.Get(ctx, bucketMeta, recNames)
	switch {
	case errors.Is(err, storage.ErrNotFound) && marked:
		return nil, nil, nil, newAPIError(engine.CodeStorageCorrupt, "the naming key record %s/%s is missing while this profile's records are named by it (PROTOCOL.md 13.9); nothing has been changed", bucketMeta, recNames)
	case errors.Is(err, storage.ErrNotFound):
		// A profile from before the layer keeps its engine records
		// under their clear keys, so its root, checked here below the
		// layer and before anything is written, matches; one whose
		// named records were left behind by a deleted key does not.
		if len(canary) == canaryLen+1 {
			if _, err := openRoot(ctx, st, canary, nil); err != nil {
				return nil, nil, nil, err
			}
		}
		if _, err := rand.Read(key[:]); err != nil {
			return nil, nil, nil, err
		}
		var b storage.Batch
		b.Put(bucketMeta, recNames, key[:])
		if err := st.Commit(ctx, &b); err != nil {
			return nil, nil, nil, newAPIError(engine.CodeStorageUnavailable, "%v", err)
		}
	case errors.Is(err, storage.ErrCorrupt):
		return nil, nil, nil, newAPIError(engine.CodeStorageCorrupt, "%v", err)
	case err != nil:
		return nil, nil, nil, newAPIError(engine.CodeStorageUnavailable, "%v", err)
	case len(raw) != keyname.KeySize:
		clear(raw)
		return nil, nil, nil, newAPIError(engine.CodeStorageCorrupt, "the naming key record %s/%s has %d bytes, want %d", bucketMeta, recNames, len(raw), keyname.KeySize)
	default:
		copy(key[:], raw)
		clear(raw)
	}
	names := keyname.New(st, key, engine.KeyNameRules())
	done := append(append([]byte(nil), canary[:min(len(canary), canaryLen)]...), canaryHasNames)
	if marked {
		return names, key, done, nil
	}
	fail := func(err error) (*keyname.Store, *[keyname.KeySize]byte, []byte, error) {
		clear(key[:])
		if errors.Is(err, storage.ErrCorrupt) {
			return nil, nil, nil, newAPIError(engine.CodeStorageCorrupt, "%v", err)
		}
		return nil, nil, nil, newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
	if _, err := names.Rename(ctx); err != nil {
		return fail(err)
	}
	// A profile from before roots is marked by the batch that makes its
	// root (openRoot), so that it still reads as one without a root if it
	// stops in between.
	if len(canary) == canaryLen+1 {
		var b storage.Batch
		b.Put(bucketMeta, recCanary, done)
		if err := st.Commit(ctx, &b); err != nil {
			return fail(err)
		}
	}
	return names, key, done, nil
}
