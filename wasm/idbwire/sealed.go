package idbwire

import (
	"encoding/binary"
	"errors"
)

// Sealed record layouts (docs/PROTOCOL.md 13.1, 13.2). A record names the
// epoch of the data key it was sealed under, so a profile can hold records
// of two data keys while a lock change re-seals it:
//
//	SealV1 || iv (IVSize) || AES-256-GCM ciphertext+tag      epoch 0
//	SealV2 || u32 epoch (big-endian, > 0) || iv || ciphertext+tag
//
// Epoch 0 keeps the original layout, so a profile that never had its data
// key changed is byte for byte what earlier clients wrote and read.
// web/boot.js holds the same parser.
const (
	SealV1  = 1
	SealV2  = 2
	TagSize = 16
)

// ErrSealedFormat reports bytes that follow neither sealed layout.
var ErrSealedFormat = errors.New("idbwire: not a sealed record")

// SealedHeader is the header of a record sealed under epoch's data key
// with iv; the ciphertext follows it.
func SealedHeader(epoch uint32, iv []byte) []byte {
	if epoch == 0 {
		return append([]byte{SealV1}, iv...)
	}
	h := binary.BigEndian.AppendUint32([]byte{SealV2}, epoch)
	return append(h, iv...)
}

// ParseSealed splits a sealed record into its epoch, iv and ciphertext
// (with tag), each a slice of b. A SealV2 record of epoch 0 is refused: it
// has one spelling only.
func ParseSealed(b []byte) (epoch uint32, iv, ct []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, ErrSealedFormat
	}
	at := 1
	switch b[0] {
	case SealV1:
	case SealV2:
		if len(b) < 5 {
			return 0, nil, nil, ErrSealedFormat
		}
		if epoch = binary.BigEndian.Uint32(b[1:5]); epoch == 0 {
			return 0, nil, nil, ErrSealedFormat
		}
		at = 5
	default:
		return 0, nil, nil, ErrSealedFormat
	}
	if len(b) < at+IVSize+TagSize {
		return 0, nil, nil, ErrSealedFormat
	}
	return epoch, b[at : at+IVSize : at+IVSize], b[at+IVSize:], nil
}
