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
	// lastResortKEMID is the id of the KEM prekey that is never consumed,
	// so sessions can start even when the one-time stock is exhausted.
	lastResortKEMID = 1
	firstKEMID      = 2
)

// prekeyState tracks ids and whether the current keys were published.
type prekeyState struct {
	NextOneTime uint32
	NextKEM     uint32
	SignedID    uint32
	Published   bool     // current signed prekey + last resort uploaded
	Pending     []string // private prekey keys not yet uploaded
}

func (p *prekeyState) marshal() []byte {
	w := wire.NewWriter(64 + 24*len(p.Pending))
	w.U8(recordVersion)
	w.U32(p.NextOneTime)
	w.U32(p.NextKEM)
	w.U32(p.SignedID)
	w.Bool(p.Published)
	w.U32(uint32(len(p.Pending)))
	for _, k := range p.Pending {
		w.String(k)
	}
	return w.Bytes()
}

func unmarshalPrekeyState(b []byte) (*prekeyState, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	p := &prekeyState{NextOneTime: r.U32(), NextKEM: r.U32(), SignedID: r.U32(), Published: r.Bool()}
	n := r.Count(4 * (oneTimeBatch + kemBatch))
	for i := 0; i < n; i++ {
		p.Pending = append(p.Pending, r.String(32))
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
		st.SignedID = 1
		spk, err := e.dev.NewSignedPrekey(e.cfg.Rand, st.SignedID, now)
		if err != nil {
			return err
		}
		enc, err := spk.MarshalBinary()
		if err != nil {
			return err
		}
		b.Put(bPrekeys, spkKey(st.SignedID), enc)
		lr, err := e.dev.NewKEMPrekey(e.cfg.Rand, lastResortKEMID, now, true)
		if err != nil {
			return err
		}
		if enc, err = lr.MarshalBinary(); err != nil {
			return err
		}
		b.Put(bPrekeys, kemKey(lastResortKEMID), enc)
		st.Published = false
	}
	keys, err := generatePrekeys(e.dev, e.cfg.Rand, st, now)
	if err != nil {
		return err
	}
	return keys.add(b, st)
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
		if b, err = get(kemKey(lastResortKEMID)); err != nil {
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

func (p *prekeyState) lastResortID() uint32 { return lastResortKEMID }
