//go:build js && wasm

package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"github.com/hack-pad/safejs"

	engine "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/wasm/jsonenc"
)

// The engine's relay transport in the browser: fetch for the HTTP calls and
// the browser's WebSocket for the device socket, speaking PROTOCOL.md §10
// exactly as relayclient does natively. It exists because net/http (which
// coder/websocket and relayclient need) would add about 1.7 MB of brotli'd
// wasm; the browser already has both.

// Socket limits, as in relayclient.
const (
	// envelopeBuffer holds the relay's whole delivery window (it never has
	// more unacknowledged envelopes in flight on a socket), so queued
	// envelopes can never hold up a reply to a request behind them while
	// the engine is busy sending.
	envelopeBuffer = relay.MaxAcks
	// maxHTTPBody bounds what a relay HTTP answer may make us buffer.
	maxHTTPBody = 64 << 20
)

type browserRelay struct{ origin string }

func newBrowserRelay(origin string) engine.Relay { return &browserRelay{origin: origin} }

func (r *browserRelay) Origin() string { return r.origin }

// fetchBytes does one HTTP request and returns the body; a refusal becomes
// a *relay.RelayError with the relay's code, mapped by the engine.
func fetchBytes(ctx context.Context, method, url string, body []byte, contentType string) ([]byte, error) {
	init := map[string]any{"method": method, "cache": "no-store", "credentials": "omit"}
	ac := js.Global().Get("AbortController").New()
	init["signal"] = ac.Get("signal")
	if body != nil {
		init["body"] = safejs.Unsafe(bytesToJS(body))
		init["headers"] = map[string]any{"Content-Type": contentType}
	}
	stop := context.AfterFunc(ctx, func() { ac.Call("abort") })
	defer stop()
	resp, err := Await(safeValue(js.Global().Call("fetch", url, init)))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("relay unreachable: %w", err)
	}
	buf, err := Await(safeValue(safejs.Unsafe(resp).Call("arrayBuffer")))
	if err != nil {
		return nil, fmt.Errorf("relay answer: %w", err)
	}
	b, err := bytesFromJS(buf)
	if err != nil {
		return nil, err
	}
	if len(b) > maxHTTPBody {
		return nil, errors.New("relay answer too large")
	}
	status := safejs.Unsafe(resp).Get("status").Int()
	if status >= 300 {
		// {"code", "message"}; anything else is an internal error.
		var code, message string
		if e, err := parseJSON(b); err == nil {
			code, message = jsonString(e, "code"), jsonString(e, "message")
		}
		c, ok := relay.ParseCode(code)
		if !ok {
			c = relay.CodeInternal
		}
		return nil, &relay.RelayError{Code: c, Message: message}
	}
	return b, nil
}

// jsonBytes is a JSON request body (jsonenc, as for toJS).
func jsonBytes(v any) []byte {
	b, _ := jsonenc.Marshal(v)
	return b
}

// parseJSON parses a relay's JSON answer with the browser's JSON.parse
// (the wasm client carries no JSON decoder of its own).
func parseJSON(b []byte) (safejs.Value, error) {
	j, err := safejs.Global().Get("JSON")
	if err != nil {
		return safejs.Undefined(), err
	}
	v, err := j.Call("parse", string(b))
	if err != nil {
		return safejs.Undefined(), err
	}
	if t := v.Type(); t != safejs.TypeObject {
		return safejs.Undefined(), errors.New("not a JSON object")
	}
	return v, nil
}

// jsonString is field name of a parsed object if it is a string, else "".
func jsonString(o safejs.Value, name string) string {
	v, err := o.Get(name)
	if err != nil || v.Type() != safejs.TypeString {
		return ""
	}
	s, _ := v.String()
	return s
}

// jsonBytesField decodes field name of a parsed object as encoding/json
// decodes a []byte: a standard base64 string, or null (or absent) for nil.
func jsonBytesField(o safejs.Value, name string) ([]byte, error) {
	v, err := o.Get(name)
	if err != nil {
		return nil, err
	}
	switch v.Type() {
	case safejs.TypeNull, safejs.TypeUndefined:
		return nil, nil
	case safejs.TypeString:
		s, _ := v.String()
		return base64.StdEncoding.DecodeString(s)
	}
	return nil, fmt.Errorf("%s is not a base64 string", name)
}

func (r *browserRelay) Register(ctx context.Context, handle string, list []byte) error {
	_, err := fetchBytes(ctx, "POST", r.origin+"/v1/accounts", jsonBytes(map[string]any{"handle": handle, "device_list": list}), "application/json")
	return engine.MapRelayErr(err)
}

func (r *browserRelay) Publish(ctx context.Context, handle string, list []byte) error {
	_, err := fetchBytes(ctx, "PUT", r.origin+"/v1/accounts/"+handle+"/devices", jsonBytes(map[string]any{"device_list": list}), "application/json")
	return engine.MapRelayErr(err)
}

func (r *browserRelay) Account(ctx context.Context, handle string) ([]byte, []byte, error) {
	b, err := fetchBytes(ctx, "GET", r.origin+"/v1/accounts/"+handle, nil, "")
	if err != nil {
		return nil, nil, engine.MapRelayErr(err)
	}
	// {"account_key", "device_list"}, both base64.
	a, err := parseJSON(b)
	if err != nil {
		return nil, nil, fmt.Errorf("relay account answer: %w", err)
	}
	key, err := jsonBytesField(a, "account_key")
	if err != nil {
		return nil, nil, fmt.Errorf("relay account answer: %w", err)
	}
	list, err := jsonBytesField(a, "device_list")
	if err != nil {
		return nil, nil, fmt.Errorf("relay account answer: %w", err)
	}
	return key, list, nil
}

func (r *browserRelay) PutLink(ctx context.Context, id []byte, slot int, data []byte) error {
	_, err := fetchBytes(ctx, "PUT", fmt.Sprintf("%s/v1/link/%s/%d", r.origin, hex.EncodeToString(id), slot), data, "application/octet-stream")
	return engine.MapRelayErr(err)
}

func (r *browserRelay) GetLink(ctx context.Context, id []byte, slot int, wait time.Duration) ([]byte, error) {
	b, err := fetchBytes(ctx, "GET", fmt.Sprintf("%s/v1/link/%s/%d?wait=%d", r.origin, hex.EncodeToString(id), slot, int(wait/time.Second)), nil, "")
	return b, engine.MapRelayErr(err)
}

func (r *browserRelay) PutBlob(ctx context.Context, id [16]byte, data []byte) error {
	url := r.origin + "/v1/blobs/" + hex.EncodeToString(id[:])
	_, err := fetchBytes(ctx, "PUT", url, data, "application/octet-stream")
	if err == nil {
		keepBlob(url, data) // our own file shows offline too (blobcache.go)
	}
	return engine.MapRelayErr(err)
}

// GetBlob asks the relay, and the browser's copy only when the relay
// cannot be reached (blobcache.go).
func (r *browserRelay) GetBlob(ctx context.Context, id [16]byte) ([]byte, error) {
	url := r.origin + "/v1/blobs/" + hex.EncodeToString(id[:])
	b, err := fetchBytes(ctx, "GET", url, nil, "")
	if err == nil {
		keepBlob(url, b)
		return b, nil
	}
	var re *relay.RelayError
	if !errors.As(err, &re) && ctx.Err() == nil {
		if kept, ok := cachedBlob(url); ok {
			return kept, nil
		}
	}
	return nil, engine.MapRelayErr(err)
}

// ---- the device socket ----

type browserConn struct {
	ws    js.Value
	funcs []js.Func

	envs   chan *relay.Envelope
	low    chan relay.Stock
	done   chan struct{}
	ready  relay.Ready
	frames chan relay.Frame // before Ready: challenge and the auth answer

	qmu   sync.Mutex
	queue []relay.Frame // after Ready, from the JS callback to pump
	qsig  chan struct{}

	calls relay.Calls // requests and their answers; why the socket ended
}

// Connect opens the socket and answers the relay's challenge by signing
// (challenge, origin, time, handle, device id) with the device key.
func (r *browserRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (engine.Conn, error) {
	c := &browserConn{
		envs:   make(chan *relay.Envelope, envelopeBuffer),
		low:    make(chan relay.Stock, 4),
		done:   make(chan struct{}),
		frames: make(chan relay.Frame, 2),
		qsig:   make(chan struct{}, 1),
	}
	c.ws = js.Global().Get("WebSocket").New(relay.SocketURL(r.origin), relay.Subprotocol)
	c.ws.Set("binaryType", "arraybuffer")
	on := func(name string, fn func(js.Value)) {
		f := js.FuncOf(func(_ js.Value, args []js.Value) any {
			fn(args[0])
			return nil
		})
		c.funcs = append(c.funcs, f)
		c.ws.Set(name, f)
	}
	authed := false
	// Frames are handed from the JS callback to one goroutine through an
	// unbounded queue: a js.FuncOf callback must never block (the engine
	// that drains the envelopes needs the event loop, e.g. for IndexedDB,
	// and would never run). The relay bounds what is in flight per socket
	// (its delivery window), so the queue stays small.
	go c.pump()
	on("onmessage", func(ev js.Value) {
		data := ev.Get("data")
		if !data.InstanceOf(js.Global().Get("ArrayBuffer")) {
			c.finish(errors.New("relay sent a text message"))
			return
		}
		b, _ := bytesFromJS(safeValue(data))
		f, err := relay.Decode(b)
		if err != nil {
			c.finish(fmt.Errorf("relay frame: %w", err))
			c.ws.Call("close", 1002, "bad frame")
			return
		}
		if !authed {
			if _, ok := f.(*relay.Ready); ok {
				authed = true
			}
			select {
			case c.frames <- f:
			default:
			}
			return
		}
		c.enqueue(f)
	})
	on("onclose", func(ev js.Value) {
		code := ev.Get("code").Int()
		err := errors.New("relay connection closed")
		if code >= 4000 {
			// The relay closes with CloseBase+code after an Error frame.
			err = &relay.RelayError{Code: relay.Code(code - 4000), Message: ev.Get("reason").String()}
		}
		c.finish(err)
	})
	on("onerror", func(js.Value) {}) // onclose follows with the reason

	wait := func() (relay.Frame, error) {
		select {
		case f := <-c.frames:
			return f, nil
		case <-c.done:
			return nil, c.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f, err := wait()
	if err != nil {
		c.Close()
		return nil, engine.MapRelayErr(err)
	}
	ch, ok := f.(*relay.Challenge)
	if !ok {
		c.Close()
		return nil, errors.New("relay did not send a challenge")
	}
	auth := &relay.Auth{Handle: handle, Device: dev.ID, Timestamp: uint64(time.Now().UnixMilli())}
	sig := dev.Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, r.origin, auth.Timestamp, handle, dev.ID))
	copy(auth.Sig[:], sig)
	c.write(relay.Encode(auth))
	if f, err = wait(); err != nil {
		c.Close()
		return nil, engine.MapRelayErr(err)
	}
	switch f := f.(type) {
	case *relay.Ready:
		c.ready = *f
		return c, nil
	case *relay.Error:
		c.Close()
		return nil, engine.MapRelayErr(&relay.RelayError{Code: f.Code, Message: f.Message})
	}
	c.Close()
	return nil, errors.New("relay did not confirm the login")
}

func (c *browserConn) write(b []byte) error {
	if c.calls.Closed() {
		return fmt.Errorf("relay connection closed: %w", c.Err())
	}
	c.ws.Call("send", safejs.Unsafe(bytesToJS(b)))
	return nil
}

func (c *browserConn) enqueue(f relay.Frame) {
	c.qmu.Lock()
	c.queue = append(c.queue, f)
	c.qmu.Unlock()
	select {
	case c.qsig <- struct{}{}:
	default:
	}
}

// pump dispatches queued frames in order until the socket ends.
func (c *browserConn) pump() {
	for {
		select {
		case <-c.qsig:
		case <-c.done:
			return
		}
		for {
			c.qmu.Lock()
			if len(c.queue) == 0 {
				c.qmu.Unlock()
				break
			}
			f := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.qmu.Unlock()
			c.dispatch(f)
		}
	}
}

func (c *browserConn) dispatch(f relay.Frame) {
	if c.calls.Answer(f) {
		return
	}
	switch f := f.(type) {
	case *relay.Envelope:
		select {
		case c.envs <- f:
		case <-c.done:
		}
	case *relay.LowStock:
		select {
		case c.low <- f.Stock:
		default:
		}
	case *relay.Error: // request 0: the relay ends the socket
		c.finish(&relay.RelayError{Code: f.Code, Message: f.Message})
	}
}

func (c *browserConn) finish(err error) {
	if c.calls.Close(err) {
		close(c.done)
	}
}

// request sends a request frame and waits for its answer; a Stale answer
// becomes the engine's *StaleError.
func (c *browserConn) request(ctx context.Context, build func(req uint32) relay.Frame) (relay.Frame, error) {
	f, err := c.calls.Do(ctx, c.write, build)
	if st, ok := f.(*relay.Stale); ok {
		return nil, &engine.StaleError{Accounts: st.Accounts}
	}
	return f, err
}

func (c *browserConn) Envelopes() <-chan *relay.Envelope { return c.envs }
func (c *browserConn) LowStock() <-chan relay.Stock      { return c.low }
func (c *browserConn) Stock() relay.Stock                { return c.ready.Stock }
func (c *browserConn) Done() <-chan struct{}             { return c.done }

func (c *browserConn) Err() error { return c.calls.Err() }

func (c *browserConn) Ack(ctx context.Context, seqs ...uint64) error {
	for len(seqs) > 0 {
		n := min(len(seqs), relay.MaxAcks)
		if err := c.write(relay.Encode(&relay.Ack{Seqs: seqs[:n]})); err != nil {
			return err
		}
		seqs = seqs[n:]
	}
	return nil
}

func (c *browserConn) Send(ctx context.Context, id [16]byte, to []relay.Sealed) error {
	_, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.Send{Req: req, MessageID: id, To: to} })
	return err
}

func (c *browserConn) GroupSend(ctx context.Context, id [16]byte, payload []byte, to []relay.Addr) error {
	_, err := c.request(ctx, func(req uint32) relay.Frame {
		return &relay.GroupSend{Req: req, MessageID: id, Payload: payload, To: to}
	})
	return err
}

func (c *browserConn) Fetch(ctx context.Context, of relay.Addr) (*relay.Bundle, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.Fetch{Req: req, Of: of} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.Bundle), nil
}

func (c *browserConn) UploadPrekeys(ctx context.Context, p relay.Prekeys) error {
	_, err := c.request(ctx, func(req uint32) relay.Frame { p.Req = req; return &p })
	return err
}

func (c *browserConn) ReserveBlob(ctx context.Context) (*relay.BlobID, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.BlobReserve{Req: req} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.BlobID), nil
}

// Close closes the socket and releases its callbacks.
func (c *browserConn) Close() error {
	c.finish(errors.New("closed"))
	c.ws.Call("close", 1000)
	for _, f := range c.funcs {
		defer f.Release()
	}
	c.ws.Set("onmessage", js.Null())
	c.ws.Set("onclose", js.Null())
	c.ws.Set("onerror", js.Null())
	return nil
}
