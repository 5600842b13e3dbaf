package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/parley-im/parley/client"
)

// lastMessageInView is a JS condition: the newest message of the open chat
// lies wholly inside the scroller's visible box.
const lastMessageInView = `(() => {
  const box = document.getElementById('messages').getBoundingClientRect();
  const ms = document.querySelectorAll('#message-list .msg');
  if (!ms.length) return false;
  const r = ms[ms.length - 1].getBoundingClientRect();
  return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
})()`

// TestUIChatWithImagesOpensAtNewestAndCountsNew: Bob sends Alice several
// images between texts; when she opens the chat, after every image has
// loaded, the newest message is still in view (before the fix the images
// loaded after the scroll and pushed it out of sight). Scrolled up, two
// new messages do not move her view but show "↓ 2 new"; clicking it goes
// to the newest and the button goes away.
func TestUIChatWithImagesOpensAtNewestAndCountsNew(t *testing.T) {
	srv := StartServer(t)
	ctx := context.Background()
	bob := NativeDevice(t, srv, "bob")
	a := NewBrowser(t)
	desktop(t, a)
	createAccountUI(t, a, srv.URL, "alice", "Alice's laptop")
	waitOnline(t, a)

	const images = 4
	for i := 0; i < images; i++ {
		if _, err := bob.SendText(ctx, "alice", fmt.Sprintf("text %d before an image", i)); err != nil {
			t.Fatal(err)
		}
		f := client.File{Name: fmt.Sprintf("photo-%d.png", i), Type: "image/png", Data: testPNG(t, 600, 400, uint8(60*i))}
		if _, err := bob.SendAttachment(ctx, "alice", f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.SendText(ctx, "alice", "the newest line"); err != nil {
		t.Fatal(err)
	}
	waitUI(t, a, "bob's chat with his last line", `(() => { const c = document.querySelector('#chat-list [data-chat="bob"]'); return !!c && c.innerText.includes('the newest line'); })()`)
	click(t, a, `#chat-list [data-chat="bob"]`)
	waitUI(t, a, "every image loaded", fmt.Sprintf(`(() => { const is = [...document.querySelectorAll('#message-list img.preview')]; return is.length === %d && is.every((i) => i.complete && i.naturalWidth === 600); })()`, images))
	time.Sleep(300 * time.Millisecond) // a few frames for any late layout
	if !MustEval[bool](a, lastMessageInView) {
		geo := MustEval[string](a, `(() => { const b = document.getElementById('messages'); const ms = document.querySelectorAll('#message-list .msg'); const r = ms[ms.length - 1].getBoundingClientRect(); return 'scroller ' + JSON.stringify(b.getBoundingClientRect()) + ' scrollTop ' + b.scrollTop + ' of ' + b.scrollHeight + '; last message ' + JSON.stringify(r); })()`)
		t.Fatalf("the chat with images did not open at its newest message: %s", geo)
	}

	// Scroll up with the mouse, as a reader does (a positive distance
	// scrolls up).
	scroll := func(dy float64) {
		t.Helper()
		x := MustEval[float64](a, `(() => { const r = document.getElementById('messages').getBoundingClientRect(); return r.left + r.width / 2; })()`)
		y := MustEval[float64](a, `(() => { const r = document.getElementById('messages').getBoundingClientRect(); return r.top + r.height / 2; })()`)
		ctx, cancel := contextFor(a)
		defer cancel()
		if _, err := chromedp.Call(ctx, input.SynthesizeScrollGesture, input.SynthesizeScrollGestureParams{X: x, Y: y, YDistance: dy, Speed: 4000, GestureSourceType: input.GestureSourceTypeMouse}); err != nil {
			t.Fatalf("scroll: %v", err)
		}
	}
	scroll(900) // up
	waitUI(t, a, "the view scrolled up", `(() => { const b = document.getElementById('messages'); return b.scrollHeight - b.scrollTop - b.clientHeight > 400; })()`)
	for _, text := range []string{"are you there?", "look at the photos"} {
		if _, err := bob.SendText(ctx, "alice", text); err != nil {
			t.Fatal(err)
		}
	}
	waitUI(t, a, "both new messages in the list", `document.getElementById('message-list').innerText.includes('look at the photos')`)
	waitUI(t, a, "the new-messages button", visible("#btn-new-messages")+` && document.getElementById('btn-new-messages').textContent.trim() === '↓ 2 new'`)
	if MustEval[bool](a, lastMessageInView) {
		t.Fatal("new messages scrolled a reader who had scrolled up to the bottom")
	}
	screenshot(t, a, "chat-new-below-desktop", 1280, 800)
	screenshot(t, a, "chat-new-below-phone", 390, 844)
	desktop(t, a)
	click(t, a, "#btn-new-messages")
	waitUI(t, a, "the newest message after the click", lastMessageInView+` && document.getElementById('btn-new-messages').hidden`)
}

// testPNG is a w×h PNG of one grey level: an image whose size the page
// cannot know before it decodes it.
func testPNG(t *testing.T, w, h int, grey uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = grey
	}
	img.Set(0, 0, color.Gray{Y: 255 - grey})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// attachUI sends the file at path through the attach button and its
// preview, with caption typed there if not empty.
func attachUI(t *testing.T, b *Browser, path, caption string) {
	t.Helper()
	if err := b.Do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{path})); err != nil {
		t.Fatalf("attach: %v", err)
	}
	waitUI(t, b, "the preview before sending", visible("#attach-dialog")+` && document.getElementById('attach-name').textContent.includes(`+jsString(filepath.Base(path))+`)`)
	if caption != "" {
		typeInto(t, b, "#attach-caption", caption)
	}
	click(t, b, "#attach-send")
	waitUI(t, b, "the preview closed", `!document.getElementById('attach-dialog').open`)
}

// TestUIImagePreviewCaptionViewerDropAndPaste: an image chosen with the
// attach button is previewed first, Cancel sends nothing, and Send sends
// it with the caption typed there; the image opens full screen with a Save
// link; a file dropped on the conversation and one pasted into the
// composer open the same preview.
func TestUIImagePreviewCaptionViewerDropAndPaste(t *testing.T) {
	srv := StartServer(t)
	bob := NativeDevice(t, srv, "bob")
	a := NewBrowser(t)
	desktop(t, a)
	createAccountUI(t, a, srv.URL, "alice", "Alice's laptop")
	waitOnline(t, a)
	openChatUI(t, a, "bob")

	icon, err := filepath.Abs("../web/icons/icon-192.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Do(chromedp.SetUploadFiles(chromedp.CSS("#composer-file"), []string{icon})); err != nil {
		t.Fatalf("attach: %v", err)
	}
	waitUI(t, a, "the preview of the image", visible("#attach-dialog")+` && (() => { const i = document.getElementById('attach-image'); return !i.hidden && i.complete && i.naturalWidth === 192; })()`)
	checkAndClose(t, a, "the preview before sending", "attach-preview", "#attach-cancel", "attach-dialog")
	if n := MustEval[float64](a, `document.querySelectorAll('#message-list .msg').length`); n != 0 {
		t.Fatalf("Cancel in the preview sent something: %v messages", n)
	}

	attachUI(t, a, icon, "the new icon")
	waitUI(t, a, "the sent image and its caption", `(() => { const i = document.querySelector('#message-list .msg.out img.preview'); return !!i && i.complete && i.naturalWidth === 192; })()`+
		` && document.getElementById('message-list').innerText.includes('the new icon')`)
	screenshot(t, a, "image-sent-desktop", 1280, 800)
	desktop(t, a)
	m := waitNativeFile(t, bob, "alice", "bob")
	if m.Attachment.Name != "icon-192.png" || m.Text != "the new icon" {
		t.Fatalf("bob stores %+v with text %q, want icon-192.png captioned \"the new icon\"", m.Attachment, m.Text)
	}
	if n := MustEval[float64](a, `document.querySelectorAll('#message-list .msg').length`); n != 1 {
		t.Fatalf("the captioned image is %v messages in the chat, want one", n)
	}

	click(t, a, "#message-list .msg.out .view-image")
	waitUI(t, a, "the full-screen viewer", visible("#viewer-image")+` && (() => { const i = document.getElementById('viewer-image'); const r = i.getBoundingClientRect(); return i.complete && r.width > 192 * 1.5; })()`+
		` && document.getElementById('viewer-save').download === 'icon-192.png' && document.getElementById('viewer-save').href.startsWith('blob:')`)
	checkAndClose(t, a, "the image viewer", "image-viewer", "#viewer-close", "viewer")

	// A drop on the conversation and a paste into the composer carry a
	// file in a DataTransfer, as the browser's own events do.
	for _, c := range []struct{ what, target, event string }{
		{"dropped", "#messages", "drop"},
		{"pasted", "#composer-text", "paste"},
	} {
		name := c.what + ".png"
		MustEval[bool](a, fmt.Sprintf(`fetch('/web/icons/icon-192.png').then((r) => r.blob()).then((png) => {
  const dt = new DataTransfer();
  dt.items.add(new File([png], %q, { type: 'image/png' }));
  const init = { bubbles: true, cancelable: true };
  const e = %q === 'drop' ? new DragEvent('drop', { ...init, dataTransfer: dt }) : new ClipboardEvent('paste', { ...init, clipboardData: dt });
  document.querySelector(%q).dispatchEvent(e);
  return true;
})`, name, c.event, c.target))
		waitUI(t, a, "the preview of the "+c.what+" file", visible("#attach-dialog")+` && document.getElementById('attach-name').textContent.includes(`+jsString(name)+`)`)
		click(t, a, "#attach-cancel")
		waitUI(t, a, "the preview closed", `!document.getElementById('attach-dialog').open`)
	}
}

// checkAndClose runs axe on an open dialog, saves its desktop and phone
// screenshots (shot-desktop, shot-phone) and closes it with the button
// closeSel.
func checkAndClose(t *testing.T, b *Browser, what, shot, closeSel, dialog string) {
	t.Helper()
	checkAxe(t, b, what)
	screenshot(t, b, shot+"-desktop", 1280, 800)
	screenshot(t, b, shot+"-phone", 390, 844)
	desktop(t, b)
	click(t, b, closeSel)
	waitUI(t, b, what+" closed", `!document.getElementById(`+jsString(dialog)+`).open`)
}
