//go:build !js

package client

import (
	"bytes"
	"testing"
)

// TestGroupFileReachesEveryMember sends a file to a group once: every
// device of every member (a member's linked browser too) and the sender's
// own other device store it and fetch the same bytes, from one upload. A
// second file, sent while the sender is offline, waits in the upload queue
// and reaches them once it reconnects.
func TestGroupFileReachesEveryMember(t *testing.T) {
	s := newGroupScenario(t)
	a1, a2 := s.account("alice")
	b1, b2 := s.account("bob")
	c1 := s.phone("carol")
	gid := s.create(a1, "Trip", "alice", "bob", "carol")
	s.send(a1, "hello group", a2, b1, b2, c1) // chains distributed

	data := randomBytes(t, 700_000)
	thumb := []byte("\xff\xd8\xff a tiny jpeg")
	id, err := a1.eng.SendAttachment(s.ctx, gid, File{Name: "map.png", Type: "image/png", Data: data, Thumbnail: thumb, Caption: "the route"})
	if err != nil {
		t.Fatalf("sending a file to a group: %v", err)
	}
	if n := len(progressOf(a1, "transfer-progress", id, "upload")); n == 0 {
		t.Fatal("no upload progress: the file was not uploaded")
	}
	want := Attachment{Name: "map.png", Type: "image/png", Size: int64(len(data)), HasThumbnail: true}
	for _, d := range []*device{a1, a2, b1, b2, c1} {
		m := waitMessageID(t, d, gid, id)
		if m.Attachment == nil || *m.Attachment != want || m.Text != "the route" || m.From != "alice" || m.Outgoing != (d == a1 || d == a2) {
			t.Fatalf("%s stores %+v (attachment %+v)", d.name, m, m.Attachment)
		}
		got, err := d.eng.FetchAttachment(s.ctx, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s fetched %d bytes, %v", d.name, len(got), err)
		}
		if th, err := d.eng.AttachmentThumbnail(s.ctx, id); err != nil || !bytes.Equal(th, thumb) {
			t.Fatalf("%s: thumbnail %q, %v", d.name, th, err)
		}
	}
	if chats, err := c1.eng.Chats(s.ctx); err != nil || len(chats) != 1 || !chats[0].LastFile || chats[0].LastText != "the route" {
		t.Fatalf("carol's chats after the file: %+v, %v", chats, err)
	}

	// Offline: kept, shown pending, uploaded and sent when connected.
	b2.stop()
	b2.start()
	off := randomBytes(t, 2*uploadChunk+5)
	qid, err := b2.eng.SendAttachment(s.ctx, gid, File{Name: "later.bin", Data: off})
	if err != nil {
		t.Fatalf("queueing a group file offline: %v", err)
	}
	if m := waitMessageID(t, b2, gid, qid); m.Status != StatusPending || m.Attachment == nil {
		t.Fatalf("queued group file %+v", m)
	}
	b2.stop()
	b2.start()
	b2.run()
	for _, d := range []*device{a1, a2, b1, c1} {
		waitMessageID(t, d, gid, qid)
		if got, err := d.eng.FetchAttachment(s.ctx, qid); err != nil || !bytes.Equal(got, off) {
			t.Fatalf("%s fetched the queued file: %d bytes, %v", d.name, len(got), err)
		}
	}
	eventually(t, "bob's browser's queued group file sent", func() bool {
		msgs, err := b2.eng.Messages(s.ctx, gid, "", 0)
		for _, m := range msgs {
			if m.ID == qid {
				return err == nil && m.Status == StatusSent
			}
		}
		return false
	})
}
