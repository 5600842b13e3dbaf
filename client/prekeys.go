package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/server/relay/frame"
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
	otks, err := identity.NewOneTimePrekeys(e.cfg.Rand, st.NextOneTime, oneTimeBatch)
	if err != nil {
		return err
	}
	for _, k := range otks {
		enc, err := k.MarshalBinary()
		if err != nil {
			return err
		}
		key := otkKey(k.Public.ID)
		b.Put(bPrekeys, key, enc)
		st.Pending = append(st.Pending, key)
	}
	st.NextOneTime += oneTimeBatch
	for i := 0; i < kemBatch; i++ {
		k, err := e.dev.NewKEMPrekey(e.cfg.Rand, st.NextKEM, now, false)
		if err != nil {
			return err
		}
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

// publishPrekeys uploads what is stored but not yet published.
func (e *Engine) publishPrekeys(ctx context.Context, conn Conn) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.publishLocked(ctx, conn, true)
}

// publishLocked uploads pending prekeys; with refill, a low stock reported
// by the relay at login triggers a new batch first.
func (e *Engine) publishLocked(ctx context.Context, conn Conn, refill bool) error {
	st, err := e.loadPrekeyState(ctx)
	if err != nil {
		return err
	}
	if st.Published && len(st.Pending) == 0 {
		if s := conn.Stock(); refill && (s.OneTime < lowOneTimeMark || s.KEM < lowOneTimeMark/2) {
			return e.refillLocked(ctx, conn)
		}
		return nil
	}
	var up frame.Prekeys
	get := func(key string) ([]byte, error) { return e.cfg.Store.Get(ctx, bPrekeys, key) }
	if !st.Published {
		b, err := get(spkKey(st.SignedID))
		if err != nil {
			return storageErr(err)
		}
		spk, err := identity.UnmarshalSignedPrekey(b)
		if err != nil {
			return err
		}
		up.SignedPrekey = encodePublic(spk.Public.Encode)
		if b, err = get(kemKey(lastResortKEMID)); err != nil {
			return storageErr(err)
		}
		lr, err := identity.UnmarshalKEMPrekey(b)
		if err != nil {
			return err
		}
		up.LastResortKEM = encodePublic(lr.Public.Encode)
	}
	for _, key := range st.Pending {
		b, err := get(key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // consumed already (cannot be, but harmless)
		}
		if err != nil {
			return storageErr(err)
		}
		switch key[:3] {
		case "otk":
			k, err := identity.UnmarshalOneTimePrekey(b)
			if err != nil {
				return err
			}
			up.OneTime = append(up.OneTime, encodePublic(k.Public.Encode))
		case "kem":
			k, err := identity.UnmarshalKEMPrekey(b)
			if err != nil {
				return err
			}
			up.KEM = append(up.KEM, encodePublic(k.Public.Encode))
		}
	}
	if err := conn.UploadPrekeys(ctx, up); err != nil {
		return mapRelayErr(err)
	}
	st.Published, st.Pending = true, nil
	var b storage.Batch
	b.Put(bPrekeys, keyPrekeys, st.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	return nil
}

func encodePublic(enc func(*wire.Writer)) []byte {
	w := wire.NewWriter(1300)
	enc(w)
	return w.Bytes()
}

func (e *Engine) refillPrekeys(ctx context.Context, conn Conn) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refillLocked(ctx, conn)
}

func (e *Engine) refillLocked(ctx context.Context, conn Conn) error {
	var b storage.Batch
	if err := e.addPrekeys(ctx, &b, false); err != nil {
		return err
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	return e.publishLocked(ctx, conn, false)
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
