package idbwire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/parley-im/parley/client/storage"
)

func ad(bucket, key string) []byte { return []byte("ad\x00" + bucket + "\x00" + key) }

// unpackCommit is the reader boot.js implements (web/boot.js, unpack).
func unpackCommit(t *testing.T, b []byte) []storage.Op {
	t.Helper()
	at := 0
	take := func(n int) []byte {
		if n > len(b)-at {
			t.Fatalf("packed commit truncated at %d", at)
		}
		at += n
		return b[at-n : at]
	}
	u32 := func() int { return int(binary.LittleEndian.Uint32(take(4))) }
	n := u32()
	var ops []storage.Op
	for range n {
		flags := take(1)[0]
		op := storage.Op{Bucket: string(take(int(binary.LittleEndian.Uint16(take(2))))), Key: string(take(u32()))}
		op.IfAbsent = flags&FlagIfAbsent != 0
		if flags&FlagDelete == 0 {
			take(IVSize)
			if got := take(u32()); !bytes.Equal(got, ad(op.Bucket, op.Key)) {
				t.Fatalf("associated data %q for %s/%s", got, op.Bucket, op.Key)
			}
			op.Value = take(u32())
		}
		ops = append(ops, op)
	}
	if at != len(b) {
		t.Fatalf("%d trailing bytes", len(b)-at)
	}
	return ops
}

func TestPackCommitRoundTrip(t *testing.T) {
	var b storage.Batch
	b.Put("sessions", "bob/0123", bytes.Repeat([]byte{7}, 700))
	b.Insert("msgidx", "00ff", []byte("chat\x1fkey"))
	b.Delete("outbox", "0000000000000001")
	b.Put("chats", "", []byte{})
	packed, err := PackCommit(&b, rand.Reader, ad)
	if err != nil {
		t.Fatal(err)
	}
	got := unpackCommit(t, packed)
	if len(got) != len(b.Ops) {
		t.Fatalf("%d operations, want %d", len(got), len(b.Ops))
	}
	for i, op := range b.Ops {
		g := got[i]
		if g.Bucket != op.Bucket || g.Key != op.Key || g.IfAbsent != op.IfAbsent || (g.Value == nil) != (op.Value == nil) || !bytes.Equal(g.Value, op.Value) {
			t.Errorf("operation %d: got %+v, want %+v", i, g, op)
		}
	}
}

// Every sealed value gets its own IV from the reader; a failing reader
// fails the pack.
func TestPackCommitIVs(t *testing.T) {
	var b storage.Batch
	b.Put("a", "1", []byte("x"))
	b.Put("a", "2", []byte("y"))
	packed, err := PackCommit(&b, bytes.NewReader(bytes.Repeat([]byte{1}, IVSize)), ad)
	if err == nil {
		t.Fatalf("packed %d bytes with IVs for one value only", len(packed))
	}
	packed, err = PackCommit(&b, rand.Reader, ad)
	if err != nil {
		t.Fatal(err)
	}
	first := 4 + 1 + 2 + 1 + 4 + 1
	iv1 := packed[first : first+IVSize]
	second := first + IVSize + 4 + len(ad("a", "1")) + 4 + 1 + 1 + 2 + 1 + 4 + 1
	iv2 := packed[second : second+IVSize]
	if bytes.Equal(iv1, iv2) {
		t.Fatalf("two values sealed under the same IV %x", iv1)
	}
}

func packRead(recs []Record) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(recs)))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Key)))
		b = append(b, r.Key...)
		b = append(b, r.State)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Value)))
		b = append(b, r.Value...)
	}
	return b
}

func TestUnpackRead(t *testing.T) {
	recs := []Record{{Key: "m/1", Value: []byte("one")}, {Key: "m/2", State: StateDamaged}, {Key: "", Value: []byte{}}, {Key: "m/4", State: StateNotBytes}}
	got, err := UnpackRead(packRead(recs), 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if got[i].Key != r.Key || got[i].State != r.State || !bytes.Equal(got[i].Value, r.Value) {
			t.Errorf("record %d: %+v, want %+v", i, got[i], r)
		}
	}
	// Values are capped slices: appending to one leaves the next alone.
	_ = append(got[0].Value, 'X')
	if got[1].Key != "m/2" {
		t.Fatal("append overwrote the next record")
	}
	for name, b := range map[string][]byte{
		"fail_over_max":     packRead(append(recs, Record{Key: "m/5"})),
		"fail_truncated":    packRead(recs)[:20],
		"fail_trailing":     append(packRead(recs), 0),
		"fail_empty":        nil,
		"fail_state":        packRead([]Record{{Key: "k", State: 3}}),
		"fail_damaged_data": packRead([]Record{{Key: "k", State: StateDamaged, Value: []byte("x")}}),
		"fail_huge_length":  {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := UnpackRead(b, 4); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzUnpackRead(f *testing.F) {
	f.Add(packRead([]Record{{Key: "m/1", Value: []byte("one")}, {Key: "m/2", State: StateDamaged}}), 4)
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		recs, err := UnpackRead(b, max)
		if err != nil {
			return
		}
		if len(recs) > max {
			t.Fatalf("%d records, max %d", len(recs), max)
		}
		// What decodes encodes back to the same bytes.
		if again := packRead(recs); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, input %x", again, b)
		}
	})
}
