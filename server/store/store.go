//go:build !js

// Package store is the relay's embedded database: one bbolt file in the
// server's data directory, so a self-hoster runs one binary and nothing else.
//
// The relay reaches the store only through the methods of *Store (the relay
// names them in its own Store interface), so a Cloudflare Workers build can
// provide the same behaviour on D1/R2/Durable Objects without the relay's
// rules being written twice. The store holds no rules of its own beyond
// atomicity and limits it is told: it never parses a device list, a prekey
// or a payload.
//
// # Durability and group commit
//
// Every write goes through one writer goroutine. Callers submit an operation
// and wait; the writer takes every operation queued at that moment (up to
// maxBatch), applies them in submission order in one bbolt transaction and
// commits it with a single fsync, then answers all of them. Under load many
// sends share one fsync (the cost that bounds throughput); with one caller
// the latency is one commit. When an operation refuses (mailbox full, version
// conflict) the transaction is rolled back and replayed without it, so a
// refusal never leaves a partial write and never fails its neighbours.
//
// Deletion of acknowledged envelopes uses the same writer, so deletes from
// many connections share commits too.
//
// # Layout
//
//	meta                      schema version
//	accounts/<handle>         account key, device list version, signed list
//	akeys/<account key>       the one handle that account key is registered under
//	env/<seq>                 every queued envelope, by one global sequence
//	mbox/<mailbox><seq>       index: which envelopes a device has, each its expiry
//	mcount/<mailbox>          number of envelopes in that mailbox
//	expiry/<expires><seq>     every envelope by expiry (the sweep's walk): its mailbox
//	prekeys/<mailbox>/…       spk, lrk, otk/<seq>, kem/<seq>, fetch (budget)
//	links/<id><slot>          link channel messages with their expiry
//	blobs/<id>                blob reservation: owner, expiry, size once filled;
//	                          the bytes are the file blobs/<hex id> beside the database
//	busage/<handle>           bytes of unexpired blobs an account uploaded
//
// where <mailbox> is handle || 0x00 || device id and <seq> a big-endian
// u64. Envelopes are appended in one global order rather than kept in a
// bucket per device: a commit carrying envelopes for a hundred devices then
// rewrites a few pages at the right edge of one B+tree (plus small index
// entries that share pages), not a hundred mailbox pages, which is what
// makes group commit pay off.
//
// # Files
//
// store.go (open, the group-commit writer), accounts.go, mailbox.go,
// prekeys.go, links.go, blobs.go, sweep.go: one concern each.
package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the database file inside the data directory.
const FileName = "parley.db"

// schemaVersion is written on first open and checked on every later open,
// so an older binary refuses a database a newer one has upgraded.
const schemaVersion = 4

// oldestSchema is the oldest database Open upgrades; upgrades are the
// steps, each run once, in the transaction of Open, when the database is
// older than its schema.
const oldestSchema = 2

var upgrades = []struct {
	to byte
	fn func(*bolt.Tx) error
}{
	{3, migrateExpiryIndex}, // index entries hold expiries; the expiry index
	{4, migrateAccountKeys}, // one handle per account key
}

// openTimeout bounds the wait for bbolt's file lock: a second server on the
// same data directory fails with a clear error instead of hanging.
const openTimeout = 2 * time.Second

// maxBatch bounds how many operations share one commit. Past a few hundred
// the fsync is amortised to nothing and a bigger transaction only adds
// latency for the first caller in it (measured: 64–512 records per fsync
// already reach 190k–400k records/s of raw write throughput).
const maxBatch = 512

// writeQueue is the depth of the writer's submission channel. It only needs
// to hold one batch being formed while the previous one commits; callers
// beyond it block, which is the backpressure we want.
const writeQueue = 2 * maxBatch

// initialMmap is the address space reserved for the database file.
const initialMmap = 1 << 30

// recordVersion prefixes every stored record.
const recordVersion = 1

// Limits on stored records, checked when decoding so a corrupted file cannot
// drive a huge allocation. They are upper bounds well above what the relay
// accepts from clients.
const (
	maxStoredHandle  = 64
	maxStoredKey     = 4096
	maxStoredList    = 1 << 20
	maxStoredPayload = 1 << 24
)

var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketEnv      = []byte("env")
	bucketMbox     = []byte("mbox")
	bucketMcount   = []byte("mcount")
	bucketPrekeys  = []byte("prekeys")
	bucketLinks    = []byte("links")
	bucketBlobs    = []byte("blobs")
	bucketBusage   = []byte("busage")
	bucketExpiry   = []byte("expiry")
	bucketAkeys    = []byte("akeys")

	allBuckets = [][]byte{bucketMeta, bucketAccounts, bucketEnv, bucketMbox, bucketMcount, bucketPrekeys, bucketLinks, bucketBlobs, bucketBusage, bucketExpiry, bucketAkeys}

	keySPK = []byte("spk")
	keyLRK = []byte("lrk")
	keyOTK = []byte("otk")
	keyKEM = []byte("kem")
	// keyFetch is the device's fetch budget: float64 tokens, u64 unix ms.
	keyFetch = []byte("fetch")
)

func (a Addr) key() []byte {
	k := make([]byte, 0, len(a.Handle)+1+16)
	k = append(k, a.Handle...)
	k = append(k, 0)
	return append(k, a.Device[:]...)
}

// Options tune Open; the zero value is the production setting.
type Options struct {
	// NoSync skips fsync on commit. Only benchmarks that want to isolate
	// the relay from the disk set it.
	NoSync bool
}

// Store is the open database.
type Store struct {
	db        *bolt.DB
	dir       string
	blobLocks keyedMutex // one upload per blob id at a time
	ops       chan *op
	quit      chan struct{}
	wg        sync.WaitGroup
	mu        sync.RWMutex // held for reading by submitters, for writing by Close
	closed    bool
	queued    atomic.Int64 // envelopes in all mailboxes
	// Commits and Batched count transactions and the operations in them, for
	// metrics and the benchmark report.
	commits  atomic.Int64
	batched  atomic.Int64
	commitNs atomic.Int64 // time spent in Commit (page writes and fsyncs)
}

type op struct {
	fn       func(tx *bolt.Tx) error
	onCommit func() // run by the writer once fn's writes are durable
	err      error
	done     chan struct{}
}

// Open creates dir if needed and opens (or creates) the database in it.
func Open(dir string) (*Store, error) { return OpenWith(dir, Options{}) }

// OpenWith is Open with options.
func OpenWith(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: openTimeout,
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer pages per fsync on the hot path.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Remapping a growing file waits for every read transaction
		// (socket deliveries) to end; reserving address space up front
		// makes it rare. It costs virtual memory only.
		InitialMmapSize: initialMmap,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.NoSync = o.NoSync
	var queued int64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketMeta)
		v := b.Get([]byte("schema"))
		if v == nil {
			if err := b.Put([]byte("schema"), []byte{schemaVersion}); err != nil {
				return err
			}
		} else if len(v) != 1 || v[0] < oldestSchema || v[0] > schemaVersion {
			return fmt.Errorf("store: unsupported schema version %v (this build knows %d–%d)", v, oldestSchema, schemaVersion)
		} else if v[0] < schemaVersion {
			for _, m := range upgrades {
				if v[0] < m.to {
					if err := m.fn(tx); err != nil {
						return fmt.Errorf("store: upgrading to schema %d: %w", m.to, err)
					}
				}
			}
			if err := b.Put([]byte("schema"), []byte{schemaVersion}); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMcount).ForEach(func(_, v []byte) error {
			if len(v) == 8 {
				queued += int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, blobDir), 0o700); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: create blob directory: %w", err)
	}
	s := &Store{db: db, dir: dir, ops: make(chan *op, writeQueue), quit: make(chan struct{})}
	s.removeOrphanBlobs()
	s.queued.Store(queued)
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// removeOrphanBlobs deletes blob files with no filled record (an upload or
// a sweep interrupted by a crash) and leftover temporary files.
func (s *Store) removeOrphanBlobs() {
	entries, err := os.ReadDir(filepath.Join(s.dir, blobDir))
	if err != nil {
		return
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for _, e := range entries {
			id, err := hex.DecodeString(e.Name())
			keep := false
			if err == nil {
				if v := b.Get(id); v != nil {
					rec, derr := decodeBlob(v)
					keep = derr == nil && rec.filled
				}
			}
			if !keep {
				os.Remove(filepath.Join(s.dir, blobDir, e.Name()))
			}
		}
		return nil
	})
}

// Ping checks the database answers a read transaction; /healthz uses it.
func (s *Store) Ping() error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Close finishes every submitted write, then closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}

// Queued is the number of envelopes waiting in all mailboxes.
func (s *Store) Queued() int64 { return s.queued.Load() }

// Commits returns how many write transactions were committed and how many
// operations they carried.
func (s *Store) Commits() (commits, ops int64) { return s.commits.Load(), s.batched.Load() }

// CommitTime is the total time spent committing (writing pages and
// fsyncing), for the benchmark report.
func (s *Store) CommitTime() time.Duration { return time.Duration(s.commitNs.Load()) }

// update runs fn in a write transaction shared with other callers and
// returns once that transaction is durably committed (or fn refused).
// fn may run more than once (after a neighbour's refusal); it must not keep
// state between runs.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	o, err := s.submit(fn, nil)
	if err != nil {
		return err
	}
	<-o.done
	return o.err
}

// submit queues an operation without waiting for it. Operations submitted
// by one goroutine are applied in the order submitted.
func (s *Store) submit(fn func(tx *bolt.Tx) error, onCommit func()) (*op, error) {
	o := &op{fn: fn, onCommit: onCommit, done: make(chan struct{})}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.ops <- o
	return o, nil
}

func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.quit:
			// Submitters hold mu while sending, and Close set closed
			// under mu, so nothing new arrives: drain and stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit applies ops in one transaction. An op that refuses is answered
// with its error and the rest are replayed without it. Refusals are
// answered only once the others are committed: a refusal may rest on a
// neighbour's write (a list replaced earlier in the batch refuses a send
// checked against the old one, ErrSuperseded), and a caller that reads
// the store after its refusal must see that write.
func (s *Store) commit(ops []*op) {
	var refused []*op
	defer func() {
		for _, o := range refused {
			close(o.done)
		}
	}()
	for len(ops) > 0 {
		tx, err := s.db.Begin(true)
		if err != nil {
			finish(ops, err)
			return
		}
		failed := -1
		for i, o := range ops {
			if err := o.fn(tx); err != nil {
				o.err = err
				failed = i
				break
			}
		}
		if failed >= 0 {
			_ = tx.Rollback()
			refused = append(refused, ops[failed])
			ops = append(ops[:failed:failed], ops[failed+1:]...)
			continue
		}
		start := time.Now()
		err = tx.Commit()
		s.commitNs.Add(int64(time.Since(start)))
		s.commits.Add(1)
		s.batched.Add(int64(len(ops)))
		finish(ops, err)
		return
	}
}

func finish(ops []*op, err error) {
	for _, o := range ops {
		o.err = err
		if err == nil && o.onCommit != nil {
			o.onCommit()
		}
		close(o.done)
	}
}
