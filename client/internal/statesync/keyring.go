package statesync

import (
	"fmt"

	"github.com/parley-im/parley/crypto/syncseal"
	"github.com/parley-im/parley/crypto/wire"
)

// Keyring is the device's sync keys by epoch. The current key is always
// the account record's sync key (what a link bundle hands a new
// companion); the ring knows its epoch and keeps older keys so changes
// sealed just before a rotation still open.
type Keyring struct {
	Keys []Key
}

// Key is one sync key and its epoch.
type Key struct {
	Epoch uint32
	Key   [syncseal.KeySize]byte
}

// Marshal encodes k as stored: u8 version ‖ u8 count ‖ (u32 epoch ‖ key[32])*.
func (k *Keyring) Marshal() []byte {
	w := wire.NewWriter(2 + len(k.Keys)*(4+syncseal.KeySize))
	w.U8(Version)
	w.U8(uint8(len(k.Keys)))
	for _, sk := range k.Keys {
		w.U32(sk.Epoch)
		w.Fixed(sk.Key[:])
	}
	return w.Bytes()
}

// ParseKeyring decodes a stored keyring of at most MaxKeys keys.
func ParseKeyring(b []byte) (*Keyring, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	n := int(r.U8())
	if n > MaxKeys {
		r.Fail(fmt.Errorf("%w: %d sync keys", wire.ErrTooLarge, n))
	}
	k := &Keyring{}
	for i := 0; i < n && r.Err() == nil; i++ {
		var sk Key
		sk.Epoch = r.U32()
		r.FixedInto(sk.Key[:])
		k.Keys = append(k.Keys, sk)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("sync keyring: %w", err)
	}
	return k, nil
}

// Find returns the entry of key, nil if the ring does not hold it.
func (k *Keyring) Find(key [syncseal.KeySize]byte) *Key {
	for i := range k.Keys {
		if k.Keys[i].Key == key {
			return &k.Keys[i]
		}
	}
	return nil
}

// ByID returns the key a seal names by its key id, nil if unknown.
func (k *Keyring) ByID(id [syncseal.KeyIDSize]byte) *Key {
	for i := range k.Keys {
		if syncseal.KeyID(k.Keys[i].Key) == id {
			return &k.Keys[i]
		}
	}
	return nil
}

// Add records key at epoch (raising a known key's epoch) and drops the
// oldest keys beyond MaxKeys, never the current one.
func (k *Keyring) Add(epoch uint32, key, current [syncseal.KeySize]byte) {
	if sk := k.Find(key); sk != nil {
		sk.Epoch = max(sk.Epoch, epoch)
	} else {
		k.Keys = append(k.Keys, Key{Epoch: epoch, Key: key})
	}
	for len(k.Keys) > MaxKeys {
		low := -1
		for i, sk := range k.Keys {
			if sk.Key != current && (low < 0 || sk.Epoch < k.Keys[low].Epoch) {
				low = i
			}
		}
		k.Keys = append(k.Keys[:low], k.Keys[low+1:]...)
	}
}

// MarshalKey is the body of a sync key message (the primary to its own
// devices, over the pairwise sessions): u8 version ‖ u32 epoch ‖ key[32].
func MarshalKey(k Key) []byte {
	w := wire.NewWriter(1 + 4 + syncseal.KeySize)
	w.U8(Version)
	w.U32(k.Epoch)
	w.Fixed(k.Key[:])
	return w.Bytes()
}

// ParseKey decodes a sync key message.
func ParseKey(b []byte) (Key, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	var k Key
	k.Epoch = r.U32()
	r.FixedInto(k.Key[:])
	if err := r.Finish(); err != nil {
		return k, fmt.Errorf("sync key: %w", err)
	}
	return k, nil
}
