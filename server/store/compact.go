//go:build !js

// Compaction: bbolt never returns freed pages to the file system, so
// parley.db keeps the size of its largest backlog (issue 14 item 8: it
// never shrank after sweeps). Compact rewrites it offline.

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// compactTxSize bounds the bytes one transaction of the copy writes, so a
// large database is copied in steps instead of one huge transaction.
const compactTxSize = 64 << 20

// Compact rewrites the database in dir into a new file holding only live
// pages and puts it in place of the old one, reporting both sizes. The
// server must not be running: the database's file lock is taken first
// (ErrLocked otherwise), and a crash at any point leaves either the old
// file or the new one, complete (the copy is fsynced before the rename).
func Compact(dir string) (before, after int64, err error) {
	path := filepath.Join(dir, FileName)
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return 0, 0, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	os.Remove(tmp) // left by an interrupted compaction
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return 0, 0, fmt.Errorf("store: create %s: %w", tmp, err)
	}
	err = bolt.Compact(dst, src, compactTxSize)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: compacting %s: %w", path, err)
	}
	nst, err := os.Stat(tmp)
	if err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("store: replacing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return 0, 0, err
		}
	}
	return st.Size(), nst.Size(), nil
}
