package sealroot

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

// The vectors in testdata are stores and roots that any other
// implementation of PROTOCOL.md 13.7 can replay: store "records" (values
// in hex), then check "root" (the plaintext root record, hex) against
// them, every record's bucket being covered. A good_ vector matches; a
// fail_ vector stops with "error" (malformed or rolled_back). They are
// written by `go test ./client/storage/sealroot -run TestVectors -update`.
var update = flag.Bool("update", false, "rewrite testdata vectors")

type vectorRecord struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Value  string `json:"value"`
}

type vector struct {
	Description string         `json:"description"`
	Records     []vectorRecord `json:"records"`
	Root        string         `json:"root"`
	Error       string         `json:"error,omitempty"`
}

func vectorRoot(recs []vectorRecord) []byte {
	r := root{key: sha256.Sum256([]byte("parley sealroot vectors"))}
	e := newElement(&r.key)
	for _, rec := range recs {
		v, _ := hex.DecodeString(rec.Value)
		e.xorInto(&r.acc, rec.Bucket, rec.Key, v)
		r.count++
	}
	return r.encode()
}

func generateVectors() map[string]vector {
	three := []vectorRecord{
		{"sessions", "bob/0102030405060708", hex.EncodeToString([]byte("ratchet state 2"))},
		{"lists", "bob", hex.EncodeToString([]byte("pinned key and list"))},
		{"_meta", "idle-lock", hex.EncodeToString([]byte("60000"))},
	}
	older := append([]vectorRecord(nil), three...)
	older[0].Value = hex.EncodeToString([]byte("ratchet state 1"))
	h := func(b []byte) string { return hex.EncodeToString(b) }
	good := vectorRoot(three)
	v := map[string]vector{
		"good_empty":          {Description: "No security records: acc zero, count 0.", Root: h(vectorRoot(nil))},
		"good_three_records":  {Description: "A session, a pinned list and the idle lock.", Records: three, Root: h(good)},
		"fail_restored_value": {Description: "The session record put back as it was one step earlier.", Records: older, Root: h(good), Error: "rolled_back"},
		"fail_deleted_record": {Description: "The pinned list deleted.", Records: []vectorRecord{three[0], three[2]}, Root: h(good), Error: "rolled_back"},
		"fail_added_record": {Description: "A session record that the root does not hold.",
			Records: append(append([]vectorRecord(nil), three...), vectorRecord{"sessions", "mallory/01", h([]byte("x"))}), Root: h(good), Error: "rolled_back"},
		"fail_truncated":       {Description: "A root record one byte short.", Records: three, Root: h(good[:RecordLen-1]), Error: "malformed"},
		"fail_trailing_data":   {Description: "A root record with a byte after it.", Records: three, Root: h(append(append([]byte(nil), good...), 0)), Error: "malformed"},
		"fail_unknown_version": {Description: "A root record of version 2.", Records: three, Root: h(append([]byte{2}, good[1:]...)), Error: "malformed"},
	}
	return v
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
			if w, ok := want[name]; !ok || w.Root != v.Root || len(w.Records) != len(v.Records) {
				t.Fatal("the file is not what the generator makes; run with -update")
			}
			err = replay(t, v)
			switch {
			case strings.HasPrefix(name, "good_") && err != nil:
				t.Fatalf("good vector fails: %v", err)
			case strings.HasPrefix(name, "fail_") && v.Error == "rolled_back" && !errors.Is(err, ErrRolledBack):
				t.Fatalf("got %v, want rolled_back", err)
			case strings.HasPrefix(name, "fail_") && v.Error == "malformed" && !errors.Is(err, storage.ErrCorrupt):
				t.Fatalf("got %v, want malformed", err)
			}
		})
	}
}

// replay stores v's records and root and opens them, every bucket
// covered.
func replay(t *testing.T, v vector) error {
	st := memstore.New()
	var b storage.Batch
	covered := map[string]bool{"sessions": true, "lists": true, "_meta": true}
	for _, r := range v.Records {
		val, err := hex.DecodeString(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		b.Put(r.Bucket, r.Key, val)
		covered[r.Bucket] = true
	}
	rootRec, err := hex.DecodeString(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	b.Put("_root", "root", rootRec)
	if err := st.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	o := Options{Bucket: "_root", Key: "root"}
	for bucket := range covered {
		o.Covered = append(o.Covered, Range{Bucket: bucket})
	}
	_, err = Open(context.Background(), st, o)
	return err
}
