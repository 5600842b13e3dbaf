package client

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
)

// FuzzSessionRecords feeds arbitrary bytes to the decoders of the records
// that bound session starts and resends (replay.go, the prekey state,
// sentto.go and the outbox record for one device); the first byte picks the decoder. A decoder must never panic,
// and whatever it accepts must re-encode to the same bytes (a version 1
// prekey state to a version 2 one that decodes to the same state).
func FuzzSessionRecords(f *testing.F) {
	f.Add(append([]byte{0}, marshalInitialSeen(time.UnixMilli(1_700_000_000_000))...))
	st := &prekeyState{NextOneTime: 51, NextKEM: 23, SignedID: 2, Pending: []string{"otk/00000001"},
		LastResortID: 22, RotatedAt: 1_700_000_000_000, PrevSignedID: 1, PrevLastResortID: 1}
	f.Add(append([]byte{1}, st.marshal()...))
	v1 := st.marshal()[:1+4+4+4+1+4+4+len("otk/00000001")]
	v1[0] = 1
	f.Add(append([]byte{1}, v1...))
	f.Add(append([]byte{2}, marshalSentTo([]deviceRef{{"bob", identity.DeviceID{1}}, {"alice", identity.DeviceID{2}}})...))
	f.Add(append([]byte{3}, (&outboxRecord{Payload: []byte{1}, To: "bob", Only: &deviceRef{"bob", identity.DeviceID{3}}}).marshal()...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		var out []byte
		switch data[0] % 4 {
		case 0:
			if v, err := unmarshalInitialSeen(in); err == nil {
				out = marshalInitialSeen(v)
			}
		case 1:
			v, err := unmarshalPrekeyState(in)
			if err != nil {
				return
			}
			out = v.marshal()
			if in[0] == 1 {
				again, err := unmarshalPrekeyState(out)
				if err != nil || !reflect.DeepEqual(again, v) {
					t.Fatalf("version 1 state %+v migrates to %+v, %v", v, again, err)
				}
				return
			}
		case 2:
			if v, err := unmarshalSentTo(in); err == nil {
				out = marshalSentTo(v)
			}
		case 3:
			if v, err := unmarshalOutbox(in); err == nil {
				out = v.marshal()
			}
		}
		if out != nil && !bytes.Equal(out, in) {
			t.Fatalf("decoder %d accepted %x but re-encodes it as %x", data[0]%4, in, out)
		}
	})
}
