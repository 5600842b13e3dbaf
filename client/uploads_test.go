//go:build !js

package client

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-im/parley/client/storage"
)

// TestFileSentOffline: a file sent while Alice's device is offline is kept
// and shown pending (its bytes readable on her device), survives a
// restart, and is uploaded and delivered once she is connected; the queue
// is then empty. A queue over its bounds refuses with a clear error.
func TestFileSentOffline(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	alice, bob := greeted(t, tr, "hello")

	alice.stop()
	alice.start() // open, not connected
	data := randomBytes(t, 3*uploadChunk+123)
	id, err := alice.eng.SendAttachment(ctx, "bob", File{Name: "offline.bin", Data: data, Caption: "sent offline", Thumbnail: []byte("thumb")})
	if err != nil {
		t.Fatal(err)
	}
	m := waitMessageID(t, alice, "bob", id)
	if m.Status != StatusPending || m.Attachment == nil || m.Attachment.Size != int64(len(data)) {
		t.Fatalf("queued message %+v", m)
	}
	if got, err := alice.eng.FetchAttachment(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the queued file reads back %d bytes, %v", len(got), err)
	}
	if th, err := alice.eng.AttachmentThumbnail(ctx, id); err != nil || string(th) != "thumb" {
		t.Fatalf("thumbnail %q, %v", th, err)
	}

	alice.stop()
	alice.start()
	alice.run()
	got := waitMessageID(t, bob, "alice", id)
	if got.Text != "sent offline" || got.Attachment == nil || got.Attachment.Name != "offline.bin" || got.SentAt != m.SentAt {
		t.Fatalf("Bob got %+v (sent at %d)", got, m.SentAt)
	}
	file, err := bob.eng.FetchAttachment(ctx, id)
	if err != nil || !bytes.Equal(file, data) {
		t.Fatalf("Bob fetched %d bytes, %v", len(file), err)
	}
	eventually(t, "Alice's queue empty and the message sent", func() bool {
		n := 0
		alice.store.Scan(ctx, bUploads, "", storage.ScanOptions{}, func(string, []byte) error { n++; return nil })
		alice.store.Scan(ctx, bUploadData, "", storage.ScanOptions{}, func(string, []byte) error { n++; return nil })
		msgs, _ := alice.eng.Messages(ctx, "bob", "", 0)
		return n == 0 && len(msgs) == 2 && msgs[1].Status != StatusPending
	})

	// Bounds: offline again, the queue takes maxQueuedUploads files.
	alice.stop()
	alice.start()
	small := []byte("x")
	for i := 0; i < maxQueuedUploads; i++ {
		if _, err := alice.eng.SendAttachment(ctx, "bob", File{Name: "s", Data: small}); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	if _, err := alice.eng.SendAttachment(ctx, "bob", File{Name: "s", Data: small}); !errors.Is(err, ErrUploadQueueFull) {
		t.Fatalf("file over the queue's bound: %v", err)
	}
}
