// Package idbwire lays out the buffers the browser client and web/boot.js
// pass each other for IndexedDB (docs/PROTOCOL.md §13.1): a batch to
// commit, and a page of records read. One buffer crosses the Go/JS
// boundary instead of a JS value per key, IV and record, each of which
// costs a call into JS and a finalizer on the Go side. boot.js holds the
// other half of each layout. Pure Go, so it is tested and fuzzed natively.
package idbwire

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/parley-im/parley/client/storage"
)

// IVSize is the AES-GCM nonce of a sealed record.
const IVSize = 12

// Flags of one operation in a packed commit.
const (
	FlagDelete   = 1 << 0
	FlagIfAbsent = 1 << 1
)

// PackCommit lays out b's operations for boot.js's commit, little-endian:
//
//	u32 count, then per operation:
//	u8 flags (FlagDelete, FlagIfAbsent), u16 len + bucket, u32 len + key,
//	and unless FlagDelete: IV (IVSize bytes, from rand), u32 len +
//	associated data (ad(bucket, key)), u32 len + value.
//
// b must have passed Validate (buckets and keys within storage.MaxKeyLen).
func PackCommit(b *storage.Batch, rand io.Reader, ad func(bucket, key string) []byte) ([]byte, error) {
	size := 4
	for _, op := range b.Ops {
		size += 1 + 2 + len(op.Bucket) + 4 + len(op.Key)
		if op.Value != nil {
			size += IVSize + 4 + len(ad(op.Bucket, op.Key)) + 4 + len(op.Value)
		}
	}
	buf := make([]byte, 0, size)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b.Ops)))
	for _, op := range b.Ops {
		var flags byte
		if op.Value == nil {
			flags |= FlagDelete
		}
		if op.IfAbsent {
			flags |= FlagIfAbsent
		}
		buf = append(buf, flags)
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(op.Bucket)))
		buf = append(buf, op.Bucket...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(op.Key)))
		buf = append(buf, op.Key...)
		if op.Value == nil {
			continue
		}
		iv := len(buf)
		buf = buf[:iv+IVSize]
		if _, err := io.ReadFull(rand, buf[iv:]); err != nil {
			return nil, err
		}
		a := ad(op.Bucket, op.Key)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(a)))
		buf = append(buf, a...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(op.Value)))
		buf = append(buf, op.Value...)
	}
	return buf, nil
}

// States of a record in a read page.
const (
	StateOpened   = 0 // unsealed; Value is its plaintext
	StateNotBytes = 1 // not in the sealed format at all
	StateDamaged  = 2 // failed its integrity check
)

// Record is one record of a read page.
type Record struct {
	Key   string
	State byte
	Value []byte // the plaintext, when State is StateOpened
}

// ErrMalformed reports a read page that does not follow the layout.
var ErrMalformed = errors.New("idbwire: malformed read result")

// UnpackRead decodes a page boot.js's read returns, little-endian:
//
//	u32 count, then per record: u32 len + key, u8 state, u32 len + value
//
// with at most max records. Each Value is its own slice of b (appending
// to one cannot overwrite the next).
func UnpackRead(b []byte, max int) ([]Record, error) {
	take := func(n int) []byte {
		if n < 0 || n > len(b) {
			b = nil
			return nil
		}
		v := b[:n:n]
		b = b[n:]
		return v
	}
	u32 := func() int {
		v := take(4)
		if v == nil {
			return -1
		}
		n := binary.LittleEndian.Uint32(v)
		if uint64(n) > uint64(len(b)) {
			return -1 // longer than what is left: also keeps int conversion safe
		}
		return int(n)
	}
	count := u32()
	if count < 0 || count > max {
		return nil, ErrMalformed
	}
	out := make([]Record, 0, min(count, len(b)/9))
	for range count {
		key := take(u32())
		state := take(1)
		value := take(u32())
		if key == nil || state == nil || value == nil || state[0] > StateDamaged {
			return nil, ErrMalformed
		}
		r := Record{Key: string(key), State: state[0]}
		if r.State == StateOpened {
			r.Value = value
		} else if len(value) != 0 {
			return nil, ErrMalformed
		}
		out = append(out, r)
	}
	if len(b) != 0 {
		return nil, ErrMalformed
	}
	return out, nil
}
