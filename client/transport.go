package client

import (
	"context"
	"errors"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/server/relay/frame"
	"github.com/parley-im/parley/server/relay/relayclient"
)

// Relay is everything the engine asks of the relay. The real one
// (NewRelay) speaks docs/PROTOCOL.md §10 through relayclient, natively and
// in the browser (coder/websocket and net/http both build for js/wasm);
// tests substitute a hostile one that forges, replays, drops, duplicates
// and reorders. The engine trusts none of its answers: lists are verified
// and pinned, bundles checked against them, envelopes authenticated by the
// ratchet.
type Relay interface {
	Register(ctx context.Context, handle string, list []byte) error
	Publish(ctx context.Context, handle string, list []byte) error
	// Account returns the account key and signed device list the relay
	// holds for handle, or ErrUnknownAccount.
	Account(ctx context.Context, handle string) (accountKey, list []byte, err error)
	Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error)
	PutLink(ctx context.Context, id []byte, slot int, data []byte) error
	GetLink(ctx context.Context, id []byte, slot int, wait time.Duration) ([]byte, error)
	PutBlob(ctx context.Context, id [16]byte, data []byte) error
	GetBlob(ctx context.Context, id [16]byte) ([]byte, error)
	Origin() string
}

// Conn is one authenticated device socket.
type Conn interface {
	Envelopes() <-chan *frame.Envelope
	Ack(ctx context.Context, seqs ...uint64) error
	// Send returns a *relayclient.StaleError when the device set is stale.
	Send(ctx context.Context, msgID [16]byte, to []frame.Sealed) error
	// GroupSend submits one ciphertext for the relay to copy to each
	// device of to; a stale set is a *relayclient.StaleError, as for Send.
	GroupSend(ctx context.Context, msgID [16]byte, payload []byte, to []frame.Addr) error
	Fetch(ctx context.Context, of frame.Addr) (*frame.Bundle, error)
	UploadPrekeys(ctx context.Context, p frame.Prekeys) error
	ReserveBlob(ctx context.Context) (*frame.BlobID, error)
	LowStock() <-chan frame.Stock
	Stock() frame.Stock
	Done() <-chan struct{}
	Err() error
	Close() error
}

// NewRelay returns the real relay at origin (e.g. "https://parley.example").
func NewRelay(origin string) Relay { return &httpRelay{origin: origin, now: time.Now} }

// NewRelayClock is NewRelay with the clock used to timestamp challenge
// answers (tests that move time for relay and devices together).
func NewRelayClock(origin string, now func() time.Time) Relay {
	return &httpRelay{origin: origin, now: now}
}

type httpRelay struct {
	origin string
	now    func() time.Time
}

func (r *httpRelay) Origin() string { return r.origin }

func (r *httpRelay) Register(ctx context.Context, handle string, list []byte) error {
	_, err := relayclient.Register(ctx, r.origin, handle, list)
	return mapRelayErr(err)
}

func (r *httpRelay) Publish(ctx context.Context, handle string, list []byte) error {
	_, err := relayclient.Publish(ctx, r.origin, handle, list)
	return mapRelayErr(err)
}

func (r *httpRelay) Account(ctx context.Context, handle string) ([]byte, []byte, error) {
	a, err := relayclient.GetAccount(ctx, r.origin, handle)
	if err != nil {
		return nil, nil, mapRelayErr(err)
	}
	return a.AccountKey, a.DeviceList, nil
}

// Connect answers the relay's challenge by signing (challenge, origin,
// time, handle, device id) with the device key (PROTOCOL.md §10).
func (r *httpRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error) {
	ws, ch, err := relayclient.DialRaw(ctx, r.origin)
	if err != nil {
		return nil, mapRelayErr(err)
	}
	auth := &frame.Auth{Handle: handle, Device: dev.ID, Timestamp: uint64(r.now().UnixMilli())}
	sig := dev.Sign(identity.PurposeRelayChallenge, frame.AuthMessage(ch.Nonce, r.origin, auth.Timestamp, handle, dev.ID))
	copy(auth.Sig[:], sig)
	c, err := relayclient.Finish(ctx, ws, auth)
	if err != nil {
		return nil, mapRelayErr(err)
	}
	return &relayConn{c}, nil
}

func (r *httpRelay) PutLink(ctx context.Context, id []byte, slot int, data []byte) error {
	return mapRelayErr(relayclient.PutLink(ctx, r.origin, id, slot, data))
}

func (r *httpRelay) GetLink(ctx context.Context, id []byte, slot int, wait time.Duration) ([]byte, error) {
	b, err := relayclient.GetLink(ctx, r.origin, id, slot, wait)
	return b, mapRelayErr(err)
}

func (r *httpRelay) PutBlob(ctx context.Context, id [16]byte, data []byte) error {
	return mapRelayErr(relayclient.PutBlob(ctx, r.origin, id, data))
}

func (r *httpRelay) GetBlob(ctx context.Context, id [16]byte) ([]byte, error) {
	b, err := relayclient.GetBlob(ctx, r.origin, id)
	return b, mapRelayErr(err)
}

type relayConn struct{ c *relayclient.Client }

func (c *relayConn) Envelopes() <-chan *frame.Envelope          { return c.c.Envelopes() }
func (c *relayConn) Ack(ctx context.Context, s ...uint64) error { return c.c.Ack(ctx, s...) }
func (c *relayConn) Send(ctx context.Context, id [16]byte, to []frame.Sealed) error {
	_, err := c.c.Send(ctx, id, to)
	return err
}
func (c *relayConn) GroupSend(ctx context.Context, id [16]byte, payload []byte, to []frame.Addr) error {
	_, err := c.c.GroupSend(ctx, id, payload, to)
	return err
}
func (c *relayConn) Fetch(ctx context.Context, of frame.Addr) (*frame.Bundle, error) {
	return c.c.Fetch(ctx, of)
}
func (c *relayConn) UploadPrekeys(ctx context.Context, p frame.Prekeys) error {
	return c.c.UploadPrekeys(ctx, p)
}
func (c *relayConn) ReserveBlob(ctx context.Context) (*frame.BlobID, error) {
	return c.c.ReserveBlob(ctx)
}
func (c *relayConn) LowStock() <-chan frame.Stock { return c.c.LowStock() }
func (c *relayConn) Stock() frame.Stock           { return c.c.Ready.Stock }
func (c *relayConn) Done() <-chan struct{}        { return c.c.Done() }
func (c *relayConn) Err() error                   { return c.c.Err() }
func (c *relayConn) Close() error                 { return c.c.Close() }

// mapRelayErr turns relay refusals into engine errors with specific codes;
// anything else (network) is returned as is and treated as "offline".
func mapRelayErr(err error) error {
	if err == nil {
		return nil
	}
	var he *relayclient.HTTPError
	if errors.As(err, &he) {
		c, _ := frame.ParseCode(he.Code)
		return relayCodeErr(c, he.Message, err)
	}
	var re *frame.RelayError
	if errors.As(err, &re) {
		return relayCodeErr(re.Code, re.Message, err)
	}
	return err
}

func relayCodeErr(c frame.Code, msg string, cause error) error {
	switch c {
	case frame.CodeUnknownAccount:
		return newError(ErrUnknownAccount.Code, cause, "%s", ErrUnknownAccount.Message)
	case frame.CodeHandleTaken:
		return newError(ErrHandleTaken.Code, cause, "%s", ErrHandleTaken.Message)
	case frame.CodeBadHandle:
		return newError(ErrBadHandle.Code, cause, "%s", ErrBadHandle.Message)
	case frame.CodeRevoked:
		return newError(ErrRevoked.Code, cause, "%s", ErrRevoked.Message)
	case frame.CodeNotFound:
		return newError("not_found", cause, "the relay has no such item (expired or never stored): %s", msg)
	case frame.CodeAlreadyUsed:
		return newError(ErrLinkUsed.Code, cause, "%s", ErrLinkUsed.Message)
	case frame.CodeTooManyDevices:
		return newError(ErrTooManyDevices.Code, cause, "%s", ErrTooManyDevices.Message)
	}
	return newError(ErrRelayRefused.Code, cause, "the relay refused: %s (%s)", msg, c)
}
