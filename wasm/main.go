//go:build js && wasm

// Command wasm is the Parley client compiled for the browser (GOOS=js). It
// is the only package that touches JavaScript: it binds IndexedDB and
// WebCrypto to the pure-Go engine and publishes the window.parley API that
// the UI and the embed widget use.
//
// Every tab runs this binary, but only the tab elected owner (bus.go) opens
// the storage and holds keys; the others forward window.parley calls to it.
//
// Every API function returns a Promise and does its work in a goroutine:
// blocking inside a js.FuncOf callback (for example awaiting a JS promise)
// would deadlock the Go runtime.
package main

import (
	"context"
	engine "github.com/parley-im/parley/client"
	"runtime/debug"
	"sync"
	"syscall/js"
	"time"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
)

// version is the client version; the VCS revision is added when known.
const baseVersion = "0.1.0"

// client is the owner-side state behind window.parley. Its fields are
// guarded by mu; the secrets (dev, store's data key, wrapper) are nil or
// undefined whenever status is "locked".
type client struct {
	mu         sync.Mutex
	db         *idb.Database
	status     string // "starting", "new", "locked", "error"
	err        error
	persistent bool
	canary     string // "unchecked", "present", "ok", "missing", "corrupt"

	dk      *dataKeyRecord // the non-secret lock record
	wrapper safejs.Value   // the key that wrapped the data key; only while unlocked
	store   *idbStore      // the engine's storage; only while unlocked
	dev     *identity.Device

	idle       time.Duration
	idleGen    int
	lockReason string
	stopEngine func() // set while an engine runs (see startEngine)

	resealGen int            // bumped by every re-seal start and lock (reseal.go)
	rekey     *rekeyProgress // while retired data keys remain; nil otherwise

	bus *bus
}

func version() string {
	v := baseVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				v += "+" + s.Value[:7]
			}
		}
	}
	return v
}

// startEngine is the seam for the messenger engine (client/). When set, the
// owner tab calls it every time storage opens (first start, migration,
// unlock) with the sealed store, what the start-up transaction read for it
// (startRead), the device identity the page has shown so far and the bus;
// it returns the function that stops the engine, which is called when the
// client locks (the engine must then close its relay connection and drop
// its keys), or the error that keeps the store from opening at all (its
// records do not match their sealed root, PROTOCOL.md 13.7). It runs with c.mu held: start goroutines,
// do not call back into c. The engine's API methods are registered with
// b.handle in main (a handler answers errStoreLocked while no engine runs)
// and exposed to every tab with forward(name); events go out with b.emit.
var startEngine func(st storage.Store, read startRead, dev *identity.Device, b *bus) (stop func(), err error)

// engineStartRefs are the records the engine reads first when it opens
// (client's records.go names them); start-up reads them in the transaction
// that reads its own, instead of the engine reading them in a second one.
// A rename there only makes the engine read them itself.
var engineStartRefs = []recordRef{{"self", "device"}, {"self", "account"}}

// startRead is what start-up read for the engine: the number of journal
// records a previous run left, what a Get of each engineStartRefs
// returned (values and errors), and the canary record's value.
type startRead struct {
	journaled uint
	vals      [][]byte
	errs      []error
	canary    []byte
}

// apiHooks add API methods (the engine's, engine.go) once the bus and the
// api/forward helpers exist.
var apiHooks []func(b *bus, api func(string, func([]js.Value) (any, error)), forward func(string))

// mark records a boot milestone in parley.timing (ms since navigation);
// main sets it.
var mark = func(string) {}

// afterReady is closed once parley.ready has settled and the page's own
// reactions to it (its first API calls) have run: work that the API does
// not need (the relay connection, the WebCrypto checks) waits for it, so
// it does not stand between navigation and ready on the one JS thread.
var afterReady = make(chan struct{})

// releaseAfterReady closes afterReady from a fresh task: a MessageChannel
// message runs after the promise reactions queued by resolve, and unlike
// setTimeout it is not throttled in a background tab.
func releaseAfterReady() {
	mc := js.Global().Get("MessageChannel")
	if mc.IsUndefined() {
		close(afterReady)
		return
	}
	ch := mc.New()
	var f js.Func
	f = js.FuncOf(func(js.Value, []js.Value) any {
		f.Release()
		ch.Get("port1").Call("close")
		close(afterReady)
		return nil
	})
	ch.Get("port1").Set("onmessage", f)
	ch.Get("port2").Call("postMessage", js.Null())
}

// jsStore is boot.js's sealed commit (idbStore.Commit) and promise watch
// (Await), and ownerPromise its request for the owner lock (bus.start,
// resolved once granted; null without Web Locks), both taken from the
// global scope at start like __parleyBoot.
var jsStore, ownerPromise js.Value

// persistPromise is boot.js's navigator.storage.persist() request, made
// while the client downloads; it resolves to whether storage is persistent.
var persistPromise js.Value

// clientHashPromise is boot.js's SHA-256 of the wasm bytes this tab
// instantiated (hex, or null when it could not be computed); clientHash
// awaits it once. Each tab reports its own, in state().clientHash: the
// hash of the client that tab runs, not the owner tab's word for it.
var (
	clientHashPromise js.Value
	clientHashOnce    sync.Once
	clientHashValue   any // string, or nil
)

func clientHash() any {
	clientHashOnce.Do(func() {
		if clientHashPromise.IsUndefined() || clientHashPromise.IsNull() {
			return
		}
		v, err := Await(safeValue(clientHashPromise))
		if err != nil {
			return
		}
		if v.IsNull() {
			return
		}
		if s, err := v.String(); err == nil {
			clientHashValue = s
		}
	})
	return clientHashValue
}

// testHooks are installed by the parleytest build only (hooks_parleytest.go).
var testHooks []func(c *client, parley js.Value)

// Go's collector is off during start-up (holdGC), within these bounds.
const (
	startGCLimit    = 64 << 20 // the heap may grow to this before a collection
	startGCMaxDelay = 5 * time.Second
)

// holdGC turns Go's collector off from the start of main until ready has
// been delivered (afterReady) or startGCMaxDelay has passed, the heap
// bounded by startGCLimit meanwhile. Start-up allocates several MB, and
// the collections that would run during it, each holding the page's one
// thread, land on the path to ready (BootPhases alternated 6x:
// wasmStart->ready median 44 -> 36 ms).
func holdGC() {
	percent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(startGCLimit)
	go func() {
		select {
		case <-afterReady:
		case <-time.After(startGCMaxDelay):
		}
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(percent)
	}()
}

func main() {
	holdGC()
	parley := js.Global().Get("parley")
	boot := js.Global().Get("__parleyBoot")
	jsStore = js.Global().Get("__parleyStore")
	ownerPromise = js.Global().Get("__parleyOwner")
	persistPromise = js.Global().Get("__parleyPersist")
	clientHashPromise = js.Global().Get("__parleyClientHash")
	if parley.IsUndefined() || boot.IsUndefined() || jsStore.IsUndefined() || ownerPromise.IsUndefined() {
		js.Global().Get("console").Call("error", "parley: boot.js must run before the wasm")
		return
	}
	js.Global().Delete("__parleyBoot")
	js.Global().Delete("__parleyStore")
	js.Global().Delete("__parleyOwner")
	js.Global().Delete("__parleyPersist")
	js.Global().Delete("__parleyClientHash")

	// Milestones in ms since navigation, for the boot benchmark.
	mark = func(name string) {
		parley.Get("timing").Set(name, js.Global().Get("performance").Call("now"))
	}
	mark("wasmStart")
	c := &client{status: "starting", canary: "unchecked", wrapper: safejs.Undefined()}
	b := newBus()
	c.bus = b
	b.onOwner = func() {
		mark("owner")
		c.boot(context.Background())
		mark("storage")
	}
	b.onReady = func() {
		boot.Call("resolve", js.Undefined())
		mark("resolved")
		releaseAfterReady()
	}
	b.onTouch = func() { go c.touch() }

	one := func(args []js.Value) js.Value {
		if len(args) == 0 {
			return js.Undefined()
		}
		return args[0]
	}
	b.handle("state", func(context.Context, string, []js.Value) (any, error) { return c.state(), nil })
	b.handle("deviceFingerprint", func(context.Context, string, []js.Value) (any, error) { return c.deviceFingerprint() })
	b.handle("setLock", func(ctx context.Context, _ string, a []js.Value) (any, error) { return c.setLock(ctx, one(a)) })
	b.handle("setPasskeyLock", func(ctx context.Context, _ string, a []js.Value) (any, error) { return c.setPasskeyLock(ctx, one(a)) })
	b.handle("lock", func(context.Context, string, []js.Value) (any, error) { return nil, c.lock("user") })
	b.handle("lockInfo", func(context.Context, string, []js.Value) (any, error) { return c.lockInfo() })
	b.handle("unlock", func(ctx context.Context, _ string, a []js.Value) (any, error) { return c.unlock(ctx, one(a)) })
	b.handle("unlockWithKey", func(ctx context.Context, _ string, a []js.Value) (any, error) { return c.unlockWithKey(ctx, one(a)) })
	b.handle("setIdleLock", func(ctx context.Context, _ string, a []js.Value) (any, error) { return c.setIdleLock(ctx, one(a)) })

	api := func(name string, fn func(args []js.Value) (any, error)) {
		parley.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return fn(args) })
		}))
	}
	forward := func(name string) {
		api(name, func(args []js.Value) (any, error) { return b.call(name, args) })
	}
	parley.Set("version", version())
	api("state", func(args []js.Value) (any, error) {
		st, err := b.call("state", nil)
		if err == nil {
			st.Set("role", b.role())
			st.Set("clientHash", clientHash())
		}
		return st, err
	})
	forward("deviceFingerprint")
	forward("lock")
	forward("setIdleLock")
	for _, h := range apiHooks {
		h(b, api, forward)
	}
	api("setLock", func(args []js.Value) (any, error) {
		opts := one(args)
		if opts.Type() == js.TypeObject && opts.Get("passkey").Truthy() {
			key, credID, prfSalt, err := createPasskeyLock()
			if err != nil {
				return nil, err
			}
			a := js.Global().Get("Object").New()
			a.Set("key", safejs.Unsafe(key))
			a.Set("credId", safejs.Unsafe(credID))
			a.Set("prfSalt", safejs.Unsafe(prfSalt))
			return b.call("setPasskeyLock", []js.Value{a})
		}
		return b.call("setLock", []js.Value{opts})
	})
	api("unlock", func(args []js.Value) (any, error) {
		opts := one(args)
		if opts.Type() != js.TypeObject {
			return nil, newAPIError(engine.CodeInvalidArgument, "unlock takes {passphrase: string} or {passkey: true}")
		}
		if !opts.Get("passkey").Truthy() {
			return b.call("unlock", []js.Value{opts})
		}
		info, err := b.call("lockInfo", nil)
		if err != nil {
			return nil, err
		}
		if info.Get("kind").String() != lockPasskey {
			return nil, newAPIError(engine.CodeWrongLockMethod, "this browser is not locked with a passkey")
		}
		key, err := derivePasskeyKey(safejs.Safe(info.Get("credId")), safejs.Safe(info.Get("prfSalt")))
		if err != nil {
			return nil, err
		}
		a := js.Global().Get("Object").New()
		a.Set("key", safejs.Unsafe(key))
		return b.call("unlockWithKey", []js.Value{a})
	})
	parley.Set("on", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 || args[1].Type() != js.TypeFunction {
			panic("parley.on(event, callback)")
		}
		return b.on(args[0].String(), args[1])
	}))
	for _, h := range testHooks {
		h(c, parley)
	}

	// User activity in any tab keeps the idle lock from firing.
	activity := js.FuncOf(func(js.Value, []js.Value) any {
		go b.touched()
		return nil
	})
	for _, ev := range []string{"keydown", "pointerdown"} {
		js.Global().Call("addEventListener", ev, activity, map[string]any{"passive": true, "capture": true})
	}

	mark("api")
	b.start()
	select {} // keep the Go runtime alive for callbacks
}

// boot runs once this tab is elected owner: it opens storage and decides
// the state. The ready promise resolves afterwards even when storage is in
// an error state: the API is up and state() explains the problem.
func (c *client) boot(ctx context.Context) {
	db, err := openDB(ctx, dbName)
	mark("db")
	persistent := requestPersistence()
	mark("persist")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.persistent = persistent
	if err != nil {
		c.status, c.err = "error", newAPIError(engine.CodeStorageUnavailable, "IndexedDB could not be opened: %v", err)
		return
	}
	c.db = db
	if err := c.start(ctx); err != nil {
		c.status, c.err = "error", err
		return
	}
	c.touchLocked()
}

// requestPersistence is the answer to boot.js's request that the browser
// not evict Parley's storage under pressure (evicted keys would mean a
// re-link), made while the client downloaded; by now it has usually
// arrived. The answer is reported in state(); Chromium grants it to
// installed or engaged sites.
func requestPersistence() bool {
	if persistPromise.IsUndefined() || persistPromise.IsNull() {
		return false
	}
	v, err := Await(safeValue(persistPromise))
	if err != nil {
		return false
	}
	b, _ := v.Bool()
	return b
}

func (c *client) state() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked()
}

func (c *client) stateLocked() map[string]any {
	lock := "none"
	if c.dk != nil && c.dk.Kind != lockNone {
		lock = c.dk.Kind
	}
	st := map[string]any{
		"status":     c.status,
		"persistent": c.persistent,
		"canary":     c.canary,
		"lock":       lock,
		"idleLockMs": c.idle.Milliseconds(),
		"handle":     nil,
		"primary":    false,
		"deviceId":   nil,
		"error":      nil,
		"rekey":      nil,
	}
	if c.rekey != nil && c.status != "locked" {
		st["rekey"] = c.rekey.toJS()
	}
	if c.lockReason != "" {
		st["lockReason"] = c.lockReason
	}
	if c.err != nil {
		st["error"] = errorObject(c.err)
	}
	if c.dev != nil {
		// No account exists until one is created or this device is linked.
		st["deviceId"] = c.dev.ID.String()
	}
	if es := host.status(); es != nil && c.status == "new" {
		st["status"] = es.Status // new, ready or revoked
		st["online"] = es.Online
		st["expired"] = es.Expired
		if es.Handle != "" {
			st["handle"] = es.Handle
		}
		st["primary"] = es.Primary
	}
	return st
}

// emitStateLocked tells every tab the state changed (c.mu held).
func (c *client) emitStateLocked() {
	st := c.stateLocked()
	go c.bus.emit("state", st)
}

func (c *client) deviceFingerprint() (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if c.status == "locked" {
		return nil, errStoreLocked
	}
	if c.dev == nil {
		return nil, newAPIError(engine.CodeNotReady, "the client is still starting; await parley.ready first")
	}
	return c.dev.Public().Fingerprint(), nil
}
