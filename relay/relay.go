// Package relay is the protocol between Parley's devices and its relay:
// the frames a device socket carries, the error codes, the login message a
// device signs, and every limit both sides must agree on, each declared
// once here. The relay server (server/relayserver, and the Workers build
// that reuses it) and every client (the engine's native transport in
// relay/relayclient, the browser binding in wasm/, the load tool, tests)
// import it; nothing here knows about storage or HTTP servers, and it
// builds for GOOS=js.
//
// # Protocol flow
//
// Everything is under /v1/. Control operations that need no device login
// are HTTP with JSON bodies; a device's traffic is one WebSocket carrying
// binary frames (frame.go). docs/PROTOCOL.md §10 is the specification.
//
// Registration and device lists (HTTP):
//
//	POST /v1/accounts                    {handle, device_list}: first come, first served;
//	                                     the account key is the one the list is signed by
//	GET  /v1/accounts/{handle}           the account key and current signed list
//	PUT  /v1/accounts/{handle}/devices   {device_list}: a newer list signed by the same
//	                                     account key; devices it drops are disconnected,
//	                                     refused from then on, and their mailboxes purged
//
// A device session (WebSocket GET /v1/ws, subprotocol "parley.relay.v1"):
//
//  1. The relay sends Challenge: 32 random bytes, used once, for this socket only.
//  2. The device answers Auth: handle, device id, its clock, and its Ed25519
//     device-key signature over AuthMessage (label, challenge, the
//     relay's origin, timestamp, handle, device id), under the identity
//     purpose "parley/v1/relay-challenge". The relay checks it against the
//     key in the account's current list, its clock against the relay's (a
//     bound of minutes), and
//     the device's attestation age. Any failure closes the socket with
//     auth_failed or device_revoked. No tokens or shared secrets exist.
//  3. The relay sends Ready (queue size, prekey stock), then the queued
//     envelopes in order as Envelope frames, then new ones as they arrive.
//     At most MaxAcks envelopes are unacknowledged at a time; the
//     rest wait in the store, so a slow device costs disk, not memory.
//  4. The device sends Ack with the sequence numbers it has stored; the
//     relay deletes those envelopes (batched with other deletes).
//  5. Send: one message as per-device ciphertexts. The set must name every
//     current device of each account it addresses and every other device
//     of the sender's own account, and nothing else; otherwise the relay
//     answers Stale with the exact missing and extra devices per account
//     and stores nothing. Accepted envelopes are fsynced before OK.
//     GroupSend is the same with one sender-key ciphertext copied by the
//     relay to each listed device.
//  6. Prekeys uploads prekeys; Fetch takes a bundle of another device,
//     consuming one one-time prekey of each kind atomically; the owner gets
//     LowStock when its stock falls under the relay's threshold.
//  7. BlobReserve returns a random blob id; the device then PUTs the
//     encrypted bytes to /v1/blobs/{id} and anyone holding the id can GET
//     them until it expires. Each account's unexpired blobs are bounded by
//     the relay's quota (quota_exceeded); a blob is at most MaxBlob bytes
//     and lives BlobTTL.
//  8. The relay pings periodically; a socket that does not answer in
//     time is closed.
//
// Any malformed, oversize or out-of-order frame closes only that socket,
// with an Error frame (request 0) and the close code CloseBase+code.
//
// Link channel (HTTP, for the QR handshake before the companion is in the
// list): PUT /v1/link/{id}/{slot} stores one message (write once), GET
// long-polls for it and consumes it (read once); everything expires
// LinkTTL after it was written. The id is the companion's random link id.
//
// # Framing
//
// Each WebSocket binary message carries exactly one frame: a one-byte type
// followed by the type's body in the canonical crypto/wire encoding
// (frame.go). The protocol version is negotiated once as the WebSocket
// subprotocol (Subprotocol), so frames carry no version byte of their own.
// Decode is strict: unknown types, oversize fields, bad booleans and
// trailing bytes are all errors, and every length is checked before
// allocation. codes.go holds the error vocabulary; calls.go matches
// requests to their answers for clients.
//
// docs/PROTOCOL.md §10 is the specification; this package follows it.
package relay

import "time"

// Limits both sides enforce: the relay refuses what exceeds them, and the
// engine plans its sends and uploads so that it never asks for more. The
// per-frame limits Decode enforces are in frame.go.
const (
	// MaxBlob bounds one blob. Attachments larger than this are split by
	// the client into several blobs (chunks).
	MaxBlob = 8 << 20
	// BlobTTL is how long a blob (and its upload slot) lives.
	BlobTTL = 30 * 24 * time.Hour
	// MaxFanoutBytes bounds the bytes one send stores (a group send's
	// payload times its recipients): fan-out must not turn one 1 MiB frame
	// into a gigabyte on disk. A client splits a larger group send into
	// several (§10.5).
	MaxFanoutBytes = 16 << 20
	// MinTTL is the shortest life the relay gives an envelope: a sender's
	// smaller ttl_s is raised to it. An envelope that expires before its
	// device can plausibly reconnect is never delivered, so never acked,
	// and is only load (issue 14 item 3: 10,000 one-second envelopes
	// jammed a mailbox); an hour covers a phone's reconnect.
	MinTTL = time.Hour
	// LinkTTL is the life of a link-channel message (the QR handshake).
	LinkTTL = 10 * time.Minute
	// DefaultAttestationAge is how long a companion stays valid without
	// the primary re-attesting it (DESIGN.md: configurable, default 30
	// days). The relay retires companions past it; the engine warns
	// before.
	DefaultAttestationAge = 30 * 24 * time.Hour
)
