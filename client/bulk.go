package client

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// Bulk objects (PROTOCOL.md §14.4): attachments and history bundles are
// encrypted on the device under a fresh random key, cut into chunks that
// each carry their index and a final flag in the associated data (so the
// relay cannot reorder, drop or truncate them), and stored in the relay's
// blob store, several chunks per blob. A blob reference — blob ids, key,
// digest, size — then travels inside an end-to-end encrypted message (an
// attachment) or a link bundle (history).

// BulkCipher is AES-256-GCM (NIST SP 800-38D) with 12-byte nonces and
// 16-byte tags, over whole chunks. It is a seam, not a choice: every
// implementation must be AES-256-GCM, because the sender's and receivers'
// devices may differ. The default is Go's crypto/aes; the browser plugs in
// WebCrypto's AES-GCM (SubtleCrypto.encrypt with additionalData), which is
// about ten times faster than Go compiled to WebAssembly on large data.
// Calls may block (a WebCrypto promise); they are never made with the
// engine's lock held.
type BulkCipher interface {
	// Seal returns ciphertext||tag of plaintext under key (32 bytes) and
	// nonce (12 bytes), authenticating ad.
	Seal(key, nonce, plaintext, ad []byte) ([]byte, error)
	// Open reverses Seal; it fails if anything was altered.
	Open(key, nonce, ciphertext, ad []byte) ([]byte, error)
}

// goAESGCM is the default BulkCipher.
type goAESGCM struct{}

func newGCM(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != bulkKeySize || len(nonce) != bulkNonceSize {
		return nil, errors.New("bulk cipher: bad key or nonce size")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (goAESGCM) Seal(key, nonce, plaintext, ad []byte) ([]byte, error) {
	g, err := newGCM(key, nonce)
	if err != nil {
		return nil, err
	}
	return g.Seal(nil, nonce, plaintext, ad), nil
}

func (goAESGCM) Open(key, nonce, ciphertext, ad []byte) ([]byte, error) {
	g, err := newGCM(key, nonce)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, nonce, ciphertext, ad)
}

const (
	bulkKeySize   = 32
	bulkNonceSize = 12
	bulkTagSize   = 16
	// bulkAESGCM is the only algorithm of version 1 references.
	bulkAESGCM = 1

	// ChunkSize is the plaintext size of every chunk but the last: large
	// enough that per-call overhead (a WebCrypto promise) is noise, small
	// enough that progress moves and a chunk is cheap to hold twice.
	ChunkSize = 256 << 10
	// minChunkSize and maxChunkSize bound the chunk size a reference may
	// name, so another client may choose differently within them.
	minChunkSize = 64 << 10
	maxChunkSize = 1 << 20
	// chunksPerBlob groups chunks into one blob: 16 × (256 KiB + 16) is a
	// little over 4 MiB, under the relay's MaxBlob (8 MiB), so a 25 MiB
	// attachment needs 7 blobs and 7 reservations (the relay allows a
	// burst of 50 per socket).
	chunksPerBlob = 16
	// maxBlobSize is the relay's MaxBlob (server/relay); the engine does
	// not import the server, a test checks they agree.
	maxBlobSize = 8 << 20
	// maxBulkSize bounds the plaintext of one bulk object.
	maxBulkSize = MaxAttachmentSize
	// maxRefBlobs bounds the blob ids in one reference: enough for
	// maxBulkSize at the smallest blob a sender could sensibly use (1 MiB).
	maxRefBlobs = maxBulkSize/(1<<20) + 1
	// maxBlobRefLen bounds an encoded reference (also the history pointer
	// in a link bundle, ≤ link.MaxHistoryPointer).
	maxBlobRefLen  = 1 + 1 + 4 + 8 + bulkKeySize + sha256.Size + 4 + 16*maxRefBlobs
	blobRefVersion = 1

	// reserveRetries bounds how often a rate-limited blob reservation is
	// retried, a second apart.
	reserveRetries = 10
)

// Associated-data labels: an attachment chunk can never be opened as a
// history chunk or the reverse, even under the same key (which never
// happens: keys are fresh per object).
const (
	labelAttachment = "parley/attachment/v1"
	labelHistory    = "parley/history/v1"
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

// blobRef points to one encrypted bulk object on the relay.
type blobRef struct {
	ChunkSize uint32
	Size      uint64 // plaintext bytes
	Key       [bulkKeySize]byte
	Digest    [sha256.Size]byte // SHA-256 of the ciphertext, blobs in order
	Blobs     [][16]byte
}

func (r *blobRef) marshal() []byte {
	w := wire.NewWriter(maxBlobRefLen)
	w.U8(blobRefVersion)
	w.U8(bulkAESGCM)
	w.U32(r.ChunkSize)
	w.U64(r.Size)
	w.Fixed(r.Key[:])
	w.Fixed(r.Digest[:])
	w.U32(uint32(len(r.Blobs)))
	for _, id := range r.Blobs {
		w.Fixed(id[:])
	}
	return w.Bytes()
}

func unmarshalBlobRef(b []byte) (*blobRef, error) {
	r := wire.NewReader(b)
	r.Version(blobRefVersion)
	ref := &blobRef{}
	alg := r.U8()
	ref.ChunkSize = r.U32()
	ref.Size = r.U64()
	r.FixedInto(ref.Key[:])
	r.FixedInto(ref.Digest[:])
	n := r.Count(maxRefBlobs)
	for i := 0; i < n && r.Err() == nil; i++ {
		var id [16]byte
		r.FixedInto(id[:])
		ref.Blobs = append(ref.Blobs, id)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("blob reference: %w", err)
	}
	switch {
	case alg != bulkAESGCM:
		return nil, fmt.Errorf("blob reference: unknown algorithm %d", alg)
	case ref.ChunkSize < minChunkSize || ref.ChunkSize > maxChunkSize:
		return nil, fmt.Errorf("blob reference: chunk size %d out of range", ref.ChunkSize)
	case ref.Size > maxBulkSize:
		return nil, fmt.Errorf("blob reference: %d bytes, over the limit %d", ref.Size, maxBulkSize)
	case n == 0:
		return nil, errors.New("blob reference: no blobs")
	case uint64(n) > ref.chunks():
		return nil, errors.New("blob reference: more blobs than chunks")
	case ref.sealedSize() > uint64(n)*maxBlobSize:
		return nil, errors.New("blob reference: too few blobs for its size")
	}
	return ref, nil
}

// chunks is the number of chunks: an empty object is one empty final chunk.
func (r *blobRef) chunks() uint64 {
	if r.Size == 0 {
		return 1
	}
	return (r.Size + uint64(r.ChunkSize) - 1) / uint64(r.ChunkSize)
}

// sealedSize is the ciphertext length: the plaintext plus one tag a chunk.
func (r *blobRef) sealedSize() uint64 { return r.Size + bulkTagSize*r.chunks() }

// chunkNonce is 4 zero bytes || u64 chunk index; unique because the key is
// fresh per object.
func chunkNonce(i uint64) []byte {
	n := make([]byte, bulkNonceSize)
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

// chunkAD is label || 0x00 || u64 index || u8 final.
func chunkAD(label string, i uint64, final bool) []byte {
	ad := make([]byte, 0, len(label)+10)
	ad = append(ad, label...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint64(ad, i)
	if final {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// bulkSealer encrypts an object chunk by chunk, blob by blob.
type bulkSealer struct {
	c      BulkCipher
	label  string
	ref    blobRef
	pt     []byte
	next   uint64 // next chunk index
	digest hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newBulkSealer(c BulkCipher, rand io.Reader, label string, pt []byte) (*bulkSealer, error) {
	s := &bulkSealer{c: c, label: label, pt: pt, digest: sha256.New()}
	s.ref.ChunkSize = ChunkSize
	s.ref.Size = uint64(len(pt))
	if _, err := io.ReadFull(rand, s.ref.Key[:]); err != nil {
		return nil, err
	}
	return s, nil
}

// nextBlob seals the next group of chunks, or returns nil when done.
func (s *bulkSealer) nextBlob() ([]byte, error) {
	total := s.ref.chunks()
	if s.next >= total {
		return nil, nil
	}
	end := min(s.next+chunksPerBlob, total)
	out := make([]byte, 0, chunksPerBlob*(ChunkSize+bulkTagSize))
	for ; s.next < end; s.next++ {
		lo := s.next * ChunkSize
		hi := min(lo+ChunkSize, uint64(len(s.pt)))
		final := s.next == total-1
		ct, err := s.c.Seal(s.ref.Key[:], chunkNonce(s.next), s.pt[lo:hi], chunkAD(s.label, s.next, final))
		if err != nil {
			return nil, fmt.Errorf("bulk cipher: %w", err)
		}
		if len(ct) != int(hi-lo)+bulkTagSize {
			return nil, errors.New("bulk cipher: Seal returned the wrong length")
		}
		out = append(out, ct...)
	}
	s.digest.Write(out)
	return out, nil
}

// finish returns the reference once every blob has an id.
func (s *bulkSealer) finish(ids [][16]byte) *blobRef {
	ref := s.ref
	copy(ref.Digest[:], s.digest.Sum(nil))
	ref.Blobs = ids
	return &ref
}

// openBulk checks the whole ciphertext against the reference and decrypts
// it. Any mismatch is ErrTampered.
func openBulk(c BulkCipher, label string, ref *blobRef, sealed []byte) ([]byte, error) {
	if uint64(len(sealed)) != ref.sealedSize() {
		return nil, newError(ErrTampered.Code, nil, "the encrypted file is %d bytes, its reference says %d: refused", len(sealed), ref.sealedSize())
	}
	if sha256.Sum256(sealed) != ref.Digest {
		return nil, newError(ErrTampered.Code, nil, "the encrypted file does not match its digest: refused")
	}
	pt := make([]byte, 0, ref.Size)
	total := ref.chunks()
	step := uint64(ref.ChunkSize) + bulkTagSize
	for i := uint64(0); i < total; i++ {
		lo := i * step
		hi := min(lo+step, uint64(len(sealed)))
		chunk, err := c.Open(ref.Key[:], chunkNonce(i), sealed[lo:hi], chunkAD(label, i, i == total-1))
		if err != nil {
			return nil, newError(ErrTampered.Code, err, "chunk %d of the encrypted file does not authenticate: refused", i)
		}
		pt = append(pt, chunk...)
	}
	return pt, nil
}

// uploadBulk seals pt and stores it in the relay's blob store, reporting
// progress in sealed bytes. It must not be called with e.mu held unless
// the caller accepts that the socket's replies are read by the client's
// own goroutine (they are: relayclient reads independently).
func (e *Engine) uploadBulk(ctx context.Context, conn Conn, label string, pt []byte, progress func(done, total int64)) (*blobRef, error) {
	if len(pt) > maxBulkSize {
		return nil, ErrAttachmentTooLarge
	}
	s, err := newBulkSealer(e.bulk(), e.cfg.Rand, label, pt)
	if err != nil {
		return nil, err
	}
	total := int64(s.ref.sealedSize())
	var done int64
	var ids [][16]byte
	if progress != nil {
		progress(0, total)
	}
	for {
		blob, err := s.nextBlob()
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
	return s.finish(ids), nil
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
func (e *Engine) downloadBulk(ctx context.Context, label string, ref *blobRef, progress func(done, total int64)) ([]byte, error) {
	total := int64(ref.sealedSize())
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
	return goAESGCM{}
}
