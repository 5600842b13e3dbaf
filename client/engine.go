package client

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
	"github.com/parley-im/parley/relay"
)

// Defaults for Config's zero values.
const (
	// DefaultAttestationAge is how long a companion stays valid without the
	// primary re-attesting it (DESIGN.md: configurable, visible, warned):
	// the relay's own default, so the engine warns before the relay retires.
	DefaultAttestationAge = relay.DefaultAttestationAge
	// reconnectMin and reconnectMax bound the jittered backoff between
	// connection attempts.
	reconnectMin = 250 * time.Millisecond
	reconnectMax = 30 * time.Second
	// maxHandledSeqs bounds the per-socket memory of handled envelope
	// sequence numbers.
	maxHandledSeqs = 4096
	// maxAckGroup bounds how many received envelopes wait for one Sync
	// before they are acknowledged; the relay's delivery window
	// (relay.MaxAcks unacknowledged envelopes) is larger, so a group never
	// stalls the relay.
	maxAckGroup = 64
	// ackDelay is how long a received envelope may wait for the Sync that
	// covers it (and for its delivery receipt, sent after the Sync). A
	// message arriving alone is shown at once; only its acknowledgement
	// and receipt wait, so a trickle of messages shares one strict commit
	// per ackDelay instead of paying one each.
	ackDelay = 100 * time.Millisecond
	// outboxRetry is how often a connected device retries a paused outbox.
	outboxRetry = 2 * time.Second
	// opTimeout bounds one relay round trip made on behalf of a call.
	opTimeout = 30 * time.Second
)

// handleRule is the relay's handle rule (3–32 of a-z 0-9 . _ -), checked
// locally for a clear error. A loop, not a regexp: the regexp package
// alone adds ~100 KB to the browser client.
var handleRule = nameRule{min: 3, max: 32}

// nameRule accepts min..max bytes of [a-z0-9._-], and A-Z if upper.
type nameRule struct {
	min, max int
	upper    bool
}

// MatchString reports whether s follows the rule.
func (r nameRule) MatchString(s string) bool {
	if len(s) < r.min || len(s) > r.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || r.upper && c >= 'A' && c <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

// Config configures an Engine.
type Config struct {
	Store storage.Store
	Relay Relay
	// Device, if set, is this device's identity when the store has none
	// yet (the browser makes and shows it before any account exists); if
	// the store has one, they must be the same.
	Device *identity.Device
	// Rand is the randomness source (nil: crypto/rand).
	Rand io.Reader
	// Now is the clock (nil: time.Now); tests use a fake one for expiry.
	Now func() time.Time
	// OnEvent receives events (new messages, receipts, link progress,
	// state changes). It is called without engine locks held, from the
	// engine's goroutines, and must not block for long.
	OnEvent func(Event)
	// Logger gets operational logs; never keys, plaintext or ciphertext.
	Logger Logger
	// AttestationAge retires companions not re-attested for this long.
	AttestationAge time.Duration
	// ReconnectMax caps the backoff between connection attempts (default
	// 30 s); tests shorten it.
	ReconnectMax time.Duration
	// BulkCipher encrypts attachments and history bundles (nil: Go's
	// AES-256-GCM); the browser passes WebCrypto's. See bulk.go.
	BulkCipher BulkCipher
	// HistoryLimit is how many recent messages per chat a primary sends a
	// new companion (0: DefaultHistoryLimit; negative: none; at most
	// MaxHistoryLimit).
	HistoryLimit int
}

// Logger receives the engine's operational logs as a message and
// key-value pairs; *slog.Logger satisfies it. It is an interface so the
// browser build need not link log/slog (about 0.3 MB of wasm).
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

type discardLogger struct{}

func (discardLogger) Info(string, ...any)  {}
func (discardLogger) Warn(string, ...any)  {}
func (discardLogger) Error(string, ...any) {}

// Event is something the UI may want to show.
type Event struct {
	Type    string   `json:"type"` // message, receipt, chats, devices, state, link-check, link-connection, error
	Message *Message `json:"message,omitempty"`
	Chat    string   `json:"chatId,omitempty"`
	// CheckCode is set for link-check, and on the primary LinkID too.
	CheckCode string `json:"checkCode,omitempty"`
	LinkID    string `json:"linkId,omitempty"`
	Code      Code   `json:"code,omitempty"`
	Text      string `json:"text,omitempty"`
	// MessageID, Done and Total are set for transfer-progress (an
	// attachment's upload or download, in encrypted bytes) and Done and
	// Total for sync-progress (a history bundle: bytes, then messages).
	MessageID string `json:"messageId,omitempty"`
	Done      int64  `json:"done,omitempty"`
	Total     int64  `json:"total,omitempty"`
}

// Engine is one device's messenger.
type Engine struct {
	cfg Config
	log Logger

	// mu serializes every state change: one writer per device, so two
	// goroutines never advance the same ratchet.
	mu      sync.Mutex
	dev     *identity.Device
	acct    *accountRecord
	account *identity.Account // primary only
	lists   map[string]*devicelist.List
	conn    Conn
	links   map[string]*pendingLink // primary: links awaiting confirmation

	// ownStamp is the list stamp of ownStampOf, the own list it was
	// computed for (ownStampLocked).
	ownStamp   listStamp
	ownStampOf *devicelist.List

	companion     *link.Companion // companion: a link in progress
	companionName string
	// linkAnswer is set while the companion shows a check code and waits
	// for its user: ConfirmLinkCode sends true, RejectLinkCode false.
	linkAnswer chan bool

	online chan struct{} // closed and replaced on every connect
	kick   chan struct{} // wakes the session loop to flush the outbox

	stats      receiveStats
	lastStatus atomic.Pointer[Status] // see Status

	// outboxGen counts commits that queued something (outboxWatch);
	// outboxClean is its value when the flusher last found both outboxes
	// empty (0: never), so an unchanged count means nothing to send.
	outboxGen   atomic.Uint64
	outboxClean uint64
	// uploadsClean is outboxGen when the upload queue was last found
	// empty, so flushUploads does not scan it on every flush.
	uploadsClean uint64
	// openReceipts maps recipient and receipt status to the outbox key
	// of a receipt not yet encrypted, which the next receipt of the same
	// kind joins (queueReceiptLocked): a burst of messages is answered
	// with a few receipts, not one per message.
	openReceipts map[string]string
	repair       repairs // repair.go
	expired      bool    // the relay refuses us for an expired attestation
	lastSentAt   uint64  // see nextSentAtLocked

	// outboxSeq is the outbox's counter, the key of the newest entry
	// queued (nextOutboxSeqLocked); outboxSeqLoaded says it was recovered
	// from the store in this run.
	outboxSeq       uint64
	outboxSeqLoaded bool

	// syncTap, if set, sees every sealed state-sync change this device
	// receives, before it is opened. Only tests set it (tapSync), under mu,
	// so product code holds no global hook.
	syncTap func(sealed []byte)
}

// Open loads this device from the store, creating its identity on first
// use. It does not touch the network.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Relay == nil {
		return nil, errors.New("client: Config.Store and Config.Relay are required")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AttestationAge == 0 {
		cfg.AttestationAge = DefaultAttestationAge
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = reconnectMax
	}
	log := cfg.Logger
	if log == nil {
		log = discardLogger{}
	}
	e := &Engine{cfg: cfg, log: log, lists: map[string]*devicelist.List{}, links: map[string]*pendingLink{}, online: make(chan struct{}), kick: make(chan struct{}, 1), openReceipts: map[string]string{}}
	e.outboxGen.Store(1) // unknown at start: the first flush scans
	e.cfg.Store = outboxWatch{cfg.Store, &e.outboxGen}
	cfg = e.cfg

	b, err := cfg.Store.Get(ctx, bSelf, keyDevice)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		dev := cfg.Device
		if dev == nil {
			if dev, err = identity.NewDevice(cfg.Rand); err != nil {
				return nil, err
			}
		}
		enc, err := dev.MarshalBinary()
		if err != nil {
			return nil, err
		}
		var batch storage.Batch
		batch.Put(bSelf, keyDevice, enc)
		if err := cfg.Store.Commit(ctx, &batch); err != nil {
			return nil, storageErr(err)
		}
		e.dev = dev
	case err != nil:
		return nil, storageErr(err)
	default:
		dev, err := identity.UnmarshalDevice(b)
		if err != nil {
			return nil, newError(ErrStorage.Code, err, "the device identity record is corrupt")
		}
		if cfg.Device != nil && !cfg.Device.Public().Equal(dev.Public()) {
			// Two identities for one device would make it a stranger to
			// its own account; refuse rather than pick one.
			return nil, newError(ErrStorage.Code, nil, "the engine's stored device identity differs from the one given")
		}
		e.dev = dev
	}

	if b, err := cfg.Store.Get(ctx, bSelf, keyAccount); err == nil {
		a, err := unmarshalAccount(b)
		if err != nil {
			return nil, newError(ErrStorage.Code, err, "the account record is corrupt")
		}
		e.acct = a
		if a.Primary {
			acc, err := identity.UnmarshalAccount(a.AccountKey)
			if err != nil {
				return nil, newError(ErrStorage.Code, err, "the account key record is corrupt")
			}
			e.account = acc
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, storageErr(err)
	}
	return e, nil
}

func storageErr(err error) error {
	return newError(ErrStorage.Code, err, "storage failed: %v", err)
}

func (e *Engine) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}

// Device returns this device's public keys.
func (e *Engine) Device() identity.DevicePublic { return e.dev.Public() }

// Status describes the engine for the UI.
type Status struct {
	Status   string `json:"status"` // new, ready, revoked
	Handle   string `json:"handle,omitempty"`
	DeviceID string `json:"deviceId"`
	Primary  bool   `json:"primary"`
	Online   bool   `json:"online"`
	// Expired is set while the relay refuses this companion because the
	// primary has not re-attested it within the attestation period; it
	// clears as soon as the primary re-attests (no relink needed).
	Expired bool `json:"expired"`
}

// Status reports whether the device has an account, is online, revoked.
//
// It never waits for the engine: while another call holds the engine (a
// slow storage commit, a relay round trip) it answers with the status it
// last computed, so the UI's state never freezes.
func (e *Engine) Status() Status {
	if !e.mu.TryLock() {
		if st := e.lastStatus.Load(); st != nil {
			return *st
		}
		e.mu.Lock()
	}
	defer e.mu.Unlock()
	return e.statusLocked()
}

// statusLocked computes the status and keeps it for Status's lock-free
// answer; every change of account, connection or expiry calls it.
func (e *Engine) statusLocked() Status {
	st := Status{Status: "new", DeviceID: e.dev.ID.String(), Online: e.conn != nil, Expired: e.expired}
	if e.acct != nil {
		st.Status, st.Handle, st.Primary = "ready", e.acct.Handle, e.acct.Primary
		if e.acct.Revoked {
			st.Status = "revoked"
		}
	}
	e.lastStatus.Store(&st)
	return st
}

// CreateAccount makes this device the primary of a new account: it creates
// the account key, signs a device list holding only this device, registers
// the handle on the relay and prepares prekeys (uploaded on connect).
func (e *Engine) CreateAccount(ctx context.Context, handle, deviceName string) error {
	if !handleRule.MatchString(handle) {
		return ErrBadHandle
	}
	if len(deviceName) == 0 || len(deviceName) > devicelist.MaxNameLen {
		return newError(CodeBadName, nil, "a device name is 1 to %d bytes", devicelist.MaxNameLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct != nil {
		return ErrHasAccount
	}
	account, err := identity.NewAccount(e.cfg.Rand)
	if err != nil {
		return err
	}
	now := uint64(e.cfg.Now().Unix())
	list := &devicelist.List{
		Account: account.Public(), Version: 1, Timestamp: now,
		Entries: []devicelist.Entry{{
			Device: e.dev.Public(), Name: deviceName, Added: now, Attested: now, Primary: true,
			DeviceSig: devicelist.DeviceSignature(e.dev, account.Public()),
		}},
	}
	signed, err := devicelist.Sign(account, list)
	if err != nil {
		return err
	}
	if err := e.cfg.Relay.Register(ctx, handle, signed); err != nil {
		return err
	}
	accKey, err := account.MarshalBinary()
	if err != nil {
		return err
	}
	rec := &accountRecord{Handle: handle, AccountPub: account.Public(), Primary: true, AccountKey: accKey, DeviceName: deviceName}
	if _, err := io.ReadFull(e.cfg.Rand, rec.SyncKey[:]); err != nil {
		return err
	}
	var batch storage.Batch
	batch.Put(bSelf, keyAccount, rec.marshal())
	batch.Put(bLists, handle, (&pinnedList{AccountPub: account.Public(), Encoded: signed}).marshal())
	if err := e.addPrekeys(ctx, &batch, true); err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &batch); err != nil {
		return storageErr(err)
	}
	e.acct, e.account = rec, account
	e.lists[handle] = list
	e.statusLocked()
	e.log.Info("account created", "handle", handle, "device", e.dev.ID.String())
	e.emit(Event{Type: "state"})
	return nil
}

// Run keeps the device connected until ctx ends or the device is revoked:
// it connects (signing the relay's challenge), uploads prekeys, flushes
// the outbox, and processes envelopes; on any disconnect it retries with
// jittered exponential backoff.
func (e *Engine) Run(ctx context.Context) error {
	backoff := reconnectMin
	for {
		err := e.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrRevoked) {
			// The relay says we are not (or no longer) a valid device.
			// Believe only the signed list: a relay cannot fake a removal,
			// and an expired attestation is repaired by the primary.
			if removed, cerr := e.checkRemoved(ctx); cerr == nil && removed {
				e.markRevoked(context.WithoutCancel(ctx))
				return err
			}
			e.setExpired(true)
			backoff = e.cfg.ReconnectMax
		}
		if errors.Is(err, ErrNoAccount) {
			return err
		}
		if err != nil {
			e.log.Warn("relay session ended", "err", err)
		}
		// Full jitter: a fleet of clients does not reconnect in lockstep
		// after a relay restart.
		select {
		case <-time.After(time.Duration(mrand.Int64N(int64(backoff))) + reconnectMin/2):
		case <-ctx.Done():
			return ctx.Err()
		}
		if backoff *= 2; backoff > e.cfg.ReconnectMax {
			backoff = e.cfg.ReconnectMax
		}
	}
}

// session runs one connection until it ends.
func (e *Engine) session(ctx context.Context) error {
	e.mu.Lock()
	acct := e.acct
	e.mu.Unlock()
	if acct == nil {
		return ErrNoAccount
	}
	if acct.Revoked {
		return ErrRevoked
	}
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	conn, err := e.cfg.Relay.Connect(cctx, acct.Handle, e.dev)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	e.setExpired(false)
	e.mu.Lock()
	e.conn = conn
	e.statusLocked()
	close(e.online)
	e.online = make(chan struct{})
	e.mu.Unlock()
	e.emit(Event{Type: "state"})
	defer func() {
		e.mu.Lock()
		e.conn = nil
		e.statusLocked()
		e.mu.Unlock()
		e.emit(Event{Type: "state"})
	}()

	// A device that was off rotates its signed prekeys now, before it
	// publishes (prekeys.go); one that stays on checks every
	// prekeyCheckInterval.
	e.mu.Lock()
	if _, err := e.rotatePrekeysLocked(ctx); err != nil {
		e.log.Warn("prekey rotation failed", "err", err)
	}
	e.mu.Unlock()
	if err := e.publishPrekeys(ctx, conn); err != nil {
		return err
	}
	rotate := time.NewTicker(prekeyCheckInterval)
	defer rotate.Stop()
	// The relay reports a low stock at login too, before this device's
	// first upload; publishPrekeys already acted on the login stock, so
	// that notice is stale (acting on it made a companion generate and
	// seal 70 needless prekeys at its first connection).
	select {
	case <-conn.LowStock():
	default:
	}
	go e.noteActive(ctx)
	go e.resyncIfPending(ctx)
	// Sending runs beside receiving: the flusher waits on the relay's
	// durable acks without the engine lock, so a long outbox never holds
	// up incoming messages (or their acks, which the relay's delivery
	// window waits for).
	sctx, stopFlusher := context.WithCancel(ctx)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		e.flusher(sctx)
	}()
	defer func() {
		stopFlusher()
		<-flusherDone
	}()
	handled := map[uint64]struct{}{}
	// Envelopes received (in relaxed batches) but not yet acknowledged:
	// ackDurable syncs the store once for all of them, ackDelay after the
	// first or when maxAckGroup are pending (group commit: a strict commit
	// costs more than a receive in the browser). Pending ones left when
	// the socket ends are delivered again and dropped as duplicates.
	var pending []uint64
	ackTimer := time.NewTimer(ackDelay)
	ackTimer.Stop()
	defer ackTimer.Stop()
	flushAcks := func() {
		ackTimer.Stop()
		e.ackDurable(ctx, conn, pending)
		pending = pending[:0]
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case env, ok := <-conn.Envelopes():
			if !ok {
				return connErr(conn)
			}
			// The relay numbers envelopes per socket; one it delivers twice
			// on the same socket was handled already (and acking it twice
			// would be a protocol error).
			if _, dup := handled[env.Seq]; dup {
				continue
			}
			if len(handled) >= maxHandledSeqs {
				clear(handled)
			}
			handled[env.Seq] = struct{}{}
			if e.receive(ctx, env) {
				pending = append(pending, env.Seq)
				if len(pending) == 1 {
					ackTimer.Reset(ackDelay)
				}
			}
			if len(pending) >= maxAckGroup {
				flushAcks()
			}
		case <-ackTimer.C:
			flushAcks()
		case <-rotate.C:
			e.maintainPrekeys(ctx)
		case <-conn.LowStock():
			// A socket that already ended (revoked, say) gets no new
			// prekeys: making them is the slowest thing a device does.
			select {
			case <-conn.Done():
				return connErr(conn)
			default:
			}
			if err := e.refillPrekeys(ctx, conn); err != nil {
				e.log.Warn("prekey refill failed", "err", err)
			}
		case <-conn.Done():
			return connErr(conn)
		}
	}
}

// flusher sends the outbox now, whenever kicked, and on a timer (a paused
// outbox — a recipient without prekeys yet, a full mailbox — is retried
// even when nothing else happens), until ctx ends. It is the only caller
// of flushOutbox, so an entry is never sent twice at once.
func (e *Engine) flusher(ctx context.Context) {
	retry := time.NewTicker(outboxRetry)
	defer retry.Stop()
	for {
		e.flushUploads(ctx) // files first: their messages join the outbox
		e.flushOutbox(ctx)
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-retry.C:
		}
	}
}

func connErr(conn Conn) error {
	err := mapRelayErr(conn.Err())
	if err == nil {
		err = errors.New("connection closed")
	}
	return err
}

func (e *Engine) markRevoked(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil || e.acct.Revoked {
		return
	}
	a := *e.acct
	a.Revoked = true
	var b storage.Batch
	b.Put(bSelf, keyAccount, a.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		e.log.Error("could not record revocation", "err", err)
		return
	}
	e.acct = &a
	e.statusLocked()
	e.log.Warn("this device was revoked from its account")
	go e.emit(Event{Type: "state", Code: ErrRevoked.Code})
}

// checkRemoved refreshes our own verified list and reports whether this
// device is absent from it.
func (e *Engine) checkRemoved(ctx context.Context) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.acct == nil {
		return false, ErrNoAccount
	}
	l, err := e.listLocked(ctx, e.acct.Handle, true)
	if err != nil {
		return false, err
	}
	return l.Find(e.dev.ID) == nil, nil
}

func (e *Engine) setExpired(v bool) {
	e.mu.Lock()
	changed := e.expired != v
	e.expired = v
	e.statusLocked()
	e.mu.Unlock()
	if changed {
		e.emit(Event{Type: "state", Code: map[bool]Code{true: CodeAttestationExpired, false: ""}[v]})
	}
}

// WaitOnline blocks until the engine is connected or ctx ends.
func (e *Engine) WaitOnline(ctx context.Context) error {
	for {
		e.mu.Lock()
		if e.conn != nil {
			e.mu.Unlock()
			return nil
		}
		ch := e.online
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ownList returns this account's verified list (cached).
func (e *Engine) ownList(ctx context.Context) (*devicelist.List, error) {
	return e.listLocked(ctx, e.acct.Handle, false)
}
