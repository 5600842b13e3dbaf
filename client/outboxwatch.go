package client

import (
	"context"
	"sync/atomic"

	"github.com/parley-im/parley/client/storage"
)

// outboxWatch is the engine's view of its store: it counts committed
// batches that put anything into an outbox (or the upload queue), so the
// flusher can tell
// "nothing was queued since I last found both outboxes empty" without a
// storage scan. In the browser a scan is an IndexedDB transaction, and
// the flusher used to run three of them after every received message,
// queued behind (and delaying) the next receive's write.
type outboxWatch struct {
	storage.Store
	gen *atomic.Uint64
}

func (w outboxWatch) Commit(ctx context.Context, b *storage.Batch) error {
	err := w.Store.Commit(ctx, b)
	if err == nil {
		for _, op := range b.Ops {
			if op.Value != nil && (op.Bucket == bOutbox || op.Bucket == bGroupOutbox || op.Bucket == bUploads) {
				// After the commit: a flusher that reads the new count
				// also sees the entry in its scan.
				w.gen.Add(1)
				break
			}
		}
	}
	return err
}

// Sync passes through (storage.Syncer).
func (w outboxWatch) Sync(ctx context.Context) error { return storage.Sync(ctx, w.Store) }
