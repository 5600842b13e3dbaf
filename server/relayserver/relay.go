// Package relayserver is Parley's message relay: it stores and forwards
// opaque ciphertext between devices, so that every device (a browser
// companion with the phone off included) can send and receive on its own.
// It sees only public keys and ciphertext, and it verifies only what it
// must: device list signatures (through crypto/devicelist), challenge
// answers (through the device keys in those lists) and sizes.
//
// The protocol it serves, its flow, frames, error codes and the limits both
// sides share are package relay (github.com/parley-im/parley/relay), read
// that first; docs/PROTOCOL.md §10 is the specification. This package is
// the server side only: nothing a client needs lives here.
//
// Files: relay.go (server limits, Relay, hub), conn.go (the socket loop and
// the rules it shares with hosted sessions), writer.go (a socket's writer
// and the byte budgets of what it holds), hosted.go (the same protocol
// for hosts that hold the socket themselves, the Workers build), http.go
// (HTTP endpoints, per-IP limits), lists.go (verified device lists),
// metrics.go.
package relayserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/store"
	"golang.org/x/time/rate"
)

// Limits and timings of this server. Each is a constant with its reason;
// Config can lower some of them for tests and small deployments. The limits
// a client must also know (MaxBlob, MaxFanoutBytes, BlobTTL, LinkTTL,
// DefaultAttestationAge and the frame limits) are package relay's.
const (
	// DefaultMaxConnections caps connections per process, device sockets
	// and requests alike: at ~30 KiB per idle socket this is about 1.5
	// GiB, the most a small server should commit to idle sockets.
	// parley-server lowers the default below its descriptor limit.
	DefaultMaxConnections = 50_000
	// DefaultMaxConnectionsPerIP caps the connections of one IPv4 address
	// or IPv6 /64: an office behind one NAT, a hundred people with a socket
	// and a request each, fits; one address cannot take the process's
	// descriptors (1,500 stalled requests from one address were seen).
	DefaultMaxConnectionsPerIP = 256
	// DefaultBodyTimeout is the grace a request body gets before it must
	// keep up DefaultBodyMinRate: a stalled body (a client that sends the
	// headers and a byte) holds its connection this long, not for ever.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultBodyMinRate is the average rate, in bytes per second, a body
	// must keep after DefaultBodyTimeout: a slow mobile uplink is several
	// times faster, and an 8 MiB blob may take 8.5 minutes.
	DefaultBodyMinRate = 16 << 10
	// maxConnsPerDevice stops one device from holding many sockets (a
	// reconnect loop, or a stolen key used in parallel).
	maxConnsPerDevice = 4
	// DefaultMailboxLimit caps the envelopes queued for one device. Past
	// it sends are refused (mailbox_full) rather than old messages
	// dropped: losing history silently is worse than a visible error.
	DefaultMailboxLimit = 10_000
	// DefaultTTL is how long an undelivered envelope is kept.
	DefaultTTL = 30 * 24 * time.Hour
	// maxTTL bounds a sender's requested TTL.
	maxTTL = DefaultTTL
	// deliveryWindow is the number of envelopes in flight (sent, not
	// acked) per socket: enough to keep a fast link busy, small enough
	// that a stalled client pins little memory.
	deliveryWindow = relay.MaxAcks
	// maxPipelined bounds a socket's sends waiting for their commit: enough
	// for a busy sender to fill group commits, small enough that one socket
	// cannot crowd the writer.
	maxPipelined = 16
	// mailboxPage is the most envelopes one page holds; a page is bounded
	// in bytes too (Config.SocketBytesInFlight), and that bound is the one
	// that matters for large envelopes.
	mailboxPage = 128
	// DefaultSocketBytesInFlight bounds the envelope bytes one socket's
	// writer holds (its page): four envelopes of the largest size, or
	// thousands of small ones. A page of 128 envelopes of 256 KiB (32 MiB)
	// held for a slow reader was the bug this replaced.
	DefaultSocketBytesInFlight = 1 << 20
	// DefaultBytesInFlight bounds those bytes for all sockets together:
	// 256 pages at once, far more than active devices write at a time on
	// a small server, and a fixed ceiling however many sockets stall.
	DefaultBytesInFlight = 256 << 20
	// DefaultDrainTimeout is the time a socket has to take one page: 1 MiB
	// in 30 s is about 35 KB/s, below any link a chat is usable on. A
	// socket slower than that is closed, and its device reconnects.
	DefaultDrainTimeout = 30 * time.Second
	// outQueue is the depth of a socket's reply queue. When it is full the
	// reader stops reading, so a client that sends faster than it reads
	// is throttled by TCP instead of growing our memory.
	outQueue = 32
	// writeTimeout closes a socket whose peer stopped reading.
	writeTimeout = 10 * time.Second
	// authTimeout bounds the time from connect to a valid Auth frame.
	authTimeout = 10 * time.Second
	// maxClockSkew bounds the difference between the device's timestamp in
	// Auth and ours. The challenge already prevents replay; this limits
	// how long a signed answer stays meaningful in logs.
	maxClockSkew = 2 * time.Minute
	// pingInterval keeps NATs open and finds dead peers; pingTimeout is
	// how long a pong may take.
	pingInterval = 30 * time.Second
	pingTimeout  = 15 * time.Second
	// maxPrekeyStock caps stored one-time prekeys of each kind per device.
	maxPrekeyStock = 1000
	// lowStockThreshold: under it the device is told to upload more.
	lowStockThreshold = 20
	// DefaultBlobQuota bounds the bytes of unexpired blobs one account
	// has uploaded: attachments and history bundles of a month, not a
	// free file host (anyone can register an account).
	DefaultBlobQuota = 1 << 30
	// maxLinkMessage bounds one link-channel message; history travels as a
	// blob referenced by the link bundle.
	maxLinkMessage = 64 << 10
	// maxLinkSlots is the number of one-shot slots per link id.
	maxLinkSlots = 8
	// maxLinkWait bounds one long-poll on the link channel; clients poll
	// again, so no request outlives typical proxy idle timeouts.
	maxLinkWait = 25 * time.Second
	// maxLinkWaiters bounds concurrent long-polls per process.
	maxLinkWaiters = 10_000
	// maxJSONBody bounds a control-plane request body: a device list is at
	// most devicelist.MaxEncodedSize, base64 adds a third.
	maxJSONBody = 16 << 10
	// sweepInterval is how often expired envelopes, links and blobs go.
	sweepInterval = 10 * time.Minute
	// deleteQueue is the depth of the batched-delete channel; when full,
	// ack processing waits, which throttles the acking socket.
	deleteQueue = 4096
	// closeGrace is how long Close still waits for close handshakes after
	// its context ended, so sockets get their going-away code.
	closeGrace = time.Second
	// maxThrottle is the longest a socket's reader waits on its rate limit
	// before the frame is refused with rate_limited instead.
	maxThrottle = time.Second
)

// Rate limits (token buckets, golang.org/x/time/rate).
const (
	// frameRate/frameBurst per socket: well above a human, above a busy
	// bot, far below what would let one socket saturate the store.
	frameRate  = 2000
	frameBurst = 4000
	// ipRate/ipBurst per client IP for HTTP requests and socket opens:
	// a NAT full of users fits, a scanner does not.
	ipRate  = 50
	ipBurst = 200
	// registerRate/registerBurst per IP for account creation.
	registerRate  = 1.0 / 60
	registerBurst = 10
	// fetchRate/fetchBurst per socket for prekey bundle fetches, which
	// consume another device's one-time prekeys.
	fetchRate  = 20
	fetchBurst = 200
	// DefaultPrekeyFetches is the burst of fetches, from every socket
	// together, that take one target device's one-time prekeys;
	// targetFetchRate refills it. Per-socket limits are multiplied by
	// sockets and accounts (one socket drained 100 keys in 0.06 s, issue
	// 14 item 9). Under the client's batch (50) less the low-stock mark
	// (20): a flood leaves the device keys to hand out and sends it
	// LowStock, it refills, and from then on the flood takes one key per
	// 10 s. A fetch past the budget still gets the signed and last-resort
	// prekeys, so sessions start; they only lack the one-time key.
	DefaultPrekeyFetches = 32
	targetFetchRate      = 0.1
	// blobRate/blobBurst per socket for blob reservations.
	blobRate  = 5
	blobBurst = 50
)

// Store is everything the relay needs from storage. *store.Store (bbolt)
// implements it; a Workers build provides another. Implementations must
// make EnqueueAsync durable before its wait returns, keep one caller's
// submissions in order, and make TakeBundle atomic.
type Store interface {
	CreateAccount(store.Account) error
	Account(handle string) (store.Account, error)
	ReplaceDeviceList(handle string, prev, version uint64, list []byte, removed []store.DeviceID) (purged int, err error)
	// EnqueueAsync queues one send's envelopes; wait returns once they are
	// durable or refused. Submissions from one goroutine keep their order.
	EnqueueAsync(envs []store.Envelope, limit int) (wait func() error)
	Mailbox(to store.Addr, after uint64, limit int, now time.Time) ([]store.Envelope, error)
	MailboxLen(to store.Addr) (int, error)
	Delete(acks []store.Acked) error
	PutPrekeys(of store.Addr, up store.PrekeyUpload, max int) (store.Stock, error)
	// TakeBundle takes a bundle of of, charging the device's fetch budget
	// (shared by every fetcher); past it, no one-time prekey is taken.
	TakeBundle(of store.Addr, now time.Time, budget store.FetchBudget) (store.Bundle, error)
	PrekeyStock(of store.Addr) (store.Stock, error)
	PutLink(key, data []byte, expires, now time.Time) error
	TakeLink(key []byte, now time.Time) ([]byte, error)
	ReserveBlob(id []byte, owner string, expires time.Time) error
	// BlobSlot is nil for an unexpired, unfilled reservation, and what
	// PutBlob would answer otherwise (ErrNotFound, ErrExists): checked
	// before an upload's body is read.
	BlobSlot(id []byte, now time.Time) error
	PutBlob(id, data []byte, now time.Time, quota int64) error
	Blob(id []byte, now time.Time) ([]byte, error)
	Sweep(now time.Time) (int, error)
	Queued() int64
}

// Config configures a Relay. Origin is required; zero values elsewhere
// mean the defaults above.
type Config struct {
	// Origin is the relay's public origin ("https://parley.example"), as
	// the device signs it in its challenge answer.
	Origin string
	// Logger receives structured events (never payloads or keys).
	Logger *slog.Logger
	// MaxConnections caps concurrent sockets.
	MaxConnections int
	// BodyTimeout and BodyMinRate bound the time a request body may take:
	// BodyTimeout, plus one second per BodyMinRate bytes read so far.
	BodyTimeout time.Duration
	BodyMinRate int64
	// BytesInFlight bounds the envelope bytes read for writing and not yet
	// written, all sockets together; SocketBytesInFlight bounds one
	// socket's (its page); DrainTimeout is the time a socket has to take
	// one page before it is closed.
	BytesInFlight       int64
	SocketBytesInFlight int64
	DrainTimeout        time.Duration
	// MailboxLimit caps envelopes queued per device.
	MailboxLimit int
	// DefaultTTL is the TTL of envelopes whose sender asked for none.
	DefaultTTL time.Duration
	// AttestationAge retires companions not re-attested for this long.
	AttestationAge time.Duration
	// BlobQuota bounds the bytes of unexpired blobs per account.
	BlobQuota int64
	// PrekeyFetches is the burst of fetches that take one device's
	// one-time prekeys (DefaultPrekeyFetches); tests that fetch one
	// device's bundle many times raise it.
	PrekeyFetches int
	// IPRate and IPBurst override the per-IP budget for HTTP requests and
	// socket opens (load tests open thousands of sockets from one address).
	IPRate  rate.Limit
	IPBurst int
	// RegisterRate and RegisterBurst override the per-IP budget for
	// account creation.
	RegisterRate  rate.Limit
	RegisterBurst int
	// Hosted is for a host that holds device sockets itself (hosted
	// sessions) and runs each request in a fresh instance, like Cloudflare
	// Workers: no pinger (the host keeps its sockets alive) and no expiry
	// sweeper (the host calls Store.Sweep on its own schedule), so a
	// finished request leaves no timer behind.
	Hosted bool
	// LinkPoll, if set, makes link long-polls also re-read the store this
	// often: for hosts where the writer of a link message may be another
	// process (Cloudflare Workers runs every request in a fresh instance).
	LinkPoll time.Duration
	// Now replaces time.Now in tests.
	Now func() time.Time
	// AfterFunc replaces time.AfterFunc for the timers that follow Now
	// (a companion socket's attestation expiry), so a test that moves Now
	// forward fires them; stop reports whether it cancelled f.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// Relay is the running relay.
type Relay struct {
	cfg     Config
	st      Store
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	lists   *lists
	ips     *ipLimiter
	regs    *ipLimiter

	base       context.Context // parent of every socket's context
	cancelBase context.CancelFunc
	closingCtx context.Context // done when Close starts
	startClose context.CancelFunc

	mu      sync.Mutex
	conns   map[store.Addr]map[*conn]struct{}
	closing bool
	nconns  atomic.Int64

	links *linkWaiters
	// inFlight is the envelope bytes socket writers hold, all together.
	inFlight *byteBudget

	deletes  chan store.Acked
	delDone  chan struct{}
	stop     chan struct{}
	bg       sync.WaitGroup
	sockets  sync.WaitGroup
	stopOnce sync.Once
}

// New starts a relay on st. It starts background work (batched deletes,
// expiry sweeps) that Close stops.
func New(st Store, cfg Config) (*Relay, error) {
	if st == nil {
		return nil, errors.New("relay: nil store")
	}
	if cfg.Origin == "" || !(strings.HasPrefix(cfg.Origin, "http://") || strings.HasPrefix(cfg.Origin, "https://")) || strings.HasSuffix(cfg.Origin, "/") {
		return nil, fmt.Errorf("relay: Config.Origin must be scheme://host[:port] without a trailing slash, got %q", cfg.Origin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MailboxLimit <= 0 {
		cfg.MailboxLimit = DefaultMailboxLimit
	}
	if cfg.DefaultTTL <= 0 || cfg.DefaultTTL > maxTTL {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.AttestationAge <= 0 {
		cfg.AttestationAge = relay.DefaultAttestationAge
	}
	if cfg.BlobQuota <= 0 {
		cfg.BlobQuota = DefaultBlobQuota
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.BodyMinRate <= 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	// A page must take at least one envelope of the largest size, and the
	// total at least one page.
	if cfg.SocketBytesInFlight <= 0 {
		cfg.SocketBytesInFlight = DefaultSocketBytesInFlight
	}
	cfg.SocketBytesInFlight = max(cfg.SocketBytesInFlight, envelopeCost)
	if cfg.BytesInFlight <= 0 {
		cfg.BytesInFlight = DefaultBytesInFlight
	}
	cfg.BytesInFlight = max(cfg.BytesInFlight, cfg.SocketBytesInFlight)
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.PrekeyFetches <= 0 {
		cfg.PrekeyFetches = DefaultPrekeyFetches
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	r := &Relay{
		cfg:      cfg,
		st:       st,
		log:      cfg.Logger.With("component", "relay"),
		lists:    newLists(st),
		ips:      newIPLimiter(cmp.Or(cfg.IPRate, ipRate), cmp.Or(cfg.IPBurst, ipBurst)),
		regs:     newIPLimiter(cmp.Or(cfg.RegisterRate, registerRate), cmp.Or(cfg.RegisterBurst, registerBurst)),
		conns:    make(map[store.Addr]map[*conn]struct{}),
		links:    newLinkWaiters(),
		inFlight: newByteBudget(cfg.BytesInFlight),
		deletes:  make(chan store.Acked, deleteQueue),
		delDone:  make(chan struct{}),
		stop:     make(chan struct{}),
	}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	r.closingCtx, r.startClose = context.WithCancel(context.Background())
	r.metrics = newMetrics(r)
	r.mux = http.NewServeMux()
	r.routes()
	go r.deleter()
	if !cfg.Hosted {
		r.bg.Add(2)
		go r.sweeper()
		go r.pinger()
	}
	return r, nil
}

// Handler serves everything under /v1/.
func (r *Relay) Handler() http.Handler { return r.mux }

// Metrics serves the relay's Prometheus metrics in text format.
func (r *Relay) Metrics() http.Handler { return r.metrics.handler() }

// Close stops accepting sockets, closes every open one with
// StatusGoingAway, and flushes pending deletes. It returns when they are
// done or ctx ends. It does not close the store.
func (r *Relay) Close(ctx context.Context) error {
	r.startClose()
	r.mu.Lock()
	r.closing = true
	var all []*conn
	for _, set := range r.conns {
		for c := range set {
			all = append(all, c)
		}
	}
	r.mu.Unlock()
	for _, c := range all {
		c.shut(websocket.StatusGoingAway, "relay shutting down")
	}
	done := make(chan struct{})
	go func() {
		r.sockets.Wait()
		r.stopOnce.Do(func() { close(r.stop); close(r.deletes) })
		r.bg.Wait()
		<-r.delDone
		close(done)
	}()
	select {
	case <-done:
		r.cancelBase()
		return nil
	case <-ctx.Done():
		// Give close handshakes already started a moment even when the
		// caller's time is up (http.Server.Shutdown may have used it all
		// waiting for link long-polls), then cut what is left.
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		r.cancelBase()
		return ctx.Err()
	}
}

// deleter turns acks from every socket into few store commits: it takes
// everything queued, merges it per mailbox and deletes it in one call.
func (r *Relay) deleter() {
	defer close(r.delDone)
	for a := range r.deletes {
		batch := map[store.Addr][]uint64{a.To: a.Seqs}
	more:
		for len(batch) < 4096 {
			select {
			case b, ok := <-r.deletes:
				if !ok {
					break more
				}
				batch[b.To] = append(batch[b.To], b.Seqs...)
			default:
				break more
			}
		}
		acks := make([]store.Acked, 0, len(batch))
		for to, seqs := range batch {
			acks = append(acks, store.Acked{To: to, Seqs: seqs})
		}
		if err := r.st.Delete(acks); err != nil {
			// The envelopes stay and are delivered again: at least once.
			r.log.Error("deleting acked envelopes", "err", err)
		}
	}
}

func (r *Relay) sweeper() {
	defer r.bg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			n, err := r.st.Sweep(r.cfg.Now())
			if err != nil {
				r.log.Error("sweeping expired records", "err", err)
			} else if n > 0 {
				r.log.Info("swept expired records", "count", n)
			}
		}
	}
}

// maxPings bounds pings in flight, so a ping round over many sockets does
// not become a burst of goroutines.
const maxPings = 256

// pinger pings every socket every pingInterval (keepalive for NATs, and
// dead peers are found within pingInterval+pingTimeout).
func (r *Relay) pinger() {
	defer r.bg.Done()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	sem := make(chan struct{}, maxPings)
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		var all []*conn
		for _, set := range r.conns {
			for c := range set {
				all = append(all, c)
			}
		}
		r.mu.Unlock()
		for _, c := range all {
			select {
			case sem <- struct{}{}:
			case <-r.stop:
				return
			}
			go func() { defer func() { <-sem }(); c.ping() }()
		}
	}
}

// register adds c to the hub; false if the relay is closing or the device
// already has maxConnsPerDevice sockets.
func (r *Relay) register(c *conn) relay.Code {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return relay.CodeBusy
	}
	set := r.conns[c.addr]
	if len(set) >= maxConnsPerDevice {
		return relay.CodeBusy
	}
	if set == nil {
		set = make(map[*conn]struct{})
		r.conns[c.addr] = set
	}
	set[c] = struct{}{}
	return relay.CodeOK
}

func (r *Relay) unregister(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if set := r.conns[c.addr]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(r.conns, c.addr)
		}
	}
}

// connsOf returns the sockets of one device.
func (r *Relay) connsOf(a store.Addr) []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.conns[a]
	out := make([]*conn, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// wake tells a device's sockets that their mailbox has new envelopes.
func (r *Relay) wake(a store.Addr) {
	for _, c := range r.connsOf(a) {
		c.kick(true)
	}
}

// kick closes every socket of a device that left its account's list.
func (r *Relay) kick(a store.Addr, reason string) {
	for _, c := range r.connsOf(a) {
		c.fail(0, relay.CodeRevoked, reason)
	}
}

// recheck makes the sockets of every companion in a newly published list
// check their standing again: a re-attestation moves the moment a socket
// ends, later (or earlier). Stores whose sockets live elsewhere (hosted
// sessions) are told through standingNotifier.
func (r *Relay) recheck(a *account) {
	sn, _ := r.st.(standingNotifier)
	for i := range a.list.Entries {
		e := &a.list.Entries[i]
		if e.Primary {
			continue
		}
		addr := store.Addr{Handle: a.handle, Device: store.DeviceID(e.Device.ID)}
		for _, c := range r.connsOf(addr) {
			c.watchStanding()
		}
		if sn != nil {
			if err := sn.RecheckStanding(addr); err != nil {
				// Its sockets still end at their old moment, checked then.
				r.log.Warn("asking a device's sockets to re-check their attestation", "err", err)
			}
		}
	}
}

// standingNotifier is implemented by stores that reach device sockets the
// relay does not hold (the Workers build): RecheckStanding makes each
// socket of a call SessionTimeout now.
type standingNotifier interface {
	RecheckStanding(a store.Addr) error
}

// standing is whether device a may keep its socket: CodeOK and the moment
// its companion attestation runs out (zero for a primary), or the refusal
// that ends the socket.
func (r *Relay) standing(a store.Addr) (relay.Code, string, time.Time) {
	acct, err := r.lists.get(a.Handle)
	if errors.Is(err, errUnknownAccount) {
		return relay.CodeRevoked, "the device's account is gone", time.Time{}
	}
	if err != nil {
		r.log.Error("loading device list", "err", err)
		return relay.CodeInternal, "could not load the device list", time.Time{}
	}
	e := acct.device(relay.DeviceID(a.Device))
	if e == nil {
		return relay.CodeRevoked, "device was removed from its account's list", time.Time{}
	}
	if e.Primary {
		return relay.CodeOK, "", time.Time{}
	}
	if devicelist.CheckAttestation(e, r.cfg.Now(), r.cfg.AttestationAge) != nil {
		return relay.CodeRevoked, msgAttestationExpired, time.Time{}
	}
	// CheckAttestation refuses once more than AttestationAge has passed.
	return relay.CodeOK, "", time.Unix(int64(e.Attested), 0).Add(r.cfg.AttestationAge + time.Millisecond)
}

// msgAttestationExpired explains the refusal, at login or on an open
// socket, of a companion whose attestation ran out.
const msgAttestationExpired = "companion attestation expired; the primary must re-attest it"
