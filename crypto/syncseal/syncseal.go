// Package syncseal is the state-sync seal: the second layer of encryption,
// under the account's state-sync key, that every state-sync change and
// snapshot part carries inside the pairwise ratchet (docs/PROTOCOL.md
// §14.5). The ratchet already protects each copy in transit; the seal is
// what makes a change unreadable to a device the primary has revoked, since
// the key rotates on every revocation and the removed device never gets
// the new one.
//
// Most callers want:
//
//   - Seal, which encrypts one batch (opaque bytes here) under a sync key
//     and labels it with the key's epoch and KeyID.
//   - Parse, then Sealed.Open with the key whose KeyID matches
//     Sealed.KeyID. Keys are found by id, never by epoch: the epoch only
//     orders rotations.
//
// Keys: the sync key is 32 random bytes the primary makes (and remakes on
// each revocation) and hands to companions in the link bundle; the seal key
// and the key id are derived from it with HKDF, so the id names a key
// without revealing it. Keep older keys for a while after a rotation, so
// that changes sealed just before it still open.
//
// Every failure is a sentinel callers can test with errors.Is: the wire
// errors of crypto/wire for decoding, ErrUnknownKind, and ErrDecrypt.
package syncseal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parley-im/parley/crypto/wire"
)

// The sealed format (PROTOCOL.md §14.5):
//
//	u8 version ‖ u8 kind ‖ u32 epoch ‖ key id[8] ‖ nonce[24] ‖ var ciphertext
//
// with XChaCha20-Poly1305 under HKDF(sync key, "parley/v1/sync/seal"), a
// random nonce, and "parley/v1/sync" ‖ the header (everything before the
// ciphertext) as associated data, so the kind, epoch and key id are
// authenticated too.
const (
	// Version is the format version, the first byte.
	Version = 1
	// KindMutation and KindSnapshot are the payload kinds a seal carries
	// (a change, one part of a snapshot); the receiver refuses a seal whose
	// kind differs from the payload's.
	KindMutation = 16
	KindSnapshot = 17
	// KeySize is the size of a sync key (link.SyncKeySize, what a link
	// bundle carries).
	KeySize = 32
	// KeyIDSize is the size of the key id in the header.
	KeyIDSize = 8
	// NonceSize is XChaCha20's: long enough to be chosen at random.
	NonceSize = chacha20poly1305.NonceSizeX
	// HeaderSize is the authenticated header before the ciphertext.
	HeaderSize = 1 + 1 + 4 + KeyIDSize + NonceSize
	// MaxPlaintext bounds a sealed batch: a snapshot part's 48 KiB budget
	// plus room for the entry that crosses it and the batch's own header.
	MaxPlaintext = 48<<10 + 2*1024
	// MaxCiphertext is MaxPlaintext sealed; Parse refuses longer ones
	// before reading them.
	MaxCiphertext = MaxPlaintext + chacha20poly1305.Overhead
)

// HKDF infos and the associated data's prefix.
const (
	sealInfo  = "parley/v1/sync/seal"
	keyIDInfo = "parley/v1/sync/key-id"
	adPrefix  = "parley/v1/sync"
)

// Errors besides crypto/wire's decoding errors.
var (
	// ErrUnknownKind: the seal is well formed but carries neither
	// KindMutation nor KindSnapshot.
	ErrUnknownKind = errors.New("sealed sync: unknown kind")
	// ErrDecrypt: the seal does not open under the key given (another key,
	// or any byte of header or ciphertext changed).
	ErrDecrypt = errors.New("sealed sync: does not open under the sync key")
)

// kindError names the unknown kind; it is ErrUnknownKind.
type kindError uint8

func (k kindError) Error() string { return fmt.Sprintf("sealed sync: kind %d", uint8(k)) }
func (kindError) Unwrap() error   { return ErrUnknownKind }

// Sealed is a parsed seal, not yet opened.
type Sealed struct {
	Kind       uint8
	Epoch      uint32
	KeyID      [KeyIDSize]byte
	Nonce      [NonceSize]byte
	Ciphertext []byte
	header     []byte
}

func sealKey(key [KeySize]byte) []byte {
	k, err := hkdf.Key(sha256.New, key[:], nil, sealInfo, chacha20poly1305.KeySize)
	if err != nil {
		panic(err) // only for lengths hkdf cannot produce
	}
	return k
}

// KeyID names key in a header without revealing it:
// HKDF-SHA256(key, "parley/v1/sync/key-id")[:8].
func KeyID(key [KeySize]byte) [KeyIDSize]byte {
	k, err := hkdf.Key(sha256.New, key[:], nil, keyIDInfo, KeyIDSize)
	if err != nil {
		panic(err)
	}
	var id [KeyIDSize]byte
	copy(id[:], k)
	return id
}

func associatedData(header []byte) []byte {
	return append([]byte(adPrefix), header...)
}

// Seal encrypts plain (a batch) as kind at epoch under key, with a nonce
// read from rand.
func Seal(rand io.Reader, kind uint8, epoch uint32, key [KeySize]byte, plain []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(sealKey(key))
	if err != nil {
		return nil, err
	}
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return nil, err
	}
	id := KeyID(key)
	w := wire.NewWriter(HeaderSize + 4 + len(plain) + aead.Overhead())
	w.U8(Version)
	w.U8(kind)
	w.U32(epoch)
	w.Fixed(id[:])
	w.Fixed(nonce[:])
	header := w.Bytes()
	ct := aead.Seal(nil, nonce[:], plain, associatedData(header))
	w.Var(ct)
	return w.Bytes(), nil
}

// Parse decodes a seal without opening it: the caller then picks the key
// by s.KeyID.
func Parse(b []byte) (*Sealed, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	s := &Sealed{Kind: r.U8(), Epoch: r.U32()}
	r.FixedInto(s.KeyID[:])
	r.FixedInto(s.Nonce[:])
	s.Ciphertext = r.Var(MaxCiphertext)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("sealed sync: %w", err)
	}
	if s.Kind != KindMutation && s.Kind != KindSnapshot {
		return nil, kindError(s.Kind)
	}
	s.header = b[:HeaderSize]
	return s, nil
}

// Open decrypts s with key, the one whose KeyID is s.KeyID.
func (s *Sealed) Open(key [KeySize]byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(sealKey(key))
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, s.Nonce[:], s.Ciphertext, associatedData(s.header))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
