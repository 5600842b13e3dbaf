package journal

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/wire"
)

// A journal record (PROTOCOL.md 13.6) is, in crypto/wire's encoding:
//
//	u8 version (1), u32 count ≤ storage.MaxBatchOps, then per operation:
//	u8 kind (0 put, 1 delete), string bucket, string key, and for a put
//	var value
//
// sealed like every record by the store below (in the browser, under the
// device's storage key).
const (
	entryVersion = 1
	kindPut      = 0
	kindDelete   = 1
	// opOverhead bounds one operation's encoding beyond its bucket, key
	// and value.
	opOverhead = 16
)

func encodeEntry(ops []storage.Op) []byte {
	size := 8
	for _, op := range ops {
		size += len(op.Bucket) + len(op.Key) + len(op.Value) + opOverhead
	}
	w := wire.NewWriter(size)
	w.U8(entryVersion)
	w.U32(uint32(len(ops)))
	for _, op := range ops {
		kind := uint8(kindPut)
		if op.Value == nil {
			kind = kindDelete
		}
		w.U8(kind)
		w.String(op.Bucket)
		w.String(op.Key)
		if kind == kindPut {
			w.Var(op.Value)
		}
	}
	return w.Bytes()
}

var errEntry = errors.New("malformed journal record")

// decodeEntry reads a journal record; every operation must pass
// storage's limits, as the batch it came from did.
func decodeEntry(b []byte) ([]storage.Op, error) {
	r := wire.NewReader(b)
	r.Version(entryVersion)
	n := r.Count(storage.MaxBatchOps)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", errEntry, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no operations", errEntry)
	}
	ops := make([]storage.Op, 0, min(n, len(b)/4))
	for range n {
		kind := r.U8()
		op := storage.Op{Bucket: r.String(storage.MaxKeyLen), Key: r.String(storage.MaxKeyLen)}
		switch kind {
		case kindPut:
			op.Value = r.Var(storage.MaxValueLen)
			if op.Value == nil && r.Err() == nil {
				op.Value = []byte{}
			}
		case kindDelete:
		default:
			return nil, fmt.Errorf("%w: operation kind %d", errEntry, kind)
		}
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", errEntry, err)
		}
		ops = append(ops, op)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", errEntry, err)
	}
	b2 := storage.Batch{Ops: ops}
	if err := b2.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errEntry, err)
	}
	return ops, nil
}
