package ratchet

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
)

// Test vectors: testdata/{good,fail}_*.json, layout in PROTOCOL.md section
// 9. Regenerate with: go test ./crypto/ratchet -run TestVectors -update

type hexBytes = vectortest.HexBytes

type vecStep struct {
	Party     string   `json:"party"` // "alice" (initiator) or "bob"
	Op        string   `json:"op"`    // "encrypt", "decrypt" or "skip"
	Count     int      `json:"count,omitempty"`
	Random    hexBytes `json:"random"`
	Plaintext hexBytes `json:"plaintext"`
	Message   hexBytes `json:"message"`
	Error     string   `json:"error,omitempty"`
}

type vector struct {
	Description             string            `json:"description"`
	SharedSecret            hexBytes          `json:"shared_secret"`
	AssociatedData          hexBytes          `json:"associated_data"`
	InitiatorRatchetPrivate hexBytes          `json:"initiator_ratchet_private"`
	Steps                   []vecStep         `json:"steps"`
	FinalStates             map[string]string `json:"final_states"`
}

var errNames = vectortest.Errors{
	"auth":             ErrAuth,
	"duplicate":        ErrDuplicate,
	"too_many_skipped": ErrTooManySkipped,
	"malformed":        ErrMalformed,
}

type failReader = vectortest.NoRandom

// builder runs a scenario on live states and records it as a vector.
type builder struct {
	t       *testing.T
	v       *vector
	parties map[string]*State
	r       io.Reader
}

func newBuilder(t *testing.T, seed, desc string) *builder {
	r := newDetRand(seed)
	in := newInputs(r)
	alice, bob := in.states(t)
	return &builder{t: t, r: r, parties: map[string]*State{"alice": alice, "bob": bob},
		v: &vector{Description: desc, SharedSecret: in.sk, AssociatedData: in.ad, InitiatorRatchetPrivate: in.alicePriv[:]}}
}

func (b *builder) enc(party, pt string) []byte {
	rec := &vectortest.Recorder{R: b.r}
	m, err := b.parties[party].Encrypt(rec, []byte(pt))
	if err != nil {
		b.t.Fatal(err)
	}
	b.v.Steps = append(b.v.Steps, vecStep{Party: party, Op: "encrypt", Random: rec.Got, Plaintext: []byte(pt), Message: m})
	return m
}

func (b *builder) skip(party string, n int) {
	for i := 0; i < n; i++ {
		if _, err := b.parties[party].Encrypt(failReader{}, nil); err != nil {
			b.t.Fatal(err)
		}
	}
	b.v.Steps = append(b.v.Steps, vecStep{Party: party, Op: "skip", Count: n})
}

func (b *builder) dec(party string, m []byte, want string) {
	pt, err := b.parties[party].Decrypt(m)
	if err != nil || string(pt) != want {
		b.t.Fatalf("decrypt: %q %v", pt, err)
	}
	b.v.Steps = append(b.v.Steps, vecStep{Party: party, Op: "decrypt", Message: m, Plaintext: pt})
}

func (b *builder) fail(party string, m []byte, want error) {
	mustFail(b.t, b.parties[party], m, want)
	b.v.Steps = append(b.v.Steps, vecStep{Party: party, Op: "decrypt", Message: m, Error: errNames.Name(want)})
}

func (b *builder) done() *vector {
	b.v.FinalStates = map[string]string{}
	for name, s := range b.parties {
		b.v.FinalStates[name] = hex.EncodeToString(marshal(b.t, s))
	}
	return b.v
}

func flip(m []byte, i int) []byte {
	c := bytes.Clone(m)
	c[i] ^= 0x01
	return c
}

// scenarios builds every vector.
func scenarios(t *testing.T) map[string]*vector {
	out := map[string]*vector{}

	b := newBuilder(t, "good_ratchet_pingpong", "Messages both ways in bursts of 1-3; every turn is a DH ratchet step.")
	for i := 0; i < 3; i++ {
		for j := 0; j <= i; j++ {
			pt := fmt.Sprintf("alice %d.%d", i, j)
			b.dec("bob", b.enc("alice", pt), pt)
		}
		pt := fmt.Sprintf("bob %d", i)
		b.dec("alice", b.enc("bob", pt), pt)
	}
	out["good_ratchet_pingpong"] = b.done()

	b = newBuilder(t, "good_out_of_order", "Out-of-order delivery within MaxSkip, across a DH step: skipped keys of the old chain still open its late messages.")
	m0, m1, m2 := b.enc("alice", "a0"), b.enc("alice", "a1"), b.enc("alice", "a2")
	b.dec("bob", m2, "a2")
	b.dec("bob", m0, "a0")
	b.dec("alice", b.enc("bob", "b0"), "b0")
	n0, n1 := b.enc("alice", "c0"), b.enc("alice", "c1")
	b.dec("bob", n1, "c1")
	b.dec("bob", m1, "a1")
	b.dec("bob", n0, "c0")
	out["good_out_of_order"] = b.done()

	b = newBuilder(t, "fail_replayed_message", "A delivered message delivered again, in the current chain, from a skipped key and after a DH step: each is refused as a duplicate, state unchanged.")
	m0, m1 = b.enc("alice", "a0"), b.enc("alice", "a1")
	b.dec("bob", m1, "a1")
	b.fail("bob", m1, ErrDuplicate)
	b.dec("bob", m0, "a0")
	b.fail("bob", m0, ErrDuplicate)
	b.dec("alice", b.enc("bob", "b0"), "b0")
	b.dec("bob", b.enc("alice", "a2"), "a2")
	b.fail("bob", m1, ErrDuplicate)
	out["fail_replayed_message"] = b.done()

	b = newBuilder(t, "fail_tampered_header", "Header bytes changed (ratchet key, PN, N): authentication fails, state unchanged, the genuine message then decrypts.")
	b.dec("bob", b.enc("alice", "a0"), "a0")
	b.dec("alice", b.enc("bob", "b0"), "b0")
	m := b.enc("alice", "a1")
	b.fail("bob", flip(m, 1), ErrAuth)           // ratchet key
	b.fail("bob", flip(m, 1+KeySize+3), ErrAuth) // PN
	b.fail("bob", flip(m, HeaderSize-1), ErrAuth)
	b.dec("bob", m, "a1")
	out["fail_tampered_header"] = b.done()

	b = newBuilder(t, "fail_tampered_ciphertext", "Ciphertext and tag bytes changed: authentication fails, state unchanged, the genuine message then decrypts.")
	m = b.enc("alice", "a0")
	b.fail("bob", flip(m, HeaderSize+4), ErrAuth)
	b.fail("bob", flip(m, len(m)-1), ErrAuth)
	b.dec("bob", m, "a0")
	out["fail_tampered_ciphertext"] = b.done()

	b = newBuilder(t, "fail_beyond_max_skip", "A message MaxSkip+1 keys ahead is refused (too_many_skipped), state unchanged; the next in-order message decrypts, after which the same message is within reach.")
	m0, m1 = b.enc("alice", "a0"), b.enc("alice", "a1")
	b.skip("alice", MaxSkip)
	far := b.enc("alice", "far")
	b.dec("bob", m0, "a0")
	b.fail("bob", far, ErrTooManySkipped)
	b.dec("bob", m1, "a1")
	b.dec("bob", far, "far")
	out["fail_beyond_max_skip"] = b.done()

	b = newBuilder(t, "fail_trailing_data", "A message with a byte appended, and one cut short, are malformed; state unchanged.")
	m = b.enc("alice", "a0")
	b.fail("bob", append(bytes.Clone(m), 0), ErrMalformed)
	b.fail("bob", m[:len(m)-1], ErrMalformed)
	b.dec("bob", m, "a0")
	out["fail_trailing_data"] = b.done()
	return out
}

func TestVectors(t *testing.T) {
	vectortest.Run(t, scenarios, func(t *testing.T, _ vectortest.File, v *vector) { replay(t, v) })
}

func loadVector(t testing.TB, f string) *vector { return vectortest.Read[*vector](t, f) }

// replay runs a vector from its inputs alone and checks every output.
func replay(t *testing.T, v *vector) {
	priv := [KeySize]byte(v.InitiatorRatchetPrivate)
	alice, err := NewInitiator(v.SharedSecret, v.AssociatedData, priv)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewResponder(v.SharedSecret, v.AssociatedData, x25519.PublicKey(&priv))
	if err != nil {
		t.Fatal(err)
	}
	parties := map[string]*State{"alice": alice, "bob": bob}
	for i, st := range v.Steps {
		s := parties[st.Party]
		switch st.Op {
		case "encrypt":
			r := bytes.NewReader(st.Random)
			m, err := s.Encrypt(r, st.Plaintext)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if r.Len() != 0 || !bytes.Equal(m, st.Message) {
				t.Fatalf("step %d: encrypt output differs", i)
			}
		case "skip":
			for j := 0; j < st.Count; j++ {
				if _, err := s.Encrypt(failReader{}, nil); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		case "decrypt":
			if st.Error != "" {
				mustFail(t, s, st.Message, errNames.Want(t, st.Error))
				continue
			}
			pt, err := s.Decrypt(st.Message)
			if err != nil || !bytes.Equal(pt, st.Plaintext) {
				t.Fatalf("step %d: decrypt: %q, %v", i, pt, err)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.Op)
		}
	}
	for name, want := range v.FinalStates {
		if got := hex.EncodeToString(marshal(t, parties[name])); got != want {
			t.Fatalf("final state of %s differs", name)
		}
	}
}
