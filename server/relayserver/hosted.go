package relayserver

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/store"
)

// Hosted sessions: the same device protocol for a host that holds the
// WebSocket itself and keeps no process between frames. The Cloudflare
// Workers build is that host: a Durable Object accepts the socket (a Go
// handler there cannot), stores the Session between events, and hands each
// event to a fresh Go instance, which answers with an Output to apply.
// Every rule (the challenge, the auth answer, coverage, limits, the
// delivery window) is the socket loop's own code; only the plumbing
// differs.
//
// Differences from the socket loop, all on the safe side: a frame over its
// socket's rate budget is refused at once rather than delayed; sends are
// awaited one at a time (no pipelining across a commit); the host does the
// keepalive pings and counts sockets per device, if it wants to.

// Session is the state of one hosted device socket between events. The
// host stores it (it is JSON-encodable) and passes it back with the next
// event; the relay updates it in place.
type Session struct {
	Nonce  [32]byte `json:"nonce"`
	Opened int64    `json:"opened"` // unix ms
	// Handle and Device are set once Auth succeeded.
	Authed bool           `json:"authed"`
	Handle string         `json:"handle,omitempty"`
	Device store.DeviceID `json:"device"`
	// Expires is when a companion's attestation runs out (unix ms; 0 for a
	// primary): from then on the session carries nothing, and the first
	// event after it checks the current list and ends or moves it.
	Expires int64 `json:"expires,omitempty"`
	// LastSent is the highest sequence delivered; Inflight the sequences
	// delivered and not yet acked (at most the delivery window).
	LastSent uint64   `json:"last_sent"`
	Inflight []uint64 `json:"inflight,omitempty"`
	// Per-socket rate budgets (token buckets).
	Frames  Bucket `json:"frames"`
	Fetches Bucket `json:"fetches"`
	Blobs   Bucket `json:"blobs"`
	// ReadLimit is the largest message the session accepts now
	// (relay.MaxPreAuthFrame until login, then relay.MaxFrame). The host
	// closes the socket with 1009 on a longer one instead of calling
	// SessionFrame; SessionFrame enforces it too.
	ReadLimit int `json:"read_limit"`
}

// readLimit is the largest message the session accepts now: the Auth
// frame until login, then any frame (the socket loop's SetReadLimit).
func (s *Session) readLimit() int {
	if !s.Authed {
		return relay.MaxPreAuthFrame
	}
	return relay.MaxFrame
}

// closeMessageTooBig is the WebSocket status for a message over the read
// limit (RFC 6455 1009), as the socket loop's library sends it.
const closeMessageTooBig = 1009

// Bucket is a token bucket that survives between events.
type Bucket struct {
	Tokens float64 `json:"tokens"`
	At     int64   `json:"at"` // unix ms of the last update; 0 = full
}

func (b *Bucket) take(perSec float64, burst int, now time.Time) bool {
	ms := now.UnixMilli()
	if b.At == 0 {
		b.Tokens = float64(burst)
	} else if ms > b.At {
		b.Tokens = min(float64(burst), b.Tokens+perSec*float64(ms-b.At)/1000)
	}
	b.At = ms
	if b.Tokens < 1 {
		return false
	}
	b.Tokens--
	return true
}

// Output is what the host must do after an event: write Frames to the
// socket in order, then, if Close is set, close it with that code (an
// Error frame is then the last of Frames).
type Output struct {
	Frames [][]byte `json:"frames,omitempty"`
	Close  int      `json:"close,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Authed is set by the event that logged the device in: from now on
	// the host must call SessionDeliver when the device's mailbox grows.
	Authed bool `json:"authed,omitempty"`
	// More says a full page was delivered with room left in the window:
	// call SessionDeliver again.
	More bool `json:"more,omitempty"`
	// Push holds frames for other devices' sockets (LowStock after a fetch).
	Push []Push `json:"push,omitempty"`
	// Deadline (unix ms) is when the host should call SessionTimeout:
	// the login deadline, then the moment a companion's attestation runs
	// out. A later Deadline replaces an earlier one.
	Deadline int64 `json:"deadline,omitempty"`
}

// Push is a frame for every socket of one device.
type Push struct {
	To    store.Addr `json:"to"`
	Frame []byte     `json:"frame"`
}

func (o *Output) add(f relay.Frame) { o.Frames = append(o.Frames, relay.Encode(f)) }

// fail makes o end the socket as the socket loop's failWait does.
func (r *Relay) fail(o *Output, code relay.Code, msg string) Output {
	r.metrics.refused(code)
	o.add(&relay.Error{Code: code, Message: msg})
	o.Close = relay.CloseBase + int(code)
	o.Reason = closeReason(code.String() + ": " + msg)
	return *o
}

// OpenSession starts a hosted socket: the Challenge to send and the
// session to keep.
func (r *Relay) OpenSession() (*Session, Output, error) {
	s := &Session{Opened: r.cfg.Now().UnixMilli(), ReadLimit: relay.MaxPreAuthFrame}
	if _, err := rand.Read(s.Nonce[:]); err != nil {
		return nil, Output{}, fmt.Errorf("relay: reading randomness: %w", err)
	}
	var o Output
	o.add(&relay.Challenge{Nonce: s.Nonce, ServerTime: uint64(s.Opened)})
	o.Deadline = s.Opened + authTimeout.Milliseconds()
	return s, o, nil
}

// SessionTimeout ends a socket that has not logged in within the time
// limit, and a logged-in one whose device may no longer hold it (removed
// from its list, or its companion attestation ran out); otherwise its
// Deadline is the next such check.
func (r *Relay) SessionTimeout(s *Session) Output {
	var o Output
	if s.Authed {
		r.sessionStanding(s, &o)
		return o
	}
	if r.cfg.Now().UnixMilli() < s.Opened+authTimeout.Milliseconds() {
		return o
	}
	return r.fail(&o, relay.CodeAuthFailed, "no Auth frame within the time limit")
}

// sessionStanding checks whether the device of a logged-in session may
// keep its socket, as the socket loop's watchStanding does: if not, o ends
// the socket and it reports false; if so, it moves s.Expires and o.Deadline
// to the moment its attestation runs out.
func (r *Relay) sessionStanding(s *Session, o *Output) bool {
	code, msg, until := r.standing(store.Addr{Handle: s.Handle, Device: s.Device})
	if code != relay.CodeOK {
		r.fail(o, code, msg)
		return false
	}
	s.Expires = 0
	if !until.IsZero() {
		s.Expires = until.UnixMilli()
		o.Deadline = s.Expires
	}
	return true
}

// sessionLive reports whether a logged-in session may carry anything now:
// past its attestation moment it checks the list at once (the host's
// alarm may not have run yet), as sessionStanding.
func (r *Relay) sessionLive(s *Session, o *Output) bool {
	if s.Expires == 0 || r.cfg.Now().UnixMilli() < s.Expires {
		return true
	}
	return r.sessionStanding(s, o)
}

// SessionFrame handles one message the device sent; binary is false for
// a text message.
func (r *Relay) SessionFrame(s *Session, msg []byte, binary bool) Output {
	var o Output
	if limit := s.readLimit(); len(msg) > limit {
		// As the socket loop's read limit does: close without decoding.
		r.metrics.refused(relay.CodeTooLarge)
		o.Close, o.Reason = closeMessageTooBig, fmt.Sprintf("message over %d bytes", limit)
		return o
	}
	if !binary {
		return r.fail(&o, relay.CodeBadRequest, "frames are binary messages")
	}
	f, err := relay.Decode(msg)
	if err != nil {
		return r.fail(&o, relay.CodeBadRequest, err.Error())
	}
	if !s.Authed {
		return r.sessionAuth(s, f)
	}
	if !r.sessionLive(s, &o) {
		return o
	}
	from := store.Addr{Handle: s.Handle, Device: s.Device}
	if ack, ok := f.(*relay.Ack); ok {
		a := r.sessionAck(s, ack)
		a.Deadline = max(a.Deadline, o.Deadline)
		return a
	}
	now := r.cfg.Now()
	if !s.Frames.take(frameRate, frameBurst, now) {
		r.metrics.refused(relay.CodeRateLimited)
		o.add(&relay.Error{Req: reqOf(f), Code: relay.CodeRateLimited, Message: "too many frames on this socket; slow down"})
		return o
	}
	switch f := f.(type) {
	case *relay.Send:
		o.add(r.sessionSend(from, f.Req, f.MessageID, f.TTL, f.To, nil, nil))
	case *relay.GroupSend:
		o.add(r.sessionSend(from, f.Req, f.MessageID, f.TTL, nil, f.Payload, f.To))
	case *relay.Prekeys:
		o.add(r.putPrekeys(from, f))
	case *relay.Fetch:
		if !s.Fetches.take(fetchRate, fetchBurst, now) {
			r.metrics.refused(relay.CodeRateLimited)
			o.add(&relay.Error{Req: f.Req, Code: relay.CodeRateLimited, Message: "too many prekey fetches; slow down"})
			break
		}
		reply, of, low := r.fetchBundle(f)
		o.add(reply)
		if low != nil {
			o.Push = append(o.Push, Push{To: of, Frame: relay.Encode(low)})
		}
	case *relay.BlobReserve:
		if !s.Blobs.take(blobRate, blobBurst, now) {
			r.metrics.refused(relay.CodeRateLimited)
			o.add(&relay.Error{Req: f.Req, Code: relay.CodeRateLimited, Message: "too many blob reservations; slow down"})
			break
		}
		o.add(r.reserveBlob(from, f.Req))
	default:
		return r.fail(&o, relay.CodeUnexpected, fmt.Sprintf("frame type 0x%02x is not allowed here", uint8(f.Type())))
	}
	return o
}

func (r *Relay) sessionAuth(s *Session, f relay.Frame) Output {
	var o Output
	auth, ok := f.(*relay.Auth)
	if !ok {
		return r.fail(&o, relay.CodeUnexpected, fmt.Sprintf("first frame must be Auth, got type 0x%02x", uint8(f.Type())))
	}
	if r.cfg.Now().UnixMilli() >= s.Opened+authTimeout.Milliseconds() {
		return r.fail(&o, relay.CodeAuthFailed, "no Auth frame within the time limit")
	}
	if code, msg := r.authenticate(s.Nonce, auth); code != relay.CodeOK {
		r.log.Info("auth refused", "handle", auth.Handle, "device", fmt.Sprintf("%x", auth.Device[:4]), "code", code.String())
		return r.fail(&o, code, msg)
	}
	s.Authed, s.Handle, s.Device = true, auth.Handle, store.DeviceID(auth.Device)
	s.ReadLimit = s.readLimit()
	s.Nonce = [32]byte{}           // used once
	if !r.sessionStanding(s, &o) { // arms the attestation deadline
		return o
	}
	o.Authed = true
	ready, low := r.ready(store.Addr{Handle: s.Handle, Device: s.Device})
	o.add(ready)
	if low != nil {
		o.add(low)
	}
	d := r.SessionDeliver(s)
	o.Frames = append(o.Frames, d.Frames...)
	o.Close, o.Reason, o.More = d.Close, d.Reason, d.More
	return o
}

// sessionSend stores one send durably before answering.
func (r *Relay) sessionSend(from store.Addr, req uint32, msgID [16]byte, ttlSec uint32, sealed []relay.Sealed, payload []byte, to []relay.Addr) relay.Frame {
	start := time.Now()
	envs, refusal := r.prepareSend(from, req, msgID, ttlSec, sealed, payload, to)
	if refusal != nil {
		return refusal
	}
	reply, _ := r.sendResult(req, envs, r.st.EnqueueAsync(envs, r.cfg.MailboxLimit)(), start)
	return reply
}

func (r *Relay) sessionAck(s *Session, a *relay.Ack) Output {
	var o Output
	if len(a.Seqs) == 0 {
		return o
	}
	wasFull := len(s.Inflight) >= deliveryWindow
	inflight := make(map[uint64]bool, len(s.Inflight))
	for _, q := range s.Inflight {
		inflight[q] = true
	}
	for _, q := range a.Seqs {
		if !inflight[q] {
			return r.fail(&o, relay.CodeUnexpected, fmt.Sprintf("ack for envelope %d, which is not in flight on this socket", q))
		}
		delete(inflight, q)
	}
	keep := s.Inflight[:0]
	for _, q := range s.Inflight {
		if inflight[q] {
			keep = append(keep, q)
		}
	}
	s.Inflight = keep
	if err := r.st.Delete([]store.Acked{{To: store.Addr{Handle: s.Handle, Device: s.Device}, Seqs: a.Seqs}}); err != nil {
		// The envelopes stay and are delivered again: at least once.
		r.log.Error("deleting acked envelopes", "err", err)
	}
	r.metrics.delivered.Add(float64(len(a.Seqs)))
	if !wasFull {
		return o // nothing waited for room; new mail comes with a wake-up
	}
	return r.SessionDeliver(s)
}

// SessionDeliver returns the next queued envelopes the delivery window
// allows. The host calls it when the device's mailbox has grown.
func (r *Relay) SessionDeliver(s *Session) Output {
	var o Output
	if !s.Authed || !r.sessionLive(s, &o) {
		return o
	}
	room := deliveryWindow - len(s.Inflight)
	if room <= 0 {
		return o // acks make room, and every ack delivers again
	}
	n := min(room, mailboxPage)
	envs, err := r.st.Mailbox(store.Addr{Handle: s.Handle, Device: s.Device}, s.LastSent, n, r.cfg.Now())
	if err != nil {
		r.log.Error("reading mailbox", "err", err)
		return r.fail(&o, relay.CodeInternal, "could not read the mailbox")
	}
	for i := range envs {
		e := &envs[i]
		s.Inflight = append(s.Inflight, e.Seq)
		s.LastSent = e.Seq
		o.add(&relay.Envelope{
			Seq: e.Seq, From: relay.Addr{Handle: e.From.Handle, Device: relay.DeviceID(e.From.Device)},
			MessageID: e.MessageID, ServerTime: uint64(e.ServerTime), Payload: e.Payload,
		})
	}
	o.More = len(envs) == n && len(s.Inflight) < deliveryWindow
	return o
}
