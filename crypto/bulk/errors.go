package bulk

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// Errors of UnmarshalRef, beside crypto/wire's decoding errors.
var (
	ErrAlgorithm = errors.New("bulk: unknown algorithm")
	ErrChunkSize = errors.New("bulk: chunk size out of range")
	ErrBlobCount = errors.New("bulk: blob count does not fit the object")
	// ErrTooLarge is an object over MaxSize (from NewSealer too); it
	// matches wire.ErrTooLarge, a field over its limit.
	ErrTooLarge = fmt.Errorf("bulk: object over the size limit: %w", wire.ErrTooLarge)
)

// Errors of Open: the sealed object is not the one its reference names.
var (
	ErrLength = errors.New("bulk: sealed object has the wrong length")
	ErrDigest = errors.New("bulk: sealed object does not match its digest")
	// ErrAuth is matched by every *ChunkError.
	ErrAuth = errors.New("bulk: chunk does not authenticate")
)

// ChunkError names the chunk that did not open and wraps the Cipher's
// error; errors.Is(err, ErrAuth) holds for it.
type ChunkError struct {
	Index uint64
	Err   error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("bulk: chunk %d does not authenticate: %v", e.Index, e.Err)
}

func (e *ChunkError) Is(target error) bool { return target == ErrAuth }
func (e *ChunkError) Unwrap() error        { return e.Err }
