package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/crypto/wire"
)

// The upload queue (PROTOCOL.md §14.4): a file sent while the device is
// offline, or whose upload the network interrupted, is kept in the store
// (sealed like every record) and shown as a pending message at once; the
// flusher uploads it when connected, before the outbox, and then queues
// the attachment message under the same id and send time, so a file is
// kept and sent once the connection is back, like text.
const (
	// uploadChunk is the size of the records a queued file is kept in:
	// well under storage.MaxValueLen, so no single write is large.
	uploadChunk = 1 << 20
	// maxQueuedUploads and maxQueuedUploadBytes bound what waits for a
	// connection; past them sending a file offline is refused (a clear
	// error, nothing is dropped).
	maxQueuedUploads     = 16
	maxQueuedUploadBytes = 100 << 20

	uploadVersion = 1
)

// ErrUploadQueueFull refuses a file while too much waits to be uploaded.
var ErrUploadQueueFull = &Error{Code: CodeUploadQueueFull, Message: fmt.Sprintf("at most %d files (%d MiB) can wait for a connection; send this one when online", maxQueuedUploads, maxQueuedUploadBytes>>20)}

// uploadRecord is a queued file's metadata, in bUploads under the message
// id; its bytes are in bUploadData under id/chunk.
type uploadRecord struct {
	To        string // a handle or a group's chat id
	Name      string
	Type      string
	Caption   string
	Thumbnail []byte
	Size      uint32
	Chunks    uint32
	SentAt    uint64
}

func (u *uploadRecord) marshal() []byte {
	w := wire.NewWriter(64 + len(u.To) + len(u.Name) + len(u.Type) + len(u.Caption) + len(u.Thumbnail))
	w.U8(uploadVersion)
	w.String(u.To)
	w.String(u.Name)
	w.String(u.Type)
	w.String(u.Caption)
	w.Var(u.Thumbnail)
	w.U32(u.Size)
	w.U32(u.Chunks)
	w.U64(u.SentAt)
	return w.Bytes()
}

func unmarshalUpload(b []byte) (*uploadRecord, error) {
	r := wire.NewReader(b)
	r.Version(uploadVersion)
	u := &uploadRecord{
		To: r.String(maxChatIDLen), Name: r.String(MaxFileNameLen), Type: r.String(MaxMIMETypeLen),
		Caption: r.String(MaxCaptionLen), Thumbnail: r.Var(MaxThumbnailSize),
	}
	u.Size, u.Chunks, u.SentAt = r.U32(), r.U32(), r.U64()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("upload record: %w", err)
	}
	if u.Size > MaxAttachmentSize || u.Chunks != (u.Size+uploadChunk-1)/uploadChunk {
		return nil, fmt.Errorf("upload record: %d chunks for %d bytes", u.Chunks, u.Size)
	}
	return u, nil
}

func uploadChunkKey(id string, i uint32) string { return fmt.Sprintf("%s/%04x", id, i) }

// queueUpload keeps f for upload and stores its message, pending, in one
// batch.
func (e *Engine) queueUpload(ctx context.Context, id MessageID, to string, f File) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.acct == nil:
		return "", ErrNoAccount
	case e.acct.Revoked:
		return "", ErrRevoked
	}
	n, total := 0, len(f.Data)
	err := e.cfg.Store.Scan(ctx, bUploads, "", storage.ScanOptions{}, func(_ string, v []byte) error {
		if u, err := unmarshalUpload(v); err == nil {
			n, total = n+1, total+int(u.Size)
		}
		return nil
	})
	if err != nil {
		return "", storageErr(err)
	}
	if n >= maxQueuedUploads || total > maxQueuedUploadBytes {
		return "", ErrUploadQueueFull
	}
	idHex := hex.EncodeToString(id[:])
	msg := &Message{
		ID: idHex, Chat: to, From: e.acct.Handle, FromDevice: e.dev.ID.String(),
		Text: f.Caption, SentAt: int64(e.nextSentAtLocked()), Outgoing: true, Status: StatusPending,
		Attachment: &Attachment{Name: f.Name, Type: f.Type, Size: int64(len(f.Data)), HasThumbnail: len(f.Thumbnail) > 0},
	}
	var b storage.Batch
	if err := e.putMessage(ctx, &b, msg, false); err != nil {
		return "", err
	}
	u := &uploadRecord{To: to, Name: f.Name, Type: f.Type, Caption: f.Caption, Thumbnail: f.Thumbnail,
		Size: uint32(len(f.Data)), SentAt: uint64(msg.SentAt)}
	for off := 0; off < len(f.Data); off += uploadChunk {
		b.Put(bUploadData, uploadChunkKey(idHex, u.Chunks), f.Data[off:min(off+uploadChunk, len(f.Data))])
		u.Chunks++
	}
	b.Put(bUploads, idHex, u.marshal())
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return "", storageErr(err)
	}
	go e.emit(Event{Type: "message", Message: msg, Chat: to})
	e.kickLocked()
	return idHex, nil
}

// queuedUpload returns a queued upload's record (nil, nil if id has none).
func (e *Engine) queuedUpload(ctx context.Context, id string) (*uploadRecord, error) {
	v, err := e.cfg.Store.Get(ctx, bUploads, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	u, err := unmarshalUpload(v)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "queued file %s is corrupt", id)
	}
	return u, nil
}

// queuedFile returns a queued upload's record and bytes (nil, nil, nil if
// id has none).
func (e *Engine) queuedFile(ctx context.Context, id string) (*uploadRecord, []byte, error) {
	u, err := e.queuedUpload(ctx, id)
	if u == nil || err != nil {
		return nil, nil, err
	}
	data := make([]byte, 0, u.Size)
	for i := uint32(0); i < u.Chunks; i++ {
		c, err := e.cfg.Store.Get(ctx, bUploadData, uploadChunkKey(id, i))
		if err != nil {
			return nil, nil, newError(ErrStorage.Code, err, "queued file %s is missing part %d", id, i)
		}
		data = append(data, c...)
	}
	if len(data) != int(u.Size) {
		return nil, nil, newError(ErrStorage.Code, nil, "queued file %s has %d of %d bytes", id, len(data), u.Size)
	}
	return u, data, nil
}

// flushUploads uploads queued files, oldest first, while connected, and
// queues each one's message. A network failure leaves the rest for the
// next flush; a file that can never go (corrupt, refused) is marked
// failed and dropped from the queue.
func (e *Engine) flushUploads(ctx context.Context) {
	for ctx.Err() == nil {
		e.mu.Lock()
		conn := e.conn
		gen := e.outboxGen.Load()
		if conn == nil || gen == e.uploadsClean {
			e.mu.Unlock()
			return // offline, or nothing queued since the queue was empty
		}
		var id string
		err := e.cfg.Store.Scan(ctx, bUploads, "", storage.ScanOptions{Limit: 1}, func(k string, _ []byte) error {
			id = k
			return nil
		})
		if err == nil && id == "" {
			e.uploadsClean = gen
		}
		e.mu.Unlock()
		if err != nil || id == "" {
			return
		}
		u, data, err := e.queuedFile(ctx, id)
		var ref *bulk.Ref
		if err == nil {
			ref, err = e.uploadBulk(ctx, conn, bulk.LabelAttachment, data, func(done, total int64) {
				e.emit(Event{Type: "transfer-progress", MessageID: id, Chat: u.To, Done: done, Total: total, Text: "upload"})
			})
		}
		if err != nil && isTransient(err) {
			e.log.Warn("queued file not uploaded yet", "err", err)
			return
		}
		e.mu.Lock()
		err = e.finishUploadLocked(ctx, id, u, ref, err)
		e.mu.Unlock()
		if err != nil {
			e.log.Error("queued file not recorded", "err", err)
			return
		}
	}
}

// finishUploadLocked removes a queued file and either queues its message
// (uploaded as ref) or, after a permanent failure cause, marks it failed.
func (e *Engine) finishUploadLocked(ctx context.Context, id string, u *uploadRecord, ref *bulk.Ref, cause error) error {
	var b storage.Batch
	b.Delete(bUploads, id)
	if u != nil {
		for i := uint32(0); i < u.Chunks; i++ {
			b.Delete(bUploadData, uploadChunkKey(id, i))
		}
	}
	raw, _ := hex.DecodeString(id)
	var mid MessageID
	copy(mid[:], raw)
	var gid groupID
	group := u != nil && strings.HasPrefix(u.To, groupChatPrefix)
	if group && cause == nil {
		gid, cause = parseGroupRef(u.To)
	}
	if cause != nil {
		e.setStatus(ctx, &b, mid, "failed")
		if err := e.cfg.Store.Commit(ctx, &b); err != nil {
			return storageErr(err)
		}
		e.log.Warn("a queued file could not be sent", "code", code(cause))
		go e.emit(Event{Type: "error", Code: code(cause), Text: cause.Error()})
		return nil
	}
	body := (&attachmentBody{Ref: ref, Name: u.Name, Type: u.Type, Caption: u.Caption, Thumbnail: u.Thumbnail}).marshal()
	p := &payload{Kind: kindAttachment, ID: mid, SentAt: u.SentAt, Body: body}
	b.Put(bAttach, id, (&attachmentRecord{Ref: ref.Marshal(), Thumbnail: u.Thumbnail}).marshal())
	if group {
		// A group file goes as one group message (its outbox re-checks
		// membership when it leaves).
		if err := e.putGroupOutboxLocked(ctx, &b, gid, p); err != nil {
			return err
		}
	} else {
		p.To = u.To
		seq, err := e.nextOutboxSeqLocked(ctx)
		if err != nil {
			return err
		}
		b.Put(bOutbox, seq, (&outboxRecord{Payload: p.marshal(), To: u.To}).marshal())
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		return storageErr(err)
	}
	return nil
}
