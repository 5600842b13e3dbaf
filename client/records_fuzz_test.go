package client

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/crypto/identity"
)

// FuzzDecoders feeds arbitrary bytes to every decoder of the engine's own
// formats (application payloads and stored records); the first byte picks
// the decoder. A decoder must never panic, and whatever it accepts must
// re-encode to the same bytes (the encodings are canonical).
func FuzzDecoders(f *testing.F) {
	p := &payload{Kind: kindText, ID: MessageID{1}, SentAt: 42, To: "bob", Body: []byte("hi")}
	f.Add(append([]byte{0}, p.marshal()...))
	stamped := *p
	stamped.List = listStamp{Version: 7, Hash: listHash([]byte("a list"))}
	f.Add(append([]byte{0}, stamped.marshal()...))
	f.Add(append([]byte{1}, (&accountRecord{Handle: "alice", AccountPub: make([]byte, 32), DeviceName: "x"}).marshal()...))
	f.Add(append([]byte{2}, (&pinnedList{AccountPub: make([]byte, 32), Encoded: []byte{1, 2}}).marshal()...))
	f.Add(append([]byte{2}, (&pinnedList{AccountPub: make([]byte, 32), Encoded: []byte{1, 2}, KeyChanged: true, NewKey: make([]byte, 32),
		Want: &listWant{listStamp: stamped.List, From: identity.DeviceID{5}}}).marshal()...))
	f.Add(append([]byte{3}, (&Message{ID: "00", Chat: "bob", Text: "t", Status: "sent"}).marshal()...))
	f.Add(append([]byte{4}, (&Chat{ID: "bob", LastText: "t"}).marshal()...))
	f.Add(append([]byte{4}, (&Chat{ID: "bob", LastFile: true}).marshal()...))
	f.Add(append([]byte{5}, (&outboxRecord{Payload: p.marshal(), To: "bob", Sealed: []sealedOut{{Handle: "bob", Payload: []byte{2, 3}}}}).marshal()...))
	f.Add(append([]byte{6}, receiptBody(receiptRead, []MessageID{{9}})...))
	f.Add(append([]byte{7}, (&prekeyState{NextOneTime: 51, NextKEM: 22, SignedID: 1, Pending: []string{"otk/00000001"}}).marshal()...))
	f.Add([]byte{8, 1, 0})
	f.Add(append([]byte{9}, (&uploadRecord{To: "bob", Name: "a.bin", Type: "x/y", Caption: "c", Thumbnail: []byte{1}, Size: 3, Chunks: 1, SentAt: 7}).marshal()...))
	leave := &payload{Kind: kindGroupLeave, ID: MessageID{2}, SentAt: 43, To: "alice", Body: groupstate.LeaveBody(groupID{3}, 7)}
	f.Add(append([]byte{0}, leave.marshal()...))
	f.Add(append([]byte{10}, leave.Body...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		var out []byte
		switch data[0] % 11 {
		case 0:
			if v, err := unmarshalPayload(in); err == nil {
				out = v.marshal()
			}
		case 1:
			if v, err := unmarshalAccount(in); err == nil {
				out = v.marshal()
			}
		case 2:
			if v, err := unmarshalPinned(in); err == nil {
				out = v.marshal()
			}
		case 3:
			if v, err := unmarshalMessage(in); err == nil {
				out = v.marshal()
			}
		case 4:
			if v, err := unmarshalChat(in); err == nil {
				out = v.marshal()
			}
		case 5:
			if v, err := unmarshalOutbox(in); err == nil {
				out = v.marshal()
			}
		case 6:
			if st, ids, err := parseReceipt(in); err == nil {
				out = receiptBody(st, ids)
			}
		case 7:
			// A version 1 state is read but written as version 2
			// (FuzzSessionRecords checks that migration).
			if v, err := unmarshalPrekeyState(in); err == nil && in[0] == prekeyStateVersion {
				out = v.marshal()
			}
		case 8:
			// Session records hold ratchet states; their own fuzzers cover
			// the state format, this one the record around it.
			unmarshalSessions(in)
			return
		case 9:
			if v, err := unmarshalUpload(in); err == nil {
				out = v.marshal()
			}
		case 10:
			if id, version, err := groupstate.ParseLeave(in); err == nil {
				out = groupstate.LeaveBody(id, version)
			}
		}
		if out != nil && !bytes.Equal(out, in) {
			t.Fatalf("decoder %d accepted %x but re-encodes to %x", data[0]%11, in, out)
		}
	})
}
