//go:build js && wasm

package main

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/cache"
	"github.com/parley-im/parley/client/storage/journal"
)

// timedStore counts the engine's calls that reach IndexedDB (the cache's
// misses, every Scan and Commit) and the time they take, for
// parley.stats(): it shows where a receive's milliseconds go.
type timedStore struct {
	inner storage.Store

	mu                   sync.Mutex
	gets, scans, commits uint64
	getT, scanT, commitT time.Duration
	// By bucket: scans, and commits touching it (a batch counts once per
	// bucket), which show what a burst of messages costs and why.
	scanBuckets, commitBuckets map[string]uint64
}

func (t *timedStore) add(n *uint64, d *time.Duration, since time.Time) {
	el := time.Since(since)
	t.mu.Lock()
	*n++
	*d += el
	t.mu.Unlock()
}

func (t *timedStore) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	defer t.add(&t.gets, &t.getT, time.Now())
	return t.inner.Get(ctx, bucket, key)
}

func (t *timedStore) Scan(ctx context.Context, bucket, prefix string, opts storage.ScanOptions, fn func(string, []byte) error) error {
	// fn's own time is included: it is the engine's work on each record.
	defer t.add(&t.scans, &t.scanT, time.Now())
	t.mu.Lock()
	t.scanBuckets = addCount(t.scanBuckets, bucket)
	t.mu.Unlock()
	return t.inner.Scan(ctx, bucket, prefix, opts, fn)
}

func (t *timedStore) Commit(ctx context.Context, b *storage.Batch) error {
	defer t.add(&t.commits, &t.commitT, time.Now())
	t.mu.Lock()
	for i, op := range b.Ops {
		if !slices.ContainsFunc(b.Ops[:i], func(o storage.Op) bool { return o.Bucket == op.Bucket }) {
			t.commitBuckets = addCount(t.commitBuckets, op.Bucket)
		}
	}
	t.mu.Unlock()
	return t.inner.Commit(ctx, b)
}

func addCount(m map[string]uint64, k string) map[string]uint64 {
	if m == nil {
		m = map[string]uint64{}
	}
	m[k]++
	return m
}

// Sync is the IndexedDB store's strict commit that makes earlier relaxed
// ones durable; the engine times it itself (Stats.AckSyncMs).
func (t *timedStore) Sync(ctx context.Context) error {
	return storage.Sync(ctx, t.inner)
}

// GetMany is the inner store's (cache.MultiGetter: the journal's, over
// the IndexedDB store's getMany); counted as one read.
func (t *timedStore) GetMany(ctx context.Context, refs []cache.Ref) ([][]byte, []error, error) {
	defer t.add(&t.gets, &t.getT, time.Now())
	mg, ok := t.inner.(cache.MultiGetter)
	if !ok {
		return nil, nil, errors.New("storage: no multi-record read")
	}
	return mg.GetMany(ctx, refs)
}

// storeStats is the IndexedDB part of parley.stats().
type storeStats struct {
	StoreGets     uint64  `json:"storeGets"`
	StoreGetMs    float64 `json:"storeGetMs"` // mean
	StoreScans    uint64  `json:"storeScans"`
	StoreScanMs   float64 `json:"storeScanMs"`
	StoreCommits  uint64  `json:"storeCommits"`
	StoreCommitMs float64 `json:"storeCommitMs"`

	// The journal (client/storage/journal): records a previous run left
	// and Open applied, and records not applied yet.
	JournalReplayed int `json:"journalReplayed"`
	JournalPending  int `json:"journalPending"`

	StoreScanBuckets   map[string]uint64 `json:"storeScanBuckets"`
	StoreCommitBuckets map[string]uint64 `json:"storeCommitBuckets"`
}

func (t *timedStore) stats() storeStats {
	var jr, jp int
	if j, ok := t.inner.(*journal.Store); ok {
		jr, jp = j.Replayed(), j.Pending()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	mean := func(d time.Duration, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return float64(d.Microseconds()) / 1000 / float64(n)
	}
	return storeStats{
		StoreGets: t.gets, StoreGetMs: mean(t.getT, t.gets),
		StoreScans: t.scans, StoreScanMs: mean(t.scanT, t.scans),
		StoreCommits: t.commits, StoreCommitMs: mean(t.commitT, t.commits),
		JournalReplayed: jr, JournalPending: jp,
		StoreScanBuckets: maps.Clone(t.scanBuckets), StoreCommitBuckets: maps.Clone(t.commitBuckets),
	}
}
