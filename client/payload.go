package client

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// Application messages (PROTOCOL.md §14): what a ratchet message carries.
// The relay never sees them; the envelope type byte in front of the
// ratchet or initial message is all it could parse, and it does not.

// Envelope payload types: the first byte of every per-device ciphertext.
const (
	envInitial = 0x01 // pqxdh.InitialMessage carrying the first ratchet messages
	envRatchet = 0x02 // a ratchet message of an established session
)

// Payload kinds.
const (
	kindText       = 1 // body: UTF-8 text
	kindReceipt    = 2 // body: u8 status, count, message ids
	kindRetry      = 3 // body: device id || message id (repair.go, PROTOCOL.md §14.7)
	kindAttachment = 8 // body: attachmentBody (attachment.go, PROTOCOL.md §14.4)
	// State sync, own devices only (statesync.go, PROTOCOL.md §14.5).
	kindSyncMutation = 16 // body: sealed state-sync changes
	kindSyncSnapshot = 17 // body: one sealed part of a state-sync snapshot
	kindSyncRequest  = 18 // body: a snapshot request
	kindSyncKey      = 19 // body: a new state-sync key, from the primary
	// Groups (group.go, PROTOCOL.md §14.6).
	kindGroupState = 24 // body: a signed group state
	kindSenderKey  = 25 // body: a senderkey.Distribution
	kindGroupLeave = 26 // body: group id (16) ‖ u64 version held: the sending account leaves the group
)

// Limits.
const (
	// payloadVersion is a payload without the sender's list stamp;
	// payloadVersionStamped one that ends with it (PROTOCOL.md §14.2).
	// Both decode; the encoder writes the first only when there is no
	// stamp, so each payload has one encoding.
	payloadVersion        = 1
	payloadVersionStamped = 2
	// MaxTextLen bounds a text message in bytes (about 16 pages of text);
	// files go through attachments.
	MaxTextLen = 64 << 10
	// maxPayloadBody bounds any payload body.
	maxPayloadBody = MaxTextLen + 1024
	// maxHandleLen is the relay's handle limit.
	maxHandleLen = 32
	// maxReceiptIDs bounds the ids one receipt covers.
	maxReceiptIDs = 256
)

// MessageID identifies a message across all devices; random, 16 bytes.
type MessageID = [16]byte

// payload is one application message.
type payload struct {
	Kind   uint8
	ID     MessageID
	SentAt uint64 // unix milliseconds, sender's clock
	// To is the conversation peer from the sender's point of view (the
	// recipient handle). A device of the sender's own account uses it to
	// file a synced outgoing message under the right chat.
	To   string
	Body []byte
	// List is the sending device's view of its own account's device
	// list when it encrypted this payload; zero in a version-1 payload.
	// A receiver that holds an older list of the sender's account must
	// verify a list at least this new before it encrypts to that
	// account again (lists.go), so a relay cannot keep a revocation
	// from the account's contacts.
	List listStamp
}

// listStamp names one signed device list: its version and listHash of
// its encoding.
type listStamp struct {
	Version uint64
	Hash    [32]byte
}

// listHash is the hash a stamp carries of a signed list's encoding:
// SHA-256(str("parley/v1/device-list-hash") ‖ list).
func listHash(encoded []byte) [32]byte {
	w := wire.NewWriter(4 + len(listHashLabel) + len(encoded))
	w.String(listHashLabel)
	w.Fixed(encoded)
	return sha256.Sum256(w.Bytes())
}

const listHashLabel = "parley/v1/device-list-hash"

func (p *payload) marshal() []byte {
	w := wire.NewWriter(1 + 1 + 16 + 8 + 4 + len(p.To) + 4 + len(p.Body) + 8 + 32)
	if p.List.Version == 0 {
		w.U8(payloadVersion)
	} else {
		w.U8(payloadVersionStamped)
	}
	w.U8(p.Kind)
	w.Fixed(p.ID[:])
	w.U64(p.SentAt)
	w.String(p.To)
	w.Var(p.Body)
	if p.List.Version != 0 {
		w.U64(p.List.Version)
		w.Fixed(p.List.Hash[:])
	}
	return w.Bytes()
}

// errUnknownKind is a payload of a kind this version does not know.
var errUnknownKind = errors.New("payload: unknown kind")

// errNoStamp is a version-2 payload whose stamp names list version 0,
// which no list has: its canonical form is a version-1 payload.
var errNoStamp = fmt.Errorf("payload: %w: a list stamp of version 0", wire.ErrInvalid)

func unmarshalPayload(b []byte) (*payload, error) {
	r := wire.NewReader(b)
	version := r.U8()
	if r.Err() == nil && version != payloadVersion && version != payloadVersionStamped {
		r.Fail(fmt.Errorf("%w: got %d, want %d or %d", wire.ErrVersion, version, payloadVersion, payloadVersionStamped))
	}
	p := &payload{}
	p.Kind = r.U8()
	r.FixedInto(p.ID[:])
	p.SentAt = r.U64()
	p.To = r.String(maxHandleLen)
	p.Body = r.Var(maxPayloadBody)
	if version == payloadVersionStamped {
		p.List.Version = r.U64()
		r.FixedInto(p.List.Hash[:])
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if version == payloadVersionStamped && p.List.Version == 0 {
		return nil, errNoStamp
	}
	switch p.Kind {
	case kindText, kindReceipt, kindRetry, kindAttachment:
	case kindSyncMutation, kindSyncSnapshot, kindSyncRequest, kindSyncKey:
	case kindGroupState, kindSenderKey, kindGroupLeave:
	default:
		return nil, fmt.Errorf("%w %d", errUnknownKind, p.Kind)
	}
	return p, nil
}

// Receipt statuses.
const (
	StatusPending   = "pending"   // written, not yet accepted by the relay
	StatusSent      = "sent"      // stored durably by the relay
	StatusDelivered = "delivered" // a device of the recipient stored it
	StatusRead      = "read"      // the recipient marked it read
)

const (
	receiptDelivered = 1
	receiptRead      = 2
)

func receiptBody(status uint8, ids []MessageID) []byte {
	w := wire.NewWriter(1 + 4 + 16*len(ids))
	w.U8(status)
	w.U32(uint32(len(ids)))
	for _, id := range ids {
		w.Fixed(id[:])
	}
	return w.Bytes()
}

func parseReceipt(b []byte) (uint8, []MessageID, error) {
	r := wire.NewReader(b)
	st := r.U8()
	n := r.Count(maxReceiptIDs)
	ids := make([]MessageID, n)
	for i := range ids {
		r.FixedInto(ids[i][:])
	}
	if err := r.Finish(); err != nil {
		return 0, nil, fmt.Errorf("receipt: %w", err)
	}
	if st != receiptDelivered && st != receiptRead {
		return 0, nil, fmt.Errorf("receipt: unknown status %d", st)
	}
	return st, ids, nil
}
