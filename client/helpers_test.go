//go:build !js

package client

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/boltstore"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/server/relayserver"
)

// testRelay is the real relay on a loopback port, with its own store.
type testRelay struct {
	origin string
	clock  *fakeClock
}

// fakeClock is shared by the relay and the engines so expiry can be tested.
type fakeClock = tstest.Clock

func startRelay(t testing.TB, tweak func(*relayserver.Config)) *testRelay {
	t.Helper()
	r := tstest.StartRelay(t, tweak)
	return &testRelay{origin: r.Origin, clock: r.Clock}
}

// device is one engine with a file store that outlives the engine, so a
// test can stop a device entirely and start it again from disk.
type device struct {
	t      testing.TB
	name   string
	path   string
	relay  Relay
	clock  *fakeClock
	store  *boltstore.Store
	eng    *Engine
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []Event
	notify chan struct{}

	attestationAge time.Duration // 0: the default
	wrap           func(Relay) Relay
	// wrapStore, if set, is given the device's file store at every start
	// and returns the store the engine uses.
	wrapStore func(storage.Store) storage.Store
}

func newDevice(t testing.TB, tr *testRelay, name string, opts ...func(*device)) *device {
	d := &device{t: t, name: name, path: filepath.Join(t.TempDir(), name+".db"), relay: NewRelayClock(tr.origin, tr.clock.Now), clock: tr.clock}
	for _, o := range opts {
		o(d)
	}
	d.start()
	t.Cleanup(d.stop)
	return d
}

// start opens the engine from its file and runs it.
func (d *device) start() {
	d.t.Helper()
	st, err := boltstore.Open(d.path)
	if err != nil {
		d.t.Fatal(err)
	}
	d.store = st
	// The engine's events go to this start's channel: an event the
	// previous engine emits late must not read d.notify while it changes.
	notify := make(chan struct{}, 1)
	d.notify = notify
	rel := d.relay
	if d.wrap != nil {
		rel = d.wrap(rel)
	}
	var est storage.Store = st
	if d.wrapStore != nil {
		est = d.wrapStore(st)
	}
	eng, err := Open(context.Background(), Config{
		Store: est, Relay: rel, Now: d.clock.Now,
		OnEvent:        tstest.Recorder(&d.mu, &d.events, notify),
		Logger:         testLogger(d.t, d.name),
		ReconnectMax:   500 * time.Millisecond,
		AttestationAge: d.attestationAge,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.eng = eng
}

func testLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("dev", name)
}

// run connects the engine in the background and waits until it is online.
func (d *device) run() {
	d.t.Helper()
	d.cancel, d.done = tstest.RunOnline(d.t, d.name, d.eng, 10*time.Second)
}

// stop ends the engine and closes its store, like quitting the process.
func (d *device) stop() {
	tstest.StopRun(d.cancel, d.done)
	d.cancel = nil
	if d.store != nil {
		d.store.Close()
		d.store = nil
	}
}

// restart is stop then start+run from the same file.
func (d *device) restart() {
	d.stop()
	d.start()
	d.run()
}

// waitMessage waits until the engine has stored a message with text in chat.
func (d *device) waitMessage(chat, text string) Message {
	d.t.Helper()
	return tstest.WaitMessage(d.t, d.name, d.eng, d.notify, 10*time.Second, chat, text, func(m Message) string { return m.Text })
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// linkCompanion links comp to the account of primary and returns the check
// codes both sides showed.
func linkCompanion(t testing.TB, primary, comp *device, name string) (string, string) {
	t.Helper()
	ctx := ctxT(t)
	start, err := comp.eng.StartLink(ctx, name)
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
	go confirmWhenShown(ctx, comp.eng)
	pending, err := primary.eng.ApproveLink(ctx, start.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if pending.DeviceName != name {
		t.Fatalf("primary sees device name %q, want %q", pending.DeviceName, name)
	}
	if err := primary.eng.ConfirmLink(ctx, pending.LinkID); err != nil {
		t.Fatal(err)
	}
	r := <-linked
	if r.err != nil {
		t.Fatal(r.err)
	}
	var compCode string
	comp.mu.Lock()
	for _, ev := range comp.events {
		if ev.Type == "link-check" {
			compCode = ev.CheckCode
		}
	}
	comp.mu.Unlock()
	return pending.CheckCode, compCode
}

// confirmWhenShown is the companion's user confirming the check code as
// soon as it is shown.
func confirmWhenShown(ctx context.Context, e *Engine) {
	for ctx.Err() == nil && e.ConfirmLinkCode() != nil {
		time.Sleep(10 * time.Millisecond)
	}
}

var _ storage.Store = (*boltstore.Store)(nil)

// hasEvent reports whether the device saw an event of type typ with code.
func (d *device) hasEvent(typ string, code Code) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range d.events {
		if ev.Type == typ && (code == "" || ev.Code == code) {
			return true
		}
	}
	return false
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greeted makes the accounts alice and bob, running, with a session from
// alice to bob: her message text has reached him.
func greeted(t *testing.T, tr *testRelay, text string) (alice, bob *device) {
	t.Helper()
	alice = newAccount(t, tr, "alice", "alice")
	bob = newAccount(t, tr, "bob", "bob")
	if _, err := alice.eng.SendText(ctxT(t), "bob", text); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage("alice", text)
	return alice, bob
}
