package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-im/parley/crypto/bulk"
	"github.com/parley-im/parley/relay"
)

// The construction's own tests and vectors are in crypto/bulk; these test
// the engine's use of it.

// katKey reads as the key 00 01 … 1f, the one uploadBulk draws first.
func katKey() io.Reader {
	k := make([]byte, bulk.KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return bytes.NewReader(k)
}

// blobConn hands out blob ids b1 01, b1 02, …
type blobConn struct {
	Conn
	n byte
}

func (c *blobConn) ReserveBlob(context.Context) (*relay.BlobID, error) {
	c.n++
	return &relay.BlobID{ID: [16]byte{0xb1, c.n}}, nil
}

// blobStore is a relay that only stores blobs.
type blobStore struct {
	Relay
	blobs map[[16]byte][]byte
	order [][16]byte
}

func (r *blobStore) PutBlob(_ context.Context, id [16]byte, b []byte) error {
	r.blobs[id] = bytes.Clone(b)
	r.order = append(r.order, id)
	return nil
}

func (r *blobStore) GetBlob(_ context.Context, id [16]byte) ([]byte, error) {
	return bytes.Clone(r.blobs[id]), nil
}

// TestUploadBulkUnchanged pins what the engine uploads (blob by blob, 16
// chunks a blob) and the reference it sends, under the key 00 01 … 1f, for
// plaintexts of bytes i mod 251: the values were recorded from the engine
// before the construction moved to crypto/bulk, and must never change.
func TestUploadBulkUnchanged(t *testing.T) {
	cases := []struct {
		n     int
		label string
		ref   string
		blobs []string // SHA-256 of each uploaded blob, in order
	}{
		{0, bulk.LabelAttachment,
			"0101000400000000000000000000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f3742dee70943c30ee733b92973690618d8f14235a4e3ee23d4be39568c02d61e00000001b1010000000000000000000000000000",
			[]string{"3742dee70943c30ee733b92973690618d8f14235a4e3ee23d4be39568c02d61e"}},
		{0, bulk.LabelHistory,
			"0101000400000000000000000000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1faee0e645717212a9aea9d915363d7bed220cb022b2fcfee866e01fad994beff500000001b1010000000000000000000000000000",
			[]string{"aee0e645717212a9aea9d915363d7bed220cb022b2fcfee866e01fad994beff5"}},
		{1000, bulk.LabelAttachment,
			"01010004000000000000000003e8000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f83aeadd3155b642503bd059dc3e87c4c0806c300ce6123698cee45f483e142eb00000001b1010000000000000000000000000000",
			[]string{"83aeadd3155b642503bd059dc3e87c4c0806c300ce6123698cee45f483e142eb"}},
		{1000, bulk.LabelHistory,
			"01010004000000000000000003e8000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f5ed80e95657af5f71429dcc0fd0726ea3ff615fd30d81fa01e6dfab4d3a86e8600000001b1010000000000000000000000000000",
			[]string{"5ed80e95657af5f71429dcc0fd0726ea3ff615fd30d81fa01e6dfab4d3a86e86"}},
		{17*ChunkSize + 1000, bulk.LabelAttachment,
			"01010004000000000000004403e8000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f7bb45d3dd7cb8ca07c427813e39365dd415f3f65593597ae5789874df9ae7e5500000002b1010000000000000000000000000000b1020000000000000000000000000000",
			[]string{"d55834596878d36e768350cecd00ab92d1cdb42a0253ca0ae2e5e3ce3187812b", "43d685504c6578cf35a07bc405cf2bb39907d59c7a54f6534736958ce043f5f7"}},
		{17*ChunkSize + 1000, bulk.LabelHistory,
			"01010004000000000000004403e8000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1feaf68774d7bab7dfcf2b9ca9d8c0c3cc7e707cf2769c54693b910f7c37ed88ad00000002b1010000000000000000000000000000b1020000000000000000000000000000",
			[]string{"1ce9ab02d8f7e9c1c0c04212b32b84c5943c29487798e4f6bbcb9b3eda31da62", "3559929a1a11d49cf3cbb9fd5cf6fcfa53009499fa261349f6bea165bbddca82"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d/%s", c.n, c.label), func(t *testing.T) {
			pt := make([]byte, c.n)
			for i := range pt {
				pt[i] = byte(i % 251)
			}
			store := &blobStore{blobs: map[[16]byte][]byte{}}
			e := &Engine{cfg: Config{Rand: katKey(), Relay: store}}
			ref, err := e.uploadBulk(context.Background(), &blobConn{}, c.label, pt, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", ref.Marshal()); got != c.ref {
				t.Errorf("reference %s, want %s", got, c.ref)
			}
			var got []string
			for _, id := range store.order {
				got = append(got, fmt.Sprintf("%x", sha256.Sum256(store.blobs[id])))
			}
			if fmt.Sprint(got) != fmt.Sprint(c.blobs) {
				t.Errorf("blobs %v, want %v", got, c.blobs)
			}
			back, err := e.downloadBulk(context.Background(), c.label, ref, nil)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("download: %d bytes, %v", len(back), err)
			}
		})
	}
}

// openBulk maps every failure of crypto/bulk to ErrTampered with the
// sentence it always had, and the cipher's error as the cause of a chunk
// that does not open.
func TestOpenBulkErrors(t *testing.T) {
	pt := make([]byte, 2*ChunkSize+100)
	store := &blobStore{blobs: map[[16]byte][]byte{}}
	e := &Engine{cfg: Config{Rand: katKey(), Relay: store}}
	ref, err := e.uploadBulk(context.Background(), &blobConn{}, bulk.LabelAttachment, pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct := store.blobs[ref.Blobs[0]]
	flipped := bytes.Clone(ct)
	flipped[10] ^= 1
	redigested := *ref
	redigested.Digest = sha256.Sum256(flipped)
	cases := []struct {
		name   string
		ref    *bulk.Ref
		sealed []byte
		label  string
		msg    string
		cause  string
	}{
		{"truncated", ref, ct[:len(ct)-1], bulk.LabelAttachment, "the encrypted file is 524435 bytes, its reference says 524436: refused", ""},
		{"trailing", ref, append(bytes.Clone(ct), 0), bulk.LabelAttachment, "the encrypted file is 524437 bytes, its reference says 524436: refused", ""},
		{"flipped", ref, flipped, bulk.LabelAttachment, "the encrypted file does not match its digest: refused", ""},
		{"flipped, digest rewritten", &redigested, flipped, bulk.LabelAttachment, "chunk 0 of the encrypted file does not authenticate: refused", "cipher: message authentication failed"},
		{"opened as history", ref, ct, bulk.LabelHistory, "chunk 0 of the encrypted file does not authenticate: refused", "cipher: message authentication failed"},
	}
	for _, c := range cases {
		got, err := openBulk(bulk.AESGCM{}, c.label, c.ref, c.sealed)
		var ee *Error
		if got != nil || !errors.As(err, &ee) || ee.Code != ErrTampered.Code || ee.Message != c.msg {
			t.Errorf("%s: %d bytes, %v", c.name, len(got), err)
			continue
		}
		if cause := fmt.Sprint(ee.Err); (c.cause == "" && ee.Err != nil) || (c.cause != "" && cause != c.cause) {
			t.Errorf("%s: cause %v, want %q", c.name, ee.Err, c.cause)
		}
	}
}

func FuzzAttachmentBody(f *testing.F) {
	ref := &bulk.Ref{ChunkSize: ChunkSize, Size: 1000, Blobs: [][16]byte{{1}}}
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
	ref := &bulk.Ref{ChunkSize: ChunkSize, Size: MaxAttachmentSize, Blobs: make([][16]byte, bulk.MaxRefBlobs)}
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
