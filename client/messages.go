package client

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/parley-im/parley/client/storage"
)

// putMessage adds msg to b, with its id index and the chat summary. With
// incoming set, the chat's unread count grows. A message from elsewhere
// (received, synced, from history) moves this device's next send time
// past its own (observeSentAtLocked); one of this device's is already
// there.
func (e *Engine) putMessage(ctx context.Context, b *storage.Batch, msg *Message, incoming bool) error {
	if msg.SentAt > 0 {
		e.observeSentAtLocked(uint64(msg.SentAt))
	}
	id, err := hex.DecodeString(msg.ID)
	if err != nil || len(id) != 16 {
		return newError(ErrStorage.Code, err, "bad message id")
	}
	var mid MessageID
	copy(mid[:], id)
	msg.sortKey = msgSortKey(uint64(msg.SentAt), mid)
	key := msg.Chat + sep + msg.sortKey
	b.Put(bMessages, key, msg.marshal())
	// Insert: a message id is stored once. A message already here fails
	// the whole batch with storage.ErrExists, which is how receiving finds
	// a resent message without reading first (receiveLocked).
	b.Insert(bMsgIndex, msg.ID, []byte(key))
	chat, err := e.loadChat(ctx, msg.Chat)
	if err != nil {
		return err
	}
	if msg.SentAt >= chat.LastAt {
		chat.LastAt, chat.LastText, chat.LastFile = msg.SentAt, msg.Text, msg.Attachment != nil
	}
	if incoming {
		chat.Unread++
	}
	b.Put(bChats, msg.Chat, chat.marshal())
	return nil
}

func (e *Engine) loadChat(ctx context.Context, id string) (*Chat, error) {
	v, err := e.cfg.Store.Get(ctx, bChats, id)
	if errors.Is(err, storage.ErrNotFound) {
		return &Chat{ID: id}, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	c, err := unmarshalChat(v)
	if err != nil {
		return nil, newError(ErrStorage.Code, err, "chat record %q is corrupt", id)
	}
	return c, nil
}

// lookupMessage finds a stored message by id (nil if unknown).
func (e *Engine) lookupMessage(ctx context.Context, id MessageID) (*Message, string, error) {
	idx, err := e.cfg.Store.Get(ctx, bMsgIndex, hex.EncodeToString(id[:]))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", storageErr(err)
	}
	v, err := e.cfg.Store.Get(ctx, bMessages, string(idx))
	if err != nil {
		return nil, "", storageErr(err)
	}
	m, err := unmarshalMessage(v)
	if err != nil {
		return nil, "", newError(ErrStorage.Code, err, "message record corrupt")
	}
	return m, string(idx), nil
}

// statusRank orders statuses so a late "delivered" never overwrites "read".
var statusRank = map[string]int{StatusPending: 0, "failed": 0, StatusSent: 1, StatusDelivered: 2, StatusRead: 3}

// setStatus raises the status of an outgoing message (never lowers it).
func (e *Engine) setStatus(ctx context.Context, b *storage.Batch, id MessageID, status string) *Message {
	m, key, err := e.lookupMessage(ctx, id)
	if err != nil || m == nil || !m.Outgoing {
		return nil
	}
	if statusRank[status] < statusRank[m.Status] || (status == m.Status) {
		return nil
	}
	m.Status = status
	b.Put(bMessages, key, m.marshal())
	return m
}

// Chats lists conversations, most recent first.
func (e *Engine) Chats(ctx context.Context) ([]Chat, error) {
	var out []Chat
	err := e.cfg.Store.Scan(ctx, bChats, "", storage.ScanOptions{}, func(k string, v []byte) error {
		c, err := unmarshalChat(v)
		if err != nil {
			return newError(ErrStorage.Code, err, "chat record %q is corrupt", k)
		}
		if strings.HasPrefix(c.ID, groupChatPrefix) {
			c.Name = e.groupName(ctx, c.ID)
		}
		out = append(out, *c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Most recent first; stable for equal times.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].LastAt > out[j-1].LastAt; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// MaxPage bounds one Messages call.
const MaxPage = 500

// Messages returns up to limit messages of a chat, newest last, older than
// the message with id `before` if given (for scrolling back through history).
func (e *Engine) Messages(ctx context.Context, chat, before string, limit int) ([]Message, error) {
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	opts := storage.ScanOptions{Reverse: true, Limit: limit}
	if before != "" {
		id, err := hex.DecodeString(before)
		if err != nil || len(id) != 16 {
			return nil, newError(CodeBadID, err, "not a message id: %q", before)
		}
		var mid MessageID
		copy(mid[:], id)
		_, key, err := e.lookupMessage(ctx, mid)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, newError(CodeNotFound, nil, "no message %s", before)
		}
		opts.After = key
	}
	var out []Message
	err := e.cfg.Store.Scan(ctx, bMessages, chat+sep, opts, func(k string, v []byte) error {
		m, err := unmarshalMessage(v)
		if err != nil {
			return newError(ErrStorage.Code, err, "message record corrupt")
		}
		out = append(out, *m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
