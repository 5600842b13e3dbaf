package client

import (
	"context"
	"errors"
	"time"

	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/relay"
)

// Bulk objects (PROTOCOL.md §14.4): attachments and history bundles are
// sealed by crypto/bulk and stored in the relay's blob store, several
// chunks per blob. A blob reference (bulk.Ref: blob ids, key, digest,
// size) then travels inside an end-to-end encrypted message (an
// attachment) or a link bundle (history). This file is the engine's side:
// reserving and uploading blobs, downloading them, and the engine's error
// codes.

// BulkCipher is the AES-256-GCM the engine seals bulk objects with (see
// bulk.Cipher). The default is Go's crypto/aes; the browser plugs in
// WebCrypto's AES-GCM (SubtleCrypto.encrypt with additionalData), which is
// about ten times faster than Go compiled to WebAssembly on large data.
// Calls may block (a WebCrypto promise); they are never made with the
// engine's lock held.
type BulkCipher = bulk.Cipher

const (
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = bulk.ChunkSize
	// chunksPerBlob groups chunks into one blob: 16 × (256 KiB + 16) is a
	// little over 4 MiB, under relay.MaxBlob (8 MiB), so a 25 MiB
	// attachment needs 7 blobs and 7 reservations (the relay allows a
	// burst of 50 per socket).
	chunksPerBlob = 16

	// reserveRetries bounds how often a rate-limited blob reservation is
	// retried, a second apart.
	reserveRetries = 10
)

// ErrTampered reports a bulk object whose bytes do not match its
// reference: the relay (or the network) altered, reordered, dropped or
// truncated them. Nothing of it is returned.
var ErrTampered = &Error{Code: CodeAttachmentTampered, Message: "the encrypted file was altered or is incomplete on the relay; it was refused"}

// ErrAttachmentGone reports a bulk object whose blobs the relay no longer
// has: blobs expire 30 days after upload (or the relay lost them).
var ErrAttachmentGone = &Error{Code: CodeAttachmentGone, Message: "the file is no longer on the relay (files are kept 30 days)"}

// ErrBlobQuota reports that the relay refused an upload because the
// account's unexpired blobs would exceed its quota.
var ErrBlobQuota = &Error{Code: CodeQuotaExceeded, Message: "the account's file storage on the relay is full; space frees up as files expire after 30 days"}

// unmarshalBlobRef decodes a blob reference whose blobs the relay can
// hold.
func unmarshalBlobRef(b []byte) (*bulk.Ref, error) { return bulk.UnmarshalRef(b, relay.MaxBlob) }

// openBulk checks the whole ciphertext against the reference and decrypts
// it. Any mismatch is ErrTampered.
func openBulk(c BulkCipher, label string, ref *bulk.Ref, sealed []byte) ([]byte, error) {
	pt, err := bulk.Open(c, label, ref, sealed)
	if err == nil {
		return pt, nil
	}
	var ce *bulk.ChunkError
	switch {
	case errors.Is(err, bulk.ErrLength):
		return nil, newError(ErrTampered.Code, nil, "the encrypted file is %d bytes, its reference says %d: refused", len(sealed), ref.SealedSize())
	case errors.Is(err, bulk.ErrDigest):
		return nil, newError(ErrTampered.Code, nil, "the encrypted file does not match its digest: refused")
	case errors.As(err, &ce):
		return nil, newError(ErrTampered.Code, ce.Err, "chunk %d of the encrypted file does not authenticate: refused", ce.Index)
	}
	return nil, newError(ErrTampered.Code, err, "%s", ErrTampered.Message)
}

// uploadBulk seals pt and stores it in the relay's blob store, reporting
// progress in sealed bytes. It must not be called with e.mu held unless
// the caller accepts that the socket's replies are read by the client's
// own goroutine (they are: relayclient reads independently).
func (e *Engine) uploadBulk(ctx context.Context, conn Conn, label string, pt []byte, progress func(done, total int64)) (*bulk.Ref, error) {
	if len(pt) > bulk.MaxSize {
		return nil, ErrAttachmentTooLarge
	}
	s, err := bulk.NewSealer(e.bulk(), e.cfg.Rand, label, pt)
	if err != nil {
		return nil, err
	}
	total := int64(s.SealedSize())
	var done int64
	var ids [][16]byte
	if progress != nil {
		progress(0, total)
	}
	for {
		blob, err := s.Next(chunksPerBlob)
		if err != nil {
			return nil, err
		}
		if blob == nil {
			break
		}
		id, err := reserveBlob(ctx, conn)
		if err != nil {
			return nil, err
		}
		if err := e.cfg.Relay.PutBlob(ctx, id, blob); err != nil {
			var re *relay.RelayError
			if errors.As(err, &re) && re.Code == relay.CodeQuota {
				return nil, newError(ErrBlobQuota.Code, err, "%s", ErrBlobQuota.Message)
			}
			return nil, err
		}
		ids = append(ids, id)
		done += int64(len(blob))
		if progress != nil {
			progress(done, total)
		}
	}
	return s.Finish(ids), nil
}

// reserveBlob asks the relay for a blob id, waiting out its rate limit.
func reserveBlob(ctx context.Context, conn Conn) ([16]byte, error) {
	for try := 0; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		b, err := conn.ReserveBlob(rctx)
		cancel()
		if err == nil {
			return b.ID, nil
		}
		var re *relay.RelayError
		if !errors.As(err, &re) || re.Code != relay.CodeRateLimited || try >= reserveRetries {
			return [16]byte{}, mapRelayErr(err)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return [16]byte{}, ctx.Err()
		}
	}
}

// downloadBulk fetches the blobs of ref, verifies and decrypts them.
func (e *Engine) downloadBulk(ctx context.Context, label string, ref *bulk.Ref, progress func(done, total int64)) ([]byte, error) {
	total := int64(ref.SealedSize())
	sealed := make([]byte, 0, total)
	if progress != nil {
		progress(0, total)
	}
	for _, id := range ref.Blobs {
		b, err := e.cfg.Relay.GetBlob(ctx, id)
		if err != nil {
			var ee *Error
			if errors.As(err, &ee) && ee.Code == CodeNotFound {
				return nil, newError(ErrAttachmentGone.Code, err, "%s", ErrAttachmentGone.Message)
			}
			return nil, err
		}
		if int64(len(sealed))+int64(len(b)) > total {
			return nil, newError(ErrTampered.Code, nil, "the relay served more bytes than the file has: refused")
		}
		sealed = append(sealed, b...)
		if progress != nil {
			// The last event comes after verification, so a UI at 100%
			// never shows a file that is then refused.
			progress(min(int64(len(sealed)), total-1), total)
		}
	}
	pt, err := openBulk(e.bulk(), label, ref, sealed)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress(total, total)
	}
	return pt, nil
}

func (e *Engine) bulk() BulkCipher {
	if e.cfg.BulkCipher != nil {
		return e.cfg.BulkCipher
	}
	return bulk.AESGCM{}
}
