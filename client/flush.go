package client

import (
	"context"
	"time"

	"github.com/parley-im/parley/client/storage"
)

// Flush waits until the engine (running under Run) is connected, its
// prekeys are on the relay and its outbox is empty, or ctx ends. A tool
// that runs the engine for one command (the CLI) calls it before exiting,
// so what the command queued has left the device.
func (e *Engine) Flush(ctx context.Context) error {
	for {
		if err := e.WaitOnline(ctx); err != nil {
			return err
		}
		e.mu.Lock()
		idle, err := e.idleLocked(ctx)
		e.mu.Unlock()
		if err != nil || idle {
			return err
		}
		e.kickLocked()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *Engine) idleLocked(ctx context.Context) (bool, error) {
	if e.conn == nil {
		return false, nil
	}
	st, err := e.loadPrekeyState(ctx)
	if err != nil {
		return false, err
	}
	if !st.Published || len(st.Pending) > 0 {
		return false, nil
	}
	queued := false
	for _, bucket := range []string{bUploads, bOutbox, bGroupOutbox} {
		err = e.cfg.Store.Scan(ctx, bucket, "", storage.ScanOptions{Limit: 1}, func(string, []byte) error {
			queued = true
			return nil
		})
		if err != nil {
			return false, storageErr(err)
		}
	}
	return !queued, nil
}
