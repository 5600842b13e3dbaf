package pqxdh_test

import (
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
)

// prekeys is the responder's private prekey store. A real store deletes in
// Consume in the same write that stores the new session.
type prekeys struct {
	spk *identity.SignedPrekey
	kem *identity.KEMPrekey
	otp map[uint32]*identity.OneTimePrekey
}

func (p *prekeys) SignedPrekey(id uint32) *identity.SignedPrekey {
	if p.spk.Public.ID == id {
		return p.spk
	}
	return nil
}

func (p *prekeys) KEMPrekey(id uint32) *identity.KEMPrekey {
	if p.kem != nil && p.kem.Public.ID == id {
		return p.kem
	}
	return nil
}

func (p *prekeys) OneTimePrekey(id uint32) *identity.OneTimePrekey { return p.otp[id] }

func (p *prekeys) Consume(otpID uint32, hasOTP bool, kemID uint32, lastResort bool) error {
	if hasOTP {
		delete(p.otp, otpID)
	}
	if !lastResort {
		p.kem = nil
	}
	return nil
}

func Example() {
	now := time.Now()
	alice, _ := identity.NewDevice(nil)
	bob, _ := identity.NewDevice(nil)

	// Bob publishes a bundle and keeps the private halves.
	spk, _ := bob.NewSignedPrekey(nil, 1, now)
	kem, _ := bob.NewKEMPrekey(nil, 1, now, true)
	otps, _ := identity.NewOneTimePrekeys(nil, 1, 1)
	bundle := &identity.Bundle{Device: bob.Public(), SignedPrekey: spk.Public, KEMPrekey: kem.Public, OneTime: &otps[0].Public}
	store := &prekeys{spk: spk, kem: kem, otp: map[uint32]*identity.OneTimePrekey{1: otps[0]}}

	// Alice pins Bob's device as found in his verified device list, then
	// starts the session and sends her first message.
	pinned := bob.Public()
	aliceSession, initial, err := pqxdh.Initiate(nil, alice, pinned, bundle)
	if err != nil {
		panic(err)
	}
	initial.Message, _ = aliceSession.Encrypt(nil, []byte("hello Bob"))
	wireBytes, _ := initial.MarshalBinary()

	// Bob answers from his prekeys; the one-time prekey is consumed.
	m, _ := pqxdh.UnmarshalInitialMessage(wireBytes)
	bobSession, plaintext, err := pqxdh.Respond(bob, store, m)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s (one-time prekeys left: %d)\n", plaintext, len(store.otp))

	reply, _ := bobSession.Encrypt(nil, []byte("hi Alice"))
	plaintext, _ = aliceSession.Decrypt(reply)
	fmt.Printf("%s\n", plaintext)

	// The same initial message again is refused.
	_, _, err = pqxdh.Respond(bob, store, m)
	fmt.Println(err != nil)
	// Output:
	// hello Bob (one-time prekeys left: 0)
	// hi Alice
	// true
}
