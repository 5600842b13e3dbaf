package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/parley-im/parley/client/internal/statesync"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/syncseal"
)

// State-sync keys and repair (PROTOCOL.md §14.5): snapshot requests and
// answers, the primary's key rotation on revocation, installing a key the
// primary sent, and the changes held until their key arrives.

// ResyncState asks our other devices for a snapshot of the synced state
// and merges it when it arrives (a device that lost or damaged its state,
// or missed a key, repairs itself this way; nothing is ever reset). With
// fromDevice set only that device answers; otherwise all do. The primary
// also re-sends the current sync key.
func (e *Engine) ResyncState(ctx context.Context, fromDevice string) error {
	var from identity.DeviceID
	if fromDevice != "" {
		id, err := identity.ParseDeviceID(fromDevice)
		if err != nil {
			return newError(ErrUnknownDevice.Code, err, "not a device id: %q", fromDevice)
		}
		from = id
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return ErrNoAccount
	}
	if e.acct.Revoked {
		return ErrRevoked
	}
	var b storage.Batch
	if err := e.queueOwnLocked(ctx, &b, kindSyncRequest, statesync.MarshalRequest(from)); err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.kickLocked()
	return nil
}

// rotateSyncKeyLocked makes a new sync key (epoch + 1), adds it and the
// account record to b, and queues it to our other devices (the list has
// already lost the revoked device, so it is not a target). The caller
// installs the returned account record after committing b. Primary only.
func (e *Engine) rotateSyncKeyLocked(ctx context.Context, b *storage.Batch) (*accountRecord, error) {
	if !e.acct.Primary {
		return nil, ErrNotPrimary
	}
	ring, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return nil, err
	}
	next := statesync.Key{Epoch: cur.Epoch + 1}
	for _, k := range ring.Keys {
		next.Epoch = max(next.Epoch, k.Epoch+1)
	}
	if _, err := io.ReadFull(e.cfg.Rand, next.Key[:]); err != nil {
		return nil, err
	}
	ring.Add(next.Epoch, next.Key, next.Key)
	b.Put(bSync, keySyncKeys, ring.Marshal())
	a := *e.acct
	a.SyncKey = next.Key
	b.Put(bSelf, keyAccount, a.marshal())
	if err := e.queueOwnLocked(ctx, b, kindSyncKey, statesync.MarshalKey(next)); err != nil {
		return nil, err
	}
	e.log.Info("state-sync key rotated", "epoch", next.Epoch)
	return &a, nil
}

// answerSnapshotLocked queues the full state, with clocks, in as many
// parts as it takes (the primary first re-sends the current sync key, so
// a device that missed a rotation can read the snapshot).
func (e *Engine) answerSnapshotLocked(ctx context.Context, b *storage.Batch) error {
	_, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return err
	}
	if e.acct.Primary {
		if err := e.queueOwnLocked(ctx, b, kindSyncKey, statesync.MarshalKey(*cur)); err != nil {
			return err
		}
	}
	var parts [][]statesync.Entry
	var part []statesync.Entry
	size := 0
	err = e.cfg.Store.Scan(ctx, bSync, syncEntryPfx, storage.ScanOptions{}, func(k string, v []byte) error {
		en, err := statesync.ParseEntryRecord(k[len(syncEntryPfx):], v)
		if err != nil {
			return nil // corrupt here; another device's snapshot has it
		}
		n := en.Size()
		if len(part) > 0 && (size+n > statesync.MaxPartPlain || len(part) == statesync.MaxEntries) {
			parts, part, size = append(parts, part), nil, 0
		}
		part = append(part, *en)
		size += n
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	parts = append(parts, part) // at least one part, even when empty
	if len(parts) > statesync.MaxParts {
		return newError(CodeSyncTooLarge, nil, "the synced state is too large to snapshot")
	}
	for i, entries := range parts {
		plain := (&statesync.Batch{Part: uint16(i), Parts: uint16(len(parts)), Entries: entries}).Marshal()
		sealed, err := syncseal.Seal(e.cfg.Rand, kindSyncSnapshot, cur.Epoch, cur.Key, plain)
		if err != nil {
			return err
		}
		if err := e.queueOwnLocked(ctx, b, kindSyncSnapshot, sealed); err != nil {
			return err
		}
	}
	return nil
}

// receiveSyncKeyLocked installs a sync key sent by the primary.
func (e *Engine) receiveSyncKeyLocked(ctx context.Context, b *storage.Batch, body []byte, dev identity.DeviceID, skip func(Code, string, ...any) ([]Event, error)) ([]Event, error) {
	own, err := e.listLocked(ctx, e.acct.Handle, false)
	if err != nil {
		return nil, err
	}
	if en := own.Find(dev); en == nil || !en.Primary {
		return skip(CodeSyncKeyRefused, "a state-sync key from device %s, which is not the account's primary, is ignored", dev)
	}
	k, err := statesync.ParseKey(body)
	if err != nil {
		return skip(CodeSyncMalformed, "%v", err)
	}
	ring, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return nil, err
	}
	newer := k.Epoch > cur.Epoch && k.Key != cur.Key
	current := cur.Key
	if newer {
		current = k.Key
	}
	ring.Add(k.Epoch, k.Key, current)
	b.Put(bSync, keySyncKeys, ring.Marshal())
	if newer {
		a := *e.acct
		a.SyncKey = k.Key
		b.Put(bSelf, keyAccount, a.marshal())
		// Installed now, not after the caller's commit: if that commit
		// fails the envelope comes again and installs the same key.
		e.acct = &a
		e.log.Info("state-sync key installed", "epoch", k.Epoch)
	}
	return e.releasePendingLocked(ctx, b, k)
}

// holdSyncLocked keeps a change sealed under a key we do not have yet (it
// overtook the key, or this device missed a rotation) and, the first time
// per key, asks for a snapshot, which makes the primary re-send the key.
func (e *Engine) holdSyncLocked(ctx context.Context, b *storage.Batch, p *payload, s *syncseal.Sealed) ([]Event, error) {
	n, first := 0, true
	idHex := hex.EncodeToString(s.KeyID[:])
	err := e.cfg.Store.Scan(ctx, bSync, syncPendingPfx, storage.ScanOptions{}, func(k string, _ []byte) error {
		n++
		if strings.HasPrefix(k, syncPendingPfx+idHex+"/") {
			first = false
		}
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	ev := []Event{{Type: "error", Code: CodeSyncKeyUnknown, Text: fmt.Sprintf("a state-sync change under key epoch %d is waiting for its key", s.Epoch)}}
	if n >= maxSyncPending {
		ev[0].Text = "a state-sync change under an unknown key was dropped (too many waiting); resync to recover"
		return ev, nil
	}
	b.Put(bSync, syncPendingPfx+idHex+"/"+hex.EncodeToString(p.ID[:]), p.Body)
	if first {
		if err := e.queueOwnLocked(ctx, b, kindSyncRequest, statesync.MarshalRequest(identity.DeviceID{})); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// releasePendingLocked applies the held changes that k opens.
func (e *Engine) releasePendingLocked(ctx context.Context, b *storage.Batch, k statesync.Key) ([]Event, error) {
	id := syncseal.KeyID(k.Key)
	prefix := syncPendingPfx + hex.EncodeToString(id[:]) + "/"
	var held []struct {
		key  string
		body []byte
	}
	err := e.cfg.Store.Scan(ctx, bSync, prefix, storage.ScanOptions{}, func(key string, v []byte) error {
		held = append(held, struct {
			key  string
			body []byte
		}{key, v})
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	// One merge for all of them: within a batch, a later merge would not
	// see the entries and clock an earlier one wrote.
	var entries []statesync.Entry
	for _, h := range held {
		b.Delete(bSync, h.key)
		s, err := syncseal.Parse(h.body)
		if err != nil {
			continue
		}
		plain, err := s.Open(k.Key)
		if err != nil {
			continue
		}
		batch, err := statesync.ParseBatch(plain)
		if err != nil {
			continue
		}
		entries = append(entries, batch.Entries...)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	return e.mergeSyncLocked(ctx, b, entries)
}
