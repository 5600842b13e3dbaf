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
//	env/<seq>                 every queued envelope, by one global sequence
//	mbox/<mailbox><seq>       empty index entries: which envelopes a device has
//	mcount/<mailbox>          number of envelopes in that mailbox
//	prekeys/<mailbox>/…       spk, lrk, otk/<seq>, kem/<seq>
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
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/crypto/wire"
	bolt "go.etcd.io/bbolt"
)

// FileName is the database file inside the data directory.
const FileName = "parley.db"

// schemaVersion is written on first open and checked on every later open,
// so an older binary refuses a database a newer one has upgraded.
const schemaVersion = 2

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

	allBuckets = [][]byte{bucketMeta, bucketAccounts, bucketEnv, bucketMbox, bucketMcount, bucketPrekeys, bucketLinks, bucketBlobs, bucketBusage}

	keySPK = []byte("spk")
	keyLRK = []byte("lrk")
	keyOTK = []byte("otk")
	keyKEM = []byte("kem")
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
		} else if len(v) != 1 || v[0] != schemaVersion {
			return fmt.Errorf("store: unsupported schema version %v (this build knows %d)", v, schemaVersion)
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
// with its error and the rest are replayed without it.
func (s *Store) commit(ops []*op) {
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
			close(ops[failed].done)
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

// ---- accounts and device lists ----

func encodeAccount(a Account) []byte {
	w := wire.NewWriter(32 + len(a.AccountKey) + len(a.DeviceList))
	w.U8(recordVersion)
	w.Var(a.AccountKey)
	w.U64(a.Version)
	w.Var(a.DeviceList)
	return w.Bytes()
}

func decodeAccount(handle string, b []byte) (Account, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	a := Account{Handle: handle}
	a.AccountKey = r.Var(maxStoredKey)
	a.Version = r.U64()
	a.DeviceList = r.Var(maxStoredList)
	if err := r.Finish(); err != nil {
		return Account{}, fmt.Errorf("store: account record %q: %w", handle, err)
	}
	return a, nil
}

// CreateAccount registers a new account; ErrExists if the handle is taken.
func (s *Store) CreateAccount(a Account) error {
	rec := encodeAccount(a)
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get([]byte(a.Handle)) != nil {
			return ErrExists
		}
		return b.Put([]byte(a.Handle), rec)
	})
}

// Account returns the stored account, or ErrNotFound.
func (s *Store) Account(handle string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(handle))
		if v == nil {
			return ErrNotFound
		}
		var err error
		a, err = decodeAccount(handle, v)
		return err
	})
	return a, err
}

// ReplaceDeviceList stores a newer signed list if the stored version is
// still prev (ErrConflict otherwise), and in the same transaction deletes
// the mailboxes and prekeys of the removed devices.
func (s *Store) ReplaceDeviceList(handle string, prev, version uint64, list []byte, removed []DeviceID) (purged int, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		purged = 0
		b := tx.Bucket(bucketAccounts)
		v := b.Get([]byte(handle))
		if v == nil {
			return ErrNotFound
		}
		a, err := decodeAccount(handle, v)
		if err != nil {
			return err
		}
		if a.Version != prev {
			return ErrConflict
		}
		a.Version, a.DeviceList = version, list
		if err := b.Put([]byte(handle), encodeAccount(a)); err != nil {
			return err
		}
		for _, d := range removed {
			k := Addr{handle, d}.key()
			if c := tx.Bucket(bucketMcount).Get(k); len(c) == 8 {
				purged += int(binary.BigEndian.Uint64(c))
			}
			if err := purgeMailbox(tx, k); err != nil {
				return err
			}
			err := tx.Bucket(bucketPrekeys).DeleteBucket(k)
			if err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if err := tx.Bucket(bucketMcount).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.queued.Add(-int64(purged))
	}
	return purged, err
}

// ---- mailboxes ----

func encodeEnvelope(e *Envelope) []byte {
	w := wire.NewWriter(96 + len(e.To.Handle) + len(e.From.Handle) + len(e.Payload))
	w.U8(recordVersion)
	w.String(e.To.Handle)
	w.Fixed(e.To.Device[:])
	w.String(e.From.Handle)
	w.Fixed(e.From.Device[:])
	w.Fixed(e.MessageID[:])
	w.U64(uint64(e.ServerTime))
	w.U64(uint64(e.Expires))
	w.Var(e.Payload)
	return w.Bytes()
}

func decodeEnvelope(seq uint64, b []byte) (Envelope, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	e := Envelope{Seq: seq}
	e.To.Handle = r.String(maxStoredHandle)
	r.FixedInto(e.To.Device[:])
	e.From.Handle = r.String(maxStoredHandle)
	r.FixedInto(e.From.Device[:])
	r.FixedInto(e.MessageID[:])
	e.ServerTime = int64(r.U64())
	e.Expires = int64(r.U64())
	e.Payload = r.Var(maxStoredPayload)
	if err := r.Finish(); err != nil {
		return Envelope{}, fmt.Errorf("store: envelope %d: %w", seq, err)
	}
	return e, nil
}

// envExpires reads only the expiry of an encoded envelope (for the sweep).
func envExpires(b []byte) (int64, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	r.String(maxStoredHandle)
	r.Fixed(16)
	r.String(maxStoredHandle)
	r.Fixed(16 + 16 + 8)
	exp := int64(r.U64())
	return exp, r.Err()
}

func idxKey(mailbox []byte, seq uint64) []byte {
	k := make([]byte, 0, len(mailbox)+8)
	k = append(k, mailbox...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// purgeMailbox deletes every envelope of one mailbox and its count.
func purgeMailbox(tx *bolt.Tx, mailbox []byte) error {
	idx, env := tx.Bucket(bucketMbox), tx.Bucket(bucketEnv)
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(mailbox); k != nil && len(k) == len(mailbox)+8 && bytes.HasPrefix(k, mailbox); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if err := env.Delete(k[len(mailbox):]); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMcount).Delete(mailbox)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func addCount(tx *bolt.Tx, k []byte, delta int64) (uint64, error) {
	b := tx.Bucket(bucketMcount)
	var n uint64
	if v := b.Get(k); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n = uint64(int64(n) + delta)
	if n == 0 {
		return 0, b.Delete(k)
	}
	return n, b.Put(k, u64(n))
}

// Enqueue stores envs (one message's fan-out) atomically and durably, and
// assigns each its Seq. If any mailbox would exceed limit envelopes, nothing
// is stored and the error is a *MailboxFullError.
func (s *Store) Enqueue(envs []Envelope, limit int) error {
	return s.EnqueueAsync(envs, limit)()
}

// EnqueueAsync is Enqueue split in two: it queues the write and returns at
// once; wait blocks until the envelopes are durable (or refused) and only
// then may envs be read again. Sends submitted by one goroutine are stored
// in submission order, so a socket can pipeline its sends and still have
// them delivered in the order it sent them.
func (s *Store) EnqueueAsync(envs []Envelope, limit int) (wait func() error) {
	recs := make([][]byte, len(envs))
	for i := range envs {
		recs[i] = encodeEnvelope(&envs[i])
	}
	o, err := s.submit(func(tx *bolt.Tx) error {
		counts := tx.Bucket(bucketMcount)
		// Check every mailbox before writing anything: a refusal must
		// leave no partial write even within this op.
		for i := range envs {
			k := envs[i].To.key()
			var n uint64
			if v := counts.Get(k); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			if n >= uint64(limit) {
				return &MailboxFullError{To: envs[i].To}
			}
		}
		env, idx := tx.Bucket(bucketEnv), tx.Bucket(bucketMbox)
		// Sequential appends: fill pages completely instead of splitting
		// them in half.
		env.FillPercent = 1.0
		for i := range envs {
			seq, err := env.NextSequence()
			if err != nil {
				return err
			}
			envs[i].Seq = seq
			if err := env.Put(u64(seq), recs[i]); err != nil {
				return err
			}
			k := envs[i].To.key()
			if err := idx.Put(idxKey(k, seq), nil); err != nil {
				return err
			}
			if _, err := addCount(tx, k, 1); err != nil {
				return err
			}
		}
		return nil
	}, func() { s.queued.Add(int64(len(envs))) })
	if err != nil {
		return func() error { return err }
	}
	return func() error {
		<-o.done
		return o.err
	}
}

// Mailbox returns up to limit unexpired envelopes of to with Seq > after, in
// order.
func (s *Store) Mailbox(to Addr, after uint64, limit int, now time.Time) ([]Envelope, error) {
	var out []Envelope
	nowMs := now.UnixMilli()
	k := to.key()
	err := s.db.View(func(tx *bolt.Tx) error {
		env := tx.Bucket(bucketEnv)
		c := tx.Bucket(bucketMbox).Cursor()
		for ik, _ := c.Seek(idxKey(k, after+1)); ik != nil && len(out) < limit; ik, _ = c.Next() {
			if len(ik) != len(k)+8 || !bytes.HasPrefix(ik, k) {
				break
			}
			seq := binary.BigEndian.Uint64(ik[len(k):])
			v := env.Get(ik[len(k):])
			if v == nil {
				continue
			}
			e, err := decodeEnvelope(seq, v)
			if err != nil {
				return err
			}
			if e.Expires <= nowMs {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// MailboxLen is the number of envelopes waiting for to.
func (s *Store) MailboxLen(to Addr) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMcount).Get(to.key()); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}

// LiveMailboxLen is the number of unexpired envelopes waiting for to at
// now: MailboxLen less those whose TTL ran out and that the next Sweep
// will delete. It reads each envelope's expiry, not its payload.
func (s *Store) LiveMailboxLen(to Addr, now time.Time) (int, error) {
	var n int
	nowMs := now.UnixMilli()
	k := to.key()
	err := s.db.View(func(tx *bolt.Tx) error {
		env := tx.Bucket(bucketEnv)
		c := tx.Bucket(bucketMbox).Cursor()
		for ik, _ := c.Seek(k); ik != nil && len(ik) == len(k)+8 && bytes.HasPrefix(ik, k); ik, _ = c.Next() {
			v := env.Get(ik[len(k):])
			if v == nil {
				continue
			}
			if exp, err := envExpires(v); err == nil && exp > nowMs {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Delete removes acknowledged envelopes of any number of mailboxes in one
// commit; seqs already gone are ignored.
func (s *Store) Delete(acks []Acked) error {
	var deleted int
	err := s.update(func(tx *bolt.Tx) error {
		deleted = 0
		env, idx := tx.Bucket(bucketEnv), tx.Bucket(bucketMbox)
		for _, a := range acks {
			k := a.To.key()
			n := 0
			for _, seq := range a.Seqs {
				ik := idxKey(k, seq)
				if idx.Get(ik) == nil {
					continue // not this mailbox's, or already gone
				}
				if err := idx.Delete(ik); err != nil {
					return err
				}
				if err := env.Delete(ik[len(k):]); err != nil {
					return err
				}
				n++
			}
			if n > 0 {
				if _, err := addCount(tx, k, -int64(n)); err != nil {
					return err
				}
			}
			deleted += n
		}
		return nil
	})
	if err == nil {
		s.queued.Add(-int64(deleted))
	}
	return err
}

// ---- prekeys ----

// PutPrekeys adds to a device's prekeys. If the one-time stock of either
// kind would exceed max, nothing is stored and the error is ErrTooMany.
func (s *Store) PutPrekeys(of Addr, up PrekeyUpload, max int) (Stock, error) {
	var st Stock
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketPrekeys).CreateBucketIfNotExists(of.key())
		if err != nil {
			return err
		}
		otk, err := b.CreateBucketIfNotExists(keyOTK)
		if err != nil {
			return err
		}
		kem, err := b.CreateBucketIfNotExists(keyKEM)
		if err != nil {
			return err
		}
		st = Stock{OneTime: otk.Stats().KeyN + len(up.OneTime), KEM: kem.Stats().KeyN + len(up.KEM)}
		if st.OneTime > max || st.KEM > max {
			return ErrTooMany
		}
		if len(up.SignedPrekey) > 0 {
			if err := b.Put(keySPK, up.SignedPrekey); err != nil {
				return err
			}
		}
		if len(up.LastResortKEM) > 0 {
			if err := b.Put(keyLRK, up.LastResortKEM); err != nil {
				return err
			}
		}
		for _, p := range []struct {
			b    *bolt.Bucket
			keys [][]byte
		}{{otk, up.OneTime}, {kem, up.KEM}} {
			for _, key := range p.keys {
				seq, err := p.b.NextSequence()
				if err != nil {
					return err
				}
				if err := p.b.Put(u64(seq), key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return st, err
}

// TakeBundle hands out a device's prekey bundle, removing the one-time
// prekeys it contains in the same transaction, so two fetches never get the
// same one. ErrNotFound if the device has no signed prekey yet.
func (s *Store) TakeBundle(of Addr) (Bundle, error) {
	var out Bundle
	err := s.update(func(tx *bolt.Tx) error {
		out = Bundle{}
		b := tx.Bucket(bucketPrekeys).Bucket(of.key())
		if b == nil || b.Get(keySPK) == nil {
			return ErrNotFound
		}
		out.SignedPrekey = append([]byte(nil), b.Get(keySPK)...)
		take := func(name []byte) ([]byte, int, error) {
			sub := b.Bucket(name)
			if sub == nil {
				return nil, 0, nil
			}
			n := sub.Stats().KeyN
			k, v := sub.Cursor().First()
			if k == nil {
				return nil, 0, nil
			}
			v = append([]byte(nil), v...)
			return v, n - 1, sub.Delete(k)
		}
		var err error
		if out.OneTime, out.Left.OneTime, err = take(keyOTK); err != nil {
			return err
		}
		if out.KEM, out.Left.KEM, err = take(keyKEM); err != nil {
			return err
		}
		if out.KEM == nil {
			if lrk := b.Get(keyLRK); lrk != nil {
				out.KEM = append([]byte(nil), lrk...)
				out.LastResort = true
			}
		}
		return nil
	})
	return out, err
}

// PrekeyStock reports how many one-time prekeys a device has left.
func (s *Store) PrekeyStock(of Addr) (Stock, error) {
	var st Stock
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPrekeys).Bucket(of.key())
		if b == nil {
			return nil
		}
		if sub := b.Bucket(keyOTK); sub != nil {
			st.OneTime = sub.Stats().KeyN
		}
		if sub := b.Bucket(keyKEM); sub != nil {
			st.KEM = sub.Stats().KeyN
		}
		return nil
	})
	return st, err
}

// ---- link channel and blobs: short-lived values with an expiry ----

func encodeExpiring(expires time.Time, data []byte, filled bool) []byte {
	w := wire.NewWriter(16 + len(data))
	w.U8(recordVersion)
	w.U64(uint64(expires.UnixMilli()))
	w.Bool(filled)
	w.Var(data)
	return w.Bytes()
}

func decodeExpiring(b []byte) (expires int64, data []byte, filled bool, err error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	expires = int64(r.U64())
	filled = r.Bool()
	data = r.Var(maxStoredPayload)
	return expires, data, filled, r.Finish()
}

// PutLink stores one link channel message under key until expires;
// ErrExists if that key already holds an unexpired message (one use only:
// a consumed key stays taken until it expires).
func (s *Store) PutLink(key []byte, data []byte, expires, now time.Time) error {
	rec := encodeExpiring(expires, data, true)
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		if v := b.Get(key); v != nil {
			if exp, _, _, err := decodeExpiring(v); err == nil && exp > now.UnixMilli() {
				return ErrExists
			}
		}
		return b.Put(key, rec)
	})
}

// TakeLink returns the message under key and marks it consumed; a second
// take is ErrGone, a take of a missing or expired key ErrNotFound.
func (s *Store) TakeLink(key []byte, now time.Time) ([]byte, error) {
	var out []byte
	err := s.update(func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket(bucketLinks)
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		exp, data, filled, err := decodeExpiring(v)
		if err != nil {
			return err
		}
		if exp <= now.UnixMilli() {
			return ErrNotFound
		}
		if !filled {
			return ErrGone
		}
		out = data
		// Keep a consumed tombstone until expiry so the key cannot be
		// filled a second time.
		return b.Put(key, encodeExpiring(time.UnixMilli(exp), nil, false))
	})
	return out, err
}

// blobRecord is a blob's reservation and, once filled, its size.
type blobRecord struct {
	expires int64
	filled  bool
	owner   string
	size    uint64
}

func (b blobRecord) encode() []byte {
	w := wire.NewWriter(32 + len(b.owner))
	w.U8(recordVersion)
	w.U64(uint64(b.expires))
	w.Bool(b.filled)
	w.String(b.owner)
	w.U64(b.size)
	return w.Bytes()
}

func decodeBlob(v []byte) (blobRecord, error) {
	r := wire.NewReader(v)
	r.Version(recordVersion)
	var b blobRecord
	b.expires = int64(r.U64())
	b.filled = r.Bool()
	b.owner = r.String(maxStoredHandle)
	b.size = r.U64()
	return b, r.Finish()
}

// ReserveBlob creates an empty blob slot, charged to owner, that PutBlob
// can fill once.
func (s *Store) ReserveBlob(id []byte, owner string, expires time.Time) error {
	rec := blobRecord{expires: expires.UnixMilli(), owner: owner}.encode()
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if b.Get(id) != nil {
			return ErrExists
		}
		return b.Put(id, rec)
	})
}

// BlobSlot is nil if id has an unexpired reservation not yet filled,
// ErrExists if it was filled, ErrNotFound otherwise: what PutBlob would
// answer before its quota check, without the bytes.
func (s *Store) BlobSlot(id []byte, now time.Time) error {
	return s.db.View(func(tx *bolt.Tx) error { _, err := blobSlot(tx, id, now); return err })
}

func blobSlot(tx *bolt.Tx, id []byte, now time.Time) (blobRecord, error) {
	v := tx.Bucket(bucketBlobs).Get(id)
	if v == nil {
		return blobRecord{}, ErrNotFound
	}
	b, err := decodeBlob(v)
	switch {
	case err != nil:
		return b, err
	case b.expires <= now.UnixMilli():
		return b, ErrNotFound
	case b.filled:
		return b, ErrExists
	}
	return b, nil
}

// blobDir holds blob contents, one file per blob, next to the database.
// Blobs (up to megabytes) stay out of the B+tree so an upload never holds
// the group-commit writer that message sends wait on.
const blobDir = "blobs"

func (s *Store) blobPath(id []byte) string {
	return filepath.Join(s.dir, blobDir, hex.EncodeToString(id))
}

// PutBlob fills a reserved slot: ErrNotFound if there is no unexpired
// reservation, ErrExists if it was already filled, ErrQuota if the owner's
// unexpired blobs would exceed quota bytes. The bytes are written and
// fsynced to their own file before the reservation is marked filled, so a
// filled blob always has its contents on disk.
func (s *Store) PutBlob(id, data []byte, now time.Time, quota int64) error {
	// One upload per id at a time, so two racing uploads cannot leave
	// one's bytes under the other's acknowledgement.
	defer s.blobLocks.lock(string(id))()
	check := func(tx *bolt.Tx) (blobRecord, uint64, error) {
		b, err := blobSlot(tx, id, now)
		if err != nil {
			return b, 0, err
		}
		var used uint64
		if u := tx.Bucket(bucketBusage).Get([]byte(b.owner)); len(u) == 8 {
			used = binary.BigEndian.Uint64(u)
		}
		if used+uint64(len(data)) > uint64(quota) {
			return b, used, ErrQuota
		}
		return b, used, nil
	}
	if err := s.db.View(func(tx *bolt.Tx) error { _, _, err := check(tx); return err }); err != nil {
		return err
	}
	if err := writeFileSync(s.blobPath(id), data); err != nil {
		return fmt.Errorf("store: writing blob: %w", err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		b, used, err := check(tx)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketBusage).Put([]byte(b.owner), u64(used+uint64(len(data)))); err != nil {
			return err
		}
		b.filled, b.size = true, uint64(len(data))
		return tx.Bucket(bucketBlobs).Put(id, b.encode())
	})
	if err != nil && !errors.Is(err, ErrExists) {
		os.Remove(s.blobPath(id))
	}
	return err
}

// writeFileSync writes path atomically: a temporary file, fsync, rename,
// fsync of the directory.
func writeFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Blob returns a filled, unexpired blob, or ErrNotFound.
func (s *Store) Blob(id []byte, now time.Time) ([]byte, error) {
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(id)
		if v == nil {
			return ErrNotFound
		}
		b, err := decodeBlob(v)
		if err != nil {
			return err
		}
		if !b.filled || b.expires <= now.UnixMilli() {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.blobPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound // swept between the check and the read
	}
	return data, err
}

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
			// Envelopes are in arrival order and mostly share one TTL, so
			// expired ones form a prefix; one expired behind a live one is
			// skipped by Mailbox and goes in a later sweep.
			env, idx := tx.Bucket(bucketEnv), tx.Bucket(bucketMbox)
			type dead struct {
				seq []byte
				to  Addr
			}
			var gone []dead
			c = env.Cursor()
			for k, v := c.First(); k != nil && n+len(gone) < sweepChunk; k, v = c.Next() {
				exp, err := envExpires(v)
				if err == nil && exp > nowMs {
					break
				}
				e, _ := decodeEnvelope(0, v)
				gone = append(gone, dead{append([]byte(nil), k...), e.To})
			}
			for _, d := range gone {
				if err := env.Delete(d.seq); err != nil {
					return err
				}
				mk := d.to.key()
				ik := append(mk, d.seq...)
				if idx.Get(ik) != nil {
					if err := idx.Delete(ik); err != nil {
						return err
					}
					if _, err := addCount(tx, mk, -1); err != nil {
						return err
					}
					envs++
				}
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
