package keyname

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
)

// benchStores are the plain store and the layer over another, so each
// benchmark reports what the names cost over the same work.
func benchStores() map[string]storage.Store {
	return map[string]storage.Store{
		"plain": memstore.New(),
		"named": New(memstore.New(), &testKey, map[string]Rule{
			"msgs":     {Sep: '\x1f', Parts: []Part{Name, Clear}},
			"chats":    {Sep: '/', Parts: []Part{Name}},
			"sessions": {Sep: '/', Parts: []Part{Name, Name}},
		}),
	}
}

// BenchmarkReceiveBatch: the records a received message writes (message,
// id index, ratchet, chat, receipt), three of them in named buckets.
func BenchmarkReceiveBatch(b *testing.B) {
	ctx := context.Background()
	for name, s := range benchStores() {
		b.Run(name, func(b *testing.B) {
			val := make([]byte, 600)
			for i := 0; b.Loop(); i++ {
				var bt storage.Batch
				bt.Put("msgs", fmt.Sprintf("bob\x1f%016x", i), val)
				bt.Put("msgidx", fmt.Sprintf("%032x", i), val[:40])
				bt.Put("sessions", "bob/0102030405060708090a0b0c0d0e0f10", val)
				bt.Put("chats", "bob", val[:80])
				bt.Put("outbox", fmt.Sprintf("%016x", i), val[:100])
				if err := s.Commit(ctx, &bt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHistoryPage: one page of 50 messages, newest first, out of a
// chat of 1,000 (the streamed Scan path).
func BenchmarkHistoryPage(b *testing.B) {
	ctx := context.Background()
	for name, s := range benchStores() {
		b.Run(name, func(b *testing.B) {
			var bt storage.Batch
			for i := range 1000 {
				bt.Put("msgs", fmt.Sprintf("bob\x1f%016x", i), make([]byte, 300))
			}
			if err := s.Commit(ctx, &bt); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				n := 0
				err := s.Scan(ctx, "msgs", "bob\x1f", storage.ScanOptions{Reverse: true, Limit: 50}, func(string, []byte) error { n++; return nil })
				if err != nil || n != 50 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// BenchmarkStoredKey: what naming one session key (two names) costs, the
// layer's whole work on a Get.
func BenchmarkStoredKey(b *testing.B) {
	s := New(memstore.New(), &testKey, nil)
	r := Rule{Sep: '/', Parts: []Part{Name, Name}}
	for b.Loop() {
		_ = s.storedKey("sessions", r, "bob/0102030405060708090a0b0c0d0e0f10")
	}
}
