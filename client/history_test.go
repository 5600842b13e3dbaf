package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
	"github.com/parley-im/parley/crypto/bulk"
)

// offlineRelay is a Relay the test never calls (it builds under js too).
type offlineRelay struct{ Relay }

// historyEngine is an engine on a memory store that never connects.
func historyEngine(t testing.TB, historyLimit int) *Engine {
	t.Helper()
	e, err := Open(context.Background(), Config{Store: memstore.New(), Relay: offlineRelay{}, HistoryLimit: historyLimit})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func putTestMessage(t testing.TB, e *Engine, chat, text string, at int64, outgoing bool, att *attachmentBody) *Message {
	t.Helper()
	ctx := context.Background()
	var id MessageID
	copy(id[:], fmt.Sprintf("%s-%d-%s", chat, at, text))
	m := &Message{ID: hex.EncodeToString(id[:]), Chat: chat, From: chat, FromDevice: "00112233445566778899aabbccddeeff", Text: text, SentAt: at, Outgoing: outgoing}
	if outgoing {
		m.From, m.Status = "alice", StatusRead
	}
	var b storage.Batch
	if att != nil {
		m.Attachment = &Attachment{Name: att.Name, Type: att.Type, Size: int64(att.Ref.Size), HasThumbnail: len(att.Thumbnail) > 0}
		b.Put(bAttach, m.ID, (&attachmentRecord{Ref: att.Ref.Marshal(), Thumbnail: att.Thumbnail}).marshal())
	}
	if err := e.putMessage(ctx, &b, m, !outgoing); err != nil {
		t.Fatal(err)
	}
	if err := e.cfg.Store.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHistoryBuildAndDecode(t *testing.T) {
	e := historyEngine(t, 3)
	ref := &bulk.Ref{ChunkSize: ChunkSize, Size: 1234, Blobs: [][16]byte{{9}}}
	for i := range 5 {
		putTestMessage(t, e, "bob", fmt.Sprint("bob ", i), int64(100+i), i%2 == 0, nil)
	}
	putTestMessage(t, e, "carol", "old", 50, false, nil)
	photo := putTestMessage(t, e, "carol", "a photo", 300, false, &attachmentBody{Ref: ref, Name: "p.jpg", Type: "image/jpeg", Thumbnail: []byte("t")})

	chats, count, err := e.buildHistoryLocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if count != 5 || len(chats) != 2 || chats[0].Chat.ID != "carol" || chats[1].Chat.ID != "bob" {
		t.Fatalf("%d messages in %d chats", count, len(chats))
	}
	var texts []string
	for _, m := range chats[1].Messages {
		texts = append(texts, m.Message.Text)
	}
	if fmt.Sprint(texts) != "[bob 2 bob 3 bob 4]" {
		t.Fatalf("bob's history %v: want the last 3, oldest first", texts)
	}
	if got := chats[0].Messages[1]; got.Message.ID != photo.ID || got.Ref == nil || !bytes.Equal(got.Thumbnail, []byte("t")) {
		t.Fatalf("photo in history: %+v", got)
	}
	if chats[1].Chat.Unread != 2 {
		t.Fatalf("bob unread %d", chats[1].Chat.Unread)
	}

	enc := marshalHistory(chats)
	dec, err := unmarshalHistory(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, chats) {
		t.Fatalf("history round trip differs:\n%+v\n%+v", dec, chats)
	}
	if !bytes.Equal(marshalHistory(dec), enc) {
		t.Fatal("re-encoding differs")
	}

	if _, n, _ := historyEngine(t, -1).buildHistoryLocked(context.Background()); n != 0 {
		t.Fatal("a negative HistoryLimit still sends history")
	}
}

func TestHistoryRefusals(t *testing.T) {
	ok := marshalHistory([]historyChat{{Chat: Chat{ID: "bob"}, Messages: []historyMessage{{Message: Message{ID: "00000000000000000000000000000001", From: "bob", Text: "x"}}}}})
	if _, err := unmarshalHistory(ok); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"version 2":     append([]byte{2}, ok[1:]...),
		"trailing byte": append(append([]byte{}, ok...), 0),
		"truncated":     ok[:len(ok)-1],
		"no chat id":    marshalHistory([]historyChat{{Chat: Chat{}}}),
		"bad attachment": marshalHistory([]historyChat{{Chat: Chat{ID: "bob"}, Messages: []historyMessage{{
			Message: Message{ID: "00000000000000000000000000000001", Attachment: &Attachment{Name: "", Type: "x/y"}},
			Ref:     &bulk.Ref{ChunkSize: ChunkSize, Size: 1, Blobs: [][16]byte{{1}}},
		}}}}),
	} {
		if _, err := unmarshalHistory(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzHistory(f *testing.F) {
	ref := &bulk.Ref{ChunkSize: ChunkSize, Size: 10, Blobs: [][16]byte{{1}}}
	f.Add(marshalHistory(nil))
	f.Add(marshalHistory([]historyChat{{Chat: Chat{ID: "bob", LastText: "hi", LastAt: 5, Unread: 1}, Messages: []historyMessage{
		{Message: Message{ID: "00000000000000000000000000000001", From: "bob", FromDevice: "d", SentAt: 5, Status: "", Text: "hi"}},
		{Message: Message{ID: "00000000000000000000000000000002", From: "alice", SentAt: 6, Outgoing: true, Status: StatusRead,
			Attachment: &Attachment{Name: "a.txt", Type: "text/plain", Size: 10, HasThumbnail: true}}, Ref: ref, Thumbnail: []byte{1}},
	}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		chats, err := unmarshalHistory(b)
		if err != nil {
			return
		}
		if !bytes.Equal(marshalHistory(chats), b) {
			t.Fatal("a history does not re-encode to the same bytes")
		}
	})
}
