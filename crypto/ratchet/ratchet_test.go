package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

func read(r io.Reader, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		panic(err)
	}
	return b
}

// pairInputs are the inputs that PQXDH would hand the ratchet.
type pairInputs struct {
	sk, ad    []byte
	alicePriv [KeySize]byte
}

func newInputs(r io.Reader) pairInputs {
	var in pairInputs
	in.sk = read(r, KeySize)
	in.ad = append([]byte("alice-identity-key-32-bytes.....bob-identity-key-32-bytes......."), read(r, 0)...)
	copy(in.alicePriv[:], read(r, KeySize))
	return in
}

func (in pairInputs) states(t testing.TB) (alice, bob *State) {
	t.Helper()
	alice, err := NewInitiator(in.sk, in.ad, in.alicePriv)
	if err != nil {
		t.Fatal(err)
	}
	bob, err = NewResponder(in.sk, in.ad, x25519.PublicKey(&in.alicePriv))
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func newPair(t testing.TB, seed string) (alice, bob *State, r io.Reader) {
	r = newDetRand(seed)
	alice, bob = newInputs(r).states(t)
	return alice, bob, r
}

func mustEncrypt(t testing.TB, s *State, r io.Reader, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt(r, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDecrypt(t testing.TB, s *State, m []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(m)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypted %q, want %q", pt, want)
	}
}

func marshal(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustFail checks that Decrypt fails with want and leaves s unchanged.
func mustFail(t testing.TB, s *State, m []byte, want error) {
	t.Helper()
	before := marshal(t, s)
	pt, err := s.Decrypt(m)
	if !errors.Is(err, want) {
		t.Fatalf("decrypt: got %v (plaintext %q), want %v", err, pt, want)
	}
	if !bytes.Equal(before, marshal(t, s)) {
		t.Fatalf("failed decrypt (%v) changed the state", err)
	}
}

func TestPingPong(t *testing.T) {
	alice, bob, r := newPair(t, "pingpong")
	for i := 0; i < 20; i++ {
		// Bursts of varying length in both directions, so the receive and
		// the deferred send steps interleave with plain chain steps.
		for j := 0; j <= i%3; j++ {
			pt := fmt.Sprintf("a->b %d.%d", i, j)
			mustDecrypt(t, bob, mustEncrypt(t, alice, r, pt), pt)
		}
		for j := 0; j <= (i+1)%2; j++ {
			pt := fmt.Sprintf("b->a %d.%d", i, j)
			mustDecrypt(t, alice, mustEncrypt(t, bob, r, pt), pt)
		}
	}
	if alice.SkippedKeys() != 0 || bob.SkippedKeys() != 0 {
		t.Fatalf("in-order delivery left skipped keys")
	}
}

func TestRatchetKeyChangesOncePerTurn(t *testing.T) {
	alice, bob, r := newPair(t, "turns")
	m1 := mustEncrypt(t, alice, r, "1")
	m2 := mustEncrypt(t, alice, r, "2")
	h1, _ := ParseHeader(m1)
	h2, _ := ParseHeader(m2)
	if h1.RatchetKey != h2.RatchetKey || h2.N != 1 {
		t.Fatalf("same chain, different ratchet keys or wrong N")
	}
	mustDecrypt(t, bob, m1, "1")
	mustDecrypt(t, bob, m2, "2")
	if _, ok := bob.RatchetKey(); ok {
		t.Fatalf("responder has a ratchet key before its first send")
	}
	m3 := mustEncrypt(t, bob, r, "3")
	h3, _ := ParseHeader(m3)
	if h3.RatchetKey == h1.RatchetKey || h3.N != 0 || h3.PN != 0 {
		t.Fatalf("bad header after send step: %+v", h3)
	}
	mustDecrypt(t, alice, m3, "3")
	m4 := mustEncrypt(t, alice, r, "4")
	h4, _ := ParseHeader(m4)
	if h4.RatchetKey == h1.RatchetKey || h4.PN != 2 || h4.N != 0 {
		t.Fatalf("bad header after second send step: %+v", h4)
	}
	mustDecrypt(t, bob, m4, "4")
}

func TestOutOfOrder(t *testing.T) {
	alice, bob, r := newPair(t, "ooo")
	var ms [][]byte
	for i := 0; i < 10; i++ {
		ms = append(ms, mustEncrypt(t, alice, r, fmt.Sprint("m", i)))
	}
	for _, i := range []int{3, 0, 9, 1, 2} {
		mustDecrypt(t, bob, ms[i], fmt.Sprint("m", i))
	}
	// Bob answers, Alice steps; her new chain arrives before the rest of
	// her old one.
	mustDecrypt(t, alice, mustEncrypt(t, bob, r, "ack"), "ack")
	n0 := mustEncrypt(t, alice, r, "n0")
	n1 := mustEncrypt(t, alice, r, "n1")
	mustDecrypt(t, bob, n1, "n1")
	for _, i := range []int{8, 4, 7, 5, 6} {
		mustDecrypt(t, bob, ms[i], fmt.Sprint("m", i))
	}
	mustDecrypt(t, bob, n0, "n0")
	if bob.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left after every message arrived", bob.SkippedKeys())
	}
	for i := range ms {
		mustFail(t, bob, ms[i], ErrDuplicate)
	}
}

func TestBeyondMaxSkip(t *testing.T) {
	alice, bob, r := newPair(t, "maxskip")
	var ms [][]byte
	for i := 0; i < MaxSkip+3; i++ {
		ms = append(ms, mustEncrypt(t, alice, r, fmt.Sprint(i)))
	}
	mustDecrypt(t, bob, ms[0], "0")
	mustFail(t, bob, ms[MaxSkip+2], ErrTooManySkipped)
	// Exactly MaxSkip skipped keys is allowed.
	mustDecrypt(t, bob, ms[MaxSkip+1], fmt.Sprint(MaxSkip+1))
	if bob.SkippedKeys() != MaxSkip {
		t.Fatalf("%d skipped keys, want %d", bob.SkippedKeys(), MaxSkip)
	}
	mustDecrypt(t, bob, ms[MaxSkip+2], fmt.Sprint(MaxSkip+2))
	mustDecrypt(t, bob, ms[1], "1")

	// In a new chain, N > MaxSkip is refused too, and the session goes on.
	alice, bob, r = newPair(t, "maxskip-newchain")
	mustDecrypt(t, bob, mustEncrypt(t, alice, r, "hi"), "hi")
	mustDecrypt(t, alice, mustEncrypt(t, bob, r, "yo"), "yo")
	ms = ms[:0]
	for i := 0; i < MaxSkip+2; i++ {
		ms = append(ms, mustEncrypt(t, alice, r, fmt.Sprint(i)))
	}
	mustFail(t, bob, ms[MaxSkip+1], ErrTooManySkipped)
	mustDecrypt(t, bob, ms[0], "0")
	mustDecrypt(t, bob, ms[1], "1")
}

func TestSkippedKeysCapped(t *testing.T) {
	alice, bob, r := newPair(t, "cap")
	// Three chains of MaxSkip lost messages each: the total stays capped,
	// the oldest keys go first, the newest still work.
	var last []byte
	for round := 0; round < 3; round++ {
		for i := 0; i < MaxSkip; i++ {
			mustEncrypt(t, alice, r, "lost")
		}
		last = mustEncrypt(t, alice, r, "kept")
		mustDecrypt(t, bob, last, "kept")
		if bob.SkippedKeys() > MaxSkippedKeys {
			t.Fatalf("%d skipped keys, cap %d", bob.SkippedKeys(), MaxSkippedKeys)
		}
		mustDecrypt(t, alice, mustEncrypt(t, bob, r, "ack"), "ack")
	}
	if bob.SkippedKeys() != MaxSkippedKeys {
		t.Fatalf("%d skipped keys, want the cap %d", bob.SkippedKeys(), MaxSkippedKeys)
	}
}

func TestReplay(t *testing.T) {
	alice, bob, r := newPair(t, "replay")
	m0 := mustEncrypt(t, alice, r, "m0")
	m1 := mustEncrypt(t, alice, r, "m1")
	m2 := mustEncrypt(t, alice, r, "m2")
	mustDecrypt(t, bob, m0, "m0")
	mustFail(t, bob, m0, ErrDuplicate)
	mustDecrypt(t, bob, m2, "m2") // m1's key is now a skipped key
	mustDecrypt(t, bob, m1, "m1")
	mustFail(t, bob, m1, ErrDuplicate) // the skipped key was deleted
	mustFail(t, bob, m2, ErrDuplicate)
	// After a DH step, replays of the closed chain cost no DH and say so.
	mustDecrypt(t, alice, mustEncrypt(t, bob, r, "b"), "b")
	mustDecrypt(t, bob, mustEncrypt(t, alice, r, "c"), "c")
	mustFail(t, bob, m0, ErrDuplicate)
	mustFail(t, bob, m2, ErrDuplicate)
}

func TestTamper(t *testing.T) {
	alice, bob, r := newPair(t, "tamper")
	mustDecrypt(t, bob, mustEncrypt(t, alice, r, "warmup"), "warmup")
	mustDecrypt(t, alice, mustEncrypt(t, bob, r, "back"), "back")
	m := mustEncrypt(t, alice, r, "genuine") // a new chain: the receive step path
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x40
		before := marshal(t, bob)
		if pt, err := bob.Decrypt(bad); err == nil {
			t.Fatalf("byte %d flipped: decrypted %q", i, pt)
		}
		if !bytes.Equal(before, marshal(t, bob)) {
			t.Fatalf("byte %d flipped: state changed", i)
		}
	}
	mustFail(t, bob, append(bytes.Clone(m), 0), ErrMalformed)
	mustFail(t, bob, m[:len(m)-1], ErrMalformed)
	mustDecrypt(t, bob, m, "genuine")

	// The same within a chain (no receive step).
	m = mustEncrypt(t, alice, r, "second")
	bad := bytes.Clone(m)
	bad[len(bad)-1] ^= 1
	mustFail(t, bob, bad, ErrAuth)
	bad = bytes.Clone(m)
	bad[HeaderSize-1] ^= 1 // N: 1 -> 0, an old message number
	mustFail(t, bob, bad, ErrDuplicate)
	mustDecrypt(t, bob, m, "second")
}

func TestWrongAssociatedData(t *testing.T) {
	r := newDetRand("ad")
	in := newInputs(r)
	alice, _ := in.states(t)
	in.ad = []byte("someone else")
	_, bob := in.states(t)
	mustFail(t, bob, mustEncrypt(t, alice, r, "x"), ErrAuth)
}

func TestForwardSecrecy(t *testing.T) {
	alice, bob, r := newPair(t, "fs")
	var ms [][]byte
	for i := 0; i < 3; i++ {
		m := mustEncrypt(t, alice, r, fmt.Sprint(i))
		ms = append(ms, m)
		mustDecrypt(t, bob, m, fmt.Sprint(i))
	}
	saved, err := Unmarshal(marshal(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if pt, err := saved.Decrypt(m); err == nil {
			t.Fatalf("state after message %d decrypted it again: %q", i, pt)
		}
	}
	// Nor does any stored key material equal a used message key.
	for _, m := range ms {
		h, _ := ParseHeader(m)
		for _, k := range saved.skipped {
			if k.dh == h.RatchetKey && k.n == h.N {
				t.Fatalf("used message key %d still stored", h.N)
			}
		}
	}
}

func TestPostCompromiseSecurity(t *testing.T) {
	alice, bob, r := newPair(t, "pcs")
	mustDecrypt(t, bob, mustEncrypt(t, alice, r, "1"), "1")
	stolen, err := Unmarshal(marshal(t, alice)) // Alice's state at time t
	if err != nil {
		t.Fatal(err)
	}
	b1 := mustEncrypt(t, bob, r, "before alice's step")
	mustDecrypt(t, alice, b1, "before alice's step")
	// Alice's next DH ratchet step: a fresh ratchet key on her next send.
	mustDecrypt(t, bob, mustEncrypt(t, alice, r, "2"), "2")
	b2 := mustEncrypt(t, bob, r, "after alice's step")
	b3 := mustEncrypt(t, bob, r, "and later")
	for _, m := range [][]byte{b2, b3} {
		if pt, err := stolen.Clone().Decrypt(m); err == nil {
			t.Fatalf("stolen state decrypted %q", pt)
		}
	}
	// Even after following the conversation up to the step.
	if _, err := stolen.Decrypt(b1); err != nil {
		t.Fatalf("stolen state should still read messages before the step: %v", err)
	}
	if pt, err := stolen.Decrypt(b2); err == nil {
		t.Fatalf("stolen state decrypted %q", pt)
	}
	mustDecrypt(t, alice, b2, "after alice's step")
	mustDecrypt(t, alice, b3, "and later")
}

func TestStateRoundTrip(t *testing.T) {
	alice, bob, r := newPair(t, "state")
	ms := [][]byte{mustEncrypt(t, alice, r, "0"), mustEncrypt(t, alice, r, "1"), mustEncrypt(t, alice, r, "2")}
	mustDecrypt(t, bob, ms[2], "2")
	mustDecrypt(t, alice, mustEncrypt(t, bob, r, "b"), "b")
	for _, s := range []*State{alice, bob} {
		b := marshal(t, s)
		s2, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, marshal(t, s2)) {
			t.Fatalf("re-encoding differs")
		}
		if _, err := Unmarshal(append(bytes.Clone(b), 0)); !errors.Is(err, ErrBadState) {
			t.Fatalf("trailing byte: %v", err)
		}
		for n := 0; n < len(b); n++ {
			if _, err := Unmarshal(b[:n]); err == nil {
				t.Fatalf("truncated to %d bytes: accepted", n)
			}
		}
		bad := bytes.Clone(b)
		bad[0] = 2
		if _, err := Unmarshal(bad); !errors.Is(err, ErrBadState) {
			t.Fatalf("version 2: %v", err)
		}
	}
	bob2, _ := Unmarshal(marshal(t, bob))
	mustDecrypt(t, bob2, ms[0], "0")
	alice2, _ := Unmarshal(marshal(t, alice))
	mustDecrypt(t, bob2, mustEncrypt(t, alice2, r, "after reload"), "after reload")
}

func TestLimits(t *testing.T) {
	alice, _, r := newPair(t, "limits")
	if _, err := alice.Encrypt(r, make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize plaintext: %v", err)
	}
	if _, err := alice.Encrypt(r, make([]byte, MaxPlaintextSize)); err != nil {
		t.Fatalf("max plaintext: %v", err)
	}
	if _, err := NewInitiator(make([]byte, 32), make([]byte, MaxADSize+1), [32]byte{1}); err == nil {
		t.Fatalf("oversize AD accepted")
	}
	if _, err := NewResponder(make([]byte, 31), nil, [32]byte{9}); err == nil {
		t.Fatalf("short secret accepted")
	}
}
