//go:build js && wasm

package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall/js"

	"github.com/hack-pad/safejs"

	engine "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/cache"
	"github.com/parley-im/parley/client/storage/journal"
	"github.com/parley-im/parley/client/storage/keyname"
	"github.com/parley-im/parley/client/storage/sealroot"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/wasm/jsonenc"
)

// This file plugs the messenger engine (client/) into the owner tab
// through the startEngine seam, and registers the engine half of the
// window.parley API (README, "The browser API"). Every method runs in the
// owner tab; views reach it over the bus.

// maxFileBytes bounds sendFile before the bytes cross tabs; the engine has
// its own attachment limit and reports it precisely.
const maxFileBytes = 64 << 20

// engineHost holds the running engine.
type engineHost struct {
	mu     sync.Mutex
	eng    *engine.Engine
	cancel context.CancelFunc
	cache  *cache.Store    // the engine's read cache over the sealed store
	timed  *timedStore     // what reaches IndexedDB below the cache
	root   *sealroot.Store // the cache behind the sealed root: every write of a security record goes through it
	names  *keyname.Store  // the naming layer over IndexedDB (names.go)
	err    error           // why the engine could not start
}

var host engineHost

func (h *engineHost) get() (*engine.Engine, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eng == nil {
		if h.err != nil {
			return nil, h.err
		}
		return nil, newAPIError(errStoreLocked.Code, "%s", errStoreLocked.Message)
	}
	return h.eng, nil
}

// status is the engine's part of state(): nil when no engine runs.
func (h *engineHost) status() *engine.Status {
	h.mu.Lock()
	e := h.eng
	h.mu.Unlock()
	if e == nil {
		return nil
	}
	st := e.Status()
	return &st
}

func init() {
	startEngine = func(st storage.Store, read startRead, dev *identity.Device, b *bus) (func(), error) {
		origin := js.Global().Get("location").Get("origin").String()
		ctx, cancel := context.WithCancel(context.Background())
		// Only this (owner) tab's engine writes the store, and it writes
		// through the cache, so the cache is coherent; it is dropped (its
		// plaintext zeroed) when the engine stops, before a lock closes
		// the store.
		// A received message's batch goes into IndexedDB as one journal
		// record (client/storage/journal, PROTOCOL.md 13.6) rather than
		// one record per operation, each its own request; Open applies
		// what a previous run left in the journal. When the start-up read
		// just counted none, New skips reading it again (2-5 ms of the
		// path to ready).
		// The naming layer sits just above IndexedDB, below the journal
		// (whose records hold the engine's own keys, sealed); an older
		// profile is renamed first (names.go).
		names, nameKey, marked, err := openNames(ctx, st, read.canary)
		if err != nil {
			cancel()
			return nil, err
		}
		jst := journal.New(names)
		if read.journaled > 0 {
			jst, err = journal.Open(ctx, names)
		}
		if err != nil {
			clear(nameKey[:])
			host.mu.Lock()
			host.eng, host.cancel, host.cache, host.timed, host.names, host.err = nil, nil, nil, nil, nil, toAPIError(err)
			host.mu.Unlock()
			cancel()
			return func() {}, nil
		}
		timed := &timedStore{inner: jst}
		cached := cache.New(timed, cache.DefaultLimit)
		// engine.Open reads engineStartRefs first. Start-up read them
		// with its own records; they are current unless a journal left
		// by a previous run has just been applied, which may have
		// changed them, and then one transaction reads both again.
		refs := make([]cache.Ref, len(engineStartRefs))
		for i, r := range engineStartRefs {
			refs[i] = cache.Ref{Bucket: r.bucket, Key: r.key}
		}
		if read.journaled == 0 && len(read.vals) == len(refs) {
			cached.Prime(refs, read.vals, read.errs)
		} else if err := cached.Warm(ctx, refs); err != nil {
			consoleLogger{}.Warn("start-up read failed", "err", err)
		}
		root, err := openRoot(ctx, cached, read.canary, marked)
		if err != nil {
			cancel()
			cached.Close()
			jst.Close()
			clear(nameKey[:])
			host.mu.Lock()
			host.eng, host.cancel, host.cache, host.timed, host.root, host.err = nil, nil, nil, nil, nil, err
			host.mu.Unlock()
			return nil, err
		}
		eng, err := engine.Open(ctx, engine.Config{
			Store:  root,
			Relay:  newBrowserRelay(origin),
			Device: dev,
			OnEvent: func(ev engine.Event) {
				b.emit(ev.Type, toJS(ev))
			},
			Logger: consoleLogger{},
			// WebCrypto where it is faster (webcrypto_backends.go).
			BulkCipher: installWebCrypto(),
		})
		host.mu.Lock()
		host.eng, host.cancel, host.cache, host.timed, host.root, host.names, host.err = eng, cancel, cached, timed, root, names, nil
		if err != nil {
			host.eng, host.cache, host.timed, host.root, host.names, host.err = nil, nil, nil, nil, nil, toAPIError(err)
		}
		host.mu.Unlock()
		if err != nil {
			cancel()
			cached.Close()
			jst.Close()
			clear(nameKey[:])
			return func() {}, nil
		}
		go func() {
			// The API works now; connecting can wait until ready has
			// been delivered (main.go, afterReady).
			select {
			case <-afterReady:
			case <-ctx.Done():
				return
			}
			runEngine(ctx, eng, b)
		}()
		return func() {
			cancel()
			cached.Close()
			jst.Close()
			clear(nameKey[:]) // a lock leaves no naming key in memory
			host.mu.Lock()
			host.eng, host.cancel, host.cache, host.timed, host.root, host.names = nil, nil, nil, nil, nil, nil
			host.mu.Unlock()
		}, nil
	}
	apiHooks = append(apiHooks, registerEngineAPI)
}

// openRoot checks the security records against their sealed root
// (PROTOCOL.md 13.7) and returns the store that keeps it. A profile whose
// canary predates roots gets one made from its records as they are, in
// the batch that writes marked as its canary; afterwards an absent root
// is a deletion.
func openRoot(ctx context.Context, st storage.Store, canary, marked []byte) (*sealroot.Store, error) {
	opts := sealroot.Options{
		Bucket: bucketMeta, Key: recRoot,
		Covered: append(engine.SecurityRecords(), sealroot.Range{Bucket: bucketMeta, Prefix: recIdleLock}),
	}
	if len(canary) == canaryLen {
		opts.Create = true
		opts.OnCreate = []storage.Op{{Bucket: bucketMeta, Key: recCanary, Value: marked}}
	}
	root, err := sealroot.Open(ctx, st, opts)
	switch {
	case err == nil:
		return root, nil
	case errors.Is(err, sealroot.ErrRolledBack):
		return nil, newAPIError(engine.CodeStorageRolledBack, "Parley's security records on this device (sessions, prekeys, pinned keys, the idle lock) do not match their sealed root: some were deleted or replaced by older copies. Nothing has been deleted (%v)", err)
	case errors.Is(err, storage.ErrCorrupt):
		return nil, newAPIError(engine.CodeStorageCorrupt, "%v", err)
	default:
		return nil, newAPIError(engine.CodeStorageUnavailable, "%v", err)
	}
}

// runEngine keeps the engine connected while it has an account. Before an
// account exists it waits for createAccount or a link to finish.
func runEngine(ctx context.Context, eng *engine.Engine, b *bus) {
	for ctx.Err() == nil {
		err := eng.Run(ctx)
		if errors.Is(err, engine.ErrNoAccount) {
			select {
			case <-ctx.Done():
				return
			case <-accountReady:
			}
			continue
		}
		if errors.Is(err, engine.ErrRevoked) {
			b.emit("state", js.ValueOf(map[string]any{"status": "revoked"}))
			return
		}
		return
	}
}

// accountReady wakes runEngine when an account appears on this device.
var accountReady = make(chan struct{}, 1)

func signalAccount() {
	select {
	case accountReady <- struct{}{}:
	default:
	}
}

// toJS turns a Go value into a plain JS value through JSON (the engine's
// types carry json tags: the same names the README documents). jsonenc
// writes the text as encoding/json would, at a fraction of its size in the
// wasm.
func toJS(v any) js.Value {
	b, err := jsonenc.Marshal(v)
	if err != nil {
		return js.Null()
	}
	return js.Global().Get("JSON").Call("parse", string(b))
}

// toAPIError keeps the engine's {code, message}.
func toAPIError(err error) error {
	var ce *engine.Error
	if errors.As(err, &ce) {
		return &apiError{Code: ce.Code, Message: ce.Message}
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return &apiError{Code: engine.CodeInternal, Message: err.Error()}
}

func str(args []js.Value, i int) string {
	if i < len(args) && args[i].Type() == js.TypeString {
		return args[i].String()
	}
	return ""
}

// registerEngineAPI adds the engine's methods: handlers in the owner and
// forwarders in every tab.
func registerEngineAPI(b *bus, api func(string, func([]js.Value) (any, error)), forward func(string)) {
	type fn func(ctx context.Context, e *engine.Engine, args []js.Value) (any, error)
	method := func(name string, f fn) {
		b.handle(name, func(ctx context.Context, _ string, args []js.Value) (any, error) {
			e, err := host.get()
			if err != nil {
				return nil, err
			}
			v, err := f(ctx, e, args)
			if err != nil {
				return nil, toAPIError(err)
			}
			if v == nil {
				return js.Undefined(), nil
			}
			if jv, ok := v.(js.Value); ok {
				return jv, nil
			}
			return toJS(v), nil
		})
		forward(name)
	}

	method("createAccount", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		if err := e.CreateAccount(ctx, str(a, 0), str(a, 1)); err != nil {
			return nil, err
		}
		signalAccount()
		return e.Status(), nil
	})
	method("startLink", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return e.StartLink(ctx, str(a, 0))
	})
	method("waitLinked", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		handle, err := e.WaitLinked(ctx)
		if err != nil {
			return nil, err
		}
		signalAccount()
		return map[string]string{"handle": handle, "deviceId": e.Device().ID.String()}, nil
	})
	method("confirmLinkCode", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.ConfirmLinkCode()
	})
	method("rejectLinkCode", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.RejectLinkCode()
	})
	method("approveLink", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return e.ApproveLink(ctx, strings.TrimSpace(str(a, 0)))
	})
	method("confirmLink", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.ConfirmLink(ctx, str(a, 0))
	})
	method("cancelLink", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.CancelLink(str(a, 0))
	})
	method("send", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		to, text := str(a, 0), str(a, 1)
		var id string
		var err error
		if strings.HasPrefix(to, "g:") {
			id, err = e.SendGroupText(ctx, to, text)
		} else {
			id, err = e.SendText(ctx, to, text)
		}
		if err != nil {
			return nil, err
		}
		return map[string]string{"id": id}, nil
	})
	method("chats", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		c, err := e.Chats(ctx)
		if c == nil && err == nil {
			c = []engine.Chat{}
		}
		return c, err
	})
	method("messages", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		var before string
		limit := 50
		if len(a) > 1 && a[1].Type() == js.TypeObject {
			if v := a[1].Get("before"); v.Type() == js.TypeString {
				before = v.String()
			}
			if v := a[1].Get("limit"); v.Type() == js.TypeNumber {
				limit = v.Int()
			}
		}
		m, err := e.Messages(ctx, str(a, 0), before, limit)
		if m == nil && err == nil {
			m = []engine.Message{}
		}
		return m, err
	})
	// State synced across this account's devices (contacts, read
	// markers, archived/muted chats, settings).
	method("setContactName", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.SetContactName(ctx, str(a, 0), str(a, 1))
	})
	method("setChatArchived", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.SetChatArchived(ctx, str(a, 0), len(a) > 1 && a[1].Truthy())
	})
	method("setChatMuted", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.SetChatMuted(ctx, str(a, 0), len(a) > 1 && a[1].Truthy())
	})
	method("setSetting", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.SetSetting(ctx, str(a, 0), str(a, 1))
	})
	method("syncedState", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return e.SyncedState(ctx)
	})
	method("stats", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		type stats struct {
			engine.Stats
			storeStats
			CacheHits    uint64 `json:"cacheHits"`
			CacheMisses  uint64 `json:"cacheMisses"`
			CacheBytes   int    `json:"cacheBytes"`
			CacheEntries int    `json:"cacheEntries"`
		}
		st := stats{Stats: e.Stats()}
		host.mu.Lock()
		c, t := host.cache, host.timed
		host.mu.Unlock()
		if t != nil {
			st.storeStats = t.stats()
		}
		if c != nil {
			cs := c.Stats()
			st.CacheHits, st.CacheMisses, st.CacheBytes, st.CacheEntries = cs.Hits, cs.Misses, cs.Bytes, cs.Entries
		}
		return st, nil
	})
	method("markRead", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.MarkRead(ctx, str(a, 0))
	})
	method("devices", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return e.Devices(ctx, true)
	})
	method("revokeDevice", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.RevokeDevice(ctx, str(a, 0))
	})
	method("renameDevice", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.RenameDevice(ctx, str(a, 0), str(a, 1))
	})
	method("reattest", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.Reattest(ctx)
	})
	method("safetyNumber", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		sn, err := e.SafetyNumber(ctx, str(a, 0))
		if err != nil {
			return nil, err
		}
		svg, err := engine.QRSVG(string(sn.QR))
		if err != nil {
			return nil, err
		}
		return map[string]string{"digits": sn.Grouped(), "qrSvg": svg}, nil
	})
	// acknowledgeSafetyNumber(handle, digits) pins the key whose number,
	// from safetyNumber(handle), the user was shown: digits are passed back.
	method("acknowledgeSafetyNumber", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.AcknowledgeSafetyNumber(ctx, str(a, 0), str(a, 1))
	})
	method("createGroup", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		var members []string
		if len(a) > 1 && a[1].Type() == js.TypeObject {
			for i := 0; i < a[1].Length() && i < 256; i++ {
				members = append(members, a[1].Index(i).String())
			}
		}
		id, err := e.CreateGroup(ctx, str(a, 0), members)
		if err != nil {
			return nil, err
		}
		return map[string]string{"id": id}, nil
	})
	method("addMember", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.AddMember(ctx, str(a, 0), str(a, 1))
	})
	method("removeMember", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.RemoveMember(ctx, str(a, 0), str(a, 1))
	})
	method("renameGroup", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.RenameGroup(ctx, str(a, 0), str(a, 1))
	})
	method("leaveGroup", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		return nil, e.LeaveGroup(ctx, str(a, 0))
	})
	method("groups", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		g, err := e.Groups(ctx)
		if g == nil && err == nil {
			g = []engine.Group{}
		}
		return g, err
	})
	// sendFileData takes the bytes the calling tab read from a File.
	method("sendFileData", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		if len(a) < 2 || a[1].Type() != js.TypeObject {
			return nil, newAPIError(engine.CodeInvalidArgument, "sendFile(to, file)")
		}
		o := a[1]
		data, err := bytesFromJS(safeValue(o.Get("data")))
		if err != nil {
			return nil, newAPIError(engine.CodeInvalidArgument, "file data: %v", err)
		}
		f := engine.File{Name: o.Get("name").String(), Type: o.Get("type").String(), Data: data}
		if c := o.Get("caption"); c.Type() == js.TypeString {
			f.Caption = c.String()
		}
		id, err := e.SendAttachment(ctx, str(a, 0), f)
		if err != nil {
			return nil, err
		}
		return map[string]string{"id": id}, nil
	})
	// sendFile(to, file, {caption}) reads the File or Blob in the calling
	// tab, then hands the bytes to the owner (structured clone of the
	// buffer). The caption travels in the attachment (PROTOCOL.md 14.4) and
	// is the message's text on every device.
	api("sendFile", func(args []js.Value) (any, error) {
		if len(args) < 2 || args[1].Type() != js.TypeObject || args[1].Get("arrayBuffer").Type() != js.TypeFunction {
			return nil, newAPIError(engine.CodeInvalidArgument, "sendFile(to, file) takes a File or Blob")
		}
		f := args[1]
		if f.Get("size").Int() > maxFileBytes {
			return nil, newAPIError(engine.CodeTooLarge, "the file is larger than %d MiB", maxFileBytes>>20)
		}
		buf, err := Await(safeValue(f.Call("arrayBuffer")))
		if err != nil {
			return nil, err
		}
		o := js.Global().Get("Object").New()
		o.Set("data", safejs.Unsafe(buf))
		name := f.Get("name")
		if name.Type() != js.TypeString {
			name = js.ValueOf("file")
		}
		o.Set("name", name)
		o.Set("type", f.Get("type"))
		if len(args) > 2 && args[2].Type() == js.TypeObject {
			if c := args[2].Get("caption"); c.Type() == js.TypeString {
				o.Set("caption", c)
			}
		}
		return b.call("sendFileData", []js.Value{args[0], o})
	})
	// fileURL(messageId) decrypts an attachment in the owner and returns an
	// object URL in the calling tab (revoke it with URL.revokeObjectURL).
	api("fileURL", func(args []js.Value) (any, error) {
		data, err := b.call("fileData", args)
		if err != nil {
			return nil, err
		}
		blob := js.Global().Get("Blob").New([]any{data})
		return js.Global().Get("URL").Call("createObjectURL", blob), nil
	})
	method("fileData", func(ctx context.Context, e *engine.Engine, a []js.Value) (any, error) {
		data, err := e.FetchAttachment(ctx, str(a, 0))
		if err != nil {
			return nil, err
		}
		return safejs.Unsafe(bytesToJS(data)), nil
	})
}

// consoleLogger sends the engine's warnings to the browser console (not
// errors: the e2e harness treats console errors as failures; the engine
// never logs secrets or plaintext).
type consoleLogger struct{}

func (consoleLogger) Info(string, ...any) {}
func (consoleLogger) Warn(msg string, args ...any) {
	var sb strings.Builder
	sb.WriteString("parley: " + msg)
	for i := 0; i+1 < len(args); i += 2 {
		k, _ := args[i].(string)
		sb.WriteString(" " + k + "=")
		switch v := args[i+1].(type) {
		case string:
			sb.WriteString(v)
		case error:
			sb.WriteString(v.Error())
		default:
			sb.WriteString("?")
		}
	}
	js.Global().Get("console").Call("warn", sb.String())
}
func (l consoleLogger) Error(msg string, args ...any) { l.Warn(msg, args...) }
