package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserKilledMidReceive kills Alice's Chromium (SIGKILL) the moment
// her page shows a message of a burst, before the Sync that applies the
// journal and precedes the acknowledgement (PROTOCOL.md 13.6), and
// restarts it on the same profile: the journal records the killed run
// left are applied at start-up, the relay delivers the unacknowledged
// envelopes again, and every message shows exactly once, in order, with
// the session still working both ways.
func TestBrowserKilledMidReceive(t *testing.T) {
	srv := StartServer(t)
	ctx := context.Background()
	carol := NativeDevice(t, srv, "carol")
	profile := t.TempDir()
	alice := OpenBrowser(t, profile)
	ready(t, alice, srv.URL)
	MustEval[map[string]any](alice, `window.parley.createAccount('alice', 'Alice')`)

	var want []string
	send := func(text string) {
		t.Helper()
		if _, err := carol.SendText(ctx, "alice", text); err != nil {
			t.Fatal(err)
		}
		want = append(want, text)
	}
	send("warm-up")
	waitText(t, alice, "carol", "warm-up")
	replayed := 0
	for round := 0; round < 3 && replayed == 0; round++ {
		time.Sleep(300 * time.Millisecond) // everything so far synced and acknowledged
		MustEval[chromedp.Void](alice, `void window.parley.on('message', (e) => {
		  if (e.message && e.message.text.startsWith('burst')) console.log('parley-e2e: burst arrived');
		})`)
		arrived := make(chan struct{})
		lctx, stop := context.WithCancel(alice.ctx)
		go func() {
			for m, err := range chromedp.Console(lctx) {
				if err != nil {
					return
				}
				if strings.Contains(m.Text, "parley-e2e: burst arrived") {
					close(arrived)
					return
				}
			}
		}()
		for i := range 4 {
			send(fmt.Sprintf("burst %d.%d", round, i))
		}
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
			t.Fatal("no message of the burst arrived")
		}
		stop()
		alice.Kill()
		alice = OpenBrowser(t, profile)
		ready(t, alice, srv.URL)
		st := MustEval[map[string]any](alice, `window.parley.stats()`)
		replayed = int(st["journalReplayed"].(float64))
		t.Logf("round %d: start-up after the kill applied %d journal records", round, replayed)
	}
	if replayed == 0 {
		t.Fatal("the browser was never killed with journal records left; the test did not test the replay")
	}
	// Redelivered envelopes are duplicates of what the journal kept.
	waitText(t, alice, "carol", want[len(want)-1])
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := MustEval[[]map[string]any](alice, `window.parley.messages('carol', {limit: 200})`)
		var got []string
		for _, m := range msgs {
			got = append(got, m["text"].(string))
		}
		if strings.Join(got, "|") == strings.Join(want, "|") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kills Alice shows %q, want %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	MustEval[map[string]any](alice, `window.parley.send('carol', 'still here')`)
	waitNative(t, carol, "alice", "still here")
	alice.CheckConsole()
}
