package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// The recipients of a sent message (PROTOCOL.md 14.7, §15). A retry
// request names a message by id, and the relay's envelope ids are no
// secret from anyone on the account, so without a record a device linked
// later could fetch up to maxRetryAge of old messages by asking. The
// devices a text or file went to are kept for maxRetryAge; a retry
// request is answered only to the device that asked and only if it is
// one of them.

// bSentTo holds <sent_at, 16 hex><message id hex> → the devices a text or
// file this device sent went to. Keys sort by time, so the expired ones
// are a prefix.
const bSentTo = "sentto"

// sentToPruneBatch is how many expired records one send deletes: more
// than one, so the bucket shrinks to maxRetryAge of sends whatever the
// pace, few enough that a send stays cheap.
const sentToPruneBatch = 8

// deviceRef is one device of an account.
type deviceRef struct {
	Handle string
	Device identity.DeviceID
}

func sentToKey(sentAt uint64, id MessageID) string {
	return fmt.Sprintf("%016x%x", sentAt, id[:])
}

// marshalSentTo is u8 1 ‖ u32 n (≤ maxOutboxTargets) ‖ n × (str handle ‖
// device id (16)).
func marshalSentTo(ds []deviceRef) []byte {
	w := wire.NewWriter(5 + len(ds)*(4+maxHandleLen+identity.DeviceIDSize))
	w.U8(recordVersion)
	w.U32(uint32(len(ds)))
	for _, d := range ds {
		w.String(d.Handle)
		w.Fixed(d.Device[:])
	}
	return w.Bytes()
}

func unmarshalSentTo(b []byte) ([]deviceRef, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	n := r.Count(maxOutboxTargets)
	var ds []deviceRef
	for i := 0; i < n && r.Err() == nil; i++ {
		var d deviceRef
		d.Handle = r.String(maxHandleLen)
		r.FixedInto(d.Device[:])
		ds = append(ds, d)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("recipients record: %w", err)
	}
	return ds, nil
}

// putSentToLocked records in b the devices a text or file went to, and
// deletes a few records older than maxRetryAge.
func (e *Engine) putSentToLocked(ctx context.Context, b *storage.Batch, p *payload, sealed []sealedOut) error {
	ds := make([]deviceRef, len(sealed))
	for i, s := range sealed {
		ds[i] = deviceRef{s.Handle, s.Device}
	}
	b.Put(bSentTo, sentToKey(p.SentAt, p.ID), marshalSentTo(ds))
	cutoff := fmt.Sprintf("%016x", uint64(e.cfg.Now().Add(-maxRetryAge).UnixMilli()))
	err := e.cfg.Store.Scan(ctx, bSentTo, "", storage.ScanOptions{Limit: sentToPruneBatch}, func(k string, _ []byte) error {
		if k >= cutoff {
			return storage.ErrStop
		}
		b.Delete(bSentTo, k)
		return nil
	})
	if err != nil {
		return storageErr(err)
	}
	return nil
}

// wasSentToLocked reports whether this device's message m went to the
// device dev of handle.
func (e *Engine) wasSentToLocked(ctx context.Context, m *Message, id MessageID, handle string, dev identity.DeviceID) (bool, error) {
	v, err := e.cfg.Store.Get(ctx, bSentTo, sentToKey(uint64(m.SentAt), id))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil // not sent yet, expired, or sent before the record existed
	}
	if err != nil {
		return false, storageErr(err)
	}
	ds, err := unmarshalSentTo(v)
	if err != nil {
		return false, newError(ErrStorage.Code, err, "recipients record of %s is corrupt", m.ID)
	}
	for _, d := range ds {
		if d.Handle == handle && d.Device == dev {
			return true, nil
		}
	}
	return false, nil
}
