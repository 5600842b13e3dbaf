//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"
	"github.com/hack-pad/safejs"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/cache"
	"github.com/parley-im/parley/wasm/idbwire"
)

// Reading several records at once: every Get is its own
// IndexedDB transaction and WebCrypto unseal, two trips through the JS
// event loop that cost milliseconds each while the page is still loading.
// getMany reads its records in one read-only transaction and unseals them
// all behind one await.

// recordRef names one record.
type recordRef struct{ bucket, key string }

// getMany returns the value of each ref (nil, with storage.ErrNotFound in
// errs, for a missing one). err reports a failure of the whole read;
// errs[i] a record that is missing or does not open (storage.ErrCorrupt,
// naming it, as Get reports it).
func (s *idbStore) getMany(ctx context.Context, refs []recordRef) (vals [][]byte, errs []error, err error) {
	vals, errs, _, err = s.getManyCount(ctx, refs, "")
	return vals, errs, err
}

// getManyCount is getMany that also counts the records of countBucket (if
// not empty) in the same transaction: start-up learns whether the journal
// holds anything (client/storage/journal) without a read of its own.
func (s *idbStore) getManyCount(ctx context.Context, refs []recordRef, countBucket string) ([][]byte, []error, uint, error) {
	fail := func(err error) ([][]byte, []error, uint, error) { return nil, nil, 0, err }
	k, err := s.dataKey()
	if err != nil {
		return fail(err)
	}
	txn, err := s.db.Transaction(idb.TransactionReadOnly, storeRecords)
	if err != nil {
		return fail(err)
	}
	st, err := txn.ObjectStore(storeRecords)
	if err != nil {
		return fail(err)
	}
	reads, err := issueReads(st, refs, countBucket)
	if err != nil {
		return fail(err)
	}
	if err := txn.Await(ctx); err != nil {
		return fail(err)
	}
	sealed, err := reads.results()
	if err != nil {
		return fail(err)
	}
	vals, errs := sealed.unseal(k)
	return vals, errs, sealed.count, nil
}

// recordReads are Gets of records (and a count) issued in a transaction
// that the caller may use for other requests too. The caller awaits the
// transaction, once, and then takes the results: awaiting each request
// (go-indexeddb's Request.Await) is two listeners, a goroutine and a trip
// through the event loop apiece, which while the page loads adds up to
// milliseconds.
type recordReads struct {
	refs  []recordRef
	reqs  []*idb.Request
	count *idb.UintRequest
}

// issueReads requests refs, and the number of records of countBucket if
// not empty, from st.
func issueReads(st *idb.ObjectStore, refs []recordRef, countBucket string) (*recordReads, error) {
	for _, r := range refs {
		if err := storage.ValidKey(r.bucket, r.key); err != nil {
			return nil, err
		}
	}
	rr := &recordReads{refs: refs, reqs: make([]*idb.Request, len(refs))}
	var err error
	for i, r := range refs {
		if rr.reqs[i], err = st.Get(recordKey(r.bucket, r.key)); err != nil {
			return nil, err
		}
	}
	if countBucket != "" {
		kr, err := idb.NewKeyRangeBound(recordKey(countBucket, ""), js.ValueOf([]any{countBucket, []any{}}), false, true)
		if err != nil {
			return nil, err
		}
		if rr.count, err = st.CountRange(kr); err != nil {
			return nil, err
		}
	}
	return rr, nil
}

// sealedRecords are records as read, before unsealing: errs[i] is
// storage.ErrNotFound for a missing one or a corruptError for one not in
// the sealed format.
type sealedRecords struct {
	refs   []recordRef
	sealed [][]byte
	errs   []error
	count  uint
}

// results takes the reads' results once their transaction has completed.
func (rr *recordReads) results() (*sealedRecords, error) {
	out := &sealedRecords{refs: rr.refs, sealed: make([][]byte, len(rr.refs)), errs: make([]error, len(rr.refs))}
	for i, req := range rr.reqs {
		v, err := req.Result()
		if err != nil {
			return nil, err
		}
		if v.IsUndefined() {
			out.errs[i] = storage.ErrNotFound
			continue
		}
		if out.sealed[i], err = bytesFromJS(safejs.Safe(v)); err != nil {
			out.errs[i] = &corruptError{rr.refs[i].bucket, rr.refs[i].key, "is not in Parley's sealed format"}
		}
	}
	if rr.count != nil {
		var err error
		if out.count, err = rr.count.Result(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// unseal opens the records under ring: the value of each, or in errs why
// there is none (missing, or a corruptError naming it, as Get reports).
func (sr *sealedRecords) unseal(k *keyring) ([][]byte, []error) {
	errs := append([]error(nil), sr.errs...)
	plain := unsealMany(k, sr.refs, sr.sealed, errs)
	vals := make([][]byte, len(sr.refs))
	for i := range sr.refs {
		if errs[i] == nil {
			vals[i] = plain[i]
		}
	}
	return vals, errs
}

// unsealMany opens sealed[i] for refs[i] where errs[i] is nil, each under
// ring's key of its epoch, all WebCrypto calls in flight at once and one
// Go await for them; a record that fails sets errs[i] (a corruptError).
func unsealMany(ring *keyring, refs []recordRef, sealed [][]byte, errs []error) [][]byte {
	out := make([][]byte, len(refs))
	sub, err := subtle()
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return out
	}
	damaged := func(i int) {
		errs[i] = &corruptError{refs[i].bucket, refs[i].key, "failed its integrity check (damaged or altered)"}
	}
	// Each decrypt settles to its plaintext or to null, so one bad record
	// does not hide the others' results.
	toNull := js.FuncOf(func(js.Value, []js.Value) any { return js.Null() })
	defer toNull.Release()
	var idx []int
	var ps []any
	for i, b := range sealed {
		if errs[i] != nil {
			continue
		}
		epoch, iv, ct, err := idbwire.ParseSealed(b)
		if err != nil {
			damaged(i)
			continue
		}
		k, ok := ring.key(epoch)
		if !ok {
			damaged(i)
			continue
		}
		alg := map[string]any{
			"name":           "AES-GCM",
			"iv":             bytesToJS(iv),
			"additionalData": bytesToJS(recordAD(refs[i].bucket, refs[i].key)),
		}
		p, err := sub.Call("decrypt", alg, k, bytesToJS(ct))
		if err != nil {
			errs[i] = err
			continue
		}
		idx = append(idx, i)
		ps = append(ps, safejs.Unsafe(p).Call("catch", toNull))
	}
	if len(ps) == 0 {
		return out
	}
	all, err := Await(safejs.Safe(js.Global().Get("Promise").Call("all", ps)))
	if err != nil {
		for _, i := range idx {
			errs[i] = fmt.Errorf("unseal: %w", err)
		}
		return out
	}
	arr := safejs.Unsafe(all)
	for n, i := range idx {
		v := arr.Index(n)
		if v.IsNull() {
			damaged(i)
			continue
		}
		if out[i], err = bytesFromJS(safejs.Safe(v)); err != nil {
			errs[i] = errors.Join(errUnseal, err)
		}
	}
	return out
}

// GetMany is cache.MultiGetter over getMany.
func (s *idbStore) GetMany(ctx context.Context, refs []cache.Ref) ([][]byte, []error, error) {
	rs := make([]recordRef, len(refs))
	for i, r := range refs {
		rs[i] = recordRef{r.Bucket, r.Key}
	}
	return s.getMany(ctx, rs)
}
