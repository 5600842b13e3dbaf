package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/crypto/link"
	"github.com/parley-im/parley/crypto/wire"
)

// History sync at link time (PROTOCOL.md §14.4). When the primary confirms
// a link it encodes its chats and the last HistoryLimit messages of each,
// stores that as a bulk object (bulk.go: fresh key, chunked AES-256-GCM,
// blobs on the relay) and puts the blob reference in the sealed link
// bundle. The companion downloads, verifies and decrypts it and stores it
// in batches before it records its account, so it shows the history before
// it ever connects and before any new message can arrive.

// History limits.
const (
	// DefaultHistoryLimit is Config.HistoryLimit's default: messages per chat.
	DefaultHistoryLimit = 200
	// MaxHistoryLimit bounds Config.HistoryLimit and a decoded chat.
	MaxHistoryLimit = 1000
	// maxHistoryChats bounds the chats of one bundle.
	maxHistoryChats = 1000
	// maxHistorySize bounds the encoded history; the primary stops adding
	// older messages (least recent chats first) before it is reached.
	maxHistorySize = bulk.MaxSize
	// maxChatIDLen is the bound stored chat records use.
	maxChatIDLen = maxHandleLen + 40
	// maxDeviceIDText bounds a device id as text.
	maxDeviceIDText = 64
	// historyBatch is how many messages the companion commits at a time.
	historyBatch = 250

	historyVersion = 1
)

// The history reference must fit the link bundle.
var _ [link.MaxHistoryPointer - bulk.MaxRefLen]struct{}

// historyChat is one chat of a history bundle, messages oldest first.
type historyChat struct {
	Chat     Chat
	Messages []historyMessage
}

type historyMessage struct {
	Message Message
	// Ref and Thumbnail are the attachment's, when Message.Attachment is set.
	Ref       *bulk.Ref
	Thumbnail []byte
}

// encodedSize is an upper bound of m's encoding, for the size budget.
func (m *historyMessage) encodedSize() int {
	n := 16 + 4*8 + 8 + 2 + len(m.Message.From) + len(m.Message.FromDevice) + len(m.Message.Status) + len(m.Message.Text)
	if a := m.Message.Attachment; a != nil {
		n += 16 + len(a.Name) + len(a.Type) + bulk.MaxRefLen + len(m.Thumbnail)
	}
	return n
}

func marshalHistory(chats []historyChat) []byte {
	size := 5
	for _, c := range chats {
		size += 24 + len(c.Chat.ID) + len(c.Chat.LastText)
		for i := range c.Messages {
			size += c.Messages[i].encodedSize()
		}
	}
	w := wire.NewWriter(size)
	w.U8(historyVersion)
	w.U32(uint32(len(chats)))
	for _, c := range chats {
		w.String(c.Chat.ID)
		w.String(c.Chat.LastText)
		w.U64(uint64(c.Chat.LastAt))
		w.U32(uint32(c.Chat.Unread))
		w.U32(uint32(len(c.Messages)))
		for _, hm := range c.Messages {
			m := &hm.Message
			id, _ := hex.DecodeString(m.ID)
			w.Fixed(id)
			w.String(m.From)
			w.String(m.FromDevice)
			w.U64(uint64(m.SentAt))
			w.Bool(m.Outgoing)
			w.String(m.Status)
			w.String(m.Text)
			w.Bool(m.Attachment != nil)
			if a := m.Attachment; a != nil {
				w.String(a.Name)
				w.String(a.Type)
				w.Var(hm.Ref.Marshal())
				w.Var(hm.Thumbnail)
			}
		}
	}
	return w.Bytes()
}

func unmarshalHistory(b []byte) ([]historyChat, error) {
	if len(b) > maxHistorySize {
		return nil, fmt.Errorf("history: %d bytes, over the limit %d", len(b), maxHistorySize)
	}
	r := wire.NewReader(b)
	r.Version(historyVersion)
	n := r.Count(maxHistoryChats)
	var chats []historyChat
	for i := 0; i < n && r.Err() == nil; i++ {
		var c historyChat
		c.Chat.ID = r.String(maxChatIDLen)
		c.Chat.LastText = r.String(MaxTextLen)
		c.Chat.LastAt = int64(r.U64())
		c.Chat.Unread = int(r.U32())
		if r.Err() == nil && (c.Chat.ID == "" || strings.Contains(c.Chat.ID, sep)) {
			r.Fail(fmt.Errorf("history: chat %d has no valid id", i))
		}
		k := r.Count(MaxHistoryLimit)
		for j := 0; j < k && r.Err() == nil; j++ {
			var hm historyMessage
			m := &hm.Message
			m.ID = hex.EncodeToString(r.Fixed(16))
			m.Chat = c.Chat.ID
			m.From = r.String(maxHandleLen)
			m.FromDevice = r.String(maxDeviceIDText)
			m.SentAt = int64(r.U64())
			m.Outgoing = r.Bool()
			m.Status = r.String(16)
			m.Text = r.String(MaxTextLen)
			if r.Bool() {
				name, typ := r.String(MaxFileNameLen), r.String(MaxMIMETypeLen)
				refb := r.Var(bulk.MaxRefLen)
				hm.Thumbnail = r.Var(MaxThumbnailSize)
				if r.Err() != nil {
					break
				}
				ref, err := unmarshalBlobRef(refb)
				if err == nil {
					err = checkFileMeta(name, typ, "")
				}
				if err != nil {
					r.Fail(fmt.Errorf("history: message %s: %w", m.ID, err))
					break
				}
				hm.Ref = ref
				m.Attachment = &Attachment{Name: name, Type: typ, Size: int64(ref.Size), HasThumbnail: len(hm.Thumbnail) > 0}
			}
			c.Messages = append(c.Messages, hm)
			// The summary's file flag is not in the bundle: the last
			// message, when the bundle has it, says.
			if m.SentAt == c.Chat.LastAt {
				c.Chat.LastFile = m.Attachment != nil
			}
		}
		chats = append(chats, c)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return chats, nil
}

func (e *Engine) historyLimit() int {
	switch l := e.cfg.HistoryLimit; {
	case l == 0:
		return DefaultHistoryLimit
	case l > MaxHistoryLimit:
		return MaxHistoryLimit
	default:
		return l
	}
}

// buildHistoryLocked collects the recent history: chats most recent
// first, each chat's newest messages, until the limit per chat or the size
// budget is reached.
func (e *Engine) buildHistoryLocked(ctx context.Context) ([]historyChat, int, error) {
	limit := e.historyLimit()
	if limit < 0 {
		return nil, 0, nil
	}
	chats, err := e.Chats(ctx)
	if err != nil {
		return nil, 0, err
	}
	budget := maxHistorySize - 5
	var out []historyChat
	count := 0
	for _, c := range chats {
		if len(out) == maxHistoryChats || budget <= 0 {
			break
		}
		hc := historyChat{Chat: c}
		budget -= 24 + len(c.ID) + len(c.LastText)
		// Collect first, then read attachment records: no store reads
		// inside a scan (bbolt and IndexedDB transactions do not nest).
		var msgs []*Message
		err := e.cfg.Store.Scan(ctx, bMessages, c.ID+sep, storage.ScanOptions{Reverse: true, Limit: limit}, func(_ string, v []byte) error {
			m, err := unmarshalMessage(v)
			if err != nil {
				return nil // a corrupt record is not worth failing the link for
			}
			msgs = append(msgs, m)
			return nil
		})
		if err != nil {
			return nil, 0, storageErr(err)
		}
		for _, m := range msgs {
			hm := historyMessage{Message: *m}
			if m.Attachment != nil {
				rec, _, err := e.loadAttachment(ctx, m.ID)
				if err != nil {
					continue
				}
				if hm.Ref, err = unmarshalBlobRef(rec.Ref); err != nil {
					continue
				}
				hm.Thumbnail = rec.Thumbnail
			}
			if budget -= hm.encodedSize(); budget < 0 {
				break
			}
			hc.Messages = append(hc.Messages, hm)
		}
		for i, j := 0, len(hc.Messages)-1; i < j; i, j = i+1, j-1 {
			hc.Messages[i], hc.Messages[j] = hc.Messages[j], hc.Messages[i]
		}
		count += len(hc.Messages)
		out = append(out, hc)
	}
	return out, count, nil
}

// historyPointerLocked builds, encrypts and uploads the history for a new
// companion and returns the reference for link.Bundle.History, or nil when
// there is nothing to send. It fails only on relay or storage errors; the
// caller links without history then. Progress goes out as sync-progress
// events (Text "upload") through emit, which must not block.
func (e *Engine) historyPointerLocked(ctx context.Context, emit func(Event)) ([]byte, error) {
	chats, count, err := e.buildHistoryLocked(ctx)
	if err != nil || count == 0 {
		return nil, err
	}
	if e.conn == nil {
		return nil, newError(ErrOffline.Code, nil, "history needs a connection to the relay")
	}
	ref, err := e.uploadBulk(ctx, e.conn, bulk.LabelHistory, marshalHistory(chats), func(done, total int64) {
		emit(Event{Type: "sync-progress", Done: done, Total: total, Text: "upload"})
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("history sent to the new companion", "chats", len(chats), "messages", count)
	return ref.Marshal(), nil
}

// restoreHistory downloads, verifies, decrypts and stores the history a
// link bundle points to, in batches, reporting sync-progress events (Text
// "download" in encrypted bytes, then "store" in messages). It runs before
// the account is recorded, so nothing else writes meanwhile.
func (e *Engine) restoreHistory(ctx context.Context, pointer []byte) error {
	ref, err := unmarshalBlobRef(pointer)
	if err != nil {
		return newError(ErrLinkMismatch.Code, err, "the link bundle's history reference is malformed")
	}
	plain, err := e.downloadBulk(ctx, bulk.LabelHistory, ref, func(done, total int64) {
		e.emit(Event{Type: "sync-progress", Done: done, Total: total, Text: "download"})
	})
	if err != nil {
		return err
	}
	chats, err := unmarshalHistory(plain)
	if err != nil {
		return newError(CodeMalformed, err, "the history bundle is malformed")
	}
	total := 0
	for _, c := range chats {
		total += len(c.Messages)
	}
	done := 0
	var b storage.Batch
	pending := 0
	commit := func() error {
		if b.Len() == 0 {
			return nil
		}
		e.mu.Lock()
		err := e.cfg.Store.Commit(ctx, &b)
		e.mu.Unlock()
		if err != nil {
			return storageErr(err)
		}
		b = storage.Batch{}
		done += pending
		pending = 0
		e.emit(Event{Type: "sync-progress", Done: int64(done), Total: int64(total), Text: "store"})
		return nil
	}
	e.emit(Event{Type: "sync-progress", Done: 0, Total: int64(total), Text: "store"})
	for _, c := range chats {
		for i := range c.Messages {
			hm := &c.Messages[i]
			m := hm.Message
			if m.Status == StatusPending {
				m.Status = StatusSent // the primary's outbox sends it
			}
			raw, _ := hex.DecodeString(m.ID)
			var id MessageID
			copy(id[:], raw)
			key := m.Chat + sep + msgSortKey(uint64(m.SentAt), id)
			b.Put(bMessages, key, m.marshal())
			b.Put(bMsgIndex, m.ID, []byte(key))
			if m.Attachment != nil {
				b.Put(bAttach, m.ID, (&attachmentRecord{Ref: hm.Ref.Marshal(), Thumbnail: hm.Thumbnail}).marshal())
			}
			if pending++; pending >= historyBatch {
				if err := commit(); err != nil {
					return err
				}
			}
		}
		// The chat appears once its messages are stored.
		b.Put(bChats, c.Chat.ID, c.Chat.marshal())
	}
	if err := commit(); err != nil {
		return err
	}
	e.log.Info("history restored", "chats", len(chats), "messages", total)
	return nil
}
