//go:build js && wasm

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	engine "github.com/parley-im/parley/client"
	"sync"
	"syscall/js"
	"time"

	"github.com/hack-pad/safejs"
)

// The bus makes one tab per origin the key owner and every other tab a
// view (PROTOCOL.md 13.4).
//
// Election uses the Web Locks API: every tab requests the exclusive lock
// "parley-owner" and holds it until it closes (web/boot.js asks for it
// while the client downloads and hands Go the request, ownerPromise); the browser grants it to one
// tab at a time and, when that tab goes away (closed, navigated, crashed),
// at once to the next waiting tab. We chose a tab elected this way over a
// SharedWorker because (1) Chrome for Android has no SharedWorker, (2)
// WebAuthn (the passkey lock) and navigator.storage.persist() exist only in
// windows, and (3) an owner tab is an ordinary page the UI already runs in:
// no second wasm instance, and the engine dies with the last tab rather
// than with an invisible worker the user cannot see or close.
//
// Views talk to the owner over a BroadcastChannel (busChannel):
//
//	{t:"who", from}                          a new tab asks who owns
//	{t:"hello", owner}                       the owner announces itself
//	{t:"call", id, to, from, method, args}   a view's API call
//	{t:"reply", id, to, ok, value, error}    the owner's answer
//	{t:"event", name, data}                  an owner event, to every tab
//	{t:"touch"}                              user activity in a view
//
// Messages are structured clones, so arguments and results may be any
// cloneable value, including CryptoKeys (which stay non-extractable) and
// Blobs. A view's pending calls are re-sent when a new owner says hello, so
// a call made while the owner is closing runs on the next owner; a call
// the old owner started but did not answer may therefore run twice, and
// every handler gets the call id to make itself idempotent.
//
// Plugging in the engine (see startEngine in main.go): the owner starts the
// engine on the sealed store when storage opens and stops it on lock; each
// engine API method is registered once with b.handle(name, fn) (it runs
// only in the owner) and exposed in every tab with forward(name) in main;
// the engine's events go to every tab with b.emit(name, data). A method
// that needs the calling tab itself (WebAuthn, file pickers, object URLs)
// does that part in the tab first and forwards the rest, as setLock and
// unlock do for passkeys.
const (
	busChannel = "parley-bus"
	// doneCacheSize bounds the owner's memory of answered calls, which
	// lets it answer a re-sent call without running it twice.
	doneCacheSize = 256
	// touchEvery throttles activity messages from views.
	touchEvery = 5 * time.Second
)

// handler runs an API method in the owner. args are the JS arguments;
// callID is unique per call (stable across re-sends). The result must be
// structured-cloneable (js.ValueOf-able Go values or a js.Value).
type handler func(ctx context.Context, callID string, args []js.Value) (any, error)

type busResult struct {
	value js.Value
	err   error
}

type pendingCall struct {
	id, method string
	args       js.Value // JS array
	sentTo     string
	done       chan busResult
}

type bus struct {
	id string
	ch js.Value

	mu        sync.Mutex
	owner     bool
	ownerID   string
	handlers  map[string]handler
	pending   map[string]*pendingCall
	running   map[string]bool
	done      map[string]js.Value // call id → reply message
	doneOrder []string
	listeners map[string]map[int]js.Value
	nextL     int
	lastTouch time.Time

	onOwner func() // runs once when elected, before the hello
	onReady func() // runs once the API works in this tab
	onTouch func() // owner: activity seen
	ready   sync.Once
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newBus() *bus {
	return &bus{
		id:        newID(),
		handlers:  map[string]handler{},
		pending:   map[string]*pendingCall{},
		running:   map[string]bool{},
		done:      map[string]js.Value{},
		listeners: map[string]map[int]js.Value{},
	}
}

// start joins the channel and the election. onOwner is called (in its own
// goroutine) if and when this tab becomes the owner.
func (b *bus) start() {
	b.ch = js.Global().Get("BroadcastChannel").New(busChannel)
	b.ch.Call("addEventListener", "message", js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := args[0].Get("data")
		go b.receive(msg) // never block a JS callback
		return nil
	}))
	if ownerPromise.IsNull() {
		// No Web Locks (very old browser): run alone as the owner.
		go b.becomeOwner()
		return
	}
	// boot.js's request for the lock, which it holds for the page's life.
	ownerPromise.Call("then", js.FuncOf(func(js.Value, []js.Value) any {
		go b.becomeOwner()
		return nil
	}))
	b.post(map[string]any{"t": "who", "from": b.id})
}

func (b *bus) post(msg map[string]any) {
	b.ch.Call("postMessage", js.ValueOf(msg))
}

func (b *bus) isOwner() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owner
}

func (b *bus) role() string {
	if b.isOwner() {
		return "owner"
	}
	return "view"
}

func (b *bus) becomeOwner() {
	if b.onOwner != nil {
		b.onOwner()
	}
	b.mu.Lock()
	b.owner, b.ownerID = true, b.id
	var mine []*pendingCall
	for _, pc := range b.pending {
		mine = append(mine, pc)
	}
	b.pending = map[string]*pendingCall{}
	b.mu.Unlock()
	b.post(map[string]any{"t": "hello", "owner": b.id})
	b.ready.Do(b.onReady)
	// Calls this tab made while it was a view now run here.
	for _, pc := range mine {
		go func() {
			v, err := b.run(pc.id, pc.method, arrayToSlice(pc.args))
			pc.done <- busResult{js.ValueOf(v), err}
		}()
	}
}

// handle registers an owner-side method.
func (b *bus) handle(method string, h handler) {
	b.mu.Lock()
	b.handlers[method] = h
	b.mu.Unlock()
}

func (b *bus) run(callID, method string, args []js.Value) (any, error) {
	b.mu.Lock()
	h := b.handlers[method]
	touch := b.onTouch
	b.mu.Unlock()
	if h == nil {
		return nil, newAPIError(engine.CodeUnknownMethod, "no such method %q", method)
	}
	if touch != nil && method != "state" && method != "lockInfo" {
		touch()
	}
	return h(context.Background(), callID, args)
}

// call runs method in the owner: here if this tab owns, else forwarded.
func (b *bus) call(method string, args []js.Value) (js.Value, error) {
	id := b.id + "." + newID()
	b.mu.Lock()
	if b.owner {
		b.mu.Unlock()
		v, err := b.run(id, method, args)
		if err != nil {
			return js.Undefined(), err
		}
		return js.ValueOf(v), nil
	}
	arr := js.Global().Get("Array").New()
	for _, a := range args {
		arr.Call("push", a)
	}
	pc := &pendingCall{id: id, method: method, args: arr, done: make(chan busResult, 1)}
	b.pending[id] = pc
	if b.ownerID != "" {
		b.sendLocked(pc)
	}
	b.mu.Unlock()
	r := <-pc.done
	return r.value, r.err
}

func (b *bus) sendLocked(pc *pendingCall) {
	pc.sentTo = b.ownerID
	msg := js.ValueOf(map[string]any{"t": "call", "id": pc.id, "to": b.ownerID, "from": b.id, "method": pc.method})
	msg.Set("args", pc.args)
	b.ch.Call("postMessage", msg)
}

func (b *bus) receive(msg js.Value) {
	if msg.Type() != js.TypeObject {
		return
	}
	switch msg.Get("t").String() {
	case "who":
		if b.isOwner() {
			b.post(map[string]any{"t": "hello", "owner": b.id})
		}
	case "hello":
		owner := msg.Get("owner").String()
		b.mu.Lock()
		if b.owner {
			b.mu.Unlock()
			return
		}
		b.ownerID = owner
		for _, pc := range b.pending {
			if pc.sentTo != owner {
				b.sendLocked(pc)
			}
		}
		b.mu.Unlock()
		b.ready.Do(b.onReady)
	case "call":
		b.serve(msg)
	case "reply":
		if msg.Get("to").String() != b.id {
			return
		}
		id := msg.Get("id").String()
		b.mu.Lock()
		pc := b.pending[id]
		delete(b.pending, id)
		b.mu.Unlock()
		if pc == nil {
			return
		}
		if msg.Get("ok").Bool() {
			pc.done <- busResult{value: msg.Get("value")}
		} else {
			e := msg.Get("error")
			pc.done <- busResult{err: &apiError{Code: engine.Code(e.Get("code").String()), Message: e.Get("message").String()}}
		}
	case "event":
		b.dispatch(msg.Get("name").String(), msg.Get("data"))
	case "touch":
		if b.isOwner() && b.onTouch != nil {
			b.onTouch()
		}
	}
}

// serve answers a forwarded call addressed to this owner, at most once per
// call id while the answer is remembered.
func (b *bus) serve(msg js.Value) {
	id, from := msg.Get("id").String(), msg.Get("from").String()
	b.mu.Lock()
	if !b.owner || msg.Get("to").String() != b.id {
		b.mu.Unlock()
		return
	}
	if r, ok := b.done[id]; ok {
		b.mu.Unlock()
		b.ch.Call("postMessage", r)
		return
	}
	if b.running[id] {
		b.mu.Unlock()
		return
	}
	b.running[id] = true
	b.mu.Unlock()

	v, err := b.run(id, msg.Get("method").String(), arrayToSlice(msg.Get("args")))
	reply := js.ValueOf(map[string]any{"t": "reply", "id": id, "to": from, "ok": err == nil})
	if err != nil {
		reply.Set("error", errorObject(err))
	} else {
		reply.Set("value", js.ValueOf(v))
	}
	b.mu.Lock()
	delete(b.running, id)
	b.done[id] = reply
	b.doneOrder = append(b.doneOrder, id)
	if len(b.doneOrder) > doneCacheSize {
		delete(b.done, b.doneOrder[0])
		b.doneOrder = b.doneOrder[1:]
	}
	b.mu.Unlock()
	b.ch.Call("postMessage", reply)
}

// emit sends an event to every tab's listeners (owner only).
func (b *bus) emit(name string, data any) {
	d := js.ValueOf(data)
	msg := js.ValueOf(map[string]any{"t": "event", "name": name})
	msg.Set("data", d)
	b.ch.Call("postMessage", msg)
	go b.dispatch(name, d)
}

func (b *bus) dispatch(name string, data js.Value) {
	b.mu.Lock()
	var fns []js.Value
	for _, f := range b.listeners[name] {
		fns = append(fns, f)
	}
	b.mu.Unlock()
	for _, f := range fns {
		// A throwing listener must not take the client down.
		if _, err := safejs.Safe(f).Invoke(safejs.Safe(data)); err != nil {
			js.Global().Get("console").Call("warn", "parley: an event listener threw:", err.Error())
		}
	}
}

// on adds a listener and returns the function that removes it.
func (b *bus) on(name string, fn js.Value) js.Value {
	b.mu.Lock()
	b.nextL++
	n := b.nextL
	if b.listeners[name] == nil {
		b.listeners[name] = map[int]js.Value{}
	}
	b.listeners[name][n] = fn
	b.mu.Unlock()
	var off js.Func
	off = js.FuncOf(func(js.Value, []js.Value) any {
		b.mu.Lock()
		delete(b.listeners[name], n)
		b.mu.Unlock()
		off.Release()
		return nil
	})
	return off.Value
}

// touched is user activity in this tab (throttled when forwarded).
func (b *bus) touched() {
	b.mu.Lock()
	owner := b.owner
	send := !owner && time.Since(b.lastTouch) >= touchEvery
	if send {
		b.lastTouch = time.Now()
	}
	b.mu.Unlock()
	switch {
	case owner && b.onTouch != nil:
		b.onTouch()
	case send:
		b.post(map[string]any{"t": "touch"})
	}
}

func arrayToSlice(a js.Value) []js.Value {
	if a.IsUndefined() || a.IsNull() {
		return nil
	}
	out := make([]js.Value, a.Length())
	for i := range out {
		out[i] = a.Index(i)
	}
	return out
}

// errorObject is an error as a plain {code, message} object, which
// survives structured cloning (an Error's extra properties do not).
func errorObject(err error) js.Value {
	e := toJSError(err)
	return js.ValueOf(map[string]any{"code": e.Get("code"), "message": e.Get("message")})
}
