//go:build !js

package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/journal"
	"github.com/parley-im/parley/client/storage/memstore"
)

// TestCrashConsistencyDuringReceive stops Bob's engine at a different
// storage write each round (the injected commit failure: nothing of that
// batch lands, and the engine is dropped), restarts it from what a
// restarted process (or, every other round, a machine after a power cut)
// would find, and checks that in the end every
// message shows exactly once, in order, and the session still works both
// ways.
func TestCrashConsistencyDuringReceive(t *testing.T) { testCrashConsistency(t, false) }

// TestCrashConsistencyJournaled is the same over the journal the browser
// puts in front of IndexedDB (client/storage/journal): relaxed batches
// become journal records, applied at the Sync or by the next Open.
func TestCrashConsistencyJournaled(t *testing.T) { testCrashConsistency(t, true) }

func testCrashConsistency(t *testing.T, journaled bool) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice := newDevice(t, tr, "alice")
	if err := alice.eng.CreateAccount(ctx, "alice", "phone"); err != nil {
		t.Fatal(err)
	}
	alice.run()

	st := memstore.New()
	rel := NewRelayClock(tr.origin, tr.clock.Now)
	open := func(st *memstore.Store) *Engine {
		var store storage.Store = st
		if journaled {
			j, err := journal.Open(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			store = j
		}
		e, err := Open(ctx, Config{Store: store, Relay: rel, Now: tr.clock.Now, ReconnectMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	bob := open(st)
	if err := bob.CreateAccount(ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	// One clean session publishes Bob's prekeys.
	runFor := func(e *Engine, d time.Duration) {
		rctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		e.Run(rctx)
	}
	runFor(bob, 300*time.Millisecond)

	const rounds = 12
	sent, crashes, lost := 0, 0, 0
	for round := 1; round <= rounds; round++ {
		// Two new messages per round, so crashes land on initial messages,
		// ratchet steps, receipts and plain messages alike.
		for i := 0; i < 2; i++ {
			if _, err := alice.eng.SendText(ctx, "bob", fmt.Sprintf("m%02d", sent)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		time.Sleep(50 * time.Millisecond) // let them reach the relay
		st.FailAfter = round%4 + 1        // crash at the 1st…4th write
		runFor(bob, 300*time.Millisecond)
		// The crash: restart from the committed state only. Odd rounds
		// are power cuts, which also lose the relaxed receive batches no
		// Sync covered (whose envelopes were therefore not acknowledged).
		if st.Crashed {
			crashes++
		}
		if round%2 == 1 {
			lost += st.Unsynced()
			st = st.PowerCut()
		} else {
			st = st.Snapshot()
		}
		bob = open(st)
	}
	if lost == 0 {
		t.Fatal("no power cut lost a relaxed receive batch; the test does not test the acknowledgement after Sync")
	}
	t.Logf("%d crashes; power cuts lost %d relaxed receive batches", crashes, lost)
	if crashes < rounds/2 {
		t.Fatalf("only %d of %d rounds crashed mid-receive; the test does not test much", crashes, rounds)
	}
	runFor(bob, 700*time.Millisecond) // recover everything still queued
	msgs, err := bob.Messages(ctx, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != sent {
		var got []string
		for _, m := range msgs {
			got = append(got, m.Text)
		}
		t.Fatalf("after %d crashes Bob shows %d messages, want exactly %d: %v", rounds, len(msgs), sent, got)
	}
	for i, m := range msgs {
		if m.Text != fmt.Sprintf("m%02d", i) {
			t.Fatalf("message %d is %q", i, m.Text)
		}
	}
	// The ratchet survived: both directions still work.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bob.Run(rctx) }()
	defer func() { cancel(); <-done }()
	if _, err := bob.SendText(ctx, "alice", "still decrypting?"); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage("bob", "still decrypting?")
	if _, err := alice.eng.SendText(ctx, "bob", "yes"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the last message on Bob", func() bool {
		msgs, _ := bob.Messages(ctx, "alice", "", 0)
		return len(msgs) == sent+2 && msgs[len(msgs)-1].Text == "yes"
	})
}
