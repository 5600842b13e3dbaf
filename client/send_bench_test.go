//go:build !js

package client

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkSendReceive: one pairwise text from alice's device until bob's
// device has stored it, over the real relay on loopback (bbolt stores,
// fsync on every commit), on a session both ways already.
func BenchmarkSendReceive(b *testing.B) {
	tr := startRelay(b, nil)
	ctx := context.Background()
	alice, bob := newBenchAccount(b, tr, "alice"), newBenchAccount(b, tr, "bob")
	if _, err := alice.eng.SendText(ctx, "bob", "warm-up"); err != nil {
		b.Fatal(err)
	}
	bob.waitMessage("alice", "warm-up")
	if _, err := bob.eng.SendText(ctx, "alice", "reply"); err != nil {
		b.Fatal(err)
	}
	alice.waitMessage("bob", "reply")
	count := func() int {
		bob.mu.Lock()
		defer bob.mu.Unlock()
		n := 0
		for _, ev := range bob.events {
			if ev.Type == "message" && ev.Chat == "alice" {
				n++
			}
		}
		return n
	}
	base := count()
	b.ResetTimer()
	for i := range b.N {
		if _, err := alice.eng.SendText(ctx, "bob", fmt.Sprintf("bench %d", i)); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for count() < base+i+1 {
			if time.Now().After(deadline) {
				b.Fatalf("message %d never arrived", i)
			}
			select {
			case <-bob.notify:
			case <-time.After(time.Millisecond):
			}
		}
	}
}

func newBenchAccount(b *testing.B, tr *testRelay, handle string) *device {
	d := newDevice(b, tr, handle)
	if err := d.eng.CreateAccount(context.Background(), handle, handle); err != nil {
		b.Fatal(err)
	}
	d.run()
	return d
}
