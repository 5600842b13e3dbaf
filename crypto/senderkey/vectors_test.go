package senderkey

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// Test vectors: testdata/{good,fail}_*.json, layout in PROTOCOL.md section
// 9. Regenerate with: go test ./crypto/senderkey -run TestVectors -update

type hexBytes = vectortest.HexBytes

type vecSender struct {
	State        hexBytes `json:"sender_state"` // Sender.MarshalBinary at the start
	Distribution hexBytes `json:"distribution"` // Distribution.MarshalBinary at the start
}

type vecStep struct {
	Op        string   `json:"op"` // "encrypt", "decrypt" or "skip"
	Count     int      `json:"count,omitempty"`
	Sender    string   `json:"sender"`
	Receiver  string   `json:"receiver,omitempty"`
	Plaintext hexBytes `json:"plaintext"`
	Message   hexBytes `json:"message"`
	Error     string   `json:"error,omitempty"`
}

type vector struct {
	Description string               `json:"description"`
	GroupID     hexBytes             `json:"group_id"`
	Members     []string             `json:"members"`
	Senders     map[string]vecSender `json:"senders"`
	Steps       []vecStep            `json:"steps"`
}

var errNames = vectortest.Errors{
	"auth":             ErrAuth,
	"bad_signature":    ErrBadSignature,
	"duplicate":        ErrDuplicate,
	"too_many_skipped": ErrTooManySkipped,
	"unknown_chain":    ErrUnknownChain,
	"malformed":        ErrMalformed,
}

// world is a group in progress: each member's Sender and its Receivers.
type world struct {
	t         testing.TB
	v         *vector
	senders   map[string]*Sender
	receivers map[string]map[string]*Receiver // receiver -> sender -> chain
}

func newWorld(t testing.TB, v *vector) *world {
	w := &world{t: t, v: v, senders: map[string]*Sender{}, receivers: map[string]map[string]*Receiver{}}
	for _, name := range v.Members {
		w.receivers[name] = map[string]*Receiver{}
	}
	for name, vs := range v.Senders {
		s, err := UnmarshalSender(vs.State)
		if err != nil {
			t.Fatal(err)
		}
		w.senders[name] = s
		d, err := UnmarshalDistribution(vs.Distribution)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range v.Members {
			if to != name {
				if w.receivers[to][name], err = NewReceiver(d); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return w
}

func generate(t *testing.T, seed, desc string, members []string) *world {
	r := newDetRand(seed)
	v := &vector{Description: desc, GroupID: group, Members: members, Senders: map[string]vecSender{}}
	for _, name := range members {
		s := mustSender(t, r)
		st, _ := s.MarshalBinary()
		d, _ := s.Distribution().MarshalBinary()
		v.Senders[name] = vecSender{State: st, Distribution: d}
	}
	return newWorld(t, v)
}

func (w *world) enc(from, pt string) []byte {
	m := mustEncrypt(w.t, w.senders[from], pt)
	w.v.Steps = append(w.v.Steps, vecStep{Op: "encrypt", Sender: from, Plaintext: []byte(pt), Message: m})
	return m
}

func (w *world) dec(to, from string, m []byte, want string) {
	mustDecrypt(w.t, w.receivers[to][from], m, want)
	w.v.Steps = append(w.v.Steps, vecStep{Op: "decrypt", Sender: from, Receiver: to, Plaintext: []byte(want), Message: m})
}

func (w *world) fail(to, from string, m []byte, want error) {
	mustFail(w.t, w.receivers[to][from], m, want)
	w.v.Steps = append(w.v.Steps, vecStep{Op: "decrypt", Sender: from, Receiver: to, Message: m, Error: errNames.Name(want)})
}

func scenarios(t *testing.T) map[string]*vector {
	out := map[string]*vector{}
	members := []string{"alice1", "alice2", "bob1", "bob2", "carol1", "carol2"}

	w := generate(t, "good_group_3x2", "Three members with two devices each; every device sends two messages, read by the five others.", members)
	for round := 0; round < 2; round++ {
		for _, from := range members {
			pt := fmt.Sprintf("%s says %d", from, round)
			m := w.enc(from, pt)
			for _, to := range members {
				if to != from {
					w.dec(to, from, m, pt)
				}
			}
		}
	}
	out["good_group_3x2"] = w.v

	w = generate(t, "good_group_out_of_order", "Messages of one chain delivered out of order within MaxSkip.", members[:2])
	m0, m1, m2 := w.enc("alice1", "0"), w.enc("alice1", "1"), w.enc("alice1", "2")
	w.dec("alice2", "alice1", m2, "2")
	w.dec("alice2", "alice1", m0, "0")
	w.dec("alice2", "alice1", m1, "1")
	out["good_group_out_of_order"] = w.v

	w = generate(t, "fail_group_bad_signature", "A message whose signature, or signed ciphertext, was changed; and one signed by another member's key: refused, receiver unchanged.", members[:3])
	m := w.enc("alice1", "hello")
	bad := bytes.Clone(m)
	bad[len(bad)-1] ^= 1
	w.fail("bob1", "alice1", bad, ErrBadSignature)
	bad = bytes.Clone(m)
	bad[HeaderSize+4] ^= 1
	w.fail("bob1", "alice1", bad, ErrBadSignature)
	// alice2 re-signs alice1's message with her own signing key.
	forged := append(bytes.Clone(m[:len(m)-64]), ed25519Sign(w.senders["alice2"], signingInput(group, m[:len(m)-64]))...)
	w.fail("bob1", "alice1", forged, ErrBadSignature)
	w.dec("bob1", "alice1", m, "hello")
	out["fail_group_bad_signature"] = w.v

	w = generate(t, "fail_group_replayed_message", "A group message delivered twice: the second is a duplicate.", members[:2])
	m = w.enc("alice1", "once")
	w.dec("alice2", "alice1", m, "once")
	w.fail("alice2", "alice1", m, ErrDuplicate)
	out["fail_group_replayed_message"] = w.v

	w = generate(t, "fail_group_beyond_max_skip", "A message MaxSkip+1 iterations ahead is refused; the in-order one still decrypts.", members[:2])
	m0 = w.enc("alice1", "first")
	for i := 0; i < MaxSkip; i++ {
		w.senders["alice1"].Encrypt(nil) // lost messages, not recorded
	}
	w.v.Steps = append(w.v.Steps, vecStep{Op: "skip", Sender: "alice1", Count: MaxSkip})
	far := w.enc("alice1", "far")
	w.fail("alice2", "alice1", far, ErrTooManySkipped)
	w.dec("alice2", "alice1", m0, "first")
	w.dec("alice2", "alice1", far, "far")
	out["fail_group_beyond_max_skip"] = w.v

	w = generate(t, "fail_trailing_data", "A group message with a byte appended is malformed.", members[:2])
	m = w.enc("alice1", "x")
	w.fail("alice2", "alice1", append(bytes.Clone(m), 0), ErrMalformed)
	w.dec("alice2", "alice1", m, "x")
	out["fail_trailing_data"] = w.v
	return out
}

func TestVectors(t *testing.T) {
	vectortest.Run(t, scenarios, func(t *testing.T, _ vectortest.File, v *vector) { replay(t, v) })
}

func loadVector(t testing.TB, f string) *vector { return vectortest.Read[*vector](t, f) }

// replay runs a vector from its initial states and checks every output:
// signing is deterministic (Ed25519), so encryption is reproducible too.
func replay(t *testing.T, v *vector) {
	w := newWorld(t, v)
	for i, st := range v.Steps {
		switch st.Op {
		case "encrypt":
			m, err := w.senders[st.Sender].Encrypt(st.Plaintext)
			if err != nil || !bytes.Equal(m, st.Message) {
				t.Fatalf("step %d: encrypt output differs (%v)", i, err)
			}
		case "skip":
			for j := 0; j < st.Count; j++ {
				w.senders[st.Sender].Encrypt(nil)
			}
		case "decrypt":
			rc := w.receivers[st.Receiver][st.Sender]
			if st.Error != "" {
				mustFail(t, rc, st.Message, errNames.Want(t, st.Error))
				continue
			}
			pt, err := rc.Decrypt(st.Message)
			if err != nil || !bytes.Equal(pt, st.Plaintext) {
				t.Fatalf("step %d: %q, %v", i, pt, err)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, st.Op)
		}
	}
}
