package client

import (
	"bytes"
	"testing"
	"time"
)

// FuzzSessionRecords feeds arbitrary bytes to the decoders of the records
// that bound session starts and resends (replay.go and the prekey
// state); the first byte picks the decoder. A decoder must never panic,
// and whatever it accepts must re-encode to the same bytes.
func FuzzSessionRecords(f *testing.F) {
	f.Add(append([]byte{0}, marshalInitialSeen(time.UnixMilli(1_700_000_000_000))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		var out []byte
		switch data[0] % 1 {
		case 0:
			if v, err := unmarshalInitialSeen(in); err == nil {
				out = marshalInitialSeen(v)
			}
		}
		if out != nil && !bytes.Equal(out, in) {
			t.Fatalf("decoder %d accepted %x but re-encodes it as %x", data[0]%1, in, out)
		}
	})
}
