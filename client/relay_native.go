//go:build !js

package client

import (
	"context"
	"errors"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// The native relay transport: relayclient over net/http and
// coder/websocket. The browser build has its own (wasm/relay.go).

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
	return nativeErr(err)
}

func (r *httpRelay) Publish(ctx context.Context, handle string, list []byte) error {
	_, err := relayclient.Publish(ctx, r.origin, handle, list)
	return nativeErr(err)
}

func (r *httpRelay) Account(ctx context.Context, handle string) ([]byte, []byte, error) {
	a, err := relayclient.GetAccount(ctx, r.origin, handle)
	if err != nil {
		return nil, nil, nativeErr(err)
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
	auth := &relay.Auth{Handle: handle, Device: dev.ID, Timestamp: uint64(r.now().UnixMilli())}
	sig := dev.Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, r.origin, auth.Timestamp, handle, dev.ID))
	copy(auth.Sig[:], sig)
	c, err := relayclient.Finish(ctx, ws, auth)
	if err != nil {
		return nil, mapRelayErr(err)
	}
	return &relayConn{c}, nil
}

func (r *httpRelay) PutLink(ctx context.Context, id []byte, slot int, data []byte) error {
	return nativeErr(relayclient.PutLink(ctx, r.origin, id, slot, data))
}

func (r *httpRelay) GetLink(ctx context.Context, id []byte, slot int, wait time.Duration) ([]byte, error) {
	b, err := relayclient.GetLink(ctx, r.origin, id, slot, wait)
	return b, nativeErr(err)
}

func (r *httpRelay) PutBlob(ctx context.Context, id [16]byte, data []byte) error {
	return nativeErr(relayclient.PutBlob(ctx, r.origin, id, data))
}

func (r *httpRelay) GetBlob(ctx context.Context, id [16]byte) ([]byte, error) {
	b, err := relayclient.GetBlob(ctx, r.origin, id)
	return b, nativeErr(err)
}

type relayConn struct{ c *relayclient.Client }

func (c *relayConn) Envelopes() <-chan *relay.Envelope          { return c.c.Envelopes() }
func (c *relayConn) Ack(ctx context.Context, s ...uint64) error { return c.c.Ack(ctx, s...) }
func (c *relayConn) Send(ctx context.Context, id [16]byte, to []relay.Sealed) error {
	_, err := c.c.Send(ctx, id, to)
	return nativeErr(err)
}
func (c *relayConn) GroupSend(ctx context.Context, id [16]byte, payload []byte, to []relay.Addr) error {
	_, err := c.c.GroupSend(ctx, id, payload, to)
	return nativeErr(err)
}
func (c *relayConn) Fetch(ctx context.Context, of relay.Addr) (*relay.Bundle, error) {
	return c.c.Fetch(ctx, of)
}
func (c *relayConn) UploadPrekeys(ctx context.Context, p relay.Prekeys) error {
	return c.c.UploadPrekeys(ctx, p)
}
func (c *relayConn) ReserveBlob(ctx context.Context) (*relay.BlobID, error) {
	return c.c.ReserveBlob(ctx)
}
func (c *relayConn) LowStock() <-chan relay.Stock { return c.c.LowStock() }
func (c *relayConn) Stock() relay.Stock           { return c.c.Ready.Stock }
func (c *relayConn) Done() <-chan struct{}        { return c.c.Done() }
func (c *relayConn) Err() error                   { return c.c.Err() }
func (c *relayConn) Close() error                 { return c.c.Close() }

// nativeErr converts relayclient's error types to the engine's: a stale
// set to *StaleError, an HTTP refusal to *relay.RelayError, then the
// engine's codes (mapRelayErr).
func nativeErr(err error) error {
	if err == nil {
		return nil
	}
	var stale *relayclient.StaleError
	if errors.As(err, &stale) {
		return &StaleError{Accounts: stale.Accounts}
	}
	var he *relayclient.HTTPError
	if errors.As(err, &he) {
		c, _ := relay.ParseCode(he.Code)
		return mapRelayErr(&relay.RelayError{Code: c, Message: he.Message})
	}
	return mapRelayErr(err)
}
