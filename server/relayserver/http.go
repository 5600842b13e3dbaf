package relayserver

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/netlimit"
	"github.com/parley-im/parley/server/store"
	"golang.org/x/time/rate"
)

// HTTP bodies are JSON; []byte fields are standard base64 (encoding/json).

// RegisterRequest is the body of POST /v1/accounts.
type RegisterRequest struct {
	Handle     string `json:"handle"`
	DeviceList []byte `json:"device_list"`
}

// PublishRequest is the body of PUT /v1/accounts/{handle}/devices.
type PublishRequest struct {
	DeviceList []byte `json:"device_list"`
}

// AccountResponse answers registration, publication and GET
// /v1/accounts/{handle}. Clients verify DeviceList themselves.
type AccountResponse struct {
	Handle     string `json:"handle"`
	AccountKey []byte `json:"account_key"`
	Version    uint64 `json:"version"`
	DeviceList []byte `json:"device_list"`
}

// ErrorResponse is the body of every refused HTTP request.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *Relay) routes() {
	m := r.mux
	m.HandleFunc("GET /v1/ws", noStore(r.serveWS)) // it spends the per-IP budget itself, before counting the socket
	m.HandleFunc("POST /v1/accounts", r.limited(r.register_))
	m.HandleFunc("GET /v1/accounts/{handle}", r.limited(r.getAccount))
	m.HandleFunc("PUT /v1/accounts/{handle}/devices", r.limited(r.publish))
	m.HandleFunc("PUT /v1/link/{id}/{slot}", r.limited(r.putLink))
	m.HandleFunc("GET /v1/link/{id}/{slot}", r.limited(r.getLink))
	m.HandleFunc("PUT /v1/blobs/{id}", r.limited(r.putBlob))
	m.HandleFunc("GET /v1/blobs/{id}", r.limited(r.getBlob))
	// Unknown paths spend the per-IP budget like any request (a scanner
	// walking paths is a flood too) and are never cached.
	m.HandleFunc("/v1/", r.limited(func(w http.ResponseWriter, req *http.Request) {
		r.httpError(w, http.StatusNotFound, relay.CodeNotFound, "no such endpoint: "+req.Method+" "+req.URL.Path)
	}))
}

// noStore marks every answer of h uncacheable.
func noStore(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h(w, req)
	}
}

// limited applies the per-IP budget, to every request it wraps (the
// WebSocket handler applies it itself, before counting the connection).
func (r *Relay) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		// A refusal made before the body is read must not wait for it.
		w = netlimit.CloseIfBodyUnread(w, req)
		w.Header().Set("Cache-Control", "no-store")
		if !r.ips.allow(clientIP(req)) {
			r.httpError(w, http.StatusTooManyRequests, relay.CodeRateLimited, "too many requests from this address")
			return
		}
		h(w, req)
	}
}

func (r *Relay) httpError(w http.ResponseWriter, status int, code relay.Code, msg string) {
	r.metrics.refused(code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Code: code.String(), Message: msg})
}

func (r *Relay) relayError(w http.ResponseWriter, err error) {
	var re *relay.RelayError
	if !errors.As(err, &re) {
		if errors.Is(err, errUnknownAccount) {
			r.httpError(w, http.StatusNotFound, relay.CodeUnknownAccount, "no such account")
			return
		}
		r.log.Error("relay request failed", "err", err)
		r.httpError(w, http.StatusInternalServerError, relay.CodeInternal, "internal error; nothing was changed")
		return
	}
	status := http.StatusBadRequest
	switch re.Code {
	case relay.CodeHandleTaken, relay.CodeKeyTaken, relay.CodeStaleVersion, relay.CodeConflict, relay.CodeAlreadyUsed:
		status = http.StatusConflict
	case relay.CodeNotFound, relay.CodeUnknownAccount:
		status = http.StatusNotFound
	case relay.CodeRateLimited:
		status = http.StatusTooManyRequests
	case relay.CodeTooLarge:
		status = http.StatusRequestEntityTooLarge
	}
	r.httpError(w, status, re.Code, re.Message)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a size-limited JSON body with no unknown fields.
func (r *Relay) decodeJSON(w http.ResponseWriter, req *http.Request, v any) *relay.RelayError {
	body := http.MaxBytesReader(w, r.paced(w, req), maxJSONBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &relay.RelayError{Code: relay.CodeTooLarge, Message: fmt.Sprintf("body over %d bytes", maxJSONBody)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errBodyTooSlow
		}
		return &relay.RelayError{Code: relay.CodeBadRequest, Message: "invalid JSON body: " + err.Error()}
	}
	if dec.More() {
		return &relay.RelayError{Code: relay.CodeBadRequest, Message: "trailing data after the JSON body"}
	}
	return nil
}

func accountResponse(a *account) AccountResponse {
	return AccountResponse{Handle: a.handle, AccountKey: a.key, Version: a.list.Version, DeviceList: a.raw}
}

// register_ checks everything it can without the store before it spends
// the address's registration budget: a request that could never succeed
// (bad JSON, handle or list size) costs only the general per-IP budget, so
// it cannot use up the few account creations meant for valid ones.
func (r *Relay) register_(w http.ResponseWriter, req *http.Request) {
	var body RegisterRequest
	if e := r.decodeJSON(w, req, &body); e != nil {
		r.relayError(w, e)
		return
	}
	if !relay.ValidHandle(body.Handle) {
		r.httpError(w, http.StatusBadRequest, relay.CodeBadHandle, "a handle is 3–32 characters from a–z, 0–9, '.', '_' and '-'")
		return
	}
	if len(body.DeviceList) == 0 || len(body.DeviceList) > devicelist.MaxEncodedSize {
		r.httpError(w, http.StatusBadRequest, relay.CodeBadDeviceList, fmt.Sprintf("device_list must be 1–%d bytes", devicelist.MaxEncodedSize))
		return
	}
	if !r.regs.allow(clientIP(req)) {
		r.httpError(w, http.StatusTooManyRequests, relay.CodeRateLimited, "too many registrations from this address")
		return
	}
	a, err := r.lists.create(body.Handle, body.DeviceList)
	if err != nil {
		r.relayError(w, err)
		return
	}
	r.log.Info("account registered", "handle", a.handle, "version", a.list.Version, "devices", len(a.list.Entries))
	writeJSON(w, http.StatusCreated, accountResponse(a))
}

func (r *Relay) getAccount(w http.ResponseWriter, req *http.Request) {
	h := req.PathValue("handle")
	if !relay.ValidHandle(h) {
		r.httpError(w, http.StatusBadRequest, relay.CodeBadHandle, "invalid handle")
		return
	}
	a, err := r.lists.get(h)
	if err != nil {
		r.relayError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, accountResponse(a))
}

func (r *Relay) publish(w http.ResponseWriter, req *http.Request) {
	h := req.PathValue("handle")
	if !relay.ValidHandle(h) {
		r.httpError(w, http.StatusBadRequest, relay.CodeBadHandle, "invalid handle")
		return
	}
	var body PublishRequest
	if e := r.decodeJSON(w, req, &body); e != nil {
		r.relayError(w, e)
		return
	}
	if len(body.DeviceList) == 0 || len(body.DeviceList) > devicelist.MaxEncodedSize {
		r.httpError(w, http.StatusBadRequest, relay.CodeBadDeviceList, fmt.Sprintf("device_list must be 1–%d bytes", devicelist.MaxEncodedSize))
		return
	}
	a, removed, err := r.lists.replace(h, body.DeviceList)
	if err != nil {
		r.relayError(w, err)
		return
	}
	for _, id := range removed {
		r.kick(store.Addr{Handle: h, Device: store.DeviceID(id)}, "device removed from the account's list")
	}
	r.recheck(a)
	r.log.Info("device list published", "handle", h, "version", a.list.Version, "devices", len(a.list.Entries), "removed", len(removed))
	writeJSON(w, http.StatusOK, accountResponse(a))
}

// ---- link channel ----

// linkKey parses /v1/link/{id}/{slot}: id is 16–32 random bytes in hex.
func linkKey(req *http.Request) ([]byte, *relay.RelayError) {
	id, err := hex.DecodeString(req.PathValue("id"))
	if err != nil || len(id) < 16 || len(id) > 32 {
		return nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: "link id must be 16–32 bytes in lowercase hex"}
	}
	slot, err := strconv.Atoi(req.PathValue("slot"))
	if err != nil || slot < 0 || slot >= maxLinkSlots || req.PathValue("slot") != strconv.Itoa(slot) {
		return nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: fmt.Sprintf("link slot must be 0–%d", maxLinkSlots-1)}
	}
	return append(id, byte(slot)), nil
}

func (r *Relay) putLink(w http.ResponseWriter, req *http.Request) {
	key, e := linkKey(req)
	if e != nil {
		r.relayError(w, e)
		return
	}
	data, e := r.readBody(w, req, maxLinkMessage)
	if e != nil {
		r.relayError(w, e)
		return
	}
	now := r.cfg.Now()
	err := r.st.PutLink(key, data, now.Add(relay.LinkTTL), now)
	if errors.Is(err, store.ErrExists) {
		r.httpError(w, http.StatusConflict, relay.CodeAlreadyUsed, "this link slot was already written; links are single-use")
		return
	}
	if err != nil {
		r.relayError(w, err)
		return
	}
	r.links.notify(string(key))
	w.WriteHeader(http.StatusNoContent)
}

func (r *Relay) getLink(w http.ResponseWriter, req *http.Request) {
	key, e := linkKey(req)
	if e != nil {
		r.relayError(w, e)
		return
	}
	wait := time.Duration(0)
	if s := req.URL.Query().Get("wait"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			r.httpError(w, http.StatusBadRequest, relay.CodeBadRequest, "wait is a number of seconds")
			return
		}
		wait = min(time.Duration(n)*time.Second, maxLinkWait)
	}
	ip := clientIP(req)
	if wait > 0 {
		if !r.links.enter(ip) {
			r.httpError(w, http.StatusTooManyRequests, relay.CodeRateLimited, "too many link long-polls from this address")
			return
		}
		defer r.links.leave(ip)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var poll <-chan time.Time
	if r.cfg.LinkPoll > 0 {
		t := time.NewTicker(r.cfg.LinkPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		ch, ok := r.links.watch(string(key))
		if !ok {
			r.httpError(w, http.StatusServiceUnavailable, relay.CodeBusy, "too many link waiters; retry")
			return
		}
		data, err := r.st.TakeLink(key, r.cfg.Now())
		switch {
		case err == nil:
			r.links.unwatch(string(key), ch)
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(data)
			return
		case errors.Is(err, store.ErrGone):
			r.links.unwatch(string(key), ch)
			r.httpError(w, http.StatusGone, relay.CodeAlreadyUsed, "this link message was already taken; links are single-use")
			return
		case !errors.Is(err, store.ErrNotFound):
			r.links.unwatch(string(key), ch)
			r.relayError(w, err)
			return
		}
		select {
		case <-ch:
			continue
		case <-poll:
			r.links.unwatch(string(key), ch)
			continue
		case <-deadline.C:
		case <-req.Context().Done():
		case <-r.closingCtx.Done():
		}
		r.links.unwatch(string(key), ch)
		r.httpError(w, http.StatusNotFound, relay.CodeNotFound, "no message in this link slot yet (or it expired); poll again")
		return
	}
}

// maxLinkWaitersPerIP bounds one address's concurrent long-polls, so one
// client cannot take the whole maxLinkWaiters budget.
const maxLinkWaitersPerIP = 32

// linkWaiters wakes long-polls when their slot is written.
type linkWaiters struct {
	mu    sync.Mutex
	m     map[string][]chan struct{}
	n     int
	perIP map[string]int
}

func newLinkWaiters() *linkWaiters {
	return &linkWaiters{m: make(map[string][]chan struct{}), perIP: make(map[string]int)}
}

func (l *linkWaiters) enter(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip] >= maxLinkWaitersPerIP {
		return false
	}
	l.perIP[ip]++
	return true
}

func (l *linkWaiters) leave(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func (l *linkWaiters) watch(key string) (chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= maxLinkWaiters {
		return nil, false
	}
	ch := make(chan struct{})
	l.m[key] = append(l.m[key], ch)
	l.n++
	return ch, true
}

func (l *linkWaiters) unwatch(key string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.m[key]
	for i, c := range list {
		if c == ch {
			l.m[key] = append(list[:i], list[i+1:]...)
			l.n--
			break
		}
	}
	if len(l.m[key]) == 0 {
		delete(l.m, key)
	}
}

func (l *linkWaiters) notify(key string) {
	l.mu.Lock()
	list := l.m[key]
	delete(l.m, key)
	l.n -= len(list)
	l.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// ---- blobs ----

func blobID(req *http.Request) ([]byte, *relay.RelayError) {
	id, err := hex.DecodeString(req.PathValue("id"))
	if err != nil || len(id) != 16 {
		return nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: "blob id must be 16 bytes in hex"}
	}
	return id, nil
}

// errBodyTooSlow answers a body that fell behind the relay's minimum rate.
var errBodyTooSlow = &relay.RelayError{Code: relay.CodeBadRequest, Message: "the body came too slowly; send it again"}

// paced is req's body under a read deadline that moves with it: the body
// has BodyTimeout, plus one second for every BodyMinRate bytes read so far.
// A client that sends headers and a byte and stalls holds its connection
// for BodyTimeout, not for ever; one that keeps sending must keep the rate.
// Hosts without connection deadlines (Workers, where the platform reads
// bodies) get the body as it is.
func (r *Relay) paced(w http.ResponseWriter, req *http.Request) io.ReadCloser {
	rc := http.NewResponseController(w)
	start := time.Now()
	if rc.SetReadDeadline(start.Add(r.cfg.BodyTimeout)) != nil {
		return req.Body
	}
	return &pacedReader{body: req.Body, rc: rc, start: start, grace: r.cfg.BodyTimeout, rate: r.cfg.BodyMinRate}
}

type pacedReader struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	p.n += int64(n)
	switch {
	case err == io.EOF:
		// The whole body is in: the connection's reads are the server's
		// again (its check for a peer that went away must not time out
		// while the handler stores what it read).
		_ = p.rc.SetReadDeadline(time.Time{})
	case n > 0:
		_ = p.rc.SetReadDeadline(p.start.Add(p.grace + time.Duration(p.n)*time.Second/time.Duration(p.rate)))
	}
	return n, err
}

func (p *pacedReader) Close() error { return p.body.Close() }

func (r *Relay) readBody(w http.ResponseWriter, req *http.Request, max int64) ([]byte, *relay.RelayError) {
	if req.ContentLength > max {
		return nil, &relay.RelayError{Code: relay.CodeTooLarge, Message: fmt.Sprintf("body over %d bytes", max)}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.paced(w, req), max))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, &relay.RelayError{Code: relay.CodeTooLarge, Message: fmt.Sprintf("body over %d bytes", max)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errBodyTooSlow
		}
		return nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: "could not read the body"}
	}
	if len(data) == 0 {
		return nil, &relay.RelayError{Code: relay.CodeBadRequest, Message: "empty body"}
	}
	return data, nil
}

func (r *Relay) putBlob(w http.ResponseWriter, req *http.Request) {
	id, e := blobID(req)
	if e != nil {
		r.relayError(w, e)
		return
	}
	// The reservation is the upload's authorization: without one, the
	// body is never read (a stranger's 8 MiB must not reach memory).
	if err := r.st.BlobSlot(id, r.cfg.Now()); err != nil {
		r.blobRefused(w, err)
		return
	}
	data, e := r.readBody(w, req, relay.MaxBlob)
	if e != nil {
		r.relayError(w, e)
		return
	}
	r.blobRefused(w, r.st.PutBlob(id, data, r.cfg.Now(), r.cfg.BlobQuota))
}

// blobRefused answers a blob upload from the store's verdict (nil: 204).
func (r *Relay) blobRefused(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrQuota):
		r.httpError(w, http.StatusInsufficientStorage, relay.CodeQuota, fmt.Sprintf("the account's blobs would exceed %d bytes; space frees up as they expire", r.cfg.BlobQuota))
	case errors.Is(err, store.ErrNotFound):
		r.httpError(w, http.StatusNotFound, relay.CodeNotFound, "no reservation for this blob id (reserve one over the socket first) or it expired")
	case errors.Is(err, store.ErrExists):
		r.httpError(w, http.StatusConflict, relay.CodeAlreadyUsed, "this blob was already uploaded")
	case err != nil:
		r.relayError(w, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (r *Relay) getBlob(w http.ResponseWriter, req *http.Request) {
	id, e := blobID(req)
	if e != nil {
		r.relayError(w, e)
		return
	}
	data, err := r.st.Blob(id, r.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		r.httpError(w, http.StatusNotFound, relay.CodeNotFound, "no such blob, or it expired")
		return
	}
	if err != nil {
		r.relayError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// ---- per-IP limits ----

// clientIP is the key of the peer's budgets: its IPv4 address, or its
// IPv6 /64 (netlimit.Key). The relay does not trust forwarding headers:
// behind a proxy, run one relay per proxy or add a trusted-proxy setting
// first.
func clientIP(req *http.Request) string { return netlimit.Key(req.RemoteAddr) }

// maxTrackedIPs bounds the limiter table; past it, idle entries are
// dropped early.
const maxTrackedIPs = 100_000

// ipIdle is how long an address's bucket is kept after its last request.
const ipIdle = 10 * time.Minute

type ipLimiter struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[string]*ipEntry
	swept time.Time
}

type ipEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(r rate.Limit, burst int) *ipLimiter {
	return &ipLimiter{r: r, burst: burst, m: make(map[string]*ipEntry), swept: time.Now()}
}

func (l *ipLimiter) allow(ip string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > ipIdle || len(l.m) >= maxTrackedIPs {
		for k, e := range l.m {
			if now.Sub(e.seen) > ipIdle || len(l.m) >= maxTrackedIPs {
				delete(l.m, k)
			}
		}
		l.swept = now
	}
	e := l.m[ip]
	if e == nil {
		e = &ipEntry{lim: rate.NewLimiter(l.r, l.burst)}
		l.m[ip] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}
