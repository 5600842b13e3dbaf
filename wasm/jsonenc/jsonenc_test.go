package jsonenc

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	engine "github.com/parley-im/parley/client"
)

type inner struct {
	A int               `json:"a"`
	M map[string]uint64 `json:"m"`
}

type outer struct {
	engine.Stats
	inner
	*engine.Chat
	X        uint64 `json:"x"`
	Untagged string
	Skipped  string `json:"-"`
	hidden   int
	Opt      []string `json:"opt,omitempty"`
	Bytes    []byte   `json:"bytes"`
	Arr      [2]int8  `json:"arr"`
	Any      any      `json:"any"`
	F32      float32  `json:"f32"`
}

// TestSameAsEncodingJSON: on the API's types, and on the corners of
// strings and numbers, the output is encoding/json's byte for byte.
func TestSameAsEncodingJSON(t *testing.T) {
	msg := &engine.Message{ID: "m1", Chat: "bob", From: "alice", FromDevice: "d1", Text: "hi <b>&</b> \"q\" \\ \n\t\r\b\f\x01\x7f é 😀 \u2028\u2029 \xff\xfe end",
		SentAt: 1_780_000_000_123, Outgoing: true, Status: "sent",
		Attachment: &engine.Attachment{Name: "a.png", Type: "image/png", Size: 12345, HasThumbnail: true}}
	values := []any{
		nil, true, 0, -1, uint64(math.MaxUint64), int64(math.MinInt64), "", "x",
		0.0, 1.5, -2.25, 1e-7, 1e21, 123456789.125, 1e20, 5e-324, math.MaxFloat64, float32(0.1), float32(1e-7),
		engine.Event{Type: "message", Message: msg, Chat: "bob"},
		engine.Event{Type: "transfer-progress", MessageID: "m", Done: 3, Total: 9},
		engine.Event{Type: "state"},
		engine.Status{Status: "ready", Handle: "alice", DeviceID: "abcd", Primary: true},
		engine.Status{Status: "new"},
		engine.LinkStart{Payload: "parley-link:1:xyz", QRSVG: "<svg viewBox=\"0 0 1 1\"></svg>", Expires: 1_780_000_000},
		engine.PendingLink{LinkID: "l", CheckCode: "12 34", DeviceName: "Laptop"},
		[]engine.Device{{ID: "d1", Name: "Phone", Primary: true, Added: 1, Attested: 2, This: true, LastActive: 3}, {ID: "d2"}},
		[]engine.Message{*msg, {ID: "m2"}},
		[]engine.Message{},
		[]engine.Chat{{ID: "bob", LastText: "hey", LastAt: 9, Unread: 2}, {ID: "g:1", Name: "Group"}},
		[]engine.Group{{ID: "g:1", Name: "G", Members: []string{"a", "b"}, Admins: []string{"a"}, Version: 3, Admin: true, Member: true}, {ID: "g:2"}},
		&engine.SyncedState{Contacts: map[string]string{"z": "Zed", "a": "Ann", "m": "<Em>"}, ReadMarkers: map[string]int64{"bob": 5},
			Archived: map[string]bool{}, Epoch: 2, Corrupt: 1},
		engine.Stats{Received: 7, ReceiveP50Ms: 0.25, ReceiveP99Ms: 1.75, AckSyncs: 1, AckSyncMs: 3, AckSyncGroup: 1.5},
		outer{Stats: engine.Stats{Received: 1}, inner: inner{A: 2, M: map[string]uint64{"b": 2, "a": 1}}, X: 3, Untagged: "u",
			Skipped: "s", hidden: 4, Bytes: []byte{0, 1, 2, 250, 251, 252, 253}, Arr: [2]int8{-1, 1}, Any: map[string]any{"k": []any{1, "v", nil}}, F32: 3.14},
		outer{Chat: &engine.Chat{ID: "c"}, Opt: []string{"o"}},
		map[string]string{"handle": "alice", "deviceId": "d"},
		map[string]any{"handle": "alice", "device_list": []byte("list bytes")},
	}
	for i, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%d: encoding/json: %v", i, err)
		}
		got, err := Marshal(v)
		if err != nil || string(got) != string(want) {
			t.Errorf("%d: got %s, %v\nwant %s", i, got, err, want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	type loop struct{ Next *loop }
	l := &loop{}
	l.Next = l
	for _, v := range []any{math.NaN(), math.Inf(1), make(chan int), func() {}, complex(1, 2), map[int]string{1: "x"}, l} {
		if _, err := Marshal(v); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%T: %v", v, err)
		}
	}
}
