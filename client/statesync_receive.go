package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/parley-im/parley/client/internal/statesync"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/syncseal"
)

// Receiving state sync (PROTOCOL.md §14.5): a change or snapshot part is
// opened under the key its header names, merged by last-writer-wins, and
// a read marker applied to the chat's unread count.

// receiveSyncLocked handles the state-sync kinds. Nothing in here is
// fatal: a change that cannot be read or applied is reported (an error
// event) and skipped, and the envelope is still acknowledged; only a
// storage failure returns an error (the envelope is then delivered again).
func (e *Engine) receiveSyncLocked(ctx context.Context, b *storage.Batch, p *payload, from string, dev identity.DeviceID) ([]Event, error) {
	skip := func(code Code, format string, args ...any) ([]Event, error) {
		msg := fmt.Sprintf(format, args...)
		e.log.Warn("state sync change skipped", "code", code, "from", dev.String(), "why", msg)
		return []Event{{Type: "error", Code: code, Text: msg}}, nil
	}
	if from != e.acct.Handle {
		return skip(CodeSyncRefused, "state sync from another account (%s) is ignored", from)
	}
	switch p.Kind {
	case kindSyncKey:
		return e.receiveSyncKeyLocked(ctx, b, p.Body, dev, skip)
	case kindSyncRequest:
		asked, err := statesync.ParseRequest(p.Body)
		if err != nil {
			return skip(CodeSyncMalformed, "%v", err)
		}
		if !asked.IsZero() && asked != e.dev.ID {
			return nil, nil
		}
		return nil, e.answerSnapshotLocked(ctx, b)
	}
	if e.syncTap != nil {
		e.syncTap(p.Body)
	}
	s, err := syncseal.Parse(p.Body)
	if err != nil {
		return skip(CodeSyncMalformed, "%v", err)
	}
	if s.Kind != p.Kind {
		return skip(CodeSyncMalformed, "sealed kind %d inside a kind %d message", s.Kind, p.Kind)
	}
	ring, cur, err := e.keyringLocked(ctx)
	if err != nil {
		return nil, err
	}
	k := ring.ByID(s.KeyID)
	if k == nil {
		return e.holdSyncLocked(ctx, b, p, s)
	}
	plain, err := s.Open(k.Key)
	if err != nil {
		return skip(CodeSyncUndecryptable, "%v", err)
	}
	batch, err := statesync.ParseBatch(plain)
	if err != nil {
		return skip(CodeSyncMalformed, "%v", err)
	}
	if k.Key == cur.Key && s.Epoch > cur.Epoch {
		// A companion linked after a rotation learns its key's epoch.
		ring.Add(s.Epoch, cur.Key, cur.Key)
		b.Put(bSync, keySyncKeys, ring.Marshal())
	}
	events, err := e.mergeSyncLocked(ctx, b, batch.Entries)
	if err != nil {
		return nil, err
	}
	if p.Kind == kindSyncSnapshot {
		events = append(events, Event{Type: "sync", Text: fmt.Sprintf("snapshot %d/%d", batch.Part+1, batch.Parts)})
	}
	return events, nil
}

// mergeSyncLocked applies entries by last-writer-wins and advances our
// clock past them. Invalid entries are skipped and reported.
func (e *Engine) mergeSyncLocked(ctx context.Context, b *storage.Batch, entries []statesync.Entry) ([]Event, error) {
	clock, err := e.clockLocked(ctx)
	if err != nil {
		return nil, err
	}
	now := e.nowMS()
	written := map[string]*statesync.Entry{}
	changed, skipped := 0, 0
	var events []Event
	for i := range entries {
		en := &entries[i]
		if err := syncSchema.Check(en.Key, en.Value); err != nil {
			skipped++
			continue
		}
		clock = clock.Observe(en.Clock, now)
		local, ok := written[en.Key]
		if !ok {
			if local, err = e.loadSyncEntry(ctx, en.Key); err != nil {
				return nil, err
			}
		}
		if local != nil && local.Clock.Compare(en.Clock) >= 0 {
			continue
		}
		written[en.Key] = en
		b.Put(bSync, syncEntryPfx+en.Key, statesync.MarshalEntryRecord(en))
		changed++
		if strings.HasPrefix(en.Key, statesync.NSRead) {
			ev, err := e.applyReadMarkerLocked(ctx, b, en.Key[len(statesync.NSRead):], binary.BigEndian.Uint64(en.Value))
			if err != nil {
				return nil, err
			}
			events = append(events, ev...)
		}
	}
	putClock(b, clock)
	if skipped > 0 {
		e.log.Warn("state sync entries skipped", "count", skipped)
		events = append(events, Event{Type: "error", Code: CodeSyncSkipped, Text: fmt.Sprintf("%d state-sync entries were not understood and were skipped", skipped)})
	}
	if changed > 0 {
		events = append(events, Event{Type: "sync"})
	}
	return events, nil
}

// applyReadMarkerLocked lowers a chat's unread count to the incoming
// messages newer than the marker another device of ours set.
func (e *Engine) applyReadMarkerLocked(ctx context.Context, b *storage.Batch, chat string, at uint64) ([]Event, error) {
	c, err := e.loadChat(ctx, chat)
	if err != nil {
		return nil, err
	}
	if c.Unread == 0 {
		return nil, nil
	}
	unread := 0
	err = e.cfg.Store.Scan(ctx, bMessages, chat+sep, storage.ScanOptions{Reverse: true, Limit: c.Unread + MaxPage}, func(_ string, v []byte) error {
		m, err := unmarshalMessage(v)
		if err != nil {
			return nil
		}
		if uint64(max(m.SentAt, 0)) <= at {
			return storage.ErrStop
		}
		if !m.Outgoing {
			unread++
		}
		return nil
	})
	if err != nil {
		return nil, storageErr(err)
	}
	if unread >= c.Unread {
		return nil, nil
	}
	c.Unread = unread
	b.Put(bChats, chat, c.marshal())
	return []Event{{Type: "chats"}}, nil
}
