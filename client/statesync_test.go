package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

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
	var entries []syncEntry
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
		entries = append(entries, syncEntry{Key: k, Value: v, Clock: hlc{Wall: uint64(rng.IntN(20)), Counter: uint32(i), Device: devs[rng.IntN(3)]}}) // a clock names one write: never two values
	}
	state := func(order []syncEntry, chunk int) *SyncedState {
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
		perm := append([]syncEntry(nil), entries...)
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

func TestHLC(t *testing.T) {
	a, b := identity.DeviceID{1}, identity.DeviceID{2}
	c := hlc{}.tick(100, a)
	if c.Wall != 100 || c.Counter != 0 {
		t.Fatal(c)
	}
	c2 := c.tick(90, a) // wall clock went back
	if c2.compare(c) <= 0 || c2.Wall != 100 || c2.Counter != 1 {
		t.Fatal(c2)
	}
	// Observing a remote clock ahead of ours orders our next event after it.
	r := hlc{Wall: 500, Counter: 3, Device: b}
	c3 := c2.observe(r, 100).tick(100, a)
	if c3.compare(r) <= 0 {
		t.Fatalf("%v not after %v", c3, r)
	}
	// A remote clock a year ahead does not drag ours along.
	far := hlc{Wall: 100 + 365*24*3600*1000, Device: b}
	if got := c2.observe(far, 100); got != c2 {
		t.Fatalf("followed a clock far ahead: %v", got)
	}
	// Same wall and counter: the device id decides, the same way everywhere.
	x, y := hlc{Wall: 1, Device: a}, hlc{Wall: 1, Device: b}
	if x.compare(y) >= 0 || y.compare(x) <= 0 || x.compare(x) != 0 {
		t.Fatal("device tiebreak")
	}
}

// TestSyncSealFits: the seal carries the payload kinds it travels as, and
// a snapshot part the engine cuts, sealed, opens under syncseal's limit and
// fits in a payload.
func TestSyncSealFits(t *testing.T) {
	if kindSyncMutation != syncseal.KindMutation || kindSyncSnapshot != syncseal.KindSnapshot {
		t.Fatal("payload kinds and sealed kinds differ")
	}
	if maxSyncPlain+2*maxSyncValueLen > syncseal.MaxPlaintext || syncseal.HeaderSize+4+syncseal.MaxCiphertext > maxPayloadBody {
		t.Fatal("a snapshot part may not fit the seal or the payload")
	}
}

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return len(p), nil
}

func FuzzSyncBatch(f *testing.F) {
	f.Add((&syncBatch{Parts: 1, Entries: []syncEntry{{Key: "contact/bob", Value: []byte("Bob")}}}).marshal())
	f.Add((&syncBatch{Part: 1, Parts: 2}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSyncBatch(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.marshal(), b) {
			t.Fatal("not canonical")
		}
		for _, en := range s.Entries {
			_ = validSyncEntry(en.Key, en.Value)
		}
	})
}

func FuzzSyncKeyring(f *testing.F) {
	f.Add((&syncKeyring{Keys: []syncKey{{Epoch: 1}, {Epoch: 2}}}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := unmarshalSyncKeyring(b)
		if err == nil && !bytes.Equal(k.marshal(), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzSyncEntryRecord(f *testing.F) {
	f.Add(marshalSyncEntryRecord(&syncEntry{Key: "muted/bob", Value: []byte{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		en, err := unmarshalSyncEntryRecord("k", b)
		if err == nil && !bytes.Equal(marshalSyncEntryRecord(en), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzSyncRequest(f *testing.F) {
	f.Add(syncRequestBody(identity.DeviceID{1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := parseSyncRequest(b); err == nil && !bytes.Equal(syncRequestBody(id), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzSyncKeyBody(f *testing.F) {
	f.Add(syncKeyBody(syncKey{Epoch: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := parseSyncKey(b); err == nil && !bytes.Equal(syncKeyBody(k), b) {
			t.Fatal("not canonical")
		}
	})
}

// TestSyncHeldUntilKey: a change under a key this device does not have yet
// is kept (and a snapshot requested), then applied when the key arrives.
func TestSyncHeldUntilKey(t *testing.T) {
	ctx := context.Background()
	e := memEngine(t)
	next := syncKey{Epoch: 1, Key: [link.SyncKeySize]byte{9}}
	plain := (&syncBatch{Parts: 1, Entries: []syncEntry{{Key: "setting/theme", Value: []byte("dark"), Clock: hlc{Wall: 5, Device: identity.DeviceID{3}}}}}).marshal()
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
