package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/parley-im/parley/client/internal/statesync"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
	"github.com/parley-im/parley/crypto/syncseal"
)

// TestSyncMergeOrderFree: the same changes applied in any order, any
// number of times, give the same state (no relay involved).
func TestSyncMergeOrderFree(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var devs [3]identity.DeviceID
	for i := range devs {
		devs[i][0] = byte(i + 1)
	}
	keys := []string{"contact/bob", "contact/carol", "setting/theme", "muted/bob", "archived/bob", "read/bob"}
	var entries []statesync.Entry
	for i := 0; i < 200; i++ {
		k := keys[rng.IntN(len(keys))]
		var v []byte
		switch {
		case k[0] == 'c' || k[0] == 's':
			v = []byte(fmt.Sprintf("v%d", rng.IntN(5)))
		case k[0] == 'r':
			v = binary.BigEndian.AppendUint64(nil, uint64(rng.IntN(1000)))
		default:
			v = []byte{byte(rng.IntN(2))}
		}
		entries = append(entries, statesync.Entry{Key: k, Value: v, Clock: statesync.Clock{Wall: uint64(rng.IntN(20)), Counter: uint32(i), Device: devs[rng.IntN(3)]}}) // a clock names one write: never two values
	}
	state := func(order []statesync.Entry, chunk int) *SyncedState {
		e := memEngine(t)
		for len(order) > 0 {
			n := min(chunk, len(order))
			e.mu.Lock()
			var b storage.Batch
			if _, err := e.mergeSyncLocked(ctx, &b, order[:n]); err != nil {
				t.Fatal(err)
			}
			if err := e.cfg.Store.Commit(ctx, &b); err != nil {
				t.Fatal(err)
			}
			e.mu.Unlock()
			order = order[n:]
		}
		s, err := e.SyncedState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := state(entries, 1)
	for trial := 0; trial < 20; trial++ {
		perm := append([]statesync.Entry(nil), entries...)
		perm = append(perm, entries[:rng.IntN(len(entries))]...) // duplicates
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if got := state(perm, 1+rng.IntN(50)); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %d gives %+v, want %+v", trial, got, want)
		}
	}
}

// noRelay is a Relay for engines that never go online.
type noRelay struct{ Relay }

// memEngine is an engine on a memory store with an account record set
// directly (no relay), for the pure parts of state sync.
func memEngine(t *testing.T) *Engine {
	e, err := Open(context.Background(), Config{Store: memstore.New(), Relay: noRelay{}})
	if err != nil {
		t.Fatal(err)
	}
	e.acct = &accountRecord{Handle: "alice", SyncKey: [link.SyncKeySize]byte{7}}
	return e
}

// TestSyncLimits: the state-sync cores agree with the engine: the seal
// carries the payload kinds it travels as, a sealed snapshot part fits in
// a payload, and a state key holds any chat id and contact name the engine
// stores.
func TestSyncLimits(t *testing.T) {
	if kindSyncMutation != syncseal.KindMutation || kindSyncSnapshot != syncseal.KindSnapshot {
		t.Fatal("payload kinds and sealed kinds differ")
	}
	if syncseal.HeaderSize+4+syncseal.MaxCiphertext > maxPayloadBody {
		t.Fatal("a sealed snapshot part may not fit in a payload")
	}
	if statesync.MaxChatLen != maxChatIDLen || statesync.MaxContactNameLen != maxNameLen {
		t.Fatal("state-sync name limits differ from the engine's")
	}
}

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return len(p), nil
}

// TestSyncHeldUntilKey: a change under a key this device does not have yet
// is kept (and a snapshot requested), then applied when the key arrives.
func TestSyncHeldUntilKey(t *testing.T) {
	ctx := context.Background()
	e := memEngine(t)
	next := statesync.Key{Epoch: 1, Key: [link.SyncKeySize]byte{9}}
	plain := (&statesync.Batch{Parts: 1, Entries: []statesync.Entry{{Key: "setting/theme", Value: []byte("dark"), Clock: statesync.Clock{Wall: 5, Device: identity.DeviceID{3}}}}}).Marshal()
	sealed, err := syncseal.Seal(cryptoRand{}, kindSyncMutation, next.Epoch, next.Key, plain)
	if err != nil {
		t.Fatal(err)
	}
	receive := func(p *payload) []Event {
		e.mu.Lock()
		defer e.mu.Unlock()
		var b storage.Batch
		ev, err := e.receiveSyncLocked(ctx, &b, p, "alice", identity.DeviceID{3})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cfg.Store.Commit(ctx, &b); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ev := receive(&payload{Kind: kindSyncMutation, ID: MessageID{1}, Body: sealed})
	if len(ev) != 1 || ev[0].Code != "sync_key_unknown" {
		t.Fatalf("events %+v", ev)
	}
	queued := 0
	e.cfg.Store.Scan(ctx, bOutbox, "", storage.ScanOptions{}, func(_ string, v []byte) error {
		rec, _ := unmarshalOutbox(v)
		if p, _ := unmarshalPayload(rec.Payload); p != nil && p.Kind == kindSyncRequest {
			queued++
		}
		return nil
	})
	if queued != 1 {
		t.Fatalf("%d snapshot requests queued, want 1", queued)
	}
	if s, _ := e.SyncedState(ctx); len(s.Settings) != 0 {
		t.Fatal("applied without the key")
	}
	// A garbled change and one from another account are skipped, never fatal.
	if ev := receive(&payload{Kind: kindSyncMutation, ID: MessageID{2}, Body: []byte{1, 2, 3}}); len(ev) != 1 || ev[0].Code != "sync_malformed" {
		t.Fatalf("garbage: %+v", ev)
	}
	e.mu.Lock()
	var b storage.Batch
	ev, err = e.receiveSyncLocked(ctx, &b, &payload{Kind: kindSyncMutation, Body: sealed}, "mallory", identity.DeviceID{4})
	e.mu.Unlock()
	if err != nil || len(ev) != 1 || ev[0].Code != "sync_refused" || b.Len() != 0 {
		t.Fatalf("from another account: %+v, %v", ev, err)
	}

	e.mu.Lock()
	ev, err = e.releasePendingLocked(ctx, &b, next)
	if err == nil {
		err = e.cfg.Store.Commit(ctx, &b)
	}
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := e.SyncedState(ctx); s.Settings["theme"] != "dark" {
		t.Fatalf("held change not applied: %+v", s)
	}
	if n := countKeys(t, e, bSync, syncPendingPfx); n != 0 {
		t.Fatalf("%d held changes left", n)
	}
}

func countKeys(t *testing.T, e *Engine, bucket, prefix string) int {
	n := 0
	if err := e.cfg.Store.Scan(context.Background(), bucket, prefix, storage.ScanOptions{}, func(string, []byte) error {
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
