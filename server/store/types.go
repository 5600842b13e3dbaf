// Types and errors of the store's interface, shared by every
// implementation: this file builds everywhere (including GOOS=js for the
// Workers relay), while the bbolt implementation in store.go does not.

package store

import (
	"errors"
	"fmt"
)

// Errors callers test with errors.Is.
var (
	ErrGone        = errors.New("store: already used")
	ErrLocked      = errors.New("store: database is in use by another process")
	ErrClosed      = errors.New("store: closed")
	ErrNotFound    = errors.New("store: not found")
	ErrExists      = errors.New("store: already exists")
	ErrConflict    = errors.New("store: stored version changed")
	ErrMailboxFull = errors.New("store: mailbox full")
	ErrTooMany     = errors.New("store: prekey stock limit reached")
	ErrQuota       = errors.New("store: blob quota exceeded")
	ErrKeyTaken    = errors.New("store: account key registered under another handle")
	// ErrSuperseded refuses a send checked against a device list that
	// was replaced before the send was stored (Envelope.ListVersion).
	ErrSuperseded = errors.New("store: device list changed since the send was checked")
)

// DeviceID names a device within an account. It has the same layout as
// crypto/identity's DeviceID; the store keeps its own type so it depends on
// no crypto package.
type DeviceID [16]byte

// Addr is one device of one account.
type Addr struct {
	Handle string
	Device DeviceID
}

// Account is a registered account as stored: its public key and the signed
// device list exactly as published. An account key belongs to one handle
// (CreateAccount refuses a second with ErrKeyTaken), so a list cannot be
// registered again under another handle and give the devices it names,
// some perhaps removed since, an identity of their own.
type Account struct {
	Handle     string
	AccountKey []byte
	Version    uint64
	DeviceList []byte
}

// Envelope is one ciphertext queued for one device.
type Envelope struct {
	Seq        uint64 // assigned by the store, increasing per mailbox
	To         Addr
	From       Addr
	MessageID  [16]byte
	ServerTime int64 // unix milliseconds when accepted
	Expires    int64 // unix milliseconds after which it is dropped undelivered
	Payload    []byte
	// ListVersion is the version of To's account list the send was
	// checked against: the store refuses the whole send (ErrSuperseded)
	// if that account's list is no longer this version, so an envelope
	// never lands in a mailbox a list change already purged. 0: no
	// check. It is not stored.
	ListVersion uint64
}

// PrekeyUpload is what a device publishes; the store treats every key as
// opaque bytes. Empty SignedPrekey or LastResortKEM leave the stored one.
type PrekeyUpload struct {
	SignedPrekey  []byte
	LastResortKEM []byte
	OneTime       [][]byte
	KEM           [][]byte
}

// Stock is how many one-time prekeys of each kind a device has left.
type Stock struct {
	OneTime int
	KEM     int
}

// Bundle is what a fetch hands out: one-time keys it contains were removed
// from the store in the same transaction.
type Bundle struct {
	SignedPrekey []byte
	OneTime      []byte // nil when the stock ran out or the budget withheld it
	KEM          []byte // a one-time KEM prekey, or the last-resort one
	LastResort   bool   // KEM is the last-resort key
	Withheld     bool   // the device's fetch budget was spent: no one-time key taken
	Left         Stock  // stock after this fetch
}

// FetchBudget is a token bucket per target device: how many fetches may
// take its one-time prekeys at once (Burst) and how fast that refills.
// It is kept with the device's prekeys, so every socket, account and
// relay instance that fetches shares it.
type FetchBudget struct {
	Burst  int
	PerSec float64
}

// spend takes one token from a bucket that held tokens at atMs (atMs 0:
// a full bucket) and returns whether it could, with the bucket's new
// state. Clocks that go backwards refill nothing.
func (b FetchBudget) spend(tokens float64, atMs, nowMs int64) (ok bool, left float64, at int64) {
	if atMs == 0 {
		tokens = float64(b.Burst)
	} else if nowMs > atMs {
		tokens = min(float64(b.Burst), tokens+b.PerSec*float64(nowMs-atMs)/1000)
	}
	if tokens < 1 {
		return false, tokens, max(atMs, nowMs)
	}
	return true, tokens - 1, max(atMs, nowMs)
}

// MailboxFullError names the mailbox that refused a send.
type MailboxFullError struct{ To Addr }

func (e *MailboxFullError) Error() string {
	return fmt.Sprintf("store: mailbox of %s/%x is full", e.To.Handle, e.To.Device[:4])
}
func (e *MailboxFullError) Unwrap() error { return ErrMailboxFull }

// Acked names envelopes of one mailbox that its device acknowledged.
type Acked struct {
	To   Addr
	Seqs []uint64
}
