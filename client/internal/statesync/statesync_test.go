package statesync

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/syncseal"
	"github.com/parley-im/parley/crypto/wire"
)

func TestClock(t *testing.T) {
	a, b := identity.DeviceID{1}, identity.DeviceID{2}
	c := Clock{}.Tick(100, a)
	if c.Wall != 100 || c.Counter != 0 {
		t.Fatal(c)
	}
	c2 := c.Tick(90, a) // wall clock went back
	if c2.Compare(c) <= 0 || c2.Wall != 100 || c2.Counter != 1 {
		t.Fatal(c2)
	}
	// Observing a remote clock ahead of ours orders our next event after it.
	r := Clock{Wall: 500, Counter: 3, Device: b}
	c3 := c2.Observe(r, 100).Tick(100, a)
	if c3.Compare(r) <= 0 {
		t.Fatalf("%v not after %v", c3, r)
	}
	// A remote clock a year ahead does not drag ours along.
	far := Clock{Wall: 100 + 365*24*3600*1000, Device: b}
	if got := c2.Observe(far, 100); got != c2 {
		t.Fatalf("followed a clock far ahead: %v", got)
	}
	// Same wall and counter: the device id decides, the same way everywhere.
	x, y := Clock{Wall: 1, Device: a}, Clock{Wall: 1, Device: b}
	if x.Compare(y) >= 0 || y.Compare(x) <= 0 || x.Compare(x) != 0 {
		t.Fatal("device tiebreak")
	}
}

// testSchema stands in for the engine's name rules.
var testSchema = Schema{
	IsHandle:      func(s string) bool { return s != "" && !strings.ContainsAny(s, "/ ") },
	IsChat:        func(s string) bool { return s != "" },
	IsSettingName: func(s string) bool { return s != "" && len(s) <= MaxSettingNameLen },
}

func TestSchema(t *testing.T) {
	for _, c := range []struct {
		key   string
		value string
		want  error
	}{
		{"contact/bob", "Bob", nil},
		{"contact/bob", "", nil},
		{"contact/b b", "Bob", ErrContactKey},
		{"contact/bob", strings.Repeat("x", MaxContactNameLen+1), ErrContactName},
		{"contact/bob", "\xff", ErrContactName},
		{"read/bob", "12345678", nil},
		{"read/bob", "1234", ErrReadMarker},
		{"read/", "12345678", ErrReadMarker},
		{"archived/bob", "\x01", nil},
		{"muted/bob", "\x00", nil},
		{"muted/bob", "\x02", ErrChatFlag},
		{"archived/bob", "", ErrChatFlag},
		{"setting/theme", "dark", nil},
		{"setting/", "dark", ErrSettingName},
		{"setting/theme", strings.Repeat("x", MaxSettingValueLen+1), ErrSettingValue},
		{"pinned/bob", "\x01", ErrNamespace},
	} {
		if err := testSchema.Check(c.key, []byte(c.value)); !errors.Is(err, c.want) {
			t.Errorf("%q = %q: %v, want %v", c.key, c.value, err, c.want)
		}
	}
}

func TestBatchParts(t *testing.T) {
	for _, b := range []*Batch{{Parts: 0}, {Part: 2, Parts: 2}} {
		_, err := ParseBatch(b.Marshal())
		if !errors.Is(err, ErrParts) || err.Error() != fmt.Sprintf("sync batch: part %d of %d", b.Part, b.Parts) {
			t.Errorf("part %d of %d: %v", b.Part, b.Parts, err)
		}
	}
	if _, err := ParseBatch((&Batch{Part: 1, Parts: 2}).Marshal()); err != nil {
		t.Fatal(err)
	}
	big := &Batch{Parts: 1, Entries: make([]Entry, MaxEntries+1)}
	if _, err := ParseBatch(big.Marshal()); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("%d entries: %v", len(big.Entries), err)
	}
}

// TestKeyringAdd: a known key's epoch only rises; beyond MaxKeys the
// oldest go, never the current one; keys are found by their seal key id.
func TestKeyringAdd(t *testing.T) {
	key := func(i byte) (k [syncseal.KeySize]byte) {
		k[0] = i
		return k
	}
	var ring Keyring
	current := key(0)
	ring.Add(5, current, current)
	ring.Add(2, current, current)
	if ring.Find(current).Epoch != 5 {
		t.Fatal("an epoch went down")
	}
	for i := 1; i <= MaxKeys+2; i++ {
		ring.Add(uint32(i), key(byte(i)), current)
	}
	if len(ring.Keys) != MaxKeys || ring.Find(current) == nil || ring.Find(key(1)) != nil || ring.Find(key(MaxKeys+2)) == nil {
		t.Fatalf("%+v", ring.Keys)
	}
	if k := ring.ByID(syncseal.KeyID(key(MaxKeys + 2))); k == nil || k.Epoch != MaxKeys+2 {
		t.Fatalf("by id: %+v", k)
	}
	if ring.ByID([syncseal.KeyIDSize]byte{}) != nil {
		t.Fatal("found an unknown key id")
	}
	again, err := ParseKeyring(ring.Marshal())
	if err != nil || len(again.Keys) != MaxKeys {
		t.Fatal(err)
	}
	tooMany := Keyring{Keys: make([]Key, MaxKeys+1)}
	if _, err := ParseKeyring(tooMany.Marshal()); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("%d keys: %v", len(tooMany.Keys), err)
	}
}

// TestPartFitsSeal: a snapshot part cut at MaxPartPlain, plus the entry
// that crosses it, is within what a seal carries.
func TestPartFitsSeal(t *testing.T) {
	worst := Entry{Key: strings.Repeat("k", MaxKeyLen), Value: make([]byte, MaxValueLen)}
	if 16+MaxPartPlain+worst.Size() > syncseal.MaxPlaintext {
		t.Fatalf("a part may be %d bytes, the seal takes %d", 16+MaxPartPlain+worst.Size(), syncseal.MaxPlaintext)
	}
}
