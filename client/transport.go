package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

// Relay is everything the engine asks of the relay. The real one
// speaks docs/PROTOCOL.md §10: natively through relayclient (NewRelay),
// in the browser through fetch and the browser's WebSocket (wasm/relay.go:
// net/http alone would triple the size of the client's wasm, and
// internal/jsdeps fails if the browser build pulls it in);
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
	Envelopes() <-chan *relay.Envelope
	Ack(ctx context.Context, seqs ...uint64) error
	// Send returns a *StaleError when the device set is stale.
	Send(ctx context.Context, msgID [16]byte, to []relay.Sealed) error
	// GroupSend submits one ciphertext for the relay to copy to each
	// device of to; a stale set is a *StaleError, as for Send.
	GroupSend(ctx context.Context, msgID [16]byte, payload []byte, to []relay.Addr) error
	Fetch(ctx context.Context, of relay.Addr) (*relay.Bundle, error)
	UploadPrekeys(ctx context.Context, p relay.Prekeys) error
	ReserveBlob(ctx context.Context) (*relay.BlobID, error)
	LowStock() <-chan relay.Stock
	Stock() relay.Stock
	Done() <-chan struct{}
	Err() error
	Close() error
}

// StaleError is a send the relay refused because its device set differs
// from the current lists; Accounts is the exact difference. The engine
// refreshes the lists and retries.
type StaleError struct{ Accounts []relay.StaleAccount }

func (e *StaleError) Error() string {
	return fmt.Sprintf("relay: stale device set for %d account(s)", len(e.Accounts))
}

// MapRelayErr is mapRelayErr for transports outside this package (the
// browser's, in wasm/).
func MapRelayErr(err error) error { return mapRelayErr(err) }

// mapRelayErr turns relay refusals into engine errors with specific codes;
// anything else (network) is returned as is and treated as "offline".
func mapRelayErr(err error) error {
	if err == nil {
		return nil
	}
	var re *relay.RelayError
	if errors.As(err, &re) {
		return relayCodeErr(re.Code, re.Message, err)
	}
	return err
}

func relayCodeErr(c relay.Code, msg string, cause error) error {
	switch c {
	case relay.CodeUnknownAccount:
		return newError(ErrUnknownAccount.Code, cause, "%s", ErrUnknownAccount.Message)
	case relay.CodeHandleTaken:
		return newError(ErrHandleTaken.Code, cause, "%s", ErrHandleTaken.Message)
	case relay.CodeBadHandle:
		return newError(ErrBadHandle.Code, cause, "%s", ErrBadHandle.Message)
	case relay.CodeRevoked:
		return newError(ErrRevoked.Code, cause, "%s", ErrRevoked.Message)
	case relay.CodeNotFound:
		return newError(CodeNotFound, cause, "the relay has no such item (expired or never stored): %s", msg)
	case relay.CodeAlreadyUsed:
		return newError(ErrLinkUsed.Code, cause, "%s", ErrLinkUsed.Message)
	case relay.CodeTooManyDevices:
		return newError(ErrTooManyDevices.Code, cause, "%s", ErrTooManyDevices.Message)
	}
	return newError(ErrRelayRefused.Code, cause, "the relay refused: %s (%s)", msg, c)
}
