package padding

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/parley-im/parley/crypto/internal/vectortest"
)

// Test vectors: testdata/{good,fail}_*.json in the layout of PROTOCOL.md
// §9.1, types padding/size, padding/pad and padding/open (§9.2).
// Regenerate with: go test ./crypto/padding -run TestVectors -update

var vectorErrors = vectortest.Errors{
	"padding_length":   ErrLength,
	"non_zero_padding": ErrNonZero,
}

// payloadOf is a payload of n bytes as the engine makes them: its version
// byte 1 first, then bytes i mod 251.
func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	if n > 0 {
		b[0] = 1
	}
	return b
}

// frameOf is a padded frame of size bytes claiming n payload bytes, the
// payload payloadOf(n) as far as it fits.
func frameOf(size int, n uint32) []byte {
	b := make([]byte, size)
	b[0] = Tag
	if size >= HeaderSize {
		binary.BigEndian.PutUint32(b[1:HeaderSize], n)
		copy(b[HeaderSize:], payloadOf(int(n)))
	}
	return b
}

func generateVectors(t *testing.T) map[string]vectortest.Op {
	v := map[string]vectortest.Op{}
	size := func(name, comment string, n int) {
		op := vectortest.Op{Comment: comment, Type: "padding/size", Input: map[string]any{"frame_length": n}}
		if s := Size(n); s != 0 {
			op.Output = map[string]any{"size": s}
		} else {
			op.Error = "too_large"
		}
		v[name] = op
	}
	size("good_size_smallest", "A frame of 5 bytes (an empty payload) takes the smallest bucket, 256.", HeaderSize)
	size("good_size_exact_bucket", "A frame of exactly 4096 bytes takes the 4 KiB bucket.", 4096)
	size("good_size_next_bucket", "One byte over 4 KiB takes the 16 KiB bucket.", 4097)
	size("good_size_64k", "A frame of 65,536 bytes takes the 64 KiB bucket.", 65536)
	size("good_size_step", "Above 64 KiB, frames grow in steps of 64 KiB: 65,537 bytes take 128 KiB.", 65537)
	size("good_size_max", "The largest frame, 192 KiB.", MaxSize)
	size("fail_size_over_max", "One byte over the largest frame.", MaxSize+1)

	pad := func(name, comment string, p []byte) {
		f, err := Pad(p)
		if err != nil {
			t.Fatal(err)
		}
		v[name] = vectortest.Op{Comment: comment, Type: "padding/pad",
			Input: map[string]any{"payload": vectortest.Hex(p)}, Output: map[string]any{"frame": vectortest.Hex(f)}}
	}
	pad("good_pad_empty", "An empty payload: tag, length 0, 251 zero bytes.", nil)
	pad("good_pad_receipt", "A 91-byte payload (the size of a one-id receipt) in a 256-byte frame.", payloadOf(91))
	pad("good_pad_bucket_full", "A 251-byte payload fills the 256-byte frame: no padding byte.", payloadOf(251))
	pad("good_pad_next_bucket", "A 252-byte payload takes a 1 KiB frame.", payloadOf(252))

	open := func(name, comment string, frame []byte, errName string) {
		op := vectortest.Op{Comment: comment, Type: "padding/open", Input: map[string]any{"frame": vectortest.Hex(frame)}, Error: errName}
		if errName == "" {
			p, padded, err := Open(frame)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			op.Output = map[string]any{"payload": vectortest.Hex(p), "padded": padded}
		}
		v[name] = op
	}
	open("good_open_padded", "A 256-byte frame holding a 40-byte payload.", frameOf(256, 40), "")
	open("good_open_unpadded", "An unpadded payload (first byte 1, below the tag) from a client that does not pad comes back as it is.", payloadOf(70), "")
	open("fail_open_empty", "No bytes at all.", nil, "short")
	open("fail_open_short_header", "The tag and three bytes of the length.", frameOf(4, 0)[:4], "short")
	open("fail_open_unknown_format", "A first byte above the tag: a padding format this client does not know.", append([]byte{Tag + 1}, frameOf(256, 40)[1:]...), "version")
	nz := frameOf(256, 40)
	nz[255] = 1
	open("fail_open_nonzero_padding", "The last padding byte is 1.", nz, "non_zero_padding")
	open("fail_open_length_beyond_frame", "A 256-byte frame claims 300 payload bytes.", frameOf(256, 300), "padding_length")
	open("fail_open_wrong_bucket", "A 1 KiB frame holds a 40-byte payload, which belongs in a 256-byte frame.", frameOf(1024, 40), "padding_length")
	open("fail_open_truncated", "A 255-byte frame: no bucket has that size.", frameOf(256, 40)[:255], "padding_length")
	return v
}

func replay(t *testing.T, op vectortest.Op) error {
	switch op.Type {
	case "padding/size":
		n := int(vectortest.Int(t, op.Input, "frame_length"))
		s := Size(n)
		if s == 0 {
			_, err := Pad(make([]byte, n-HeaderSize))
			return err
		}
		if want := vectortest.Int(t, op.Output, "size"); int64(s) != want {
			t.Fatalf("size %d, want %d", s, want)
		}
		f, err := Pad(make([]byte, n-HeaderSize))
		if err != nil || len(f) != s {
			t.Fatalf("Pad: %d bytes, %v", len(f), err)
		}
		return nil
	case "padding/pad":
		p := vectortest.Bytes(t, op.Input, "payload")
		f, err := Pad(p)
		if err != nil {
			return err
		}
		if want := vectortest.Bytes(t, op.Output, "frame"); !bytes.Equal(f, want) {
			t.Fatalf("frame %x, want %x", f, want)
		}
		back, padded, err := Open(f)
		if err != nil || !padded || !bytes.Equal(back, p) {
			t.Fatalf("Open(Pad(p)) = %x, %v, %v", back, padded, err)
		}
		return nil
	case "padding/open":
		p, padded, err := Open(vectortest.Bytes(t, op.Input, "frame"))
		if err != nil {
			return err
		}
		if want := vectortest.Bytes(t, op.Output, "payload"); !bytes.Equal(p, want) {
			t.Fatalf("payload %x, want %x", p, want)
		}
		if want, _ := op.Output["padded"].(bool); padded != want {
			t.Fatalf("padded %v, want %v", padded, want)
		}
		return nil
	}
	return fmt.Errorf("unknown vector type %q", op.Type)
}

func TestVectors(t *testing.T) { vectortest.RunOps(t, generateVectors, replay, vectorErrors) }

// TestEveryBucket checks the sizes between the vectors: every frame length
// up to MaxSize pads to the smallest bucket that holds it, and the frame
// opens to the same payload.
func TestEveryBucket(t *testing.T) {
	sizes := []int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10, 192 << 10}
	prev := 0
	for _, s := range sizes {
		for _, n := range []int{prev + 1, s - 1, s} {
			if n < HeaderSize {
				continue
			}
			if got := Size(n); got != s {
				t.Fatalf("Size(%d) = %d, want %d", n, got, s)
			}
			p := payloadOf(n - HeaderSize)
			f, err := Pad(p)
			if err != nil || len(f) != s {
				t.Fatalf("Pad(%d bytes): %d, %v", len(p), len(f), err)
			}
			if back, padded, err := Open(f); err != nil || !padded || !bytes.Equal(back, p) {
				t.Fatalf("Open of a %d-byte frame: %v", s, err)
			}
		}
		prev = s
	}
	big := frameOf(MaxSize+step, 10)
	if _, _, err := Open(big); err == nil {
		t.Fatal("a frame over MaxSize opened")
	}
}

// BenchmarkPadOpen: what padding adds to every message, a receipt-sized
// payload padded by the sender and opened by the receiver.
func BenchmarkPadOpen(b *testing.B) {
	p := payloadOf(91)
	b.ReportAllocs()
	for range b.N {
		f, err := Pad(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := Open(f); err != nil {
			b.Fatal(err)
		}
	}
}
