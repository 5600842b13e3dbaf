package pqxdh

import (
	"bytes"
	"crypto/mlkem/mlkemtest"
	"errors"
	"io"
	"testing"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/ratchet/x25519"
)

// Test vectors: testdata/{good,fail}_*.json, layout in PROTOCOL.md section
// 9. Regenerate with: go test ./crypto/pqxdh -run TestVectors -update

type hexBytes = vectortest.HexBytes

type vecResponse struct {
	InitialMessage hexBytes `json:"initial_message"`
	Plaintext      hexBytes `json:"plaintext,omitempty"`
	Error          string   `json:"error,omitempty"`
}

type vecReply struct {
	Random    hexBytes `json:"random"`
	Plaintext hexBytes `json:"plaintext"`
	Message   hexBytes `json:"message"`
}

type vector struct {
	Description     string        `json:"description"`
	InitiatorDevice hexBytes      `json:"initiator_device"`
	ResponderDevice hexBytes      `json:"responder_device"`
	SignedPrekey    hexBytes      `json:"responder_signed_prekey"`
	KEMPrekey       hexBytes      `json:"responder_kem_prekey"`
	OneTimePrekeys  []hexBytes    `json:"responder_one_time_prekeys"`
	Bundle          hexBytes      `json:"bundle"`
	Pinned          hexBytes      `json:"pinned"`
	Random          hexBytes      `json:"random"` // ephemeral private key || KEM encapsulation randomness
	Plaintext       hexBytes      `json:"plaintext"`
	InitiateError   string        `json:"initiate_error,omitempty"`
	TranscriptHash  hexBytes      `json:"transcript_hash,omitempty"`
	SessionKey      hexBytes      `json:"session_key,omitempty"`
	AssociatedData  hexBytes      `json:"associated_data,omitempty"`
	InitialMessage  hexBytes      `json:"initial_message,omitempty"`
	Responses       []vecResponse `json:"responses,omitempty"`
	Reply           *vecReply     `json:"reply,omitempty"`
}

var errNames = vectortest.Errors{
	"bad_signature":        ErrBadSignature,
	"identity_mismatch":    ErrIdentityMismatch,
	"one_time_prekey_used": ErrOneTimePrekeyUsed,
	"unknown_prekey":       ErrUnknownPrekey,
	"key_agreement":        ErrKeyAgreement,
	"malformed":            ErrMalformed,
	"auth":                 ratchet.ErrAuth,
}

var mustMarshal = vectortest.MustMarshal

type failReader = vectortest.NoRandom

// expected recomputes the intermediate values from the vector's inputs,
// following PROTOCOL.md section 4 step by step (independently of Initiate).
func expected(t testing.TB, alice *identity.Device, b *identity.Bundle, random, ct []byte) (th [32]byte, sk, ad []byte) {
	ePriv := [32]byte(random[:32])
	ePub := x25519.PublicKey(&ePriv)
	ek, err := b.KEMPrekey.EncapsulationKey()
	if err != nil {
		t.Fatal(err)
	}
	ss, ct2, err := mlkemtest.Encapsulate768(ek, random[32:64])
	if err != nil || !bytes.Equal(ct, ct2) {
		t.Fatalf("KEM ciphertext differs: %v", err)
	}
	ik := alice.DHKey()
	var dhs [][32]byte
	pubs := []*[32]byte{&b.SignedPrekey.Pub, &b.Device.DHPub, &b.SignedPrekey.Pub}
	if b.OneTime != nil {
		pubs = append(pubs, &b.OneTime.Pub)
	}
	for i, pub := range pubs {
		priv := &ePriv
		if i == 0 {
			priv = &ik
		}
		s, err := x25519.X25519(priv, pub)
		if err != nil {
			t.Fatal(err)
		}
		dhs = append(dhs, s)
	}
	tr := transcript{initiator: alice.Public(), responder: b.Device, spk: &b.SignedPrekey, kem: &b.KEMPrekey,
		otp: b.OneTime, ephemeral: ePub, kemCiphertext: ct}
	th = tr.hash()
	sk, err = sessionKey(dhs, ss, th)
	if err != nil {
		t.Fatal(err)
	}
	return th, sk, associatedData(tr.initiator, tr.responder)
}

type scenario struct {
	name, desc string
	withOTP    bool
	lastResort bool
	corrupt    func(b *identity.Bundle, pinned *identity.DevicePublic, eve *party)
	// before and after add responses around the genuine one.
	before, after func(t *testing.T, r io.Reader, v *vector, alice, bob *party, b *identity.Bundle)
}

func genScenario(t *testing.T, sc scenario) *vector {
	r := newDetRand(sc.name)
	alice := newParty(t, r, 0, true)
	bob := newParty(t, r, 1, sc.lastResort)
	eve := newParty(t, r, 0, true)
	b := bob.bundle(0)
	if sc.withOTP {
		b = bob.bundle(100)
	}
	pinned := bob.dev.Public()
	if sc.corrupt != nil {
		sc.corrupt(b, &pinned, eve)
	}
	v := &vector{Description: sc.desc, InitiatorDevice: mustMarshal(t, alice.dev), ResponderDevice: mustMarshal(t, bob.dev),
		SignedPrekey: mustMarshal(t, bob.store.spk[1]), KEMPrekey: mustMarshal(t, bob.store.kem[2]),
		Bundle: mustMarshal(t, b), Pinned: mustMarshal(t, pinned), Plaintext: []byte("hello, " + sc.name)}
	for _, o := range bob.store.otp {
		v.OneTimePrekeys = append(v.OneTimePrekeys, mustMarshal(t, o))
	}
	rec := &vectortest.Recorder{R: r}
	st, m, err := Initiate(rec, alice.dev, pinned, b)
	v.Random = rec.Got
	if err != nil {
		v.InitiateError = errNames.Name(err)
		return v
	}
	if m.Message, err = st.Encrypt(failReader{}, v.Plaintext); err != nil {
		t.Fatal(err)
	}
	v.InitialMessage = mustMarshal(t, m)
	th, sk, ad := expected(t, alice.dev, b, v.Random, m.KEMCiphertext[:])
	v.TranscriptHash, v.SessionKey, v.AssociatedData = th[:], sk, ad
	if sc.before != nil {
		sc.before(t, r, v, alice, bob, b)
	}
	bs, pt, err := respond(bob, v.InitialMessage)
	if err != nil || !bytes.Equal(pt, v.Plaintext) {
		t.Fatalf("%s: genuine initial message: %q %v", sc.name, pt, err)
	}
	v.Responses = append(v.Responses, vecResponse{InitialMessage: v.InitialMessage, Plaintext: pt})
	rec = &vectortest.Recorder{R: r}
	reply := []byte("reply from bob")
	c, err := bs.Encrypt(rec, reply)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.Decrypt(c); err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("reply: %q %v", got, err)
	}
	v.Reply = &vecReply{Random: rec.Got, Plaintext: reply, Message: c}
	if sc.after != nil {
		sc.after(t, r, v, alice, bob, b)
	}
	return v
}

// addFailure records a response that must fail with want.
func addFailure(t *testing.T, v *vector, bob *party, msg []byte, want error) {
	if _, _, err := respond(bob, msg); !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	v.Responses = append(v.Responses, vecResponse{InitialMessage: msg, Error: errNames.Name(want)})
}

func scenarios() []scenario {
	return []scenario{
		{name: "good_pqxdh_setup", desc: "Full PQXDH: signed prekey, one-time prekey and a one-time KEM prekey; first message and a reply.", withOTP: true},
		{name: "good_pqxdh_setup_no_one_time", desc: "No one-time prekey left (three DHs) and a last-resort KEM prekey.", lastResort: true},
		{name: "fail_bad_spk_signature", desc: "The bundle's signed-prekey signature does not verify: the initiator refuses.", withOTP: true,
			corrupt: func(b *identity.Bundle, _ *identity.DevicePublic, _ *party) {
				b.SignedPrekey.Sig = bytes.Clone(b.SignedPrekey.Sig)
				b.SignedPrekey.Sig[10] ^= 1
			}},
		{name: "fail_bad_kem_signature", desc: "The bundle's KEM prekey is another device's (validly signed by it): the initiator refuses.", withOTP: true,
			corrupt: func(b *identity.Bundle, _ *identity.DevicePublic, eve *party) {
				b.KEMPrekey = eve.bundle(0).KEMPrekey
			}},
		{name: "fail_identity_mismatch", desc: "The initiator pinned another device than the bundle's: refused before any key agreement.", withOTP: true,
			corrupt: func(b *identity.Bundle, pinned *identity.DevicePublic, eve *party) {
				*pinned = eve.dev.Public()
			}},
		{name: "fail_reused_one_time_prekey", desc: "After the genuine setup consumed one-time prekey 100, the same initial message again and a fresh one naming the same prekey are refused.", withOTP: true,
			after: func(t *testing.T, r io.Reader, v *vector, alice, bob *party, b *identity.Bundle) {
				// A second initial message from the same initiator and bundle.
				st, m, err := Initiate(r, alice.dev, bob.dev.Public(), b)
				if err != nil {
					t.Fatal(err)
				}
				m.Message, _ = st.Encrypt(r, []byte("again"))
				addFailure(t, v, bob, v.InitialMessage, ErrOneTimePrekeyUsed)
				addFailure(t, v, bob, mustMarshal(t, m), ErrOneTimePrekeyUsed)
			}},
		{name: "fail_tampered_initial_message", desc: "A KEM ciphertext byte and an ephemeral key byte changed: the first message does not authenticate and no prekey is consumed; the genuine message then succeeds.", withOTP: true,
			before: func(t *testing.T, r io.Reader, v *vector, alice, bob *party, b *identity.Bundle) {
				for _, off := range []int{1 + 81 + 4 + 4 + 1 + 4 + 32 + 100, 1 + 81 + 4 + 4 + 1 + 4 + 3} {
					bad := bytes.Clone(v.InitialMessage)
					bad[off] ^= 1
					addFailure(t, v, bob, bad, ratchet.ErrAuth)
				}
			}},
		{name: "fail_trailing_data", desc: "An initial message with a byte appended is malformed.", withOTP: true,
			before: func(t *testing.T, r io.Reader, v *vector, alice, bob *party, b *identity.Bundle) {
				addFailure(t, v, bob, append(bytes.Clone(v.InitialMessage), 0), ErrMalformed)
			}},
	}
}

func TestVectors(t *testing.T) {
	generate := func(t *testing.T) map[string]*vector {
		out := map[string]*vector{}
		for _, sc := range scenarios() {
			out[sc.name] = genScenario(t, sc)
		}
		return out
	}
	vectortest.Run(t, generate, func(t *testing.T, _ vectortest.File, v *vector) { replay(t, v) })
}

func loadVector(t testing.TB, f string) *vector { return vectortest.Read[*vector](t, f) }

// responderFromVector rebuilds the responder's device and prekey store.
func responderFromVector(t testing.TB, v *vector) *party {
	dev, err := identity.UnmarshalDevice(v.ResponderDevice)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := identity.UnmarshalSignedPrekey(v.SignedPrekey)
	if err != nil {
		t.Fatal(err)
	}
	kem, err := identity.UnmarshalKEMPrekey(v.KEMPrekey)
	if err != nil {
		t.Fatal(err)
	}
	s := &store{spk: map[uint32]*identity.SignedPrekey{spk.Public.ID: spk},
		kem: map[uint32]*identity.KEMPrekey{kem.Public.ID: kem}, otp: map[uint32]*identity.OneTimePrekey{}}
	for _, b := range v.OneTimePrekeys {
		o, err := identity.UnmarshalOneTimePrekey(b)
		if err != nil {
			t.Fatal(err)
		}
		s.otp[o.Public.ID] = o
	}
	return &party{dev: dev, store: s}
}

func replay(t *testing.T, v *vector) {
	alice, err := identity.UnmarshalDevice(v.InitiatorDevice)
	if err != nil {
		t.Fatal(err)
	}
	bob := responderFromVector(t, v)
	b, err := identity.UnmarshalBundle(v.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := identity.UnmarshalDevicePublic(v.Pinned)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(v.Random)
	st, m, err := Initiate(r, alice, pinned, b)
	if v.InitiateError != "" {
		if want := errNames.Want(t, v.InitiateError); !errors.Is(err, want) {
			t.Fatalf("Initiate: got %v, want %s", err, v.InitiateError)
		}
		return
	}
	if err != nil || r.Len() != 0 {
		t.Fatalf("Initiate: %v (%d random bytes left)", err, r.Len())
	}
	if m.Message, err = st.Encrypt(failReader{}, v.Plaintext); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshal(t, m), v.InitialMessage) {
		t.Fatalf("initial message differs")
	}
	th, sk, ad := expected(t, alice, b, v.Random, m.KEMCiphertext[:])
	if !bytes.Equal(th[:], v.TranscriptHash) || !bytes.Equal(sk, v.SessionKey) || !bytes.Equal(ad, v.AssociatedData) {
		t.Fatalf("intermediate values differ")
	}
	var bs *ratchet.State
	for i, resp := range v.Responses {
		before := len(bob.store.otp) + len(bob.store.kem)
		s, pt, err := respond(bob, resp.InitialMessage)
		if resp.Error != "" {
			if want := errNames.Want(t, resp.Error); !errors.Is(err, want) {
				t.Fatalf("response %d: got %v, want %s", i, err, resp.Error)
			}
			if len(bob.store.otp)+len(bob.store.kem) != before {
				t.Fatalf("response %d: a failed setup consumed a prekey", i)
			}
			continue
		}
		if err != nil || !bytes.Equal(pt, resp.Plaintext) {
			t.Fatalf("response %d: %q %v", i, pt, err)
		}
		bs = s
	}
	if v.Reply != nil {
		c, err := bs.Encrypt(bytes.NewReader(v.Reply.Random), v.Reply.Plaintext)
		if err != nil || !bytes.Equal(c, v.Reply.Message) {
			t.Fatalf("reply differs: %v", err)
		}
		if pt, err := st.Decrypt(c); err != nil || !bytes.Equal(pt, v.Reply.Plaintext) {
			t.Fatalf("reply: %q %v", pt, err)
		}
	}
}
