package groupstate

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata are group states, good and bad, that any other
// implementation of PROTOCOL.md §14.6 can replay: decode "state", then
// verify it against "authority" (the admins of the state a receiver holds;
// absent, the state's own admins, as for a group seen first). A good
// vector decodes to "name", "version" and "members" and verifies; a fail_
// vector stops with "error". They are written by
// `go test ./client/internal/groupstate -run TestVectors -update`.
var update = flag.Bool("update", false, "rewrite testdata vectors")

type vector struct {
	Description string        `json:"description"`
	State       string        `json:"state"`
	Authority   []vectorAdmin `json:"authority,omitempty"`
	Name        string        `json:"name,omitempty"`
	Version     uint64        `json:"version,omitempty"`
	Members     []string      `json:"members,omitempty"`
	Error       string        `json:"error,omitempty"`
}

type vectorAdmin struct {
	Handle string `json:"handle"`
	Device string `json:"device"`
	Key    string `json:"key"`
}

var vectorErrors = map[string]error{
	"trailing":          wire.ErrTrailing,
	"too_large":         wire.ErrTooLarge,
	"version_zero":      ErrVersionZero,
	"bad_name":          ErrBadName,
	"bad_member":        ErrBadMember,
	"members_unsorted":  ErrMembersUnsorted,
	"admin_not_member":  ErrAdminNotMember,
	"admin_twice":       ErrAdminTwice,
	"signer_not_admin":  ErrSignerNotAdmin,
	"not_authority":     ErrNotAuthority,
	"bad_signature":     ErrBadSignature,
	"no_members_admins": ErrEmpty,
}

func generateVectors(t *testing.T) map[string]vector {
	a1, a2, b1, other := device(t, 1), device(t, 2), device(t, 3), device(t, 4)
	base := func() *State {
		return &State{ID: ID{0x67, 0x72, 0x6f, 0x75, 0x70}, Version: 3, Name: "Hiking club", Members: []string{"alice", "bob", "carol"},
			Admins: []Admin{adminOf("alice", a1), adminOf("alice", a2)}}
	}
	signed := func(mut func(*State)) *State {
		g := base()
		if mut != nil {
			mut(g)
		}
		g.Sign(a1)
		return g
	}
	good := func(desc string, g *State) vector {
		return vector{Description: desc, State: hex.EncodeToString(g.raw), Name: g.Name, Version: g.Version, Members: g.Members}
	}
	fail := func(desc string, raw []byte, err string) vector {
		return vector{Description: desc, State: hex.EncodeToString(raw), Error: err}
	}
	v := map[string]vector{}
	v["good_state"] = good("Three members, two admin devices of one account; signed by the first.", signed(nil))
	v["good_two_admin_accounts"] = good("Admin devices of two accounts; signed by the first account's device.",
		signed(func(g *State) { g.Admins = append(g.Admins, adminOf("bob", b1)) }))
	v["good_max_members"] = good("64 members, the most a group has.",
		signed(func(g *State) { g.Members = manyHandles(MaxMembers); g.Admins = []Admin{adminOf("user000", a1)} }))

	g := signed(nil)
	// A receiver holding g (admins a1, a2) takes the next version, which a1
	// signed and which drops a2.
	next := signed(func(g *State) { g.Version = 4; g.Admins = g.Admins[:1] })
	held := good("Verified against the admins of the state a receiver holds, one of whom the new state drops.", next)
	for _, a := range g.Admins {
		held.Authority = append(held.Authority, vectorAdmin{Handle: a.Handle, Device: hex.EncodeToString(a.Device[:]), Key: hex.EncodeToString(a.Key)})
	}
	v["good_held_authority"] = held

	forged := slices.Clone(g.raw)
	copy(forged[len(forged)-64:], other.Sign(Purpose, g.raw[:len(g.raw)-64]))
	v["fail_bad_signature"] = fail("Signed by another device in the name of an admin device.", forged, "bad_signature")
	tampered := slices.Clone(g.raw)
	nameAt := bytes.Index(tampered, []byte("Hiking club"))
	tampered[nameAt] ^= 'h' ^ 'H' // "hiking club"
	v["fail_tampered_name"] = fail("The name changed after it was signed.", tampered, "bad_signature")
	notAuth := vector{Description: "Well signed by its own admin, who is no admin of the state the receiver holds.",
		State: hex.EncodeToString(g.raw), Error: "not_authority",
		Authority: []vectorAdmin{{Handle: "bob", Device: hex.EncodeToString(b1.ID[:]), Key: hex.EncodeToString(b1.Public().SignPub)}}}
	v["fail_not_authority"] = notAuth
	v["fail_trailing_data"] = fail("A byte after the signature.", append(slices.Clone(g.raw), 0), "trailing")
	v["fail_version_zero"] = fail("Version 0.", signed(func(g *State) { g.Version = 0 }).raw, "version_zero")
	v["fail_empty_name"] = fail("An empty name.", signed(func(g *State) { g.Name = "" }).raw, "bad_name")
	v["fail_name_not_utf8"] = fail("A name that is not UTF-8.", signed(func(g *State) { g.Name = "\xff" }).raw, "bad_name")
	v["fail_unsorted_members"] = fail("Members not in ascending order.",
		signed(func(g *State) { g.Members = []string{"bob", "alice", "carol"} }).raw, "members_unsorted")
	v["fail_duplicate_member"] = fail("A member listed twice.",
		signed(func(g *State) { g.Members = []string{"alice", "alice", "bob"} }).raw, "members_unsorted")
	v["fail_bad_handle"] = fail("A member handle with an upper-case letter.",
		signed(func(g *State) { g.Members = []string{"Bob", "alice"} }).raw, "bad_member")
	v["fail_admin_not_member"] = fail("An admin whose account is not a member.",
		signed(func(g *State) { g.Admins = append(g.Admins, adminOf("dave", b1)) }).raw, "admin_not_member")
	v["fail_admin_twice"] = fail("One admin device listed twice.",
		signed(func(g *State) { g.Admins = append(g.Admins, adminOf("bob", a2)) }).raw, "admin_twice")
	v["fail_signer_not_admin"] = fail("Signed by a device that is not among its admins.",
		signed(func(g *State) { g.Admins = []Admin{adminOf("alice", a2)} }).raw, "signer_not_admin")
	v["fail_no_members"] = fail("No members (and so an admin who is none).",
		signed(func(g *State) { g.Members = nil; g.Admins = nil }).raw, "no_members_admins")
	v["fail_too_many_members"] = fail("65 members.",
		signed(func(g *State) { g.Members = manyHandles(MaxMembers + 1); g.Admins = []Admin{adminOf("user000", a1)} }).raw, "too_large")
	return v
}

func TestVectors(t *testing.T) {
	want := generateVectors(t)
	if *update {
		for name, v := range want {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) != len(want) {
		t.Fatalf("%d vector files for %d vectors (%v); run with -update", len(files), len(want), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v vector
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok || w.State != v.State {
				t.Fatal("the file is not what the generator makes; run with -update")
			}
			replay(t, name, v)
		})
	}
}

func replay(t *testing.T, name string, v vector) {
	raw, err := hex.DecodeString(v.State)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(raw)
	if err == nil {
		authority := g.Admins
		if v.Authority != nil {
			authority = nil
			for _, a := range v.Authority {
				dev, _ := hex.DecodeString(a.Device)
				key, _ := hex.DecodeString(a.Key)
				ad := Admin{Handle: a.Handle, Key: key}
				copy(ad.Device[:], dev)
				authority = append(authority, ad)
			}
		}
		_, err = g.Verify(authority)
	}
	if strings.HasPrefix(name, "good_") {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if g.Name != v.Name || g.Version != v.Version || !slices.Equal(g.Members, v.Members) || !bytes.Equal(g.Raw(), raw) {
			t.Fatalf("decoded %q v%d %v", g.Name, g.Version, g.Members)
		}
		return
	}
	sentinel, ok := vectorErrors[v.Error]
	if !ok {
		t.Fatalf("unknown error %q in the vector", v.Error)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
}
