package client

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/client/storage"
)

// "Last active" for the devices view travels as a synced setting that each
// device writes about itself when it connects (at most once per
// activeEvery), so the account's other devices learn it end to end
// encrypted, even while the writer is off; the relay, which also sees
// connections, is not asked to publish that metadata.
const (
	activeEvery  = time.Hour
	activePrefix = "lastActive."
)

// noteActive records this device as active now if its marker is older
// than activeEvery.
func (e *Engine) noteActive(ctx context.Context) {
	id := e.dev.ID.String()
	now := e.cfg.Now().Unix()
	if last := e.lastActive(ctx)[id]; last != 0 && now-last < int64(activeEvery/time.Second) {
		return
	}
	if err := e.SetSetting(ctx, activePrefix+id, strconv.FormatInt(now, 10)); err != nil {
		e.log.Warn("could not record last activity", "err", err)
	}
}

// lastActive maps device id → last active (unix seconds) from the synced
// settings.
func (e *Engine) lastActive(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	st, err := e.SyncedState(ctx)
	if err != nil {
		return out
	}
	for k, v := range st.Settings {
		if id, ok := strings.CutPrefix(k, activePrefix); ok {
			if t, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[id] = t
			}
		}
	}
	return out
}

// keyResyncPending marks a newly linked device that has not yet asked its
// account's other devices for a state snapshot.
const keyResyncPending = "resync-pending"

// resyncIfPending asks for a state snapshot once after linking.
func (e *Engine) resyncIfPending(ctx context.Context) {
	if _, err := e.cfg.Store.Get(ctx, bSelf, keyResyncPending); err != nil {
		return
	}
	if err := e.ResyncState(ctx, ""); err != nil {
		e.log.Warn("could not ask for a state snapshot", "err", err)
		return
	}
	var b storage.Batch
	b.Delete(bSelf, keyResyncPending)
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		e.log.Warn("could not clear the snapshot request mark", "err", err)
	}
}
