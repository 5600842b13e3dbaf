package statesync

import (
	"encoding/hex"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
)

// TestEncodingsGolden pins the bytes of every state-sync encoding, as they
// are on the wire and in storage (written by the engine's code before it
// moved here).
func TestEncodingsGolden(t *testing.T) {
	dev := identity.DeviceID{0xd1, 2, 3}
	b := &Batch{Part: 1, Parts: 3, Entries: []Entry{
		{Key: "contact/bob", Clock: Clock{Wall: 1700000000123, Counter: 2, Device: dev}, Value: []byte("Bob")},
		{Key: "muted/bob", Clock: Clock{Wall: 1700000000124, Device: dev}, Value: []byte{1}},
	}}
	for _, c := range []struct{ name, got, want string }{
		{"batch", hex.EncodeToString(b.Marshal()), "0100010003000000020000000b636f6e746163742f626f620000018bcfe5687b00000002d102030000000000000000000000000000000003426f62000000096d757465642f626f620000018bcfe5687c00000000d10203000000000000000000000000000000000101"},
		{"entry record", hex.EncodeToString(MarshalEntryRecord(&b.Entries[0])), "010000018bcfe5687b00000002d102030000000000000000000000000000000003426f62"},
		{"clock record", hex.EncodeToString(MarshalClockRecord(b.Entries[0].Clock)), "010000018bcfe5687b00000002d1020300000000000000000000000000"},
		{"keyring", hex.EncodeToString((&Keyring{Keys: []Key{{Epoch: 0, Key: [32]byte{7}}, {Epoch: 3, Key: [32]byte{9, 9}}}}).Marshal()), "0102000000000700000000000000000000000000000000000000000000000000000000000000000000030909000000000000000000000000000000000000000000000000000000000000"},
		{"key body", hex.EncodeToString(MarshalKey(Key{Epoch: 5, Key: [32]byte{0xaa}})), "0100000005aa00000000000000000000000000000000000000000000000000000000000000"},
		{"request", hex.EncodeToString(MarshalRequest(dev)), "01d1020300000000000000000000000000"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}
