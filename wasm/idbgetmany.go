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
	for _, r := range refs {
		if err := storage.ValidKey(r.bucket, r.key); err != nil {
			return fail(err)
		}
	}
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
	reqs := make([]*idb.Request, len(refs))
	for i, r := range refs {
		if reqs[i], err = st.Get(recordKey(r.bucket, r.key)); err != nil {
			return fail(err)
		}
	}
	var countReq *idb.UintRequest
	if countBucket != "" {
		kr, err := idb.NewKeyRangeBound(recordKey(countBucket, ""), js.ValueOf([]any{countBucket, []any{}}), false, true)
		if err != nil {
			return fail(err)
		}
		if countReq, err = st.CountRange(kr); err != nil {
			return fail(err)
		}
	}
	vals, errs := make([][]byte, len(refs)), make([]error, len(refs))
	sealed := make([][]byte, len(refs))
	for i, req := range reqs {
		v, err := req.Await(ctx)
		if err != nil {
			return fail(err)
		}
		if v.IsUndefined() {
			errs[i] = storage.ErrNotFound
			continue
		}
		if sealed[i], err = bytesFromJS(safejs.Safe(v)); err != nil {
			errs[i] = &corruptError{refs[i].bucket, refs[i].key, "is not in Parley's sealed format"}
		}
	}
	var count uint
	if countReq != nil {
		if count, err = countReq.Await(ctx); err != nil {
			return fail(err)
		}
	}
	plain := unsealMany(k, refs, sealed, errs)
	for i := range refs {
		if errs[i] == nil {
			vals[i] = plain[i]
		}
	}
	return vals, errs, count, nil
}

// unsealMany opens sealed[i] for refs[i] where errs[i] is nil, all
// WebCrypto calls in flight at once and one Go await for them; a record
// that fails sets errs[i] (a corruptError).
func unsealMany(k safejs.Value, refs []recordRef, sealed [][]byte, errs []error) [][]byte {
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
		if len(b) < 1+ivSize+tagSize || b[0] != sealVersion {
			damaged(i)
			continue
		}
		alg := map[string]any{
			"name":           "AES-GCM",
			"iv":             bytesToJS(b[1 : 1+ivSize]),
			"additionalData": bytesToJS(recordAD(refs[i].bucket, refs[i].key)),
		}
		p, err := sub.Call("decrypt", alg, k, bytesToJS(b[1+ivSize:]))
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
