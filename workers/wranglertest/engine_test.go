package wranglertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/client/storage/boltstore"
	"github.com/parley-im/parley/internal/tstest"
)

// TestEngineHeadline is the engine's native headline (client's
// TestCompanionWorksWithPrimaryOff, then TestRevokeCompanion's core) on
// both back ends: link, primary off, both directions, companion restart,
// primary catching up, revoke.
func TestEngineHeadline(t *testing.T) {
	t.Run("go", func(t *testing.T) { headline(t, startGoRelay(t)) })
	t.Run("workers", func(t *testing.T) { headline(t, startWrangler(t).origin) })
}

func headline(t *testing.T, origin string) {
	ctx := ctx(t)
	run := fmt.Sprintf("%x", randBytes(3))
	alice, bob := "alice-"+run, "bob-"+run

	a1 := newDevice(t, origin, "alice-phone")
	if err := a1.eng.CreateAccount(ctx, alice, "Alice's phone"); err != nil {
		t.Fatal(err)
	}
	a1.run()
	b := newDevice(t, origin, "bob")
	if err := b.eng.CreateAccount(ctx, bob, "Bob's laptop"); err != nil {
		t.Fatal(err)
	}
	b.run()

	a2 := newDevice(t, origin, "alice-browser")
	if p, c := linkCompanion(t, a1, a2, "Alice's browser"); p == "" || p != c {
		t.Fatalf("check codes differ: primary %q, companion %q", p, c)
	}
	if st := a2.eng.Status(); st.Status != "ready" || st.Handle != alice || st.Primary {
		t.Fatalf("companion status %+v", st)
	}
	a2.run()

	send(t, a1, bob, "hi bob, from my phone")
	b.waitMessage(alice, "hi bob, from my phone")
	a2.waitMessage(bob, "hi bob, from my phone") // self-sync

	a1.stop() // the primary's process stops entirely
	send(t, b, alice, "are you there, alice?")
	if got := a2.waitMessage(bob, "are you there, alice?"); got.Outgoing || got.From != bob {
		t.Fatalf("companion stored %+v", got)
	}
	send(t, a2, bob, "yes, on my browser, phone is off")
	if got := b.waitMessage(alice, "yes, on my browser, phone is off"); got.FromDevice != a2.eng.Device().ID.String() {
		t.Fatalf("bob sees the reply from device %s, want the companion", got.FromDevice)
	}

	a2.restart() // from its store: no relink, history kept
	a2.waitMessage(bob, "are you there, alice?")
	send(t, b, alice, "still there after your restart?")
	a2.waitMessage(bob, "still there after your restart?")
	send(t, a2, bob, "still here")
	b.waitMessage(alice, "still here")

	a1.start() // the primary comes back and catches up from its mailbox
	a1.run()
	for _, text := range []string{"are you there, alice?", "yes, on my browser, phone is off", "still there after your restart?", "still here"} {
		m := a1.waitMessage(bob, text)
		if (strings.HasPrefix(text, "yes") || text == "still here") && (!m.Outgoing || m.FromDevice != a2.eng.Device().ID.String()) {
			t.Fatalf("primary shows %+v; want outgoing from the companion", m)
		}
	}

	// Revoke: the companion's engine stops with ErrRevoked, and Bob's
	// next message reaches the primary.
	if err := a1.eng.RevokeDevice(ctx, a2.eng.Device().ID.String()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a2.done:
		if !errors.Is(err, client.ErrRevoked) {
			t.Fatalf("companion's Run ended with %v, want revoked", err)
		}
		a2.cancel = nil
	case <-time.After(10 * time.Second):
		t.Fatal("revoked companion still running after 10 s")
	}
	if _, err := a2.eng.SendText(ctx, bob, "am I still here?"); !errors.Is(err, client.ErrRevoked) {
		t.Fatalf("send from the revoked companion: %v", err)
	}
	send(t, b, alice, "after")
	a1.waitMessage(bob, "after")
}

func send(t *testing.T, d *device, to, text string) {
	t.Helper()
	if _, err := d.eng.SendText(ctx(t), to, text); err != nil {
		t.Fatalf("%s sending %q: %v", d.name, text, err)
	}
}

// device is one engine with a file store that outlives it, so a test can
// stop a device entirely and start it again from disk.
type device struct {
	t      *testing.T
	name   string
	path   string
	origin string
	store  *boltstore.Store
	eng    *client.Engine
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []client.Event
	notify chan struct{}
}

func newDevice(t *testing.T, origin, name string) *device {
	d := &device{t: t, name: name, origin: origin, path: filepath.Join(t.TempDir(), name+".db")}
	d.start()
	t.Cleanup(d.stop)
	return d
}

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
	eng, err := client.Open(context.Background(), client.Config{
		Store: st, Relay: client.NewRelay(d.origin),
		OnEvent:      tstest.Recorder(&d.mu, &d.events, notify),
		Logger:       slog.New(slog.DiscardHandler),
		ReconnectMax: 500 * time.Millisecond,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.eng = eng
}

// run connects the engine in the background and waits until it is online.
func (d *device) run() {
	d.t.Helper()
	d.cancel, d.done = tstest.RunOnline(d.t, d.name, d.eng, 20*time.Second)
}

func (d *device) stop() {
	tstest.StopRun(d.cancel, d.done)
	d.cancel = nil
	if d.store != nil {
		d.store.Close()
		d.store = nil
	}
}

func (d *device) restart() {
	d.stop()
	d.start()
	d.run()
}

func (d *device) waitMessage(chat, text string) client.Message {
	d.t.Helper()
	return tstest.WaitMessage(d.t, d.name, d.eng, d.notify, 20*time.Second, chat, text, func(m client.Message) string { return m.Text })
}

// linkCompanion links comp to primary's account and returns the check
// codes both sides showed.
func linkCompanion(t *testing.T, primary, comp *device, name string) (string, string) {
	t.Helper()
	ctx := ctx(t)
	start, err := comp.eng.StartLink(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	linked := make(chan error, 1)
	go func() { _, err := comp.eng.WaitLinked(ctx); linked <- err }()
	go func() { // the companion's user confirms the check code once shown
		for ctx.Err() == nil && comp.eng.ConfirmLinkCode() != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	pending, err := primary.eng.ApproveLink(ctx, start.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := primary.eng.ConfirmLink(ctx, pending.LinkID); err != nil {
		t.Fatal(err)
	}
	if err := <-linked; err != nil {
		t.Fatal(err)
	}
	var code string
	comp.mu.Lock()
	for _, ev := range comp.events {
		if ev.Type == "link-check" {
			code = ev.CheckCode
		}
	}
	comp.mu.Unlock()
	return pending.CheckCode, code
}
