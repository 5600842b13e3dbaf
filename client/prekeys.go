package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// Prekey stock policy.
const (
	// oneTimeBatch is how many one-time X25519 and KEM prekeys are made at
	// a time: one per session a peer can start while we are offline.
	oneTimeBatch   = 50
	kemBatch       = 20
	lowOneTimeMark = 20
	// lastResortKEMID is the id of the first last-resort KEM prekey (the
	// one never consumed, so sessions can start even when the one-time
	// stock is exhausted); later ones take ids from the KEM counter.
	lastResortKEMID = 1
	firstKEMID      = 2
)

// Rotation of the signed prekey and the last-resort KEM prekey
// (PROTOCOL.md 4.4). Their private halves open every session started
// under them, so a device compromise opens the sessions started under
// the keys it finds: rotating bounds that to the last period and grace,
// and bounds the replay record (replay.go), which goes with the signed
// prekey.
const (
	// signedPrekeyRotation is how long a signed prekey and last-resort
	// KEM prekey are handed out before new ones replace them: weekly, as
	// Signal's clients do, so a later compromise opens at most about two
	// weeks of session starts.
	signedPrekeyRotation = 7 * 24 * time.Hour
	// signedPrekeyGrace is how long the replaced ones are kept after the
	// rotation, for session starts made from a bundle fetched before it
	// and still on their way (a start that names a deleted one fails and
	// is repaired, 14.7). A device that was off rotates at its next start,
	// so the grace begins once it can receive what waited for it.
	signedPrekeyGrace = 7 * 24 * time.Hour
	// prekeyCheckInterval is how often a running device checks whether
	// its prekeys are due for rotation.
	prekeyCheckInterval = time.Hour
)

// prekeyState tracks ids and whether the current keys were published.
type prekeyState struct {
	NextOneTime uint32
	NextKEM     uint32
	SignedID    uint32
	Published   bool     // current signed prekey + last resort uploaded
	Pending     []string // private prekey keys not yet uploaded
	// LastResortID is the current last-resort KEM prekey's id.
	LastResortID uint32
	// RotatedAt is when the current signed and last-resort prekeys were
	// made (unix ms); 0 (a state from version 1) rotates at once.
	RotatedAt uint64
	// PrevSignedID and PrevLastResortID are the ones the last rotation
	// replaced, kept until RotatedAt + signedPrekeyGrace; 0: none.
	PrevSignedID     uint32
	PrevLastResortID uint32
}

// prekeyStateVersion is the encoding of prekeyState: version 2 added the
// rotation fields; version 1 (no rotation, last-resort KEM id 1) is still
// read.
const prekeyStateVersion = 2

func (p *prekeyState) lastResortID() uint32 { return p.LastResortID }

func (p *prekeyState) marshal() []byte {
	w := wire.NewWriter(64 + 24*len(p.Pending))
	w.U8(prekeyStateVersion)
	w.U32(p.NextOneTime)
	w.U32(p.NextKEM)
	w.U32(p.SignedID)
	w.Bool(p.Published)
	w.U32(uint32(len(p.Pending)))
	for _, k := range p.Pending {
		w.String(k)
	}
	w.U32(p.LastResortID)
	w.U64(p.RotatedAt)
	w.U32(p.PrevSignedID)
	w.U32(p.PrevLastResortID)
	return w.Bytes()
}

// errPrekeyState is a prekey state whose ids contradict each other.
var errPrekeyState = errors.New("prekey state: inconsistent ids")

func unmarshalPrekeyState(b []byte) (*prekeyState, error) {
	r := wire.NewReader(b)
	v := r.U8()
	if r.Err() == nil && v != recordVersion && v != prekeyStateVersion {
		r.Fail(fmt.Errorf("%w: got %d, want %d or %d", wire.ErrVersion, v, recordVersion, prekeyStateVersion))
	}
	p := &prekeyState{NextOneTime: r.U32(), NextKEM: r.U32(), SignedID: r.U32(), Published: r.Bool()}
	n := r.Count(4 * (oneTimeBatch + kemBatch))
	for i := 0; i < n; i++ {
		p.Pending = append(p.Pending, r.String(32))
	}
	p.LastResortID = lastResortKEMID
	if v == prekeyStateVersion {
		p.LastResortID, p.RotatedAt, p.PrevSignedID, p.PrevLastResortID = r.U32(), r.U64(), r.U32(), r.U32()
		if r.Err() == nil && (p.LastResortID == 0 || (p.PrevSignedID == 0) != (p.PrevLastResortID == 0) ||
			(p.PrevSignedID != 0 && (p.PrevSignedID == p.SignedID || p.PrevLastResortID == p.LastResortID))) {
			r.Fail(errPrekeyState)
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("prekey state: %w", err)
	}
	return p, nil
}

func otkKey(id uint32) string { return fmt.Sprintf("otk/%08x", id) }
func kemKey(id uint32) string { return fmt.Sprintf("kem/%08x", id) }
func spkKey(id uint32) string { return fmt.Sprintf("spk/%08x", id) }

func (e *Engine) loadPrekeyState(ctx context.Context) (*prekeyState, error) {
	b, err := e.cfg.Store.Get(ctx, bPrekeys, keyPrekeys)
	if errors.Is(err, storage.ErrNotFound) {
		return &prekeyState{NextOneTime: 1, NextKEM: firstKEMID}, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	return unmarshalPrekeyState(b)
}

// addPrekeys makes a batch of one-time prekeys (and, when first, the signed
// prekey and the last-resort KEM prekey) and adds their private halves to
// b. They are uploaded on the next connect: a key is stored before it is
// published, so no session can ever name a key we do not have.
func (e *Engine) addPrekeys(ctx context.Context, b *storage.Batch, first bool) error {
	st, err := e.loadPrekeyState(ctx)
	if err != nil {
		return err
	}
	now := e.cfg.Now()
	if first {
		st.SignedID, st.LastResortID = 1, lastResortKEMID
		if err := e.newSignedPrekeysLocked(b, st, now); err != nil {
			return err
		}
	}
	keys, err := generatePrekeys(e.dev, e.cfg.Rand, st, now)
	if err != nil {
		return err
	}
	return keys.add(b, st)
}

// newSignedPrekeysLocked makes the signed prekey st.SignedID and the
// last-resort KEM prekey st.LastResortID, puts their private halves into
// b, and marks them unpublished.
func (e *Engine) newSignedPrekeysLocked(b *storage.Batch, st *prekeyState, now time.Time) error {
	spk, err := e.dev.NewSignedPrekey(e.cfg.Rand, st.SignedID, now)
	if err != nil {
		return err
	}
	enc, err := spk.MarshalBinary()
	if err != nil {
		return err
	}
	b.Put(bPrekeys, spkKey(st.SignedID), enc)
	lr, err := e.dev.NewKEMPrekey(e.cfg.Rand, st.LastResortID, now, true)
	if err != nil {
		return err
	}
	if enc, err = lr.MarshalBinary(); err != nil {
		return err
	}
	b.Put(bPrekeys, kemKey(st.LastResortID), enc)
	st.RotatedAt = uint64(now.UnixMilli())
	st.Published = false
	return nil
}

// rotatePrekeysLocked deletes the previous signed and last-resort
// prekeys once their grace period is over (with the record of the session
// starts made under that signed prekey), and replaces the current ones
// once they are signedPrekeyRotation old. It reports whether it stored
// anything.
func (e *Engine) rotatePrekeysLocked(ctx context.Context) (bool, error) {
	if e.acct == nil || e.acct.Revoked {
		return false, nil
	}
	st, err := e.loadPrekeyState(ctx)
	if err != nil {
		return false, err
	}
	if st.SignedID == 0 {
		return false, nil // no prekeys yet (a companion still linking)
	}
	now := e.cfg.Now()
	rotatedAt := time.UnixMilli(int64(st.RotatedAt))
	due := st.RotatedAt == 0 || now.Sub(rotatedAt) >= signedPrekeyRotation
	expired := st.PrevSignedID != 0 && (due || now.Sub(rotatedAt) >= signedPrekeyGrace)
	if !due && !expired {
		return false, nil
	}
	var b storage.Batch
	if expired {
		if err := e.deleteSignedPrekeysLocked(ctx, &b, st.PrevSignedID, st.PrevLastResortID); err != nil {
			return false, err
		}
		st.PrevSignedID, st.PrevLastResortID = 0, 0
	}
	if due {
		st.PrevSignedID, st.PrevLastResortID = st.SignedID, st.LastResortID
		st.SignedID++
		st.LastResortID = st.NextKEM
		st.NextKEM++
		if err := e.newSignedPrekeysLocked(&b, st, now); err != nil {
			return false, err
		}
	}
	b.Put(bPrekeys, keyPrekeys, st.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return false, storageErr(err)
	}
	if due {
		e.log.Info("signed prekey rotated", "id", st.SignedID)
	}
	return true, nil
}

// deleteSignedPrekeysLocked adds to b the deletion of a signed prekey,
// its last-resort KEM prekey and the record of the session starts that
// named the signed prekey (a start naming it fails from now on anyway).
func (e *Engine) deleteSignedPrekeysLocked(ctx context.Context, b *storage.Batch, spk, lr uint32) error {
	b.Delete(bPrekeys, spkKey(spk))
	b.Delete(bPrekeys, kemKey(lr))
	prefix := initialSeenSPKPrefix(spk)
	err := e.cfg.Store.Scan(ctx, bPrekeys, prefix, storage.ScanOptions{}, func(k string, _ []byte) error {
		b.Delete(bPrekeys, k)
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	return nil
}

// maintainPrekeys rotates the prekeys if they are due and, if connected,
// publishes the new ones.
func (e *Engine) maintainPrekeys(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed, err := e.rotatePrekeysLocked(ctx)
	if err != nil {
		e.log.Warn("prekey rotation failed", "err", err)
		return
	}
	if changed && e.conn != nil {
		if _, err := e.publishLocked(ctx, e.conn); err != nil {
			e.log.Warn("rotated prekeys not published", "err", err)
		}
	}
}

// freshPrekeys is a batch of one-time and KEM prekeys made for a given
// prekey state and not stored yet.
type freshPrekeys struct {
	nextOneTime, nextKEM uint32 // the state's counters they were made for
	oneTime              []*identity.OneTimePrekey
	kem                  []*identity.KEMPrekey
}

// generatePrekeys makes the next batch of prekeys after st's counters. It
// touches neither the store nor the engine, so a refill runs it without
// the engine lock: making them (ML-KEM key pairs above all) takes tens of
// milliseconds in the browser, during which messages keep arriving.
func generatePrekeys(dev *identity.Device, rand io.Reader, st *prekeyState, now time.Time) (*freshPrekeys, error) {
	f := &freshPrekeys{nextOneTime: st.NextOneTime, nextKEM: st.NextKEM}
	otks, err := identity.NewOneTimePrekeys(rand, st.NextOneTime, oneTimeBatch)
	if err != nil {
		return nil, err
	}
	f.oneTime = otks
	for i := range uint32(kemBatch) {
		k, err := dev.NewKEMPrekey(rand, st.NextKEM+i, now, false)
		if err != nil {
			return nil, err
		}
		f.kem = append(f.kem, k)
	}
	return f, nil
}

// errPrekeysStale: a batch made for a prekey state that moved since.
var errPrekeysStale = errors.New("prekeys: made for another prekey state")

// add puts the prekeys' private halves and the advanced state st into b.
// st must still be the state they were made for (else errPrekeysStale).
func (f *freshPrekeys) add(b *storage.Batch, st *prekeyState) error {
	if st.NextOneTime != f.nextOneTime || st.NextKEM != f.nextKEM {
		return errPrekeysStale
	}
	for _, k := range f.oneTime {
		enc, err := k.MarshalBinary()
		if err != nil {
			return err
		}
		key := otkKey(k.Public.ID)
		b.Put(bPrekeys, key, enc)
		st.Pending = append(st.Pending, key)
	}
	st.NextOneTime += uint32(len(f.oneTime))
	for _, k := range f.kem {
		enc, err := k.MarshalBinary()
		if err != nil {
			return err
		}
		key := kemKey(st.NextKEM)
		b.Put(bPrekeys, key, enc)
		st.Pending = append(st.Pending, key)
		st.NextKEM++
	}
	b.Put(bPrekeys, keyPrekeys, st.marshal())
	return nil
}

// publishPrekeys uploads what is stored but not yet published; if nothing
// was, a low stock reported by the relay at login triggers a new batch
// (made without the engine lock, refillPrekeys).
func (e *Engine) publishPrekeys(ctx context.Context, conn Conn) error {
	e.mu.Lock()
	uploaded, err := e.publishLocked(ctx, conn)
	e.mu.Unlock()
	if err != nil || uploaded {
		return err
	}
	if s := conn.Stock(); s.OneTime < lowOneTimeMark || s.KEM < lowOneTimeMark/2 {
		return e.refillPrekeys(ctx, conn)
	}
	return nil
}

// publishLocked uploads pending prekeys and reports whether there were any.
func (e *Engine) publishLocked(ctx context.Context, conn Conn) (bool, error) {
	st, err := e.loadPrekeyState(ctx)
	if err != nil {
		return false, err
	}
	if st.Published && len(st.Pending) == 0 {
		return false, nil
	}
	if !st.Published && st.SignedID == 0 {
		return false, nil // no signed prekey yet
	}
	var up relay.Prekeys
	get := func(key string) ([]byte, error) { return e.cfg.Store.Get(ctx, bPrekeys, key) }
	if !st.Published {
		b, err := get(spkKey(st.SignedID))
		if err != nil {
			return false, storageErr(err)
		}
		spk, err := identity.UnmarshalSignedPrekey(b)
		if err != nil {
			return false, err
		}
		up.SignedPrekey = encodePublic(spk.Public.Encode)
		if b, err = get(kemKey(st.LastResortID)); err != nil {
			return false, storageErr(err)
		}
		lr, err := identity.UnmarshalKEMPrekey(b)
		if err != nil {
			return false, err
		}
		up.LastResortKEM = encodePublic(lr.Public.Encode)
	}
	for _, key := range st.Pending {
		b, err := get(key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // consumed already (cannot be, but harmless)
		}
		if err != nil {
			return false, storageErr(err)
		}
		switch key[:3] {
		case "otk":
			k, err := identity.UnmarshalOneTimePrekey(b)
			if err != nil {
				return false, err
			}
			up.OneTime = append(up.OneTime, encodePublic(k.Public.Encode))
		case "kem":
			k, err := identity.UnmarshalKEMPrekey(b)
			if err != nil {
				return false, err
			}
			up.KEM = append(up.KEM, encodePublic(k.Public.Encode))
		}
	}
	if err := conn.UploadPrekeys(ctx, up); err != nil {
		return false, mapRelayErr(err)
	}
	st.Published, st.Pending = true, nil
	var b storage.Batch
	b.Put(bPrekeys, keyPrekeys, st.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return false, storageErr(err)
	}
	return true, nil
}

func encodePublic(enc func(*wire.Writer)) []byte {
	w := wire.NewWriter(1300)
	enc(w)
	return w.Bytes()
}

// refillPrekeys makes a new batch of prekeys without the engine lock,
// then stores and uploads it. Only the session goroutine refills, so the
// state cannot move meanwhile; if it did, the batch is dropped unstored.
func (e *Engine) refillPrekeys(ctx context.Context, conn Conn) error {
	e.mu.Lock()
	st, err := e.loadPrekeyState(ctx)
	dev := e.dev
	e.mu.Unlock()
	if err != nil {
		return err
	}
	keys, err := generatePrekeys(dev, e.cfg.Rand, st, e.cfg.Now())
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, err = e.loadPrekeyState(ctx); err != nil {
		return err
	}
	var b storage.Batch
	if err := keys.add(&b, st); errors.Is(err, errPrekeysStale) {
		return nil // another batch went in meanwhile
	} else if err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	_, err = e.publishLocked(ctx, conn)
	return err
}

// prekeyView is pqxdh.Prekeys over the store; consumption goes into the
// same batch as the new session, so both land together or not at all.
type prekeyView struct {
	ctx   context.Context
	e     *Engine
	batch *storage.Batch
}

func (v *prekeyView) SignedPrekey(id uint32) *identity.SignedPrekey {
	b, err := v.e.cfg.Store.Get(v.ctx, bPrekeys, spkKey(id))
	if err != nil {
		return nil
	}
	k, err := identity.UnmarshalSignedPrekey(b)
	if err != nil {
		return nil
	}
	return k
}

func (v *prekeyView) KEMPrekey(id uint32) *identity.KEMPrekey {
	b, err := v.e.cfg.Store.Get(v.ctx, bPrekeys, kemKey(id))
	if err != nil {
		return nil
	}
	k, err := identity.UnmarshalKEMPrekey(b)
	if err != nil {
		return nil
	}
	return k
}

func (v *prekeyView) OneTimePrekey(id uint32) *identity.OneTimePrekey {
	b, err := v.e.cfg.Store.Get(v.ctx, bPrekeys, otkKey(id))
	if err != nil {
		return nil
	}
	k, err := identity.UnmarshalOneTimePrekey(b)
	if err != nil {
		return nil
	}
	return k
}

func (v *prekeyView) Consume(oneTimeID uint32, hasOneTime bool, kemID uint32, kemLastResort bool) error {
	if hasOneTime {
		v.batch.Delete(bPrekeys, otkKey(oneTimeID))
	}
	if !kemLastResort {
		v.batch.Delete(bPrekeys, kemKey(kemID))
	}
	return nil
}
