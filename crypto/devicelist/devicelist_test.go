package devicelist

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

var t0 = time.Unix(1_780_000_000, 0)

// fixtureHandle is the handle the fixtures' lists are published under.
const fixtureHandle = "alice"

type fixture struct {
	account *identity.Account
	devices []*identity.Device
	list    *List
	enc     []byte
}

// newFixture builds a signed list of n devices (device 0 primary) from seed.
func newFixture(t testing.TB, seed string, n int) *fixture {
	t.Helper()
	r := newDetRand(seed)
	a, err := identity.NewAccount(r)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{account: a}
	l := &List{Account: a.Public(), Handle: fixtureHandle, Version: 1, Timestamp: uint64(t0.Unix())}
	for i := 0; i < n; i++ {
		d, err := identity.NewDevice(r)
		if err != nil {
			t.Fatal(err)
		}
		f.devices = append(f.devices, d)
		l.Entries = append(l.Entries, Entry{
			Device: d.Public(), Name: []string{"phone", "laptop browser", "work browser"}[i%3],
			Added: uint64(t0.Unix()) - 100, Attested: uint64(t0.Unix()), Primary: i == 0,
			DeviceSig: DeviceSignature(d, a.Public()),
		})
	}
	f.list = l
	f.enc, err = Sign(a, l)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSignVerify(t *testing.T) {
	f := newFixture(t, "list", 3)
	l, err := Verify(f.account.Public(), fixtureHandle, f.enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 || l.Version != 1 || l.Primary() == nil || l.Primary().Device.ID != f.devices[0].ID {
		t.Fatalf("bad list %+v", l)
	}
	if e := l.Find(f.devices[2].ID); e == nil || !e.Device.Equal(f.devices[2].Public()) {
		t.Fatal("Find failed")
	}
	if l.Find(identity.DeviceID{1}) != nil {
		t.Fatal("Find found a stranger")
	}
	if k, err := PeekAccount(f.enc); err != nil || !k.Equal(f.account.Public()) {
		t.Fatal("PeekAccount", err)
	}
	// Re-encoding a verified list gives the same bytes.
	if string(encodeBody(l)) != string(f.enc[:len(f.enc)-64]) {
		t.Fatal("re-encoding differs")
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t, "list", 3)
	other, _ := identity.NewAccount(newDetRand("other"))

	resign := func(l *List) []byte {
		body := encodeBody(l)
		return append(body, f.account.Sign(identity.PurposeDeviceList, body)...)
	}

	t.Run("bad signature", func(t *testing.T) {
		enc := append([]byte(nil), f.enc...)
		enc[len(enc)-1] ^= 1
		if _, err := Verify(f.account.Public(), fixtureHandle, enc); !errors.Is(err, ErrBadSignature) {
			t.Fatal(err)
		}
		enc = append([]byte(nil), f.enc...)
		enc[1+32+4+len(fixtureHandle)+7] ^= 1 // inside the version field
		if _, err := Verify(f.account.Public(), fixtureHandle, enc); !errors.Is(err, ErrBadSignature) {
			t.Fatal(err)
		}
	})
	t.Run("wrong account", func(t *testing.T) {
		if _, err := Verify(other.Public(), fixtureHandle, f.enc); !errors.Is(err, ErrWrongAccount) {
			t.Fatal(err)
		}
	})
	t.Run("missing account signature", func(t *testing.T) {
		l := f.list.Clone()
		l.Entries[1].AccountSig = nil
		if _, err := Verify(f.account.Public(), fixtureHandle, resign(l)); !errors.Is(err, ErrAccountSignature) {
			t.Fatal(err)
		}
	})
	t.Run("account signature from another entry", func(t *testing.T) {
		l := f.list.Clone()
		l.Entries[1].AccountSig = l.Entries[2].AccountSig
		if _, err := Verify(f.account.Public(), fixtureHandle, resign(l)); !errors.Is(err, ErrAccountSignature) {
			t.Fatal(err)
		}
	})
	t.Run("device signed other account", func(t *testing.T) {
		l := f.list.Clone()
		l.Entries[2].DeviceSig = DeviceSignature(f.devices[2], other.Public())
		l.Entries[2].AccountSig = f.account.Sign(identity.PurposeAccountSignsDevice, entryStatement(l.Account, &l.Entries[2]))
		if _, err := Verify(f.account.Public(), fixtureHandle, resign(l)); !errors.Is(err, ErrDeviceSignature) {
			t.Fatal(err)
		}
		if _, err := Sign(f.account, l); !errors.Is(err, ErrDeviceSignature) {
			t.Fatal("Sign accepted it:", err)
		}
	})
	t.Run("duplicate device", func(t *testing.T) {
		l := f.list.Clone()
		l.Entries = append(l.Entries, l.Entries[1])
		l.Entries[3].Primary = false
		if _, err := Sign(f.account, l); !errors.Is(err, ErrDuplicateDevice) {
			t.Fatal(err)
		}
		if _, err := Verify(f.account.Public(), fixtureHandle, resign(l)); !errors.Is(err, ErrDuplicateDevice) {
			t.Fatal(err)
		}
		// Same keys under a different id.
		l = f.list.Clone()
		e := l.Entries[1]
		e.Device.ID[0] ^= 1
		l.Entries = append(l.Entries, e)
		if _, err := Verify(f.account.Public(), fixtureHandle, resign(l)); !errors.Is(err, ErrDuplicateDevice) {
			t.Fatal(err)
		}
	})
	t.Run("over limit", func(t *testing.T) {
		g := newFixture(t, "big", MaxDevices)
		if _, err := Verify(g.account.Public(), fixtureHandle, g.enc); err != nil {
			t.Fatal("full list refused:", err)
		}
		l := g.list.Clone()
		d, _ := identity.NewDevice(newDetRand("one more"))
		l.Entries = append(l.Entries, Entry{Device: d.Public(), DeviceSig: DeviceSignature(d, l.Account), Added: l.Timestamp, Attested: l.Timestamp})
		if _, err := Sign(g.account, l); !errors.Is(err, ErrTooManyDevices) {
			t.Fatal(err)
		}
		body := encodeBody(l)
		enc := append(body, g.account.Sign(identity.PurposeDeviceList, body)...)
		if _, err := Verify(g.account.Public(), fixtureHandle, enc); !errors.Is(err, ErrTooManyDevices) {
			t.Fatal(err)
		}
	})
	t.Run("primary count", func(t *testing.T) {
		l := f.list.Clone()
		l.Entries[1].Primary = true
		if _, err := Sign(f.account, l); !errors.Is(err, ErrPrimary) {
			t.Fatal(err)
		}
		l.Entries[1].Primary, l.Entries[0].Primary = false, false
		if _, err := Sign(f.account, l); !errors.Is(err, ErrPrimary) {
			t.Fatal(err)
		}
	})
	t.Run("bad name", func(t *testing.T) {
		for _, name := range []string{strings.Repeat("x", MaxNameLen+1), "bad\nname", "\xff"} {
			l := f.list.Clone()
			l.Entries[1].Name = name
			if _, err := Sign(f.account, l); !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("%q: %v", name, err)
			}
		}
	})
	t.Run("trailing data", func(t *testing.T) {
		if _, err := Verify(f.account.Public(), fixtureHandle, append(append([]byte(nil), f.enc...), 0)); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		enc := append([]byte(nil), f.enc...)
		enc[0] = 3
		if _, err := Verify(f.account.Public(), fixtureHandle, enc); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func TestCheckUpdate(t *testing.T) {
	f := newFixture(t, "list", 2)
	cur, _ := Verify(f.account.Public(), fixtureHandle, f.enc)
	next, enc, err := Reattest(f.account, cur, fixtureHandle, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nv, err := Verify(f.account.Public(), fixtureHandle, enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckUpdate(cur, nv); err != nil {
		t.Fatal(err)
	}
	if nv.Version != 2 || nv.Entries[1].Attested != uint64(t0.Add(time.Hour).Unix()) || next.Version != 2 {
		t.Fatalf("reattest: %+v", nv)
	}
	if cur.Version != 1 {
		t.Fatal("Reattest modified prev")
	}
	if err := CheckUpdate(nv, cur); !errors.Is(err, ErrRollback) {
		t.Fatal(err)
	}
	if err := CheckUpdate(nv, nv); !errors.Is(err, ErrRollback) {
		t.Fatal(err)
	}
	g := newFixture(t, "other", 1)
	if err := CheckUpdate(cur, g.list); !errors.Is(err, ErrWrongAccount) {
		t.Fatal(err)
	}
}

func TestAttestationExpiry(t *testing.T) {
	f := newFixture(t, "list", 3)
	l, _ := Verify(f.account.Public(), fixtureHandle, f.enc)
	maxAge := 30 * 24 * time.Hour
	if err := CheckAttestation(&l.Entries[1], t0.Add(maxAge), maxAge); err != nil {
		t.Fatal(err)
	}
	if err := CheckAttestation(&l.Entries[1], t0.Add(maxAge+time.Second), maxAge); !errors.Is(err, ErrAttestationExpired) {
		t.Fatal(err)
	}
	later := t0.Add(maxAge + time.Hour)
	if exp := l.Expired(later, maxAge); len(exp) != 2 {
		t.Fatalf("expired %v", exp)
	}
	// Re-attest only device 1: device 2 stays expired.
	l2, _, err := Reattest(f.account, l, fixtureHandle, later, f.devices[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if exp := l2.Expired(later, maxAge); len(exp) != 1 || exp[0] != f.devices[2].ID {
		t.Fatalf("expired after reattest %v", exp)
	}
}

func TestDeviceSignatureBinding(t *testing.T) {
	f := newFixture(t, "list", 2)
	d := f.devices[1]
	sig := DeviceSignature(d, f.account.Public())
	if err := VerifyDeviceSignature(f.account.Public(), d.Public(), sig); err != nil {
		t.Fatal(err)
	}
	other := f.devices[0].Public()
	if err := VerifyDeviceSignature(f.account.Public(), other, sig); !errors.Is(err, ErrDeviceSignature) {
		t.Fatal(err)
	}
}

// BenchmarkVerify5 verifies a 5-device list: 11 Ed25519 verifications.
func BenchmarkVerify5(b *testing.B) {
	f := newFixture(b, "bench", 5)
	for b.Loop() {
		if _, err := Verify(f.account.Public(), fixtureHandle, f.enc); err != nil {
			b.Fatal(err)
		}
	}
}
