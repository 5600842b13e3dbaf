package bulk

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
)

// maxBlob is the relay's MaxBlob (package relay) in the tests; UnmarshalRef
// takes it from its caller.
const maxBlob = 8 << 20

// chunksPerBlob groups chunks into blobs as Parley clients do.
const chunksPerBlob = 16

// sealBlobs seals pt as the engine does, 16 chunks a blob, and returns the
// sealer (for Finish) and the blobs.
func sealBlobs(c Cipher, rand io.Reader, label string, pt []byte) (*Sealer, [][]byte, error) {
	s, err := NewSealer(c, rand, label, pt)
	if err != nil {
		return nil, nil, err
	}
	var blobs [][]byte
	for {
		b, err := s.Next(chunksPerBlob)
		if err != nil || b == nil {
			return s, blobs, err
		}
		blobs = append(blobs, b)
	}
}

// sealAll seals pt under a random key and returns the reference and the
// blobs, with made-up blob ids.
func sealAll(t testing.TB, c Cipher, label string, pt []byte) (*Ref, [][]byte) {
	t.Helper()
	s, blobs, err := sealBlobs(c, rand.Reader, label, pt)
	if err != nil {
		t.Fatal(err)
	}
	var ids [][16]byte
	for _, b := range blobs {
		if len(b) > maxBlob {
			t.Fatalf("blob of %d bytes", len(b))
		}
		ids = append(ids, [16]byte{byte(len(ids))})
	}
	return s.Finish(ids), blobs
}

type countingCipher struct {
	AESGCM
	seals, opens int
}

func (c *countingCipher) Seal(key, nonce, pt, ad []byte) ([]byte, error) {
	c.seals++
	return c.AESGCM.Seal(key, nonce, pt, ad)
}

func (c *countingCipher) Open(key, nonce, ct, ad []byte) ([]byte, error) {
	c.opens++
	return c.AESGCM.Open(key, nonce, ct, ad)
}

func TestRoundTrip(t *testing.T) {
	blob := chunksPerBlob * ChunkSize
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, blob, blob + 1, 3*blob + 12345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := make([]byte, n)
			rand.Read(pt)
			c := &countingCipher{}
			ref, blobs := sealAll(t, c, LabelAttachment, pt)
			if want := (n + blob - 1) / blob; len(blobs) != max(want, 1) {
				t.Fatalf("%d blobs, want %d", len(blobs), want)
			}
			if uint64(c.seals) != ref.Chunks() {
				t.Fatalf("%d Seal calls for %d chunks: the configured cipher was bypassed", c.seals, ref.Chunks())
			}
			enc := ref.Marshal()
			if len(enc) > MaxRefLen {
				t.Fatalf("reference of %d bytes", len(enc))
			}
			ref2, err := UnmarshalRef(enc, maxBlob)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Open(c, LabelAttachment, ref2, bytes.Join(blobs, nil))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("round trip differs")
			}
			if _, err := Open(c, LabelHistory, ref2, bytes.Join(blobs, nil)); !errors.Is(err, ErrAuth) {
				t.Fatalf("an attachment opened as history: %v", err)
			}
		})
	}
}

// The digest stops a relay; the associated data stops even someone who
// could also rewrite the reference's digest and size (defence in depth):
// chunks cannot be reordered, dropped or cut at a chunk boundary.
func TestChunksBound(t *testing.T) {
	pt := make([]byte, 2*ChunkSize+100) // three chunks
	rand.Read(pt)
	ref, blobs := sealAll(t, AESGCM{}, LabelAttachment, pt)
	ct := blobs[0]
	step := ChunkSize + TagSize
	chunk := func(i int) []byte { return ct[i*step : min((i+1)*step, len(ct))] }
	reseal := func(size uint64, ct []byte) *Ref {
		r := *ref
		r.Size = size
		r.Digest = sha256.Sum256(ct)
		return &r
	}
	cases := map[string]struct {
		ref  *Ref
		ct   []byte
		want error
	}{
		"flipped byte (digest kept)": {ref, append(append([]byte{}, ct[:10]...), append([]byte{ct[10] ^ 1}, ct[11:]...)...), ErrDigest},
		"swapped chunks":             {reseal(ref.Size, bytes.Join([][]byte{chunk(1), chunk(0), chunk(2)}, nil)), bytes.Join([][]byte{chunk(1), chunk(0), chunk(2)}, nil), ErrAuth},
		"dropped final chunk":        {reseal(2*ChunkSize, ct[:2*step]), ct[:2*step], ErrAuth},
		"dropped middle chunk":       {reseal(ChunkSize+100, bytes.Join([][]byte{chunk(0), chunk(2)}, nil)), bytes.Join([][]byte{chunk(0), chunk(2)}, nil), ErrAuth},
		"truncated":                  {ref, ct[:len(ct)-1], ErrLength},
	}
	for name, c := range cases {
		if got, err := Open(AESGCM{}, LabelAttachment, c.ref, c.ct); !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
}

// The nonce and associated data are exactly as PROTOCOL.md §14.4 says.
func TestNonceAndAD(t *testing.T) {
	if got, want := chunkNonce(0x0102), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2}; !bytes.Equal(got, want) {
		t.Fatalf("nonce %x", got)
	}
	want := append([]byte("parley/attachment/v1\x00"), 0, 0, 0, 0, 0, 0, 0, 2, 1)
	if got := chunkAD(LabelAttachment, 2, true); !bytes.Equal(got, want) {
		t.Fatalf("ad %q", got)
	}
}

func TestRefRefusals(t *testing.T) {
	good := &Ref{ChunkSize: ChunkSize, Size: 5 << 20, Blobs: [][16]byte{{1}, {2}}}
	if _, err := UnmarshalRef(good.Marshal(), maxBlob); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		ref  *Ref
		want error
	}{
		"no blobs":          {&Ref{ChunkSize: ChunkSize, Size: 1}, ErrBlobCount},
		"too few blobs":     {&Ref{ChunkSize: ChunkSize, Size: 20 << 20, Blobs: [][16]byte{{1}, {2}}}, ErrBlobCount},
		"more blobs":        {&Ref{ChunkSize: ChunkSize, Size: 1, Blobs: [][16]byte{{1}, {2}}}, ErrBlobCount},
		"chunk size small":  {&Ref{ChunkSize: 1024, Size: 1, Blobs: [][16]byte{{1}}}, ErrChunkSize},
		"chunk size large":  {&Ref{ChunkSize: 4 << 20, Size: 1, Blobs: [][16]byte{{1}}}, ErrChunkSize},
		"over the max size": {&Ref{ChunkSize: ChunkSize, Size: MaxSize + 1, Blobs: make([][16]byte, 7)}, ErrTooLarge},
	}
	for name, c := range bad {
		if _, err := UnmarshalRef(c.ref.Marshal(), maxBlob); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	enc := good.Marshal()
	enc[1] = 2 // unknown algorithm
	if _, err := UnmarshalRef(enc, maxBlob); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("unknown algorithm: %v", err)
	}
	if _, err := NewSealer(AESGCM{}, rand.Reader, LabelAttachment, make([]byte, MaxSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("sealing an oversize object: %v", err)
	}
}

func benchBulk(b *testing.B, open bool) {
	pt := make([]byte, 4<<20)
	rand.Read(pt)
	ref, blobs := sealAll(b, AESGCM{}, LabelAttachment, pt)
	ct := bytes.Join(blobs, nil)
	b.SetBytes(int64(len(pt)))
	b.ResetTimer()
	for b.Loop() {
		if open {
			if _, err := Open(AESGCM{}, LabelAttachment, ref, ct); err != nil {
				b.Fatal(err)
			}
		} else {
			sealAll(b, AESGCM{}, LabelAttachment, pt)
		}
	}
}

// BenchmarkSeal and BenchmarkOpen measure attachment encryption
// (AES-256-GCM chunks + SHA-256 of the ciphertext) with the default Go
// cipher on a 4 MiB file.
func BenchmarkSeal(b *testing.B) { benchBulk(b, false) }
func BenchmarkOpen(b *testing.B) { benchBulk(b, true) }

// katKey is the known answer's key, 00 01 … 1f.
func katKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// mod251 is the known answer's plaintext: n bytes, byte i = i mod 251.
func mod251(n int) []byte {
	pt := make([]byte, n)
	for i := range pt {
		pt[i] = byte(i % 251)
	}
	return pt
}

// TestKnownAnswer pins the sealed format (PROTOCOL.md §14.4 vector): key
// 00 01 … 1f, plaintext of 2.5 chunks of bytes i mod 251, chunk size 256
// KiB, label parley/attachment/v1. Another implementation (WebCrypto) must
// produce the same SHA-256 of the sealed object.
func TestKnownAnswer(t *testing.T) {
	ref, sealed, err := seal(katKey(), LabelAttachment, 5*ChunkSize/2, [][16]byte{{}})
	if err != nil {
		t.Fatal(err)
	}
	const want = "5f0fa4d824615de0e184907d337213213255ee2f843d87324fc214f8aa7875de" // also from Python cryptography (OpenSSL), written from the spec
	if got := fmt.Sprintf("%x", ref.Digest); got != want {
		t.Fatalf("sealed SHA-256 %s, want %s", got, want)
	}
	if len(sealed) != 5*ChunkSize/2+3*TagSize || fmt.Sprintf("%x", sealed[len(sealed)-16:]) != "eef6d44f0902041fc21ab04b018e6cad" {
		t.Fatalf("sealed %d bytes, last tag %x", len(sealed), sealed[len(sealed)-16:])
	}
}
