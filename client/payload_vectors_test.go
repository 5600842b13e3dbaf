package client

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata/payload are application payloads (PROTOCOL.md
// §14.2), good and bad, that another implementation can replay: a good
// vector decodes to its fields and re-encodes to the same bytes; a fail_
// vector stops with "error". A stamped vector also gives "list", the
// signed list whose hash the stamp carries. They are written by
// `go test ./client -run TestPayloadVectors -update-payloads`.
var updatePayloads = flag.Bool("update-payloads", false, "rewrite testdata/payload vectors")

type payloadVector struct {
	Description string `json:"description"`
	Payload     string `json:"payload"`
	Kind        uint8  `json:"kind,omitempty"`
	ID          string `json:"id,omitempty"`
	SentAt      uint64 `json:"sent_at,omitempty"`
	To          string `json:"to,omitempty"`
	Body        string `json:"body,omitempty"`
	ListVersion uint64 `json:"list_version,omitempty"`
	ListHash    string `json:"list_hash,omitempty"`
	List        string `json:"list,omitempty"`
	Error       string `json:"error,omitempty"`
}

var payloadVectorErrors = map[string]error{
	"short":        wire.ErrShort,
	"trailing":     wire.ErrTrailing,
	"version":      wire.ErrVersion,
	"too_large":    wire.ErrTooLarge,
	"invalid":      wire.ErrInvalid,
	"unknown_kind": errUnknownKind,
}

func generatePayloadVectors() map[string]payloadVector {
	list := []byte("the encoding of a signed device list (section 3.2)")
	base := func() *payload {
		return &payload{Kind: kindText, ID: MessageID{0x6d, 0x73, 0x67, 1}, SentAt: 1_800_000_000_123, To: "bob", Body: []byte("hello")}
	}
	stamped := func() *payload {
		p := base()
		p.List = listStamp{Version: 7, Hash: listHash(list)}
		return p
	}
	good := func(desc string, p *payload) payloadVector {
		v := payloadVector{Description: desc, Payload: hex.EncodeToString(p.marshal()), Kind: p.Kind, ID: hex.EncodeToString(p.ID[:]),
			SentAt: p.SentAt, To: p.To, Body: hex.EncodeToString(p.Body), ListVersion: p.List.Version}
		if p.List.Version != 0 {
			v.ListHash, v.List = hex.EncodeToString(p.List.Hash[:]), hex.EncodeToString(list)
		}
		return v
	}
	fail := func(desc string, raw []byte, err string) payloadVector {
		return payloadVector{Description: desc, Payload: hex.EncodeToString(raw), Error: err}
	}
	v := map[string]payloadVector{}
	v["good_unstamped"] = good("Version 1: a text without a list stamp, as sent before stamps existed; it still decodes.", base())
	v["good_stamped"] = good("Version 2: a text stamped with version 7 of the sender's list and the hash of that list.", stamped())
	noTo := stamped()
	noTo.To, noTo.Kind, noTo.Body = "", kindReceipt, receiptBody(receiptRead, []MessageID{{9}})
	v["good_stamped_receipt"] = good("Version 2: a read receipt, no peer handle.", noTo)

	raw1, raw2 := base().marshal(), stamped().marshal()
	v["fail_version_3"] = fail("An unknown payload version.", append([]byte{3}, raw2[1:]...), "version")
	v["fail_stamp_in_version_1"] = fail("A version-1 payload followed by a stamp.", append(append([]byte{}, raw1...), raw2[len(raw1):]...), "trailing")
	v["fail_version_2_without_stamp"] = fail("Version 2 but the stamp is missing.", append([]byte{2}, raw1[1:]...), "short")
	v["fail_short_hash"] = fail("Version 2 with one byte of the list hash missing.", raw2[:len(raw2)-1], "short")
	v["fail_trailing"] = fail("A byte after the stamp.", append(append([]byte{}, raw2...), 0), "trailing")
	zero := append([]byte{}, raw2...)
	for i := len(zero) - 40; i < len(zero)-32; i++ {
		zero[i] = 0
	}
	v["fail_stamp_version_zero"] = fail("A stamp of list version 0, which no list has (its canonical form is version 1).", zero, "invalid")
	kind := append([]byte{}, raw2...)
	kind[1] = 99
	v["fail_unknown_kind"] = fail("A kind no receiver knows.", kind, "unknown_kind")
	long := base()
	long.To = strings.Repeat("a", maxHandleLen+1)
	v["fail_long_to"] = fail("A peer handle over 32 bytes.", long.marshal(), "too_large")
	return v
}

func TestPayloadVectors(t *testing.T) {
	dir := filepath.Join("testdata", "payload")
	want := generatePayloadVectors()
	if *updatePayloads {
		for name, v := range want {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) != len(want) {
		t.Fatalf("%d vector files for %d vectors (%v); run with -update-payloads", len(files), len(want), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v payloadVector
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok || w != v {
				t.Fatal("the file is not what the generator makes; run with -update-payloads")
			}
			replayPayload(t, name, v)
		})
	}
}

func replayPayload(t *testing.T, name string, v payloadVector) {
	raw, err := hex.DecodeString(v.Payload)
	if err != nil {
		t.Fatal(err)
	}
	p, err := unmarshalPayload(raw)
	if !strings.HasPrefix(name, "good_") {
		sentinel, ok := payloadVectorErrors[v.Error]
		if !ok {
			t.Fatalf("unknown error %q in the vector", v.Error)
		}
		if !errors.Is(err, sentinel) {
			t.Fatalf("got %v, want %v", err, sentinel)
		}
		return
	}
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	got := payloadVector{Description: v.Description, Payload: v.Payload, Kind: p.Kind, ID: hex.EncodeToString(p.ID[:]), SentAt: p.SentAt,
		To: p.To, Body: hex.EncodeToString(p.Body), ListVersion: p.List.Version, List: v.List}
	if p.List.Version != 0 {
		got.ListHash = hex.EncodeToString(p.List.Hash[:])
		list, _ := hex.DecodeString(v.List)
		if h := listHash(list); hex.EncodeToString(h[:]) != v.ListHash {
			t.Fatalf("the list hashes to %x, the vector says %s", h, v.ListHash)
		}
	}
	if got != v {
		t.Fatalf("decoded %+v", got)
	}
	if hex.EncodeToString(p.marshal()) != v.Payload {
		t.Fatalf("re-encodes to %x", p.marshal())
	}
}
