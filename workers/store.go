//go:build js && wasm

package main

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/store"
	"github.com/syumai/workers/cloudflare"
	"github.com/syumai/workers/cloudflare/d1"
	"github.com/syumai/workers/cloudflare/r2"
)

// cfStore is relay.Store on Cloudflare: accounts, device lists, prekeys,
// link messages and blob reservations in D1; blob contents in R2; each
// device's mailbox in its own Mailbox Durable Object (src/index.mjs).
//
// D1 has no transactions, so everything that must be atomic is a single
// statement: a conditional insert for the prekey stock limit, DELETE ...
// RETURNING to take a one-time prekey, UPDATE ... WHERE ... RETURNING to
// take a link message, compare-and-swap on the list version. A Mailbox is
// single-threaded, so its checks (the mailbox limit) are atomic there.
//
// It lives for one request: every request starts a fresh Go instance.
type cfStore struct {
	db        *sql.DB
	mailboxes *cloudflare.DurableObjectNamespace
	blobs     *r2.Bucket
	// truncated: a Mailbox read stopped at pageBytes, not at its limit.
	truncated bool
}

// pageBytes bounds the envelope bytes of one mailbox read: a page crosses
// JSON and base64 three times on its way to the socket, and a Worker has
// 128 MB. An envelope is at most relay.MaxFrame.
const pageBytes = 2 << 20

// Binding names, as declared in wrangler.jsonc.
const (
	bindingDB        = "DB"
	bindingMailboxes = "MAILBOXES"
	bindingBlobs     = "BLOBS"
)

func openStore() (*cfStore, error) {
	c, err := d1.OpenConnector(bindingDB)
	if err != nil {
		return nil, fmt.Errorf("D1 binding %s: %w", bindingDB, err)
	}
	ns, err := cloudflare.NewDurableObjectNamespace(bindingMailboxes)
	if err != nil {
		return nil, fmt.Errorf("Durable Object binding %s: %w", bindingMailboxes, err)
	}
	b, err := r2.NewBucket(bindingBlobs)
	if err != nil {
		return nil, fmt.Errorf("R2 binding %s: %w", bindingBlobs, err)
	}
	return &cfStore{db: sql.OpenDB(c), mailboxes: ns, blobs: b}, nil
}

// addrKey names a device in D1 rows and Mailbox objects.
func addrKey(a store.Addr) string { return a.Handle + "/" + hex.EncodeToString(a.Device[:]) }

// ---- accounts and device lists ----

// CreateAccount inserts the account; the accounts_claim_key trigger
// (migrations/0003) claims its key in the same statement, so a key
// registered under another handle fails it whole (ErrKeyTaken).
func (s *cfStore) CreateAccount(a store.Account) error {
	res, err := s.db.Exec(`INSERT INTO accounts (handle, account_key, version, device_list) VALUES (?, ?, ?, ?) ON CONFLICT (handle) DO NOTHING`,
		a.Handle, a.AccountKey, int64(a.Version), a.DeviceList)
	if err != nil && strings.Contains(err.Error(), "account_keys.account_key") {
		return store.ErrKeyTaken // UNIQUE constraint failed: account_keys.account_key
	}
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrExists
	}
	return nil
}

func (s *cfStore) Account(handle string) (store.Account, error) {
	a := store.Account{Handle: handle}
	var version int64
	// The join leaves out aliases of another handle's key (from before
	// migration 0003).
	err := s.db.QueryRow(`SELECT a.account_key, a.version, a.device_list FROM accounts a
		JOIN account_keys k ON k.account_key = a.account_key AND k.handle = a.handle
		WHERE a.handle = ?`, handle).Scan(&a.AccountKey, &version, &a.DeviceList)
	if errors.Is(err, sql.ErrNoRows) {
		return a, store.ErrNotFound
	}
	a.Version = uint64(version)
	return a, err
}

// ReplaceDeviceList is a compare-and-swap on the version; the removed
// devices' prekeys and mailboxes go after it (a removed device can no
// longer log in, so what is left of it in between is unreachable), and
// their sockets are closed with device_revoked.
func (s *cfStore) ReplaceDeviceList(handle string, prev, version uint64, list []byte, removed []store.DeviceID) (int, error) {
	res, err := s.db.Exec(`UPDATE accounts SET version = ?, device_list = ? WHERE handle = ? AND version = ?`, int64(version), list, handle, int64(prev))
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Account(handle); err != nil {
			return 0, err
		}
		return 0, store.ErrConflict
	}
	purged := 0
	kick := relay.Error{Code: relay.CodeRevoked, Message: "device removed from the account's list"}
	for _, d := range removed {
		a := store.Addr{Handle: handle, Device: d}
		if _, err := s.db.Exec(`DELETE FROM one_time_prekeys WHERE addr = ?`, addrKey(a)); err != nil {
			return purged, err
		}
		if _, err := s.db.Exec(`DELETE FROM signed_prekeys WHERE addr = ?`, addrKey(a)); err != nil {
			return purged, err
		}
		if _, err := s.db.Exec(`DELETE FROM prekey_fetches WHERE addr = ?`, addrKey(a)); err != nil {
			return purged, err
		}
		var out struct{ N int }
		err := s.call(a, "purge", map[string]any{"out": closeOutput(&kick)}, &out)
		if err != nil {
			return purged, err
		}
		purged += out.N
	}
	return purged, nil
}

// closeOutput is what a Socket object applies to end its socket with e,
// in the shape of relay.Output.
func closeOutput(e *relay.Error) map[string]any {
	return map[string]any{
		"frames": [][]byte{relay.Encode(e)},
		"close":  relay.CloseBase + int(e.Code),
		"reason": e.Code.String() + ": " + e.Message,
	}
}

// ---- mailboxes (Mailbox Durable Objects) ----

// call posts a JSON request to the Mailbox of a and decodes its answer.
// 409 is a full mailbox.
func (s *cfStore) call(a store.Addr, op string, in, out any) error {
	stub, err := s.mailboxes.Get(s.mailboxes.IdFromName(addrKey(a)))
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, "https://mailbox/"+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	res, err := stub.Fetch(req)
	if err != nil {
		return fmt.Errorf("mailbox %s: %w", op, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	switch {
	case res.StatusCode == http.StatusConflict:
		return &store.MailboxFullError{To: a}
	case res.StatusCode != http.StatusOK:
		return fmt.Errorf("mailbox %s: %s: %s", op, res.Status, b)
	case out == nil:
		return nil
	}
	return json.Unmarshal(b, out)
}

// mailboxItem is one stored envelope: the Envelope frame without its seq
// (To is the mailbox itself).
type mailboxItem struct {
	Seq     uint64 `json:"seq,omitempty"`
	Expires int64  `json:"expires"`
	Data    []byte `json:"data"`
}

// EnqueueAsync writes to every recipient's Mailbox in parallel. Mailboxes
// are separate objects, so "nothing stored" on a refusal is kept by
// deleting what the others accepted; the recipients may be woken for an
// envelope that is then gone, which costs them one empty read.
//
// Once every Mailbox accepted, the recipients' list versions are read
// again (ListVersion): if one changed, the send raced a list change and
// is refused (ErrSuperseded) and deleted. A list change updates D1 before
// it purges the removed devices' Mailboxes, so either this read sees the
// new version, or the purge comes after these envelopes and deletes them:
// none is left in a removed device's Mailbox.
func (s *cfStore) EnqueueAsync(envs []store.Envelope, limit int) func() error {
	seqs := make([]uint64, len(envs))
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i := range envs {
		e := &envs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := relay.Encode(&relay.Envelope{
				From:      relay.Addr{Handle: e.From.Handle, Device: relay.DeviceID(e.From.Device)},
				MessageID: e.MessageID, ServerTime: uint64(e.ServerTime), Payload: e.Payload,
			})
			var out struct{ Seq uint64 }
			errs[i] = s.call(e.To, "enqueue", map[string]any{"limit": limit, "now": e.ServerTime, "expires": e.Expires, "data": data}, &out)
			seqs[i] = out.Seq
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = s.checkListVersions(envs)
	}
	if err != nil {
		var full *store.MailboxFullError
		for i, e := range errs {
			if e == nil {
				_ = s.call(envs[i].To, "delete", map[string]any{"seqs": []uint64{seqs[i]}}, nil)
			} else if errors.As(e, &full) {
				err = e
			}
		}
	}
	return func() error { return err }
}

// checkListVersions is ErrSuperseded if a recipient account's list is no
// longer the version its envelopes were checked against.
func (s *cfStore) checkListVersions(envs []store.Envelope) error {
	checked := map[string]bool{}
	for _, e := range envs {
		if e.ListVersion == 0 || checked[e.To.Handle] {
			continue
		}
		checked[e.To.Handle] = true
		var v int64
		err := s.db.QueryRow(`SELECT version FROM accounts WHERE handle = ?`, e.To.Handle).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && uint64(v) != e.ListVersion) {
			return store.ErrSuperseded
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Mailbox reads at most pageBytes of envelopes (at least one), so a page
// of large envelopes fits a Worker's memory several times over; when a
// read stops short of limit for that reason, truncated is set and the
// hosted session is told to deliver again (see effects in main.go).
func (s *cfStore) Mailbox(to store.Addr, after uint64, limit int, now time.Time) ([]store.Envelope, error) {
	var out struct {
		Items []mailboxItem
		More  bool
	}
	if err := s.call(to, "read", map[string]any{"after": after, "limit": limit, "bytes": pageBytes, "now": now.UnixMilli()}, &out); err != nil {
		return nil, err
	}
	s.truncated = s.truncated || out.More
	envs := make([]store.Envelope, 0, len(out.Items))
	for _, it := range out.Items {
		f, err := relay.Decode(it.Data)
		e, ok := f.(*relay.Envelope)
		if err != nil || !ok {
			return nil, fmt.Errorf("mailbox of %s: stored envelope %d does not decode: %v", addrKey(to), it.Seq, err)
		}
		envs = append(envs, store.Envelope{
			Seq: it.Seq, To: to, From: store.Addr{Handle: e.From.Handle, Device: store.DeviceID(e.From.Device)},
			MessageID: e.MessageID, ServerTime: int64(e.ServerTime), Expires: it.Expires, Payload: e.Payload,
		})
	}
	return envs, nil
}

func (s *cfStore) MailboxLen(to store.Addr) (int, error) {
	var out struct{ N int }
	err := s.call(to, "len", struct{}{}, &out)
	return out.N, err
}

// LiveMailboxLen counts only the envelopes that have not expired at now
// (relay.liveCounter), so Ready.Queued leaves out what the sweep deletes.
func (s *cfStore) LiveMailboxLen(to store.Addr, now time.Time) (int, error) {
	var out struct{ N int }
	err := s.call(to, "len", map[string]any{"now": now.UnixMilli()}, &out)
	return out.N, err
}

func (s *cfStore) Delete(acks []store.Acked) error {
	var errs []error
	for _, a := range acks {
		errs = append(errs, s.call(a.To, "delete", map[string]any{"seqs": a.Seqs}, nil))
	}
	return errors.Join(errs...)
}

// subscribe and unsubscribe tell a device's Mailbox which Socket objects
// to wake when it grows.
func (s *cfStore) subscribe(a store.Addr, socket string) error {
	return s.call(a, "subscribe", map[string]any{"socket": socket}, nil)
}

func (s *cfStore) unsubscribe(a store.Addr, socket string) error {
	return s.call(a, "unsubscribe", map[string]any{"socket": socket}, nil)
}

// push hands frames to every socket of a device.
func (s *cfStore) push(a store.Addr, f []byte) error {
	return s.call(a, "push", map[string]any{"out": map[string]any{"frames": [][]byte{f}}}, nil)
}

// RecheckStanding makes every socket of a check at once whether its device
// may keep it (relay.Output's Deadline: the Socket object's alarm calls
// SessionTimeout): a new list may have moved its attestation's moment.
func (s *cfStore) RecheckStanding(a store.Addr) error {
	return s.call(a, "push", map[string]any{"out": map[string]any{"deadline": time.Now().UnixMilli()}}, nil)
}

// Queued is not tracked across Mailbox objects.
func (s *cfStore) Queued() int64 { return 0 }

// ---- prekeys ----

// PutPrekeys inserts both kinds of one-time keys in one conditional
// statement, so the stock limit holds under concurrent uploads.
func (s *cfStore) PutPrekeys(of store.Addr, up store.PrekeyUpload, max int) (store.Stock, error) {
	k := addrKey(of)
	if n := len(up.OneTime) + len(up.KEM); n > 0 {
		hexes := func(keys [][]byte) string {
			out := make([]string, len(keys))
			for i, key := range keys {
				out[i] = hex.EncodeToString(key)
			}
			b, _ := json.Marshal(out)
			return string(b)
		}
		res, err := s.db.Exec(`INSERT INTO one_time_prekeys (addr, kind, key)
			SELECT ?, kind, key FROM (
				SELECT 0 AS kind, value AS key FROM json_each(?)
				UNION ALL SELECT 1, value FROM json_each(?))
			WHERE (SELECT count(*) FROM one_time_prekeys WHERE addr = ? AND kind = 0) + ? <= ?
			  AND (SELECT count(*) FROM one_time_prekeys WHERE addr = ? AND kind = 1) + ? <= ?`,
			k, hexes(up.OneTime), hexes(up.KEM),
			k, int64(len(up.OneTime)), int64(max),
			k, int64(len(up.KEM)), int64(max))
		if err != nil {
			return store.Stock{}, err
		}
		if got, _ := res.RowsAffected(); got == 0 {
			return store.Stock{}, store.ErrTooMany
		}
	}
	if len(up.SignedPrekey) > 0 || len(up.LastResortKEM) > 0 {
		_, err := s.db.Exec(`INSERT INTO signed_prekeys (addr, spk, lrk) VALUES (?, ?, ?)
			ON CONFLICT (addr) DO UPDATE SET spk = coalesce(excluded.spk, spk), lrk = coalesce(excluded.lrk, lrk)`,
			k, nilIfEmpty(up.SignedPrekey), nilIfEmpty(up.LastResortKEM))
		if err != nil {
			return store.Stock{}, err
		}
	}
	return s.PrekeyStock(of)
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// TakeBundle takes the oldest one-time key of each kind with one DELETE
// ... RETURNING each: two fetches never get the same key. First it spends
// the device's fetch budget in one upsert (prekey_fetches); past the
// budget the bundle has no one-time key and nothing is taken.
func (s *cfStore) TakeBundle(of store.Addr, now time.Time, budget store.FetchBudget) (store.Bundle, error) {
	k := addrKey(of)
	var b store.Bundle
	var lrk []byte
	err := s.db.QueryRow(`SELECT spk, lrk FROM signed_prekeys WHERE addr = ?`, k).Scan(&b.SignedPrekey, &lrk)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && len(b.SignedPrekey) == 0) {
		return b, store.ErrNotFound
	}
	if err != nil {
		return b, err
	}
	spent, err := s.spendFetch(k, now, budget)
	if err != nil {
		return b, err
	}
	if !spent {
		b.Withheld = true
		if len(lrk) > 0 {
			b.KEM, b.LastResort = lrk, true
		}
		b.Left, err = s.PrekeyStock(of)
		return b, err
	}
	take := func(kind int) ([]byte, error) {
		var h string
		err := s.db.QueryRow(`DELETE FROM one_time_prekeys WHERE id = (SELECT id FROM one_time_prekeys WHERE addr = ? AND kind = ? ORDER BY id LIMIT 1) RETURNING key`, k, kind).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return hex.DecodeString(h)
	}
	if b.OneTime, err = take(0); err != nil {
		return b, err
	}
	if b.KEM, err = take(1); err != nil {
		return b, err
	}
	if b.KEM == nil && len(lrk) > 0 {
		b.KEM, b.LastResort = lrk, true
	}
	b.Left, err = s.PrekeyStock(of)
	return b, err
}

// spendFetch takes one token of the device's fetch budget, refilled at
// budget.PerSec up to budget.Burst since it was last spent, in one
// statement; false when there was none to take.
func (s *cfStore) spendFetch(addr string, now time.Time, budget store.FetchBudget) (bool, error) {
	ms, burst := now.UnixMilli(), float64(budget.Burst)
	res, err := s.db.Exec(`INSERT INTO prekey_fetches (addr, tokens, at) VALUES (?, ? - 1, ?)
		ON CONFLICT (addr) DO UPDATE SET tokens = min(?, tokens + max(? - at, 0) * ? / 1000.0) - 1, at = max(at, ?)
		WHERE min(?, tokens + max(? - at, 0) * ? / 1000.0) >= 1`,
		addr, burst, ms,
		burst, ms, budget.PerSec, ms,
		burst, ms, budget.PerSec)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *cfStore) PrekeyStock(of store.Addr) (store.Stock, error) {
	var st store.Stock
	err := s.db.QueryRow(`SELECT
		(SELECT count(*) FROM one_time_prekeys WHERE addr = ? AND kind = 0),
		(SELECT count(*) FROM one_time_prekeys WHERE addr = ? AND kind = 1)`, addrKey(of), addrKey(of)).Scan(&st.OneTime, &st.KEM)
	return st, err
}

// ---- link channel ----

// PutLink writes a slot unless it holds an unexpired message or tombstone.
func (s *cfStore) PutLink(key, data []byte, expires, now time.Time) error {
	res, err := s.db.Exec(`INSERT INTO links (key, data, expires, filled) VALUES (?, ?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires = excluded.expires, filled = 1
		WHERE links.expires <= ?`, key, data, expires.UnixMilli(), now.UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrExists
	}
	return nil
}

// TakeLink takes the message and leaves a tombstone, in one statement
// (RETURNING gives the updated row, so the bytes are dropped after). When
// the take finds nothing, a second look tells a consumed slot (ErrGone)
// from an empty one (ErrNotFound) or one filled in between (take again).
func (s *cfStore) TakeLink(key []byte, now time.Time) ([]byte, error) {
	for {
		var data []byte
		err := s.db.QueryRow(`UPDATE links SET filled = 0 WHERE key = ? AND expires > ? AND filled = 1 RETURNING data`, key, now.UnixMilli()).Scan(&data)
		if err == nil {
			_, err = s.db.Exec(`UPDATE links SET data = NULL WHERE key = ? AND filled = 0`, key)
			return data, err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		var filled int
		err = s.db.QueryRow(`SELECT filled FROM links WHERE key = ? AND expires > ?`, key, now.UnixMilli()).Scan(&filled)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, store.ErrNotFound
		case err != nil:
			return nil, err
		case filled == 0:
			return nil, store.ErrGone
		}
	}
}

// ---- blobs ----

func (s *cfStore) ReserveBlob(id []byte, owner string, expires time.Time) error {
	res, err := s.db.Exec(`INSERT INTO blobs (id, owner, expires) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, owner, expires.UnixMilli())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrExists
	}
	return nil
}

// PutBlob writes the bytes to an R2 object of their own, then claims the
// reservation for that object in one conditional UPDATE that also checks
// the owner's quota: of two racing uploads exactly one is recorded, the
// quota holds under concurrent uploads, and a loser's object is deleted.
func (s *cfStore) PutBlob(id, data []byte, now time.Time, quota int64) error {
	if err := s.blobSlot(id, now); err != nil {
		return err
	}
	var suffix [8]byte
	rand.Read(suffix[:])
	object := hex.EncodeToString(id) + "." + hex.EncodeToString(suffix[:])
	if _, err := s.blobs.Put(object, io.NopCloser(bytes.NewReader(data)), nil); err != nil {
		return fmt.Errorf("R2 put: %w", err)
	}
	ms := now.UnixMilli()
	res, err := s.db.Exec(`UPDATE blobs SET object = ?, size = ?
		WHERE id = ? AND object IS NULL AND expires > ?
		  AND (SELECT coalesce(sum(b.size), 0) FROM blobs b
		       WHERE b.owner = blobs.owner AND b.object IS NOT NULL AND b.expires > ?) + ? <= ?`,
		object, int64(len(data)), id, ms, ms, int64(len(data)), quota)
	if err != nil {
		_ = s.blobs.Delete(object)
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_ = s.blobs.Delete(object)
		if err := s.blobSlot(id, now); err != nil {
			return err
		}
		return store.ErrQuota
	}
	return nil
}

// BlobSlot is blobSlot for the relay: checked before a body is read.
func (s *cfStore) BlobSlot(id []byte, now time.Time) error { return s.blobSlot(id, now) }

// blobSlot is nil for an empty unexpired reservation, ErrExists for a
// filled one, ErrNotFound otherwise.
func (s *cfStore) blobSlot(id []byte, now time.Time) error {
	var object sql.NullString
	err := s.db.QueryRow(`SELECT object FROM blobs WHERE id = ? AND expires > ?`, id, now.UnixMilli()).Scan(&object)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case object.Valid:
		return store.ErrExists
	}
	return nil
}

func (s *cfStore) Blob(id []byte, now time.Time) ([]byte, error) {
	var object string
	err := s.db.QueryRow(`SELECT object FROM blobs WHERE id = ? AND expires > ? AND object IS NOT NULL`, id, now.UnixMilli()).Scan(&object)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	o, err := s.blobs.Get(object)
	if err != nil {
		return nil, err
	}
	if o == nil || o.Body == nil {
		return nil, store.ErrNotFound // swept between the check and the read
	}
	return io.ReadAll(o.Body)
}

// Sweep deletes expired link messages and blobs (with their R2 objects).
// Mailboxes expire their own envelopes (an alarm in each Mailbox).
func (s *cfStore) Sweep(now time.Time) (int, error) {
	ms := now.UnixMilli()
	rows, err := s.db.Query(`DELETE FROM blobs WHERE expires <= ? RETURNING object`, ms)
	if err != nil {
		return 0, err
	}
	var objects []string
	n := 0
	for rows.Next() {
		n++
		var o sql.NullString
		if err := rows.Scan(&o); err == nil && o.Valid {
			objects = append(objects, o.String)
		}
	}
	rows.Close()
	for _, o := range objects {
		if err := s.blobs.Delete(o); err != nil {
			return n, err
		}
	}
	res, err := s.db.Exec(`DELETE FROM links WHERE expires <= ?`, ms)
	if err != nil {
		return n, err
	}
	links, _ := res.RowsAffected()
	return n + int(links), nil
}
