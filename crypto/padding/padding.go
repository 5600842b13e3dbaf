// Package padding hides the length of an application payload from the
// relay (docs/PROTOCOL.md §14.2, "Padding"). The engine pads every payload
// with Pad before a ratchet or sender-key chain encrypts it, and a
// receiver calls Open on what decrypted; the padded frame is inside the
// ciphertext, so only its size, one of a few buckets, is visible outside.
//
// A padded frame is
//
//	u8 Tag ‖ u32 n ‖ payload (n bytes) ‖ zero bytes
//
// whose total length is Size(HeaderSize + n): 256 B, 1 KiB, 4 KiB,
// 16 KiB, 64 KiB, then the next multiple of 64 KiB, at most MaxSize.
// There is exactly one padded frame of each payload: Open refuses a frame
// of any other length, a length beyond the frame and any non-zero padding
// byte.
//
// Payloads from clients that do not pad start with their own version byte
// (1 today), always below Tag; Open hands those back unchanged, so a
// receiver reads old and new senders alike.
package padding

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

const (
	// Tag is the first byte of a padded frame (format 1). Payload
	// versions stay below 0x80, so the byte alone tells a padded frame
	// from an unpadded payload; a later padding format takes 0x81.
	Tag = 0x80
	// HeaderSize is the tag and the u32 payload length.
	HeaderSize = 1 + 4
	// MaxSize bounds a padded frame: three 64 KiB steps, which holds the
	// largest payload (a 64 KiB text with its fields, ≈ 65.1 KiB) with
	// room for new fields, while a padded frame in a ratchet message and
	// an initial message (§4.3, §5.4) stays under the relay's 256 KiB per
	// envelope (relay.MaxPayload).
	MaxSize = 3 * step
	// step is the bucket step above the fixed buckets.
	step = 64 << 10
)

// buckets are the sizes up to step: a receipt, a short text and a sync
// change all fit the first, so the common messages look alike; each
// further bucket is four times the last, so there are five sizes up to
// 64 KiB and a frame is at most four times its payload (plus header).
var buckets = [...]int{256, 1 << 10, 4 << 10, 16 << 10, step}

// Errors of Open besides crypto/wire's (ErrShort: empty or shorter than
// the header; ErrVersion: a first byte at or above Tag that is not Tag;
// ErrTooLarge: a frame over MaxSize).
var (
	// ErrLength means the frame's length is not the size of its payload's
	// bucket, or the payload length runs past the frame.
	ErrLength = errors.New("padding: frame length does not match its payload length")
	// ErrNonZero means a padding byte is not zero.
	ErrNonZero = errors.New("padding: non-zero padding byte")
)

// Size is the padded length of a frame of n bytes (header included): the
// smallest bucket that holds n, or 0 if n is over MaxSize.
func Size(n int) int {
	if n > MaxSize || n < 0 {
		return 0
	}
	for _, b := range buckets {
		if n <= b {
			return b
		}
	}
	return (n + step - 1) / step * step
}

// Pad returns payload in a padded frame. A payload whose frame would be
// over MaxSize is refused with wire.ErrTooLarge.
func Pad(payload []byte) ([]byte, error) {
	size := Size(HeaderSize + len(payload))
	if size == 0 {
		return nil, fmt.Errorf("padding: payload of %d bytes: %w", len(payload), wire.ErrTooLarge)
	}
	out := make([]byte, size)
	out[0] = Tag
	binary.BigEndian.PutUint32(out[1:HeaderSize], uint32(len(payload)))
	copy(out[HeaderSize:], payload)
	return out, nil
}

// Open returns the payload of a padded frame, a sub-slice of b. A first
// byte below Tag marks an unpadded payload from a client that does not
// pad: Open returns b itself and padded = false, and the payload's own
// decoder checks it.
func Open(b []byte) (payload []byte, padded bool, err error) {
	if len(b) == 0 {
		return nil, false, fmt.Errorf("padding: empty frame: %w", wire.ErrShort)
	}
	if b[0] < Tag {
		return b, false, nil
	}
	if b[0] != Tag {
		return nil, false, fmt.Errorf("padding: format byte %#x: %w", b[0], wire.ErrVersion)
	}
	if len(b) > MaxSize {
		return nil, false, fmt.Errorf("padding: frame of %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	if len(b) < HeaderSize {
		return nil, false, fmt.Errorf("padding: %w", wire.ErrShort)
	}
	n := binary.BigEndian.Uint32(b[1:HeaderSize])
	if uint64(n) > uint64(len(b)-HeaderSize) || Size(HeaderSize+int(n)) != len(b) {
		return nil, false, fmt.Errorf("padding: %d-byte frame claims %d payload bytes: %w", len(b), n, ErrLength)
	}
	end := HeaderSize + int(n)
	var or byte
	for _, c := range b[end:] {
		or |= c
	}
	if or != 0 {
		return nil, false, ErrNonZero
	}
	return b[HeaderSize:end], true, nil
}
