// Package statesync holds the pure cores of state sync (docs/PROTOCOL.md
// §14.5): the hybrid logical clock that orders writes, the batch of
// entries a change or snapshot part carries, the stored entry and clock
// records, the keyring of state-sync keys, and the snapshot request and
// key bodies. Everything here encodes, decodes, compares or merges; the
// engine (package client) stores, seals (crypto/syncseal) and sends.
//
// Every decoder enforces the limits below at parse time and reports
// crypto/wire's errors, wrapped with the name of what was being decoded;
// errors.go holds the rest.
package statesync

// Version is the format version that starts every encoding here.
const Version = 1

// Limits (PROTOCOL.md §14.5).
const (
	// MaxChatLen is the longest chat id in a state key: a handle (the
	// relay's 32 bytes) or a group id, as stored chat records allow.
	MaxChatLen = 32 + 40
	// MaxKeyLen bounds a state key: the longest namespace plus a chat id.
	MaxKeyLen = 16 + MaxChatLen
	// MaxContactNameLen bounds a contact's display name.
	MaxContactNameLen = 64
	// MaxSettingNameLen and MaxSettingValueLen bound one setting.
	MaxSettingNameLen  = 64
	MaxSettingValueLen = 1024
	// MaxValueLen bounds any value on the wire.
	MaxValueLen = MaxSettingValueLen
	// MaxEntries bounds the entries of one batch.
	MaxEntries = 1024
	// MaxPartPlain is the plaintext budget of one snapshot part, so that a
	// sealed part stays inside a payload; bigger states are sent in
	// several parts, each merged on its own.
	MaxPartPlain = 48 << 10
	// MaxParts bounds the parts of one snapshot (a part number is a u16).
	MaxParts = 1 << 15
	// MaxKeys is how many sync keys a device keeps: the current one and
	// older ones for changes still in flight when a key was rotated.
	MaxKeys = 8
)
