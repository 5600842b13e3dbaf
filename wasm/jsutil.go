//go:build js && wasm

package main

import (
	"errors"
	"fmt"
	engine "github.com/parley-im/parley/client"
	"sync"
	"syscall/js"

	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
)

// apiError is what every window.parley call rejects with: a JS Error with a
// stable machine-readable code and a sentence for people.
type apiError struct {
	Code    engine.Code
	Message string
}

func (e *apiError) Error() string { return string(e.Code) + ": " + e.Message }

func newAPIError(code engine.Code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// toJSError turns any Go error into the {code, message} shape; errors that
// are not apiErrors become code "internal" so nothing unexplained leaks as a
// bare string.
func toJSError(err error) js.Value {
	var ae *apiError
	if !errors.As(err, &ae) {
		code := engine.CodeInternal
		switch {
		case errors.Is(err, storage.ErrCorrupt):
			code = engine.CodeStorageCorrupt
		case errors.Is(err, storage.ErrNotFound):
			code = engine.CodeNotFound
		case errors.Is(err, storage.ErrInvalid):
			code = engine.CodeInvalidArgument
		}
		ae = &apiError{Code: code, Message: err.Error()}
	}
	e := js.Global().Get("Error").New(ae.Message)
	e.Set("code", string(ae.Code))
	return e
}

// Await blocks the calling goroutine until the JS promise p settles. It must
// never run on the goroutine of a js.FuncOf callback (that deadlocks the Go
// runtime); API entry points run their work in a fresh goroutine, see
// promise.
//
// boot.js's watch(p, id, settled) attaches the handlers: every await goes
// through the one settled callback made at start-up, keyed by id, rather
// than two js.FuncOf made and released per await (each a call across the
// boundary and a finalized JS value, on every IndexedDB and WebCrypto
// step of a received message).
func Await(p safejs.Value) (safejs.Value, error) {
	ch := make(chan awaitResult, 1)
	awaits.Lock()
	if awaits.waiting == nil {
		awaits.waiting = map[uint32]chan<- awaitResult{}
		awaits.settled = js.FuncOf(settleAwait)
	}
	awaits.next++
	id := awaits.next
	awaits.waiting[id] = ch
	settled := awaits.settled
	awaits.Unlock()
	jsStore.Call("watch", safejs.Unsafe(p), id, settled)
	r := <-ch
	return r.v, r.err
}

type awaitResult struct {
	v   safejs.Value
	err error
}

// awaits are the promises Await is waiting for, by id.
var awaits struct {
	sync.Mutex
	next    uint32
	waiting map[uint32]chan<- awaitResult
	settled js.Func
}

// settleAwait is watch's callback: (id, fulfilled, value or reason).
func settleAwait(_ js.Value, args []js.Value) any {
	if len(args) < 3 {
		return nil
	}
	id := uint32(args[0].Int())
	awaits.Lock()
	ch := awaits.waiting[id]
	delete(awaits.waiting, id)
	awaits.Unlock()
	if ch == nil {
		return nil
	}
	if args[1].Bool() {
		ch <- awaitResult{v: safejs.Safe(args[2])}
	} else {
		ch <- awaitResult{err: jsReason(safejs.Safe(args[2]))}
	}
	return nil
}

// jsReason describes a rejection reason (usually a DOMException) as an error.
func jsReason(v safejs.Value) error {
	name, _ := v.Get("name")
	msg, _ := v.Get("message")
	n, _ := name.String()
	m, _ := msg.String()
	if n == "" && m == "" {
		s, _ := v.String()
		return errors.New("javascript: " + s)
	}
	return fmt.Errorf("javascript %s: %s", n, m)
}

// promise runs fn in its own goroutine and returns a JS Promise settled
// with its result, so JS callers never block and fn may Await freely.
func promise(fn func() (any, error)) js.Value {
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := fn()
			if err != nil {
				reject.Invoke(toJSError(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	// The executor runs synchronously inside the Promise constructor, so it
	// can be released as soon as New returns.
	p := js.Global().Get("Promise").New(executor)
	executor.Release()
	return p
}

// bytesToJS copies b into a new Uint8Array.
func bytesToJS(b []byte) safejs.Value {
	u8 := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u8, b)
	return safejs.Safe(u8)
}

// bytesFromJS copies a Uint8Array (or ArrayBuffer) into Go.
func bytesFromJS(v safejs.Value) ([]byte, error) {
	raw := safejs.Unsafe(v)
	if raw.InstanceOf(js.Global().Get("ArrayBuffer")) {
		raw = js.Global().Get("Uint8Array").New(raw)
	}
	if !raw.InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, errors.New("expected a Uint8Array")
	}
	b := make([]byte, raw.Get("byteLength").Int())
	js.CopyBytesToGo(b, raw)
	return b, nil
}

// safeValue wraps a raw js.Value for the safejs helpers.
func safeValue(v js.Value) safejs.Value { return safejs.Safe(v) }
