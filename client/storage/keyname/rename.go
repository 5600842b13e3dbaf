package keyname

import (
	"context"
	"slices"

	"github.com/parley-im/parley/client/storage"
)

// RenamePage bounds one step of Rename: the records read and moved in one
// batch (a put and a delete each, well under storage.MaxBatchOps).
const RenamePage = 256

// Rename moves every record a profile from before the naming layer stored
// under its clear key in a named bucket to its stored name, and returns how
// many it moved. Each step of up to RenamePage records is one strict batch
// (put under the name, delete the clear key), so a crash leaves every
// record under one name or the other, never both or neither, and the next
// Rename carries on: a record already renamed is recognised by its value
// (it holds its original key, and that key's name is where it is). Nothing
// may write through the layer meanwhile (the browser renames before its
// engine opens, PROTOCOL.md 13.9).
func (s *Store) Rename(ctx context.Context) (int, error) {
	buckets := make([]string, 0, len(s.rules))
	for b := range s.rules {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	moved := 0
	for _, bucket := range buckets {
		r := s.rules[bucket]
		after := ""
		for {
			var b storage.Batch
			last, n := "", 0
			err := s.inner.Scan(ctx, bucket, "", storage.ScanOptions{After: after, Limit: RenamePage}, func(k string, v []byte) error {
				last, n = k, n+1
				if orig, _, err := openValue(v); err == nil && s.storedKey(bucket, r, orig) == k {
					return nil // renamed already
				}
				b.Put(bucket, s.storedKey(bucket, r, k), sealValue(k, v))
				b.Delete(bucket, k)
				return nil
			})
			if err != nil {
				return moved, err
			}
			if b.Len() > 0 {
				if err := s.inner.Commit(ctx, &b); err != nil {
					return moved, err
				}
				moved += b.Len() / 2
			}
			if n < RenamePage {
				break
			}
			after = last
		}
	}
	return moved, nil
}
