package groupstate

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata are group states, good and bad, that any other
// implementation of PROTOCOL.md §14.6 can replay: decode "state", then
// verify it against "authority" (the admins of the state a receiver
// holds) or, absent, as a group seen first: verify "creator_list" (the
// creator's signed device list) under "creator_account" (the account key
// the receiver holds for the state's creator), then VerifyFirst against
// that list. A good vector decodes to "name", "version" and "members" and
// verifies; a fail_ vector stops with "error". They are written by
// `go test ./client/internal/groupstate -run TestVectors -update`.
var update = flag.Bool("update", false, "rewrite testdata vectors")

type vector struct {
	Description string        `json:"description"`
	State       string        `json:"state"`
	Authority   []vectorAdmin `json:"authority,omitempty"`
	// CreatorAccount and CreatorList are what a receiver holds of the
	// creator's account for a group seen first (no Authority).
	CreatorAccount string   `json:"creator_account,omitempty"`
	CreatorList    string   `json:"creator_list,omitempty"`
	Name           string   `json:"name,omitempty"`
	Version        uint64   `json:"version,omitempty"`
	Members        []string `json:"members,omitempty"`
	Error          string   `json:"error,omitempty"`
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
	"id_not_bound":      ErrIDNotBound,
	"floor_ahead":       ErrFloorAhead,
	"not_creator":       ErrNotCreator,
	"legacy":            ErrLegacy,
}

// account is a test account whose keys follow from n, and its signed
// device list of devs.
func account(t testing.TB, n byte, devs ...*identity.Device) (*identity.Account, []byte) {
	t.Helper()
	a, err := identity.NewAccount(bytes.NewReader(bytes.Repeat([]byte{n}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	l := &devicelist.List{Account: a.Public(), Version: 1, Timestamp: 1_800_000_000}
	for i, d := range devs {
		l.Entries = append(l.Entries, devicelist.Entry{Device: d.Public(), Name: "device", Added: l.Timestamp, Attested: l.Timestamp,
			Primary: i == 0, DeviceSig: devicelist.DeviceSignature(d, a.Public())})
	}
	// The vectors' creator lists are of format 1 (they predate lists
	// naming their handle, PROTOCOL.md 3.6), which still verify; keeping
	// them so keeps the state vectors unchanged.
	enc, err := devicelist.SignLegacy(a, l)
	if err != nil {
		t.Fatal(err)
	}
	return a, enc
}

func generateVectors(t *testing.T) map[string]vector {
	a1, a2, b1, other, m1 := device(t, 1), device(t, 2), device(t, 3), device(t, 4), device(t, 5)
	alice, aliceList := account(t, 0x61, a1, a2)
	mallory, malloryList := account(t, 0x6d, m1)
	nonce := [NonceSize]byte{0x6e, 0x6f, 0x6e, 0x63, 0x65}
	base := func() *State {
		return &State{ID: NewID("alice", alice.Public(), nonce), Creator: "alice", CreatorKey: alice.Public(), Nonce: nonce,
			Version: 3, Floor: 2, Name: "Hiking club", Members: []string{"alice", "bob", "carol"},
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
	first := func(v vector, key ed25519.PublicKey, list []byte) vector {
		v.CreatorAccount, v.CreatorList = hex.EncodeToString(key), hex.EncodeToString(list)
		return v
	}
	good := func(desc string, g *State) vector {
		return first(vector{Description: desc, State: hex.EncodeToString(g.raw), Name: g.Name, Version: g.Version, Members: g.Members},
			alice.Public(), aliceList)
	}
	fail := func(desc string, raw []byte, err string) vector {
		return first(vector{Description: desc, State: hex.EncodeToString(raw), Error: err}, alice.Public(), aliceList)
	}
	v := map[string]vector{}
	v["good_state"] = good("Three members, two admin devices of the creator's account; signed by the first; seen first.", signed(nil))
	v["good_two_admin_accounts"] = good("Admin devices of two accounts; signed by the first account's device.",
		signed(func(g *State) { g.Admins = append(g.Admins, adminOf("bob", b1)) }))
	v["good_max_members"] = good("64 members, the most a group has.",
		signed(func(g *State) {
			g.Members = manyHandles(MaxMembers)
			g.Admins = []Admin{adminOf("user000", a1)}
			g.Bind("user000", alice.Public(), nonce)
		}))

	g := signed(nil)
	// A receiver holding g (admins a1, a2) takes the next version, which a1
	// signed and which drops a2.
	next := signed(func(g *State) { g.Version = 4; g.Admins = g.Admins[:1] })
	held := good("Verified against the admins of the state a receiver holds, one of whom the new state drops.", next)
	held.CreatorAccount, held.CreatorList = "", ""
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

	// A removed member squats the group's id (PROTOCOL.md §14.6): as its
	// creator, with his own account key, which does not make the id...
	squat := &State{ID: base().ID, Creator: "mallory", CreatorKey: mallory.Public(), Nonce: nonce, Version: 1 << 40,
		Name: "Hiking club", Members: []string{"alice", "mallory"}, Admins: []Admin{adminOf("mallory", m1)}}
	squat.Sign(m1)
	v["fail_id_not_bound_to_creator"] = first(vector{Description: "A removed member's state for the group's id, naming himself its creator: the id is not made from his account key and the nonce.",
		State: hex.EncodeToString(squat.raw), Error: "id_not_bound"}, mallory.Public(), malloryList)
	// ...or naming the real creator, signed by his own device...
	v["fail_signed_by_non_creator"] = fail("Names the real creator (id, key, nonce), signed by an admin device of another account.",
		signed(func(g *State) { g.Members = append(g.Members, "mallory"); g.Admins = []Admin{adminOf("mallory", m1)} }).resign(m1), "not_creator")
	// ...or by his device listed as one of the creator's.
	v["fail_signer_not_in_creator_list"] = fail("Signed by a device listed as the creator's that the creator's device list does not hold.",
		signed(func(g *State) { g.Admins = []Admin{adminOf("alice", m1)} }).resign(m1), "not_creator")
	v["fail_creator_key_not_held"] = first(vector{Description: "The receiver holds another account key for the creator than the one the id is made from.",
		State: hex.EncodeToString(g.raw), Error: "not_creator"}, mallory.Public(), malloryList)
	legacy := &State{Legacy: true, ID: ID{0x67, 0x72, 0x6f, 0x75, 0x70}, Version: 3, Name: "Hiking club", Members: []string{"alice", "bob"},
		Admins: []Admin{adminOf("alice", a1)}}
	legacy.Sign(a1)
	v["fail_legacy_format"] = fail("Format 1 (a random id bound to no creator), seen first: no longer accepted.", legacy.raw, "legacy")
	v["fail_floor_ahead"] = fail("A chain floor above the version.", signed(func(g *State) { g.Floor = 4 }).raw, "floor_ahead")
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
	if err == nil && v.Authority != nil {
		var authority []Admin
		for _, a := range v.Authority {
			dev, _ := hex.DecodeString(a.Device)
			key, _ := hex.DecodeString(a.Key)
			ad := Admin{Handle: a.Handle, Key: key}
			copy(ad.Device[:], dev)
			authority = append(authority, ad)
		}
		_, err = g.Verify(authority)
	} else if err == nil {
		key, _ := hex.DecodeString(v.CreatorAccount)
		enc, _ := hex.DecodeString(v.CreatorList)
		l, lerr := devicelist.Verify(key, g.Creator, enc)
		if lerr != nil {
			t.Fatalf("the vector's creator list: %v", lerr)
		}
		_, err = g.VerifyFirst(l)
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

// resign signs g again with dev (a test making a state in another's name).
func (g *State) resign(dev *identity.Device) []byte {
	g.Sign(dev)
	return g.raw
}
