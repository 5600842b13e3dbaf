// Package bulk seals large objects, attachments and history bundles, for
// the relay's blob store: docs/PROTOCOL.md §14.4 is the specification.
//
// Each object is sealed under a fresh random key, cut into chunks that
// carry their index and a final flag in the associated data, so whoever
// stores them cannot reorder, drop or truncate chunks undetected, and an
// attachment never opens as a history bundle. A Ref (the blob reference)
// names the key, the sizes, the SHA-256 of the sealed bytes and the blobs
// they were stored in; it travels only end-to-end encrypted, so the relay
// that stores the blobs cannot open them.
//
// Most callers want:
//
//   - NewSealer, then Sealer.Next until it returns nil (each call's bytes
//     are one blob to store), then Sealer.Finish with the blob ids, which
//     returns the Ref to send.
//   - UnmarshalRef on a received reference, and Open on the blobs' bytes,
//     concatenated in order: it checks the length and digest, then opens
//     every chunk, and returns nothing unless all of it is genuine.
//
// Keys are never chosen by the caller: NewSealer draws one per object from
// the random source, and it leaves the device only inside the Ref.
package bulk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

const (
	// KeySize, NonceSize and TagSize are AES-256-GCM's.
	KeySize   = 32
	NonceSize = 12
	TagSize   = 16

	// ChunkSize is the plaintext size of every chunk but the last that
	// NewSealer makes: large enough that per-call overhead (a WebCrypto
	// promise) is noise, small enough that progress moves and a chunk is
	// cheap to hold twice.
	ChunkSize = 256 << 10
	// MinChunkSize and MaxChunkSize bound the chunk size a reference may
	// name, so another client may choose differently within them.
	MinChunkSize = 64 << 10
	MaxChunkSize = 1 << 20
	// MaxSize bounds the plaintext of one object: 25 MiB, the largest
	// attachment, held twice (plain and sealed) in a browser tab's memory.
	MaxSize = 25 << 20
)

// Labels of the associated data: an attachment chunk can never be opened
// as a history chunk or the reverse, even under the same key (which never
// happens: keys are fresh per object).
const (
	LabelAttachment = "parley/attachment/v1"
	LabelHistory    = "parley/history/v1"
)

// Cipher is AES-256-GCM (NIST SP 800-38D) with 12-byte nonces and 16-byte
// tags, over whole chunks. It is a seam, not a choice: every
// implementation must be AES-256-GCM, because the sender's and receivers'
// devices may differ. AESGCM is Go's; a browser plugs in WebCrypto's.
type Cipher interface {
	// Seal returns ciphertext||tag of plaintext under key (32 bytes) and
	// nonce (12 bytes), authenticating ad.
	Seal(key, nonce, plaintext, ad []byte) ([]byte, error)
	// Open reverses Seal; it fails if anything was altered.
	Open(key, nonce, ciphertext, ad []byte) ([]byte, error)
}

// AESGCM is the Cipher of Go's crypto/aes.
type AESGCM struct{}

func newGCM(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != KeySize || len(nonce) != NonceSize {
		return nil, errors.New("bulk cipher: bad key or nonce size")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (AESGCM) Seal(key, nonce, plaintext, ad []byte) ([]byte, error) {
	g, err := newGCM(key, nonce)
	if err != nil {
		return nil, err
	}
	return g.Seal(nil, nonce, plaintext, ad), nil
}

func (AESGCM) Open(key, nonce, ciphertext, ad []byte) ([]byte, error) {
	g, err := newGCM(key, nonce)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, nonce, ciphertext, ad)
}

// chunkNonce is 4 zero bytes || u64 chunk index; unique because the key is
// fresh per object.
func chunkNonce(i uint64) []byte {
	n := make([]byte, NonceSize)
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

// Sealer seals one object chunk by chunk, a group of chunks (a blob) at a
// time.
type Sealer struct {
	c      Cipher
	label  string
	ref    Ref
	pt     []byte
	next   uint64 // next chunk index
	digest hash.Hash
}

// NewSealer starts sealing plaintext (at most MaxSize bytes) under label,
// with a key read from rand. It keeps plaintext until the last Next.
func NewSealer(c Cipher, rand io.Reader, label string, plaintext []byte) (*Sealer, error) {
	if len(plaintext) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxSize)
	}
	s := &Sealer{c: c, label: label, pt: plaintext, digest: sha256.New()}
	s.ref.ChunkSize = ChunkSize
	s.ref.Size = uint64(len(plaintext))
	if _, err := io.ReadFull(rand, s.ref.Key[:]); err != nil {
		return nil, err
	}
	return s, nil
}

// SealedSize is the length of the whole sealed object.
func (s *Sealer) SealedSize() uint64 { return s.ref.SealedSize() }

// Next seals the next chunks, at most n (at least 1) of them, and returns
// them concatenated, or nil once every chunk is sealed. An empty object is
// one empty chunk, so the first call always returns bytes.
func (s *Sealer) Next(n int) ([]byte, error) {
	total := s.ref.Chunks()
	if s.next >= total {
		return nil, nil
	}
	end := min(s.next+uint64(max(n, 1)), total)
	out := make([]byte, 0, (end-s.next)*(ChunkSize+TagSize))
	for ; s.next < end; s.next++ {
		lo := s.next * ChunkSize
		hi := min(lo+ChunkSize, uint64(len(s.pt)))
		final := s.next == total-1
		ct, err := s.c.Seal(s.ref.Key[:], chunkNonce(s.next), s.pt[lo:hi], chunkAD(s.label, s.next, final))
		if err != nil {
			return nil, fmt.Errorf("bulk cipher: %w", err)
		}
		if len(ct) != int(hi-lo)+TagSize {
			return nil, errors.New("bulk cipher: Seal returned the wrong length")
		}
		out = append(out, ct...)
	}
	s.digest.Write(out)
	return out, nil
}

// Finish returns the reference once Next has returned nil and every blob
// it returned has an id, in order.
func (s *Sealer) Finish(blobs [][16]byte) *Ref {
	ref := s.ref
	copy(ref.Digest[:], s.digest.Sum(nil))
	ref.Blobs = blobs
	return &ref
}

// Open checks sealed, the object's blobs concatenated in order, against
// ref and decrypts it under label. It fails with ErrLength or ErrDigest
// before decrypting anything, or with a *ChunkError (matching ErrAuth) for
// the first chunk that does not open; it never returns part of an object.
func Open(c Cipher, label string, ref *Ref, sealed []byte) ([]byte, error) {
	if uint64(len(sealed)) != ref.SealedSize() {
		return nil, fmt.Errorf("%w: %d bytes, its reference says %d", ErrLength, len(sealed), ref.SealedSize())
	}
	if sha256.Sum256(sealed) != ref.Digest {
		return nil, ErrDigest
	}
	pt := make([]byte, 0, ref.Size)
	total := ref.Chunks()
	step := uint64(ref.ChunkSize) + TagSize
	for i := uint64(0); i < total; i++ {
		lo := i * step
		hi := min(lo+step, uint64(len(sealed)))
		chunk, err := c.Open(ref.Key[:], chunkNonce(i), sealed[lo:hi], chunkAD(label, i, i == total-1))
		if err != nil {
			return nil, &ChunkError{Index: i, Err: err}
		}
		pt = append(pt, chunk...)
	}
	return pt, nil
}
