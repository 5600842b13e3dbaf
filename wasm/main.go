//go:build js && wasm

// Command wasm is the Parley client compiled for the browser (GOOS=js). It
// is the only package that touches JavaScript: it binds IndexedDB and
// WebCrypto to the pure-Go engine and publishes the window.parley API that
// the UI and the embed widget use.
//
// Every API function returns a Promise and does its work in a goroutine:
// blocking inside a js.FuncOf callback (for example awaiting a JS promise)
// would deadlock the Go runtime.
package main

import (
	"context"
	"runtime/debug"
	"sync"
	"syscall/js"

	"github.com/parley-im/parley/crypto/identity"
)

// version is the client version; the VCS revision is added when known.
const baseVersion = "0.1.0"

// client is the state behind window.parley.
type client struct {
	mu         sync.Mutex
	dev        *identity.Device
	bootErr    error
	persistent bool
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

func main() {
	parley := js.Global().Get("parley")
	boot := js.Global().Get("__parleyBoot")
	if parley.IsUndefined() || boot.IsUndefined() {
		js.Global().Get("console").Call("error", "parley: boot.js must run before the wasm")
		return
	}
	js.Global().Delete("__parleyBoot")

	c := &client{}
	parley.Set("version", version())
	parley.Set("state", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(func() (any, error) { return c.state(), nil })
	}))
	parley.Set("deviceFingerprint", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(c.deviceFingerprint)
	}))

	go func() {
		c.persistent = requestPersistence()
		dev, err := loadOrCreateDevice(context.Background())
		c.mu.Lock()
		c.dev, c.bootErr = dev, err
		c.mu.Unlock()
		// ready resolves even when storage is in an error state: the API is
		// up and state() explains the problem. It rejects only if the
		// client itself cannot run (handled in boot.js).
		boot.Call("resolve", js.Undefined())
	}()
	select {} // keep the Go runtime alive for callbacks
}

// requestPersistence asks the browser not to evict Parley's storage under
// pressure (evicted keys would mean a re-link). The answer is reported in
// state(); Chromium grants it to installed or engaged sites.
func requestPersistence() bool {
	storage := js.Global().Get("navigator").Get("storage")
	if storage.IsUndefined() || storage.Get("persist").IsUndefined() {
		return false
	}
	v, err := Await(safeValue(storage.Call("persist")))
	if err != nil {
		return false
	}
	b, _ := v.Bool()
	return b
}

func (c *client) state() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := map[string]any{
		"persistent": c.persistent,
		"handle":     nil,
		"primary":    false,
		"deviceId":   nil,
		"error":      nil,
	}
	switch {
	case c.bootErr != nil:
		st["status"] = "error"
		st["error"] = toJSError(c.bootErr)
	case c.dev == nil:
		st["status"] = "starting"
	default:
		// No account exists until one is created or this device is linked.
		st["status"] = "new"
		st["deviceId"] = c.dev.ID.String()
	}
	return st
}

func (c *client) deviceFingerprint() (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bootErr != nil {
		return nil, c.bootErr
	}
	if c.dev == nil {
		return nil, newAPIError("not_ready", "the client is still starting; await parley.ready first")
	}
	return c.dev.Public().Fingerprint(), nil
}
