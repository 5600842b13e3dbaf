package keyname

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/memstore"
)

// The vectors in testdata are stored records that any other
// implementation of PROTOCOL.md 13.9 can replay: under naming key
// "namingKey" (hex) and the bucket's rule ("sep", and "parts" with N for
// a Name part and C for a Clear one), the record stored at "storedKey"
// with "storedValue" (hex) is read back as "key". A good_ vector reads
// "value" (hex); a fail_ vector reads as corrupt. They are written by
// `go test ./client/storage/keyname -run TestVectors -update`.
var update = flag.Bool("update", false, "rewrite testdata vectors")

type vector struct {
	Description string `json:"description"`
	NamingKey   string `json:"namingKey"`
	Bucket      string `json:"bucket"`
	Sep         string `json:"sep"`
	Parts       string `json:"parts"`
	Key         string `json:"key"`
	StoredKey   string `json:"storedKey"`
	StoredValue string `json:"storedValue"`
	Value       string `json:"value,omitempty"`
	Error       string `json:"error,omitempty"`
}

func (v vector) rule() Rule {
	r := Rule{Sep: v.Sep[0]}
	for _, c := range v.Parts {
		p := Clear
		if c == 'N' {
			p = Name
		}
		r.Parts = append(r.Parts, p)
	}
	return r
}

func generateVectors() map[string]vector {
	nk := sha256.Sum256([]byte("parley keyname vectors"))
	s := New(memstore.New(), &nk, nil)
	h := hex.EncodeToString
	mk := func(desc, bucket, sep, parts, key, value string) vector {
		v := vector{Description: desc, NamingKey: h(nk[:]), Bucket: bucket, Sep: sep, Parts: parts, Key: key, Value: h([]byte(value))}
		v.StoredKey = s.storedKey(bucket, v.rule(), key)
		v.StoredValue = h(sealValue(key, []byte(value)))
		return v
	}
	bad := func(desc string, stored []byte) vector {
		v := mk(desc, "lists", "/", "N", "bob", "")
		v.StoredValue, v.Value, v.Error = h(stored), "", "corrupt"
		return v
	}
	long := append([]byte{valueVersion, 0x02, 0x01}, make([]byte, 513)...)
	return map[string]vector{
		"good_pinned_list": mk("A contact's pinned list: the whole key is a name.", "lists", "/", "N", "bob", "pinned key and list"),
		"good_session":     mk("A session: handle and device are both names.", "sessions", "/", "NN", "bob/0102030405060708090a0b0c0d0e0f10", "ratchet states"),
		"good_message":     mk("A message: the chat is a name, its sort key stays clear after the separator 0x1f.", "msgs", "\x1f", "NC", "bob\x1f0000000000000001000102030405060708090a0b0c0d0e0f", "message"),
		"good_empty_value": mk("An empty value at a name with an empty handle.", "lists", "/", "N", "", ""),
		"fail_unknown_version": bad("A stored value of version 2.",
			append([]byte{2}, sealValue("bob", nil)[1:]...)),
		"fail_truncated_key": bad("A stored value whose key length runs past its end.",
			sealValue("bob", nil)[:5]),
		"fail_key_too_long": bad("A stored value naming a key of 513 bytes, longer than any store takes.", long),
		"fail_other_name": bad("Mallory's record copied to Bob's stored name: it holds another key.",
			sealValue("mallory", []byte("mallory's key"))),
	}
}

func TestVectors(t *testing.T) {
	want := generateVectors()
	if *update {
		for name, v := range want {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) != len(want) {
		t.Fatalf("%d vector files for %d vectors (%v); run with -update", len(files), len(want), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v vector
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if v != want[name] {
				t.Fatal("the file is not what the generator makes; run with -update")
			}
			got, err := replay(t, v)
			switch {
			case strings.HasPrefix(name, "good_") && (err != nil || hex.EncodeToString(got) != v.Value):
				t.Fatalf("good vector reads %x, %v; want %s", got, err, v.Value)
			case strings.HasPrefix(name, "fail_") && !errors.Is(err, storage.ErrCorrupt):
				t.Fatalf("got %v, want corrupt", err)
			}
		})
	}
}

// replay stores v's record under its stored name and reads it back
// through the layer.
func replay(t *testing.T, v vector) ([]byte, error) {
	nk, err := hex.DecodeString(v.NamingKey)
	if err != nil || len(nk) != KeySize {
		t.Fatalf("naming key %q: %v", v.NamingKey, err)
	}
	val, err := hex.DecodeString(v.StoredValue)
	if err != nil {
		t.Fatal(err)
	}
	raw := memstore.New()
	var b storage.Batch
	b.Put(v.Bucket, v.StoredKey, val)
	if err := raw.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s := New(raw, (*[KeySize]byte)(nk), map[string]Rule{v.Bucket: v.rule()})
	return s.Get(context.Background(), v.Bucket, v.Key)
}
