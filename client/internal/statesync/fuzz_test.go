package statesync

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
)

// Every decoder here never panics, and what it accepts encodes back to the
// same bytes (one encoding per value).

func FuzzBatch(f *testing.F) {
	f.Add((&Batch{Parts: 1, Entries: []Entry{{Key: "contact/bob", Value: []byte("Bob")}}}).Marshal())
	f.Add((&Batch{Part: 1, Parts: 2}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseBatch(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("not canonical")
		}
		for _, en := range s.Entries {
			_ = testSchema.Check(en.Key, en.Value)
		}
	})
}

func FuzzKeyring(f *testing.F) {
	f.Add((&Keyring{Keys: []Key{{Epoch: 1}, {Epoch: 2}}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKeyring(b)
		if err == nil && !bytes.Equal(k.Marshal(), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzEntryRecord(f *testing.F) {
	f.Add(MarshalEntryRecord(&Entry{Key: "muted/bob", Value: []byte{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		en, err := ParseEntryRecord("k", b)
		if err == nil && !bytes.Equal(MarshalEntryRecord(en), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzClockRecord(f *testing.F) {
	f.Add(MarshalClockRecord(Clock{Wall: 1700000000000, Counter: 3, Device: identity.DeviceID{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseClockRecord(b); err == nil && !bytes.Equal(MarshalClockRecord(c), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add(MarshalRequest(identity.DeviceID{1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := ParseRequest(b); err == nil && !bytes.Equal(MarshalRequest(id), b) {
			t.Fatal("not canonical")
		}
	})
}

func FuzzKeyBody(f *testing.F) {
	f.Add(MarshalKey(Key{Epoch: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseKey(b); err == nil && !bytes.Equal(MarshalKey(k), b) {
			t.Fatal("not canonical")
		}
	})
}
