package tstest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The device harness: each suite keeps its own device type (client's
// in-package tests reach into its fields), and these are the parts of one
// that do not depend on the suite. They take the engine as an interface
// and its types as type parameters, since this package cannot import
// client (see the package comment).

// Engine is the part of client.Engine a device runs.
type Engine interface {
	Run(ctx context.Context) error
	WaitOnline(ctx context.Context) error
}

// RunOnline runs eng in the background, as the app's process does, and
// waits up to within for it to come online. cancel ends the run; Run's
// result then arrives on done.
func RunOnline(t testing.TB, name string, eng Engine, within time.Duration) (cancel context.CancelFunc, done chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), within)
	defer wcancel()
	if err := eng.WaitOnline(wctx); err != nil {
		t.Fatalf("%s did not come online: %v", name, err)
	}
	return cancel, done
}

// StopRun ends a run RunOnline started and waits for Run to return. A nil
// cancel is no run.
func StopRun(cancel context.CancelFunc, done <-chan error) {
	if cancel != nil {
		cancel()
		<-done
	}
}

// Recorder returns an engine's OnEvent hook that appends every event to
// *events under mu, then wakes notify without blocking: a buffer of one
// keeps a wake-up for the next wait.
func Recorder[E any](mu *sync.Mutex, events *[]E, notify chan<- struct{}) func(E) {
	return func(ev E) {
		mu.Lock()
		*events = append(*events, ev)
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	}
}

// Messages is the part of client.Engine that WaitMessage reads; M is
// client.Message.
type Messages[M any] interface {
	Messages(ctx context.Context, chat, before string, limit int) ([]M, error)
}

// WaitMessage waits up to within until the engine of the device called
// name has stored a message in chat whose text (as textOf reads it) is
// text, and returns it. It looks again whenever wake receives (the
// device's events) or 50 ms pass.
func WaitMessage[M any](t testing.TB, name string, eng Messages[M], wake <-chan struct{}, within time.Duration, chat, text string, textOf func(M) string) M {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msgs, err := eng.Messages(context.Background(), chat, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if textOf(m) == text {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: message %q never arrived in chat %q (have %d messages)", name, text, chat, len(msgs))
		}
		select {
		case <-wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}
