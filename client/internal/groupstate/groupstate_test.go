package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
)

// device is a test device whose keys follow from n.
func device(t testing.TB, n byte) *identity.Device {
	t.Helper()
	d, err := identity.NewDevice(bytes.NewReader(bytes.Repeat([]byte{n}, 80)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// bound makes g a group bound to a test account of handle (Bind).
func bound(g *State, handle string) *State {
	g.Bind(handle, ed25519.PublicKey(bytes.Repeat([]byte{7}, ed25519.PublicKeySize)), [NonceSize]byte{1})
	return g
}

func adminOf(handle string, d *identity.Device) Admin {
	return Admin{Handle: handle, Device: d.ID, Key: d.Public().SignPub}
}

// TestStateForm: the decoder takes what Sign makes and refuses what would
// make membership ambiguous; Verify takes only an admin's signature.
func TestStateForm(t *testing.T) {
	admin, _ := identity.NewDevice(nil)
	other, _ := identity.NewDevice(nil)
	g := bound(&State{Version: 3, Name: "g", Members: []string{"alice", "bob"},
		Admins: []Admin{{Handle: "alice", Device: admin.ID, Key: admin.Public().SignPub}}}, "alice")
	g.Sign(admin)
	got, err := Parse(g.raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.Verify(g.Admins); err != nil {
		t.Fatal(err)
	}
	// Another device signing in the admin's name.
	bad := *got
	bad.Sig = other.Sign(Purpose, got.raw[:len(got.raw)-64])
	bad.raw = append(bytes.Clone(got.raw[:len(got.raw)-64]), bad.Sig...)
	if _, err := bad.Verify(g.Admins); !errors.Is(err, ErrBadSignature) || !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	// An authority without the signer.
	if _, err := got.Verify([]Admin{{Handle: "bob", Device: other.ID, Key: other.Public().SignPub}}); !errors.Is(err, ErrNotAuthority) {
		t.Fatalf("non-admin signer: %v", err)
	}
	for name, mut := range map[string]func(*State){
		"unsorted members": func(g *State) { g.Members = []string{"bob", "alice"} },
		"duplicate member": func(g *State) { g.Members = []string{"alice", "alice"} },
		"bad handle":       func(g *State) { g.Members = []string{"Alice", "bob"} },
		"admin not member": func(g *State) { g.Members = []string{"bob", "carol"} },
		"version 0":        func(g *State) { g.Version = 0 },
		"empty name":       func(g *State) { g.Name = "" },
		"signer not admin": func(g *State) { g.Admins[0].Device = other.ID },
		"no members":       func(g *State) { g.Members = nil },
		"too many members": func(g *State) { g.Members = manyHandles(MaxMembers + 1) },
		"id not bound":     func(g *State) { g.ID[0] ^= 1 },
		"floor ahead":      func(g *State) { g.Floor = g.Version + 1 },
		"bad creator":      func(g *State) { g.Bind("Alice", g.CreatorKey, g.Nonce) },
	} {
		c := g.Next()
		c.Version, c.Admins = g.Version, slices.Clone(g.Admins)
		mut(c)
		c.Sign(admin)
		if _, err := Parse(c.raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse(append(bytes.Clone(g.raw), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

// TestErrorText: the errors name what was wrong in one sentence and match
// their sentinel.
func TestErrorText(t *testing.T) {
	admin := device(t, 1)
	g := bound(&State{Version: 1, Name: "g", Members: []string{"Alice", "bob"}, Admins: []Admin{adminOf("bob", admin)}}, "bob")
	g.Sign(admin)
	_, err := Parse(g.raw)
	if !errors.Is(err, ErrBadMember) || err.Error() != `group state: bad member handle "Alice"` {
		t.Fatalf("bad member: %v", err)
	}
	g = bound(&State{Version: 1, Name: "g", Members: []string{"alice"}, Admins: []Admin{adminOf("bob", admin)}}, "bob")
	g.Sign(admin)
	_, err = Parse(g.raw)
	if !errors.Is(err, ErrAdminNotMember) || err.Error() != "group state: admin bob is not a member" {
		t.Fatalf("admin not member: %v", err)
	}
	_, _, err = ParseLeave([]byte{1})
	if !errors.Is(err, ErrLeaveRequestSize) || err.Error() != "leave request: body of 1 bytes, want 24 (group id and version)" {
		t.Fatalf("short leave request: %v", err)
	}
}

func TestLeaveBody(t *testing.T) {
	id, version, err := ParseLeave(LeaveBody(ID{7}, 9))
	if err != nil || id != (ID{7}) || version != 9 {
		t.Fatalf("%x %d %v", id, version, err)
	}
	if _, _, err := ParseLeave(append(LeaveBody(ID{7}, 9), 0)); err == nil {
		t.Fatal("a body with a byte too many accepted")
	}
}

func TestStateHelpers(t *testing.T) {
	a1, a2, b1 := device(t, 1), device(t, 2), device(t, 3)
	g := &State{ID: ID{1}, Version: 1, Name: "g", Members: []string{"alice", "bob", "carol"},
		Admins: []Admin{adminOf("alice", a1), adminOf("alice", a2), adminOf("bob", b1)}}
	if !g.IsMember("bob") || g.IsMember("dave") {
		t.Fatal("IsMember")
	}
	if !g.IsAdminAccount("alice") || g.IsAdminAccount("carol") {
		t.Fatal("IsAdminAccount")
	}
	if got := g.AdminAccounts(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("AdminAccounts %v", got)
	}
	if a := g.Admin(a2.ID); a == nil || a.Handle != "alice" || g.Admin(identity.DeviceID{9}) != nil {
		t.Fatal("Admin")
	}
	o := *g
	g.Sign(a1)
	o.Sign(a2)
	if !g.SameContent(&o) {
		t.Fatal("the same content signed by two devices differs")
	}
	o.Name = "h"
	if g.SameContent(&o) {
		t.Fatal("another name is the same content")
	}
}

func manyHandles(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%03d", i)
	}
	return out
}
