//go:build !js

// Sweep: deletion of expired records.

package store

import (
	"encoding/binary"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepChunk bounds the deletions of one sweep transaction so a large
// backlog of expired records never holds the writer for long.
const sweepChunk = 1000

// Sweep deletes expired envelopes, link messages and blobs, and reports how
// many records it removed.
func (s *Store) Sweep(now time.Time) (int, error) {
	nowMs := now.UnixMilli()
	total := 0
	for {
		n, envs := 0, 0
		var deadBlobs [][]byte
		err := s.update(func(tx *bolt.Tx) error {
			n, envs, deadBlobs = 0, 0, nil
			links := tx.Bucket(bucketLinks)
			var deadLinks [][]byte
			c := links.Cursor()
			for k, v := c.First(); k != nil && len(deadLinks) < sweepChunk; k, v = c.Next() {
				if exp, _, _, err := decodeExpiring(v); err != nil || exp <= nowMs {
					deadLinks = append(deadLinks, append([]byte(nil), k...))
				}
			}
			for _, k := range deadLinks {
				if err := links.Delete(k); err != nil {
					return err
				}
			}
			n += len(deadLinks)
			blobs, usage := tx.Bucket(bucketBlobs), tx.Bucket(bucketBusage)
			freed := map[string]uint64{}
			c = blobs.Cursor()
			for k, v := c.First(); k != nil && n+len(deadBlobs) < sweepChunk; k, v = c.Next() {
				b, err := decodeBlob(v)
				if err != nil || b.expires <= nowMs {
					deadBlobs = append(deadBlobs, append([]byte(nil), k...))
					if err == nil && b.filled {
						freed[b.owner] += b.size
					}
				}
			}
			for _, k := range deadBlobs {
				if err := blobs.Delete(k); err != nil {
					return err
				}
			}
			for owner, size := range freed {
				var used uint64
				if u := usage.Get([]byte(owner)); len(u) == 8 {
					used = binary.BigEndian.Uint64(u)
				}
				used -= min(used, size)
				var err error
				if used == 0 {
					err = usage.Delete([]byte(owner))
				} else {
					err = usage.Put([]byte(owner), u64(used))
				}
				if err != nil {
					return err
				}
			}
			n += len(deadBlobs)
			// Envelopes in expiry order, through the expiry index: a
			// short-TTL envelope queued behind long-lived ones goes in
			// this sweep, and no payload is read.
			type dead struct{ ek, mailbox []byte }
			var gone []dead
			c = tx.Bucket(bucketExpiry).Cursor()
			for k, v := c.First(); k != nil && n+len(gone) < sweepChunk; k, v = c.Next() {
				if len(k) != 16 || int64(binary.BigEndian.Uint64(k)) > nowMs {
					break
				}
				gone = append(gone, dead{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			for _, d := range gone {
				if err := dropEnvelope(tx, d.mailbox, d.ek[8:], int64(binary.BigEndian.Uint64(d.ek))); err != nil {
					return err
				}
				if _, err := addCount(tx, d.mailbox, -1); err != nil {
					return err
				}
				envs++
			}
			n += len(gone)
			return nil
		})
		if err != nil {
			return total, err
		}
		s.queued.Add(-int64(envs))
		// Files go after the records are gone: a crash in between leaves
		// only unreferenced files, which Open removes.
		for _, id := range deadBlobs {
			os.Remove(s.blobPath(id))
		}
		total += n
		if n < sweepChunk {
			return total, nil
		}
	}
}
