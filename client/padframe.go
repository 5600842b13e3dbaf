package client

import "github.com/parley-im/parley/crypto/padding"

// Padding (PROTOCOL.md §14.2): what a ratchet or a sender-key chain
// encrypts is the payload in a padded frame (crypto/padding), so the relay
// sees one of a few sizes, not which kind of message went or how long it
// was. The outbox keeps the payload itself; the frame is made where it is
// encrypted and undone where it decrypted.

// padPayload is the frame a session or sender chain encrypts for payload
// (payload.marshal()).
func padPayload(payload []byte) ([]byte, error) { return padding.Pad(payload) }

// openPayload undoes padPayload and decodes the payload. A payload from a
// client that does not pad (its first byte, the payload version, is below
// padding.Tag) decodes as it is.
func openPayload(pt []byte) (*payload, error) {
	b, _, err := padding.Open(pt)
	if err != nil {
		return nil, err
	}
	return unmarshalPayload(b)
}
