package client

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/client/internal/statesync"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/syncseal"
)

// State sync (PROTOCOL.md §14.5) keeps what the user set on one device —
// contact names, read markers, archived and muted chats, settings — the
// same on all devices of the account.
//
// The state is a map of keys to values; each entry carries the hybrid
// logical clock of the write that set it, and the entry with the greater
// clock wins everywhere (last-writer-wins). Merging is commutative,
// associative and idempotent, so devices converge whatever order, how
// often, and how late the changes reach them; there is no shared hash to
// disagree about and nothing that can only be cured by unlinking.
//
// Every change travels as a message to the account's other devices
// through the ordinary fan-out (so it waits in the mailbox of a device
// that is off), sealed a second time under the account's state-sync key.
// The primary rotates that key when it revokes a device, so changes made
// afterwards are unreadable with the removed device's keys. A device that
// lost its state, or missed a key, asks the others for a snapshot: the
// full map with its clocks, merged like any other change.

// Payload kinds of state sync are declared in payload.go: kindSyncMutation,
// kindSyncSnapshot, kindSyncRequest and kindSyncKey.

// Storage: bucket bSync holds
//
//	e/<key>                   → statesync.MarshalEntryRecord (clock ‖ value)
//	hlc                       → statesync.MarshalClockRecord: the device's clock (last timestamp issued or seen)
//	keys                      → statesync.Keyring (the current and older sync keys, by epoch)
//	p/<key id hex>/<msg hex>  → a sealed change under a key not yet received
const (
	bSync          = "sync"
	syncEntryPfx   = "e/"
	syncPendingPfx = "p/"
	keySyncClock   = "hlc"
	keySyncKeys    = "keys"
)

// Limits.
const (
	// MaxSettingNameLen and MaxSettingValueLen bound one setting.
	MaxSettingNameLen  = statesync.MaxSettingNameLen
	MaxSettingValueLen = statesync.MaxSettingValueLen
	// maxSyncPending bounds changes kept while waiting for their key.
	maxSyncPending = 256
)

var settingNameRule = nameRule{min: 1, max: MaxSettingNameLen, upper: true}

// syncSchema is the engine's rules for the names inside state keys: the
// merge checks incoming entries with the rules the setters apply. A chat
// id also must not hold the storage key separator.
var syncSchema = statesync.Schema{
	IsHandle:      handleRule.MatchString,
	IsSettingName: settingNameRule.MatchString,
	IsChat: func(c string) bool {
		return c != "" && len(c) <= statesync.MaxChatLen && utf8.ValidString(c) && !strings.ContainsAny(c, sep+"\x00")
	},
}

// keyringLocked loads the keyring; the account's current key is always in
// it (epoch 0 until this device learns better, e.g. a companion linked
// after a rotation learns the epoch from the first header under its key).
func (e *Engine) keyringLocked(ctx context.Context) (*statesync.Keyring, *statesync.Key, error) {
	k := &statesync.Keyring{}
	v, err := e.cfg.Store.Get(ctx, bSync, keySyncKeys)
	switch {
	case err == nil:
		if k, err = statesync.ParseKeyring(v); err != nil {
			// Not fatal: the current key is in the account record, and
			// older ones only matter for changes in flight.
			e.log.Warn("sync keyring record is corrupt; keeping only the current key", "err", err)
			k = &statesync.Keyring{}
		}
	case !errors.Is(err, storage.ErrNotFound):
		return nil, nil, storageErr(err)
	}
	if k.Find(e.acct.SyncKey) == nil {
		k.Add(0, e.acct.SyncKey, e.acct.SyncKey)
	}
	return k, k.Find(e.acct.SyncKey), nil
}

func (e *Engine) clockLocked(ctx context.Context) (statesync.Clock, error) {
	v, err := e.cfg.Store.Get(ctx, bSync, keySyncClock)
	if errors.Is(err, storage.ErrNotFound) {
		return statesync.Clock{Device: e.dev.ID}, nil
	}
	if err != nil {
		return statesync.Clock{}, storageErr(err)
	}
	c, err := statesync.ParseClockRecord(v)
	if err != nil {
		// A lost clock only costs ordering against our own past writes
		// for as long as the wall clock has not passed them; the entries
		// themselves still carry their clocks.
		e.log.Warn("sync clock record is corrupt; restarting it from the wall clock")
		return statesync.Clock{Device: e.dev.ID}, nil
	}
	return c, nil
}

func putClock(b *storage.Batch, c statesync.Clock) {
	b.Put(bSync, keySyncClock, statesync.MarshalClockRecord(c))
}

func (e *Engine) nowMS() uint64 { return uint64(e.cfg.Now().UnixMilli()) }

// loadSyncEntry returns the stored entry at key, nil if there is none or
// it is corrupt (a corrupt entry loses to any incoming one: that is how a
// snapshot repairs it).
func (e *Engine) loadSyncEntry(ctx context.Context, key string) (*statesync.Entry, error) {
	v, err := e.cfg.Store.Get(ctx, bSync, syncEntryPfx+key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	en, err := statesync.ParseEntryRecord(key, v)
	if err != nil {
		e.log.Warn("corrupt sync entry; it will be replaced by the next change or snapshot", "key", key)
		return nil, nil
	}
	return en, nil
}

// queueOwnLocked adds a payload for our own other devices to the outbox
// inside b.
func (e *Engine) queueOwnLocked(ctx context.Context, b *storage.Batch, kind uint8, body []byte) error {
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return err
	}
	p := &payload{Kind: kind, ID: id, SentAt: e.nextSentAtLocked(), Body: body}
	seq, err := e.nextOutboxSeqLocked(ctx)
	if err != nil {
		return err
	}
	b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal()}).marshal())
	return nil
}

// setSyncedLocked makes a local change: a new clock, the entry stored, and
// the change sealed under the current sync key and queued to our other
// devices, all in b.
func (e *Engine) setSyncedLocked(ctx context.Context, b *storage.Batch, key string, value []byte) error {
	if e.acct == nil {
		return ErrNoAccount
	}
	if e.acct.Revoked {
		return ErrRevoked
	}
	if err := syncSchema.Check(key, value); err != nil {
		return newError(CodeBadState, err, "%v", err)
	}
	clock, err := e.clockLocked(ctx)
	if err != nil {
		return err
	}
	clock = clock.Tick(e.nowMS(), e.dev.ID)
	en := statesync.Entry{Key: key, Clock: clock, Value: value}
	b.Put(bSync, syncEntryPfx+key, statesync.MarshalEntryRecord(&en))
	putClock(b, clock)
	_, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return err
	}
	plain := (&statesync.Batch{Parts: 1, Entries: []statesync.Entry{en}}).Marshal()
	sealed, err := syncseal.Seal(e.cfg.Rand, kindSyncMutation, cur.Epoch, cur.Key, plain)
	if err != nil {
		return err
	}
	return e.queueOwnLocked(ctx, b, kindSyncMutation, sealed)
}

// setSynced is setSyncedLocked in its own batch, for the public setters.
func (e *Engine) setSynced(ctx context.Context, key string, value []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b storage.Batch
	if err := e.setSyncedLocked(ctx, &b, key, value); err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	e.kickLocked()
	go e.emit(Event{Type: "sync"})
	return nil
}

// SetContactName sets the name this account shows for a contact on all of
// its devices; an empty name removes it.
func (e *Engine) SetContactName(ctx context.Context, handle, name string) error {
	if !handleRule.MatchString(handle) {
		return ErrBadHandle
	}
	if len(name) > maxNameLen || !utf8.ValidString(name) {
		return newError(CodeBadName, nil, "a contact name is 0 to %d bytes of UTF-8", maxNameLen)
	}
	return e.setSynced(ctx, statesync.NSContact+handle, []byte(name))
}

// SetChatArchived archives or unarchives a chat on all devices.
func (e *Engine) SetChatArchived(ctx context.Context, chat string, archived bool) error {
	return e.setSynced(ctx, statesync.NSArchived+chat, []byte{boolByte(archived)})
}

// SetChatMuted mutes or unmutes a chat on all devices.
func (e *Engine) SetChatMuted(ctx context.Context, chat string, muted bool) error {
	return e.setSynced(ctx, statesync.NSMuted+chat, []byte{boolByte(muted)})
}

// SetSetting sets a synced setting (name: 1 to 64 of A-Z a-z 0-9 . _ -;
// value: up to MaxSettingValueLen bytes of UTF-8; empty removes it).
func (e *Engine) SetSetting(ctx context.Context, name, value string) error {
	if !settingNameRule.MatchString(name) {
		return newError(CodeBadSetting, nil, "a setting name is 1 to %d of A-Z a-z 0-9 . _ -", MaxSettingNameLen)
	}
	if len(value) > MaxSettingValueLen || !utf8.ValidString(value) {
		return newError(CodeBadSetting, nil, "a setting value is up to %d bytes of UTF-8", MaxSettingValueLen)
	}
	return e.setSynced(ctx, statesync.NSSetting+name, []byte(value))
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// markReadSyncedLocked records chat's read marker (MarkRead): read up to
// now, or up to the newest message if a sender's clock runs ahead.
func (e *Engine) markReadSyncedLocked(ctx context.Context, b *storage.Batch, c *Chat) error {
	at := max(e.nowMS(), uint64(max(c.LastAt, 0)))
	v := binary.BigEndian.AppendUint64(nil, at)
	if e.acct.Revoked || syncSchema.Check(statesync.NSRead+c.ID, v) != nil {
		return nil // reading stays possible; there is just nothing to sync
	}
	return e.setSyncedLocked(ctx, b, statesync.NSRead+c.ID, v)
}

// SyncedState is the synced state as the UI shows it.
type SyncedState struct {
	Contacts    map[string]string `json:"contacts"`    // handle → display name
	ReadMarkers map[string]int64  `json:"readMarkers"` // chat → read up to (unix ms)
	Archived    map[string]bool   `json:"archived"`    // archived chats
	Muted       map[string]bool   `json:"muted"`       // muted chats
	Settings    map[string]string `json:"settings"`
	// Epoch is the state-sync key epoch this device seals with; it grows
	// by one each time the primary revokes a device.
	Epoch uint32 `json:"epoch"`
	// Corrupt counts stored entries that failed to decode; they are
	// skipped, and ResyncState repairs them from another device.
	Corrupt int `json:"corrupt"`
}

// SyncedState returns the synced state.
func (e *Engine) SyncedState(ctx context.Context) (*SyncedState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return nil, ErrNoAccount
	}
	s := &SyncedState{Contacts: map[string]string{}, ReadMarkers: map[string]int64{}, Archived: map[string]bool{}, Muted: map[string]bool{}, Settings: map[string]string{}}
	err := e.cfg.Store.Scan(ctx, bSync, syncEntryPfx, storage.ScanOptions{}, func(k string, v []byte) error {
		key := k[len(syncEntryPfx):]
		en, err := statesync.ParseEntryRecord(key, v)
		if err != nil || syncSchema.Check(key, en.Value) != nil {
			s.Corrupt++
			return nil
		}
		switch {
		case strings.HasPrefix(key, statesync.NSContact):
			if len(en.Value) > 0 {
				s.Contacts[key[len(statesync.NSContact):]] = string(en.Value)
			}
		case strings.HasPrefix(key, statesync.NSRead):
			s.ReadMarkers[key[len(statesync.NSRead):]] = int64(binary.BigEndian.Uint64(en.Value))
		case strings.HasPrefix(key, statesync.NSArchived):
			if en.Value[0] == 1 {
				s.Archived[key[len(statesync.NSArchived):]] = true
			}
		case strings.HasPrefix(key, statesync.NSMuted):
			if en.Value[0] == 1 {
				s.Muted[key[len(statesync.NSMuted):]] = true
			}
		case strings.HasPrefix(key, statesync.NSSetting):
			if len(en.Value) > 0 {
				s.Settings[key[len(statesync.NSSetting):]] = string(en.Value)
			}
		}
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	_, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return nil, err
	}
	s.Epoch = cur.Epoch
	return s, nil
}
