package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
)

// sealAll seals pt as the engine would and returns the reference and the
// blobs, with made-up blob ids.
func sealAll(t testing.TB, c BulkCipher, label string, pt []byte) (*blobRef, [][]byte) {
	t.Helper()
	s, err := newBulkSealer(c, rand.Reader, label, pt)
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	var ids [][16]byte
	for {
		b, err := s.nextBlob()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		if len(b) > maxBlobSize {
			t.Fatalf("blob of %d bytes", len(b))
		}
		blobs = append(blobs, b)
		ids = append(ids, [16]byte{byte(len(ids))})
	}
	return s.finish(ids), blobs
}

type countingCipher struct {
	goAESGCM
	seals, opens int
}

func (c *countingCipher) Seal(key, nonce, pt, ad []byte) ([]byte, error) {
	c.seals++
	return c.goAESGCM.Seal(key, nonce, pt, ad)
}

func (c *countingCipher) Open(key, nonce, ct, ad []byte) ([]byte, error) {
	c.opens++
	return c.goAESGCM.Open(key, nonce, ct, ad)
}

func TestBulkRoundTrip(t *testing.T) {
	blob := chunksPerBlob * ChunkSize
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, blob, blob + 1, 3*blob + 12345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := make([]byte, n)
			rand.Read(pt)
			c := &countingCipher{}
			ref, blobs := sealAll(t, c, labelAttachment, pt)
			if want := (n + blob - 1) / blob; len(blobs) != max(want, 1) {
				t.Fatalf("%d blobs, want %d", len(blobs), want)
			}
			if uint64(c.seals) != ref.chunks() {
				t.Fatalf("%d Seal calls for %d chunks: the configured cipher was bypassed", c.seals, ref.chunks())
			}
			enc := ref.marshal()
			if len(enc) > maxBlobRefLen {
				t.Fatalf("reference of %d bytes", len(enc))
			}
			ref2, err := unmarshalBlobRef(enc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := openBulk(c, labelAttachment, ref2, bytes.Join(blobs, nil))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("round trip differs")
			}
			if _, err := openBulk(c, labelHistory, ref2, bytes.Join(blobs, nil)); !errors.Is(err, ErrTampered) {
				t.Fatalf("an attachment opened as history: %v", err)
			}
		})
	}
}

// The digest stops a relay; the associated data stops even someone who
// could also rewrite the reference's digest and size (defence in depth):
// chunks cannot be reordered, dropped or cut at a chunk boundary.
func TestBulkChunksBound(t *testing.T) {
	pt := make([]byte, 2*ChunkSize+100) // three chunks
	rand.Read(pt)
	ref, blobs := sealAll(t, goAESGCM{}, labelAttachment, pt)
	ct := blobs[0]
	step := ChunkSize + bulkTagSize
	chunk := func(i int) []byte { return ct[i*step : min((i+1)*step, len(ct))] }
	reseal := func(size uint64, ct []byte) *blobRef {
		r := *ref
		r.Size = size
		r.Digest = sha256.Sum256(ct)
		return &r
	}
	cases := map[string]struct {
		ref *blobRef
		ct  []byte
	}{
		"flipped byte (digest kept)": {ref, append(append([]byte{}, ct[:10]...), append([]byte{ct[10] ^ 1}, ct[11:]...)...)},
		"swapped chunks":             {reseal(ref.Size, bytes.Join([][]byte{chunk(1), chunk(0), chunk(2)}, nil)), bytes.Join([][]byte{chunk(1), chunk(0), chunk(2)}, nil)},
		"dropped final chunk":        {reseal(2*ChunkSize, ct[:2*step]), ct[:2*step]},
		"dropped middle chunk":       {reseal(ChunkSize+100, bytes.Join([][]byte{chunk(0), chunk(2)}, nil)), bytes.Join([][]byte{chunk(0), chunk(2)}, nil)},
		"truncated":                  {ref, ct[:len(ct)-1]},
	}
	for name, c := range cases {
		if got, err := openBulk(goAESGCM{}, labelAttachment, c.ref, c.ct); !errors.Is(err, ErrTampered) || got != nil {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
}

// The nonce and associated data are exactly as PROTOCOL.md §14.4 says.
func TestBulkNonceAndAD(t *testing.T) {
	if got, want := chunkNonce(0x0102), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2}; !bytes.Equal(got, want) {
		t.Fatalf("nonce %x", got)
	}
	want := append([]byte("parley/attachment/v1\x00"), 0, 0, 0, 0, 0, 0, 0, 2, 1)
	if got := chunkAD(labelAttachment, 2, true); !bytes.Equal(got, want) {
		t.Fatalf("ad %q", got)
	}
}

func TestBlobRefRefusals(t *testing.T) {
	good := &blobRef{ChunkSize: ChunkSize, Size: 5 << 20, Blobs: [][16]byte{{1}, {2}}}
	if _, err := unmarshalBlobRef(good.marshal()); err != nil {
		t.Fatal(err)
	}
	bad := map[string]*blobRef{
		"no blobs":          {ChunkSize: ChunkSize, Size: 1},
		"too few blobs":     {ChunkSize: ChunkSize, Size: 20 << 20, Blobs: [][16]byte{{1}, {2}}},
		"more blobs":        {ChunkSize: ChunkSize, Size: 1, Blobs: [][16]byte{{1}, {2}}},
		"chunk size small":  {ChunkSize: 1024, Size: 1, Blobs: [][16]byte{{1}}},
		"chunk size large":  {ChunkSize: 4 << 20, Size: 1, Blobs: [][16]byte{{1}}},
		"over the max size": {ChunkSize: ChunkSize, Size: maxBulkSize + 1, Blobs: make([][16]byte, 7)},
	}
	for name, r := range bad {
		if _, err := unmarshalBlobRef(r.marshal()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	enc := good.marshal()
	enc[1] = 2 // unknown algorithm
	if _, err := unmarshalBlobRef(enc); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

func FuzzBlobRef(f *testing.F) {
	f.Add((&blobRef{ChunkSize: ChunkSize, Size: 5 << 20, Blobs: [][16]byte{{1}, {2}}}).marshal())
	f.Add((&blobRef{ChunkSize: ChunkSize, Blobs: [][16]byte{{1}}}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshalBlobRef(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.marshal(), b) {
			t.Fatal("a reference does not re-encode to the same bytes")
		}
	})
}

func FuzzAttachmentBody(f *testing.F) {
	ref := &blobRef{ChunkSize: ChunkSize, Size: 1000, Blobs: [][16]byte{{1}}}
	f.Add((&attachmentBody{Ref: ref, Name: "cat.jpg", Type: "image/jpeg", Caption: "a cat", Thumbnail: []byte{1, 2, 3}}).marshal())
	f.Add((&attachmentBody{Ref: ref, Name: "x", Type: defaultMIMEType}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := unmarshalAttachmentBody(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.marshal(), b) {
			t.Fatal("an attachment body does not re-encode to the same bytes")
		}
	})
}

// The attachment message fits a payload body with every field at its
// limit, and the payload fits one ratchet message.
func TestAttachmentBodyFitsPayload(t *testing.T) {
	ref := &blobRef{ChunkSize: ChunkSize, Size: MaxAttachmentSize, Blobs: make([][16]byte, maxRefBlobs)}
	a := &attachmentBody{Ref: ref, Name: string(bytes.Repeat([]byte("n"), MaxFileNameLen)), Type: string(bytes.Repeat([]byte("t"), MaxMIMETypeLen)),
		Caption: string(bytes.Repeat([]byte("c"), MaxCaptionLen)), Thumbnail: make([]byte, MaxThumbnailSize)}
	body := a.marshal()
	if len(body) > maxPayloadBody {
		t.Fatalf("attachment body of %d bytes over maxPayloadBody %d", len(body), maxPayloadBody)
	}
	p := &payload{Kind: kindAttachment, To: "bob", Body: body}
	if _, err := unmarshalPayload(p.marshal()); err != nil {
		t.Fatal(err)
	}
}

func benchBulk(b *testing.B, open bool) {
	pt := make([]byte, 4<<20)
	rand.Read(pt)
	ref, blobs := sealAll(b, goAESGCM{}, labelAttachment, pt)
	ct := bytes.Join(blobs, nil)
	b.SetBytes(int64(len(pt)))
	b.ResetTimer()
	for b.Loop() {
		if open {
			if _, err := openBulk(goAESGCM{}, labelAttachment, ref, ct); err != nil {
				b.Fatal(err)
			}
		} else {
			sealAll(b, goAESGCM{}, labelAttachment, pt)
		}
	}
}

// BenchmarkBulkSeal and BenchmarkBulkOpen measure attachment encryption
// (AES-256-GCM chunks + SHA-256 of the ciphertext) with the default Go
// cipher on a 4 MiB file.
func BenchmarkBulkSeal(b *testing.B) { benchBulk(b, false) }
func BenchmarkBulkOpen(b *testing.B) { benchBulk(b, true) }

// fixedReader yields 0x00, 0x01, … for a deterministic key.
type fixedReader struct{ n byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// TestBulkKnownAnswer pins the sealed format (PROTOCOL.md §14.4 vector):
// key 00 01 … 1f, plaintext of 2.5 chunks of bytes i mod 251, chunk size
// 256 KiB, label parley/attachment/v1. Another implementation (WebCrypto)
// must produce the same SHA-256 of the sealed object.
func TestBulkKnownAnswer(t *testing.T) {
	pt := make([]byte, 5*ChunkSize/2)
	for i := range pt {
		pt[i] = byte(i % 251)
	}
	s, err := newBulkSealer(goAESGCM{}, &fixedReader{}, labelAttachment, pt)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	for {
		b, err := s.nextBlob()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			break
		}
		sealed = append(sealed, b...)
	}
	ref := s.finish([][16]byte{{}})
	const want = "5f0fa4d824615de0e184907d337213213255ee2f843d87324fc214f8aa7875de" // also from Python cryptography (OpenSSL), written from the spec
	if got := fmt.Sprintf("%x", ref.Digest); got != want {
		t.Fatalf("sealed SHA-256 %s, want %s", got, want)
	}
	if len(sealed) != len(pt)+3*bulkTagSize || fmt.Sprintf("%x", sealed[len(sealed)-16:]) != "eef6d44f0902041fc21ab04b018e6cad" {
		t.Fatalf("sealed %d bytes, last tag %x", len(sealed), sealed[len(sealed)-16:])
	}
}
