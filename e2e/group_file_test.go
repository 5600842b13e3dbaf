package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-im/parley/client"
)

// TestUIGroupFileReachesEveryMember: Alice, in the page, makes a group with
// Bob (another browser) and Carol (a native account with a linked
// companion) and sends it an image through the attach button. Before the
// fix the page said "A handle is 3 to 32 lowercase letters…". Now it is one
// upload and one group message: Bob's page shows the image, and Carol's
// phone and her linked companion both fetch the same bytes.
func TestUIGroupFileReachesEveryMember(t *testing.T) {
	srv := StartServer(t)
	ctx := context.Background()
	carol := NativeDevice(t, srv, "carol")
	carolLinked := nativeCompanion(t, srv, carol, "Carol's laptop")
	a := NewBrowser(t)
	desktop(t, a)
	createAccountUI(t, a, srv.URL, "alice", "Alice's laptop")
	b := NewBrowser(t)
	phone(t, b)
	createAccountUI(t, b, srv.URL, "bob", "Bob's phone")

	click(t, a, "#btn-new-group")
	typeInto(t, a, "#newgroup-name", "Climbing")
	typeInto(t, a, "#newgroup-members", "bob, carol")
	click(t, a, "#form-newgroup button[type=submit]")
	waitUI(t, a, "the group conversation", visible("#composer-text")+` && document.getElementById('chat-title').textContent === 'Climbing'`)
	gid := MustEval[string](a, `window.parley.groups().then((gs) => gs[0].id)`)

	icon, err := filepath.Abs("../web/icons/icon-192.png")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(icon)
	if err != nil {
		t.Fatal(err)
	}
	attachUI(t, a, icon, "")
	waitUI(t, a, "the sent image in the group, no error", `(() => { const i = document.querySelector('#message-list .msg.out img.preview'); return !!i && i.complete && i.naturalWidth === 192; })()`+
		` || document.getElementById('composer-error').textContent !== ''`)
	if e := textOf(t, a, "#composer-error"); e != "" {
		t.Fatalf("sending a file to the group: %q", e)
	}

	waitUI(t, b, "the group in Bob's list", fmt.Sprintf(`!!document.querySelector('#chat-list [data-chat=%q]')`, gid))
	click(t, b, fmt.Sprintf(`#chat-list [data-chat=%q]`, gid))
	waitUI(t, b, "Alice's image in the group", `(() => { const m = document.querySelector('#message-list .msg.in'); const i = m && m.querySelector('img.preview'); return !!i && i.complete && i.naturalWidth === 192 && m.innerText.includes('alice'); })()`)
	screenshot(t, b, "group-image-phone", 390, 844)
	screenshot(t, a, "group-image-desktop", 1280, 800)

	for name, e := range map[string]*client.Engine{"carol's phone": carol, "carol's laptop": carolLinked} {
		m := waitNativeFile(t, e, gid, name)
		if m.From != "alice" || m.Attachment.Name != "icon-192.png" || m.Attachment.Type != "image/png" || m.Attachment.Size != int64(len(want)) {
			t.Fatalf("%s stores %+v (attachment %+v)", name, m, m.Attachment)
		}
		got, err := e.FetchAttachment(ctx, m.ID)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s fetched %d bytes, %v", name, len(got), err)
		}
	}
}

// waitNativeFile waits until a native engine stores a message with a file
// in chat and returns it.
func waitNativeFile(t *testing.T, e *client.Engine, chat, name string) client.Message {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		msgs, err := e.Messages(context.Background(), chat, "", 0)
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("%s: %v", name, err)
		}
		for _, m := range msgs {
			if m.Attachment != nil {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never stored the group's file (has %d messages)", name, len(msgs))
		}
	}
}

// nativeCompanion links a new native engine to primary's account (the
// companion's user confirming the check code at once) and runs it until
// the test ends.
func nativeCompanion(t *testing.T, srv *Server, primary *client.Engine, name string) *client.Engine {
	t.Helper()
	ctx, cancel, e := openNative(t, srv)
	start, err := e.StartLink(ctx, name)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	linked := make(chan error, 1)
	go func() {
		_, err := e.WaitLinked(ctx)
		linked <- err
	}()
	go func() {
		for ctx.Err() == nil && e.ConfirmLinkCode() != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	pending, err := primary.ApproveLink(ctx, start.Payload)
	if err == nil {
		err = primary.ConfirmLink(ctx, pending.LinkID)
	}
	if err == nil {
		err = <-linked
	}
	if err != nil {
		close(done)
		t.Fatalf("linking %s: %v", name, err)
	}
	go func() { defer close(done); e.Run(ctx) }()
	return e
}
