package bulk

import (
	"crypto/sha256"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

const (
	// RefVersion is the format version of an encoded Ref.
	RefVersion = 1
	// algAESGCM is the only algorithm of version 1 references.
	algAESGCM = 1
	// MaxRefBlobs bounds the blob ids in one reference: enough for MaxSize
	// at the smallest blob a sender could sensibly use (1 MiB).
	MaxRefBlobs = MaxSize/(1<<20) + 1
	// MaxRefLen bounds an encoded reference (498 bytes).
	MaxRefLen = 1 + 1 + 4 + 8 + KeySize + sha256.Size + 4 + 16*MaxRefBlobs
)

// Ref is a blob reference (§14.4): what a receiver needs to fetch, check
// and open one sealed object.
type Ref struct {
	ChunkSize uint32
	Size      uint64 // plaintext bytes
	Key       [KeySize]byte
	Digest    [sha256.Size]byte // SHA-256 of the sealed object, blobs in order
	Blobs     [][16]byte
}

// Marshal encodes r:
//
//	u8 1 || u8 alg (1 = AES-256-GCM) || u32 chunk_size || u64 size ||
//	key (32) || digest (32) || u32 count || blob ids (16 each)
func (r *Ref) Marshal() []byte {
	w := wire.NewWriter(MaxRefLen)
	w.U8(RefVersion)
	w.U8(algAESGCM)
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

// UnmarshalRef decodes a reference and refuses what §14.4 says a decoder
// must: an unknown algorithm (ErrAlgorithm), a chunk size out of range
// (ErrChunkSize), a size over MaxSize (ErrTooLarge), and a blob count that
// cannot be right (ErrBlobCount): none, more than chunks, or fewer than
// the sealed size needs at maxBlob bytes a blob. maxBlob is the largest
// blob the relay stores (its MaxBlob): a transport limit, so the caller
// names it.
func UnmarshalRef(b []byte, maxBlob uint64) (*Ref, error) {
	r := wire.NewReader(b)
	r.Version(RefVersion)
	ref := &Ref{}
	alg := r.U8()
	ref.ChunkSize = r.U32()
	ref.Size = r.U64()
	r.FixedInto(ref.Key[:])
	r.FixedInto(ref.Digest[:])
	n := r.Count(MaxRefBlobs)
	for i := 0; i < n && r.Err() == nil; i++ {
		var id [16]byte
		r.FixedInto(id[:])
		ref.Blobs = append(ref.Blobs, id)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("bulk: blob reference: %w", err)
	}
	switch {
	case alg != algAESGCM:
		return nil, fmt.Errorf("%w %d", ErrAlgorithm, alg)
	case ref.ChunkSize < MinChunkSize || ref.ChunkSize > MaxChunkSize:
		return nil, fmt.Errorf("%w: %d", ErrChunkSize, ref.ChunkSize)
	case ref.Size > MaxSize:
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, ref.Size, MaxSize)
	case n == 0:
		return nil, fmt.Errorf("%w: no blobs", ErrBlobCount)
	case uint64(n) > ref.Chunks():
		return nil, fmt.Errorf("%w: %d blobs for %d chunks", ErrBlobCount, n, ref.Chunks())
	case ref.SealedSize() > uint64(n)*maxBlob:
		return nil, fmt.Errorf("%w: %d blobs cannot hold %d sealed bytes", ErrBlobCount, n, ref.SealedSize())
	}
	return ref, nil
}

// Chunks is the number of chunks: an empty object is one empty final chunk.
func (r *Ref) Chunks() uint64 {
	if r.Size == 0 {
		return 1
	}
	return (r.Size + uint64(r.ChunkSize) - 1) / uint64(r.ChunkSize)
}

// SealedSize is the ciphertext length: the plaintext plus one tag a chunk.
func (r *Ref) SealedSize() uint64 { return r.Size + TagSize*r.Chunks() }
