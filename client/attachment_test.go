//go:build !js

package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
)

// A blob of chunksPerBlob sealed chunks fits the relay's blob limit.
func TestBlobLimitMatchesRelay(t *testing.T) {
	if chunksPerBlob*(ChunkSize+bulk.TagSize) > relay.MaxBlob {
		t.Fatalf("a blob of %d chunks is over the relay's limit", chunksPerBlob)
	}
}

// waitMessageID waits until d stores message id in chat.
func waitMessageID(t *testing.T, d *device, chat, id string) Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		msgs, err := d.eng.Messages(context.Background(), chat, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.ID == id {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: message %s never arrived in chat %q", d.name, id, chat)
		}
		select {
		case <-d.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// progressOf returns d's progress events of one type (and message id).
func progressOf(d *device, typ, id, text string) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Event
	for _, ev := range d.events {
		if ev.Type == typ && ev.MessageID == id && ev.Text == text {
			out = append(out, ev)
		}
	}
	return out
}

// checkProgress: at least two events, Done never decreases, Total fixed,
// the last one complete.
func checkProgress(t *testing.T, what string, evs []Event) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("%s: %d progress events, want a start and an end", what, len(evs))
	}
	for i, ev := range evs {
		if ev.Total <= 0 || ev.Total != evs[0].Total || ev.Done > ev.Total {
			t.Fatalf("%s: event %d is %d/%d", what, i, ev.Done, ev.Total)
		}
		if i > 0 && ev.Done < evs[i-1].Done {
			t.Fatalf("%s: progress went back from %d to %d", what, evs[i-1].Done, ev.Done)
		}
	}
	if last := evs[len(evs)-1]; last.Done != last.Total {
		t.Fatalf("%s: progress ends at %d of %d", what, last.Done, last.Total)
	}
}

func newAccount(t *testing.T, tr *testRelay, name, handle string) *device {
	t.Helper()
	d := newDevice(t, tr, name)
	if err := d.eng.CreateAccount(ctxT(t), handle, name); err != nil {
		t.Fatal(err)
	}
	d.run()
	return d
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A 5 MB file from Alice's primary arrives intact on both of Bob's
// devices and on Alice's companion, with metadata and thumbnail; upload
// and download progress is monotonic and ends at the total.
func TestAttachmentReachesEveryDevice(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1 := newAccount(t, tr, "alice-phone", "alice")
	a2 := newDevice(t, tr, "alice-browser")
	linkCompanion(t, a1, a2, "Alice's browser")
	a2.run()
	b1 := newAccount(t, tr, "bob-phone", "bob")
	b2 := newDevice(t, tr, "bob-browser")
	linkCompanion(t, b1, b2, "Bob's browser")
	b2.run()

	data := randomBytes(t, 5_000_000)
	thumb := []byte("\xff\xd8\xff a tiny jpeg")
	id, err := a1.eng.SendAttachment(ctx, "bob", File{Name: "holiday.mov", Type: "video/quicktime", Data: data, Thumbnail: thumb, Caption: "the video"})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, "upload", progressOf(a1, "transfer-progress", id, "upload"))
	if m := waitMessageID(t, a1, "bob", id); !m.Outgoing || m.Attachment == nil || m.Attachment.Size != int64(len(data)) {
		t.Fatalf("sender stores %+v", m)
	}

	for _, d := range []*device{b1, b2, a2} {
		chat := "alice"
		if d == a2 {
			chat = "bob"
		}
		m := waitMessageID(t, d, chat, id)
		want := Attachment{Name: "holiday.mov", Type: "video/quicktime", Size: int64(len(data)), HasThumbnail: true}
		if m.Attachment == nil || *m.Attachment != want || m.Text != "the video" || m.Outgoing != (d == a2) {
			t.Fatalf("%s stores %+v (attachment %+v)", d.name, m, m.Attachment)
		}
		got, err := d.eng.FetchAttachment(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: the file differs", d.name)
		}
		th, err := d.eng.AttachmentThumbnail(ctx, id)
		if err != nil || !bytes.Equal(th, thumb) {
			t.Fatalf("%s: thumbnail %q, %v", d.name, th, err)
		}
		checkProgress(t, d.name+" download", progressOf(d, "transfer-progress", id, "download"))
	}
	// The chat list knows its last message carries a file.
	if chats, err := b1.eng.Chats(ctx); err != nil || len(chats) != 1 || !chats[0].LastFile || chats[0].LastText != "the video" {
		t.Fatalf("bob's chats after the file: %+v, %v", chats, err)
	}
	// The sender's own device can fetch it again too.
	if got, err := a1.eng.FetchAttachment(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("sender refetch: %v", err)
	}
	if _, err := a1.eng.FetchAttachment(ctx, "00112233445566778899aabbccddeeff"); err == nil {
		t.Fatal("fetched an unknown message")
	}
}

func TestAttachmentLimits(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a := newAccount(t, tr, "alice", "alice")
	newAccount(t, tr, "bob", "bob")
	if _, err := a.eng.SendAttachment(ctx, "bob", File{Name: "big", Data: make([]byte, MaxAttachmentSize+1)}); !errors.Is(err, ErrAttachmentTooLarge) {
		t.Fatalf("oversize file: %v", err)
	}
	if _, err := a.eng.SendAttachment(ctx, "bob", File{Name: "", Data: []byte("x")}); err == nil {
		t.Fatal("a file without a name was accepted")
	}
	if _, err := a.eng.SendAttachment(ctx, "bob", File{Name: "x", Data: []byte("x"), Thumbnail: make([]byte, MaxThumbnailSize+1)}); err == nil {
		t.Fatal("an oversize thumbnail was accepted")
	}
	// An empty file is a file.
	id, err := a.eng.SendAttachment(ctx, "bob", File{Name: "empty.txt", Type: "text/plain", Data: nil})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.eng.FetchAttachment(ctx, id); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %d bytes, %v", len(got), err)
	}
}

// tamperRelay is the real relay with a blob store that misbehaves on
// demand: it flips a byte, swaps two blobs, or truncates one.
type tamperRelay struct {
	Relay
	mu   sync.Mutex
	mode string
	ids  [][16]byte // blobs seen, for swapping
}

func (r *tamperRelay) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *tamperRelay) GetBlob(ctx context.Context, id [16]byte) ([]byte, error) {
	r.mu.Lock()
	mode := r.mode
	r.ids = append(r.ids, id)
	first := r.ids[0]
	r.mu.Unlock()
	if mode == "swap" && id != first {
		id = first // serve the first blob again in place of a later one
	}
	b, err := r.Relay.GetBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "flip":
		b[len(b)/2] ^= 0x01
	case "truncate":
		b = b[:len(b)-1]
	case "missing":
		return nil, newError("not_found", nil, "gone")
	}
	return b, nil
}

// A blob altered on the relay is refused with ErrTampered and no bytes;
// once the relay behaves, the same message fetches fine.
func TestAttachmentTamperedRefused(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a := newAccount(t, tr, "alice", "alice")
	bob := newDevice(t, tr, "bob")
	bob.stop()
	tamper := &tamperRelay{Relay: bob.relay}
	bob.relay = tamper
	bob.start()
	if err := bob.eng.CreateAccount(ctx, "bob", "bob"); err != nil {
		t.Fatal(err)
	}
	bob.run()

	data := randomBytes(t, 5_000_000) // two blobs
	id, err := a.eng.SendAttachment(ctx, "bob", File{Name: "report.pdf", Type: "application/pdf", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	waitMessageID(t, bob, "alice", id)
	for _, mode := range []string{"flip", "swap", "truncate"} {
		tamper.setMode(mode)
		got, err := bob.eng.FetchAttachment(ctx, id)
		if !errors.Is(err, ErrTampered) || got != nil {
			t.Fatalf("%s: got %d bytes, err %v; want ErrTampered", mode, len(got), err)
		}
	}
	tamper.setMode("missing")
	if got, err := bob.eng.FetchAttachment(ctx, id); !errors.Is(err, ErrAttachmentGone) || got != nil {
		t.Fatalf("missing blob: got %d bytes, err %v; want ErrAttachmentGone", len(got), err)
	}
	tamper.setMode("")
	if got, err := bob.eng.FetchAttachment(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("untampered fetch: %v", err)
	}
}

// After Alice and Bob talk, a newly linked companion shows the
// conversation — order, direction and attachments — as soon as WaitLinked
// returns, before it ever connects.
func TestHistoryAtLink(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1 := newAccount(t, tr, "alice-phone", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	carol := newAccount(t, tr, "carol", "carol")

	type line struct {
		from *device
		to   string
		text string
	}
	script := []line{
		{a1, "bob", "hi bob"},
		{bob, "alice", "hi alice"},
		{a1, "bob", "how are you?"},
		{bob, "alice", "fine, and you?"},
		{carol, "alice", "alice, it's carol"},
		{a1, "carol", "hello carol"},
	}
	for _, l := range script {
		if _, err := l.from.eng.SendText(ctx, l.to, l.text); err != nil {
			t.Fatal(err)
		}
		if l.from == a1 {
			// The next line answers this one: keep the order.
			map[string]*device{"bob": bob, "carol": carol}[l.to].waitMessage("alice", l.text)
		} else {
			a1.waitMessage(l.from.eng.Status().Handle, l.text)
		}
	}
	photo := randomBytes(t, 300_000)
	pid, err := bob.eng.SendAttachment(ctx, "alice", File{Name: "cat.jpg", Type: "image/jpeg", Data: photo, Thumbnail: []byte("thumb")})
	if err != nil {
		t.Fatal(err)
	}
	waitMessageID(t, a1, "bob", pid)

	a2 := newDevice(t, tr, "alice-browser")
	linkCompanion(t, a1, a2, "Alice's browser")
	// Not connected yet: everything below comes from the history bundle.
	if st := a2.eng.Status(); st.Online {
		t.Fatal("the companion is online before Run")
	}
	want := map[string][]line{}
	for _, l := range script {
		chat := l.to
		if l.from != a1 {
			chat = l.from.eng.Status().Handle
		}
		want[chat] = append(want[chat], l)
	}
	for chat, lines := range want {
		msgs, err := a2.eng.Messages(ctx, chat, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if chat == "bob" {
			if len(msgs) != len(lines)+1 || msgs[len(msgs)-1].ID != pid {
				t.Fatalf("chat bob: %d messages, want %d and the photo last", len(msgs), len(lines)+1)
			}
			m := msgs[len(msgs)-1]
			if m.Attachment == nil || m.Attachment.Name != "cat.jpg" || !m.Attachment.HasThumbnail || m.Outgoing {
				t.Fatalf("photo in history: %+v", m.Attachment)
			}
			msgs = msgs[:len(msgs)-1]
		}
		if len(msgs) != len(lines) {
			t.Fatalf("chat %s: %d messages, want %d", chat, len(msgs), len(lines))
		}
		for i, l := range lines {
			if msgs[i].Text != l.text || msgs[i].Outgoing != (l.from == a1) {
				t.Fatalf("chat %s message %d: %q outgoing=%v, want %q outgoing=%v", chat, i, msgs[i].Text, msgs[i].Outgoing, l.text, l.from == a1)
			}
		}
	}
	chats, err := a2.eng.Chats(ctx)
	if err != nil || len(chats) != 2 || chats[0].ID != "bob" {
		t.Fatalf("chats %+v, %v", chats, err)
	}
	checkProgress(t, "history store", progressOf(a2, "sync-progress", "", "store"))
	checkProgress(t, "history download", progressOf(a2, "sync-progress", "", "download"))
	// The primary emits from a goroutine (it holds its lock meanwhile).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		up := progressOf(a1, "sync-progress", "", "upload")
		if n := len(up); (n > 0 && up[n-1].Done == up[n-1].Total) || time.Now().After(deadline) {
			checkProgress(t, "history upload", up)
			break
		}
	}
	// Attachments in the history can be fetched (blobs need no socket).
	if got, err := a2.eng.FetchAttachment(ctx, pid); err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("photo from history: %v", err)
	}

	// Online, the companion goes on where the history ended, and a
	// message already in its history is not shown twice.
	a2.run()
	if _, err := bob.eng.SendText(ctx, "alice", "welcome, browser"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "welcome, browser")
	msgs, _ := a2.eng.Messages(ctx, "bob", "", 0)
	if len(msgs) != len(want["bob"])+2 {
		t.Fatalf("chat bob after going online: %d messages", len(msgs))
	}
}

// The relay's per-account blob quota surfaces as ErrBlobQuota.
func TestAttachmentQuota(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.BlobQuota = 3 << 20 })
	ctx := ctxT(t)
	a := newAccount(t, tr, "alice", "alice")
	newAccount(t, tr, "bob", "bob")
	if _, err := a.eng.SendAttachment(ctx, "bob", File{Name: "one", Data: make([]byte, 2<<20)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.SendAttachment(ctx, "bob", File{Name: "two", Data: make([]byte, 2<<20)}); !errors.Is(err, ErrBlobQuota) {
		t.Fatalf("over the quota: %v", err)
	}
}

// A history bundle the relay alters is refused and reported; the link
// itself stands and the companion starts empty, then works.
func TestHistoryTamperedLinkStands(t *testing.T) {
	tr := startRelay(t, nil)
	ctx := ctxT(t)
	a1 := newAccount(t, tr, "alice-phone", "alice")
	bob := newAccount(t, tr, "bob", "bob")
	if _, err := bob.eng.SendText(ctx, "alice", "before the link"); err != nil {
		t.Fatal(err)
	}
	a1.waitMessage("bob", "before the link")

	a2 := newDevice(t, tr, "alice-browser")
	a2.stop()
	tamper := &tamperRelay{Relay: a2.relay, mode: "flip"}
	a2.relay = tamper
	a2.start()
	linkCompanion(t, a1, a2, "Alice's browser")
	if msgs, _ := a2.eng.Messages(ctx, "bob", "", 0); len(msgs) != 0 {
		t.Fatalf("a tampered history left %d messages", len(msgs))
	}
	reported := false
	a2.mu.Lock()
	for _, ev := range a2.events {
		reported = reported || (ev.Type == "error" && ev.Code == ErrTampered.Code)
	}
	a2.mu.Unlock()
	if !reported {
		t.Fatal("the refused history was not reported")
	}
	a2.run()
	if _, err := bob.eng.SendText(ctx, "alice", "after the link"); err != nil {
		t.Fatal(err)
	}
	a2.waitMessage("bob", "after the link")
}
