//go:build js && wasm && parleytest

package main

// Test hooks, compiled only with -tags parleytest (the e2e tests build
// that variant themselves; `make wasm` never does). They operate on
// separate databases named "parley-test-<name>" with their own keys, so
// even the test build exposes no decrypted record of the real profile.

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/cache"
	"github.com/parley-im/parley/client/storage/journal"
	"github.com/parley-im/parley/client/storage/storagetest"
)

func init() { testHooks = append(testHooks, installTestHooks) }

func installTestHooks(c *client, parley js.Value) {
	t := js.Global().Get("Object").New()
	parley.Set("__test", t)
	fn := func(name string, f func(args []js.Value) (any, error)) {
		t.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return f(args) })
		}))
	}
	var mu sync.Mutex
	stores := map[string]*idbStore{}
	open := func(name string) (*idbStore, error) {
		mu.Lock()
		defer mu.Unlock()
		if s := stores[name]; s != nil {
			return s, nil
		}
		db, err := openDB(context.Background(), "parley-test-"+name)
		if err != nil {
			return nil, err
		}
		ext, err := newDataKey()
		if err != nil {
			return nil, err
		}
		// A non-extractable copy, as the real store uses.
		wk, err := newWrappingKey()
		if err != nil {
			return nil, err
		}
		iv, w, err := wrapDataKey(ext, wk, lockNone, 0)
		if err != nil {
			return nil, err
		}
		k, err := unwrapDataKey(wk, lockNone, 0, iv, w, false)
		if err != nil {
			return nil, err
		}
		ring := newKeyring(0, k, nil)
		if strings.HasPrefix(name, "rekeyed") {
			// A store after lock changes: writes in the SealV2 layout
			// (epoch 3), with a retired key beside the current one.
			ring = newKeyring(0, k, nil).next(k).next(k).next(k)
		}
		stores[name] = newIDBStore(db, "parley-test-"+name, ring)
		return stores[name], nil
	}
	ctx := context.Background()
	// conformance(name, layer) runs client/storage/storagetest against a
	// fresh IndexedDB store, alone (layer "") or behind the engine's read
	// cache ("cache", client/storage/cache) or its journal ("journal",
	// client/storage/journal); resolves "" or the first violation.
	fn("conformance", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		var st storage.Store = s
		switch layer := a[1].String(); layer {
		case "":
		case "cache":
			st = cache.New(s, 0)
		case "journal":
			if st, err = journal.Open(ctx, s); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown storage layer %q", layer)
		}
		if err := storagetest.Run(ctx, st); err != nil {
			return err.Error(), nil
		}
		return "", nil
	})
	fn("put", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		var b storage.Batch
		b.Put(a[1].String(), a[2].String(), []byte(a[3].String()))
		return nil, s.Commit(ctx, &b)
	})
	fn("get", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		v, err := s.Get(ctx, a[1].String(), a[2].String())
		return string(v), err
	})
	fn("scan", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		var keys []any
		err = s.Scan(ctx, a[1].String(), a[2].String(), storage.ScanOptions{}, func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		})
		return keys, err
	})
	// benchWrite(name, n) commits n sealed 1 KiB records one by one and
	// resolves the median and p90 commit latency in milliseconds.
	fn("benchWrite", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		n := a[1].Int()
		val := make([]byte, 1024)
		ms := make([]float64, 0, n)
		perf := js.Global().Get("performance")
		for i := range n {
			var b storage.Batch
			b.Put("bench", "m/"+time.Now().Format("150405.000000")+string(rune('a'+i%26)), val)
			t0 := perf.Call("now").Float()
			if err := s.Commit(ctx, &b); err != nil {
				return nil, err
			}
			ms = append(ms, perf.Call("now").Float()-t0)
		}
		slices.Sort(ms)
		return map[string]any{"median": ms[len(ms)/2], "p90": ms[len(ms)*9/10]}, nil
	})
	// lockDuringCommit(name) starts a relaxed commit on a fresh store and
	// closes the store (what a lock does) while the commit waits for
	// IndexedDB; it resolves whether the commit had ended when close
	// returned and the commit's error ("" for none).
	fn("lockDuringCommit", func(a []js.Value) (any, error) {
		s, err := open(a[0].String())
		if err != nil {
			return nil, err
		}
		mu.Lock()
		delete(stores, a[0].String())
		mu.Unlock()
		var b storage.Batch
		b.Relaxed = true
		b.Put("j", "k", make([]byte, 1024))
		done := make(chan error, 1)
		var started atomic.Bool
		go func() {
			started.Store(true)
			done <- s.Commit(ctx, &b)
		}()
		// Go's wasm runs goroutines on one thread without preemption:
		// once the commit has started it runs until it awaits boot.js's
		// promise. (One Gosched is not enough: the scheduler sometimes
		// resumes the goroutine that yielded first.)
		for !started.Load() {
			runtime.Gosched()
		}
		s.close()
		var ended bool
		select {
		case err = <-done:
			ended = true
		default:
			err = <-done
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		return map[string]any{"ended": ended, "err": msg}, nil
	})
	// argon2([time, memoryKiB]) times one passphrase derivation, with the
	// shipped parameters unless given.
	fn("argon2", func(a []js.Value) (any, error) {
		tm, mem := uint32(argonTime), uint32(argonMemoryKiB)
		if len(a) == 2 {
			tm, mem = uint32(a[0].Int()), uint32(a[1].Int())
		}
		perf := js.Global().Get("performance")
		t0 := perf.Call("now").Float()
		_, err := derivePassphraseKey("correct horse battery staple", make([]byte, argonSaltLen), tm, mem, argonThreads)
		return perf.Call("now").Float() - t0, err
	})
	// resealPause(on) holds this tab's re-seal before its next page (or
	// lets it run again; a held one starts again at the next unlock).
	var paused atomic.Bool
	resealPaused = paused.Load
	fn("resealPause", func(a []js.Value) (any, error) {
		paused.Store(a[0].Truthy())
		return nil, nil
	})
	// currentDataKey() is the data key records are sealed under now (the
	// non-extractable CryptoKey): what an attacker who had a copy of the
	// profile and its passphrase would hold.
	fn("currentDataKey", func([]js.Value) (any, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.requireUnlocked(); err != nil {
			return nil, err
		}
		ring, err := c.store.dataKey()
		if err != nil {
			return nil, err
		}
		return safejs.Unsafe(ring.cur), nil
	})
	// legacyLock(passphrase) sets a passphrase lock the way clients before
	// data key epochs did: the same data key re-wrapped (PROTOCOL.md 13.2,
	// migration).
	fn("legacyLock", func(a []js.Value) (any, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.requireUnlocked(); err != nil {
			return nil, err
		}
		salt := make([]byte, argonSaltLen)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		wk, err := derivePassphraseKey(a[0].String(), salt, argonTime, argonMemoryKiB, argonThreads)
		if err != nil {
			return nil, err
		}
		rec := &dataKeyRecord{Kind: lockPassphrase, Salt: salt, Time: argonTime, MemoryKiB: argonMemoryKiB, Threads: argonThreads}
		return nil, c.emitAfter(c.rewrap(ctx, wk, rec, []keyWrite{{name: keyDevice, value: safejs.Undefined()}}, false))
	})
	// counter() increments a counter held by the owner tab and returns it
	// with the owner's bus id: proof that views reach the one owner.
	var counter int
	c.bus.handle("testCounter", func(context.Context, string, []js.Value) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		counter++
		return map[string]any{"value": counter, "owner": c.bus.id}, nil
	})
	fn("counter", func([]js.Value) (any, error) { return c.bus.call("testCounter", nil) })
	// storedKey(bucket, key) is the key the engine's bucket/key is stored
	// under in IndexedDB (names.go), for tests that tamper with it.
	fn("storedKey", func(a []js.Value) (any, error) {
		host.mu.Lock()
		names := host.names
		host.mu.Unlock()
		if names == nil || len(a) < 2 {
			return nil, fmt.Errorf("storedKey(bucket, key) needs a running engine")
		}
		return names.StoredKey(a[0].String(), a[1].String()), nil
	})
	fn("tabId", func([]js.Value) (any, error) { return c.bus.id, nil })
}
