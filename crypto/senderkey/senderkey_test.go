package senderkey

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
)

// detRand is the vectors' deterministic stream (crypto/internal/vectortest,
// PROTOCOL.md §9): block i = SHA-256(seed || u64be(i)).
type detRand = vectortest.DetRand

func newDetRand(seed string) *detRand { return vectortest.NewDetRand(seed) }

var group = []byte("group-0001")

func mustSender(t testing.TB, r io.Reader) *Sender {
	t.Helper()
	s, err := NewSender(r, group)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustReceiver(t testing.TB, s *Sender) *Receiver {
	t.Helper()
	enc, err := s.Distribution().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalDistribution(enc)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := NewReceiver(d)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func mustEncrypt(t testing.TB, s *Sender, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDecrypt(t testing.TB, rc *Receiver, m []byte, want string) {
	t.Helper()
	pt, err := rc.Decrypt(m)
	if err != nil {
		t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("got %q, want %q", pt, want)
	}
}

func encode(t testing.TB, rc *Receiver) []byte {
	t.Helper()
	b, err := rc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustFail(t testing.TB, rc *Receiver, m []byte, want error) {
	t.Helper()
	before := encode(t, rc)
	if pt, err := rc.Decrypt(m); !errors.Is(err, want) {
		t.Fatalf("got %v (plaintext %q), want %v", err, pt, want)
	}
	if !bytes.Equal(before, encode(t, rc)) {
		t.Fatalf("failed decrypt changed the receiver")
	}
}

// device is one member device in the 3×2 group test: its own chain, the
// chains it reads, and pairwise ratchet sessions to the other devices.
type device struct {
	name      string
	sender    *Sender
	receivers map[string]*Receiver
	sessions  map[string]*ratchet.State
}

// TestGroup3x2 runs three members with two devices each: every device
// distributes its chain over pairwise Double Ratchet sessions, then each
// device's group message is read by the five others.
func TestGroup3x2(t *testing.T) {
	r := newDetRand("group-3x2")
	var devs []*device
	for _, m := range []string{"alice", "bob", "carol"} {
		for d := 1; d <= 2; d++ {
			devs = append(devs, &device{name: fmt.Sprintf("%s%d", m, d), sender: mustSender(t, r),
				receivers: map[string]*Receiver{}, sessions: map[string]*ratchet.State{}})
		}
	}
	// Pairwise sessions (what PQXDH would set up).
	for i, a := range devs {
		for _, b := range devs[i+1:] {
			var sk [32]byte
			var priv [32]byte
			r.Read(sk[:])
			r.Read(priv[:])
			ad := []byte(a.name + "|" + b.name)
			var err error
			if a.sessions[b.name], err = ratchet.NewInitiator(sk[:], ad, priv); err != nil {
				t.Fatal(err)
			}
			if b.sessions[a.name], err = ratchet.NewResponder(sk[:], ad, x25519.PublicKey(&priv)); err != nil {
				t.Fatal(err)
			}
		}
	}
	distribute := func(from *device) {
		enc, err := from.sender.Distribution().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range devs {
			if to == from {
				continue
			}
			ct, err := from.sessions[to.name].Encrypt(r, enc)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := to.sessions[from.name].Decrypt(ct)
			if err != nil {
				t.Fatal(err)
			}
			d, err := UnmarshalDistribution(pt)
			if err != nil {
				t.Fatal(err)
			}
			if to.receivers[from.name], err = NewReceiver(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range devs {
		distribute(d)
	}
	for round := 0; round < 3; round++ {
		for _, from := range devs {
			pt := fmt.Sprintf("%s round %d", from.name, round)
			m := mustEncrypt(t, from.sender, pt)
			for _, to := range devs {
				if to != from {
					mustDecrypt(t, to.receivers[from.name], m, pt)
				}
			}
		}
	}

	// Membership change: carol (both devices) leaves. Everyone re-keys and
	// distributes to the remaining four devices only.
	remaining := devs[:4]
	old := devs[0].sender
	devs[0].sender = mustSender(t, r)
	if devs[0].sender.ChainID() == old.ChainID() {
		t.Fatalf("re-key kept the chain id")
	}
	devs = remaining
	distribute(devs[0])
	m := mustEncrypt(t, devs[0].sender, "after carol left")
	for _, to := range devs[1:] {
		mustDecrypt(t, to.receivers["alice1"], m, "after carol left")
	}
	// Carol's devices still hold alice1's old chain: it does not read the
	// new one.
	carolView := mustReceiver(t, old)
	mustFail(t, carolView, m, ErrUnknownChain)
}

func TestDistributionIsForwardOnly(t *testing.T) {
	s := mustSender(t, newDetRand("forward"))
	early := mustEncrypt(t, s, "before you joined")
	late := mustReceiver(t, s)
	mustFail(t, late, early, ErrDuplicate)
	mustDecrypt(t, late, mustEncrypt(t, s, "welcome"), "welcome")
}

func TestOutOfOrderAndReplay(t *testing.T) {
	s := mustSender(t, newDetRand("ooo"))
	rc := mustReceiver(t, s)
	var ms [][]byte
	for i := 0; i < 6; i++ {
		ms = append(ms, mustEncrypt(t, s, fmt.Sprint(i)))
	}
	for _, i := range []int{2, 0, 5, 1, 4, 3} {
		mustDecrypt(t, rc, ms[i], fmt.Sprint(i))
	}
	if rc.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left", rc.SkippedKeys())
	}
	for _, m := range ms {
		mustFail(t, rc, m, ErrDuplicate)
	}
}

func TestBeyondMaxSkip(t *testing.T) {
	s := mustSender(t, newDetRand("maxskip"))
	rc := mustReceiver(t, s)
	var ms [][]byte
	for i := 0; i < MaxSkip+2; i++ {
		ms = append(ms, mustEncrypt(t, s, fmt.Sprint(i)))
	}
	mustFail(t, rc, ms[MaxSkip+1], ErrTooManySkipped)
	mustDecrypt(t, rc, ms[0], "0")
	mustDecrypt(t, rc, ms[MaxSkip+1], fmt.Sprint(MaxSkip+1))
	if rc.SkippedKeys() != MaxSkip {
		t.Fatalf("%d skipped keys", rc.SkippedKeys())
	}
}

func TestTamperAndForgery(t *testing.T) {
	r := newDetRand("tamper")
	s := mustSender(t, r)
	rc := mustReceiver(t, s)
	m := mustEncrypt(t, s, "genuine")
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x10
		before := encode(t, rc)
		if pt, err := rc.Decrypt(bad); err == nil {
			t.Fatalf("byte %d flipped: decrypted %q", i, pt)
		}
		if !bytes.Equal(before, encode(t, rc)) {
			t.Fatalf("byte %d flipped: receiver changed", i)
		}
	}
	mustFail(t, rc, append(bytes.Clone(m), 0), ErrMalformed)

	// Another member holds the same chain key (it got the same
	// distribution) and encrypts in alice's name: the AEAD opens, the
	// signature does not verify.
	forger := &Sender{groupID: s.groupID, chainID: s.chainID, iteration: s.iteration - 1}
	forger.chainKey = rc.chainKey
	forger.sign = mustSender(t, r).sign
	mustFail(t, rc, mustEncrypt(t, forger, "forged"), ErrBadSignature)

	// A signature from the right key over a bad ciphertext: only ErrAuth.
	bad := bytes.Clone(m)
	bad[HeaderSize+4] ^= 1
	bad = resign(s, bad)
	mustFail(t, rc, bad, ErrAuth)
	mustDecrypt(t, rc, m, "genuine")
}

// resign replaces a message's signature, as only the chain owner can.
func resign(s *Sender, m []byte) []byte {
	body := m[:len(m)-64]
	return append(bytes.Clone(body), ed25519Sign(s, signingInput(s.groupID, body))...)
}

func TestWrongGroup(t *testing.T) {
	s := mustSender(t, newDetRand("group"))
	d := s.Distribution()
	d.GroupID = []byte("another-group")
	rc, err := NewReceiver(d)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, rc, mustEncrypt(t, s, "x"), ErrBadSignature)
}

func TestStateRoundTrip(t *testing.T) {
	s := mustSender(t, newDetRand("state"))
	rc := mustReceiver(t, s)
	ms := [][]byte{mustEncrypt(t, s, "0"), mustEncrypt(t, s, "1"), mustEncrypt(t, s, "2")}
	mustDecrypt(t, rc, ms[2], "2")

	sb, _ := s.MarshalBinary()
	s2, err := UnmarshalSender(sb)
	if err != nil {
		t.Fatal(err)
	}
	rb := encode(t, rc)
	rc2, err := UnmarshalReceiver(rb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rb, encode(t, rc2)) {
		t.Fatalf("receiver re-encoding differs")
	}
	mustDecrypt(t, rc2, ms[0], "0")
	mustDecrypt(t, rc2, mustEncrypt(t, s2, "3"), "3")

	db, _ := s.Distribution().MarshalBinary()
	for name, b := range map[string][]byte{"sender": sb, "receiver": rb, "distribution": db} {
		dec := map[string]func([]byte) error{
			"sender":       func(b []byte) error { _, err := UnmarshalSender(b); return err },
			"receiver":     func(b []byte) error { _, err := UnmarshalReceiver(b); return err },
			"distribution": func(b []byte) error { _, err := UnmarshalDistribution(b); return err },
		}[name]
		if err := dec(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s with trailing byte: %v", name, err)
		}
		for n := 0; n < len(b); n++ {
			if dec(b[:n]) == nil {
				t.Fatalf("%s truncated to %d accepted", name, n)
			}
		}
		bad := bytes.Clone(b)
		bad[0] = 9
		if dec(bad) == nil {
			t.Fatalf("%s version 9 accepted", name)
		}
	}
}

func TestLimits(t *testing.T) {
	if _, err := NewSender(nil, nil); err == nil {
		t.Fatalf("empty group id accepted")
	}
	if _, err := NewSender(nil, make([]byte, MaxGroupIDSize+1)); err == nil {
		t.Fatalf("oversize group id accepted")
	}
	s := mustSender(t, nil)
	if _, err := s.Encrypt(make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize plaintext: %v", err)
	}
}

func ed25519Sign(s *Sender, msg []byte) []byte { return ed25519.Sign(s.sign, msg) }

// countingEd25519 stands in for a WebCrypto backend.
type countingEd25519 struct{ signs, verifies *int }

func (c countingEd25519) Sign(priv ed25519.PrivateKey, m []byte) ([]byte, error) {
	*c.signs++
	return ed25519.Sign(priv, m), nil
}

func (c countingEd25519) Verify(pub ed25519.PublicKey, m, sig []byte) bool {
	*c.verifies++
	return ed25519.Verify(pub, m, sig)
}

func TestEd25519Backend(t *testing.T) {
	var signs, verifies int
	SetEd25519(countingEd25519{&signs, &verifies})
	defer SetEd25519(nil)
	s := mustSender(t, newDetRand("backend"))
	rc := mustReceiver(t, s)
	m := mustEncrypt(t, s, "via backend")
	mustDecrypt(t, rc, m, "via backend")
	if signs != 1 || verifies != 1 {
		t.Fatalf("backend used %d/%d times", signs, verifies)
	}
	SetEd25519(nil)
	s2 := mustSender(t, newDetRand("backend"))
	if m2 := mustEncrypt(t, s2, "via backend"); !bytes.Equal(m, m2) {
		t.Fatalf("backend and crypto/ed25519 disagree")
	}
}
