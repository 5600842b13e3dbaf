package client

import (
	"encoding/hex"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// TestSyncEncodingsGolden pins the bytes of every state-sync encoding, as
// they are on the wire and in storage.
func TestSyncEncodingsGolden(t *testing.T) {
	dev := identity.DeviceID{0xd1, 2, 3}
	b := &syncBatch{Part: 1, Parts: 3, Entries: []syncEntry{
		{Key: "contact/bob", Clock: hlc{Wall: 1700000000123, Counter: 2, Device: dev}, Value: []byte("Bob")},
		{Key: "muted/bob", Clock: hlc{Wall: 1700000000124, Device: dev}, Value: []byte{1}},
	}}
	clock := wire.NewWriter(0)
	clock.U8(syncVersion)
	b.Entries[0].Clock.encode(clock)
	for _, c := range []struct{ name, got, want string }{
		{"batch", hex.EncodeToString(b.marshal()), "0100010003000000020000000b636f6e746163742f626f620000018bcfe5687b00000002d102030000000000000000000000000000000003426f62000000096d757465642f626f620000018bcfe5687c00000000d10203000000000000000000000000000000000101"},
		{"entry record", hex.EncodeToString(marshalSyncEntryRecord(&b.Entries[0])), "010000018bcfe5687b00000002d102030000000000000000000000000000000003426f62"},
		{"clock record", hex.EncodeToString(clock.Bytes()), "010000018bcfe5687b00000002d1020300000000000000000000000000"},
		{"keyring", hex.EncodeToString((&syncKeyring{Keys: []syncKey{{Epoch: 0, Key: [32]byte{7}}, {Epoch: 3, Key: [32]byte{9, 9}}}}).marshal()), "0102000000000700000000000000000000000000000000000000000000000000000000000000000000030909000000000000000000000000000000000000000000000000000000000000"},
		{"key body", hex.EncodeToString(syncKeyBody(syncKey{Epoch: 5, Key: [32]byte{0xaa}})), "0100000005aa00000000000000000000000000000000000000000000000000000000000000"},
		{"request", hex.EncodeToString(syncRequestBody(dev)), "01d1020300000000000000000000000000"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}
