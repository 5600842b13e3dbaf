package relayserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/store"
	"golang.org/x/time/rate"
)

// conn is one authenticated device socket. The HTTP handler's goroutine
// reads frames. Writes (replies and deliveries) are done by a writer
// goroutine that exists only while there is something to write, so an idle
// socket costs one goroutine; pings come from the relay's pinger.
type conn struct {
	r      *Relay
	ws     *websocket.Conn
	addr   store.Addr
	ctx    context.Context
	cancel context.CancelFunc

	out      chan []byte   // replies, encoded; bounded (outQueue)
	pipeline chan struct{} // sends of this socket awaiting their commit

	mu       sync.Mutex
	inflight map[uint64]int64 // seq → server time (ms) of envelopes sent, not acked
	lastSent uint64
	mail     bool // the mailbox may hold envelopes not yet sent
	writing  bool // a writer goroutine is running
	dead     bool // the socket is finished: start no writer
	writers  sync.WaitGroup

	frames *rate.Limiter
	fetch  *rate.Limiter
	blobs  *rate.Limiter
	once   sync.Once

	// closing is set by the first fail or shut: from then on nothing more
	// is delivered or handled while the close handshake completes.
	closing atomic.Bool
	// expires is when a companion's attestation runs out (unix ms; 0 for
	// a primary); stopExpiry, under mu, cancels the timer armed for it.
	expires    atomic.Int64
	stopExpiry func() bool
}

func (r *Relay) serveWS(w http.ResponseWriter, req *http.Request) {
	if !r.ips.allow(clientIP(req)) {
		r.httpError(w, http.StatusTooManyRequests, relay.CodeRateLimited, "too many requests from this address")
		return
	}
	if r.nconns.Add(1) > int64(r.cfg.MaxConnections) {
		r.nconns.Add(-1)
		r.httpError(w, http.StatusServiceUnavailable, relay.CodeBusy, "the relay is at its connection limit; retry later")
		return
	}
	defer r.nconns.Add(-1)
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.httpError(w, http.StatusServiceUnavailable, relay.CodeBusy, "the relay is shutting down")
		return
	}
	r.sockets.Add(1)
	r.mu.Unlock()
	defer r.sockets.Done()

	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{relay.Subprotocol}})
	if err != nil {
		return // Accept has answered the request
	}
	defer ws.CloseNow()
	if ws.Subprotocol() != relay.Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+relay.Subprotocol+" required")
		return
	}
	// Until Auth succeeds a socket may hold no more than the largest Auth
	// frame (run raises the limit after login): a stranger's unfinished
	// message must not pin a megabyte per socket.
	ws.SetReadLimit(relay.MaxPreAuthFrame)
	ctx, cancel := context.WithCancel(r.base)
	defer cancel()
	c := &conn{
		r: r, ws: ws, ctx: ctx, cancel: cancel,
		out:      make(chan []byte, outQueue),
		pipeline: make(chan struct{}, maxPipelined),
		inflight: make(map[uint64]int64),
		frames:   rate.NewLimiter(frameRate, frameBurst),
		fetch:    rate.NewLimiter(fetchRate, fetchBurst),
		blobs:    rate.NewLimiter(blobRate, blobBurst),
	}
	c.run()
}

// closeReason trims a reason to what a WebSocket close frame can carry.
func closeReason(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// fail sends an Error frame (best effort) and closes the socket with the
// code. It may be called from any goroutine and more than once.
func (c *conn) fail(req uint32, code relay.Code, msg string) {
	c.r.metrics.refused(code)
	c.closing.Store(true)
	c.once.Do(func() {
		go func() {
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.ws.Write(wctx, websocket.MessageBinary, relay.Encode(&relay.Error{Req: req, Code: code, Message: msg}))
			cancel()
			_ = c.ws.Close(websocket.StatusCode(relay.CloseBase+int(code)), closeReason(code.String()+": "+msg))
			c.cancel()
		}()
	})
}

// shut closes the socket with a plain WebSocket status (shutdown).
func (c *conn) shut(code websocket.StatusCode, reason string) {
	c.closing.Store(true)
	c.once.Do(func() {
		go func() {
			_ = c.ws.Close(code, reason)
			c.cancel()
		}()
	})
}

func (c *conn) run() {
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		c.r.log.Error("reading randomness", "err", err)
		return
	}
	actx, acancel := context.WithCancel(c.ctx)
	defer acancel()
	// Close ends logins in progress at once instead of waiting authTimeout.
	defer context.AfterFunc(c.r.closingCtx, acancel)()
	// The login deadline answers like any other refusal, with an Error
	// frame and a close code: a read context that expired would make the
	// websocket library cut the connection, and the device learn nothing.
	deadline := time.AfterFunc(authTimeout, func() {
		c.fail(0, relay.CodeAuthFailed, "no Auth frame within the time limit")
	})
	defer deadline.Stop()
	if err := c.ws.Write(actx, websocket.MessageBinary, relay.Encode(&relay.Challenge{Nonce: nonce, ServerTime: uint64(c.r.cfg.Now().UnixMilli())})); err != nil {
		return
	}
	typ, b, err := c.ws.Read(actx)
	if errors.Is(err, websocket.ErrMessageTooBig) {
		// The library has already closed with StatusMessageTooBig.
		c.r.metrics.refused(relay.CodeTooLarge)
	}
	if err != nil || !deadline.Stop() {
		return // closed, or the deadline has answered
	}
	if typ != websocket.MessageBinary {
		c.failWait(0, relay.CodeBadRequest, "frames are binary messages")
		return
	}
	f, err := relay.Decode(b)
	if err != nil {
		c.failWait(0, relay.CodeBadRequest, err.Error())
		return
	}
	auth, ok := f.(*relay.Auth)
	if !ok {
		c.failWait(0, relay.CodeUnexpected, fmt.Sprintf("first frame must be Auth, got type 0x%02x", uint8(f.Type())))
		return
	}
	// Verification runs on a short-lived goroutine: the signature check
	// grows a stack that would otherwise stay with this long-lived one
	// for the life of the socket (memory per idle socket).
	type verdict struct {
		code relay.Code
		msg  string
	}
	vc := make(chan verdict, 1)
	go func() { code, msg := c.r.authenticate(nonce, auth); vc <- verdict{code, msg} }()
	v := <-vc
	if code, msg := v.code, v.msg; code != relay.CodeOK {
		c.r.log.Info("auth refused", "handle", auth.Handle, "device", fmt.Sprintf("%x", auth.Device[:4]), "code", code.String())
		c.failWait(0, code, msg)
		return
	}
	acancel()
	c.ws.SetReadLimit(relay.MaxFrame)
	c.addr = store.Addr{Handle: auth.Handle, Device: store.DeviceID(auth.Device)}
	if code := c.r.register(c); code != relay.CodeOK {
		c.failWait(0, code, "too many sockets for this device, or the relay is shutting down")
		return
	}
	defer c.r.unregister(c)
	// A list published between our check and register would have kicked
	// nobody: check again now that a publish will find us, and again the
	// moment a companion's attestation runs out.
	if code, msg, _ := c.r.standing(c.addr); code != relay.CodeOK {
		c.failWait(0, code, msg)
		return
	}
	c.watchStanding()
	c.r.metrics.connected.Inc()
	defer c.r.metrics.connected.Dec()

	ready, low := c.r.ready(c.addr)
	// Ready goes out before the writer starts, so it precedes every
	// Envelope.
	if !c.write(relay.Encode(ready)) {
		return
	}
	if low != nil {
		c.out <- relay.Encode(low)
	}
	c.kick(true)
	c.reader()
	c.cancel()
	c.mu.Lock()
	c.dead = true
	if c.stopExpiry != nil {
		c.stopExpiry()
	}
	c.mu.Unlock()
	c.writers.Wait()
}

// watchStanding ends the socket if its device may no longer hold it
// (removed from its list, or its companion attestation ran out), and
// otherwise arms a timer for the moment the attestation runs out, which
// checks again then: a list that re-attested the device meanwhile has moved
// the moment (publish also calls this at once, through Relay.recheck).
func (c *conn) watchStanding() {
	code, msg, until := c.r.standing(c.addr)
	if code != relay.CodeOK {
		c.fail(0, code, msg)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopExpiry != nil {
		c.stopExpiry()
		c.stopExpiry = nil
	}
	if until.IsZero() {
		c.expires.Store(0)
		return
	}
	c.expires.Store(until.UnixMilli())
	if !c.dead {
		c.stopExpiry = c.r.cfg.AfterFunc(max(until.Sub(c.r.cfg.Now()), time.Millisecond), c.watchStanding)
	}
}

// ended reports whether the socket may no longer carry anything: it is
// closing, or its attestation moment has passed (checked at once then,
// rather than trusting the timer to have run).
func (c *conn) ended() bool {
	if c.closing.Load() {
		return true
	}
	if exp := c.expires.Load(); exp == 0 || c.r.cfg.Now().UnixMilli() < exp {
		return false
	}
	c.watchStanding()
	return c.closing.Load()
}

// liveCounter is implemented by stores that can count a mailbox without
// the envelopes whose TTL ran out but which no sweep has deleted yet, so
// Ready.Queued is what the device will actually receive. Stores without it
// report MailboxLen.
type liveCounter interface {
	LiveMailboxLen(to store.Addr, now time.Time) (int, error)
}

// ready is what a device learns right after its login: the size of its
// queue and its prekey stock, plus LowStock when that stock is low.
func (r *Relay) ready(a store.Addr) (*relay.Ready, *relay.LowStock) {
	var queued int
	if lc, ok := r.st.(liveCounter); ok {
		queued, _ = lc.LiveMailboxLen(a, r.cfg.Now())
	} else {
		queued, _ = r.st.MailboxLen(a)
	}
	stock, _ := r.st.PrekeyStock(a)
	fs := relay.Stock{OneTime: uint32(stock.OneTime), KEM: uint32(stock.KEM)}
	if stock.OneTime < lowStockThreshold || stock.KEM < lowStockThreshold {
		return &relay.Ready{Queued: uint32(queued), Stock: fs}, &relay.LowStock{Stock: fs}
	}
	return &relay.Ready{Queued: uint32(queued), Stock: fs}, nil
}

// kick makes sure a writer runs; mail says the mailbox may have news.
func (c *conn) kick(mail bool) {
	c.mu.Lock()
	if mail {
		c.mail = true
	}
	if c.writing || c.dead {
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.writers.Add(1)
	c.mu.Unlock()
	go c.writer()
}

// failWait is fail from the socket's own reading goroutine: it waits for
// the close handshake so the handler does not return (and cut the TCP
// connection) before the peer has the Error frame and the close code.
func (c *conn) failWait(req uint32, code relay.Code, msg string) {
	c.r.metrics.refused(code)
	c.closing.Store(true)
	c.once.Do(func() {
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.ws.Write(wctx, websocket.MessageBinary, relay.Encode(&relay.Error{Req: req, Code: code, Message: msg}))
		cancel()
		_ = c.ws.Close(websocket.StatusCode(relay.CloseBase+int(code)), closeReason(code.String()+": "+msg))
	})
}

// authenticate checks a challenge answer against the current list.
func (r *Relay) authenticate(nonce [32]byte, a *relay.Auth) (relay.Code, string) {
	if !relay.ValidHandle(a.Handle) {
		return relay.CodeAuthFailed, "invalid handle"
	}
	now := r.cfg.Now()
	skew := now.Sub(time.UnixMilli(int64(a.Timestamp)))
	if skew > maxClockSkew || skew < -maxClockSkew {
		return relay.CodeAuthFailed, fmt.Sprintf("timestamp is %s away from the relay's clock (limit %s)", skew.Round(time.Second), maxClockSkew)
	}
	acct, err := r.lists.get(a.Handle)
	if errors.Is(err, errUnknownAccount) {
		return relay.CodeAuthFailed, "unknown account"
	}
	if err != nil {
		r.log.Error("loading device list", "err", err)
		return relay.CodeInternal, "could not load the device list"
	}
	e := acct.device(a.Device)
	if e == nil {
		return relay.CodeRevoked, "device is not in its account's current list"
	}
	msg := relay.AuthMessage(nonce, r.cfg.Origin, a.Timestamp, a.Handle, a.Device)
	if identity.VerifySignature(e.Device.SignPub, identity.PurposeRelayChallenge, msg, a.Sig[:]) != nil {
		return relay.CodeAuthFailed, "challenge signature does not verify"
	}
	if !e.Primary {
		if err := devicelist.CheckAttestation(e, now, r.cfg.AttestationAge); err != nil {
			return relay.CodeRevoked, msgAttestationExpired
		}
	}
	return relay.CodeOK, ""
}

// send queues a reply; it blocks while the writer is behind, which stops
// this socket's reader (backpressure).
func (c *conn) send(f relay.Frame) {
	select {
	case c.out <- relay.Encode(f):
		c.kick(false)
	case <-c.ctx.Done():
	}
}

func (c *conn) refuse(req uint32, code relay.Code, msg string) {
	c.r.metrics.refused(code)
	c.send(&relay.Error{Req: req, Code: code, Message: msg})
}

func (c *conn) reader() {
	for {
		typ, b, err := c.ws.Read(c.ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) || c.ctx.Err() != nil {
				return
			}
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// The library has already closed with StatusMessageTooBig.
				c.r.metrics.refused(relay.CodeTooLarge)
			}
			return
		}
		if c.ended() {
			// Drop it, and read on until the close handshake is done,
			// so the device gets the Error frame and the close code.
			continue
		}
		if typ != websocket.MessageBinary {
			c.failWait(0, relay.CodeBadRequest, "frames are binary messages")
			return
		}
		f, err := relay.Decode(b)
		if err != nil {
			c.failWait(0, relay.CodeBadRequest, err.Error())
			return
		}
		if ack, ok := f.(*relay.Ack); ok {
			if !c.handleAck(ack) {
				return
			}
			continue
		}
		if !c.throttle() {
			c.refuse(reqOf(f), relay.CodeRateLimited, "too many frames on this socket; slow down")
			continue
		}
		switch f := f.(type) {
		case *relay.Send:
			c.handleSend(f.Req, f.MessageID, f.TTL, f.To, nil, nil)
		case *relay.GroupSend:
			c.handleSend(f.Req, f.MessageID, f.TTL, nil, f.Payload, f.To)
		case *relay.Prekeys:
			c.handlePrekeys(f)
		case *relay.Fetch:
			c.handleFetch(f)
		case *relay.BlobReserve:
			c.handleBlob(f)
		default:
			c.failWait(0, relay.CodeUnexpected, fmt.Sprintf("frame type 0x%02x is not allowed here", uint8(f.Type())))
			return
		}
	}
}

func reqOf(f relay.Frame) uint32 {
	switch f := f.(type) {
	case *relay.Send:
		return f.Req
	case *relay.GroupSend:
		return f.Req
	case *relay.Prekeys:
		return f.Req
	case *relay.Fetch:
		return f.Req
	case *relay.BlobReserve:
		return f.Req
	}
	return 0
}

// throttle waits for the socket's frame budget, up to maxThrottle.
func (c *conn) throttle() bool {
	res := c.frames.Reserve()
	d := res.Delay()
	if d == 0 {
		return true
	}
	if d > maxThrottle {
		res.Cancel()
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *conn) handleAck(a *relay.Ack) bool {
	if len(a.Seqs) == 0 {
		return true
	}
	now := c.r.cfg.Now().UnixMilli()
	c.mu.Lock()
	wasFull := len(c.inflight) >= deliveryWindow
	for _, s := range a.Seqs {
		t, ok := c.inflight[s]
		if !ok {
			c.mu.Unlock()
			c.failWait(0, relay.CodeUnexpected, fmt.Sprintf("ack for envelope %d, which is not in flight on this socket", s))
			return false
		}
		delete(c.inflight, s)
		c.r.metrics.delivery.Observe(float64(now-t) / 1000)
	}
	c.mu.Unlock()
	c.r.metrics.delivered.Add(float64(len(a.Seqs)))
	select {
	case c.r.deletes <- store.Acked{To: c.addr, Seqs: a.Seqs}:
	case <-c.ctx.Done():
		return false
	}
	if wasFull {
		c.kick(true)
	}
	return true
}

// handleSend validates coverage and stores the envelopes durably. Exactly
// one of sealed (Send) and payload+to (GroupSend) is set.
func (c *conn) handleSend(req uint32, msgID [16]byte, ttlSec uint32, sealed []relay.Sealed, payload []byte, to []relay.Addr) {
	start := time.Now()
	envs, refusal := c.r.prepareSend(c.addr, req, msgID, ttlSec, sealed, payload, to)
	if refusal != nil {
		c.send(refusal)
		return
	}
	// Pipelining: the write is queued here, in frame order, and awaited
	// on another goroutine, so the next send from this socket can share
	// the same commit.
	select {
	case c.pipeline <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	wait := c.r.st.EnqueueAsync(envs, c.r.cfg.MailboxLimit)
	go func() {
		defer func() { <-c.pipeline }()
		reply, ok := c.r.sendResult(req, envs, wait(), start)
		c.send(reply)
		if ok {
			for _, e := range envs {
				c.r.wake(e.To)
			}
		}
	}()
}

// prepareSend checks a send (sizes, fan-out, coverage against the current
// lists) and builds its envelopes, or returns the refusal to answer (an
// Error or a Stale frame), counted in the metrics. Exactly one of sealed
// (Send) and payload+to (GroupSend) is set. The socket loop and hosted
// sessions both use it.
func (r *Relay) prepareSend(from store.Addr, req uint32, msgID [16]byte, ttlSec uint32, sealed []relay.Sealed, payload []byte, to []relay.Addr) ([]store.Envelope, relay.Frame) {
	refuse := func(code relay.Code, msg string) relay.Frame {
		r.metrics.refused(code)
		return &relay.Error{Req: req, Code: code, Message: msg}
	}
	if sealed != nil || payload == nil {
		to = make([]relay.Addr, len(sealed))
		for i, s := range sealed {
			to[i] = s.To
			if len(s.Payload) == 0 {
				return nil, refuse(relay.CodeBadRequest, fmt.Sprintf("empty ciphertext for recipient %d", i))
			}
		}
	} else if len(payload) == 0 {
		return nil, refuse(relay.CodeBadRequest, "empty ciphertext")
	}
	if len(to) == 0 {
		return nil, refuse(relay.CodeBadRequest, "a send needs at least one recipient device")
	}
	if payload != nil && len(payload)*len(to) > relay.MaxFanoutBytes {
		return nil, refuse(relay.CodeTooLarge, fmt.Sprintf("payload × recipients is over %d bytes; send a blob reference instead", relay.MaxFanoutBytes))
	}
	stale, versions, rerr := r.coverage(from, to)
	if rerr != nil {
		return nil, refuse(rerr.Code, rerr.Message)
	}
	if len(stale) > 0 {
		r.metrics.refused(relay.CodeStaleDevices)
		return nil, &relay.Stale{Req: req, Accounts: stale}
	}
	ttl := r.cfg.DefaultTTL
	if ttlSec > 0 { // raised to relay.MinTTL, capped by the operator's TTL
		ttl = min(ttl, max(time.Duration(ttlSec)*time.Second, relay.MinTTL))
	}
	now := r.cfg.Now()
	envs := make([]store.Envelope, len(to))
	for i, a := range to {
		p := payload
		if sealed != nil {
			p = sealed[i].Payload
		}
		envs[i] = store.Envelope{
			To:         store.Addr{Handle: a.Handle, Device: store.DeviceID(a.Device)},
			From:       from,
			MessageID:  msgID,
			ServerTime: now.UnixMilli(),
			Expires:    now.Add(ttl).UnixMilli(),
			Payload:    p,
			// Stored only if this is still the list: a send racing a
			// revocation never lands in a purged mailbox (lists.go).
			ListVersion: versions[a.Handle],
		}
	}
	return envs, nil
}

// sendResult turns the store's answer to a send into the reply frame (OK,
// or the refusal) and reports whether the envelopes were stored. start is
// when the send frame arrived, for the durable-ack histogram.
func (r *Relay) sendResult(req uint32, envs []store.Envelope, err error, start time.Time) (relay.Frame, bool) {
	var full *store.MailboxFullError
	switch {
	case errors.Is(err, store.ErrSuperseded):
		return r.superseded(req, envs, start)
	case errors.As(err, &full):
		r.metrics.refused(relay.CodeMailboxFull)
		return &relay.Error{Req: req, Code: relay.CodeMailboxFull, Message: fmt.Sprintf("the mailbox of %s device %x is full; nothing was stored", full.To.Handle, full.To.Device[:4])}, false
	case err != nil:
		r.log.Error("storing envelopes", "err", err)
		r.metrics.refused(relay.CodeInternal)
		return &relay.Error{Req: req, Code: relay.CodeInternal, Message: "could not store the message; nothing was stored"}, false
	}
	r.metrics.messages.Inc()
	r.metrics.envelopes.Add(float64(len(envs)))
	r.metrics.durable.Observe(time.Since(start).Seconds())
	return &relay.OK{Req: req, ServerTime: uint64(envs[0].ServerTime)}, true
}

// coverage compares a send's device set with the current lists: every
// device of every addressed account and every other device of the
// sender's account must be there, and nothing else. Companions whose
// attestation expired are optional (clients may already have dropped them).
// versions are the list versions it checked against, per handle.
func (r *Relay) coverage(from store.Addr, to []relay.Addr) (stale []relay.StaleAccount, versions map[string]uint64, _ *relay.RelayError) {
	given := map[string]map[relay.DeviceID]bool{from.Handle: {}}
	for _, a := range to {
		if !relay.ValidHandle(a.Handle) {
			return nil, nil, &relay.RelayError{Code: relay.CodeBadHandle, Message: fmt.Sprintf("invalid recipient handle %q", a.Handle)}
		}
		set := given[a.Handle]
		if set == nil {
			set = make(map[relay.DeviceID]bool)
			given[a.Handle] = set
		}
		if set[a.Device] {
			return nil, nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: fmt.Sprintf("device %x of %s listed twice", a.Device[:4], a.Handle)}
		}
		set[a.Device] = true
	}
	handles := make([]string, 0, len(given))
	for h := range given {
		handles = append(handles, h)
	}
	sort.Strings(handles)
	now := r.cfg.Now()
	versions = make(map[string]uint64, len(handles))
	for _, h := range handles {
		acct, err := r.lists.get(h)
		if errors.Is(err, errUnknownAccount) {
			return nil, nil, &relay.RelayError{Code: relay.CodeUnknownAccount, Message: fmt.Sprintf("no account %q", h)}
		}
		if err != nil {
			r.log.Error("loading device list", "err", err)
			return nil, nil, &relay.RelayError{Code: relay.CodeInternal, Message: "could not load a device list; nothing was stored"}
		}
		versions[h] = acct.list.Version
		set := given[h]
		var sa relay.StaleAccount
		for i := range acct.list.Entries {
			e := &acct.list.Entries[i]
			id := relay.DeviceID(e.Device.ID)
			if h == from.Handle && id == relay.DeviceID(from.Device) {
				continue // the sender itself is checked below as extra
			}
			if set[id] {
				continue
			}
			if !e.Primary && devicelist.CheckAttestation(e, now, r.cfg.AttestationAge) != nil {
				continue
			}
			sa.Missing = append(sa.Missing, id)
		}
		for id := range set {
			if acct.device(id) == nil || (h == from.Handle && id == relay.DeviceID(from.Device)) {
				sa.Extra = append(sa.Extra, id)
			}
		}
		if len(sa.Missing)+len(sa.Extra) > 0 {
			sortIDs(sa.Missing)
			sortIDs(sa.Extra)
			sa.Handle = h
			stale = append(stale, sa)
		}
	}
	return stale, versions, nil
}

func sortIDs(ids []relay.DeviceID) {
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
}

func (c *conn) handlePrekeys(f *relay.Prekeys) { c.send(c.r.putPrekeys(c.addr, f)) }

func (c *conn) handleFetch(f *relay.Fetch) {
	if !c.fetch.Allow() {
		c.refuse(f.Req, relay.CodeRateLimited, "too many prekey fetches; slow down")
		return
	}
	reply, of, low := c.r.fetchBundle(f)
	c.send(reply)
	if low != nil {
		enc := relay.Encode(low)
		for _, oc := range c.r.connsOf(of) {
			select {
			case oc.out <- enc:
				oc.kick(false)
			default: // it learns its stock again from Ready
			}
		}
	}
}

// putPrekeys stores a device's prekey upload and returns the reply.
func (r *Relay) putPrekeys(of store.Addr, f *relay.Prekeys) relay.Frame {
	_, err := r.st.PutPrekeys(of, store.PrekeyUpload{
		SignedPrekey: f.SignedPrekey, LastResortKEM: f.LastResortKEM, OneTime: f.OneTime, KEM: f.KEM,
	}, maxPrekeyStock)
	switch {
	case errors.Is(err, store.ErrTooMany):
		r.metrics.refused(relay.CodePrekeyLimit)
		return &relay.Error{Req: f.Req, Code: relay.CodePrekeyLimit, Message: fmt.Sprintf("at most %d one-time prekeys of each kind may be stored", maxPrekeyStock)}
	case err != nil:
		r.log.Error("storing prekeys", "err", err)
		r.metrics.refused(relay.CodeInternal)
		return &relay.Error{Req: f.Req, Code: relay.CodeInternal, Message: "could not store prekeys"}
	}
	return &relay.OK{Req: f.Req, ServerTime: uint64(r.cfg.Now().UnixMilli())}
}

// fetchBundle takes a prekey bundle of f.Of and returns the reply; low is
// the LowStock frame for the owner's sockets when its stock ran low.
func (r *Relay) fetchBundle(f *relay.Fetch) (reply relay.Frame, of store.Addr, low *relay.LowStock) {
	refuse := func(code relay.Code, msg string) relay.Frame {
		r.metrics.refused(code)
		return &relay.Error{Req: f.Req, Code: code, Message: msg}
	}
	if !relay.ValidHandle(f.Of.Handle) {
		return refuse(relay.CodeBadHandle, "invalid handle"), of, nil
	}
	acct, err := r.lists.get(f.Of.Handle)
	if errors.Is(err, errUnknownAccount) {
		return refuse(relay.CodeUnknownAccount, fmt.Sprintf("no account %q", f.Of.Handle)), of, nil
	}
	if err != nil {
		return refuse(relay.CodeInternal, "could not load the device list"), of, nil
	}
	if acct.device(f.Of.Device) == nil {
		return refuse(relay.CodeUnknownDevice, fmt.Sprintf("device %x is not in the list of %s", f.Of.Device[:4], f.Of.Handle)), of, nil
	}
	of = store.Addr{Handle: f.Of.Handle, Device: store.DeviceID(f.Of.Device)}
	b, err := r.st.TakeBundle(of, r.cfg.Now(), store.FetchBudget{Burst: r.cfg.PrekeyFetches, PerSec: targetFetchRate})
	if errors.Is(err, store.ErrNotFound) {
		return refuse(relay.CodeNoPrekeys, "the device has not published prekeys"), of, nil
	}
	if err != nil {
		r.log.Error("taking prekey bundle", "err", err)
		return refuse(relay.CodeInternal, "could not fetch the bundle"), of, nil
	}
	if b.Left.OneTime < lowStockThreshold || b.Left.KEM < lowStockThreshold {
		low = &relay.LowStock{Stock: relay.Stock{OneTime: uint32(b.Left.OneTime), KEM: uint32(b.Left.KEM)}}
	}
	return &relay.Bundle{Req: f.Req, SignedPrekey: b.SignedPrekey, OneTime: b.OneTime, KEM: b.KEM, LastResort: b.LastResort}, of, low
}

func (c *conn) handleBlob(f *relay.BlobReserve) {
	if !c.blobs.Allow() {
		c.refuse(f.Req, relay.CodeRateLimited, "too many blob reservations; slow down")
		return
	}
	c.send(c.r.reserveBlob(c.addr, f.Req))
}

// reserveBlob reserves a random blob id, charged to the account of from,
// and returns the reply.
func (r *Relay) reserveBlob(from store.Addr, req uint32) relay.Frame {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		r.metrics.refused(relay.CodeInternal)
		return &relay.Error{Req: req, Code: relay.CodeInternal, Message: "no randomness"}
	}
	exp := r.cfg.Now().Add(relay.BlobTTL)
	if err := r.st.ReserveBlob(id[:], from.Handle, exp); err != nil {
		r.log.Error("reserving blob", "err", err)
		r.metrics.refused(relay.CodeInternal)
		return &relay.Error{Req: req, Code: relay.CodeInternal, Message: "could not reserve a blob"}
	}
	return &relay.BlobID{Req: req, ID: id, Expires: uint64(exp.UnixMilli())}
}

// ping checks the peer answers; called by the relay's pinger.
func (c *conn) ping() {
	pctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil && c.ctx.Err() == nil {
		c.shut(websocket.StatusPolicyViolation, "ping timeout")
	}
}

func (c *conn) write(b []byte) bool {
	wctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageBinary, b); err != nil {
		c.cancel()
		return false
	}
	return true
}
