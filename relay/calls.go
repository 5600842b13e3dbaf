package relay

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// SocketURL turns a relay origin ("https://host") into its device socket
// URL (wss://host/v1/ws).
func SocketURL(origin string) string {
	switch {
	case strings.HasPrefix(origin, "https://"):
		return "wss://" + strings.TrimPrefix(origin, "https://") + "/v1/ws"
	default:
		return "ws://" + strings.TrimPrefix(origin, "http://") + "/v1/ws"
	}
}

// Calls pairs the requests a client sends on one socket with the relay's
// answers, by request id. Both client transports use it: the native
// relayclient (coder/websocket) and the browser's (wasm/relay.go), which
// differ only in how bytes reach the socket.
type Calls struct {
	mu     sync.Mutex
	next   uint32
	waits  map[uint32]chan Frame
	err    error
	closed bool
}

// Do sends the frame build makes for a fresh request id through write and
// waits for its answer. An Error answer returns a *RelayError; any other
// answer (OK, Stale, Bundle, BlobID) is returned as the frame, so a caller
// turns Stale into its own error type.
func (c *Calls) Do(ctx context.Context, write func([]byte) error, build func(req uint32) Frame) (Frame, error) {
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("relay socket closed: %w", err)
	}
	if c.waits == nil {
		c.waits = map[uint32]chan Frame{}
	}
	c.next++
	if c.next == 0 {
		c.next = 1
	}
	req := c.next
	ch := make(chan Frame, 1)
	c.waits[req] = ch
	c.mu.Unlock()
	if err := write(Encode(build(req))); err != nil {
		c.forget(req)
		return nil, err
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("relay socket closed: %w", c.Err())
		}
		if e, ok := f.(*Error); ok {
			return nil, &RelayError{Code: e.Code, Message: e.Message}
		}
		return f, nil
	case <-ctx.Done():
		c.forget(req)
		return nil, ctx.Err()
	}
}

func (c *Calls) forget(req uint32) {
	c.mu.Lock()
	delete(c.waits, req)
	c.mu.Unlock()
}

// Answer hands an answer frame to the call waiting for it and reports
// whether f was an answer (OK, Stale, Bundle, BlobID, or an Error with a
// request id); an answer nobody waits for any more is dropped.
func (c *Calls) Answer(f Frame) bool {
	var req uint32
	switch f := f.(type) {
	case *OK:
		req = f.Req
	case *Stale:
		req = f.Req
	case *Bundle:
		req = f.Req
	case *BlobID:
		req = f.Req
	case *Error:
		if f.Req == 0 {
			return false
		}
		req = f.Req
	default:
		return false
	}
	c.mu.Lock()
	ch := c.waits[req]
	delete(c.waits, req)
	c.mu.Unlock()
	if ch != nil {
		ch <- f
	}
	return true
}

// Close ends every waiting call; err (the first one given) is why the
// socket ended. It reports whether this call closed it.
func (c *Calls) Close(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed, c.err = true, err
	for id, ch := range c.waits {
		close(ch)
		delete(c.waits, id)
	}
	return true
}

// Err is why the socket ended, or nil while it is open.
func (c *Calls) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Closed reports whether Close was called.
func (c *Calls) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
