//go:build !js

package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
)

// keySwapRelay serves, for a handle, another account's key and list: a
// relay putting its own account key in place of a contact's. With a
// signer (the relay's own account) the list is signed again naming the
// handle asked for, as a relay holding that key can; without one it is
// served as it is, naming the other account's handle.
type keySwapRelay struct {
	Relay
	mu     sync.Mutex
	alias  map[string]string            // handle → the account served for it
	signer map[string]*identity.Account // handle → key the served list is re-signed with
}

func (k *keySwapRelay) Account(ctx context.Context, handle string) ([]byte, []byte, error) {
	k.mu.Lock()
	as, ok := k.alias[handle]
	signer := k.signer[handle]
	k.mu.Unlock()
	if !ok {
		return k.Relay.Account(ctx, handle)
	}
	key, enc, err := k.Relay.Account(ctx, as)
	if err != nil || signer == nil {
		return key, enc, err
	}
	l, err := devicelist.Verify(key, as, enc)
	if err != nil {
		return nil, nil, err
	}
	l.Handle = handle
	enc, err = devicelist.Sign(signer, l)
	return key, enc, err
}

// serveAs serves as's account for handle; signer, if not nil, is as's
// account key, which re-signs the list naming handle.
func (k *keySwapRelay) serveAs(handle, as string, signer *identity.Account) {
	k.mu.Lock()
	if k.signer == nil {
		k.signer = map[string]*identity.Account{}
	}
	k.alias[handle], k.signer[handle] = as, signer
	k.mu.Unlock()
}

// TestSafetyNumberAckCannotPinSwappedKey: the relay serves Mallory's key
// for Alice, Bob is shown the changed number, and before he acknowledges
// it the relay swaps to Eve's key. The acknowledgement of the number Bob
// saw must not pin Eve's key (it used to pin whatever the relay served
// next); only a number Bob was shown for a key is what gets pinned.
func TestSafetyNumberAckCannotPinSwappedKey(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	swap := &keySwapRelay{alias: map[string]string{}}
	bob := newDevice(t, tr, "bob", func(d *device) {
		d.wrap = func(r Relay) Relay { swap.Relay = r; return swap }
	})
	if err := bob.eng.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	bob.run()
	alice := newAccount(t, tr, "alice", "alice")
	mallory := newAccount(t, tr, "mallory", "mallory")
	eve := newAccount(t, tr, "eve", "eve")
	if _, err := alice.eng.SendText(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", "hello")
	numberWith := func(d *device) identity.SafetyNumber {
		sn, err := identity.ComputeSafetyNumber("bob", bob.eng.acct.AccountPub, "alice", d.eng.acct.AccountPub)
		if err != nil {
			t.Fatal(err)
		}
		return sn
	}
	refresh := func() error {
		bob.eng.mu.Lock()
		defer bob.eng.mu.Unlock()
		_, err := bob.eng.listLocked(ctx, "alice", true)
		return err
	}
	pinned := func() ed25519.PublicKey {
		pin, err := bob.eng.loadPin(ctx, "alice")
		if err != nil || pin == nil {
			t.Fatalf("bob's pin of alice: %v, %v", pin, err)
		}
		return pin.AccountPub
	}

	swap.serveAs("alice", "mallory", mallory.eng.account)
	if err := refresh(); !errors.Is(err, ErrSafetyChanged) {
		t.Fatalf("a changed key: %v", err)
	}
	shown, err := bob.eng.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if shown.Digits != numberWith(mallory).Digits {
		t.Errorf("the safety screen shows %s, not the changed number %s (the old one is %s)", shown.Grouped(), numberWith(mallory).Grouped(), numberWith(alice).Grouped())
	}

	if err := bob.eng.AcknowledgeSafetyNumber(ctx, "alice", ""); code(err) != CodeInvalidArgument {
		t.Fatalf("acknowledging without the number shown: %v", err)
	}

	swap.serveAs("alice", "eve", eve.eng.account)
	err = bob.eng.AcknowledgeSafetyNumber(ctx, "alice", shown.Grouped())
	if got := pinned(); bytes.Equal(got, eve.eng.acct.AccountPub) {
		t.Fatalf("acknowledging the number shown for Mallory's key pinned Eve's key, which Bob never saw (ack: %v)", err)
	}
	if !errors.Is(err, ErrSafetyChanged) {
		t.Fatalf("acknowledging a number the relay replaced: %v, want %v", err, ErrSafetyChanged)
	}
	if !bytes.Equal(pinned(), alice.eng.acct.AccountPub) {
		t.Fatal("the refused acknowledgement changed the pinned key")
	}
	if _, err := bob.eng.SendText(ctx, "alice", "still paused?"); !errors.Is(err, ErrSafetyChanged) {
		t.Fatalf("sending after a refused acknowledgement: %v", err)
	}
	// The screen now shows Eve's number; the old one no longer pins.
	again, err := bob.eng.SafetyNumber(ctx, "alice")
	if err != nil || again.Digits != numberWith(eve).Digits {
		t.Fatalf("after the swap the screen shows %s (%v), want Eve's %s", again.Grouped(), err, numberWith(eve).Grouped())
	}
	if err := bob.eng.AcknowledgeSafetyNumber(ctx, "alice", shown.Digits); !errors.Is(err, ErrSafetyChanged) || !bytes.Equal(pinned(), alice.eng.acct.AccountPub) {
		t.Fatalf("acknowledging the replaced number again: %v", err)
	}

	// What was shown, and is still served, is what gets pinned.
	if err := bob.eng.AcknowledgeSafetyNumber(ctx, "alice", again.Grouped()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pinned(), eve.eng.acct.AccountPub) {
		t.Fatal("acknowledging Eve's number shown did not pin Eve's key")
	}
	if sn, err := bob.eng.SafetyNumber(ctx, "alice"); err != nil || sn.Digits != again.Digits {
		t.Fatalf("after acknowledging: %s, %v", sn.Grouped(), err)
	}
	// Sending is on again (the swapping relay here serves Eve's list
	// under Alice's handle without routing to it, so nothing arrives).
	if _, err := bob.eng.SendText(ctx, "alice", "to the acknowledged key"); err != nil {
		t.Fatalf("sending after acknowledging: %v", err)
	}
}
