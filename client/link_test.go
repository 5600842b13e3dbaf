//go:build !js

package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCompanionJoinsOnlyAfterConfirm is the shoulder-surfing attack on
// linking (PROTOCOL.md 7.5): Mallory sees Alice's QR code and answers it
// from his own primary before Alice's does. The companion must not send its
// join request, and so must not become a device of Mallory's account,
// until its user has confirmed the check code; the code it shows is
// Mallory's, which Alice's primary does not show, so she rejects it.
func TestCompanionJoinsOnlyAfterConfirm(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice-phone", "alice")
	mallory := newAccount(t, tr, "mallory-phone", "mallory")
	comp := newDevice(t, tr, "alice-browser")

	start, err := comp.eng.StartLink(ctx, "Alice's browser")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		handle string
		err    error
	}
	linked := make(chan res, 1)
	go func() {
		h, err := comp.eng.WaitLinked(ctx)
		linked <- res{h, err}
	}()

	// Mallory's primary answers first. Nobody has confirmed anything on
	// the companion, so no join request may reach him.
	mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	pending, err := mallory.eng.ApproveLink(mctx, start.Payload)
	cancel()
	if err == nil {
		if cerr := mallory.eng.ConfirmLink(ctx, pending.LinkID); cerr == nil {
			r := <-linked
			t.Fatalf("the companion sent its join request (as %q) without its user's confirmation and was linked into account %q (err %v)", pending.DeviceName, r.handle, r.err)
		}
		t.Fatalf("the companion sent its join request (as %q) to Mallory's primary without its user's confirmation", pending.DeviceName)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Mallory's ApproveLink: %v, want it still waiting for the companion", err)
	}
	eventually(t, "the companion's check code", func() bool { return comp.hasEvent("link-check", "") })
	if st := comp.eng.Status(); st.Handle != "" {
		t.Fatalf("the unconfirmed companion is in account %q", st.Handle)
	}

	// Alice's own primary finds the code taken and shows no check code,
	// so the code on the companion matches nothing: she rejects it.
	if _, err := alice.eng.ApproveLink(ctx, start.Payload); !errors.Is(err, ErrLinkUsed) {
		t.Fatalf("Alice's ApproveLink after Mallory's: %v, want %v", err, ErrLinkUsed)
	}
	select {
	case r := <-linked:
		t.Fatalf("WaitLinked ended before any confirmation: %q, %v", r.handle, r.err)
	default:
	}
	if err := comp.eng.RejectLinkCode(); err != nil {
		t.Fatal(err)
	}
	if r := <-linked; !errors.Is(r.err, ErrLinkRejected) {
		t.Fatalf("WaitLinked after RejectLinkCode: %q, %v; want %v", r.handle, r.err, ErrLinkRejected)
	}
	if st := comp.eng.Status(); st.Handle != "" {
		t.Fatalf("the rejected companion is in account %q", st.Handle)
	}
}

// TestRejectLinkCodeAbandons: the companion's user rejects the check code.
// Both sides end the link and say so (ErrLinkRejected on each), nothing is
// added to the account, and the companion has nothing left to confirm.
func TestRejectLinkCodeAbandons(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice-phone", "alice")
	comp := newDevice(t, tr, "alice-browser")
	if err := comp.eng.ConfirmLinkCode(); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("ConfirmLinkCode with no code shown: %v, want %v", err, ErrLinkUnknown)
	}
	start, err := comp.eng.StartLink(ctx, "Alice's browser")
	if err != nil {
		t.Fatal(err)
	}
	linked := make(chan error, 1)
	go func() { _, err := comp.eng.WaitLinked(ctx); linked <- err }()
	approved := make(chan error, 1)
	go func() { _, err := alice.eng.ApproveLink(ctx, start.Payload); approved <- err }()

	// The primary shows its code as soon as it sent the hello; it cannot
	// be confirmed there before the companion's user has answered.
	eventually(t, "the primary's check code", func() bool { return alice.hasEvent("link-check", "") })
	var lid string
	alice.mu.Lock()
	for _, ev := range alice.events {
		if ev.Type == "link-check" {
			lid = ev.LinkID
		}
	}
	alice.mu.Unlock()
	if err := alice.eng.ConfirmLink(ctx, lid); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("ConfirmLink before the companion answered: %v, want %v", err, ErrLinkUnknown)
	}
	for comp.eng.RejectLinkCode() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-linked; !errors.Is(err, ErrLinkRejected) {
		t.Fatalf("companion: WaitLinked = %v, want %v", err, ErrLinkRejected)
	}
	if err := <-approved; !errors.Is(err, ErrLinkRejected) {
		t.Fatalf("primary: ApproveLink = %v, want %v", err, ErrLinkRejected)
	}
	if err := alice.eng.ConfirmLink(ctx, lid); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("ConfirmLink after the rejection: %v, want %v", err, ErrLinkUnknown)
	}
	devs, err := alice.eng.Devices(ctx, true)
	if err != nil || len(devs) != 1 {
		t.Fatalf("alice's devices after the rejection: %v, %v", devs, err)
	}
	if st := comp.eng.Status(); st.Handle != "" {
		t.Fatalf("the rejected companion is in account %q", st.Handle)
	}
	if err := comp.eng.ConfirmLinkCode(); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("ConfirmLinkCode after the rejection: %v, want %v", err, ErrLinkUnknown)
	}
	if _, err := comp.eng.WaitLinked(ctx); !errors.Is(err, ErrLinkUnknown) {
		t.Fatalf("WaitLinked after the rejection: %v, want %v (the link is abandoned)", err, ErrLinkUnknown)
	}
}

// TestCancelLinkEndsApproveWait: the primary's user cancels while the
// companion has not answered yet; ApproveLink ends with ErrLinkCancelled.
func TestCancelLinkEndsApproveWait(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newAccount(t, tr, "alice-phone", "alice")
	comp := newDevice(t, tr, "alice-browser")
	start, err := comp.eng.StartLink(ctx, "Alice's browser")
	if err != nil {
		t.Fatal(err)
	}
	go comp.eng.WaitLinked(ctx)
	approved := make(chan error, 1)
	go func() { _, err := alice.eng.ApproveLink(ctx, start.Payload); approved <- err }()
	eventually(t, "the primary's check code", func() bool { return alice.hasEvent("link-check", "") })
	var lid string
	alice.mu.Lock()
	for _, ev := range alice.events {
		if ev.Type == "link-check" {
			lid = ev.LinkID
		}
	}
	alice.mu.Unlock()
	if err := alice.eng.CancelLink(lid); err != nil {
		t.Fatal(err)
	}
	if err := <-approved; !errors.Is(err, ErrLinkCancelled) {
		t.Fatalf("ApproveLink after CancelLink: %v, want %v", err, ErrLinkCancelled)
	}
}
