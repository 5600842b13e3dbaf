package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// Attachments (PROTOCOL.md §14.4). SendAttachment encrypts a file as a
// bulk object (crypto/bulk, through bulk.go), uploads it while the device
// is online, then queues a kindAttachment message carrying the blob
// reference, name, MIME type and an optional thumbnail; the usual fan-out
// delivers it to every device of the recipient and to our other devices.
// Receivers store the metadata at once and download on demand with
// FetchAttachment.

// Attachment limits.
const (
	// MaxAttachmentSize bounds one file: 25 MiB, the common messenger
	// limit, held twice (plain and sealed) in a browser tab's memory.
	MaxAttachmentSize = bulk.MaxSize
	// MaxFileNameLen bounds a file name in bytes.
	MaxFileNameLen = 255
	// MaxMIMETypeLen bounds a MIME type (RFC 6838 allows 127 + '/' + 127;
	// real ones are far shorter).
	MaxMIMETypeLen = 255
	// MaxCaptionLen bounds the text sent with a file.
	MaxCaptionLen = 4 << 10
	// MaxThumbnailSize bounds the preview the caller may supply (a small
	// JPEG or WebP); it travels inside the message, not as a blob.
	MaxThumbnailSize = 32 << 10

	attachmentVersion = 1
	// defaultMIMEType is what a file without a type is sent as.
	defaultMIMEType = "application/octet-stream"
)

// ErrAttachmentTooLarge refuses a file over MaxAttachmentSize.
var ErrAttachmentTooLarge = &Error{Code: CodeAttachmentTooLarge, Message: fmt.Sprintf("a file is at most %d MiB", MaxAttachmentSize>>20)}

// ErrNoAttachment is returned by FetchAttachment for a message without one.
var ErrNoAttachment = &Error{Code: CodeNoAttachment, Message: "that message has no attachment"}

// File is a file to send.
type File struct {
	// Name is shown to the recipient. It is not a path: receivers must
	// not use it as one without sanitising it.
	Name string
	// Type is the MIME type ("" sends application/octet-stream).
	Type string
	Data []byte
	// Thumbnail is an optional small preview made by the caller; the
	// engine does not decode images.
	Thumbnail []byte
	// Caption is optional text shown with the file.
	Caption string
}

// Attachment describes a message's file for the UI; FetchAttachment gets
// the bytes and AttachmentThumbnail the preview.
type Attachment struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	Size         int64  `json:"size"`
	HasThumbnail bool   `json:"hasThumbnail"`
}

// attachmentBody is the body of a kindAttachment payload.
type attachmentBody struct {
	Ref       *bulk.Ref
	Name      string
	Type      string
	Caption   string
	Thumbnail []byte
}

func (a *attachmentBody) marshal() []byte {
	ref := a.Ref.Marshal()
	w := wire.NewWriter(1 + 4*5 + len(ref) + len(a.Name) + len(a.Type) + len(a.Caption) + len(a.Thumbnail))
	w.U8(attachmentVersion)
	w.Var(ref)
	w.String(a.Name)
	w.String(a.Type)
	w.String(a.Caption)
	w.Var(a.Thumbnail)
	return w.Bytes()
}

func unmarshalAttachmentBody(b []byte) (*attachmentBody, error) {
	r := wire.NewReader(b)
	r.Version(attachmentVersion)
	refb := r.Var(bulk.MaxRefLen)
	a := &attachmentBody{}
	a.Name = r.String(MaxFileNameLen)
	a.Type = r.String(MaxMIMETypeLen)
	a.Caption = r.String(MaxCaptionLen)
	a.Thumbnail = r.Var(MaxThumbnailSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("attachment: %w", err)
	}
	ref, err := unmarshalBlobRef(refb)
	if err != nil {
		return nil, fmt.Errorf("attachment: %w", err)
	}
	a.Ref = ref
	if err := checkFileMeta(a.Name, a.Type, a.Caption); err != nil {
		return nil, fmt.Errorf("attachment: %w", err)
	}
	return a, nil
}

func checkFileMeta(name, typ, caption string) error {
	switch {
	case name == "" || !utf8.ValidString(name):
		return errors.New("a file name is 1 or more bytes of UTF-8")
	case typ == "" || !printableASCII(typ):
		return errors.New("a MIME type is printable ASCII")
	case !utf8.ValidString(caption):
		return errors.New("a caption is UTF-8")
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// attachmentRecord is what a device keeps to fetch a message's file:
// bucket bAttach, key = message id (hex).
type attachmentRecord struct {
	Ref       []byte // bulk.Ref.Marshal()
	Thumbnail []byte
}

func (a *attachmentRecord) marshal() []byte {
	w := wire.NewWriter(16 + len(a.Ref) + len(a.Thumbnail))
	w.U8(recordVersion)
	w.Var(a.Ref)
	w.Var(a.Thumbnail)
	return w.Bytes()
}

func unmarshalAttachmentRecord(b []byte) (*attachmentRecord, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	a := &attachmentRecord{Ref: r.Var(bulk.MaxRefLen), Thumbnail: r.Var(MaxThumbnailSize)}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("attachment record: %w", err)
	}
	return a, nil
}

// SendAttachment encrypts f, uploads it to the relay's blob store and
// queues a message carrying it to `to`, a handle or a group's chat id
// ("g:" + hex); it returns the message id. A group gets one upload and one
// group message carrying the reference and key, like its text. The upload
// reports "transfer-progress" events (MessageID, Done, Total in encrypted
// bytes, Text "upload") before the message itself appears; offline, the
// file waits in the upload queue (uploads.go). Once the call returns the
// message is in the outbox like any text.
func (e *Engine) SendAttachment(ctx context.Context, to string, f File) (string, error) {
	if len(f.Data) > MaxAttachmentSize {
		return "", ErrAttachmentTooLarge
	}
	if f.Type == "" {
		f.Type = defaultMIMEType
	}
	if len(f.Name) > MaxFileNameLen || len(f.Type) > MaxMIMETypeLen || len(f.Caption) > MaxCaptionLen || len(f.Thumbnail) > MaxThumbnailSize {
		return "", newError(CodeBadAttachment, nil, "a file name is at most %d bytes, a type %d, a caption %d and a thumbnail %d", MaxFileNameLen, MaxMIMETypeLen, MaxCaptionLen, MaxThumbnailSize)
	}
	if err := checkFileMeta(f.Name, f.Type, f.Caption); err != nil {
		return "", newError(CodeBadAttachment, err, "%v", err)
	}
	group := strings.HasPrefix(to, groupChatPrefix)
	if !group && !handleRule.MatchString(to) {
		return "", ErrBadHandle
	}
	e.mu.Lock()
	conn := e.conn
	acct := e.acct
	var gid groupID
	var err error
	if group && acct != nil {
		gid, err = e.sendableGroupLocked(ctx, to)
		to = groupChatID(gid)
	}
	e.mu.Unlock()
	switch {
	case acct == nil:
		return "", ErrNoAccount
	case acct.Revoked:
		return "", ErrRevoked
	case err != nil:
		return "", err
	}
	var id MessageID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return "", err
	}
	if conn == nil {
		// Offline: kept, shown pending, uploaded when connected.
		return e.queueUpload(ctx, id, to, f)
	}
	idHex := hex.EncodeToString(id[:])
	ref, err := e.uploadBulk(ctx, conn, bulk.LabelAttachment, f.Data, func(done, total int64) {
		e.emit(Event{Type: "transfer-progress", MessageID: idHex, Chat: to, Done: done, Total: total, Text: "upload"})
	})
	if err != nil && isTransient(err) {
		// The connection went during the upload: keep it for later.
		return e.queueUpload(ctx, id, to, f)
	}
	if err != nil {
		return "", err
	}
	body := (&attachmentBody{Ref: ref, Name: f.Name, Type: f.Type, Caption: f.Caption, Thumbnail: f.Thumbnail}).marshal()
	rec := (&attachmentRecord{Ref: ref.Marshal(), Thumbnail: f.Thumbnail}).marshal()
	decorate := func(b *storage.Batch, m *Message) {
		m.Attachment = &Attachment{Name: f.Name, Type: f.Type, Size: int64(len(f.Data)), HasThumbnail: len(f.Thumbnail) > 0}
		b.Put(bAttach, m.ID, rec)
	}
	if group {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.queueGroupLocked(ctx, gid, id, kindAttachment, body, f.Caption, decorate)
	}
	return e.queueID(ctx, id, kindAttachment, to, body, f.Caption, decorate)
}

// groupAttachment reads the attachment of a group payload p into m
// (its caption as the text), keeping the reference to store beside it.
func groupAttachment(p *payload, m *Message) error {
	a, err := unmarshalAttachmentBody(p.Body)
	if err != nil {
		return err
	}
	m.Text = a.Caption
	m.Attachment = &Attachment{Name: a.Name, Type: a.Type, Size: int64(a.Ref.Size), HasThumbnail: len(a.Thumbnail) > 0}
	m.attach = (&attachmentRecord{Ref: a.Ref.Marshal(), Thumbnail: a.Thumbnail}).marshal()
	return nil
}

// receiveAttachmentLocked stores an incoming (or own synced) attachment
// message with its reference; the file itself is fetched on demand.
func (e *Engine) receiveAttachmentLocked(ctx context.Context, b *storage.Batch, p *payload, from string, dev identity.DeviceID) ([]Event, error) {
	a, err := unmarshalAttachmentBody(p.Body)
	if err != nil {
		return nil, newError(CodeMalformed, err, "malformed attachment from %s", from)
	}
	own := from == e.acct.Handle
	chat := from
	if own {
		if p.To == "" || !handleRule.MatchString(p.To) {
			return nil, newError(CodeMalformed, nil, "a synced message names no chat")
		}
		chat = p.To
	}
	msg := &Message{
		ID: hex.EncodeToString(p.ID[:]), Chat: chat, From: from, FromDevice: dev.String(),
		Text: a.Caption, SentAt: int64(p.SentAt), Outgoing: own,
		Attachment: &Attachment{Name: a.Name, Type: a.Type, Size: int64(a.Ref.Size), HasThumbnail: len(a.Thumbnail) > 0},
	}
	if own {
		msg.Status = StatusSent
	}
	if err := e.putMessage(ctx, b, msg, !own); err != nil {
		return nil, err
	}
	b.Put(bAttach, msg.ID, (&attachmentRecord{Ref: a.Ref.Marshal(), Thumbnail: a.Thumbnail}).marshal())
	if !own {
		if err := e.queueReceiptLocked(ctx, b, from, receiptDelivered, []MessageID{p.ID}); err != nil {
			return nil, err
		}
	}
	return []Event{{Type: "message", Message: msg, Chat: chat}, {Type: "chats"}}, nil
}

// loadAttachment returns the stored reference of a message's file.
func (e *Engine) loadAttachment(ctx context.Context, messageID string) (*attachmentRecord, *Message, error) {
	raw, err := hex.DecodeString(messageID)
	if err != nil || len(raw) != 16 {
		return nil, nil, newError(CodeBadID, err, "not a message id: %q", messageID)
	}
	var id MessageID
	copy(id[:], raw)
	m, _, err := e.lookupMessage(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if m == nil {
		return nil, nil, newError(CodeNotFound, nil, "no message %s", messageID)
	}
	v, err := e.cfg.Store.Get(ctx, bAttach, m.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrNoAttachment
	}
	if err != nil {
		return nil, nil, storageErr(err)
	}
	rec, err := unmarshalAttachmentRecord(v)
	if err != nil {
		return nil, nil, newError(ErrStorage.Code, err, "attachment record of %s is corrupt", messageID)
	}
	return rec, m, nil
}

// FetchAttachment downloads a message's file from the relay, checks it
// against the digest and size the sender signed into the message (through
// the ratchet), and decrypts it. Altered, reordered, truncated or missing
// blobs give an ErrTampered error and no bytes. It reports
// "transfer-progress" events (Text "download"); the last one, Done ==
// Total, comes only after the file verified. Safe to call concurrently
// with everything else; it takes no engine lock.
func (e *Engine) FetchAttachment(ctx context.Context, messageID string) ([]byte, error) {
	rec, m, err := e.loadAttachment(ctx, messageID)
	if errors.Is(err, ErrNoAttachment) {
		// Our own file still waiting for a connection (uploads.go).
		if _, data, qerr := e.queuedFile(ctx, messageID); qerr != nil || data != nil {
			return data, qerr
		}
	}
	if err != nil {
		return nil, err
	}
	ref, err := unmarshalBlobRef(rec.Ref)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "attachment record of %s is corrupt", messageID)
	}
	return e.downloadBulk(ctx, bulk.LabelAttachment, ref, func(done, total int64) {
		e.emit(Event{Type: "transfer-progress", MessageID: m.ID, Chat: m.Chat, Done: done, Total: total, Text: "download"})
	})
}

// AttachmentThumbnail returns the preview sent with a message's file (nil
// if none).
func (e *Engine) AttachmentThumbnail(ctx context.Context, messageID string) ([]byte, error) {
	rec, _, err := e.loadAttachment(ctx, messageID)
	if errors.Is(err, ErrNoAttachment) {
		// Our own file still waiting for a connection (uploads.go).
		if u, qerr := e.queuedUpload(ctx, messageID); qerr != nil {
			return nil, qerr
		} else if u != nil {
			return u.Thumbnail, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return rec.Thumbnail, nil
}
