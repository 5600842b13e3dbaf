package bulk

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// The vectors in testdata are written by `go test ./crypto/bulk -run
// TestVectors -update` and replayed by TestVectors, in the layout of
// docs/PROTOCOL.md §9.1. Plaintexts are given by their size: byte i is
// i mod 251, as in §14.4's known answer, so a vector of a 640 KiB object
// stays small. The operations:
//
//   - bulk/seal: seal plaintext_size bytes under key and label (chunk
//     size 256 KiB) and finish with blob_ids; output: the reference, the
//     sealed size and the last chunk's tag.
//   - bulk/ref: decode ref with max_blob bytes a blob (the relay's
//     MaxBlob); output: its fields.
//   - bulk/open: seal the genuine object as bulk/seal does (key,
//     seal_label, plaintext_size), deliver the bytes that sealed lists
//     (each {"from", "to"} a slice of the genuine object, each {"hex"}
//     literal bytes), decode ref with max_blob and open under label;
//     output: the plaintext's SHA-256.
type vector = vectortest.Op

// vectorErrors are the names of §9.3 (short, trailing, version, too_large)
// and these.
var vectorErrors = vectortest.Errors{
	"unknown_algorithm": ErrAlgorithm,
	"chunk_size":        ErrChunkSize,
	"blob_count":        ErrBlobCount,
	"length":            ErrLength,
	"digest":            ErrDigest,
	"auth":              ErrAuth,
}

var hx = vectortest.Hex

// seal seals the vectors' plaintext of size bytes under key.
func seal(key []byte, label string, size int, ids [][16]byte) (*Ref, []byte, error) {
	s, blobs, err := sealBlobs(AESGCM{}, bytes.NewReader(key), label, mod251(size))
	if err != nil {
		return nil, nil, err
	}
	return s.Finish(ids), bytes.Join(blobs, nil), nil
}

func ids(n int) [][16]byte {
	out := make([][16]byte, n)
	for i := range out {
		out[i] = [16]byte{0xb1, byte(i + 1)}
	}
	return out
}

func idList(ids [][16]byte) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, hx(id[:]))
	}
	return out
}

// span is a slice of the genuine sealed object in a bulk/open vector.
func span(from, to int) map[string]any { return map[string]any{"from": from, "to": to} }

func literal(b []byte) map[string]any { return map[string]any{"hex": hx(b)} }

func generateVectors(t *testing.T) map[string]vector {
	v := map[string]vector{}
	key := katKey()
	const kat = 5 * ChunkSize / 2 // §14.4's known answer: three chunks

	sealVec := func(comment, label string, size int, blobs [][16]byte) vector {
		vec := vector{Comment: comment, Type: "bulk/seal",
			Input: map[string]any{"label": label, "key": hx(key), "plaintext_size": size, "blob_ids": idList(blobs)}}
		ref, sealed, err := seal(key, label, size, blobs)
		if err != nil {
			vec.Error = vectorErrors.Name(err)
			return vec
		}
		vec.Output = map[string]any{"ref": hx(ref.Marshal()), "sealed_size": len(sealed), "last_tag": hx(sealed[len(sealed)-TagSize:])}
		return vec
	}
	v["good_seal_empty"] = sealVec("an empty object is one empty final chunk: a tag alone", LabelAttachment, 0, ids(1))
	v["good_seal_short"] = sealVec("a history bundle shorter than a chunk", LabelHistory, 1000, ids(1))
	v["good_seal_whole_chunks"] = sealVec("two full chunks: the second is final", LabelAttachment, 2*ChunkSize, ids(1))
	v["good_seal_known_answer"] = sealVec("PROTOCOL.md §14.4's known answer: 2.5 chunks, sealed SHA-256 5f0fa4d8…", LabelAttachment, kat, ids(1))
	v["fail_seal_oversize"] = sealVec("one byte over 25 MiB is refused before sealing", LabelAttachment, MaxSize+1, ids(4))

	refVec := func(comment string, enc []byte, errName string) vector {
		vec := vector{Comment: comment, Type: "bulk/ref", Input: map[string]any{"ref": hx(enc), "max_blob": maxBlob}, Error: errName}
		if errName == "" {
			r, err := UnmarshalRef(enc, maxBlob)
			if err != nil {
				t.Fatal(err)
			}
			vec.Output = refOutput(r)
		}
		return vec
	}
	katRef, katSealed, err := seal(key, LabelAttachment, kat, ids(1))
	if err != nil {
		t.Fatal(err)
	}
	good := katRef.Marshal()
	v["good_ref"] = refVec("the known answer's reference", good, "")
	limits := &Ref{ChunkSize: MinChunkSize, Size: MaxSize, Key: katRef.Key, Digest: katRef.Digest, Blobs: ids(MaxRefBlobs)}
	v["good_ref_limits"] = refVec("every limit at its bound: 64 KiB chunks, 25 MiB, 26 blobs", limits.Marshal(), "")
	with := func(f func(r *Ref)) []byte {
		r := *katRef
		f(&r)
		return r.Marshal()
	}
	bad := bytes.Clone(good)
	bad[0] = 2
	v["fail_ref_unknown_version"] = refVec("reference format version 2", bad, "version")
	bad = bytes.Clone(good)
	bad[1] = 2
	v["fail_ref_unknown_algorithm"] = refVec("algorithm 2 (only 1, AES-256-GCM, exists)", bad, "unknown_algorithm")
	v["fail_ref_chunk_size_too_small"] = refVec("chunk size 64 KiB - 1", with(func(r *Ref) { r.ChunkSize = MinChunkSize - 1 }), "chunk_size")
	v["fail_ref_chunk_size_too_large"] = refVec("chunk size 1 MiB + 1", with(func(r *Ref) { r.ChunkSize = MaxChunkSize + 1 }), "chunk_size")
	v["fail_ref_oversize"] = refVec("size 25 MiB + 1", with(func(r *Ref) { r.Size = MaxSize + 1; r.Blobs = ids(4) }), "too_large")
	v["fail_ref_too_many_blobs"] = refVec("27 blob ids, over the 26 a reference may hold", with(func(r *Ref) { r.Size = MaxSize; r.Blobs = ids(MaxRefBlobs + 1) }), "too_large")
	v["fail_ref_no_blobs"] = refVec("no blob ids", with(func(r *Ref) { r.Blobs = nil }), "blob_count")
	v["fail_ref_more_blobs_than_chunks"] = refVec("four blobs for three chunks", with(func(r *Ref) { r.Blobs = ids(4) }), "blob_count")
	v["fail_ref_too_few_blobs"] = refVec("25 MiB in three blobs of at most 8 MiB", with(func(r *Ref) { r.Size = MaxSize; r.Blobs = ids(3) }), "blob_count")
	v["fail_ref_truncated"] = refVec("the last byte of the last blob id missing", good[:len(good)-1], "short")
	v["fail_ref_trailing_data"] = refVec("a byte after the last blob id", append(bytes.Clone(good), 0), "trailing")

	n := len(katSealed)
	step := ChunkSize + TagSize
	openVec := func(comment string, ref *Ref, label string, sealed []any, delivered []byte, errName string) vector {
		vec := vector{Comment: comment, Type: "bulk/open", Error: errName,
			Input: map[string]any{"key": hx(key), "seal_label": LabelAttachment, "plaintext_size": kat,
				"sealed": sealed, "ref": hx(ref.Marshal()), "max_blob": maxBlob, "label": label}}
		pt, err := Open(AESGCM{}, label, ref, delivered)
		if name := vectorErrors.Name(err); err != nil && name != errName {
			t.Fatalf("%s: got %s, want %s", comment, name, errName)
		}
		if errName == "" {
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(pt)
			vec.Output = map[string]any{"plaintext_sha256": hx(sum[:])}
		}
		return vec
	}
	// redigest is ref with size and digest rewritten for delivered: a
	// forger who controls the reference too, which only the chunks'
	// associated data stops.
	redigest := func(size int, delivered []byte) *Ref {
		r := *katRef
		r.Size = uint64(size)
		r.Digest = sha256.Sum256(delivered)
		return &r
	}
	cut := func(spans ...[2]int) ([]any, []byte) {
		var segs []any
		var out []byte
		for _, s := range spans {
			segs = append(segs, span(s[0], s[1]))
			out = append(out, katSealed[s[0]:s[1]]...)
		}
		return segs, out
	}
	whole, _ := cut([2]int{0, n})
	v["good_open_known_answer"] = openVec("the known answer's object, delivered whole", katRef, LabelAttachment, whole, katSealed, "")

	segs, d := cut([2]int{0, n - 1})
	v["fail_truncated"] = openVec("the last byte missing", katRef, LabelAttachment, segs, d, "length")
	segs = append(whole, literal([]byte{0}))
	v["fail_trailing_data"] = openVec("a byte after the object", katRef, LabelAttachment, segs, append(bytes.Clone(katSealed), 0), "length")
	flipped := bytes.Clone(katSealed)
	flipped[10] ^= 1
	segs = []any{span(0, 10), literal(flipped[10:11]), span(11, n)}
	v["fail_bad_digest"] = openVec("one ciphertext bit flipped; the reference is genuine", katRef, LabelAttachment, segs, flipped, "digest")
	flipped = bytes.Clone(katSealed)
	flipped[n-1] ^= 1
	segs = []any{span(0, n-1), literal(flipped[n-1:])}
	v["fail_bad_tag"] = openVec("the final tag's last bit flipped, the digest rewritten to match", redigest(kat, flipped), LabelAttachment, segs, flipped, "auth")
	segs, d = cut([2]int{step, 2 * step}, [2]int{0, step}, [2]int{2 * step, n})
	v["fail_reordered_chunk"] = openVec("chunks 0 and 1 swapped, the digest rewritten to match", redigest(kat, d), LabelAttachment, segs, d, "auth")
	segs, d = cut([2]int{0, 2 * step})
	v["fail_dropped_final_chunk"] = openVec("cut at a chunk boundary: the final chunk dropped, size and digest rewritten to match", redigest(2*ChunkSize, d), LabelAttachment, segs, d, "auth")
	segs, d = cut([2]int{0, step}, [2]int{2 * step, n})
	v["fail_dropped_middle_chunk"] = openVec("chunk 1 dropped, size and digest rewritten to match", redigest(kat-ChunkSize, d), LabelAttachment, segs, d, "auth")
	other := *katRef
	vectortest.NewDetRand("parley bulk vectors, other key").Read(other.Key[:])
	v["fail_wrong_key"] = openVec("the genuine object under another key", &other, LabelAttachment, whole, katSealed, "auth")
	v["fail_wrong_label"] = openVec("an attachment opened as a history bundle", katRef, LabelHistory, whole, katSealed, "auth")
	return v
}

func refOutput(r *Ref) map[string]any {
	return map[string]any{"chunk_size": r.ChunkSize, "size": r.Size, "key": hx(r.Key[:]), "digest": hx(r.Digest[:]), "blob_ids": idList(r.Blobs)}
}

// sealed assembles a bulk/open vector's delivered bytes from the genuine
// object.
func sealed(t *testing.T, genuine []byte, segs []any) []byte {
	var out []byte
	for _, s := range segs {
		m := s.(map[string]any)
		if _, ok := m["hex"]; ok {
			out = append(out, vectortest.Bytes(t, m, "hex")...)
			continue
		}
		from, to := vectortest.Int(t, m, "from"), vectortest.Int(t, m, "to")
		if from < 0 || from > to || to > int64(len(genuine)) {
			t.Fatalf("span %d..%d of %d bytes", from, to, len(genuine))
		}
		out = append(out, genuine[from:to]...)
	}
	return out
}

func replay(t *testing.T, v vector) error {
	in := func(k string) []byte { return vectortest.Bytes(t, v.Input, k) }
	size := func() int { return int(vectortest.Int(t, v.Input, "plaintext_size")) }
	same := func(what string, got any) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(v.Output)
		if string(g) != string(w) {
			t.Errorf("%s differs:\n got %s\nwant %s", what, g, w)
		}
	}
	switch v.Type {
	case "bulk/seal":
		var blobs [][16]byte
		for _, id := range vectortest.BytesList(t, v.Input, "blob_ids") {
			blobs = append(blobs, [16]byte(id))
		}
		ref, sealed, err := seal(in("key"), v.Input["label"].(string), size(), blobs)
		if err != nil {
			return err
		}
		same("seal output", map[string]any{"ref": hx(ref.Marshal()), "sealed_size": len(sealed), "last_tag": hx(sealed[len(sealed)-TagSize:])})
	case "bulk/ref":
		r, err := UnmarshalRef(in("ref"), uint64(vectortest.Int(t, v.Input, "max_blob")))
		if err != nil {
			return err
		}
		same("reference", refOutput(r))
	case "bulk/open":
		_, genuine, err := seal(in("key"), v.Input["seal_label"].(string), size(), ids(1))
		if err != nil {
			t.Fatal(err)
		}
		segs, _ := v.Input["sealed"].([]any)
		delivered := sealed(t, genuine, segs)
		r, err := UnmarshalRef(in("ref"), uint64(vectortest.Int(t, v.Input, "max_blob")))
		if err != nil {
			return err
		}
		pt, err := Open(AESGCM{}, v.Input["label"].(string), r, delivered)
		if err != nil {
			if pt != nil {
				t.Error("a failed Open returned plaintext")
			}
			return err
		}
		sum := sha256.Sum256(pt)
		same("plaintext", map[string]any{"plaintext_sha256": hx(sum[:])})
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	return nil
}

func TestVectors(t *testing.T) { vectortest.RunOps(t, generateVectors, replay, vectorErrors) }
