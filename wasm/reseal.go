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

// The re-seal (PROTOCOL.md 13.2): after a lock change made a new data key,
// every record still sealed under a retired key is opened and sealed again
// under the current one, a page at a time (boot.js's reseal), and once a
// whole pass finds nothing left to move the retired keys are deleted from
// keys/datakey. Until then they stay there, wrapped under the lock, so
// every record opens at every moment: across a reload, a lock or a crash
// the re-seal simply starts again at the next unlock (records already
// moved are skipped by their epoch). A record is replaced only if it is
// still the bytes that were read, in the same transaction, so an engine
// write that landed meanwhile (sealed under the current key) is never
// overwritten. Plaintexts do not change, so the sealed root (13.7) and
// the engine's cache are untouched.

// resealPage is how many records one step of the re-seal reads: a page
// costs one read and one write transaction, and engine writes queue
// behind the write.
const resealPage = 64

// resealPaused stops the re-seal before its next page when it returns
// true (a seam for tests: hooks_parleytest.go).
var resealPaused = func() bool { return false }

// errResealStopped ends a pass that was superseded or paused; the records
// are as readable as before it.
var errResealStopped = errors.New("re-seal stopped")

// rekeyProgress is state().rekey while retired data keys remain. Its
// changes raise no state event (one per page would flood every tab); a
// page that shows it polls state().
type rekeyProgress struct {
	epoch    uint32 // the data key records are moved to
	pass     int    // passes over the whole store so far, this run
	scanned  int    // records read in this pass
	resealed int    // records moved in this pass
	total    int    // records in the store when this pass began
	stalled  string // why this run's re-seal stopped, if it did
}

func (p *rekeyProgress) toJS() map[string]any {
	o := map[string]any{"epoch": p.epoch, "pass": p.pass, "scanned": p.scanned, "resealed": p.resealed, "total": p.total}
	if p.stalled != "" {
		o["stalled"] = p.stalled
	}
	return o
}

// startResealLocked starts moving c.store's records to its current data
// key, superseding any re-seal under way (c.mu held).
func (c *client) startResealLocked() {
	c.resealGen++
	gen, st, epoch := c.resealGen, c.store, c.dk.Epoch
	c.rekey = &rekeyProgress{epoch: epoch}
	go c.reseal(gen, st, epoch)
}

func (c *client) reseal(gen int, st *idbStore, epoch uint32) {
	<-afterReady // off the path to ready when a start resumes one
	ctx := context.Background()
	for pass := 1; ; pass++ {
		clean, err := st.resealPass(ctx, func(scanned, resealed, total int) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.resealGen != gen {
				return false
			}
			c.rekey = &rekeyProgress{epoch: epoch, pass: pass, scanned: scanned, resealed: resealed, total: total}
			return true
		})
		if err != nil {
			c.mu.Lock()
			if c.resealGen == gen && c.rekey != nil && !errors.Is(err, errStoreLocked) {
				c.rekey.stalled = err.Error()
			}
			c.mu.Unlock()
			return
		}
		if clean {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resealGen != gen || c.store != st || c.dk.Epoch != epoch {
		return
	}
	rec := *c.dk
	rec.Retired = nil
	// Strict: the re-sealed records (relaxed) are durable before the keys
	// that opened them are gone, as IndexedDB commits in order.
	if err := writeTxnWith(ctx, c.db, idb.DurabilityStrict, []keyWrite{{name: keyDataKey, value: rec.toJS()}}, nil); err != nil {
		c.rekey.stalled = err.Error()
		return
	}
	c.dk = &rec
	if ring, err := st.dataKey(); err == nil {
		st.setRing(ring.current())
	}
	c.rekey = nil
}

// resealPass moves the store's records to its current key, page by page;
// progress is told each page's totals and returns false to stop. clean
// reports a pass that moved nothing and found nothing changed under it,
// with no write under a retired key in flight when it began: then no
// record needs a retired key any more.
func (s *idbStore) resealPass(ctx context.Context, progress func(scanned, resealed, total int) bool) (clean bool, err error) {
	clean = !s.oldWrites()
	after := js.Null()
	scanned, resealed, total := 0, 0, -1
	for {
		if resealPaused() {
			return false, errResealStopped
		}
		ring, err := s.beginWrite()
		if err != nil {
			return false, err
		}
		p := jsStore.Call("reseal", s.name, ring.byEpoch, ring.epoch, safejs.Unsafe(ring.cur), after, resealPage)
		res, err := Await(safejs.Safe(p))
		s.endWrite(ring)
		if err != nil {
			return false, fmt.Errorf("storage: re-seal: %w", err)
		}
		r := safejs.Unsafe(res)
		n := r.Get("resealed").Int()
		scanned += r.Get("scanned").Int()
		resealed += n
		if n > 0 || r.Get("raced").Int() > 0 {
			clean = false
		}
		if total < 0 {
			total = r.Get("total").Int()
		}
		if !progress(scanned, resealed, total) {
			return false, errResealStopped
		}
		if after = r.Get("next"); after.IsNull() {
			return clean, nil
		}
	}
}
