package keyname

import (
	"encoding/binary"
	"errors"

	"github.com/parley-im/parley/client/storage"
)

// A value in a named bucket is stored as
//
//	u8 valueVersion || u16 len || original key || value
//
// because the stored key cannot be turned back into the original one. The
// store below seals it like any value, so the original key is as secret as
// the record. The inner store's storage.MaxValueLen bounds the whole, so a
// named bucket takes values up to 3 + len(key) bytes shorter; the engine's
// named records are far below it.
const (
	valueVersion = 1
	valueHeader  = 3
)

var errValue = errors.New("keyname: malformed value")

func sealValue(key string, value []byte) []byte {
	out := make([]byte, 0, valueHeader+len(key)+len(value))
	out = append(out, valueVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(key)))
	out = append(out, key...)
	return append(out, value...)
}

// openValue splits a stored value into its original key and value. It
// refuses another version, a key longer than storage.MaxKeyLen, or a
// value too short for its key; the value it returns is never nil.
func openValue(b []byte) (key string, value []byte, err error) {
	if len(b) < valueHeader || b[0] != valueVersion {
		return "", nil, errValue
	}
	n := int(binary.BigEndian.Uint16(b[1:valueHeader]))
	if n > storage.MaxKeyLen || len(b) < valueHeader+n {
		return "", nil, errValue
	}
	return string(b[valueHeader : valueHeader+n]), b[valueHeader+n:], nil
}
